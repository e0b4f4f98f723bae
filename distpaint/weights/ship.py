"""Ship a trained checkpoint as a named model in distpaint/weights/ (a maintainer's tool).

    python -m distpaint.weights.ship RUN_OR_CHECKPOINT --name roads --kinds roads \\
        --description "Road networks from satellite segmentations" \\
        --command "distpaint train --config roads --local --out runs/roads" \\
        [--scores quality.json --scores-key roads] [--threshold 0.5]

Copies the generator (`model.pt`, inference only: no optimiser or discriminator state) and the
training recipe (`config.yaml`) of the newest checkpoint of a run directory (or of the given
checkpoint directory), measures its parameters and its CPU speed on 2 threads, and writes
the model card `card.json` with the exact command, seed, steps and the benchmark scores taken
from a bench/quality.py JSON file. Refuses a generator file over 25 MB (the package limit).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from distpaint.errors import InputError
from distpaint.weights import WEIGHTS_DIR

__all__ = ["ship", "cpu_speed"]

MAX_BYTES = 25 * 2**20
"""Largest generator file shipped in the package."""


def cpu_speed(checkpoint: Path, size: int = 1024, threads: int = 2, repeats: int = 3) -> float:
    """Mpx/s of the checkpoint's generator on one (size x size) sparse input, best of `repeats`."""
    import torch

    from distpaint.train.checkpoint import load_generator

    torch.set_num_threads(threads)
    g = load_generator(checkpoint).eval()
    x = (torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0)) > 0.95).float()
    best = float("inf")
    with torch.inference_mode():
        g(x)
        for _ in range(repeats):
            tic = time.perf_counter()
            g(x)
            best = min(best, time.perf_counter() - tic)
    return size * size / best / 1e6


def ship(source: Path, name: str, *, kinds: list[str], description: str, command: str,
         scores: dict | None = None, threshold: float = 0.5) -> Path:
    """Install `source` (a run directory or a checkpoint) as shipped model `name`."""
    import torch

    from distpaint.models.layers import count_parameters
    from distpaint.train.checkpoint import latest_checkpoint, load_config_of, load_generator

    ckpt = latest_checkpoint(source) if (source / "checkpoints").is_dir() else source
    if ckpt is None or not (ckpt / "model.pt").is_file():
        raise InputError(f"{source}: no checkpoint with a model.pt")
    if (ckpt / "model.pt").stat().st_size > MAX_BYTES:
        raise InputError(f"{ckpt}/model.pt is over {MAX_BYTES >> 20} MB: too large to ship")
    cfg = load_config_of(ckpt)
    g = load_generator(ckpt)
    blob = torch.load(ckpt / "model.pt", weights_only=True)
    card = {
        "name": name,
        "description": description,
        "kinds": kinds,
        "generator": blob["generator"]["name"],
        "params": count_parameters(g),
        "variant": cfg.variant,
        "steps": int(blob.get("step", 0)),
        "seed": cfg.seed,
        "command": command,
        "config": "config.yaml",
        "threshold": threshold,
        "mpx_per_s_cpu2": round(cpu_speed(ckpt), 3),
        "scores": scores or {},
        "source_checkpoint": str(ckpt),
    }
    target = WEIGHTS_DIR / name
    with tempfile.TemporaryDirectory(dir=WEIGHTS_DIR) as tmp:
        staged = Path(tmp) / name
        staged.mkdir()
        shutil.copy2(ckpt / "model.pt", staged / "model.pt")
        shutil.copy2(ckpt / "config.yaml", staged / "config.yaml")
        (staged / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)  # atomic: the old model or the new one, never half of each
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--kinds", nargs="+", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument("--scores", type=Path, help="JSON file of scores (e.g. from bench/quality.py)")
    parser.add_argument("--scores-key", nargs="*", default=[], help="path of keys into the scores JSON")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()
    scores = None
    if args.scores:
        scores = json.loads(args.scores.read_text())
        for key in args.scores_key:
            scores = scores[key]
    target = ship(args.source, args.name, kinds=args.kinds, description=args.description,
                  command=args.command, scores=scores, threshold=args.threshold)
    print(json.dumps(json.loads((target / "card.json").read_text()), indent=2))


if __name__ == "__main__":
    main()
