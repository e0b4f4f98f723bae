"""Which reward baseline trains GAN-GL best? none (paper), ema, self_critical, side by side.

    python bench/reward_baselines.py [--steps 150] [--seeds 0 1] [--json]

Each baseline trains the same tiny GAN-GL (same seeds, same batches) for `--steps` steps, then
is evaluated on held-out masks: cross-entropy, gap recall (foreground recovered inside the
erased regions, threshold 0.5, output = input OR prediction) and false-positive rate outside
them; plus the spread of the advantage r - b during training (the policy gradient's noise).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from distpaint.train import losses
from distpaint.train.config import config_from_dict
from distpaint.train.data import LocalData
from distpaint.train.recompose import InMemoryRecomposer
from distpaint.train.step import StepState, build_models, build_optimizers, train_step

BASE = {
    "variant": "gan-gl",
    "model": {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"},
    "data": {"mask_size": 192, "n_masks": 4, "patch_size": 48, "batch_size": 4},
    "loss": {"global_margin": 24},
}


def evaluate(g, cfg, seed: int) -> dict:
    held_out = LocalData(cfg.data, seed + 1000, cfg.variant)
    ce, hit, miss_total, fp, bg = [], 0.0, 0.0, 0.0, 0.0
    g.eval()
    with torch.no_grad():
        for step in range(8):
            b = held_out.batch(step)
            logits = g(b.x)
            ce.append(losses.ce_loss(logits, b.y).item())
            pred = torch.maximum((losses.foreground_prob(logits) > 0.5).float(), b.x)
            gaps = b.y * b.region
            hit += (pred * gaps).sum().item()
            miss_total += gaps.sum().item()
            fp += (pred * (1 - b.y)).sum().item()
            bg += (1 - b.y).sum().item()
    g.train()
    return {"val_ce": np.mean(ce), "gap_recall": hit / max(miss_total, 1), "fp_rate": fp / max(bg, 1)}


def run(baseline: str, steps: int, seed: int) -> dict:
    cfg = config_from_dict({**BASE, "seed": seed, "loss": {**BASE["loss"], "baseline": baseline}})
    torch.manual_seed(seed)
    models = build_models(cfg)
    opts = build_optimizers(models, cfg.optim)
    data = LocalData(cfg.data, seed, cfg.variant)
    rec = InMemoryRecomposer(cfg.loss.global_max_size, cfg.loss.global_margin)
    for name, truth in data.masks.items():
        rec.add_mask(name, truth)
    sampler, state = torch.Generator().manual_seed(seed + 1), StepState()
    adv = [train_step(models, opts, data.batch(s), rec, cfg, s, sampler, state)["advantage"] for s in range(steps)]
    return {**evaluate(models.g, cfg, seed), "advantage_std": float(np.std(adv))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tic = time.perf_counter()
    results = {}
    for baseline in ("none", "ema", "self_critical"):
        runs = [run(baseline, args.steps, s) for s in args.seeds]
        results[baseline] = {k: round(float(np.mean([r[k] for r in runs])), 5) for k in runs[0]}
    ref = results["none"]
    for name, r in results.items():
        r["gap_recall_vs_none"] = round(r["gap_recall"] / max(ref["gap_recall"], 1e-9), 3)
        r["val_ce_vs_none"] = round(r["val_ce"] / ref["val_ce"], 3)
    out = {"steps": args.steps, "seeds": args.seeds, "results": results,
           "seconds": round(time.perf_counter() - tic, 1)}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
