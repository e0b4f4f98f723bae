"""What `distpaint infer` reads and writes: inputs expanded into units, each with its outputs.

INPUT arguments are files (PNG, TIFF, GeoTIFF, NPY, a Zarr array or distpaint sample), distpaint
mask stores (one unit per sample), directories (every mask file below them, recursively, hidden
files and folders skipped) and globs (`'masks/**/*.png'`, expanded when the shell did not), as
`distpaint.data.inputs.expand_inputs` expands them (`distpaint ingest` and `distpaint baseline`
expand theirs with it too). Each unit gets three outputs in the input's own format:

- file mode (one file or store in, `--out` with a mask suffix): the repaired mask is OUT itself
  (`--out roads_fixed.tif`; another suffix converts), the added pixels `OUT-stem.added.SUFFIX`,
  the preview `OUT-stem.preview.png`. A store in and `--out X.zarr` gives a store X.zarr whose
  samples hold the layers `mask` (repaired) and `added`, previews in `X.previews/SAMPLE.png`.
- folder mode (anything else): OUT is a folder; a file keeps its name (its path relative to
  the directory it came from), so `a/b.png` -> `OUT/b.png`, `OUT/b.added.png`,
  `OUT/b.preview.png`; a store `S.zarr` -> `OUT/S.zarr` and `OUT/S.previews/SAMPLE.png`.

Inputs are never written: an output that is an input, lies inside an input store or folder, or
an OUT inside an input folder, is refused even with `--overwrite`. An OUT that cannot be
written (a read-only folder) and a store whose metadata is broken (naming the zarr.json) are
refused before any work starts.

Object storage (`distpaint.data.location`): a store INPUT may be a URL (`s3://b/in.zarr`) and
so may OUT (`s3://b/out.zarr`, or a URL prefix in folder mode); an OUT URL takes store inputs
only (their outputs are stores). The job's work folder (manifest and staging arrays) is then
a local folder, `remote_work_dir(OUT)`, and only finished samples and previews are written to
the bucket.

    units, root = plan_units(["masks/", "roads.tif"], "out/")
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from dataclasses import dataclass

from distpaint.data import location
from distpaint.data.files import FORMATS, check_writable
from distpaint.data.inputs import InputMask, expand_inputs
from distpaint.errors import InputError

__all__ = ["Unit", "plan_units", "work_dir", "file_mode", "remote_work_dir", "Where"]

Where = pathlib.Path | str
"""A local path, or a URL string on object storage."""

WORK_CACHE_VARIABLE = "DISTPAINT_WORK_CACHE"
"""Folder of the local work folders of jobs whose OUT is a URL (default ~/.cache/distpaint/infer)."""


@dataclass(frozen=True)
class Unit:
    """One mask to repair and where its outputs go."""

    key: str
    """Display name and manifest key (the input path, `STORE/SAMPLE` for a sample)."""
    path: Where
    """The input file or store (absolute; a URL for a store on object storage)."""
    sample: str | None
    """Sample name of a store input; None for a file."""
    out_mask: Where
    """Repaired mask file; for a sample: the output store (the sample keeps its name)."""
    out_added: pathlib.Path | None
    """Added-pixels file; None for a sample (a layer `added` of the output sample)."""
    out_preview: Where
    """Preview PNG: input in white, added pixels in red."""

    @property
    def outputs(self) -> list[Where]:
        """Every path this unit writes (for a sample: the sample folder in the output store)."""
        first = _child(self.out_mask, self.sample) if self.sample else self.out_mask
        return [p for p in (first, self.out_added, self.out_preview) if p is not None]

    def fingerprint(self) -> str:
        """Identity of the input's current contents (path, size, inode, mtime; on object
        storage the sample's metadata objects' ETags and sizes): a changed input is recomputed
        from scratch when a job resumes."""
        if isinstance(self.path, str):
            stamp = location.metadata_stamp(location.join(self.path, self.sample or ""))
            return hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]
        target = self.path / self.sample if self.sample else self.path
        st = target.stat()
        parts = [str(target), st.st_size, st.st_ino, st.st_mtime_ns]
        if target.is_dir():  # a Zarr node: metadata files change when it is rewritten
            for meta in sorted(target.glob("*/zarr.json")) + [target / "zarr.json"]:
                if meta.is_file():
                    s = meta.stat()
                    parts += [meta.name, s.st_ino, s.st_mtime_ns, s.st_size]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _child(parent: Where, name: str) -> Where:
    return location.join(parent, name) if isinstance(parent, str) else parent / name


def _suffix(where: Where) -> str:
    return pathlib.PurePosixPath(where.rsplit("/", 1)[-1]).suffix if isinstance(where, str) else where.suffix


def _key(where: Where) -> pathlib.PurePath:
    """A path for containment checks: a URL as /<scheme>/<rest>, never equal to a local path."""
    if isinstance(where, str):
        scheme, rest = where.split("://", 1)
        return pathlib.PurePosixPath("/", f"{scheme}:", *[p for p in rest.split("/") if p])
    return where.resolve()


def remote_work_dir(out: str) -> pathlib.Path:
    """The local work folder of a job whose OUT is the URL `out`: the same one for every run of
    the same OUT on this machine, so a killed job resumes."""
    root = os.environ.get(WORK_CACHE_VARIABLE) or pathlib.Path.home() / ".cache" / "distpaint" / "infer"
    digest = hashlib.sha256(out.encode()).hexdigest()[:16]
    return pathlib.Path(root) / f"{out.rsplit('/', 1)[-1]}-{digest}"


def file_mode(inputs: list[str | os.PathLike], sources: list[InputMask], out: Where) -> bool:
    """True if OUT names the output itself: one INPUT that is a file or a store (not a folder
    of masks, not a pattern) and OUT with a mask suffix."""
    if len(inputs) != 1 or len({s.path for s in sources}) != 1:
        return False
    if location.is_url(inputs[0]):  # a store (the only URL input)
        return _suffix(out).lower() in FORMATS
    raw = pathlib.Path(os.fspath(inputs[0]))
    if not raw.exists():  # a pattern
        return False
    if sources[0].sample is None and raw.absolute() != sources[0].path:
        return False  # a folder holding one mask
    return out.suffix.lower() in FORMATS


def work_dir(out: Where, is_file_mode: bool) -> pathlib.Path:
    """Where a job keeps its manifest and staging arrays: OUT/.distpaint-infer for a folder,
    a hidden sibling of OUT for a single output; for a URL, `remote_work_dir`."""
    if isinstance(out, str):
        return remote_work_dir(out)
    return out.parent / f".{out.name}.distpaint-infer" if is_file_mode else out / ".distpaint-infer"


def _outputs_for(source: InputMask, out: Where, is_file_mode: bool) -> Unit:
    if isinstance(out, str):
        if source.sample is None:
            raise InputError(f"--out {out}: an object-storage output takes mask stores as input; "
                             f"{source.path} is a file (ingest it into a store first)")
        store = out if is_file_mode else location.join(out, str(source.rel))
        if _suffix(store).lower() != ".zarr":
            raise InputError(f"--out {out}: the input {source.path} is a mask store; its output "
                             "must be a .zarr store (or a folder)")
        previews = store[: -len(".zarr")] + ".previews"
        return Unit(f"{source.path}/{source.sample}", source.path, source.sample, store, None,
                    location.join(previews, f"{source.sample}.png"))
    if source.sample is not None:
        store = out if is_file_mode else out / source.rel
        if store.suffix.lower() != ".zarr":
            raise InputError(
                f"--out {out}: the input {source.path} is a mask store; its output must be a "
                ".zarr store (or a folder)"
            )
        previews = store.with_name(f"{store.stem}.previews")
        return Unit(f"{source.path}/{source.sample}", source.path, source.sample, store, None,
                    previews / f"{source.sample}.png")
    mask = out if is_file_mode else out / source.rel
    suffix = mask.suffix if mask.suffix.lower() in FORMATS else ".zarr"
    stem = mask.name[: -len(mask.suffix)] if mask.suffix else mask.name
    return Unit(str(source.path), source.path, None, mask,
                mask.with_name(f"{stem}.added{suffix}"), mask.with_name(f"{stem}.preview.png"))


def _inside(child: pathlib.Path, parent: pathlib.Path) -> bool:
    return child == parent or parent in child.parents


def _check_inputs_untouched(units: list[Unit], sources: list[InputMask], out: pathlib.Path,
                            inputs: list[str | os.PathLike]) -> None:
    protected = {_key(s.path) for s in sources}
    folders = [pathlib.Path(os.fspath(r)).resolve() for r in inputs
               if not location.is_url(r) and pathlib.Path(os.fspath(r)).is_dir()
               and pathlib.Path(os.fspath(r)).resolve() not in protected]
    out_r = _key(out)
    for folder in folders:
        if _inside(out_r, folder):
            raise InputError(
                f"--out {out} is inside the input directory {folder}: outputs would mix with "
                "the inputs; choose an output outside it"
            )
    for unit in units:
        for output in unit.outputs:
            target = _key(output)
            for src in protected:
                if _inside(target, src) or _inside(src, target):
                    raise InputError(
                        f"{output} would overwrite the input {src}; inputs are never "
                        "overwritten (choose another --out)"
                    )


def plan_units(inputs: list[str | os.PathLike], out: str | os.PathLike) -> tuple[list[Unit], bool]:
    """(units, file_mode) for the INPUT arguments and OUT; InputError for inputs that do not
    exist, two inputs writing one output, or an output that would overwrite an input."""
    remote = location.is_url(out)
    out = os.fspath(out).rstrip("/") if remote else pathlib.Path(out).absolute()
    sources = expand_inputs(inputs)
    if remote:
        location.exists(out)  # InputError now for a missing bucket or a refused connection
    else:
        check_writable(out, "output")
    is_file = file_mode(inputs, sources, out)
    if not is_file and _suffix(out).lower() in FORMATS and _suffix(out).lower() != ".zarr":
        raise InputError(
            f"--out {out}: {len(sources)} masks need an output folder, not a "
            f"{_suffix(out)} file"
        )
    if not remote and not is_file and out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    units = [_outputs_for(s, out, is_file) for s in sources]
    seen: dict[Where, str] = {}
    for unit in units:
        for output in unit.outputs:
            if output in seen:
                raise InputError(
                    f"{seen[output]} and {unit.key} would both write {output}; give them "
                    "separate runs or rename one"
                )
            seen[output] = unit.key
    _check_inputs_untouched(units, sources, out, inputs)
    return units, is_file
