"""The model file, `model.pt`: a generator as inference loads it, with no training code.

A checkpoint directory (written by `distpaint.train.checkpoint`, installed under
`distpaint/weights/<name>/` for shipped models) holds `model.pt` next to the training-only
files (`train_state.pt`, `config.yaml`, `metrics.json`). `model.pt` is self-describing:

    {"format_version": 1,
     "generator": {"name": <registered variant, e.g. "unet_small">,
                   "config": <the variant's full config as a dict>,
                   "state_dict": <weights>},
     "variant": <training variant, e.g. "gan_gl">, "step": <optimisation steps>}

The registered name and the config are all `load_generator` needs to rebuild G through the
model registry (`distpaint.models.registry`), so inference never reads `config.yaml` (the
`TrainConfig`, which only training, fine-tuning and shipping read, through
`distpaint.train.checkpoint.load_config_of`) and never imports `distpaint.train`. Files are
read with `torch.load(weights_only=True)` (no arbitrary pickles).

    g = load_generator("runs/x/checkpoints/step_00000500")   # eval mode, on CPU
    spec = load_model_file("runs/x/checkpoints/step_00000500")["generator"]   # name, config
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from distpaint.errors import InputError
from distpaint.models.registry import config_to_dict, get_entry, model_config

__all__ = [
    "FORMAT_VERSION",
    "MODEL_FILE",
    "model_file_contents",
    "read_checkpoint_file",
    "load_model_file",
    "load_generator",
]

FORMAT_VERSION = 1
"""Version of the checkpoint files (`model.pt` and training's `train_state.pt`)."""
MODEL_FILE = "model.pt"
"""Name of the model file inside a checkpoint directory."""


def model_file_contents(generator: nn.Module, *, name: str, variant: str, step: int) -> dict:
    """What `torch.save` writes as `model.pt` for `generator` (unwrapped from DDP), registered
    as variant `name`, trained with training variant `variant` for `step` steps."""
    return {
        "format_version": FORMAT_VERSION,
        "generator": {"name": name, "config": config_to_dict(generator.config),
                      "state_dict": generator.state_dict()},
        "variant": variant,
        "step": step,
    }


def read_checkpoint_file(directory: str | Path, name: str, map_location: Any = "cpu") -> dict:
    """Contents of file `name` of checkpoint directory `directory`, checked to be of
    FORMAT_VERSION; InputError naming the file if it is missing, unreadable or foreign."""
    directory = Path(directory)
    file = directory / name
    if not file.is_file():
        raise InputError(f"{directory}: not a distpaint checkpoint (no {name})")
    try:
        data = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise InputError(f"{file}: cannot read checkpoint ({exc})") from None
    if data.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{file}: checkpoint format {data.get('format_version')} is not {FORMAT_VERSION}")
    return data


def load_model_file(path: str | Path, map_location: Any = "cpu") -> dict:
    """Raw contents of `model.pt` of checkpoint directory `path` (InputError if unreadable)."""
    return read_checkpoint_file(Path(path), MODEL_FILE, map_location)


def load_generator(path: str | Path, map_location: Any = "cpu") -> nn.Module:
    """G of checkpoint directory `path` (or its `model.pt`) in eval mode; needs no training config."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    spec = load_model_file(path, map_location)["generator"]
    entry = get_entry(spec["name"], "generator")
    model = entry.model_cls(model_config(spec["name"], "generator", **spec["config"]))
    model.load_state_dict(spec["state_dict"])
    return model.eval()
