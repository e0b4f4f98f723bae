"""research/discriminators.py at a tiny budget: each similarity head is the one it names (the
paper's dot product is not the registry default), every score is a probability, and the
(y, y) positives of `--positive self` run.

Run: .venv/bin/python -m pytest tests/test_research_discriminators.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    assert res["paper_dot"]["auc_above_chance_vs_paper"] in (1.0, None)


def test_self_positives_with_l1_head():
    out = _bench("--positive", "self", "--variants", "l1_avg")
    assert out["positive"] == "self"
    r = out["results"]["l1_avg"]
    assert 0 < r["sim_pos"] < 1 and 0 <= r["auc"] <= 1
    assert r["auc_above_chance_vs_paper"] is None  # no paper_dot run to compare with
