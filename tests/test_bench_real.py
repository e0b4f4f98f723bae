"""research/real_vs_synth.py's statistics on hand-made masks, and bench/real_targets.py's checks
on a hand-made result (a target met, a mask harmed, a rival better).

Run: .venv/bin/python -m pytest tests/test_bench_real.py -q
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
BENCH = ROOT / "bench"


def _module(name: str, folder: Path = BENCH):
    return load_script(folder / f"{name}.py")


def test_mask_stats_count_ends_junctions_widths_and_holes():
    pytest.importorskip("skan")  # the bench extra
    stats = _module("real_vs_synth", ROOT / "research")
    mask = np.zeros((200, 200), bool)
    mask[100, 20:180] = True               # a 1-px road ...
    mask[20:100, 100] = True               # ... with a branch up: one junction, three dead ends
    mask[140:160, 40:60] = True            # a 20 x 20 block ...
    mask[145:155, 45:55] = False           # ... around a 10 x 10 hole
    got = stats.pooled([stats.mask_stats(mask)])
    assert got["junctions_per_kpx"] > 0 and got["degree3"] == 1.0
    one = stats.mask_stats(mask)
    assert one["ends"] == 3 and len(one["degrees"]) == 1
    assert one["holes"] == [100]
    assert got["width_p10"] == pytest.approx(2.0)  # 2 x the distance to background on 1-px lines


def _doc(gains, recall=0.95, added=0, general_harm=0):
    samples = {f"m{i}": {"cldice_gain": g, "skeleton_recall_gaps": recall, "false_fill": 0.1,
                         "rel_component_diff": 0.95, "components_added": added,
                         "input_removed": 0} for i, g in enumerate(gains)}
    rivers = {f"r{i}": {"no_harm": 0.0 if i < general_harm else 1.0, "rel_component_diff": 0.7,
                        "skeleton_recall_gaps": 0.5} for i in range(3)}
    rival = {f"r{i}": {"no_harm": 1.0, "rel_component_diff": 0.4, "skeleton_recall_gaps": 0.6}
             for i in range(3)}
    return {"results": {"test": {"roads": {"roads": {"samples": samples}},
                                 "rivers": {"general": {"samples": rivers},
                                            "closing": {"samples": rival},
                                            "linking": {"samples": rival}}}}}


def test_real_targets_pass_and_fail_for_the_right_reasons(tmp_path):
    targets = _module("real_targets")
    good = {c["check"] + c["kind"]: c["passed"] for c in targets.check(_doc([0.02, 0.03]), "test", "roads", "general")}
    assert good["issue: clDice gain >= 0.01 on every maskroads"]
    assert good["components never increasedroads"]
    assert not good["skeleton_recall_gaps above closingrivers"]  # 0.5 < 0.6: a rival is better
    assert good["rel_component_diff above linkingrivers"]
    bad = {c["check"] + c["kind"]: c["passed"]
           for c in targets.check(_doc([0.02, 0.004], added=1, general_harm=1), "test", "roads", "general")}
    assert not bad["issue: clDice gain >= 0.01 on every maskroads"]
    assert not bad["judge: clDice gain >= 0.005 on every maskroads"]
    assert not bad["components never increasedroads"]
    assert not bad["no harm on every maskrivers"]
    path = tmp_path / "quality.json"
    path.write_text(json.dumps(_doc([0.02, 0.03])))
    proc = subprocess.run([sys.executable, str(BENCH / "real_targets.py"), str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "FAIL  rivers" in proc.stdout and "checks pass" in proc.stdout
