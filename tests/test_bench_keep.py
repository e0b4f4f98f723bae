"""bench/keep.py --smoke-test: every keep policy runs on the same mask side by side, each
stricter policy keeps a subset of the added pixels, and the figures it prints are consistent.

Run: .venv/bin/python -m pytest tests/test_bench_keep.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "keep.py"


def test_smoke_run_prints_a_ratio_and_removes_only():
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke-test", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    seconds, added = res["seconds"], res["added"]
    assert all(seconds[k] > 0 for k in ("all", "attached", "bridges", "ends"))
    # the seconds are printed to 1 ms, the ratio from the unrounded ones: equal within rounding
    assert res["ratio_to_all"]["bridges"] == pytest.approx(seconds["bridges"] / seconds["all"], rel=0.02)
    assert 0 <= added["ends"] <= added["bridges"] and 0 < added["bridges"] <= added["attached"] <= added["all"]
    assert 0 <= added["ends+floor"] <= added["ends"] and seconds["ends+floor"] > 0
    assert 0 <= added["ends+auto"] <= added["ends"] and seconds["ends+auto"] > 0
    # NO_REPAIR keeps nothing (that no tile reaches the model: tests/test_self_check.py)
    assert added["ends+none"] == 0 and seconds["ends+none"] > 0
    assert res["kept_share"]["all"] == 1
