"""Ingestion: turn mask files (PNG, TIFF, GeoTIFF, NPY, Zarr) into samples of a mask store.

Sources are expanded as `distpaint infer` expands its inputs
(`distpaint.data.inputs.expand_inputs`): a file; a folder (every mask file below it,
recursively, hidden ones skipped); a glob the shell did not expand (`'scans/*.png'`,
`'scans/**/*.tif'`); a distpaint store, which contributes each of its samples under their own
names. Every source is read read-only and never modified; each sample is written atomically
(see `MaskStore.write`).

Sample names (`sample_name`): the file's stem, with an optional prefix prepended. Non-ASCII
characters are transliterated where Unicode decomposes them (NFKD: accents dropped, so
'ä' -> 'a', full-width and ligature forms -> their ASCII letters) and otherwise written as
`u` and their code point in hex, at least 4 digits ('道' -> 'u9053'); every run of other
characters than letters, digits, '.', '_' and '-' becomes one '_', and leading or trailing
'.', '_', '-' are dropped. So 'mäsk 道路.png' -> 'mask_u9053u8def', 'My Road (1).tif' ->
'My_Road_1'. Two sources that map to one name ('mask.png' and 'mäsk.png', or 'a/m.png' and
'b/m.tif') are an InputError naming both, raised before anything is written.

Per sample the attrs hold: `source` (absolute path), `sha256` (of the file, or of every file
of a Zarr directory), `format`, `shape`, `foreground` (pixel count), `source_dtype`,
`foreground_value`, `threshold`, and for GeoTIFF `crs` (WKT) and `transform` (affine
a, b, c, d, e, f), so that outputs can be written back georeferenced with
`distpaint.data.files.write_mask_file`. A mask smaller than one patch on either side is padded
with background up to the patch size, recorded as `padded_from: [H, W]` and reported in the
result's warnings.

Bad sources: by default the first bad source stops the run with an InputError naming it
(samples ingested before it stay, each complete). With `skip_bad=True` every bad source is
reported in `IngestReport.failed` and the others are ingested. Name clashes (two sources with
one name, or a name already in the store without `overwrite`) and an output that cannot be
written (a read-only folder) are checked before anything is written. A path that does not
exist, a pattern matching nothing and a folder without masks stop the run before it starts.

Usage::

    from distpaint.data.ingest import IngestConfig, ingest_files
    report = ingest_files(["a.png", "b.tif"], "masks.zarr", IngestConfig(threshold=127))

or on the command line: `distpaint ingest a.png b.tif --out masks.zarr --threshold 127`.
"""

from __future__ import annotations

import hashlib
import math
import os
import pathlib
import re
import unicodedata
from dataclasses import dataclass, field

import dask.array as da

from distpaint.data.files import FORMATS, check_writable, mask_format, read_mask_file
from distpaint.data.inputs import expand_inputs
from distpaint.data import location
from distpaint.data.store import MaskStore, writing_store
from distpaint.errors import ConfigError, InputError

__all__ = [
    "IngestConfig",
    "IngestResult",
    "IngestReport",
    "Source",
    "sample_name",
    "expand_sources",
    "check_outside",
    "file_sha256",
    "ingest_file",
    "ingest_files",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class IngestConfig:
    """How sources are turned into samples."""

    threshold: float | None = None
    """Binarise non-binary images as foreground = value > threshold; None: sources must
    already be binary ({0, v} or bool)."""
    chunks: int = 1024
    """Side of the square Zarr chunks of the written arrays."""
    patch_size: int = 256
    """Smallest side a sample may have: smaller masks are padded with background to it."""
    overwrite: bool = False
    """Replace samples that already exist in the store (otherwise an error)."""
    skip_bad: bool = False
    """Report bad sources and ingest the others, instead of stopping at the first."""
    prefix: str = ""
    """Prepended to every sample name (to keep sources with equal stems apart)."""

    def __post_init__(self) -> None:
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ConfigError(f"threshold must be a finite number, got {self.threshold}")
        if self.chunks < 16:
            raise ConfigError(f"chunks must be at least 16, got {self.chunks}")
        if self.patch_size < 1:
            raise ConfigError(f"patch_size must be positive, got {self.patch_size}")
        if self.prefix and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", self.prefix):
            raise ConfigError(
                f"prefix {self.prefix!r} must be letters, digits, '.', '_' or '-' "
                "(not starting with '.' or '-')"
            )


@dataclass
class IngestResult:
    """One ingested sample."""

    name: str
    """Sample name in the store."""
    source: str
    """Absolute path of the source."""
    shape: tuple[int, int]
    """Shape as stored (after padding)."""
    foreground: int
    """Number of foreground pixels."""
    padded_from: tuple[int, int] | None = None
    """Original shape when the mask was padded up to one patch."""
    warnings: list[str] = field(default_factory=list)
    """Things the user should know (padding)."""

    @property
    def foreground_fraction(self) -> float:
        """Foreground pixels over all stored pixels."""
        return self.foreground / (self.shape[0] * self.shape[1])


@dataclass
class IngestReport:
    """What `ingest_files` did."""

    ingested: list[IngestResult] = field(default_factory=list)
    """Samples written, in source order."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(source, error message) of sources skipped with `skip_bad`."""

    @property
    def warnings(self) -> list[str]:
        """Every warning of every ingested sample."""
        return [w for result in self.ingested for w in result.warnings]


@dataclass(frozen=True)
class Source:
    """A source to ingest and the sample name it becomes."""

    path: pathlib.Path | str
    """File, or Zarr node (array, sample group or one-sample store); a URL for a sample of a
    store on object storage."""
    name: str
    """Sample name."""


def _ascii(text: str) -> str:
    """`text` in ASCII: NFKD transliteration where it exists (combining accents dropped),
    `uXXXX` (the code point in hex) for every other non-ASCII character."""
    out = []
    for ch in unicodedata.normalize("NFKD", text):
        if ch.isascii():
            out.append(ch)
        elif not unicodedata.combining(ch):
            out.append(f"u{ord(ch):04x}")
    return "".join(out)


def sample_name(path: str | os.PathLike, prefix: str = "") -> str:
    """The sample name for `path`: its stem made safe for Zarr (see the module docstring for
    the rule), with `prefix` prepended."""
    path = pathlib.Path(path)
    stem = path.stem if path.suffix.lower() in FORMATS else path.name
    name = _UNSAFE.sub("_", _ascii(stem)).strip("._-") or "mask"
    return f"{prefix}{name}"


def expand_sources(paths: list[str | os.PathLike], prefix: str = "") -> list[Source]:
    """Sources for `paths` (files, folders, globs, stores: expanded as `distpaint infer` does);
    a distpaint store expands to one source per sample. InputError for a path that does not
    exist, a pattern or folder without masks, or two sources that would get the same name."""
    sources: list[Source] = []
    for found in expand_inputs(list(paths)):
        if found.sample is not None:
            sources.append(Source(location.child(found.path, found.sample), f"{prefix}{found.sample}"))
        else:
            sources.append(Source(found.path, sample_name(found.path, prefix)))
    _check_unique(sources)
    return sources


def _check_unique(sources: list[Source]) -> None:
    seen: dict[str, pathlib.Path] = {}
    for source in sources:
        if source.name in seen:
            raise InputError(
                f"{seen[source.name]} and {source.path} would both become sample "
                f"{source.name!r}; rename one or ingest them in separate runs with --prefix"
            )
        seen[source.name] = source.path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a directory's files (relative path and bytes, sorted); of the
    objects below a URL as of the files of the same folder."""
    digest = hashlib.sha256()
    if location.is_url(path):
        fs, root = location.fs_path(os.fspath(path).rstrip("/"))
        for key in sorted(fs.find(root), key=lambda k: pathlib.PurePosixPath(k)):
            digest.update(key[len(root) + 1:].encode() + b"\0")
            digest.update(location.read_bytes(f"{os.fspath(path).split('://', 1)[0]}://{key}"))
        return digest.hexdigest()
    path = pathlib.Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def _pad(mask: da.Array, patch: int, path: pathlib.Path) -> tuple[da.Array, str | None]:
    h, w = mask.shape
    if h >= patch and w >= patch:
        return mask, None
    padded = da.pad(mask, ((0, max(0, patch - h)), (0, max(0, patch - w))), constant_values=False)
    note = (
        f"{path}: {h}x{w} is smaller than one {patch}x{patch} patch; padded with background "
        f"to {padded.shape[0]}x{padded.shape[1]} (attrs padded_from={[h, w]})"
    )
    return padded, note


def check_outside(path: str | os.PathLike, store: MaskStore) -> None:
    """Refuse a source inside the output store (or holding it): overwriting it would destroy
    the source."""
    if location.same_or_nested(path, store.path):
        raise InputError(f"{path}: source is inside the output store {store.path}")


def ingest_file(
    path: str | os.PathLike,
    store: MaskStore,
    *,
    name: str | None = None,
    config: IngestConfig | None = None,
) -> IngestResult:
    """Ingest one mask file as sample `name` (default: from the file stem) of `store`."""
    config = config or IngestConfig()
    remote = location.is_url(path)
    path = os.fspath(path).rstrip("/") if remote else pathlib.Path(path)
    name = name or sample_name(path, config.prefix)
    check_outside(path, store)
    mask_format(path)  # unsupported suffix: fail before reading anything
    mask, meta = read_mask_file(path, config.threshold)
    mask, note = _pad(mask, config.patch_size, path)
    attrs = {
        **meta,
        "source": path if remote else str(path.resolve()),
        "sha256": file_sha256(path),
        "shape": list(mask.shape),
    }
    if note:
        attrs["padded_from"] = meta["shape"]
    try:
        store.write(name, {"mask": mask}, attrs, chunks=config.chunks,
                    overwrite=config.overwrite)
    except OSError as exc:  # read-only store, disk full: the user's to fix, not a bug
        raise InputError(f"{store.path}/{name}: cannot write the sample: "
                         f"{exc.strerror or exc}") from None
    return IngestResult(
        name=name,
        source=attrs["source"],
        shape=tuple(mask.shape),
        foreground=int(meta["foreground"]),
        padded_from=tuple(meta["shape"]) if note else None,
        warnings=[note] if note else [],
    )


def ingest_files(
    paths: list[str | os.PathLike],
    store: MaskStore | str | os.PathLike,
    config: IngestConfig | None = None,
) -> IngestReport:
    """Ingest every source in `paths` into `store` (a MaskStore, or a path created if
    missing). Fails fast on the first bad source unless `config.skip_bad`."""
    config = config or IngestConfig()
    if not paths:
        raise ConfigError("no sources given")
    sources = expand_sources(list(paths), config.prefix)
    if isinstance(store, MaskStore):
        check_writable(store.path, "mask store")
        return _ingest_sources(sources, store, config)
    check_writable(store, "mask store")  # a URL: its bucket is reached here
    with writing_store(store) as opened:  # a new store left without a sample is removed
        return _ingest_sources(sources, opened, config)


def _ingest_sources(sources: list[Source], store: MaskStore, config: IngestConfig) -> IngestReport:
    if not config.overwrite:
        existing = set(store.names())
        taken = [s.name for s in sources if s.name in existing]
        if taken:
            raise InputError(
                f"{store.path}: samples already exist: {', '.join(taken[:8])}; "
                "pass --overwrite to replace them"
            )
    report = IngestReport()
    for source in sources:
        try:
            report.ingested.append(ingest_file(source.path, store, name=source.name, config=config))
        except InputError as exc:
            if not config.skip_bad:
                done = len(report.ingested)
                suffix = f" ({done} earlier source{'s' * (done != 1)} ingested)" if done else ""
                raise InputError(f"{exc}{suffix}") from None
            report.failed.append((str(source.path), str(exc)))
    return report
