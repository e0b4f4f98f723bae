"""`--set PATH=VALUE` on `distpaint train` and `distpaint tune` (distpaint/train/overrides.py):
any config field by its dotted path, checked as a recipe file is; a bad path or value is one
error line naming the field and exit status 2. Parsing only: nothing trains.

Run: .venv/bin/python -m pytest tests/test_overrides.py -q
"""

from __future__ import annotations

import sys

import pytest

from distpaint import cli
from distpaint.commands.train import _resolve_config
from distpaint.errors import ConfigError
from distpaint.train.config import config_to_dict, load_config, packaged_config
from distpaint.train.overrides import apply_overrides, parse_assignments


def test_set_changes_exactly_the_named_fields():
    base = load_config(packaged_config("tiny"))
    cfg = _resolve_config("tiny", ["loss.lambda_global=3", "data.store_share=0.25", "optim.lr_g=2e-5",
                                   "data.width_scale=[0.5, 2]", "data.gaps.density=2", "deterministic=false"])
    want = config_to_dict(base)
    want["loss"]["lambda_global"] = 3.0
    want["data"]["store_share"] = 0.25
    want["optim"]["lr_g"] = 2e-5
    want["data"]["width_scale"] = [0.5, 2.0]
    want["data"]["gaps"] = {**want["data"]["gaps"], "density": 2}
    want["deterministic"] = False
    assert config_to_dict(cfg) == want
    # typed as a recipe types them (2e-5 is text to PyYAML; the dataclass casts it)
    assert isinstance(cfg.optim.lr_g, float) and cfg.data.width_scale == (0.5, 2.0)


@pytest.mark.parametrize("path, text", [
    ("loss.lambda_global", "abc"), ("data.store_share", "2"), ("loss.baseline", "bogus"), ("seed", "1.5"),
    ("deterministic", "maybe"), ("data.width_scale", "[2, 1]"), ("model.generator", "unet_huge"),
])
def test_set_is_checked_like_the_same_yaml(tmp_path, path, text):
    """A value fails under --set exactly as in a recipe file: same parser, same checks, same
    message but for the source it names."""
    *section, field = path.split(".")
    body = f"{field}: {text}\n" if not section else f"{section[0]}:\n  {field}: {text}\n"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: tiny\n" + body)
    with pytest.raises(ConfigError) as from_yaml:
        load_config(recipe)
    with pytest.raises(ConfigError) as from_set:
        _resolve_config("tiny", [f"{path}={text}"])
    assert str(from_set.value).replace("--set: ", "", 1) == str(from_yaml.value).replace(f"{recipe}: ", "", 1)
    assert field in str(from_set.value)


def test_fields_that_must_agree_change_together():
    # 128 px patches in 256 px masks hold 4 cells: alone, batch_size 8 would be refused
    with pytest.raises(ConfigError, match="data.batch_size"):
        _resolve_config("tiny", ["data.mask_size=128", "data.batch_size=8"])
    cfg = _resolve_config("tiny", ["data.patch_size=64", "data.mask_size=256", "data.batch_size=8"])
    assert (cfg.data.patch_size, cfg.data.mask_size) == (64, 256)


def test_shorthands_are_dotted_paths():
    cfg = _resolve_config("tiny", ["variant=gan-g"], {"variant": "unet", "model.init_generator": None})
    assert cfg.variant == "unet" and cfg.model.init_generator == ""


@pytest.mark.parametrize("items, message", [
    (["loss.lambda_gobal=3"], "--set loss.lambda_gobal: unknown parameter; did you mean 'loss.lambda_global'"),
    (["losses.lambda_ce=3"], "--set losses.lambda_ce: unknown parameter"),
    (["loss=3"], "--set loss: a whole section cannot be set; name a field"),
    (["seed.x=3"], "--set seed.x: seed is not a section"),
    (["loss.lambda_ce.x=1"], "--set loss.lambda_ce.x: loss.lambda_ce has no sub-keys"),
    (["lambda_ce"], "--set 'lambda_ce': give PATH=VALUE"),
    (["data.patch_size=[1"], "--set data.patch_size: '[1' is not a YAML value"),
    (["seed=1", "seed=2"], "--set seed: given twice"),
    (["data.gaps={kind: cut}", "data.gaps.density=2"], "--set data.gaps.density overlaps --set data.gaps"),
])
def test_bad_paths_are_refused_before_the_config_is_built(items, message):
    with pytest.raises(ConfigError) as err:
        parse_assignments(items)
    assert str(err.value).startswith(message), err.value


def test_tune_trials_use_the_same_overrides():
    """Tune's trial values go through the same `apply_overrides` (one parser for both)."""
    from distpaint.tune import space

    assert space.apply_overrides is apply_overrides


def _main(monkeypatch, capsys, *args: str) -> tuple[int, list[str]]:
    monkeypatch.setattr(sys, "argv", ["distpaint", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return done.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("command", [
    ["train", "--config", "tiny", "--local", "--out", "run"],
    ["tune", "--space", "tune_spaces/lambdas.yaml", "--config", "tiny"],
])
@pytest.mark.parametrize("item, line", [
    ("loss.lambda_gobal=3", "error: --set loss.lambda_gobal: unknown parameter; did you mean 'loss.lambda_global'"),
    ("loss.lambda_global=abc", "error: --set: loss.lambda_global must be float, got 'abc'"),
])
def test_cli_bad_set_is_one_line_exit_2(monkeypatch, capsys, tmp_path, command, item, line):
    root = packaged_config("tiny").parents[2]
    monkeypatch.chdir(tmp_path)
    args = [str(root / a) if a.startswith("tune_spaces/") else a for a in command]
    code, err = _main(monkeypatch, capsys, *args, "--set", item)
    assert code == 2 and len(err) == 1 and err[0].startswith(line), err
    assert list(tmp_path.iterdir()) == []  # refused before any run directory or Ray
