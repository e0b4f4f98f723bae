"""research/piece_harm.py: the per-piece split of a repair's clDice counts on hand-made cases (a
bridge on the true line, one beside it, a false bridge away from the gaps) and the probability
floor.

Run: .venv/bin/python -m pytest tests/test_research_piece_harm.py -q
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize

from distpaint.infer.keep import keep_added
from scripts import load_script

harm = load_script("research/piece_harm.py")


def _case():
    """A 1-px line cut at columns 20..29 (the gap), a second line with a natural break at
    columns 60..64; the output bridges the cut 4 rows off the true line and the break."""
    truth = np.zeros((30, 90), bool)
    truth[10, 5:50] = True
    truth[20, 40:85] = True
    truth[20, 60:65] = False                       # a break in the truth itself
    gaps = np.zeros_like(truth)
    gaps[10, 20:30] = True
    given = truth & ~gaps
    out = given.copy()
    out[10:15, 19] = out[10:15, 30] = out[14, 19:31] = True   # a detour 4 rows below the line
    out[20, 60:65] = True                          # the break bridged
    probs = np.where(out & ~given, 0.45, 0.0).astype(np.float32)
    probs[20, 60:65] = 0.9
    return given, truth, gaps, out, probs


def test_pieces_are_split_by_where_they_lie_and_what_they_cost():
    given, truth, gaps, out, probs = _case()
    rows = harm.piece_table(out, given, truth, skeletonize(truth), gaps, probs)
    assert len(rows) == 2
    detour = next(r for r in rows if r["in_gap"])
    false_bridge = next(r for r in rows if not r["in_gap"])
    assert detour["covered"] == 0 and detour["off_truth"] > 0   # beside the true line: cost only
    assert false_bridge["off_truth"] == 5 and false_bridge["covered"] == 0
    assert np.isclose(false_bridge["mean_p"], 0.9) and np.isclose(detour["mean_p"], 0.45)


def test_floor_drops_unsure_pieces_and_clDice_sees_the_difference():
    given, truth, gaps, out, probs = _case()
    truth_skeleton = skeletonize(truth)
    kept = keep_added(out, given, "all", probs=probs, min_confidence=0.5)  # as the script floors
    assert not kept[14, 19:31].any() and kept[20, 60:65].all()
    assert (kept >= given).all()
    before = harm.cldice(given, truth, truth_skeleton)
    assert harm.cldice(out, truth, truth_skeleton) < before          # both pieces cost clDice
    assert harm.cldice(kept, truth, truth_skeleton) > harm.cldice(out, truth, truth_skeleton)
    perfect = harm.cldice(truth, truth, truth_skeleton)
    assert np.isclose(perfect, 1.0)
