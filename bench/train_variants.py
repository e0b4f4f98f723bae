"""Train every variant of the paper under the same budget, for the quality table.

    python bench/train_variants.py --out runs/variants [--recipe variants] [--steps N]
                                   [--variants unet cnn gan-l gan-g gan-gl gan-gl-m [unet-m]]
    python bench/train_variants.py --out /tmp/v --smoke-test     # tiny, seconds

Every variant starts from one recipe (default: distpaint/configs/variants.yaml): the same data,
seed, steps, patches and optimiser; only `variant` changes, and the CNN baseline uses
`cnn_cpu` (Sasaki et al.'s architecture scaled to the U-Net's training cost) as generator.
Runs go to OUT/<variant>/ through the real single-process loop and resume where they stopped,
so the script can be killed and re-run. At the end it prints, per variant, the checkpoint and
the wall time, as JSON: feed the checkpoints to bench/quality.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from distpaint.train.checkpoint import latest_checkpoint
from distpaint.train.config import VARIANTS as ALL_VARIANTS
from distpaint.train.config import config_from_dict, config_to_dict, load_config, packaged_config
from distpaint.train.local import train_local

VARIANTS = ("unet", "cnn", "gan-l", "gan-g", "gan-gl", "gan-gl-m")
"""The paper's variants, trained by default; --variants also takes the ablation unet-m."""


def variant_config(base: dict, variant: str) -> dict:
    """The recipe `base` for `variant` (the CNN gets the same-cost Sasaki generator)."""
    cfg = json.loads(json.dumps(base))
    cfg["variant"] = variant
    if variant == "cnn":
        cfg["model"]["generator"] = "cnn_tiny" if cfg["model"]["generator"] == "unet_tiny" else "cnn_cpu"
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recipe", default="variants", help="shipped recipe name or YAML path")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's max_steps")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=ALL_VARIANTS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke-test", action="store_true", help="tiny recipe, 4 steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = packaged_config("tiny" if args.smoke_test else args.recipe) if not Path(args.recipe).exists() \
        else Path(args.recipe)
    base = config_to_dict(load_config(recipe))
    if args.smoke_test:
        base["max_steps"], base["checkpoint_every"] = 4, 4
    if args.steps is not None:
        base["max_steps"] = args.steps
    report = {"recipe": str(recipe), "steps": base["max_steps"], "seed": base["seed"], "runs": {}}
    for variant in args.variants:
        cfg = config_from_dict(variant_config(base, variant), f"{recipe} ({variant})")
        out = args.out / variant
        tic = time.perf_counter()
        metrics = train_local(cfg, out)
        report["runs"][variant] = {"checkpoint": str(latest_checkpoint(out)), "seconds": round(time.perf_counter() - tic, 1),
                                   "final": {k: round(v, 5) for k, v in metrics.items() if isinstance(v, float)}}
        print(json.dumps({variant: report["runs"][variant]}), flush=True)
    (args.out / "variants.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
