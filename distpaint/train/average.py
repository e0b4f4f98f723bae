"""Checkpoint averaging: one generator whose weights are the mean of several checkpoints' G.

Adversarial training makes G oscillate from checkpoint to checkpoint (on a roads validation set
the relative component difference of the checkpoints of the last 3750 of 10000 steps, 250
apart, swings between 0.88 and 0.94). The mean of the weights of the last checkpoints of one run, as in
stochastic weight averaging (Izmailov et al., 2018) and the weight-averaged generators of
GANs, is steadier: better than the typical checkpoint and about as good as the best one,
without choosing (figures in the card of the shipped `roads` model). Batch-norm running statistics are averaged too, a cheap
approximation of re-estimating them for the averaged weights (which SWA does, and which
this module does not).

The result is a checkpoint directory for inference and shipping (`model.pt`, `config.yaml`,
`metrics.json` naming the sources); it has no optimiser state, so training cannot resume from
it, but `--init` can start a new run from it.

    distpaint average runs/roads/checkpoints/step_000082* runs/roads/checkpoints/step_00009* \\
        --out runs/roads/average
    distpaint average runs/roads --last 8 --out runs/roads/average      # the run's last 8

    from distpaint.train.average import average_checkpoints
    average_checkpoints([ckpt_a, ckpt_b], "runs/x/average")
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from distpaint.errors import InputError
from distpaint.models.modelfile import MODEL_FILE, load_model_file
from distpaint.train.checkpoint import CHECKPOINTS, load_config_of

__all__ = ["average_checkpoints", "run_checkpoints"]


def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoint directories of run `run_dir` (or of a folder of `step_*` checkpoints),
    oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        folder = Path(run_dir)
    found = sorted(p for p in folder.glob("step_*") if (p / MODEL_FILE).is_file()) if folder.is_dir() else []
    if not found:
        raise InputError(f"{run_dir}: no checkpoints (expected {Path(run_dir) / CHECKPOINTS}/step_*/model.pt)")
    return found


def average_checkpoints(paths: Sequence[str | Path], out: str | Path, *, overwrite: bool = False) -> Path:
    """Write checkpoint directory `out` whose G is the mean of the Gs of `paths` (same
    architecture). Floating-point weights and buffers are averaged; integer buffers (batch-norm
    step counters) and the config come from the newest checkpoint. Atomic; refuses an
    existing `out` unless `overwrite`."""
    if not paths:
        raise InputError("average: no checkpoints given")
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: already exists (pass overwrite to replace it)")
    read = sorted(((Path(p), load_model_file(p)) for p in set(map(Path, paths))),
                  key=lambda pair: int(pair[1].get("step", 0)))  # oldest first
    paths, blobs = [p for p, _ in read], [b for _, b in read]
    newest = blobs[-1]
    spec = newest["generator"]
    # one recipe means one generator architecture, and checkpoints of one run
    recipes = {p: (p / "config.yaml").read_bytes() if (p / "config.yaml").is_file() else None for p in paths}
    for path, recipe in recipes.items():
        if recipe is None or recipe != recipes[paths[-1]]:
            raise InputError(f"{path}: its config.yaml differs from {paths[-1]}'s (or is missing); "
                             "average checkpoints of one run")
    state = {}
    for key, value in spec["state_dict"].items():
        if value.is_floating_point():
            stacked = torch.stack([b["generator"]["state_dict"][key].to(torch.float64) for b in blobs])
            state[key] = stacked.mean(0).to(value.dtype)
        else:
            state[key] = value.clone()
    averaged = {**newest, "generator": {**spec, "state_dict": state}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        torch.save(averaged, tmp / MODEL_FILE)
        shutil.copy2(paths[-1] / "config.yaml", tmp / "config.yaml")
        load_config_of(tmp)  # the copied config must still load
        sources = {"averaged_from": [str(p) for p in paths],
                   "steps": [int(b.get("step", 0)) for b in blobs]}
        (tmp / "metrics.json").write_text(json.dumps(sources, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
