"""StoreData's input checks: how many training samples each variant (and D_G's pairing) needs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from distpaint.data.store import MaskStore
from distpaint.data.synth import synth_array
from distpaint.errors import InputError
from distpaint.train.config import config_from_dict, packaged_config
from distpaint.train.step import StepState, build_models, build_optimizers, train_step
from distpaint.train.store_data import StoreData


def _config(variant: str, **loss):
    base = yaml.safe_load(packaged_config("tiny").read_text())
    model = {**base["model"], "generator": "cnn_tiny"} if variant == "cnn" else base["model"]
    return config_from_dict({**base, "variant": variant, "model": model,
                             "loss": {**base.get("loss", {}), **loss}})


@pytest.fixture
def one_sample_store(tmp_path):
    store = MaskStore.create(tmp_path / "one.zarr")
    store.write("only", {"mask": synth_array("roots", (192, 192), seed=1)}, {"kind": "roots"})
    return MaskStore.open(tmp_path / "one.zarr")


@pytest.mark.parametrize("variant", ["unet", "cnn", "gan-l"])
def test_variants_without_d_g_train_from_a_single_sample(one_sample_store, variant):
    data = StoreData(one_sample_store, _config(variant), 0, 1)
    for step in range(3):
        batch = data.batch(step)
        assert batch.y_other is None and batch.name == "only"
        assert np.array_equal(batch.x.numpy(), (batch.y * (1 - batch.region)).numpy())


@pytest.mark.parametrize("variant", ["gan-gl", "gan-g"])
def test_variants_with_d_g_need_two_samples_and_say_so(one_sample_store, variant):
    with pytest.raises(InputError, match=r"one\.zarr: variant .* needs at least 2 samples \(D_G"):
        StoreData(one_sample_store, _config(variant), 0, 1)


def test_d_g_paired_with_itself_trains_from_a_single_sample(one_sample_store):
    # loss.dg_positive self: D_G's positives are (y, y), so no second mask is needed
    cfg = _config("gan-gl", dg_positive="self", reward_scope="patch")
    assert cfg.uses_global and not cfg.needs_partner
    data = StoreData(one_sample_store, cfg, 0, 1)
    batch = data.batch(0)
    assert batch.y_other is None
    torch.manual_seed(0)
    models = build_models(cfg)
    metrics = train_step(models, build_optimizers(models, cfg.optim), batch, None, cfg, 0,
                         torch.Generator().manual_seed(1), StepState())
    assert 0 < metrics["reward"] < 1 and np.isfinite(metrics["loss_g"])


@pytest.mark.parametrize(("variant", "plain"), [("gan-gl-m", "gan-gl"), ("unet-m", "unet")])
def test_real_batch_variants_without_real_masks_say_which_variant_to_use(one_sample_store, variant, plain):
    with pytest.raises(InputError, match=rf"one\.zarr: variant {variant} needs real masks .*--variant {plain} to"):
        StoreData(one_sample_store, _config(variant, dg_positive="self", reward_scope="patch"), 0, 1)
