#!/usr/bin/env bash
# Question: does another variant, given `general-thin`'s exact training budget, match it?
# Same-budget baselines for `general-thin`: continue an 8000-step run of another variant (from
# `python bench/train_variants.py --recipe same_budget`) through general-thin's three stages with
# the same recipes, seeds and steps (3000 + 4000 + 4000), only `variant` swapped (and the CNN's
# generator, by bench/train_variants.py's variant_config); each stage starts from the mean of the
# previous stage's last 8 checkpoints, as general-thin's did. One core, ~85 min per variant.
#
# Run: bash research/train_like_general_thin.sh VARIANT START OUT
#   e.g. bash research/train_like_general_thin.sh cnn runs/variants8k/cnn/average runs/fair19k/cnn
# then: python bench/quality.py --data runs/benchset-seed0 --levels whole \
#         --models cnn19k=runs/fair19k/cnn/s3/average general-thin
set -euo pipefail
variant=$1 prev=$2 out=$3
distpaint=${DISTPAINT:-distpaint}
python=${PYTHON:-python}
mkdir -p "$out"
stage=1
# general-thin's three stages: stages 2-4 of distpaint/configs/general.yaml (then general_thin,
# general_thin_stage2 and general_thin_stage3)
for recipe in thin pool pool2; do
  "$python" - "$variant" "$recipe" "$out/recipe_s$stage.yaml" "$(dirname "$0")/../bench" <<'PY'
import copy
import sys

import yaml

variant, recipe, dest, bench = sys.argv[1:]
sys.path.insert(0, bench)
from train_variants import variant_config  # the variant swap of the same-budget table

from distpaint.train.config import find_stage, packaged_config

cfg = variant_config(copy.deepcopy(find_stage(packaged_config("general"), recipe).data), variant)
cfg["model"].pop("init_generator", None)  # given with --init: the previous stage
with open(dest, "w") as fh:
    fh.write(f"# general.yaml stage {recipe} with variant {variant} (research/train_like_general_thin.sh)\n")
    yaml.safe_dump(cfg, fh, sort_keys=False)
PY
  "$distpaint" train --config "$out/recipe_s$stage.yaml" --init "$prev" --local --out "$out/s$stage" --threads 1
  "$distpaint" average "$out/s$stage" --last 8 --out "$out/s$stage/average"
  prev=$out/s$stage/average
  stage=$((stage + 1))
done
echo "done: $out/s3/average"
