"""Can the global discriminator D_G learn its task? Similarity heads side by side.

    python research/discriminators.py [--steps 300] [--seeds 0 1] [--kind roads] [--positive other] [--json]

D_G's task (eq. 8) is to score pairs of complete patches of two different masks (y1, y2) as
similar and an inpainted patch with its own complete patch (G(x1), y1) as dissimilar
(`--positive self`: the positives are (y1, y1), as with `loss.dg_positive: self`). Here the
"inpainted" patch is the corrupted input x1 itself (what G produces before it has learned
anything), so the task is as easy as it will ever be. Each variant trains from the same seed on
the same batches of the real training data path (`distpaint.train.data.LocalData`) and is then
scored on held-out batches: mean similarity of positive and negative pairs and the ROC AUC of
positive-vs-negative logits (0.5: D_G cannot tell them apart, so the policy-gradient reward it
gives G is noise). Variants:

- `paper_dot`: sigmoid(f(a) . f(b)), average pooling (the paper);
- `layer_scaled_dot`: LayerNorm'd embeddings, dot / sqrt(dim);
- `weighted_avg`: learned diagonal bilinear similarity sigmoid(w . (f(a) * f(b)) + c);
- `weighted_max`: the same with global max pooling;
- `l1_avg`, `l1_max`: sigmoid(w . |f(a) - f(b)| + c) with average / max pooling.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from distpaint.models import create_model
from distpaint.train import losses
from distpaint.train.config import DataConfig
from distpaint.train.data import LocalData

VARIANTS = {
    "paper_dot": {"similarity": "dot"},
    "layer_scaled_dot": {"embed_norm": "layer", "similarity": "scaled_dot"},
    "weighted_avg": {"similarity": "weighted"},
    "weighted_max": {"similarity": "weighted", "pool": "max"},
    "l1_avg": {"similarity": "l1"},
    "l1_max": {"similarity": "l1", "pool": "max"},
}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive logit > a negative one), ties counted half (Mann-Whitney U / n_pos n_neg)."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def pair_logits(d, batch, positive: str = "other") -> tuple[torch.Tensor, torch.Tensor]:
    m = batch.y.shape[0]
    partner = batch.y if positive == "self" else batch.y_other
    logits = d.logits(torch.cat([batch.y, batch.x]), torch.cat([partner, batch.y]))
    return logits[:m], logits[m:]


def run(variant: str, args, seed: int) -> dict:
    data_cfg = DataConfig(kind=args.kind, mask_size=args.mask_size, n_masks=args.n_masks, patch_size=args.patch,
                          batch_size=8)
    train, held_out = LocalData(data_cfg, seed), LocalData(data_cfg, seed + 1000)
    torch.manual_seed(seed)
    d = create_model(args.model, "global_disc", **VARIANTS[variant])
    opt = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.5, 0.999))
    tic = time.perf_counter()
    for step in range(args.steps):
        pos, neg = pair_logits(d, train.batch(step), args.positive)
        loss = losses.siamese_d_loss(pos, neg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - tic
    d.eval()
    with torch.no_grad():
        parts = [pair_logits(d, held_out.batch(s), args.positive) for s in range(args.eval_batches)]
    pos = torch.cat([p for p, _ in parts]).numpy()
    neg = torch.cat([n for _, n in parts]).numpy()
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    return {"auc": auc(pos, neg), "sim_pos": float(sig(pos).mean()), "sim_neg": float(sig(neg).mean()),
            "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--kind", default="roads")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--model", default="siamese_small")
    parser.add_argument("--mask-size", type=int, default=512, help="side of the synthetic whole masks")
    parser.add_argument("--n-masks", type=int, default=16, help="masks in the training and held-out pools")
    parser.add_argument("--eval-batches", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--positive", choices=["other", "self"], default="other",
                        help="positive pairs: (y1, y2) of two masks (the paper) or (y, y)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for variant in args.variants:
        runs = [run(variant, args, s) for s in args.seeds]
        results[variant] = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
        results[variant]["auc_per_seed"] = [round(r["auc"], 4) for r in runs]
    base = results["paper_dot"]["auc"] - 0.5 if "paper_dot" in results else 0.0
    for r in results.values():  # how far above chance, relative to the paper's head
        r["auc_above_chance_vs_paper"] = round((r["auc"] - 0.5) / base, 2) if abs(base) > 1e-3 else None
    out = {"steps": args.steps, "seeds": args.seeds, "kind": args.kind, "model": args.model, "positive": args.positive,
           "patch": args.patch, "results": results}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
