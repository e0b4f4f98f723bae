"""bench/auto_tile.py --smoke-test: the fixed and the automatic tile run side by side on the same
mask, give identical outputs, and the printed figures are consistent.

Run: .venv/bin/python -m pytest tests/test_bench_auto_tile.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "auto_tile.py"


def test_smoke_run_compares_fixed_and_auto_tiles():
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke-test", "--threads", "1",
                          "--models", "general-synthetic"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["model"] == "general-synthetic" and row["halo"] == 64
    assert (row["tile_fixed"], row["tile_auto"]) == (256, 1024)
    assert row["tiles_fixed"] == 9 and row["tiles_auto"] == 1
    assert row["identical"] is True
    ratio = min(row["seconds_fixed"]) / min(row["seconds_auto"])
    assert row["ratio_auto_fixed"] == pytest.approx(ratio, rel=0.05)
