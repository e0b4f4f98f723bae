"""Where a mask store lives: a local path, or an fsspec URL (`s3://bucket/masks.zarr`, `gs://`,
`memory://`, ...) opened through zarr's `FsspecStore`.

Object stores have no directories and no rename, so the few operations distpaint needs from a
store's location are spelt out here once, for both kinds: existence, listing, removal and
`publish` (a finished group moved into place: a rename on disk; on an object store a server-side
copy of every object with the group's own `zarr.json` copied last, so a reader that lists the
store sees the group only once all of it is there, then the source removed).

Credentials and endpoints come from the environment as for every fsspec/boto client
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...: an S3-compatible server such as MinIO or moto
works unchanged). Any failure to reach a URL (bad scheme, missing bucket, refused connection,
denied access) is an `InputError` naming the URL and the problem.

    if is_url(out):
        store = zarr_store(out, read_only=False)     # zarr.storage.FsspecStore
        publish(f"{out}/.tmp-a-123", f"{out}/a")
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
from typing import Any

from distpaint.errors import InputError

__all__ = ["is_url", "join", "child", "fs_path", "zarr_store", "exists", "is_file", "list_names",
           "remove_tree", "publish", "put_file", "upload_group", "metadata_stamp", "url_error",
           "read_bytes", "write_bytes", "remove_file", "tree_digest", "same_or_nested", "rename_replacing"]

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# No listing cache: other processes (Ray actors, a resumed run) and other fsspec instances (zarr
# opens its own, asynchronous one) change the store, and a stale listing shows deleted samples.
_OPTIONS = {"use_listings_cache": False}


def is_url(location: str | os.PathLike) -> bool:
    """True for `scheme://...` (but not `file://`, which is a local path)."""
    text = os.fspath(location)
    return bool(_URL_RE.match(text)) and not text.startswith("file://")


def join(url: str, *names: str) -> str:
    """`url` with path components appended (no normalisation: `//` after the scheme stays)."""
    return "/".join([url.rstrip("/"), *(n.strip("/") for n in names)])


def child(parent: str | os.PathLike, *names: str) -> str | pathlib.Path:
    """`parent` / `names`: a URL joined as `join` does, a local path as a `pathlib.Path`."""
    if is_url(parent):
        return join(os.fspath(parent), *names)
    return pathlib.Path(parent).joinpath(*names)


def url_error(url: str, exc: BaseException, doing: str = "cannot reach") -> InputError:
    """The one-line user error for a URL that failed: what, where, and the client's reason."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, ImportError):
        detail = f"{detail} (install s3fs for s3://, gcsfs for gs://, adlfs for az://)"
    return InputError(f"{url}: {doing} ({type(exc).__name__}: {detail})")


def _options(url: str) -> dict:
    """Storage options for `url`. fsspec reuses one filesystem object per set of options for the
    life of the process, and an S3 filesystem fixes its endpoint and credentials when first
    used: the endpoint and the key the environment names now are made options, so a filesystem
    made before they were set or changed (another bucket server, other credentials) is never
    reused after."""
    options = dict(_OPTIONS)
    if url.startswith(("s3://", "s3a://")):
        env = os.environ
        options["client_kwargs"] = {"endpoint_url": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")}
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            options.update(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                           token=env.get("AWS_SESSION_TOKEN"))
    return options


def fs_path(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) of `url`; InputError for an unknown scheme or a
    missing client package."""
    import fsspec  # deferred: only URL locations need it (zarr imports it anyway)

    try:
        fs, path = fsspec.core.url_to_fs(url, **_options(url))
    except (ImportError, ValueError) as exc:
        raise url_error(url, exc, "unsupported URL") from None
    return fs, path


def zarr_store(url: str, *, read_only: bool) -> Any:
    """A zarr `FsspecStore` on `url`."""
    from zarr.storage import FsspecStore  # deferred: see fs_path

    try:
        return FsspecStore.from_url(url, read_only=read_only, storage_options=_options(url))
    except (ImportError, ValueError, TypeError) as exc:
        raise url_error(url, exc, "unsupported URL") from None


def _call(url: str, doing: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except FileNotFoundError:
        raise
    except Exception as exc:  # botocore/aiohttp/permission errors: the user's bucket or network
        raise url_error(url, exc, doing) from None


def exists(url: str) -> bool:
    """Is there anything (an object or a prefix) at `url`? InputError if the bucket is missing
    or unreachable."""
    fs, path = fs_path(url)
    bucket = path.split("/", 1)[0]
    try:
        if not _call(url, "cannot reach the bucket", fs.exists, bucket):
            raise InputError(f"{url}: bucket {bucket!r} does not exist or is not accessible")
    except FileNotFoundError:
        raise InputError(f"{url}: bucket {bucket!r} does not exist") from None
    fs.invalidate_cache(path)
    return bool(_call(url, "cannot read", fs.exists, path))


def is_file(url: str) -> bool:
    """Is `url` one object (e.g. a store's `zarr.json`)?"""
    fs, path = fs_path(url)
    fs.invalidate_cache(path)
    try:
        return bool(_call(url, "cannot read", fs.isfile, path))
    except FileNotFoundError:
        return False


def list_names(url: str) -> list[str]:
    """Names directly below `url` (objects and prefixes), sorted; [] if there is nothing."""
    fs, path = fs_path(url)
    fs.invalidate_cache(path)
    try:
        entries = _call(url, "cannot list", fs.ls, path, detail=False)
    except FileNotFoundError:
        return []
    return sorted({e.rstrip("/").rsplit("/", 1)[-1] for e in entries} - {""})


def remove_tree(url: str) -> None:
    """Delete every object below `url` (nothing there: no error)."""
    fs, path = fs_path(url)
    try:
        _call(url, "cannot delete", fs.rm, path, recursive=True)
    except FileNotFoundError:
        pass
    fs.invalidate_cache(path)


def publish(src: str, dst: str) -> None:
    """Move the Zarr group at `src` to `dst` (which must not exist) on one object store: every
    object copied server side, the group's own zarr.json last, then `src` deleted. Readers that
    discover groups by their zarr.json (zarr's `group_keys`, `MaskStore.names`) see nothing at
    `dst` until the copy is complete."""
    fs, src_path = fs_path(src)
    _, dst_path = fs_path(dst)
    fs.invalidate_cache(src_path)
    objects = sorted(_call(src, "cannot list", fs.find, src_path))
    head = f"{src_path.rstrip('/')}/zarr.json"
    if head not in objects:
        raise InputError(f"{src}: not a Zarr group (no zarr.json); nothing to publish")
    for obj in [o for o in objects if o != head] + [head]:
        _call(dst, "cannot write", fs.copy, obj, dst_path.rstrip("/") + obj[len(src_path.rstrip("/")):])
    remove_tree(src)
    fs.invalidate_cache(dst_path)


def read_bytes(where: str | os.PathLike) -> bytes:
    """The whole file or object at `where` (a path or a URL); FileNotFoundError if there is
    none (callers name it)."""
    if not is_url(where):
        return pathlib.Path(where).read_bytes()
    fs, path = fs_path(os.fspath(where))
    fs.invalidate_cache(path)
    return _call(os.fspath(where), "cannot read", fs.cat_file, path)


def write_bytes(where: str | os.PathLike, data: bytes) -> None:
    """Write `data` as the file or object at `where`, so that readers see the old contents or
    the new, never a part: a local file is written beside it and renamed over it; an object is
    one whole PUT (an object store replaces one object atomically)."""
    if not is_url(where):
        path = pathlib.Path(where)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return
    fs, path = fs_path(os.fspath(where))
    _call(os.fspath(where), "cannot write", fs.pipe_file, path, data)
    fs.invalidate_cache(path)


def remove_file(where: str | os.PathLike) -> None:
    """Delete the file or object at `where` (none there: no error)."""
    if not is_url(where):
        pathlib.Path(where).unlink(missing_ok=True)
        return
    remove_tree(os.fspath(where))


def put_file(local: str | os.PathLike, url: str) -> None:
    """Upload one local file to `url` (a whole object, written once)."""
    fs, path = fs_path(url)
    _call(url, "cannot write", fs.put_file, os.fspath(local), path)


def upload_group(local: str | os.PathLike, url: str) -> None:
    """Upload the local Zarr group folder `local` to `url` (which must hold nothing), one whole
    object per file, the group's own zarr.json last: a reader that finds groups by their
    zarr.json sees the group only once every shard of it is there."""
    root = os.fspath(local)
    files = sorted(os.path.relpath(os.path.join(d, f), root)
                   for d, _, names in os.walk(root) for f in names)
    if "zarr.json" not in files:
        raise InputError(f"{root}: not a Zarr group (no zarr.json); nothing to upload")
    for rel in [f for f in files if f != "zarr.json"] + ["zarr.json"]:
        put_file(os.path.join(root, rel), join(url, rel.replace(os.sep, "/")))


def metadata_stamp(url: str) -> list:
    """What identifies the contents of the Zarr node at `url`: (key, ETag or mtime, size) of its
    zarr.json objects, its own and its children's. A rewritten node gets new ones."""
    fs, path = fs_path(url)
    stamp = []
    for key in (f"{path}/zarr.json", f"{path}/*/zarr.json"):
        try:
            found = _call(url, "cannot read", fs.glob, key, detail=True) if "*" in key else {
                key: _call(url, "cannot read", fs.info, key)}
        except FileNotFoundError:
            found = {}
        for name, info in sorted(found.items()):
            tag = info.get("ETag") or info.get("LastModified") or info.get("mtime") or info.get("created")
            stamp.append((name, str(tag), info.get("size")))
    return stamp


def tree_digest(where: str | os.PathLike) -> str:
    """SHA-256 over the relative paths and the bytes' SHA-256 of every file (object) below
    `where`, a folder or a URL, in path order: one folder and its upload have one digest."""
    import hashlib  # deferred: only the set builders (benchmark, real data) digest trees

    h = hashlib.sha256()
    if is_url(where):
        fs, root = fs_path(os.fspath(where))
        fs.invalidate_cache(root)
        keys = _call(os.fspath(where), "cannot list", fs.find, root)
        files = [(pathlib.PurePosixPath(k[len(root.rstrip("/")) + 1:]), k) for k in keys]
        read = lambda key: _call(os.fspath(where), "cannot read", fs.cat_file, key)  # noqa: E731
    else:
        root_path = pathlib.Path(where)
        files = [(pathlib.PurePosixPath(p.relative_to(root_path).as_posix()), p)
                 for p in root_path.rglob("*") if p.is_file()]
        read = pathlib.Path.read_bytes
    for rel, key in sorted(files, key=lambda item: item[0]):
        h.update(rel.as_posix().encode() + b"\0")
        h.update(hashlib.sha256(read(key)).digest())
    return h.hexdigest()


def same_or_nested(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Are `a` and `b` the same place, or is one inside the other? Local paths are resolved;
    URLs are compared by their keys (a URL is never inside a local path)."""
    if is_url(a) or is_url(b):
        a, b = (pathlib.PurePosixPath("/", *os.fspath(x).replace("://", ":/").rstrip("/").split("/"))
                for x in (a, b))
    else:
        a, b = pathlib.Path(a).resolve(), pathlib.Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


def rename_replacing(src: os.PathLike, dst: os.PathLike, aside: os.PathLike) -> None:
    """Rename the local file or folder `src` to `dst`; an existing `dst` is first renamed to
    `aside` and deleted after, so readers see the old or the new one, never a mix, and a failed
    rename puts the old one back."""
    dst, aside = pathlib.Path(dst), pathlib.Path(aside)
    moved = False
    if dst.exists():
        os.rename(dst, aside)
        moved = True
    try:
        os.rename(src, dst)
    except BaseException:
        if moved:
            os.rename(aside, dst)
        raise
    if moved:
        shutil.rmtree(aside, ignore_errors=True) if aside.is_dir() else aside.unlink()
