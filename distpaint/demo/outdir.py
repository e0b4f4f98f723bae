"""The demo's output folder: refuse to clobber what the demo did not write; re-runs replace it.

A demo folder carries a marker file `MARKER`, written first. Any other non-empty folder (or a
file) at OUT is refused with a ConfigError. A re-run moves the previous demo folder aside
(`.<name>.old-<hex>` next to OUT) and builds the new one at OUT itself, so the paths recorded
in the stores' provenance are the final ones; if the run fails or is interrupted, the new
folder is removed and the previous one put back; on success the previous one is deleted.

    with claim(pathlib.Path("demo_out")) as out:   # out: empty but for the marker
        ...write into out...
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import uuid
from collections.abc import Iterator

from distpaint.errors import ConfigError, InputError

__all__ = ["MARKER", "check_output_dir", "claim", "is_demo_dir"]

MARKER = ".distpaint-demo"
"""Name of the marker file a demo folder holds (JSON: format and version)."""
_MARKER_CONTENT = {"format": "distpaint-demo", "version": 1}


def is_demo_dir(path: pathlib.Path) -> bool:
    """Whether `path` is a folder holding a demo marker."""
    marker = path / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("format") == _MARKER_CONTENT["format"]
    except (OSError, ValueError, AttributeError):
        return False


def check_output_dir(path: pathlib.Path) -> None:
    """ConfigError unless `path` is missing, an empty folder, or an earlier demo's folder."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise ConfigError(f"--out {path}: exists and is not a folder; choose another --out")
    if any(path.iterdir()) and not is_demo_dir(path):
        raise ConfigError(f"--out {path}: a non-empty folder that the demo did not write (no "
                          f"{MARKER} marker); refusing to overwrite it, choose another --out")


@contextlib.contextmanager
def claim(out: pathlib.Path) -> Iterator[pathlib.Path]:
    """Make `out` an empty demo folder (holding only the marker) for the `with` block; see the
    module docstring for what happens to a previous demo folder on success and on failure."""
    out = pathlib.Path(out)
    check_output_dir(out)
    parent = out.absolute().parent
    old = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if out.exists() and any(out.iterdir()):  # an earlier demo (checked above)
            old = parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(out, old)
        out.mkdir(exist_ok=True)
        (out / MARKER).write_text(json.dumps(_MARKER_CONTENT) + "\n")
    except OSError as exc:
        _restore(out, old)
        raise InputError(f"--out {out}: cannot create the output folder: {exc}") from None
    try:
        yield out
    except BaseException:
        _restore(out, old)
        raise
    # Also sweep leftovers of runs killed outright (no chance to restore), demo folders only.
    for stale in [old, *parent.glob(f".{out.name}.old-*")]:
        if stale is not None and stale.exists() and is_demo_dir(stale):
            shutil.rmtree(stale, ignore_errors=True)


def _restore(out: pathlib.Path, old: pathlib.Path | None) -> None:
    """Remove the new, incomplete `out` and put the previous demo folder back."""
    if out.exists() and is_demo_dir(out):
        shutil.rmtree(out, ignore_errors=True)
    if old is not None and old.exists() and not out.exists():
        os.rename(old, out)
