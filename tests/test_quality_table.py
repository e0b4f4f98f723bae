"""bench/quality_table.py: reports scored in separate runs on one benchmark set become one table;
reports on different sets are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
quality_table = load_script("bench/quality_table.py")


def _report(path: Path, digest: str, methods: dict[str, tuple[float, float, int, int]]) -> Path:
    results = {"test": {"roads": {
        name: {"n": n, "no_harm": {"share": ok / n, "masks": ok, "n": n},
               "aggregate": {"rel_component_diff": {"mean": rel}, "skeleton_recall_gaps": {"mean": rec}}}
        for name, (rel, rec, ok, n) in methods.items()}}}
    path.write_text(json.dumps({"benchset": {"digest": digest}, "results": results}))
    return path


def test_reports_from_separate_runs_share_one_table(tmp_path, capsys):
    a = _report(tmp_path / "a.json", "d1", {"closing": (0.13, 0.03, 16, 26), "general": (0.98, 0.83, 26, 26)})
    b = _report(tmp_path / "b.json", "d1", {"roads": (0.995, 0.93, 25, 26), "general": (0.0, 0.0, 0, 26)})
    quality_table.main([str(a), str(b), "--methods", "closing", "roads", "general", "linking", "roads-old",
                        "--rename", "roads=roads-old"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| method | roads |"
    assert lines[2] == "| closing | 0.130 / 0.030 / 16/26 |"
    assert lines[3] == "| roads | – |"  # shown under its new name only
    assert lines[4] == "| general | 0.980 / 0.830 / 26/26 |"  # the first report's result is kept
    assert lines[5] == "| linking | – |"
    assert lines[6] == "| roads-old | 0.995 / 0.930 / 25/26 |"


def test_reports_on_different_sets_are_refused(tmp_path):
    a = _report(tmp_path / "a.json", "d1", {"closing": (0.1, 0.0, 1, 1)})
    b = _report(tmp_path / "b.json", "d2", {"roads": (0.9, 0.9, 1, 1)})
    with pytest.raises(SystemExit, match="different benchmark sets"):
        quality_table.main([str(a), str(b)])
