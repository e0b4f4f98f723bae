"""Training checkpoints: one directory format that training resumes from exactly and inference
loads without any training code or config.

Layout of a checkpoint directory (written atomically: temp dir, then rename):
    model.pt          G only, the model file of `distpaint.models.modelfile`
                      ({"format_version", "generator": {"name", "config", "state_dict"},
                      "variant", "step"}); enough for `load_generator(path)`
    train_state.pt    step, D_L / D_G weights, every optimiser state, the step state (reward
                      moving average), RNG states (torch CPU/CUDA, the Bernoulli sampler, a NumPy
                      Generator, Python's `random`)
    config.yaml       the full `TrainConfig`
    metrics.json      metrics at save time
A run directory keeps checkpoints as `checkpoints/step_00000500/`; `latest_checkpoint(run_dir)`
finds the newest. Files are read with `torch.load(weights_only=True)` (no arbitrary pickles).

This module is the training side: saving, resuming (weights, optimiser and RNG states) and the
run's `TrainConfig` (`load_config_of`). Reading `model.pt` lives below training, in
`distpaint.models.modelfile`, so inference imports no training code; `load_generator`,
`load_model_file` and `FORMAT_VERSION` are re-exported here for existing callers
(`distpaint.weights.ship`, scripts).

    cfg = load_config_of("runs/x/checkpoints/step_00000500")   # the run's TrainConfig
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from distpaint.errors import InputError
from distpaint.models.modelfile import (FORMAT_VERSION, MODEL_FILE, load_generator, load_model_file,
                                        model_file_contents, read_checkpoint_file)
from distpaint.train.config import TrainConfig, config_from_dict, dump_config
from distpaint.train.step import Models, Optimizers, StepState

__all__ = [
    "FORMAT_VERSION",
    "RngStates",
    "TrainState",
    "save_checkpoint",
    "load_train_state",
    "load_model_file",
    "restore",
    "load_generator",
    "load_config_of",
    "latest_checkpoint",
    "checkpoint_name",
]

CHECKPOINTS = "checkpoints"
"""Folder of a run directory that holds its checkpoints."""
TRAIN_STATE_FILE = "train_state.pt"


@dataclass
class RngStates:
    """Every random state a step depends on."""

    torch_cpu: torch.Tensor
    """`torch.get_rng_state()`."""
    sampler: torch.Tensor
    """State of the Bernoulli sampler's `torch.Generator`."""
    numpy: dict | None = None
    """`Generator.bit_generator.state` of the data RNG, if the data uses one."""
    python: list | None = None
    """`random.getstate()` as a list."""
    torch_cuda: list | None = None
    """`torch.cuda.get_rng_state_all()` when CUDA is available."""

    @classmethod
    def capture(cls, sampler: torch.Generator, data_rng: np.random.Generator | None = None) -> "RngStates":
        """The current states."""
        py = random.getstate()
        return cls(
            torch_cpu=torch.get_rng_state(),
            sampler=sampler.get_state(),
            numpy=None if data_rng is None else data_rng.bit_generator.state,
            python=[py[0], list(py[1]), py[2]],
            torch_cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        )

    def apply(self, sampler: torch.Generator, data_rng: np.random.Generator | None = None) -> None:
        """Restore the states into the global RNGs, `sampler` and `data_rng`."""
        torch.set_rng_state(self.torch_cpu)
        sampler.set_state(self.sampler)
        if data_rng is not None and self.numpy is not None:
            data_rng.bit_generator.state = self.numpy
        if self.python is not None:
            random.setstate((self.python[0], tuple(self.python[1]), self.python[2]))
        if self.torch_cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.torch_cuda)


@dataclass
class TrainState:
    """What `restore` returns besides the restored models and optimisers."""

    step: int
    """Steps completed when the checkpoint was written."""
    state: StepState
    """Step state (reward moving average, counters)."""
    rng: RngStates
    """Random states to apply."""
    metrics: dict
    """Metrics saved with the checkpoint."""
    config: TrainConfig
    """Config of the run."""


def _unwrap(module: nn.Module | None) -> nn.Module | None:
    return getattr(module, "module", module)  # DDP keeps the model in .module


def _state(obj: Any) -> Any:
    return None if obj is None else _unwrap(obj).state_dict() if isinstance(obj, nn.Module) else obj.state_dict()


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint of `step`."""
    return f"step_{step:08d}"


def save_checkpoint(path: str | Path, *, config: TrainConfig, models: Models, opts: Optimizers,
                    step: int, state: StepState, rng: RngStates, metrics: dict | None = None) -> Path:
    """Write a checkpoint directory at `path` atomically (replacing one already there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = _unwrap(models.g)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        torch.save(model_file_contents(g, name=config.model.generator, variant=config.variant,
                                       step=step), tmp / MODEL_FILE)
        torch.save({
            "format_version": FORMAT_VERSION,
            "step": step,
            "d_local": _state(models.d_local),
            "d_global": _state(models.d_global),
            "opt_g": _state(opts.g),
            "opt_d_local": _state(opts.d_local),
            "opt_d_global": _state(opts.d_global),
            "step_state": {"ema_reward": state.ema_reward, "history": dict(state.history)},
            "rng": {k: getattr(rng, k) for k in ("torch_cpu", "sampler", "numpy", "python", "torch_cuda")},
        }, tmp / TRAIN_STATE_FILE)
        (tmp / "config.yaml").write_text(dump_config(config))
        (tmp / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, sort_keys=True))
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _replace_dir(src: Path, dst: Path) -> None:
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def load_config_of(path: str | Path) -> TrainConfig:
    """The `TrainConfig` saved in checkpoint directory `path` (its `config.yaml`)."""
    file = Path(path) / "config.yaml"
    if not file.is_file():
        raise InputError(f"{path}: not a distpaint checkpoint (no config.yaml)")
    return config_from_dict(yaml.safe_load(file.read_text()), str(file))


def load_train_state(path: str | Path, map_location: Any = "cpu") -> dict:
    """Raw contents of `train_state.pt`."""
    return read_checkpoint_file(Path(path), TRAIN_STATE_FILE, map_location)


def restore(path: str | Path, models: Models, opts: Optimizers, map_location: Any = "cpu") -> TrainState:
    """Load weights and optimiser states of checkpoint `path` into `models` and `opts` (built
    from the same config) and return the step, step state, RNG states and metrics."""
    path = Path(path)
    model_file = load_model_file(path, map_location)
    train = load_train_state(path, map_location)
    _unwrap(models.g).load_state_dict(model_file["generator"]["state_dict"])
    for name in ("d_local", "d_global"):
        module, saved = getattr(models, name), train[name]
        if (module is None) != (saved is None):
            raise InputError(f"{path}: checkpoint and config disagree on {name}")
        if module is not None:
            _unwrap(module).load_state_dict(saved)
    for name in ("g", "d_local", "d_global"):
        opt, saved = getattr(opts, name), train[f"opt_{name}"]
        if opt is not None and saved is not None:
            opt.load_state_dict(saved)
    ss = train["step_state"]
    rng = RngStates(**train["rng"])
    metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
    return TrainState(train["step"], StepState(ss["ema_reward"], dict(ss["history"])), rng, metrics,
                      load_config_of(path))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Newest complete checkpoint under `run_dir/checkpoints`, or None."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    found = sorted(p for p in root.glob("step_*") if (p / TRAIN_STATE_FILE).is_file())
    return found[-1] if found else None
