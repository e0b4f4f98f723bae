"""The shipping tool writes a model card from the run itself: the recipe checked against the
package, the averaged steps, the command chain (the starting model's chain first), the scores
of a quality file; refuses a run of another recipe; retires an older model under a new name.

Run: .venv/bin/python -m pytest tests/test_ship.py -q
"""

from __future__ import annotations

import json
import shlex
import shutil
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
    assert card["inference"] == {"threshold": 0.5, "keep": "bridges", "upsample": 1}
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


SHIPPED = Path(weights.__file__).resolve().parent  # the package's own models (before monkeypatching)


def _named_recipes(command: str) -> list[tuple[str, str | None]]:
    """(recipe, stage) of every `distpaint train --config` and `distpaint reproduce` in a card's command."""
    named = []
    for part in command.split("&&"):
        args = shlex.split(part)
        if args[:2] == ["distpaint", "reproduce"]:
            named.append((args[2], args[args.index("--through") + 1] if "--through" in args else None))
        elif args[:2] == ["distpaint", "train"]:
            named.append((args[args.index("--config") + 1], args[args.index("--stage") + 1] if "--stage" in args else None))
    return named


@pytest.mark.parametrize("model", weights.shipped_models())
def test_every_recipe_a_shipped_card_names_is_in_the_package_and_resolves(model):
    from distpaint.train.config import config_to_dict, load_config, packaged_config

    card = weights.model_card(model)
    assert "note" not in card  # nothing written by hand (docs/HISTORY.md keeps the old notes)
    named = _named_recipes(card["command"])
    assert named, card["command"]
    for recipe, stage in named:
        assert Path(recipe).name == recipe and not recipe.endswith(".yaml"), recipe  # a name, not a file
        load_config(packaged_config(recipe), stage)  # ConfigError: not in the package, or no such stage
    # the card's recipe and stage are the ones the command ends with, and the model's own config
    assert named[-1] == (card["recipe"], card["stage"])
    expected = config_to_dict(load_config(packaged_config(card["recipe"]), card["stage"]))
    trained = config_to_dict(load_config(SHIPPED / model / "config.yaml"))
    for doc in (expected, trained):
        doc["model"].pop("init_generator")  # a chain sets it to the previous stage's result
    assert trained == expected


def _copy_model(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for item in ("model.pt", "config.yaml", "card.json"):
        shutil.copy2(SHIPPED / name / item, folder / item)
    return folder


def test_recard_writes_recipe_and_command_from_the_models_own_config(weights_dir):
    for name in ("roads", "roads-synthetic"):
        _copy_model(name, weights_dir / name)
    before = json.loads((weights_dir / "roads" / "card.json").read_text())
    if before.get("stage") is not None:  # the package's cards are re-carded: undo it in the copy
        for name in ("roads", "roads-synthetic"):
            card = json.loads((weights_dir / name / "card.json").read_text())
            card.pop("stage")
            (weights_dir / name / "card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="re-card that model first"):  # its start names no stage yet
        ship_module.recard("roads", "roads", "real")
    with pytest.raises(InputError, match=r"differs from the shipped recipe 'roads' \(stage context8\) in seed"):
        ship_module.recard("roads-synthetic", "roads", "context8")
    synthetic = ship_module.recard("roads-synthetic", "roads", "more")
    assert synthetic["command"] == "distpaint reproduce roads --through more --out runs/roads"
    card = ship_module.recard("roads", "roads", "8")
    assert card["command"] == f"{ship_module.REAL_DATA} && distpaint reproduce roads --through real --out runs/roads"
    assert (card["recipe"], card["stage"]) == ("roads", "real")
    assert card["base_model"]["name"] == "roads-synthetic" and card["base_model"]["stage"] == "more"
    moved = ("recipe", "stage", "command", "base_model")
    assert {k: v for k, v in card.items() if k not in moved} == {k: v for k, v in before.items() if k not in moved}
    assert (weights_dir / "roads" / "model.pt").read_bytes() == (SHIPPED / "roads" / "model.pt").read_bytes()


def test_ship_of_a_chained_stage_names_reproduce(weights_dir, tmp_path):
    # a shipped model's files as a run's checkpoint: stage `more` of roads, started from a path
    ckpt = _copy_model("roads-synthetic", tmp_path / "run" / "checkpoints" / "step_00002000")
    target = ship_module.ship(ckpt, "again", recipe="roads", stage="more", kinds=["roads"], description="x")
    card = json.loads((target / "card.json").read_text())
    assert card["command"] == "distpaint reproduce roads --through more --out runs/roads"
    assert (card["recipe"], card["stage"]) == ("roads", "more")
    with pytest.raises(InputError, match="no stage 'nine'"):
        ship_module.ship(ckpt, "x", recipe="roads", stage="nine", kinds=["roads"], description="x")
    config = (ckpt / "config.yaml").read_text()
    (ckpt / "config.yaml").write_text(config.replace("init_generator: runs/roads_stage6/average", "init_generator: ''"))
    with pytest.raises(InputError, match="stage more of 'roads' starts from stage context8's result, this run "
                                         "from random weights"):
        ship_module.ship(ckpt, "x", recipe="roads", stage="more", kinds=["roads"], description="x")


def test_defaults_writes_the_inference_entry_and_scores_only(weights_dir):
    _copy_model("general", weights_dir / "general")
    before = json.loads((weights_dir / "general" / "card.json").read_text())
    assert before["inference"]["upsample"] == "auto"
    card = ship_module.set_defaults("general", upsample="1", scores={"test/rivers": {"cldice": 0.9}})
    assert card["inference"] == {**before["inference"], "upsample": 1}
    assert card["scores"] == {"test/rivers": {"cldice": 0.9}}
    assert {k: v for k, v in card.items() if k not in ("inference", "scores", "description")} == \
        {k: v for k, v in before.items() if k not in ("inference", "scores", "description")}
    keep, threshold = before["inference"]["keep"], before["inference"]["threshold"]
    note = "; inference defaults re-chosen on the real validation split since: "
    floor = before["inference"].get("min_confidence")  # the card's floor stays
    assert card["description"] == (f"{before['description'].split(note)[0]}{note}--keep {keep}, "
                                   f"threshold {threshold:g}, --upsample 1"
                                   + (f", --min-confidence {floor if floor == 'auto' else format(floor, 'g')}"
                                      if floor else ""))
    again = ship_module.set_defaults("general", upsample="2")
    assert again["inference"]["upsample"] == 2
    assert "--upsample 2" in again["description"] and again["description"].count("re-chosen") == 1
    assert ship_module.set_defaults("general", upsample="2")["description"] == again["description"]
    floor = ship_module.set_defaults("general", min_confidence=0.55)
    assert floor["inference"]["min_confidence"] == 0.55 and floor["description"].endswith("--min-confidence 0.55")
    assert "min_confidence" not in ship_module.set_defaults("general", min_confidence=0)["inference"]
    auto = ship_module.set_defaults("general", min_confidence="auto")
    assert auto["inference"]["min_confidence"] == "auto" and auto["description"].endswith("--min-confidence auto")
    for bad in (1.5, "most"):
        with pytest.raises(InputError, match="--min-confidence"):
            ship_module.set_defaults("general", min_confidence=bad)
    with pytest.raises(InputError, match="--upsample"):
        ship_module.set_defaults("general", upsample="5")
    with pytest.raises(InputError, match="no shipped model"):
        ship_module.set_defaults("nothing", upsample="auto")
