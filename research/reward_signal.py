"""Does D_G's reward tell good repairs from bad ones? Side-by-side scores of a trained D_G.

For steps of the run's own training data (the checkpoint's config and seed), D_G scores:
- on patch pairs, as it is trained (eq. 8): complete vs another mask's complete patch
  (positives), G's thresholded output vs its complete patch (negatives), and the unrepaired
  input vs its complete patch;
- on the global view, as it gives the reward (eq. 7, 9): the window recomposed from G's
  Bernoulli-sampled patches (the reward of training), from the unrepaired input patches (no
  repair at all) and from the complete patches (a perfect repair), each against Y's window.

A reward that scores "no repair" as high as "perfect repair" gives the policy gradient no
signal (its advantage is noise around 0). Prints the mean of each score, the fraction of
rewards above 0.999, and the gap "perfect - none" per level, so that patch and view compare
in one run.

    python research/reward_signal.py runs/variants8k/gan-g/checkpoints/step_00008000 --steps 40
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distpaint.train.checkpoint import load_config_of, restore  # noqa: E402
from distpaint.train.data import LocalData  # noqa: E402
from distpaint.train.recompose import InMemoryRecomposer  # noqa: E402
from distpaint.train.step import build_models, build_optimizers  # noqa: E402
from distpaint.train import losses  # noqa: E402


def scores(checkpoint: Path, steps: int, first: int) -> dict[str, list[float]]:
    cfg = load_config_of(checkpoint)
    if not cfg.uses_global:
        raise SystemExit(f"{checkpoint}: variant {cfg.variant} has no D_G")
    models = build_models(cfg, fresh=False)
    restore(checkpoint, models, build_optimizers(models, cfg.optim))
    g, dg = models.g.eval(), models.d_global.eval()
    data = LocalData(cfg.data, cfg.seed, cfg.variant)
    out: dict[str, list[float]] = {}
    sampler = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for step in range(first, first + steps):
            if data.is_real_step(step):
                continue
            batch = data.batch(step)
            prob = losses.foreground_prob(g(batch.x))
            fake = (prob > cfg.loss.threshold).float()
            sampled = torch.maximum(torch.bernoulli(prob, generator=sampler), batch.x)
            for key, value in (("patch/positive (y1, y2)", dg(batch.y, batch.y_other)),
                               ("patch/negative (G thresholded, y)", dg(fake, batch.y)),
                               ("patch/no repair (x, y)", dg(batch.x, batch.y)),
                               ("patch/perfect (y, y)", dg(batch.y, batch.y))):
                out.setdefault(key, []).extend(value.tolist())
            rec = InMemoryRecomposer(cfg.loss.global_max_size, cfg.loss.global_margin)
            rec.add_mask(batch.name, data.pool_for(step)[batch.name])
            for tag, patches in (("G sampled (the reward)", sampled), ("no repair", batch.x), ("perfect", batch.y)):
                rec.put(batch.name, step, patches[:, 0].to(torch.uint8).numpy(), batch.ys, batch.xs, tag=tag)
                view = rec.global_view(batch.name, step, tag=tag)
                r = dg(torch.from_numpy(view.x_hat).float()[None, None], torch.from_numpy(view.truth).float()[None, None])
                out.setdefault(f"view/{tag}", []).append(float(r))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--steps", type=int, default=40, help="training steps whose batches are scored")
    ap.add_argument("--first", type=int, default=100_000, help="first step (default: past training, unseen batches)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = scores(args.checkpoint, args.steps, args.first)
    summary = {k: {"mean": float(np.mean(v)), "above_0.999": float(np.mean(np.array(v) > 0.999)), "n": len(v)}
               for k, v in out.items()}
    for level, none_key, perfect_key in (("patch", "patch/no repair (x, y)", "patch/perfect (y, y)"),
                                         ("view", "view/no repair", "view/perfect")):
        gap = np.array(out[perfect_key]) - np.array(out[none_key])
        summary[f"{level}/perfect - no repair"] = {"mean": float(np.mean(gap)), "n": len(gap)}
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"D_G of {args.checkpoint}, batches of steps {args.first}..{args.first + args.steps - 1}")
    for k, s in summary.items():
        extra = f"   above 0.999: {s['above_0.999']:.2f}" if "above_0.999" in s else ""
        print(f"{k:40s} {s['mean']:.4f}  (n={s['n']}){extra}")


if __name__ == "__main__":
    main()
