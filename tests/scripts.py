"""Load a script of bench/ or research/ (not a package) as a module, so tests can call its
functions: `load_script("research/cldice_parts.py")`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str | Path) -> ModuleType:
    """The module of the script at `path` (relative to the repository root, or absolute)."""
    path = ROOT / path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
