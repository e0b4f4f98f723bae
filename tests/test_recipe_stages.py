"""Chained recipes (`stages:`, distpaint.train.config.recipe_stages) and `distpaint reproduce`
(distpaint.train.reproduce): the shipped chains resolve to the configs the shipped models were
trained with, bad chains are one clear error, and reproduce trains, averages, chains and
resumes stages.

    pytest tests/test_recipe_stages.py
"""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from distpaint.cli import app
from distpaint.errors import ConfigError
from distpaint.train.checkpoint import load_config_of
from distpaint.train.config import (config_to_dict, find_stage, load_config, packaged_config, recipe_data,
                                    recipe_stages)
from distpaint.train.local import train_local
from distpaint.train.reproduce import reproduce
from distpaint.weights import WEIGHTS_DIR

# the stage of a shipped recipe each shipped model's weights were trained with
SHIPPED_STAGES = {
    "roads": ("roads", "real"),
    "roads-synthetic": ("roads", "more"),
    "general": ("general", "real"),
    "general-synthetic": ("general", "gan-gl-m"),
    "general-thin-synthetic": ("general", "context"),
}


def _trained(cfg) -> dict:
    """A config as a dict without what a chain sets per run (starting weights)."""
    doc = config_to_dict(cfg)
    doc["model"].pop("init_generator")
    return doc


@pytest.mark.parametrize("model", sorted(SHIPPED_STAGES))
def test_shipped_stage_resolves_to_the_shipped_models_config(model):
    recipe, stage = SHIPPED_STAGES[model]
    shipped = load_config(WEIGHTS_DIR / model / "config.yaml")
    assert _trained(load_config(packaged_config(recipe), stage)) == _trained(shipped)


def test_shipped_chains_are_the_stages_they_were():
    roads = recipe_stages(packaged_config("roads"))
    assert [(s.number, s.name, s.average) for s in roads] == [
        (1, "gan-gl", 8), (2, "gan-gl-m", 8), (3, "context", 8), (4, "p384", 8), (5, "cldice", 8),
        (6, "context8", 8), (7, "more", 8), (8, "real", 8)]
    steps = [s.data["max_steps"] for s in roads]
    assert steps == [10000, 4000, 4000, 3500, 1000, 1500, 2000, 1500]  # the cards' 26000 + 1500
    general = recipe_stages(packaged_config("general"))
    assert [s.name for s in general] == ["gan-gl-m", "thin", "pool", "pool2", "context", "real"]
    assert sum(s.data["max_steps"] for s in general[:5]) == 23000
    # stage 1 is what the plain recipe always was; a stage overlays only what it says
    assert recipe_data(packaged_config("roads")) == roads[0].data
    a, b = (config_to_dict(load_config(packaged_config("roads"), n)) for n in ("context", "p384"))
    changed = {(section, key) for section in a if isinstance(a[section], dict)
               for key in a[section] if a[section][key] != b[section][key]}
    changed |= {(key, None) for key in a if not isinstance(a[key], dict) and a[key] != b[key]}
    assert changed == {("seed", None), ("max_steps", None), ("data", "patch_size"),
                       ("data", "batch_size"), ("data", "gap_density")}
    # a recipe based on a chained one starts from its stage 1
    same_budget = config_to_dict(load_config(packaged_config("same_budget")))
    assert same_budget == {**config_to_dict(load_config(packaged_config("general"))), "variant": "gan-gl"}


def _chain(tmp_path, stages, **top):
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump({"base": "tiny", "max_steps": 2, "checkpoint_every": 1,
                                    "keep_checkpoints": 2, **top, "stages": stages}))
    return path


@pytest.mark.parametrize("stages, message", [
    ([], "non-empty list"),
    ([{"name": "a", "sets": {}}], "must be a mapping of name, average, set"),
    ([{"name": "7"}], "non-numeric"),
    ([{"name": "a"}, {"name": "a", "set": {"seed": 2}}], "used by an earlier stage"),
    ([{"name": "a", "set": {"seed": 2}}], "takes no `set`"),
    ([{"name": "a", "average": 3}], "average must be an integer from 0"),
    ([{"name": "a"}, {"name": "b", "set": {"data": {"patch_sise": 3}}}], r"stage b\): unknown key 'data.patch_sise'"),
])
def test_bad_chain_is_one_error_naming_the_file(tmp_path, stages, message):
    path = _chain(tmp_path, stages)
    with pytest.raises(ConfigError, match=message) as info:
        recipe_stages(path)
    assert str(path) in str(info.value)


def test_unknown_stage_lists_the_stages(tmp_path):
    with pytest.raises(ConfigError, match=r"no stage 'nine'; its stages: 1 gan-gl, 2 gan-gl-m"):
        find_stage(packaged_config("roads"), "nine")
    assert find_stage(packaged_config("roads"), 8).name == find_stage(packaged_config("roads"), "8").name == "real"
    result = CliRunner().invoke(app, ["train", "--config", "general", "--stage", "9", "--local",
                                      "--out", str(tmp_path / "x")])
    # a ConfigError, which the console script prints as one line, exit 2 (distpaint.cli.main)
    assert isinstance(result.exception, ConfigError) and "no stage '9'" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_reproduce_trains_averages_chains_and_resumes(tmp_path):
    path = _chain(tmp_path, [{"name": "one", "average": 2},
                             {"name": "two", "average": 2, "set": {"seed": 5, "max_steps": 3}}])
    out = tmp_path / "out"
    first = reproduce(path, out, through="one", log=lambda line: None)
    assert first == out / "one" / "average" and (first / "model.pt").is_file()
    assert not (out / "two").exists()
    stamp = (first / "model.pt").stat().st_mtime_ns
    # a stage killed after step 1: the next reproduce resumes it (and skips stage 1)
    stage_two = load_config(path, "two")
    partial = config_to_dict(stage_two)
    partial["model"]["init_generator"] = str(first)
    from distpaint.train.config import config_from_dict

    train_local(config_from_dict(partial), out / "two", max_steps=1)
    lines: list[str] = []
    result = reproduce(path, out, log=lines.append)
    assert result == out / "two" / "average"
    assert lines[0].startswith("stage 1 one: done")
    assert "resuming at step_00000001" in lines[1] and f"from {first}" in lines[1]
    assert (first / "model.pt").stat().st_mtime_ns == stamp  # stage 1 untouched
    trained = load_config_of(out / "two" / "checkpoints" / "step_00000003")
    assert trained.model.init_generator == str(first) and trained.seed == 5
    # once done, the same command trains nothing
    again: list[str] = []
    assert reproduce(path, out, log=again.append) == result
    assert [line.split(":")[1].strip().split()[0] for line in again] == ["done", "done"]


def test_reproduce_refuses_a_missing_store_before_training(tmp_path):
    path = _chain(tmp_path, [{"name": "one"}, {"name": "two", "set": {"data": {"store": "nowhere/real.zarr"}}}])
    with pytest.raises(ConfigError, match=r"stage two reads nowhere/real.zarr, which does not exist"):
        reproduce(path, tmp_path / "out", log=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_base_may_name_a_stage_of_a_chained_recipe(tmp_path):
    child = tmp_path / "my_roads.yaml"
    child.write_text("base: roads@more\ndata: {patch_size: 256}\n")
    expected = config_to_dict(load_config(packaged_config("roads"), "more"))
    expected["data"]["patch_size"] = 256
    assert config_to_dict(load_config(child)) == expected
    child.write_text("base: roads@nine\n")
    with pytest.raises(ConfigError, match=r"my_roads.yaml: base roads@nine: .* has no stage 'nine'"):
        load_config(child)
    child.write_text("base: my_roads@2\nstages: [{name: a}, {name: b, set: {seed: 3}}]\n")
    with pytest.raises(ConfigError, match="cycle of recipes"):
        load_config(child)
