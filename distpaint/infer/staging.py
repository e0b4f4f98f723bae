"""Opening a unit's input and its staging arrays: the same code in the driver and in Ray actors.

A `UnitSpec` is the small, JSON-able description of one unit that travels to the workers
(never its pixels): where the input is, how to binarise it, where the staging Zarr group is and
which tile, shard and chunk sizes it has. Workers open the input and the staging arrays
themselves and read and write them directly.

Staging group `<uid>.zarr`: attrs (the output sample's attributes), arrays `mask` (repaired) and
`added`, bool, chunks and shards from `engine.output_layout` so that every shard holds whole
tiles and is written once, whole. For a store input the group is renamed into the output store
as the finished sample; for a file it is converted to the input's format.

    spec = UnitSpec.from_dict(json.loads(text))
    source = open_source(spec)          # 2-D bool array-like, slices are NumPy
    targets = open_staging(spec)        # {"mask": zarr.Array, "added": zarr.Array}
"""

from __future__ import annotations

import pathlib
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

import zarr
from zarr.storage import LocalStore

from distpaint.data.files import read_raw
from distpaint.data.store import MaskStore, compressors, jsonable
from distpaint.errors import InputError

__all__ = ["UnitSpec", "open_source", "create_staging", "open_staging", "LAYERS"]

LAYERS = ("mask", "added")
"""Arrays of a staging group."""


@dataclass(frozen=True)
class UnitSpec:
    """What a worker needs to compute shards of one unit."""

    uid: str
    """Unit id: a hash of the unit's key and input fingerprint (the staging group's name)."""
    path: str
    """Input file, or the store of a sample (a local path or a URL)."""
    sample: str | None
    """Sample name for a store input."""
    threshold: float | None
    """Input binarisation: foreground = value > threshold; None: value != 0."""
    staging: str
    """Path of the staging Zarr group."""
    shape: tuple[int, int]
    """(H, W) of the mask."""
    chunks: tuple[int, int]
    """Chunk shape of the staging arrays."""
    shards: tuple[int, int]
    """Shard shape of the staging arrays."""
    attrs: dict = field(default_factory=dict, compare=False)
    """Attributes of the staging group (the output sample's attrs)."""
    upsample: int = 1
    """The model's up-sampling factor for this mask (`InferConfig.upsample`)."""
    min_confidence: float | None = None
    """This mask's confidence floor where it was chosen per mask (`--min-confidence auto`;
    `InferConfig.min_confidence`); None: the job's."""

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> UnitSpec:
        """Inverse of `to_dict`."""
        data = dict(data)
        for key in ("shape", "chunks", "shards"):
            data[key] = tuple(int(n) for n in data[key])
        return cls(**data)


def open_source(spec: UnitSpec) -> Any:
    """The unit's input as a 2-D bool array-like (zarr.Array for a sample, lazy Dask array for
    a file); reading it never modifies it."""
    if spec.sample is not None:  # spec.path may be a URL: MaskStore.open takes both
        return MaskStore.open(spec.path).array(spec.sample)
    path = pathlib.Path(spec.path)
    raw, _ = read_raw(path)
    mask = raw != 0 if spec.threshold is None else raw > spec.threshold
    if tuple(mask.shape) != spec.shape:
        raise InputError(f"{path}: changed while being read (shape {mask.shape}, "
                         f"was {spec.shape})")
    return mask


def create_staging(spec: UnitSpec) -> tuple[dict[str, zarr.Array], bool]:
    """Create the staging group and arrays, or open them if a previous attempt of the same job
    created them already (matching shape and layout); returns (arrays, reused)."""
    root = pathlib.Path(spec.staging)
    if (root / "zarr.json").is_file():
        try:
            targets = open_staging(spec, mode="r+")
        except Exception:  # a half-created group of a killed attempt: start it again
            targets = None
        if targets is not None and all(
            tuple(a.shape) == spec.shape and tuple(a.shards or a.chunks) == spec.shards
            for a in targets.values()
        ):
            return targets, True
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(LocalStore(root), mode="w", zarr_format=3,
                            attributes=jsonable(spec.attrs))
    arrays = {
        layer: group.create_array(layer, shape=spec.shape, chunks=spec.chunks,
                                  shards=spec.shards, dtype=bool, fill_value=False,
                                  compressors=compressors())
        for layer in LAYERS
    }
    return arrays, False


def open_staging(spec: UnitSpec, mode: str = "r+") -> dict[str, zarr.Array]:
    """The staging arrays of `spec` (created by the driver with `create_staging`)."""
    store = LocalStore(spec.staging, read_only=mode == "r")
    return {layer: zarr.open_array(store=store, path=layer, mode=mode) for layer in LAYERS}
