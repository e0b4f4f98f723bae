"""research/harm_rate.py: the calibration summary of the self-check (expected against measured
gain per candidate floor) on hand-made rows, and the decision-rule parser.

Run: .venv/bin/python -m pytest tests/test_research_harm_rate.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

from scripts import ROOT, load_script


@pytest.fixture(scope="module")
def rate():
    with pytest.MonkeyPatch.context() as patch:  # the script imports research/piece_harm.py
        patch.syspath_prepend(str(ROOT / "research"))
        yield load_script("research/harm_rate.py")


def _row(mask: str, **floors: tuple[float, float, float]) -> dict:
    """A calibration row: floor name -> (expected, spread, measured)."""
    return {"mask": mask, "floors": {name[1:].replace("_", "."): {"expected": e, "spread": s, "unexplained": 0.0,
                                                                "measured": m}
                                     for name, (e, s, m) in floors.items()}}


def test_calibration_summary_counts_z_scores_and_harm_of_the_floors_taken(rate):
    rows = [_row("a#1", f0_55=(0.004, 0.001, 0.006), f0_65=(0.003, 0.001, 0.001)),
            _row("a#2", f0_55=(0.004, 0.002, 0.000), f0_65=(0.003, 0.001, -0.001)),
            _row("b#1", f0_55=(0.001, 0.001, -0.002), f0_65=(0.0, 0.0, 0.0))]  # 0.65 keeps nothing
    summary = {row["floor"]: row for row in rate.calibration_summary(rows)}
    assert set(summary) == {0.55, 0.65}
    at_55, at_65 = summary[0.55], summary[0.65]
    assert at_55["n"] == 3 and at_65["n"] == 2          # the empty draw is left out
    z = np.array([2.0, -2.0, -3.0])                      # (measured - expected) / spread
    assert np.isclose(at_55["z_mean"], z.mean()) and np.isclose(at_55["z_std"], z.std())
    assert np.isclose(at_55["bias"], np.mean([0.002, -0.004, -0.003]))
    # expected above MIN_GAIN (0.002): a#1 and a#2; of them a#2 measured 0, not a fall
    assert at_55["taken"] == 2 and at_55["harmed"] == 0
    assert at_65["taken"] == 2 and at_65["harmed"] == 1  # a#2 fell at 0.65
    assert "0.55" in str(rate.calibration_table(rows).columns[0]._cells)


@pytest.mark.parametrize(("text", "rule"), [("0:0.002", (0.0, 0.002)), ("1", (1.0, 0.0)), ("2:0", (2.0, 0.0))])
def test_rules_parse_as_z_and_min_gain(rate, text, rule):
    assert rate.parse_rule(text) == rule
