"""The shipping tool writes a model card from the run itself: the recipe checked against the
package, the averaged steps, the command chain (the starting model's chain first), the scores
of a quality file; refuses a run of another recipe; retires an older model under a new name.

Run: .venv/bin/python -m pytest tests/test_ship.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import distpaint.weights as weights
import distpaint.weights.ship as ship_module
from distpaint.errors import InputError


@pytest.fixture
def run(tmp_path):
    from distpaint.train.average import average_checkpoints, run_checkpoints
    from distpaint.train.config import load_config, packaged_config
    from distpaint.train.local import train_local

    cfg = load_config(packaged_config("tiny"))  # checkpoints every 10 steps, the last 2 kept
    out = tmp_path / "runs" / "tiny"
    train_local(cfg, out, max_steps=20, log=lambda *a: None)
    average_checkpoints(run_checkpoints(out)[-2:], out / "average")
    return out


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    for module in (weights, ship_module):
        monkeypatch.setattr(module, "WEIGHTS_DIR", folder)
    monkeypatch.setattr(ship_module, "cpu_speed", lambda ckpt: 1.0)  # timed elsewhere
    return folder


def _quality(path: Path, method: str) -> Path:
    doc = {"benchset": {"path": "runs/real", "digest": "abc"},
           "results": {"val": {"roads": {method: {
               "aggregate": {"cldice": {"mean": 0.98, "n": 3}, "false_fill": {"mean": 0.1, "n": 3}},
               "no_harm": {"share": 1.0, "masks": 3, "n": 3}}}}}}
    path.write_text(json.dumps(doc))
    return path


def test_card_comes_from_the_run(run, weights_dir, tmp_path):
    scores = ship_module.card_scores([_quality(tmp_path / "q.json", "mine")], "mine")
    target = ship_module.ship(run / "average", "tiny-model", recipe="tiny", kinds=["roots"],
                              description="a tiny test model", scores=scores)
    card = json.loads((target / "card.json").read_text())
    assert card["recipe"] == "tiny" and card["averaged_steps"] == [10, 20]
    assert card["command"] == (f"distpaint train --config tiny --local --out {run} --threads 1 "
                               f"&& distpaint average {run} --last 2 --out {run / 'average'}")
    assert card["scores"]["val/roads"]["no_harm_share"] == 1.0
    assert card["inference"] == {"threshold": 0.5, "keep": "bridges"}
    assert (target / "model.pt").is_file() and (target / "config.yaml").is_file()
    # a second stage from the shipped model: its chain first, then this stage from the path the
    # first one wrote, and the old model kept under a name that says so
    from distpaint.train.config import load_config, packaged_config
    from distpaint.train.local import train_local

    cfg = load_config(packaged_config("tiny"))
    cfg.model.init_generator = "tiny-model"
    second = tmp_path / "runs" / "second"
    train_local(cfg, second, max_steps=10, log=lambda *a: None)
    target = ship_module.ship(second, "tiny-model", recipe="tiny", kinds=["roots"],
                              description="stage two", retire_as="tiny-model-old")
    card = json.loads((target / "card.json").read_text())
    assert card["command"].startswith(f"distpaint train --config tiny --local --out {run} ")
    assert f"--config tiny --init {run / 'average'} --local --out {second}" in card["command"]
    assert card["base_model"]["name"] == "tiny-model" and card["steps_total"] == 20 + 10
    old = json.loads((weights_dir / "tiny-model-old" / "card.json").read_text())
    assert old["retired_name"] == "tiny-model" and old["description"].startswith("Retired")
    # shipped again (say, a corrected description): `--init tiny-model` now names this very
    # checkpoint, so the lineage continues from the model retired from that name
    again = json.loads((ship_module.ship(second, "tiny-model", recipe="tiny", kinds=["roots"],
                                         description="stage two, again") / "card.json").read_text())
    assert again["command"] == card["command"] and again["steps_total"] == 20 + 10
    assert again["base_model"]["name"] == "tiny-model-old"


def test_a_run_of_another_recipe_is_refused(run, weights_dir):
    with pytest.raises(InputError, match="differs from the shipped recipe 'cpu_small'"):
        ship_module.ship(run / "average", "x", recipe="cpu_small", kinds=["roots"], description="x")
    assert not (weights_dir / "x").exists()


def test_retire_renames_a_model_and_says_so(run, weights_dir):
    ship_module.ship(run / "average", "old", recipe="tiny", kinds=["roots"], description="first")
    path = ship_module.retire("old", "old-synthetic")
    assert not (weights_dir / "old").exists() and (path / "model.pt").is_file()
    card = json.loads((path / "card.json").read_text())
    assert card["name"] == "old-synthetic" and card["retired_name"] == "old"
    with pytest.raises(InputError, match="no shipped model 'gone'"):
        ship_module.retire("gone", "x")
