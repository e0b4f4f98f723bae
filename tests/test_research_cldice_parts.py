"""research/cldice_parts.py: a hand case for its segment groups, oracle and counts, agreement with
the clDice metric, and its --smoke-test run.

Run: .venv/bin/python -m pytest tests/test_research_cldice_parts.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distpaint.metrics.topology import cldice
from scripts import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "research" / "cldice_parts.py"
bench = load_script(SCRIPT)


def _case():
    truth = np.zeros((40, 80), bool)
    truth[10, 2:70] = True   # a line with a bridge gap (20..29) and an erased stub end (60..69)
    truth[30, 10:20] = True  # a short line erased whole: an island segment
    gaps = np.zeros_like(truth)
    gaps[10, 20:30] = gaps[10, 60:70] = gaps[30, 10:20] = True
    return truth & ~gaps, truth, gaps


def test_groups_and_oracle_of_a_hand_case():
    given, truth, gaps = _case()
    labels, group = bench.segment_groups(given, gaps)
    assert group[labels[10, 25]] == 0 and group[labels[10, 65]] == 1 and group[labels[30, 15]] == 2
    np.testing.assert_array_equal(bench.oracle(given, labels, group), given | (labels == labels[10, 25]))


def test_counts_of_a_hand_case():
    given, truth, gaps = _case()
    labels, group = bench.segment_groups(given, gaps)
    pred = given.copy()
    pred[10, 20:25] = True  # half the bridge
    pred[20, 40:50] = True  # an invented stroke 10 px from the truth
    c = bench.parts(pred, truth, labels, group)
    assert c["outside"][1] > 0 and c["outside"][0] == 0
    missed = c["missed_group"]
    assert missed[0] > 0 and missed[1] > 0 and missed[2] > 0
    assert c["bridge_length"].sum() == (bench.skeletonize(truth) & (labels == labels[10, 25])).sum()
    assert 0 < c["bridge_lost"].sum() < c["bridge_length"].sum()


def test_cldice_equals_the_metric():
    given, truth, gaps = _case()
    pred = given.copy()
    pred[10, 20:30] = True
    pred[20, 40:50] = True
    labels, group = bench.segment_groups(given, gaps)
    assert bench._cl(bench.parts(pred, truth, labels, group))[2] == pytest.approx(cldice(pred, truth).cldice, abs=1e-9)


def test_smoke_run():
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke-test", "--kind", "roads", "--models", "roads"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith(("input", "oracle", "roads"))]
    assert len(rows) == 3
    input_cl, oracle_cl = (float(r.split()[3]) for r in rows[:2])
    assert oracle_cl >= input_cl
