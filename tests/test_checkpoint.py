"""Checkpoint layout, exact resume and loading G for inference without the training config."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from distpaint.errors import ConfigError, InputError
from distpaint.train.checkpoint import latest_checkpoint, load_generator, load_train_state
from distpaint.train.config import config_from_dict, dump_config, load_config, packaged_config
from distpaint.train.local import train_local
from distpaint.train.step import build_models
from distpaint.weights import model_card, model_dir, shipped_models

torch.set_num_threads(1)

CFG = {
    "variant": "gan-gl",
    "log_every": 1,
    "checkpoint_every": 3,
    "keep_checkpoints": 5,
    "model": {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"},
    "data": {"mask_size": 128, "n_masks": 3, "patch_size": 32, "batch_size": 4},
    "loss": {"global_margin": 16, "baseline": "ema"},
}


def _log(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("sec_per_step", None)
    return rows


def test_resume_gives_the_same_losses(tmp_path):
    cfg = config_from_dict(CFG)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_local(cfg, straight, max_steps=6)
    train_local(cfg, split, max_steps=3)
    assert latest_checkpoint(split).name == "step_00000003"
    train_local(cfg, split, max_steps=6)  # resumes at step 3
    a, b = _log(straight), _log(split)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    assert a == b  # bit-identical losses, rewards and baselines
    g1, g2 = load_generator(latest_checkpoint(straight)), load_generator(latest_checkpoint(split))
    for p, q in zip(g1.state_dict().values(), g2.state_dict().values()):
        assert torch.equal(p, q)


def test_layout_and_inference_load(tmp_path):
    cfg = config_from_dict({**CFG, "variant": "unet", "checkpoint_every": 2})
    train_local(cfg, tmp_path, max_steps=2)
    ckpt = latest_checkpoint(tmp_path)
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.yaml", "metrics.json", "model.pt", "train_state.pt"]
    assert config_from_dict(yaml.safe_load((ckpt / "config.yaml").read_text())) == cfg
    assert json.loads((ckpt / "metrics.json").read_text())["step"] == 2
    state = load_train_state(ckpt)
    assert state["step"] == 2 and state["d_local"] is None and state["opt_g"] is not None
    # model.pt alone rebuilds G (no config.yaml, no training code needed)
    only = tmp_path / "only_model"
    only.mkdir()
    (only / "model.pt").write_bytes((ckpt / "model.pt").read_bytes())
    g = load_generator(only / "model.pt")
    assert not g.training
    x = (torch.rand(1, 1, 64, 48) > 0.9).float()
    assert torch.equal(g(x), load_generator(ckpt)(x))
    assert not list(ckpt.parent.glob(".*"))  # no temporary directories left behind


def test_model_file_names_stay_importable_from_train_checkpoint():
    # the model file lives in distpaint.models.modelfile (inference imports no training code);
    # distpaint.weights.ship and scripts still import these names from train.checkpoint
    import distpaint.models.modelfile as modelfile
    import distpaint.train.checkpoint as checkpoint

    for name in ("load_generator", "load_model_file", "FORMAT_VERSION"):
        assert getattr(checkpoint, name) is getattr(modelfile, name)
    assert callable(checkpoint.load_config_of) and callable(checkpoint.latest_checkpoint)


def test_resume_with_another_config_is_refused(tmp_path):
    train_local(config_from_dict({**CFG, "variant": "unet"}), tmp_path, max_steps=3)
    with pytest.raises(ConfigError, match="different config"):
        train_local(config_from_dict({**CFG, "variant": "unet", "seed": 1}), tmp_path, max_steps=4)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(InputError, match="not a distpaint checkpoint"):
        load_generator(tmp_path)


def test_shipped_configs_load_and_round_trip(tmp_path):
    for name in ("tiny", "cpu_small", "paper", "paper_faithful"):
        cfg = load_config(packaged_config(name))
        path = tmp_path / f"{name}.yaml"
        path.write_text(dump_config(cfg))
        assert load_config(path) == cfg
    paper = load_config(packaged_config("paper"))
    assert (paper.loss.lambda_ce, paper.optim.lr_g, paper.optim.lr_d, paper.data.batch_size) == (1000, 2e-4, 4e-4, 8)
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss:\n  lambda_cee: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'loss.lambda_cee'"):
        load_config(bad)
    bad.write_text("variant: gan-xl\n")
    with pytest.raises(ConfigError, match="variant must be one of"):
        load_config(bad)
    # the baselines are their architectures; the GAN variants train any generator
    bad.write_text("variant: unet\nmodel: {generator: cnn_tiny}\n")
    with pytest.raises(ConfigError, match="variant unet needs a unet_\\* generator, got 'cnn_tiny'"):
        load_config(bad)
    bad.write_text("variant: cnn\nmodel: {generator: unet_tiny}\n")
    with pytest.raises(ConfigError, match="variant cnn needs a cnn_\\* generator"):
        load_config(bad)
    bad.write_text("variant: unet-m\nmodel: {generator: cnn_tiny}\n")
    with pytest.raises(ConfigError, match="variant unet-m needs a unet_\\* generator"):
        load_config(bad)
    for variant in ("gan-gl", "gan-l", "gan-g", "gan-gl-m"):
        bad.write_text(f"variant: {variant}\nmodel: {{generator: cnn_tiny}}\n")
        assert load_config(bad).model.generator == "cnn_tiny"


def _plain_shipped() -> str:
    """A shipped model whose G is the plain unet_cpu (the name-resolution path of --init)."""
    return next(name for name in shipped_models() if model_card(name)["generator"] == "unet_cpu")


def _init_cfg(source):
    return config_from_dict({**CFG, "model": {**CFG["model"], "init_generator": str(source)}})


def test_init_generator_fine_tunes_from_a_checkpoint_and_resumes_from_its_own(tmp_path):
    base = tmp_path / "base"
    train_local(config_from_dict(CFG), base, max_steps=3)
    start = latest_checkpoint(base)
    tuned = tmp_path / "tuned"
    train_local(_init_cfg(start), tuned, max_steps=1)
    # one step from the base weights stays close to them; a random init is far from both
    g0 = load_generator(start).state_dict()
    g1 = load_generator(latest_checkpoint(tuned)).state_dict()
    torch.manual_seed(123)
    rand = build_models(config_from_dict(CFG)).g.state_dict()
    key = next(k for k in g0 if k.endswith("weight") and g0[k].ndim == 4)
    assert (g1[key] - g0[key]).abs().max() < (rand[key] - g0[key]).abs().max() / 5
    # the saved config names where it started; resuming restores the run's own weights, even
    # when the start checkpoint is gone
    saved = yaml.safe_load((latest_checkpoint(tuned) / "config.yaml").read_text())
    assert saved["model"]["init_generator"] == str(start)
    shutil.rmtree(base)
    train_local(_init_cfg(start), tuned, max_steps=2)
    assert latest_checkpoint(tuned).name.endswith("2")


def test_init_generator_errors_name_the_source(tmp_path):
    with pytest.raises(ConfigError, match="nope.*does not exist"):
        build_models(_init_cfg(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty: not a distpaint checkpoint"):
        build_models(_init_cfg(tmp_path / "empty"))
    plain = _plain_shipped()  # this run's G is unet_tiny
    with pytest.raises(ConfigError, match=f"{plain} holds generator 'unet_cpu'.*set model.generator.*--config .*config.yaml"):
        build_models(_init_cfg(plain))
    cfg = config_from_dict({**CFG, "model": {**CFG["model"], "generator": "unet_cpu", "init_generator": plain}})
    g = build_models(cfg).g
    shipped = load_generator(model_dir(plain)).state_dict()
    assert all(torch.equal(g.state_dict()[k], v) for k, v in shipped.items())


def test_init_generator_grows_bottleneck_context_blocks_as_the_identity():
    """unet_cpu_context from unet_cpu weights (a shipped model): same function at the start, a wider
    receptive field; other widths are still refused."""
    from distpaint.infer.predictor import receptive_radius

    plain = _plain_shipped()

    cfg = config_from_dict({**CFG, "model": {**CFG["model"], "generator": "unet_cpu_context",
                                             "init_generator": plain}})
    grown = build_models(cfg).g.eval()
    shipped = load_generator(model_dir(plain)).eval()
    x = (torch.rand(2, 1, 128, 96, generator=torch.Generator().manual_seed(0)) > 0.9).float()
    with torch.no_grad():
        assert torch.equal(grown(x), shipped(x))
    assert receptive_radius(grown, 16) > 2 * receptive_radius(shipped, 16)
    # the blocks learn: one gradient step moves their zero-initialised output conv
    grown.train()
    grown(x).square().mean().backward()
    assert grown.context[0].branch[1].weight.grad.abs().sum() > 0
    # only the context blocks may be missing: a U-Net of other widths is refused
    ckpt_cfg = {**CFG["model"], "generator": "unet_cpu", "generator_args": {"widths": [8, 8, 16, 32, 64, 64]},
                "init_generator": plain}
    with pytest.raises(ConfigError, match=f"{plain} holds generator 'unet_cpu'.*set model.generator.*--config .*config.yaml"):
        build_models(config_from_dict({**CFG, "model": ckpt_cfg}))


def _context_shipped() -> str:
    """A shipped model whose G already has the bottleneck context blocks (2, 4)."""
    return next(name for name in shipped_models()
                if model_card(name)["generator"] == "unet_cpu_context"
                and tuple(load_generator(model_dir(name)).config.context_dilations) == (2, 4))


@pytest.mark.parametrize("dilations, grows", [([2, 4, 8], True), ([2, 4, 8, 16], True),
                                              ([4, 2, 8], False), ([2, 4], True), ([2], False)])
def test_init_generator_grows_more_context_blocks_after_those_it_has(dilations, grows):
    """A G with context blocks (2, 4) grows more after them as the identity; blocks in another
    order, or fewer, are another network and are refused (the same (2, 4) simply loads)."""
    source = _context_shipped()
    have = load_generator(model_dir(source)).eval()
    assert list(have.config.context_dilations) == [2, 4]
    model = {**CFG["model"], "generator": "unet_cpu_context", "init_generator": source,
             "generator_args": {"context_dilations": dilations}}
    cfg = config_from_dict({**CFG, "model": model})
    if not grows:
        with pytest.raises(ConfigError, match=f"{source} holds generator 'unet_cpu_context'"):
            build_models(cfg)
        return
    grown = build_models(cfg).g.eval()
    x = (torch.rand(1, 1, 256, 256, generator=torch.Generator().manual_seed(1)) > 0.9).float()
    with torch.no_grad():
        assert torch.equal(grown(x), have(x))
    assert len(grown.context) == len(dilations)
