"""Make the README's picture: a synthetic road mask with gaps, repaired by a shipped model.

    python docs/figure.py [--model roads] [--size 768] [--seed 7] [--out docs/images/repair.png]

Three panels side by side: the damaged input (white) with the removed pixels (grey), the
repair (input white, pixels the model added red), and the truth. The mask and its gaps are
synthetic, from seeds disjoint from training and from the benchmark sets, so the picture is a
held-out example, not a training one. The panels are drawn with the demo report's colours.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.synth import synth_array
from distpaint.demo.report import overlay
from distpaint.infer.predictor import resolve_model
from distpaint.infer.tiling import round_up

SEED_OFFSET = 7_000_001
"""Added to --seed: away from training (small seeds) and benchmark (>= 2**32) seeds."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="roads")
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/images/repair.png"))
    args = parser.parse_args()
    import imageio.v3 as iio

    seed = args.seed + SEED_OFFSET
    truth = synth_array("roads", (args.size, args.size), seed)
    damaged, gaps = corrupt(truth, GapConfig(kind="mix"), np.random.default_rng(seed + 1))
    model = resolve_model(args.model)
    side = round_up(args.size, int(model.align))
    x = np.zeros((1, 1, side, side), np.float32)
    x[0, 0, : args.size, : args.size] = damaged
    probs = np.asarray(model(x))[0, 0, : args.size, : args.size]
    repaired = damaged | (probs > 0.5)
    gutter = np.full((args.size, 12, 3), 40, np.uint8)
    panels = [overlay(damaged, under=gaps), gutter, overlay(damaged, repaired), gutter, overlay(truth)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, np.concatenate(panels, axis=1), extension=".png")
    print(f"wrote {args.out}: input with gaps (grey) | {args.model} repair (added red) | truth")


if __name__ == "__main__":
    main()
