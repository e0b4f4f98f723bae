"""Which reward baseline trains GAN-GL best? none (paper), ema, self_critical, side by side.

    python research/reward_baselines.py [--steps 800] [--seeds 0 1] [--kind roads] [--json]
    python research/reward_baselines.py --smoke-test      # the same code path in seconds

Each baseline trains the same GAN-GL (same seed, same batches, CPU scale: unet_cpu with the
small discriminators, 8 patches of 128 px) for `--steps` steps through the real training
loop (`distpaint.train.local.train_local`), then repairs held-out whole masks (1024 px,
`mix` gaps centred uniformly, as in the paper) by whole-image inference (output = input OR
p > 0.5) and is scored with `distpaint.metrics.evaluate`: relative component difference,
clDice, MSE within the gaps and false fill; plus the spread of the advantage r - b during
training (the policy gradient's noise) and the share of steps whose advantage was exactly 0.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.synth import synth_array
from distpaint.metrics.evaluation import evaluate
from distpaint.train.checkpoint import latest_checkpoint, load_generator
from distpaint.train.config import config_from_dict
from distpaint.train.local import train_local

BASELINES = ("none", "ema", "self_critical")
SCORES = ("rel_component_diff", "cldice", "mse_gaps", "false_fill")


def recipe(kind: str, baseline: str, seed: int, steps: int, smoke: bool) -> dict:
    size = {"mask_size": 192, "n_masks": 4, "patch_size": 64, "batch_size": 4} if smoke else \
        {"mask_size": 512, "n_masks": 16, "patch_size": 128, "batch_size": 8, "refresh_every": 200}
    tiny = {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"}
    small = {"generator": "unet_cpu", "local_disc": "patchgan_small", "global_disc": "siamese_small"}
    return {"variant": "gan-gl", "seed": seed, "max_steps": steps, "checkpoint_every": steps,
            "log_every": 1, "model": tiny if smoke else small,
            "data": {"kind": kind, **size}, "loss": {"baseline": baseline, "global_margin": 32 if smoke else 128}}


def held_out(kind: str, size: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(truth, corrupted) pairs from seeds no training run uses."""
    gaps = GapConfig(kind="mix", hit_foreground=False)
    cases = []
    for i in range(count):
        truth = synth_array(kind, (size, size), 900_000 + i)
        corrupted, _ = corrupt(truth, gaps, np.random.default_rng(5_000 + i))
        cases.append((truth, corrupted))
    return cases


def score(checkpoint, cases) -> dict:
    g = load_generator(checkpoint).eval()
    rows = []
    with torch.inference_mode():
        for truth, corrupted in cases:
            p = g.predict_proba(torch.from_numpy(corrupted.astype(np.float32))[None, None])[0, 0].numpy()
            rows.append(evaluate(corrupted | (p > 0.5), truth, input=corrupted))
    return {k: float(np.nanmean([r[k] for r in rows])) for k in SCORES}


def run(baseline: str, args, seed: int, cases) -> dict:
    cfg = config_from_dict(recipe(args.kind, baseline, seed, args.steps, args.smoke_test))
    with tempfile.TemporaryDirectory() as out:
        tic = time.perf_counter()
        train_local(cfg, out)
        seconds = time.perf_counter() - tic
        with open(f"{out}/metrics.jsonl") as fh:
            adv = np.array([json.loads(line)["advantage"] for line in fh])
        result = score(latest_checkpoint(out), cases)
    return {**result, "advantage_std": float(adv.std()), "zero_advantage_share": float((adv == 0).mean()),
            "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--kind", default="roads")
    parser.add_argument("--eval-masks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke-test", action="store_true", help="tiny models, a few steps")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.smoke_test:
        args.steps, args.seeds, args.eval_masks = 6, [0], 1
    torch.set_num_threads(args.threads)
    cases = held_out(args.kind, 256 if args.smoke_test else 1024, args.eval_masks)
    tic = time.perf_counter()
    results = {}
    for baseline in BASELINES:
        runs = [run(baseline, args, s, cases) for s in args.seeds]
        results[baseline] = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
        results[baseline]["rel_component_diff_per_seed"] = [round(r["rel_component_diff"], 4) for r in runs]
    ref = results["none"]
    for r in results.values():
        r["mse_gaps_vs_none"] = round(r["mse_gaps"] / max(ref["mse_gaps"], 1e-9), 3)
    out = {"steps": args.steps, "seeds": args.seeds, "kind": args.kind, "results": results,
           "seconds": round(time.perf_counter() - tic, 1)}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
