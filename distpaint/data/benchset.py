"""Benchmark sets: fixed, seeded evaluation data for every synthetic kind, never trained on.

`make_benchset(out, BenchsetConfig(seed=S))` writes, for each kind of `KINDS`,

- a **patch-level set** (`OUT/patch/<kind>.zarr`): `patches` 256 x 256 patches cut from
  synthetic source masks (cells of a fixed grid holding at least `min_foreground` of
  foreground, at most `patches_per_source` per source mask), each corrupted on its own with
  `mix` gaps, as in the paper's Table I;
- a **whole-mask set** (`OUT/whole/<kind>.zarr`): `whole_count` masks of `whole_size` squared
  (2048 by default), corrupted block by block with `corrupt_dask`, as in Table II;

each sample holding the layers `mask` (the corrupted input), `gaps` (M, the removed foreground)
and `truth` (docs/ARCHITECTURE.md), plus `OUT/manifest.json` describing the sets (options,
per-kind counts, foreground and removed fractions, a SHA-256 digest of every store).

Determinism: the same config gives the same files byte for byte (no paths, times or random
ids are stored anywhere; `verify_benchset` recomputes the digests). A build runs in a hidden
sibling folder `.OUT.partial` that is renamed to OUT when complete; an interrupted build
resumes there (samples are written atomically and existing ones are skipped). OUT may be an
fsspec URL (`s3://bucket/bench`, `distpaint.data.location`): object stores cannot rename, so
there the set is built in place, marked by a hidden `.building.json`, and its manifest.json
(what `open_benchset` looks for) is written last; readers see no set until it is complete, and
the files are the same bytes as a local build's (same digests).

Disjoint from training, by construction:

- every random draw of a benchmark set comes from `SeedSequence([seed, BENCH_SALT, set, kind],
  spawn_key=(role, index))`; training draws from `[seed, 7, ...]`, `[seed, 13, ...]` and
  `[seed, step, ...]` lists (`distpaint.train.data`, `validation`, `store_data`);
- more strongly, the masks themselves cannot coincide: every synthetic mask that training
  synthesises is drawn with a synth seed below 2**32 (a uint32 from `generate_state` or
  `sample_seeds`), every benchmark mask with a synth seed of at least `SYNTH_SEED_OFFSET` =
  2**32. `synth_geometry` seeds its generator with `SeedSequence([seed, kind_salt])`, whose
  entropy words then differ (benchmark [lo, 1, salt, 0] vs training [seed, salt, 0, 0]: the
  third word is the non-zero salt or 0), and SeedSequence maps up to four zero-padded words
  to its pool, and the pool to the first words of `generate_state`, bijectively (its hash and
  mix steps are odd multiplications, xors and xor-shifts), so a benchmark geometry generator
  never starts from the state of a training one.

Training never reads these sets: the training data are synthesised from the run's seed
(`distpaint.train.data.LocalData`, `synthesize_store`), and the root group of each store
carries the attribute `distpaint_benchset` so that data loaders can refuse them. Do not pass
them as a training validation set either (that would select models on the benchmark).

    from distpaint.data.benchset import BenchsetConfig, make_benchset, open_benchset
    make_benchset("bench_data", BenchsetConfig(seed=0))
    bench = open_benchset("bench_data")
    bench.store("patch", "roads").names()      # ['roads-0000', ...]

From the shell: `distpaint benchset make --out bench_data --seed 0` (`--small` for tests).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from distpaint.data import location
from distpaint.data.gaps import GapConfig, corrupt, corrupt_dask
from distpaint.data.store import MaskStore
from distpaint.data.synth import KINDS, SynthConfig, synth_array, synth_mask
from distpaint.errors import ConfigError, InputError

__all__ = [
    "BENCH_SALT",
    "FORMAT",
    "LEVELS",
    "MARKER_ATTR",
    "SYNTH_SEED_OFFSET",
    "Benchset",
    "BenchsetConfig",
    "bench_entropy",
    "diagnostic_args",
    "diagnostic_store",
    "make_benchset",
    "open_benchset",
    "synth_seed",
    "verify_benchset",
]

FORMAT = "distpaint-benchset"
"""Value of the "format" key of manifest.json."""
VERSION = 1
"""Layout version of the sets (bumped when the same config would give other files)."""
BENCH_SALT = 0x62656E63
"""Second entropy word of every benchmark draw ("benc"); training uses 7, 13 or a step there."""
SYNTH_SEED_OFFSET = 2**32
"""Benchmark masks are synthesised with seeds >= this; training's are uint32 (< 2**32)."""
LEVELS = ("patch", "whole")
"""The two sets: patch level (Table I) and whole-mask level (Table II)."""
MARKER_ATTR = "distpaint_benchset"
"""Root-group attribute of every benchmark store (loaders of training data can refuse it)."""
_LEVEL_ID = {"patch": 1, "whole": 2}
_KIND_ID = {k: i + 1 for i, k in enumerate(KINDS)}
_ROLE_SYNTH, _ROLE_CELLS, _ROLE_GAPS = 1, 2, 3
_BUILDING = ".building.json"
"""The marker of an unfinished build (its options), removed once manifest.json is written."""
Where = pathlib.Path | str
"""A local folder, or a URL on object storage."""
_MAX_SOURCES_PER_PATCH = 64
"""A kind yielding fewer than one patch per this many source masks is a config error."""


@dataclass
class BenchsetConfig:
    """What a benchmark set holds. Every field changes the files; all are in the manifest."""

    seed: int = 0
    """Base seed of the sets (>= 0); see the module docstring for the derived streams."""
    kinds: tuple[str, ...] = KINDS
    """Synthetic kinds, one patch store and one whole-mask store each."""
    patches: int = 256
    """Patches per kind in the patch-level set."""
    patch_size: int = 256
    """Side of the patches (the paper's 256)."""
    patch_source_size: int = 1024
    """Side of the synthetic masks the patches are cut from."""
    patches_per_source: int = 4
    """At most this many patches from one source mask (variety over many masks)."""
    min_foreground: float = 0.01
    """A patch cell qualifies when at least this fraction of its pixels is foreground."""
    whole_count: int = 6
    """Whole masks per kind in the whole-mask set."""
    whole_size: int = 2048
    """Side of the whole masks (the issue asks for at least 2048; smaller only for tests)."""
    gap_density: float = 1.0
    """Density of the `mix` gaps (`GapConfig.density`; counts are per 256 x 256 area)."""
    chunks: int = 1024
    """Zarr chunk side of the whole masks (patches are one chunk); the gaps of whole masks
    depend on it (`corrupt_dask` draws per block)."""

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        for name in ("seed", "patches", "patch_size", "patch_source_size", "patches_per_source",
                     "whole_count", "whole_size", "chunks"):
            value = getattr(self, name)
            low = 0 if name in ("seed", "patches", "whole_count") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"benchset {name} must be an integer >= {low}, got {value!r}")
        if not self.kinds or len(set(self.kinds)) != len(self.kinds) or any(
                k not in KINDS for k in self.kinds):
            raise ConfigError(f"benchset kinds must be distinct kinds among {', '.join(KINDS)}, "
                              f"got {list(self.kinds)}")
        if self.patches + self.whole_count == 0:
            raise ConfigError("benchset: patches and whole_count are both 0: nothing to build")
        if self.patch_size < 32 or self.patch_source_size < self.patch_size:
            raise ConfigError(f"benchset patch_size must be >= 32 and <= patch_source_size, got "
                              f"{self.patch_size} and {self.patch_source_size}")
        if self.whole_size < 64:
            raise ConfigError(f"benchset whole_size must be >= 64 px, got {self.whole_size}")
        if not 0 < self.min_foreground < 1:
            raise ConfigError(f"benchset min_foreground must be in (0, 1), got {self.min_foreground}")
        if not 0 < self.gap_density <= 10:
            raise ConfigError(f"benchset gap_density must be in (0, 10], got {self.gap_density}")

    @classmethod
    def small(cls, seed: int = 0, kinds: Sequence[str] = KINDS) -> BenchsetConfig:
        """A tiny set for tests and smoke runs (seconds): 6 patches and one 512 px mask per
        kind, 512 px chunks so the whole masks still have several blocks."""
        return cls(seed=seed, kinds=tuple(kinds), patches=6, patch_source_size=512,
                   whole_count=1, whole_size=512, chunks=256)

    def gap_config(self) -> GapConfig:
        """The gaps of both sets: the project's `mix` at `gap_density`."""
        return GapConfig(kind="mix", density=float(self.gap_density))

    def to_dict(self) -> dict:
        """JSON-able dict (the manifest's `config`)."""
        values = dataclasses.asdict(self)
        values["kinds"] = list(self.kinds)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> BenchsetConfig:
        """Inverse of `to_dict`; ConfigError naming unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown benchset option(s): {', '.join(unknown)}")
        return cls(**{**values, "kinds": tuple(values.get("kinds", KINDS))})


# ---- seeds ---------------------------------------------------------------------------------
def bench_entropy(seed: int, level: str, kind: str) -> list[int]:
    """Entropy words of every draw of (level, kind): [seed, BENCH_SALT, level id, kind id]."""
    return [int(seed), BENCH_SALT, _LEVEL_ID[level], _KIND_ID[kind]]


def _sequence(entropy: list[int], role: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy, spawn_key=(role, index))


def synth_seed(entropy: list[int], index: int) -> int:
    """Synth seed of source mask `index`: SYNTH_SEED_OFFSET + a uint32, so >= 2**32 (training
    synth seeds are all below 2**32; see the module docstring)."""
    word = _sequence(entropy, _ROLE_SYNTH, index).generate_state(1, np.uint32)[0]
    return SYNTH_SEED_OFFSET + int(word)


# ---- building ------------------------------------------------------------------------------
@dataclass
class _KindStats:
    samples: int = 0
    sources: int = 0
    foreground: list[float] = field(default_factory=list)
    removed: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "samples": self.samples,
            "source_masks": self.sources,
            "foreground_mean": round(float(np.mean(self.foreground)), 6) if self.foreground else None,
            "removed_fraction_mean": round(float(np.mean(self.removed)), 6) if self.removed else None,
        }


def _grid_cells(truth: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (ys, xs) of the cells of the fixed size-px grid, and their foreground."""
    ny, nx = truth.shape[0] // size, truth.shape[1] // size
    fg = truth[: ny * size, : nx * size].reshape(ny, size, nx, size).mean(axis=(1, 3)).ravel()
    cells = np.arange(ny * nx)
    return np.stack([cells // nx * size, cells % nx * size], axis=1), fg


def _patch_samples(config: BenchsetConfig, kind: str, stats: _KindStats):
    """Yield (name, layers, attrs) of the kind's patches, in order (a pure function of config)."""
    entropy, size, gaps = bench_entropy(config.seed, "patch", kind), config.patch_size, config.gap_config()
    src_shape = (config.patch_source_size, config.patch_source_size)
    k = j = 0
    while k < config.patches:
        if j >= _MAX_SOURCES_PER_PATCH * max(1, config.patches):
            raise ConfigError(f"benchset: {kind} source masks of {src_shape[0]} px yield too few "
                              f"patches with >= {config.min_foreground:.1%} foreground; lower "
                              "min_foreground or raise patch_source_size")
        seed = synth_seed(entropy, j)
        source = synth_array(kind, src_shape, seed)
        corners, fg = _grid_cells(source, size)
        rng = np.random.default_rng(_sequence(entropy, _ROLE_CELLS, j))
        eligible = np.flatnonzero(fg >= config.min_foreground)
        taken = 0
        for cell in rng.permutation(eligible):
            if taken == config.patches_per_source or k == config.patches:
                break
            y, x = (int(v) for v in corners[cell])
            truth = source[y : y + size, x : x + size]
            inp, removed = corrupt(truth, gaps, np.random.default_rng(_sequence(entropy, _ROLE_GAPS, k)))
            if not removed.any():  # no gap hit the structure: nothing to repair, skip the cell
                continue
            attrs = {"kind": kind, "level": "patch", "index": k, "source_index": j,
                     "source_seed": seed, "source_size": config.patch_source_size,
                     "y": y, "x": x, "foreground": float(fg[cell]),
                     "removed_fraction": float(removed.sum() / truth.sum())}
            yield f"{kind}-{k:04d}", {"mask": inp, "gaps": removed, "truth": truth}, attrs
            stats.foreground.append(attrs["foreground"])
            stats.removed.append(attrs["removed_fraction"])
            taken += 1
            k += 1
        j += 1
    stats.sources = j


def _whole_samples(config: BenchsetConfig, kind: str, stats: _KindStats):
    """Yield (name, layers, attrs) of the kind's whole masks (lazy Dask layers)."""
    entropy, gaps = bench_entropy(config.seed, "whole", kind), config.gap_config()
    shape = (config.whole_size, config.whole_size)
    for j in range(config.whole_count):
        seed = synth_seed(entropy, j)
        truth = synth_mask(kind, shape, seed, chunks=config.chunks)
        gap_entropy = [*entropy, _ROLE_GAPS, j]
        inp, removed = corrupt_dask(truth, gaps, gap_entropy)
        attrs = {"kind": kind, "level": "whole", "index": j, "source_seed": seed,
                 "gap_entropy": gap_entropy}
        yield f"{kind}-{j:04d}", {"mask": inp, "gaps": removed, "truth": truth}, attrs
    stats.sources = config.whole_count


def _create_store(path: Where, config: BenchsetConfig, level: str, kind: str) -> MaskStore:
    """Create (or reopen, when resuming) the store of (level, kind), marked as a benchmark."""
    store = MaskStore.create(path, exist_ok=True)
    if MARKER_ATTR not in store.root_attrs:
        store.set_root_attr(MARKER_ATTR, {"level": level, "kind": kind, "seed": config.seed,
                                          "version": VERSION})
    return store


def _build_store(path: Where, config: BenchsetConfig, level: str, kind: str,
                 log: Callable[[str], None]) -> _KindStats:
    stats = _KindStats()
    start = time.perf_counter()
    store = _create_store(path, config, level, kind)
    have = set(store.names())
    common = {"gap_config": dataclasses.asdict(config.gap_config()), "benchset_seed": config.seed,
              "benchset_version": VERSION, "generator": "distpaint.data.benchset"}
    samples = _patch_samples if level == "patch" else _whole_samples
    for name, layers, attrs in samples(config, kind, stats):
        if name not in have:  # resume: samples are written atomically, so existing ones are whole
            chunks = config.patch_size if level == "patch" else config.chunks
            store.write(name, layers, {**attrs, **common}, chunks=chunks)
        if level == "whole":
            truth_px = int(store.dask(name, "truth").sum().compute())
            removed_px = int(store.dask(name, "gaps").sum().compute())
            stats.foreground.append(truth_px / config.whole_size**2)
            stats.removed.append(removed_px / truth_px if truth_px else 0.0)
        stats.samples += 1
    stats.seconds = time.perf_counter() - start
    log(f"{level}/{kind}: {stats.samples} sample(s) in {stats.seconds:.1f} s")
    return stats


def _write_json(path: Where, doc: dict) -> None:
    location.write_bytes(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def _relative_stores(config: BenchsetConfig) -> dict[str, dict[str, str]]:
    counts = {"patch": config.patches, "whole": config.whole_count}
    return {level: {kind: f"{level}/{kind}.zarr" for kind in config.kinds}
            for level in LEVELS if counts[level]}


def make_benchset(out: str | os.PathLike, config: BenchsetConfig | None = None,
                  log: Callable[[str], None] = print) -> Benchset:
    """Build the benchmark sets of `config` into the folder or URL `out` (see the module
    docstring).

    An existing complete set with the same config is kept as it is (and returned); one with
    another config, or any other non-empty folder, is an InputError. An interrupted build
    resumes from `.OUT.partial` (in OUT itself on object storage)."""
    config = config or BenchsetConfig()
    remote = location.is_url(out)
    out = os.fspath(out).rstrip("/") if remote else pathlib.Path(out)
    if _has_manifest(out):
        bench = open_benchset(out)
        if bench.config != config:
            raise InputError(f"{out}: holds a benchmark set built with other options "
                             f"({_difference(bench.config, config)}); choose another --out")
        log(f"{out}: already built (same options), kept")
        return bench
    if remote:
        location.exists(out)  # a missing bucket or a refused connection: one line, now
        names = location.list_names(out)
        if names and _BUILDING not in names:
            raise InputError(f"{out}: exists and is not a benchmark set; choose another --out")
        partial: Where = out  # no rename on object storage: built in place, manifest.json last
    else:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InputError(f"{out}: exists and is not a benchmark set; choose another --out")
        partial = out.with_name(f".{out.name}.partial")
    _claim_partial(partial, config)
    start = time.perf_counter()
    summary: dict[str, dict] = {}
    for level, stores in _relative_stores(config).items():
        summary[level] = {}
        for kind, rel in stores.items():
            summary[level][kind] = _build_store(location.child(partial, rel), config, level, kind,
                                                log).summary()
    digests = {level: {kind: location.tree_digest(location.child(partial, rel))
                       for kind, rel in stores.items()}
               for level, stores in _relative_stores(config).items()}
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_dict(),
        "gap_config": dataclasses.asdict(config.gap_config()),
        "synth_config": SynthConfig().to_dict(),
        "seeding": {"salt": BENCH_SALT, "synth_seed_offset": SYNTH_SEED_OFFSET,
                    "entropy": "[seed, salt, level id, kind id] + spawn_key (role, index)",
                    "level_ids": _LEVEL_ID, "kind_ids": _KIND_ID},
        "layers": {"mask": "corrupted input", "gaps": "removed foreground (M)",
                   "truth": "complete mask"},
        "stores": _relative_stores(config),
        "sets": summary,
        "digests": digests,
    }
    _write_json(location.child(partial, "manifest.json"), manifest)
    location.remove_file(location.child(partial, _BUILDING))
    if not remote:
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(partial, out)
    log(f"benchmark sets written to {out} in {time.perf_counter() - start:.1f} s")
    return open_benchset(out)


def _has_manifest(path: Where) -> bool:
    if isinstance(path, str):
        return location.is_file(location.join(path, "manifest.json"))
    return (path / "manifest.json").is_file()


def _claim_partial(partial: Where, config: BenchsetConfig) -> None:
    """Create (or resume) the hidden build folder; a leftover of other options is restarted."""
    marker = location.child(partial, _BUILDING)
    try:
        text = location.read_bytes(marker)
    except FileNotFoundError:
        text = None
    if text is not None or (not isinstance(partial, str) and partial.exists()):
        try:
            same = BenchsetConfig.from_dict(json.loads(text or b"")) == config
        except (ValueError, ConfigError):
            raise InputError(f"{partial}: an unfinished build folder that distpaint cannot read; "
                             "remove it") from None
        if same:
            return
        if isinstance(partial, str):
            location.remove_tree(partial)
        else:
            shutil.rmtree(partial)
    if not isinstance(partial, str):
        partial.mkdir(parents=True)
    _write_json(marker, config.to_dict())


def _difference(a: BenchsetConfig, b: BenchsetConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k}: {da[k]} there, {db[k]} asked" for k in da if da[k] != db[k])


# ---- reading -------------------------------------------------------------------------------
@dataclass
class Benchset:
    """A built benchmark set (read-only)."""

    path: Where
    """The folder (a URL on object storage)."""
    manifest: dict
    """The parsed manifest.json."""

    @property
    def config(self) -> BenchsetConfig:
        """The options it was built with."""
        return BenchsetConfig.from_dict(self.manifest["config"])

    @property
    def digest(self) -> str:
        """One SHA-256 over the stores' digests: names the exact data results were taken on."""
        return hashlib.sha256(json.dumps(self.manifest["digests"], sort_keys=True).encode()).hexdigest()

    def levels(self) -> list[str]:
        """The levels present ('patch', 'whole')."""
        return [level for level in LEVELS if level in self.manifest["stores"]]

    def kinds(self, level: str) -> list[str]:
        """Kinds of `level`, in the order of `KINDS`."""
        return [k for k in KINDS if k in self.manifest["stores"].get(level, {})]

    def store(self, level: str, kind: str) -> MaskStore:
        """The mask store of (level, kind), read-only; InputError if absent."""
        rel = self.manifest["stores"].get(level, {}).get(kind)
        if rel is None:
            raise InputError(f"{self.path}: no {level}-level set of kind {kind!r}")
        return MaskStore.open(location.child(self.path, rel))


def open_benchset(path: str | os.PathLike) -> Benchset:
    """Open a folder (or URL) written by `make_benchset`; InputError if it is not one."""
    path = os.fspath(path).rstrip("/") if location.is_url(path) else pathlib.Path(path)
    try:
        manifest = json.loads(location.read_bytes(location.child(path, "manifest.json")))
    except FileNotFoundError:
        if isinstance(path, str):
            location.exists(path)  # a missing bucket says so
        raise InputError(f"{path}: not a benchmark set (no manifest.json); build one with "
                         "`distpaint benchset make`") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}/manifest.json: unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path}/manifest.json: not a distpaint benchmark manifest")
    if manifest.get("version") != VERSION:
        raise InputError(f"{path}: benchmark set version {manifest.get('version')!r}, this "
                         f"distpaint reads version {VERSION}; rebuild it")
    return Benchset(path, manifest)


def verify_benchset(path: str | os.PathLike) -> list[str]:
    """Recompute every store's digest; returns the stores ('level/kind') that differ from the
    manifest (empty: the files are exactly those that were built)."""
    bench = open_benchset(path)
    bad = []
    for level, stores in bench.manifest["stores"].items():
        for kind, rel in stores.items():
            expected = bench.manifest["digests"][level][kind]
            where = location.child(bench.path, rel)
            found = (location.is_file(location.join(where, "zarr.json")) if isinstance(where, str)
                     else where.is_dir())
            if not found or location.tree_digest(where) != expected:
                bad.append(f"{level}/{kind}")
    return bad


@contextlib.contextmanager
def diagnostic_store(data: str | os.PathLike | None, kind: str, *,
                     smoke_test: bool = False) -> Iterator[tuple[pathlib.Path, MaskStore]]:
    """(folder, whole-mask store of `kind`) for the diagnostic scripts of bench/: the benchmark
    set at `data`, or with `smoke_test` a tiny one (one 512-px mask of `kind`) built in a
    temporary folder that is removed on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        if smoke_test:
            data = pathlib.Path(tmp) / "benchset"
            make_benchset(data, BenchsetConfig(seed=0, kinds=(kind,), patches=2, whole_count=1,
                                               whole_size=512), log=lambda _: None)
        if data is None:
            raise ConfigError("a benchmark set folder is required (or the smoke test)")
        yield pathlib.Path(data), open_benchset(data).store("whole", kind)


def diagnostic_args(description: str, argv: list[str] | None, *, kind: str, models: Sequence[str],
                    extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The command line of the diagnostic scripts of bench/: --data, --kind (default `kind`),
    --models (default `models`), --limit, --smoke-test, plus what `extra` adds; --data is
    required unless --smoke-test."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=pathlib.Path, help="benchmark set folder (distpaint benchset make)")
    parser.add_argument("--kind", default=kind)
    parser.add_argument("--models", nargs="*", default=list(models))
    parser.add_argument("--limit", type=int, default=None, help="whole masks per kind")
    parser.add_argument("--smoke-test", action="store_true")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.data is None and not args.smoke_test:
        parser.error("--data is required (or --smoke-test)")
    return args
