"""Shipped models: the ship tool, the model cards, `distpaint models`, and the shipped files."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import distpaint.weights as weights
import distpaint.weights.ship as ship_module
from distpaint.cli import app
from distpaint.errors import InputError
from distpaint.models.modelfile import load_generator
from distpaint.train.config import load_config, packaged_config
from distpaint.train.local import train_local


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    target = tmp_path / "weights"
    target.mkdir()
    monkeypatch.setattr(weights, "WEIGHTS_DIR", target)
    monkeypatch.setattr(ship_module, "WEIGHTS_DIR", target)
    return target


def test_ship_writes_an_inference_only_model_with_its_card(tmp_path, weights_dir):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    train_local(load_config(packaged_config("tiny")), run, max_steps=2)
    target = ship_module.ship(run, "toy", recipe="tiny", kinds=["roots"],
                              description="a test model", scores={"rel_component_diff": 0.5})
    assert sorted(p.name for p in target.iterdir()) == ["card.json", "config.yaml", "model.pt"]
    card = weights.model_card("toy")
    assert card["generator"] == "unet_tiny" and card["steps"] == 2 and card["seed"] == 0
    assert card["params"] > 0 and card["mpx_per_s_cpu2"] > 0 and card["scores"]["rel_component_diff"] == 0.5
    assert weights.shipped_models() == ["toy"]
    g = load_generator(target)
    assert g.predict_proba(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)
    listed = CliRunner().invoke(app, ["models", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output)["toy"]["description"] == "a test model"
    with pytest.raises(InputError, match="no shipped model 'nope'; shipped: toy"):
        weights.model_dir("nope")


def test_ship_refuses_a_directory_without_checkpoint(tmp_path, weights_dir):
    with pytest.raises(InputError, match="no checkpoint"):
        ship_module.ship(tmp_path, "x", recipe="tiny", kinds=["roads"], description="")


@pytest.mark.parametrize("name", weights.shipped_models())
def test_every_shipped_model_loads_runs_and_documents_itself(name):
    path = weights.model_dir(name)
    assert (path / "model.pt").stat().st_size <= ship_module.MAX_BYTES
    card = weights.model_card(name)
    for key in ("description", "kinds", "command", "seed", "steps", "scores", "mpx_per_s_cpu2"):
        assert key in card, f"{name}: card lacks {key}"
    load_config(path / "config.yaml")  # the recipe that trained it is valid
    g = load_generator(path)
    x = torch.zeros(1, 1, 128, 128)
    x[0, 0, 60:68, :50] = 1
    x[0, 0, 60:68, 70:] = 1  # a bar with a 20-px gap
    with torch.inference_mode():
        p = g.predict_proba(x)
    assert torch.isfinite(p).all() and p[0, 0, 64, 60].item() > 0.5  # it bridges the gap
    assert p[0, 0, 10:30, 10:30].max().item() < 0.5  # and leaves empty space alone


def test_train_init_fine_tunes_a_shipped_model_from_the_cli(tmp_path):
    recipe = tmp_path / "tune.yaml"
    dilations = list(load_generator(weights.model_dir("roads")).config.context_dilations)
    recipe.write_text(
        "variant: gan-gl-m\nlog_every: 1\n"
        f"model: {{generator: unet_cpu_context, generator_args: {{context_dilations: {dilations}}}, "
        "local_disc: patchgan_tiny, global_disc: siamese_tiny}\n"
        "data: {kind: roads, mask_size: 128, n_masks: 2, patch_size: 64, batch_size: 2}\n"
        "loss: {global_margin: 16}\n")
    out = tmp_path / "run"
    # --variant overrides the recipe's (a GAN-GL-M recipe fine-tuned as GAN-GL)
    result = CliRunner().invoke(app, ["train", "--config", str(recipe), "--local", "--init", "roads",
                                      "--variant", "gan-gl", "--max-steps", "1", "--out", str(out),
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    checkpoint = next((out / "checkpoints").iterdir())
    assert load_config(checkpoint / "config.yaml").variant == "gan-gl"
    tuned = load_generator(checkpoint).state_dict()
    shipped = load_generator(weights.model_dir("roads")).state_dict()
    drift = max((tuned[k].float() - v.float()).abs().max().item() for k, v in shipped.items() if v.ndim == 4)
    assert 0 < drift < 0.05  # one Adam step at lr 2e-4 moves each weight by ~2e-4
    bad = CliRunner().invoke(app, ["train", "--config", "tiny", "--local", "--init", "roads",
                                   "--max-steps", "1", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "set model.generator" in str(bad.exception)
    unknown = CliRunner().invoke(app, ["train", "--config", "tiny", "--local", "--variant", "gan-xl",
                                       "--max-steps", "1", "--out", str(tmp_path / "unknown")])
    assert unknown.exit_code != 0 and "gan-xl" in str(unknown.exception) and "gan-gl-m" in str(unknown.exception)
