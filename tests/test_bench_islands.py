"""bench/islands.py --smoke-test: both settings run on the same mask side by side, the option
only ever removes added pixels, and the figures it prints are consistent.

Run: .venv/bin/python -m pytest tests/test_bench_islands.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "islands.py"


def test_smoke_run_prints_a_ratio_and_removes_only():
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke-test", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["seconds_off"] > 0 and res["seconds_on"] > 0
    # the seconds are printed to 1 ms, the ratio from the unrounded ones: equal within rounding
    assert res["ratio_on_off"] == pytest.approx(res["seconds_on"] / res["seconds_off"], rel=0.02)
    assert 0 < res["added_on"] <= res["added_off"]
    assert 0 <= res["removed_share"] < 1
