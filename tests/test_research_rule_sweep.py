"""research/rule_sweep.py: replaying a self-check rule on calibration rows the test makes.

Run: .venv/bin/python -m pytest tests/test_research_rule_sweep.py -q
"""

from __future__ import annotations

import json

from distpaint.infer.self_check import NO_REPAIR
from scripts import load_script


def _row(mask: str, **floors: tuple[float, float, float]) -> dict:
    """floor name f0_55 -> (expected, spread, measured)."""
    return {"mask": mask, "floors": {name[1:].replace("_", "."): {"expected": e, "spread": s, "unexplained": 0.0,
                                                                "measured": m}
                                     for name, (e, s, m) in floors.items()}}


ROWS = [_row("sure#1", f0_55=(0.010, 0.001, 0.012), f0_65=(0.008, 0.001, 0.009)),
        _row("shaky#1", f0_55=(0.006, 0.003, -0.002), f0_65=(0.005, 0.001, 0.004)),
        _row("none#1", f0_55=(0.001, 0.001, -0.001), f0_65=(0.0, 0.0, 0.0))]


def test_replay_takes_each_rules_floor_and_its_measured_gain():
    sweep = load_script("research/rule_sweep.py")
    # the expected gain itself: 0.55 wherever it beats 0.002; the shaky mask is harmed there
    assert sweep.replay(ROWS, 0.0, 0.002) == [("sure#1", 0.55, 0.012), ("shaky#1", 0.55, -0.002),
                                              ("none#1", NO_REPAIR, 0.0)]
    # 1.5 spreads below: shaky's 0.55 bound is 0.0015, its 0.65 bound 0.0035: no harm
    assert sweep.replay(ROWS, 1.5, 0.002) == [("sure#1", 0.55, 0.012), ("shaky#1", 0.65, 0.004),
                                              ("none#1", NO_REPAIR, 0.0)]


def test_main_prints_a_table_per_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per rule
    sweep = load_script("research/rule_sweep.py")
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(ROWS))
    sweep.main([str(path), "--rules", "0:0.002", "1.5:0.002"])
    out = capsys.readouterr().out
    assert "3 draws" in out and "1/3" in out and "0/3" in out and "shaky#1 -0.0020 (0.55)" in out
