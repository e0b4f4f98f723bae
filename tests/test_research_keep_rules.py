"""research/keep_rules.py: its stricter keep rules on hand-made cases (a cut bridged by a thick
piece; a natural dead end joined to the side of another line).

Run: .venv/bin/python -m pytest tests/test_research_keep_rules.py -q
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from scripts import load_script

rules = load_script("research/keep_rules.py")
EIGHT = np.ones((3, 3), bool)


def _cut_line():
    """A 3-px line cut at columns 30..39 and a model output that bridges it 9 px thick."""
    given = np.zeros((40, 80), bool)
    given[19:22, 5:75] = True
    given[:, 30:40] = False
    output = given.copy()
    output[16:25, 30:40] = True
    return given, output


def _dead_end_beside_a_line():
    """A vertical line ending 6 px above a horizontal one, the gap between them painted."""
    given = np.zeros((60, 60), bool)
    given[40:42, 5:55] = True        # the horizontal line
    given[5:34, 29:31] = True        # the vertical one, a natural dead end at row 33
    output = given.copy()
    output[34:40, 29:31] = True      # a false bridge from the dead end to the line's side
    return given, output


def _pieces(mask):
    return ndi.label(mask, EIGHT)[1]


def test_every_rule_keeps_a_bridge_across_a_cut_and_thin_narrows_it():
    given, output = _cut_line()
    for rule in rules.RULES:
        repaired = rules.apply_rule(rule, output, given)
        assert _pieces(repaired) == 1, rule  # the cut is closed
        assert (repaired >= given).all(), rule
    thick = rules.apply_rule("bridges", output, given)
    thin = rules.apply_rule("thin", output, given)
    assert thin.sum() < thick.sum()
    assert thin[:, 30:40].sum(axis=0).max() <= 3  # drawn at the line's width


def test_two_ends_drops_a_bridge_from_one_natural_dead_end_to_a_line_side():
    given, output = _dead_end_beside_a_line()
    assert _pieces(rules.apply_rule("bridges", output, given)) == 1  # the shipped rule joins them
    assert (rules.apply_rule("two-ends", output, given) == given).all()


def test_cut_holes_fills_a_cut_inside_a_wide_line_not_the_inside_of_a_thin_loop():
    given = np.zeros((40, 70), bool)
    given[5:7, 5:25] = given[15:17, 5:25] = True          # a loop of 2-px lines ...
    given[5:17, 5:7] = given[5:17, 23:25] = True          # ... around a 16 x 8 island
    given[22:36, 30:68] = True                            # a 14-px road ...
    given[27:31, 40:44] = False                           # ... with a 4 x 4 cut inside it
    output = given.copy()
    output[7:15, 7:23] = True                             # the island filled
    output[27:31, 40:44] = True                           # the cut filled
    assert rules.apply_rule("bridges", output, given)[7:15, 7:23].all()  # the shipped rule fills both
    kept = rules.apply_rule("cut-holes", output, given)
    assert not kept[7:15, 7:23].any()
    assert kept[27:31, 40:44].all()

