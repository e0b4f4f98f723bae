"""Naming the broken metadata file of a Zarr hierarchy: zarr's own JSON errors say what is
wrong but not in which of a store's many `zarr.json` files, so user errors about a broken store
are built here. Used by the mask store (`store.py`), single-file reads (`files.py`) and input
expansion (`inputs.py`); it imports nothing of distpaint but the errors, so each can use it.

    error = broken_zarr_metadata("masks.zarr")   # InputError naming the file, or None
    if error is not None:
        raise error
"""

from __future__ import annotations

import json
import os
import pathlib

from distpaint.errors import InputError

__all__ = ["broken_zarr_metadata"]

_ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def broken_zarr_metadata(path: str | os.PathLike, depth: int = 3) -> InputError | None:
    """An InputError naming the first metadata file (zarr.json, .zarray, ...) of the Zarr
    hierarchy at `path` (down to `depth` levels: store, sample, layer) that is not a JSON
    object, or None if they all are. For errors: zarr's own message does not say which
    file is broken. Hidden groups (a killed write's `.tmp-*`) are looked at too: zarr lists
    them, and fails on them, like any other."""
    root = pathlib.Path(path)
    for level in range(depth):
        for name in _ZARR_METADATA:
            for meta in sorted(root.glob("/".join(["*"] * level + [name]))):
                try:
                    doc = json.loads(meta.read_bytes())
                except OSError as exc:
                    return InputError(f"{meta}: cannot read Zarr metadata: {exc.strerror or exc}")
                except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    return InputError(f"{meta}: broken Zarr metadata (not valid JSON: {detail})")
                if not isinstance(doc, dict):
                    return InputError(f"{meta}: broken Zarr metadata (not a JSON object)")
    return None
