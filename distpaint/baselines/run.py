"""Apply a baseline to every sample of a mask store, writing a store that can be evaluated.

Each output sample has the source's name, the repaired mask as layer `mask`, and copies of
the source's `gaps` and `truth` layers when present, so `distpaint evaluate --pred-store OUT
--truth-store SRC` works directly, and OUT is self-describing. SRC and OUT may be fsspec URLs
(`s3://bucket/x.zarr`): the samples are written there as `MaskStore.write` publishes them.
Repairs are lazy Dask graphs written block by block, so masks of any size fit in memory.
This is what `distpaint baseline` does for one store written to a `.zarr`; files, folders,
globs and other outputs go through `distpaint.baselines.predictor.repair_files` (infer's job).

Usage::

    from distpaint.baselines.run import repair_store
    repair_store("corrupted.zarr", "closing.zarr", "closing", ClosingConfig(radius=3))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import dask.array as da

from distpaint.baselines.closing import ClosingConfig, closing_dask
from distpaint.baselines.linking import LinkingConfig, linking_dask
from distpaint.data import location
from distpaint.data.files import check_writable
from distpaint.data.store import MaskStore, writing_store
from distpaint.errors import ConfigError, InputError

__all__ = ["BASELINES", "repair_store"]

BASELINES: dict[str, tuple[type, Callable[[da.Array, Any], da.Array]]] = {
    "closing": (ClosingConfig, closing_dask),
    "linking": (LinkingConfig, linking_dask),
}
"""{name: (config class, lazy repair function)}."""


def repair_store(src: str | os.PathLike, out: str | os.PathLike, method: str, config: Any,
                 names: Sequence[str] | None = None, *, overwrite: bool = False,
                 progress: Callable[[str], None] | None = None) -> list[str]:
    """Repair the `mask` layer of each sample of store `src` with baseline `method` into store
    `out` (created if missing; must differ from `src`). Returns the names written."""
    if method not in BASELINES:
        raise ConfigError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")
    config_cls, repair = BASELINES[method]
    if not isinstance(config, config_cls):
        raise ConfigError(f"baseline {method!r} needs a {config_cls.__name__}")
    source = MaskStore.open(src)
    if location.same_or_nested(src, out):
        raise InputError(f"{out}: the output store must differ from the source store (and not "
                         "hold it or lie inside it)")
    check_writable(out, "mask store")
    names = list(names) if names else source.names()
    if not names:
        raise InputError(f"{source.path}: the store holds no samples")
    for name in names:  # opening checks the shard records: a lost shard fails before writing
        for layer in source.layers(name):
            source.array(name, layer)
    # a store this call created is removed if no sample could be written (a corrupt shard
    # found while reading): a failed run leaves nothing behind
    with writing_store(out) as target:
        _repair_samples(source, target, names, method, config, repair, overwrite, progress)
    return names


def _repair_samples(source: MaskStore, target: MaskStore, names: list[str], method: str,
                    config: Any, repair: Callable[[da.Array, Any], da.Array], overwrite: bool,
                    progress: Callable[[str], None] | None) -> None:
    for name in names:
        present = source.layers(name)  # once: on object storage every call is a listing
        mask = source.dask(name, "mask")
        layers = {"mask": repair(mask, config)}
        layers.update({k: source.dask(name, k) for k in ("gaps", "truth") if k in present})
        attrs = {**source.attrs(name), "baseline": method, "baseline_config": asdict(config),
                 "baseline_source": f"{source.path}::{name}"}
        try:
            target.write(name, layers, attrs, chunks=int(max(mask.chunksize)),
                         overwrite=overwrite)
        except OSError as exc:  # read-only store, disk full: the user's to fix, not a bug
            raise InputError(f"{target.path}/{name}: cannot write the sample: "
                             f"{exc.strerror or exc}") from None
        if progress is not None:
            progress(name)
