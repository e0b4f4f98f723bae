"""research/reward_signal.py on a real (tiny, 2-step) GAN-GL run: every score is a probability,
patch and view levels are both measured, each score is the run's D_G on the pair it names
(recomputed without the script's re-composition), and a checkpoint without D_G is refused.

Run: .venv/bin/python -m pytest tests/test_research_reward_signal.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from distpaint.train.checkpoint import load_config_of, restore
from distpaint.train.config import config_from_dict
from distpaint.train.data import LocalData
from distpaint.train.local import train_local
from distpaint.train.recompose import view_window
from distpaint.train.step import build_models, build_optimizers
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "research" / "reward_signal.py"
CFG = {
    "variant": "gan-gl", "checkpoint_every": 2,
    "model": {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"},
    "data": {"mask_size": 128, "n_masks": 3, "patch_size": 32, "batch_size": 4},
    "loss": {"global_margin": 16, "dg_positive": "self"},
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A 2-step GAN-GL run's checkpoint (trained once for the tests that score it)."""
    out = tmp_path_factory.mktemp("reward_signal") / "run"
    train_local(config_from_dict(CFG), out, max_steps=2)
    return out / "checkpoints" / "step_00000002"


def test_scores_patches_and_views(ckpt):
    out = subprocess.run([sys.executable, str(SCRIPT), str(ckpt),
                          "--steps", "3", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["view/perfect"]["n"] == 3 and summary["patch/perfect (y, y)"]["n"] == 12  # 3 steps x 4 patches
    for key, s in summary.items():
        if "above_0.999" in s:
            assert 0 < s["mean"] < 1, key
    assert summary["view/perfect - no repair"]["mean"] == pytest.approx(
        summary["view/perfect"]["mean"] - summary["view/no repair"]["mean"], abs=1e-9)


def _module():
    return load_script(SCRIPT)


def test_scores_are_the_run_d_g_on_the_pairs_they_name(ckpt):
    """Each score is the trained D_G on the pair it names, recomputed here from the checkpoint
    and the run's data without the script's re-composition: the perfect view is Y's window
    scored against itself, the unrepaired view holds the input patches pasted into Y's window."""
    first = 50
    got = _module().scores(ckpt, 2, first)
    cfg = load_config_of(ckpt)
    models = build_models(cfg, fresh=False)
    restore(ckpt, models, build_optimizers(models, cfg.optim))
    dg = models.d_global.eval()
    data = LocalData(cfg.data, cfg.seed, cfg.variant)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()[None, None]  # noqa: E731
    with torch.no_grad():
        for i, step in enumerate(range(first, first + 2)):
            batch = data.batch(step)
            whole = data.pool_for(step)[batch.name]
            p = batch.y.shape[-1]
            y0, y1, x0, x1 = view_window(whole.shape, batch.ys, batch.xs, (p, p), cfg.loss.global_margin,
                                         cfg.loss.global_max_size)
            window = whole[y0:y1, x0:x1]
            assert got["view/perfect"][i] == pytest.approx(float(dg(t(window), t(window))), abs=1e-6)
            unrepaired = window.copy()
            for k, (py, px) in enumerate(zip(batch.ys, batch.xs)):
                unrepaired[py - y0:py - y0 + p, px - x0:px - x0 + p] = batch.x[k, 0].numpy() > 0.5
            assert got["view/no repair"][i] == pytest.approx(float(dg(t(unrepaired), t(window))), abs=1e-6)
            m = batch.y.shape[0]
            assert got["patch/perfect (y, y)"][i * m:(i + 1) * m] == pytest.approx(dg(batch.y, batch.y).tolist(), abs=1e-6)
            assert got["patch/positive (y1, y2)"][i * m:(i + 1) * m] == pytest.approx(
                dg(batch.y, batch.y_other).tolist(), abs=1e-6)


def test_refuses_a_run_without_global_discriminator(tmp_path):
    train_local(config_from_dict({**CFG, "variant": "unet"}), tmp_path / "unet", max_steps=2)
    module = _module()
    with pytest.raises(SystemExit, match="has no D_G"):
        module.scores(tmp_path / "unet" / "checkpoints" / "step_00000002", 1, 0)
