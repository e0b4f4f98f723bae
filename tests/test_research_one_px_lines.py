"""research/one_px_lines.py: the 1-px stand-in of a thin mask (its truth's skeleton, cut as the
judging protocol cuts) on a hand-made mask, and which masks stand in.

Run: .venv/bin/python -m pytest tests/test_research_one_px_lines.py -q
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize

from scripts import load_script

one_px = load_script("research/one_px_lines.py")


def test_one_px_case_is_the_skeleton_cut():
    truth = np.zeros((200, 200), bool)
    truth[40:43, 10:190] = truth[10:190, 98:101] = truth[150:153, 20:180] = True   # 3-px lines
    line, cut, gaps = one_px.one_px_case(truth, seed=0)
    np.testing.assert_array_equal(skeletonize(line), line)          # 1 px wide: its own skeleton
    assert (line & ~truth).sum() == 0 and line.sum() > 400
    np.testing.assert_array_equal(gaps, line & ~cut)
    assert gaps.any() and not (cut & ~line).any()                   # cut: pixels removed only
    again = one_px.one_px_case(truth, seed=0)
    assert all((a == b).all() for a, b in zip(again, (line, cut, gaps)))  # seeded


def test_thin_masks_are_the_thin_renders():
    class Store:
        def names(self):
            return ["rivers-a-w1.5px-1km-c00", "rivers-a-w3px-1km-c00", "kanji-val-thin-000-c00",
                    "kanji-val-thick-000-c00"]

    assert one_px.thin_masks(Store(), "rivers") == ["rivers-a-w1.5px-1km-c00"]
    assert one_px.thin_masks(Store(), "drawings") == ["kanji-val-thin-000-c00"]
