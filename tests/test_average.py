"""Checkpoint averaging (distpaint.train.average, `distpaint average`) on real training runs.

Run: .venv/bin/python -m pytest tests/test_average.py -q
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from distpaint.cli import app
from distpaint.errors import InputError
from distpaint.infer.predictor import resolve_model
from distpaint.models.modelfile import load_generator
from distpaint.train.average import average_checkpoints
from distpaint.train.config import config_from_dict
from distpaint.train.local import train_local

torch.set_num_threads(1)

CFG = {
    "variant": "gan-gl", "log_every": 1, "checkpoint_every": 2, "keep_checkpoints": 5,
    "model": {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"},
    "data": {"mask_size": 128, "n_masks": 3, "patch_size": 32, "batch_size": 4},
    "loss": {"global_margin": 16},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("avg") / "run"
    train_local(config_from_dict(CFG), out, max_steps=6)
    return out


def test_average_of_the_last_checkpoints_is_their_mean(run, tmp_path):
    result = CliRunner().invoke(app, ["average", str(run), "--last", "2", "--out", str(tmp_path / "avg")])
    assert result.exit_code == 0, result.output
    a, b = (load_generator(run / "checkpoints" / f"step_0000000{s}").state_dict() for s in (4, 6))
    avg = load_generator(tmp_path / "avg").state_dict()
    floats = [k for k, v in avg.items() if v.is_floating_point()]
    assert floats and any(not torch.equal(a[k], b[k]) for k in floats)
    for key, value in avg.items():
        expected = (a[key] + b[key]) / 2 if value.is_floating_point() else b[key]
        torch.testing.assert_close(value, expected)
    assert json.loads((tmp_path / "avg" / "metrics.json").read_text())["steps"] == [4, 6]
    probs = resolve_model(tmp_path / "avg")(torch.zeros(1, 1, 64, 64).numpy())
    assert probs.shape == (1, 1, 64, 64)
    # a fine-tuning run can start from it
    cfg = config_from_dict({**CFG, "model": {**CFG["model"], "init_generator": str(tmp_path / "avg")}})
    train_local(cfg, tmp_path / "tuned", max_steps=1)


def test_average_refuses_what_it_cannot_average(run, tmp_path):
    ckpts = sorted((run / "checkpoints").iterdir())
    out = average_checkpoints(ckpts, tmp_path / "avg")
    with pytest.raises(InputError, match="already exists"):
        average_checkpoints(ckpts, out)
    average_checkpoints(ckpts[:1], out, overwrite=True)
    assert json.loads((out / "metrics.json").read_text())["steps"] == [2]
    with pytest.raises(InputError, match="no model.pt"):
        average_checkpoints([tmp_path], tmp_path / "x")
    other = tmp_path / "other"  # another run: its recipe differs
    train_local(config_from_dict({**CFG, "seed": 7}), other, max_steps=2)
    with pytest.raises(InputError, match="config.yaml differs"):
        average_checkpoints([ckpts[-1], other / "checkpoints" / "step_00000002"], tmp_path / "y")
    too_many = CliRunner().invoke(app, ["average", str(run), "--last", "9", "--out", str(tmp_path / "z")])
    assert too_many.exit_code != 0 and "keeps 3 checkpoint(s)" in str(too_many.exception)
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()
