"""research/false_fill_parts.py: a hand case for its split of the false fill, agreement with the
false-fill metric, and its --smoke-test run.

Run: .venv/bin/python -m pytest tests/test_research_false_fill.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distpaint.metrics import false_fill
from scripts import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "research" / "false_fill_parts.py"
bench = load_script(SCRIPT)


def _case():
    given = np.zeros((30, 60), bool)
    given[10, 2:20] = True   # line A
    given[10, 26:50] = True  # line B, after a gap at columns 20..25
    gaps = np.zeros_like(given)
    gaps[9:12, 20:26] = True
    repaired = given.copy()
    repaired[10, 20:26] = True   # the bridge, inside the gap
    repaired[11, 30:40] = True   # a layer beside line B: 10 false px at distance 1
    repaired[20:22, 5:8] = True  # an island far from everything: 6 false px at distance >= 4
    return repaired, given, gaps


def test_parts_of_a_hand_case():
    repaired, given, gaps = _case()
    counts = bench.parts(repaired, given, gaps, tolerance=2)
    assert counts["added"] == 6 + 10 + 6 and counts["false"] == 16
    np.testing.assert_array_equal(counts["distance"], [10, 0, 0, 6])
    np.testing.assert_array_equal(counts["group"], [6, 10, 0])  # island, one component, bridge
    touched = bench.touched_components(repaired & ~given, given)
    assert touched[10, 22] == 2 and touched[11, 35] == 1 and touched[20, 6] == 0 and touched[0, 0] == -1


def test_false_share_equals_the_metric():
    repaired, given, gaps = _case()
    counts = bench.parts(repaired, given, gaps, tolerance=2)
    assert counts["false"] / counts["added"] == pytest.approx(false_fill(repaired, given, gaps, tolerance=2))


def test_smoke_run_prints_a_row_per_model():
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke-test", "--models", "general-synthetic:keep=all",
                          "islands=general-synthetic:drop_islands=1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith(("general", "islands"))]
    assert len(rows) == 2
    for row in rows:
        shares = [float(x) for x in row.split("|")[1].split("/")] + [float(x) for x in row.split("|")[2].split("/")]
        assert all(0 <= s <= 1 for s in shares)
        assert sum(shares[:4]) == pytest.approx(1, abs=0.02) and sum(shares[4:]) == pytest.approx(1, abs=0.02)
