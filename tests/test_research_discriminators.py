"""research/discriminators.py at a tiny budget: each similarity head is the one it names (the
paper's dot product is not the registry default), every score is a probability, the AUC counts
pairs with ties half and each head is reported against the paper's, and the (y, y) positives of
`--positive self` run.

Run: .venv/bin/python -m pytest tests/test_research_discriminators.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "research" / "discriminators.py"


def _bench(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), "--steps", "3", "--seeds", "0", "--eval-batches", "2",
                          "--model", "siamese_tiny", "--patch", "32", "--mask-size", "128", "--n-masks", "3",
                          "--json", *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_heads_differ_and_scores_are_probabilities():
    res = _bench("--variants", "paper_dot", "weighted_avg", "l1_avg")["results"]
    for name, r in res.items():
        assert 0 <= r["auc"] <= 1 and 0 < r["sim_pos"] < 1 and 0 < r["sim_neg"] < 1, name
    # same seed and batches: only the head differs, so identical scores would mean the same head
    assert res["paper_dot"]["sim_pos"] != res["weighted_avg"]["sim_pos"]
    above = res["paper_dot"]["auc"] - 0.5
    for name in ("weighted_avg", "l1_avg"):  # each head's distance from chance relative to the paper's
        ratio = res[name]["auc_above_chance_vs_paper"]
        if abs(above) > 1e-3:
            assert ratio == pytest.approx((res[name]["auc"] - 0.5) / above, abs=0.01 + 1e-4 / abs(above)), name
        else:
            assert ratio is None, name


def test_auc_counts_pairs_and_half_ties():
    """The AUC the script reports: P(positive logit > negative logit), ties half."""
    module = load_script(SCRIPT)
    # pairs (2,1) (2,2) (3,1) (3,2): 3 wins and one tie
    assert module.auc(np.array([2.0, 3.0]), np.array([1.0, 2.0])) == 0.875
    assert module.auc(np.array([0.0]), np.array([1.0, 2.0])) == 0.0
    assert module.auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5


def test_self_positives_with_l1_head():
    out = _bench("--positive", "self", "--variants", "l1_avg")
    assert out["positive"] == "self"
    r = out["results"]["l1_avg"]
    assert 0 < r["sim_pos"] < 1 and 0 <= r["auc"] <= 1
    assert r["auc_above_chance_vs_paper"] is None  # no paper_dot run to compare with
