"""Ship a trained checkpoint as a named model in distpaint/weights/ (a maintainer's tool).

    python -m distpaint.weights.ship runs/roads/real/average --name roads --recipe roads \\
        --stage real --kinds roads --description "Road maps ..." \\
        --scores runs/q/real/quality.json runs/q/quality.json --scores-method roads \\
        [--threshold 0.5] [--keep bridges] [--upsample 1|auto] [--retire-as roads-synthetic]
    python -m distpaint.weights.ship defaults general --upsample auto [--min-confidence 0.55] \
        --scores runs/q/real/quality.json --scores-method general
    python -m distpaint.weights.ship retire general-thin general-thin-synthetic
    python -m distpaint.weights.ship recard roads-synthetic --recipe roads --stage more

Copies the generator (`model.pt`, inference only: no optimiser or discriminator state) and the
training recipe (`config.yaml`) of a checkpoint (an averaged one from `distpaint average`, a
checkpoint directory, or a run's newest), and writes the model card `card.json` from the run
itself, never by hand: the shipped recipe it trained (checked: its resolved config must equal
the checkpoint's, starting weights and step budget aside), seed, steps, the averaged
checkpoints, the command that rebuilds it from scratch, its parameters and CPU speed on 2
threads, the inference defaults it was chosen with, and the scores of the method in
`bench/quality.py` result files. Refuses a generator file over 25 MB (the package limit).

The command: for a stage of a chained recipe (`--stage`; roads, general), `distpaint reproduce
RECIPE --through STAGE` (after the commands that build the real masks when a stage reads them),
the run having started from the previous stage (a shipped model whose card names that stage is
checked; a checkpoint path is taken at its word); for a one-stage recipe, the starting model's
own chain when it started from a shipped model, then this run's `distpaint train` and
`distpaint average`. `recard` writes those fields again for a shipped model from its own
`config.yaml` (after a recipe was renamed), leaving its weights, scores and the rest as they are.
`defaults` writes a shipped model's inference defaults again (threshold, keep, upsample, the
confidence floor: chosen on the real validation masks) and, given result files, the scores
measured with them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from distpaint.errors import InputError
from distpaint.weights import WEIGHTS_DIR, model_card, shipped_models

__all__ = ["ship", "recard", "retire", "cpu_speed", "card_scores"]

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


def _run_record(ckpt: Path) -> tuple[Path, list[int]]:
    """(run directory, steps) that `ckpt` comes from: an averaged checkpoint names its sources
    in metrics.json (`distpaint average`), a plain one is `RUN/checkpoints/step_*`."""
    record = ckpt / "metrics.json"
    if record.is_file():
        doc = json.loads(record.read_text())
        if "averaged_from" in doc:
            sources = [Path(p) for p in doc["averaged_from"]]
            return sources[0].parent.parent, [int(s) for s in doc["steps"]]
    return ckpt.parent.parent, [int(ckpt.name.removeprefix("step_"))]


REAL_DATA = "distpaint realdata fetch && distpaint realdata build --out runs/real"
"""The commands that build the real training masks (`runs/real/train/*.zarr`)."""


def _check_recipe(recipe: str, stage: str | None, cfg, ckpt: Path):
    """The `Stage` of shipped recipe `recipe` (`stage`, or its first) that resolves to the
    checkpoint's config, the starting weights and the step budget aside; InputError otherwise:
    a card must name a recipe in the package."""
    from distpaint.errors import ConfigError
    from distpaint.train.config import config_from_dict, config_to_dict, find_stage, packaged_config

    try:
        found = find_stage(packaged_config(recipe), 1 if stage is None else stage)
    except ConfigError as exc:
        raise InputError(f"{ckpt}: {exc}") from None
    packaged = config_to_dict(config_from_dict(found.data, recipe))
    trained = config_to_dict(cfg)
    for doc in (packaged, trained):
        doc.pop("max_steps")
        doc["model"].pop("init_generator")
    if packaged != trained:
        diff = sorted(k for k in trained if trained[k] != packaged.get(k))
        raise InputError(f"{ckpt}: its config differs from the shipped recipe {recipe!r} (stage "
                         f"{found.name}) in {', '.join(diff)}; ship only runs of a recipe in distpaint/configs/")
    return found


def _reproduce_command(recipe: str, stage, init: str, base_card: dict | None, where: str) -> str:
    """`distpaint reproduce` up to `stage` of chained recipe `recipe`, for a run that started
    from `init` (whose card, if a shipped model, is `base_card`): InputError when that start is
    not the previous stage."""
    from distpaint.train.config import packaged_config, recipe_stages

    stages = recipe_stages(packaged_config(recipe))
    if stage.number == 1 and init:
        raise InputError(f"{where}: stage 1 of {recipe!r} starts from random weights, this run from {init}")
    if stage.number > 1:
        previous = stages[stage.number - 2].name
        if not init:
            raise InputError(f"{where}: stage {stage.name} of {recipe!r} starts from stage {previous}'s "
                             "result, this run from random weights")
        if base_card is not None and (base_card.get("recipe"), base_card.get("stage")) != (recipe, previous):
            raise InputError(f"{where}: it started from {base_card.get('name')!r}, whose card names recipe "
                             f"{base_card.get('recipe')!r} stage {base_card.get('stage')!r}, not {recipe!r} "
                             f"stage {previous!r} (re-card that model first)")
    reads_real = any(str(s.data.get("data", {}).get("store", "")).startswith("runs/real/")
                     for s in stages[:stage.number])
    command = f"distpaint reproduce {recipe} --through {stage.name} --out runs/{recipe}"
    return f"{REAL_DATA} && {command}" if reads_real else command


def _is_chained(recipe: str) -> bool:
    from distpaint.train.config import packaged_config, recipe_stages

    return len(recipe_stages(packaged_config(recipe))) > 1


def _retired_from(name: str) -> dict | None:
    """The card of the shipped model retired from `name` (its `retired_name`), if any."""
    for shipped in shipped_models():
        card = model_card(shipped)
        if card.get("retired_name") == name:
            return card
    return None


def _lineage(init: str, ckpt: Path) -> tuple[str, str, dict | None]:
    """(the command chain that made the starting weights, the path its last stage wrote, the
    starting model's card) when a run started from a shipped model (`--init NAME`); the chain
    names that model's own recipes, so a card's command rebuilds it from scratch.

    The starting model may have been retired since the run (its card then says `retired_name`
    NAME); and when the same checkpoint is shipped again (a corrected description, a
    re-measured speed), NAME may be this checkpoint itself, the start being the model its first
    shipping retired."""
    if not init:
        return "", init, None
    card = model_card(init) if init in shipped_models() else None
    if card is None or card.get("source_checkpoint") == str(ckpt):
        card = _retired_from(init)
    if card is None:
        return "", init, None
    chain = card.get("command", "")
    outs = re.findall(r"--out (\S+)", chain)
    return chain, outs[-1] if outs else init, card


def card_scores(paths: list[Path], method: str) -> dict:
    """Figures of `method` in `bench/quality.py` result files (real or synthetic): per level and
    kind the means of the judged metrics and the share of masks without harm."""
    keys = ("rel_component_diff", "skeleton_recall_gaps", "false_fill", "cldice", "cldice_gain",
            "components_added", "mse_gaps")
    scores: dict = {}
    for path in paths:
        doc = json.loads(Path(path).read_text())
        scores.setdefault("benchmarks", []).append(
            {"file": str(path), "path": doc["benchset"]["path"], "digest": doc["benchset"]["digest"]})
        for level, kinds in doc["results"].items():
            for kind, methods in kinds.items():
                if method not in methods:
                    continue
                cell = methods[method]
                means = {k: round(cell["aggregate"][k]["mean"], 4) for k in keys
                         if k in cell["aggregate"] and cell["aggregate"][k]["mean"] is not None}
                if cell.get("no_harm"):
                    means["no_harm_share"] = cell["no_harm"]["share"]
                scores[f"{level}/{kind}"] = {**means, "masks": cell["aggregate"]["cldice"]["n"]}
    if len(scores) <= 1:
        raise InputError(f"method {method!r} is in none of {', '.join(map(str, paths))}")
    return scores


def ship(source: Path, name: str, *, recipe: str, kinds: list[str], description: str,
         scores: dict | None = None, threshold: float = 0.5, keep: str = "bridges",
         upsample: int | str = 1, retire_as: str | None = None, stage: str | None = None) -> Path:
    """Install `source` (a run directory, a checkpoint or an averaged checkpoint) as shipped
    model `name`, its card written from the run: recipe (checked against the package), seed,
    steps, the command chain, speed and `scores`. With `retire_as`, the model now named `name`
    is kept under that name (its card says so) instead of being replaced."""
    import torch

    from distpaint.models.layers import count_parameters
    from distpaint.train.checkpoint import latest_checkpoint, load_config_of, load_generator

    ckpt = latest_checkpoint(source) if (source / "checkpoints").is_dir() else source
    if ckpt is None or not (ckpt / "model.pt").is_file():
        raise InputError(f"{source}: no checkpoint with a model.pt")
    if (ckpt / "model.pt").stat().st_size > MAX_BYTES:
        raise InputError(f"{ckpt}/model.pt is over {MAX_BYTES >> 20} MB: too large to ship")
    cfg = load_config_of(ckpt)
    found = _check_recipe(recipe, stage, cfg, ckpt)
    run, steps = _run_record(ckpt)
    chain, init_path, base_card = _lineage(cfg.model.init_generator, ckpt)
    if _is_chained(recipe):
        command = _reproduce_command(recipe, found, cfg.model.init_generator, base_card, str(ckpt))
    else:
        init = f" --init {init_path}" if init_path else ""
        this = f"distpaint train --config {recipe}{init} --local --out {run} --threads 1"
        if len(steps) > 1:
            this += f" && distpaint average {run} --last {len(steps)} --out {ckpt}"
        command = f"{chain} && {this}" if chain else this
    g = load_generator(ckpt)
    blob = torch.load(ckpt / "model.pt", weights_only=True)
    card = {
        "name": name,
        "description": description,
        "kinds": kinds,
        "generator": blob["generator"]["name"],
        "params": count_parameters(g),
        "variant": cfg.variant,
        "recipe": recipe,
        "stage": found.name,
        "seed": cfg.seed,
        "steps": None,  # filled below: every step of every stage, this one's included
        "steps_this_stage": int(blob.get("step", 0)),
        "averaged_steps": steps,
        "steps_total": int(blob.get("step", 0)) + int((base_card or {}).get("steps_total",
                                                                            (base_card or {}).get("steps", 0))),
        "base_model": _base_model(base_card),
        "command": command,
        "config": "config.yaml",
        "inference": _inference(threshold, keep, upsample),
        "threshold": threshold,
        "mpx_per_s_cpu2": round(cpu_speed(ckpt), 3),
        "scores": scores or {},
        "source_checkpoint": str(ckpt),
    }
    card["steps"] = card["steps_total"]
    target = WEIGHTS_DIR / name
    if retire_as and target.exists():
        _retire(target, retire_as)
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


def _base_model(base_card: dict | None) -> dict | None:
    """What a card records of the model its run started from."""
    if base_card is None:
        return None
    return {"name": base_card.get("name"), "recipe": base_card.get("recipe"), "stage": base_card.get("stage"),
            "steps_total": base_card.get("steps_total", base_card.get("steps"))}


def recard(name: str, recipe: str, stage: str | None = None) -> dict:
    """Write shipped model `name`'s `recipe`, `stage`, `command` (and `base_model`) again from
    its own config.yaml, checked against the recipe's stage as `ship` checks a run, and drops a
    hand-written `note` (docs/HISTORY.md keeps the old ones); the weights, scores and every
    other field stay as they are. Returns the new card."""
    from distpaint.train.config import load_config

    target = WEIGHTS_DIR / name
    if not (target / "model.pt").is_file():
        raise InputError(f"no shipped model {name!r} to re-card")
    card = model_card(name)
    card.pop("note", None)  # written by hand once; a card holds only what this tool writes
    cfg = load_config(target / "config.yaml")
    found = _check_recipe(recipe, stage, cfg, target)
    # the card's own source checkpoint stands for "this model" in the lineage (see _lineage)
    chain, init_path, base_card = _lineage(cfg.model.init_generator, Path(card.get("source_checkpoint", target)))
    if _is_chained(recipe):
        command = _reproduce_command(recipe, found, cfg.model.init_generator, base_card, str(target))
    else:
        init = f" --init {init_path}" if init_path else ""
        this = f"distpaint train --config {recipe}{init} --local --out runs/{name} --threads 1"
        command = f"{chain} && {this}" if chain else this
    fields = {"recipe": recipe, "stage": found.name, "command": command}
    if base_card is not None or "base_model" in card:
        fields["base_model"] = _base_model(base_card)
    new: dict = {}
    for key, value in card.items():  # keep the card's order; new fields after `variant`
        if key not in new:
            new[key] = fields.pop(key, value)
        if key == "variant":
            new.update({k: fields.pop(k) for k in ("recipe", "stage") if k in fields})
    new.update(fields)
    (target / "card.json").write_text(json.dumps(new, indent=2) + "\n")
    return new


def _inference(threshold: float, keep: str, upsample: int | str,
               min_confidence: float | str = 0.0) -> dict:
    """A card's `inference` entry (`distpaint infer` checks the values when it uses them;
    the up-sampling factor and the floor are checked here, as they may come as text). The
    floor is written only when there is one (0: none; `auto`: chosen per mask)."""
    factor = upsample if upsample == "auto" else int(upsample) if str(upsample).isdigit() else None
    if factor not in ("auto", 1, 2, 3, 4):
        raise InputError(f"--upsample must be auto or one of 1, 2, 3, 4, got {upsample!r}")
    entry = {"threshold": threshold, "keep": keep, "upsample": factor}
    if min_confidence == "auto":
        entry["min_confidence"] = "auto"
        return entry
    try:
        floor = float(min_confidence)
    except (TypeError, ValueError):
        floor = -1.0
    if not 0.0 <= floor <= 1.0:
        raise InputError(f"--min-confidence must be auto or in [0, 1], got {min_confidence!r}")
    if floor > 0:
        entry["min_confidence"] = floor
    return entry


def set_defaults(name: str, *, threshold: float | None = None, keep: str | None = None,
                 upsample: int | str | None = None, min_confidence: float | str | None = None,
                 scores: dict | None = None) -> dict:
    """Write shipped model `name`'s inference defaults again (those not given stay) and, when
    given, the scores measured with them; the description ends by naming them (it may name
    those the model was chosen with); the weights and everything else stay."""
    target = WEIGHTS_DIR / name
    card_path = target / "card.json"
    if not card_path.is_file():
        raise InputError(f"no shipped model {name!r}")
    card = json.loads(card_path.read_text())
    old = card.get("inference", {})
    entry = _inference(old.get("threshold", 0.5) if threshold is None else threshold,
                       old.get("keep", "bridges") if keep is None else keep,
                       old.get("upsample", 1) if upsample is None else upsample,
                       old.get("min_confidence", 0.0) if min_confidence is None else min_confidence)
    # the description may name the defaults the checkpoint was chosen with: say which it has now
    card["description"] = _with_defaults_note(card.get("description", ""), entry)
    card["inference"], card["threshold"] = entry, entry["threshold"]
    if scores is not None:
        card["scores"] = scores
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


_DEFAULTS_NOTE = "; inference defaults re-chosen on the real validation split since: "


def _with_defaults_note(description: str, entry: dict) -> str:
    """`description` ending with the inference defaults of `entry` (replacing an earlier such
    ending), so that a card chosen with other defaults says which ones it has now."""
    base = description.split(_DEFAULTS_NOTE)[0]
    floor = entry.get("min_confidence")
    floor = f", --min-confidence {floor if floor == 'auto' else format(floor, 'g')}" if floor else ""
    return (f"{base}{_DEFAULTS_NOTE}--keep {entry['keep']}, threshold {entry['threshold']:g}, "
            f"--upsample {entry['upsample']}{floor}")


def retire(name: str, new_name: str) -> Path:
    """Rename shipped model `name` to `new_name` (its card saying so): a model replaced by a
    better one stays available under a name that says what it is."""
    target = WEIGHTS_DIR / name
    if not (target / "model.pt").is_file():
        raise InputError(f"no shipped model {name!r} to retire")
    _retire(target, new_name)
    shutil.rmtree(target)
    return WEIGHTS_DIR / new_name


def _retire(target: Path, new_name: str) -> None:
    """Keep the model at `target` under `new_name`, its card saying it was retired and by what."""
    dest = WEIGHTS_DIR / new_name
    if dest.exists():
        raise InputError(f"{dest}: a model of that name exists already")
    card_path = target / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    card["retired_name"] = card.get("name", target.name)
    card["name"] = new_name
    card["description"] = (f"Retired {target.name!r} (trained on synthetic masks only), kept for "
                           f"comparison: {card.get('description', '')}")
    shutil.copytree(target, dest)
    (dest / "card.json").write_text(json.dumps(card, indent=2) + "\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "recard":  # ... recard NAME --recipe R [--stage S]
        recard_parser = argparse.ArgumentParser(description="Write a shipped model's recipe and command again.")
        recard_parser.add_argument("command")
        recard_parser.add_argument("name")
        recard_parser.add_argument("--recipe", required=True, help="the shipped recipe the model trained")
        recard_parser.add_argument("--stage", help="its stage (number or name); default: the first")
        args = recard_parser.parse_args()
        print(json.dumps(recard(args.name, args.recipe, args.stage), indent=2))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "defaults":  # ... defaults NAME [--upsample auto] ...
        defaults_parser = argparse.ArgumentParser(description="Write a shipped model's inference defaults again.")
        defaults_parser.add_argument("command")
        defaults_parser.add_argument("name")
        defaults_parser.add_argument("--threshold", type=float)
        defaults_parser.add_argument("--keep")
        defaults_parser.add_argument("--upsample", help="auto or a factor (1-4)")
        defaults_parser.add_argument("--min-confidence",
                                     help="floor on a kept piece's mean probability (0: none; "
                                          "auto: chosen per mask)")
        defaults_parser.add_argument("--scores", type=Path, nargs="*", default=[],
                                     help="bench/quality.py result files measured with these defaults")
        defaults_parser.add_argument("--scores-method", help="the method's name in those files")
        args = defaults_parser.parse_args()
        scores = card_scores(args.scores, args.scores_method or args.name) if args.scores else None
        print(json.dumps(set_defaults(args.name, threshold=args.threshold, keep=args.keep,
                                      upsample=args.upsample, min_confidence=args.min_confidence,
                                      scores=scores), indent=2))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "retire":  # python -m distpaint.weights.ship retire OLD NEW
        retire_parser = argparse.ArgumentParser(description="Rename a shipped model (retire it).")
        retire_parser.add_argument("command")
        retire_parser.add_argument("name")
        retire_parser.add_argument("new_name")
        args = retire_parser.parse_args()
        print(retire(args.name, args.new_name))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--recipe", required=True, help="the shipped recipe the run trained")
    parser.add_argument("--stage", help="of a chained recipe: the stage the run trained (number or name)")
    parser.add_argument("--kinds", nargs="+", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--scores", type=Path, nargs="*", default=[],
                        help="bench/quality.py result files (real and synthetic)")
    parser.add_argument("--scores-method", help="the method's name in those files")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--keep", default="bridges")
    parser.add_argument("--upsample", default="1", help="auto or a factor (1-4)")
    parser.add_argument("--retire-as", help="keep the model now named NAME under this name")
    args = parser.parse_args()
    scores = card_scores(args.scores, args.scores_method) if args.scores else None
    target = ship(args.source, args.name, recipe=args.recipe, kinds=args.kinds,
                  description=args.description, scores=scores, threshold=args.threshold,
                  keep=args.keep, upsample=args.upsample, retire_as=args.retire_as, stage=args.stage)
    print(json.dumps(json.loads((target / "card.json").read_text()), indent=2))


if __name__ == "__main__":
    main()
