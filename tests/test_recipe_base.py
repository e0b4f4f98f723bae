"""Recipes that start from another with `base:` (distpaint.train.config.recipe_data).

    pytest tests/test_recipe_base.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distpaint.errors import ConfigError
from distpaint.train.config import (config_from_dict, config_to_dict, dump_config, load_config,
                                    packaged_config, recipe_data)

CONFIGS = sorted((Path(packaged_config("tiny")).parent).glob("*.yaml"))


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("recipe", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_recipe_loads_and_round_trips(recipe):
    """The dumped config (what checkpoints keep) is the resolved whole: no `base`, same values."""
    cfg = load_config(recipe)
    dumped = yaml.safe_load(dump_config(cfg))
    assert "base" not in dumped
    assert config_to_dict(config_from_dict(dumped)) == config_to_dict(cfg)


def test_override_merges_mappings_at_every_depth_and_replaces_the_rest(tmp_path):
    _write(tmp_path / "parent.yaml", {
        "seed": 1, "max_steps": 100,
        "data": {"kind": "roads", "mask_size": 512, "batch_size": 4, "patch_size": 128, "width_scale": [0.5, 2.5],
                 "gaps": {"kind": "mix", "density": 0.5}},
    })
    child = _write(tmp_path / "child.yaml", {
        "base": "parent", "seed": 2,
        "data": {"patch_size": 256, "width_scale": [1.0, 1.5], "gaps": {"density": 0.25}},
    })
    data = recipe_data(child)
    assert data == {"seed": 2, "max_steps": 100,
                    "data": {"kind": "roads", "mask_size": 512, "batch_size": 4, "patch_size": 256, "width_scale": [1.0, 1.5],
                             "gaps": {"kind": "mix", "density": 0.25}}}
    cfg = load_config(child)
    assert (cfg.seed, cfg.max_steps, cfg.data.patch_size) == (2, 100, 256)
    assert tuple(cfg.data.width_scale) == (1.0, 1.5)
    # the base file is read, never written
    assert yaml.safe_load((tmp_path / "parent.yaml").read_text())["seed"] == 1


def test_chain_of_bases_and_a_file_beside_wins_over_a_shipped_name(tmp_path):
    # a file called like a shipped recipe, beside the child, is the one used
    _write(tmp_path / "tiny.yaml", {"base": "cpu_small", "seed": 11})
    child = _write(tmp_path / "child.yaml", {"base": "tiny.yaml", "max_steps": 7})
    cfg = load_config(child)
    shipped = load_config(packaged_config("cpu_small"))
    assert (cfg.seed, cfg.max_steps) == (11, 7)
    assert cfg.data == shipped.data and cfg.model == shipped.model


@pytest.mark.parametrize("base, message", [
    ("no_such_recipe", "neither a file beside it nor a shipped recipe"),
    (3, "base must name a recipe"),
    ("", "base must name a recipe"),
])
def test_bad_base_is_a_clear_error_naming_the_file(tmp_path, base, message):
    child = _write(tmp_path / "child.yaml", {"base": base, "seed": 1})
    with pytest.raises(ConfigError, match=message) as info:
        load_config(child)
    assert str(child) in str(info.value)


def test_cycle_of_bases_is_an_error_not_a_recursion(tmp_path):
    _write(tmp_path / "a.yaml", {"base": "b", "seed": 1})
    _write(tmp_path / "b.yaml", {"base": "a", "seed": 2})
    with pytest.raises(ConfigError, match="cycle of recipes"):
        load_config(tmp_path / "a.yaml")


def test_bad_key_in_the_merged_recipe_names_the_child(tmp_path):
    child = _write(tmp_path / "child.yaml", {"base": "tiny", "data": {"patch_sise": 256}})
    with pytest.raises(ConfigError, match=r"child\.yaml: unknown key 'data\.patch_sise'"):
        load_config(child)
