"""research/reward_signal.py on a real (tiny, 2-step) GAN-GL run: every score is a probability,
patch and view levels are both measured, and a checkpoint without D_G is refused.

Run: .venv/bin/python -m pytest tests/test_research_reward_signal.py -q
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from distpaint.train.config import config_from_dict
from distpaint.train.local import train_local

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "research" / "reward_signal.py"
CFG = {
    "variant": "gan-gl", "checkpoint_every": 2,
    "model": {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"},
    "data": {"mask_size": 128, "n_masks": 3, "patch_size": 32, "batch_size": 4},
    "loss": {"global_margin": 16, "dg_positive": "self"},
}


def test_scores_patches_and_views(tmp_path):
    train_local(config_from_dict(CFG), tmp_path / "run", max_steps=2)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "run" / "checkpoints" / "step_00000002"),
                          "--steps", "3", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["view/perfect"]["n"] == 3 and summary["patch/perfect (y, y)"]["n"] == 12  # 3 steps x 4 patches
    for key, s in summary.items():
        if "above_0.999" in s:
            assert 0 < s["mean"] < 1, key
    assert summary["view/perfect - no repair"]["mean"] == pytest.approx(
        summary["view/perfect"]["mean"] - summary["view/no repair"]["mean"], abs=1e-9)


def test_refuses_a_run_without_global_discriminator(tmp_path):
    train_local(config_from_dict({**CFG, "variant": "unet"}), tmp_path / "unet", max_steps=2)
    spec = importlib.util.spec_from_file_location("reward_signal", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match="has no D_G"):
        module.scores(tmp_path / "unet" / "checkpoints" / "step_00000002", 1, 0)
