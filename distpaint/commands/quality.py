"""`distpaint quality`: repair methods scored on the real benchmark and the synthetic benchmark sets,
Table I style and with the harm tables, per kind and level; real sets first.

    distpaint quality --real runs/real [--real-levels val test] [--real-kinds roads ...]
        [--no-synthetic] ...                  # the real benchmark (distpaint realdata build)
    distpaint quality [--json] [--data runs/benchset-seed0] [--seed 0] [--out runs/quality]
        [--methods identity closing linking] [--models NAME_OR_CHECKPOINT ...]
        [--levels patch whole] [--kinds roads ...] [--limit N] [--ttest closing linking]
        [--traits] [--workers 2] [--threshold T] [--gpu]
    distpaint quality --smoke-test --out /tmp/q     # tiny sets, every code path, seconds

Builds the benchmark sets into --data when absent (`distpaint benchset make`, about a minute),
then evaluates every method on every patch (256 x 256, Table I) and every whole mask
(2048 x 2048, Table II) of every kind, blind (`distpaint.metrics.evaluate`), and writes into
--out: `quality.json` (per-sample metrics, mean/std, times, t-tests), `quality.md` (the
tables), `quality_patch.png` and `quality_whole.png` (example repairs: added pixels red,
removed blue, truth still missing grey). Prints the tables; with --json, prints the results
without per-sample values as one JSON object (tables go to stderr).

With --real, the real benchmark (`distpaint realdata fetch` then `distpaint realdata build`:
real road networks, rivers, drawings and a dendritic tree with the judging protocol's cut
gaps, and with mix gaps at the -mix levels) is scored first into OUT/real/ (the same files),
then the synthetic sets unless --no-synthetic. Models are chosen on the real `val` level;
`test` is for reporting (the trees, one dendrite, have no `val`: never chosen on).

Methods are registered in `distpaint.benchmark.methods` (identity, closing, linking, with
options as `closing:radius=5`); `--models` adds trained generators, by shipped name or
checkpoint directory (`LABEL=PATH` to name them), through `distpaint.infer`. `--ttest A B`
runs a paired two-tailed t-test between two methods per kind and level (default: closing
and linking when both are evaluated).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time

import typer
from rich.console import Console

__all__ = ["register", "main"]

# The harness (distpaint.benchmark: torch through the models, the benchmark sets) is imported
# inside the functions: `distpaint` imports every command module when it starts.


def _args(argv: list[str] | None) -> argparse.Namespace:
    # deferred: the CLI's start-up (see the note at the imports)
    from distpaint.data.benchset import LEVELS
    from distpaint.data.real.build import LEVELS as REAL_LEVELS
    from distpaint.data.real.catalogue import KINDS as REAL_KINDS
    from distpaint.data.synth import KINDS

    parser = argparse.ArgumentParser(prog="distpaint quality", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=None,
                        help="benchmark set folder, built when absent (default runs/benchset-seed<S>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the benchmark set to build")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/quality"))
    parser.add_argument("--methods", nargs="*", default=["identity", "closing", "linking"],
                        help="registered methods, NAME[:key=value,...]")
    parser.add_argument("--models", "--checkpoint", nargs="*", default=[], dest="models",
                        help="trained generators: shipped name, checkpoint dir, or LABEL=either")
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS)
    parser.add_argument("--kinds", nargs="+", default=None, choices=KINDS)
    parser.add_argument("--limit", type=int, default=None, help="samples per (level, kind)")
    parser.add_argument("--ttest", nargs=2, default=None, metavar=("A", "B"))
    parser.add_argument("--traits", action="store_true", help="also compute root traits")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=None,
                        help="models: p > threshold (default: each model card's, else 0.5)")
    parser.add_argument("--gpu", action="store_true", help="models: run on CUDA")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--real", type=pathlib.Path, default=None,
                        help="real benchmark folder (distpaint realdata build), scored first")
    parser.add_argument("--real-levels", nargs="+", default=["val"], choices=REAL_LEVELS)
    parser.add_argument("--real-kinds", nargs="+", default=None, choices=REAL_KINDS)
    parser.add_argument("--no-synthetic", action="store_true",
                        help="with --real: skip the synthetic benchmark sets")
    parser.add_argument("--smoke-test", action="store_true",
                        help="tiny benchmark set (6 patches, one 512 px mask per kind)")
    return parser.parse_args(argv)


def _score(bench, methods, config, out: pathlib.Path, log) -> tuple:
    """Run one benchmark into `out` (quality.json, quality.md, a figure per level)."""
    # deferred: the CLI's start-up (see the note at the imports)
    from distpaint.benchmark.figures import write_png
    from distpaint.benchmark.quality import figure, markdown, payload, run_quality
    from distpaint.metrics.report import write_json

    result = run_quality(bench, methods, config, log=log)
    write_json(out / "quality.json", payload(result))
    (out / "quality.md").write_text(markdown(result) + "\n")
    figures = {}
    for level in config.levels:
        path = out / f"quality_{level}.png"
        write_png(path, figure(result, level))
        figures[level] = str(path)
    return result, figures


def main(argv: list[str] | None = None) -> int:
    """Score the methods; the options are `bench/quality.py`'s (argparse: `--help` lists them)."""
    # deferred: the CLI's start-up (see the note at the imports)
    from distpaint.benchmark.methods import resolve_methods
    from distpaint.benchmark.quality import QualityConfig, payload, tables
    from distpaint.data.benchset import BenchsetConfig, make_benchset, open_benchset
    from distpaint.data.real.build import open_real
    from distpaint.data.synth import KINDS

    args = _args(argv)
    console = Console(stderr=args.json, width=150)
    log = (lambda line: console.print(line, highlight=False))
    tic = time.perf_counter()
    methods = resolve_methods(args.methods, args.models, threshold=args.threshold, gpu=args.gpu)
    names = [m.name for m in methods]
    ttest = args.ttest or (("closing", "linking") if {"closing", "linking"} <= set(names) else None)
    common = dict(limit=args.limit, traits=args.traits, workers=args.workers,
                  ttest=tuple(ttest) if ttest else None)
    runs = []  # (label, result, out, figures), real first
    if args.real is not None:
        real = open_real(args.real)
        config = QualityConfig(levels=tuple(args.real_levels),
                               kinds=tuple(args.real_kinds) if args.real_kinds else None, **common)
        runs.append(("real", *_score(real, methods, config, args.out / "real", log), args.out / "real"))
    if args.real is None or not args.no_synthetic:
        with tempfile.TemporaryDirectory(prefix="distpaint-quality-smoke-") as tmp:
            if args.smoke_test:
                data = args.data or pathlib.Path(tmp) / "benchset"
                bench_config = BenchsetConfig.small(args.seed, args.kinds or KINDS)
            else:
                data = args.data or pathlib.Path(f"runs/benchset-seed{args.seed}")
                bench_config = BenchsetConfig(seed=args.seed)
            if (data / "manifest.json").is_file():
                bench = open_benchset(data)
            else:
                log(f"building the benchmark sets into {data} ...")
                bench = make_benchset(data, bench_config, log=log)
            config = QualityConfig(levels=tuple(args.levels),
                                   kinds=tuple(args.kinds) if args.kinds else None, **common)
            runs.append(("synthetic", *_score(bench, methods, config, args.out, log), args.out))
    for label, result, figures, out in runs:
        console.print(f"[bold]{label} benchmark[/] ({result.bench['path']})", highlight=False)
        for table in tables(result):
            console.print(table)
        log(f"wrote {out}/quality.json, quality.md, "
            f"{', '.join(os.path.basename(f) for f in figures.values())}")
    log(f"done in {time.perf_counter() - tic:.1f} s")
    if args.json:
        docs = {}
        for label, result, figures, out in runs:
            doc = payload(result, samples=False)
            doc["outputs"] = {"json": str(out / "quality.json"), "markdown": str(out / "quality.md"),
                              "figures": figures}
            docs[label] = doc
        print(json.dumps(docs["synthetic"] if list(docs) == ["synthetic"] else docs))
    return 0


def quality(ctx: typer.Context) -> None:
    """Score repair methods and models on the real and synthetic benchmarks (--help: options)."""
    code = main(list(ctx.args))
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `distpaint quality` to the CLI; its options are parsed by `main`'s argparse parser,
    so `bench/quality.py` (a shim over `main`) and the command take exactly the same ones."""
    app.command("quality", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                             "help_option_names": []})(quality)
