"""`distpaint infer`: repair masks with a trained model, tile by tile, in constant memory.

    distpaint infer roads.tif --model roads --out roads_fixed.tif
    distpaint infer masks/ 'more/**/*.png' masks.zarr --model runs/x/checkpoints/step_00001000 \\
        --out repaired/ [--tile 1024] [--halo H] [--batch B] [--threshold 0.5 | --sample --seed 0] \\
        [--views 1|2|4|8] [--passes P [--bridges-only]] [--keep ends|bridges|attached|all] [--min-confidence F] [--drop-islands] \\
        [--upsample auto|1|2|3|4] [--keep-input/--no-keep-input] [--skip-empty/--no-skip-empty] [--ray] [--gpu] [--overwrite]
    distpaint infer s3://bucket/archive.zarr --model general --out s3://bucket/repaired.zarr

INPUT: mask files (PNG, TIFF, GeoTIFF, NPY, Zarr), mask stores, directories and globs. Each
mask gets the repaired mask in its own format (a GeoTIFF keeps its CRS and transform), the
added pixels (`NAME.added.EXT`; a layer `added` for store samples) and a preview PNG (input
white, added red). A progress bar shows tiles, throughput and time left. An interrupted run
resumes when the same command is run again; `--ray` spreads shards over a Ray actor pool
(RAY_ADDRESS's cluster, or a local one). Exit status: 0, or 1 if some masks of an archive
were bad (reported and skipped), or 2 for a bad command or a full disk (one red line), or 130
when stopped by Ctrl-C or SIGTERM (a scheduler's stop); the finished shards are kept for the
same command. Stores may be fsspec URLs (`distpaint.infer.sources`: the work folder then stays
on this machine).

The logic lives in `distpaint.infer` (job, engine, tiling, ray_runner); this module only
parses options and draws progress and results.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from distpaint.commands.stopping import sigterm_as_interrupt
from distpaint.errors import ConfigError
from distpaint.infer.engine import InferConfig
from distpaint.infer.job import JobConfig, run_job
from distpaint.infer.keep import NO_REPAIR
from distpaint.infer.self_check import parse_min_confidence
from distpaint.infer.upsample import parse_upsample
from distpaint.ray_connect import use_address
from distpaint.weights import inference_defaults

__all__ = ["register", "infer"]


class _Throughput(ProgressColumn):
    """Mega-pixels per second of the mask area done so far."""

    def render(self, task) -> Text:  # type: ignore[override]
        elapsed = task.elapsed or 0.0
        px = task.fields.get("pixels", 0)
        return Text(f"{px / 1e6 / elapsed:.2f} Mpx/s" if elapsed > 0 and px else "-- Mpx/s",
                    style="progress.data.speed")


class _RichProgress:
    """`JobProgress` drawn as a rich progress bar on stderr."""

    def __init__(self, console: Console, label: str = "infer") -> None:
        self.label = label  # the command's name: `distpaint baseline` shows its method
        self.bar = Progress(
            TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("tiles"),
            _Throughput(), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.task = None

    def start(self, tiles: int, pixels: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=max(tiles, 0), pixels=0)

    def advance(self, tiles: int, pixels: int) -> None:
        if self.task is not None:
            done = self.bar.tasks[self.task].fields["pixels"] + pixels
            self.bar.update(self.task, advance=tiles, pixels=done)

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


def _floor_cell(floor: float | None) -> str:
    """The floor `auto` chose, as the results table says it."""
    if floor is None:
        return ""
    return "none kept (no gain expected)" if floor >= NO_REPAIR else f"{floor:g}"


def _results_table(report) -> Table:
    table = Table(title="repaired")
    # `--min-confidence auto`: say per mask which floor it chose, and where it kept nothing
    chosen = any(r.min_confidence is not None for r in report.done)
    columns = ("input", "shape", "tiles run", "input px", "added px", *(("auto floor",) if chosen else ()), "output")
    for column in columns:
        table.add_column(column, justify="right" if column.endswith("px") else "left",
                         overflow="fold")
    for r in report.done:
        h, w = r.shape
        resumed = f" ({r.resumed_shards} shards resumed)" if r.resumed_shards else ""
        table.add_row(r.key, f"{h}x{w}", f"{r.predicted}/{r.tiles}{resumed}",
                      f"{r.input_pixels:,}", f"{r.added_pixels:,}",
                      *((_floor_cell(r.min_confidence),) if chosen else ()), r.outputs[0])
    return table


def infer(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT...",
        help="Mask files (.png .tif .tiff .npy .zarr), mask stores, directories, globs."),
    model: str = typer.Option(..., "--model", "-m",
                              help="A shipped model's name (distpaint models), a checkpoint "
                                   "directory, a checkpoint folder URL (s3://...) or an MLflow "
                                   "model URI (models:/NAME/VERSION, runs:/ID/PATH)."),
    # str, not Path: OUT may be a URL (s3://bucket/out.zarr), which Path would mangle
    out: str = typer.Option(..., "--out", "-o",
                            help="Output file (one input) or folder; a store input may also "
                                 "write to an fsspec URL (s3://bucket/out.zarr)."),
    tile: int = typer.Option(None, help="Tile side in pixels, a multiple of the model's "
                                        "down-sampling factor, 16 (default: 1024, or 1536 "
                                        "where the halo would cost more than 0.75x the tile's "
                                        "work; memory grows with (tile + 2 halo)^2)."),
    halo: int = typer.Option(None, help="Context around each tile (default: the model's "
                                        "receptive radius; smaller is refused)."),
    batch: int = typer.Option(None, help="Tiles per forward pass (default 1 on CPU, 8 with "
                                         "--gpu)."),
    threshold: float = typer.Option(None, help="Foreground where probability > T "
                                               "(default: the model card's, else 0.5)."),
    sample: bool = typer.Option(False, "--sample",
                                help="Draw pixels ~ Bernoulli(probability) instead."),
    seed: int = typer.Option(None, help="Seed of --sample (default 0); tiling-invariant."),
    views: int = typer.Option(1, help="Test-time augmentation: average over 1, 2, 4 or 8 "
                                      "flips/transposes (x V forward passes; not in the paper)."),
    passes: int = typer.Option(1, help="Repair iteratively: each pass sees the input plus the "
                                       "previous pass's pixels (x P forward passes; not in the "
                                       "paper)."),
    bridges_only: bool = typer.Option(False, "--bridges-only",
                                      help="With --passes 2+: keep of the later passes only "
                                           "pieces that join the first pass's output at two "
                                           "or more places (not in the paper; docs/HISTORY.md)."),
    keep: str = typer.Option(None, "--keep",
                             help="Which added pieces to keep: bridges (only pieces that "
                                  "join the input at two or more places next to a dead end, "
                                  "or fill a small hole: no spurs, thickening, corner fill or "
                                  "islands), ends (the bridges that close dead ends and leave "
                                  "none), attached (drop islands) or all (the model's raw "
                                  "output, as in the paper). Default: the model card's "
                                  "(distpaint models)."),
    min_confidence: str = typer.Option(None, "--min-confidence",
                                       help="Also drop each kept added piece whose mean "
                                            "probability is under F (0: none; 1: keep no "
                                            "added piece). auto: choose F per mask by "
                                            "repairing new cuts made in it (two more forward "
                                            "passes over up to 4 Mpx). Default: the model "
                                            "card's."),
    drop_islands: bool = typer.Option(False, "--drop-islands",
                                      help="Same as --keep attached: leave out only the added "
                                           "components that touch no input pixel."),
    upsample: str = typer.Option(None, "--upsample",
                                 help="Run the model at N times the mask's resolution (1-4): "
                                      "thin lines at the width it knows. auto: 2 for masks "
                                      "whose lines are under 3 px wide, else 1 (per mask). "
                                      "Default: the model card's (general: auto; roads: 1)."),
    keep_input: bool = typer.Option(True, "--keep-input/--no-keep-input",
                                    help="Output = input OR model fill (never delete a pixel)."),
    skip_empty: bool = typer.Option(True, "--skip-empty/--no-skip-empty",
                                    help="Do not run the model on tiles with no foreground "
                                         "in tile plus halo."),
    ray: bool = typer.Option(False, "--ray", help="Spread shards over a Ray actor pool."),
    gpu: bool = typer.Option(False, "--gpu", help="Run the model on a GPU (bf16 autocast)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace existing outputs (inputs never) and "
                                        "discard the progress of an interrupted job with "
                                        "other settings."),
    workers: int = typer.Option(None, help="--ray: actors (default: one per GPU, or per "
                                           "--cpus-per-worker CPUs)."),
    cpus_per_worker: float = typer.Option(1.0, help="--ray: CPUs and torch threads per actor."),
    address: str = typer.Option(None, "--address",
                                help="--ray: join this cluster (head host:port, ray://head:10001); "
                                     "default RAY_ADDRESS (set inside `ray job submit`), else a "
                                     "private local Ray."),
    threads: int = typer.Option(None, help="Torch CPU threads of a local run."),
    preview_size: int = typer.Option(2048, help="Longest side of the preview PNG."),
    shard: int = typer.Option(4096, help="Side of the output shards: the unit of work, of "
                                         "resuming and of Ray tasks (whole tiles)."),
    input_threshold: float = typer.Option(None, help="Binarise non-binary inputs: "
                                                     "foreground = value > T."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Repair masks with a trained model; outputs keep the input's format."""
    if sample and threshold is not None:
        raise ConfigError("--threshold and --sample exclude each other: threshold the "
                          "probabilities or sample them")
    if seed is not None and not sample:
        raise ConfigError("--seed is only used with --sample")
    chosen = inference_defaults(model)  # the model card's threshold, keep policy, floor, up-sampling
    # None: `auto`, the floor chosen per mask by the self-check
    floor = parse_min_confidence(chosen["min_confidence"] if min_confidence is None else min_confidence)
    infer_config = InferConfig(
        tile=tile, halo=halo, batch=batch if batch is not None else (8 if gpu else 1),
        threshold=chosen["threshold"] if threshold is None else threshold, sample=sample,
        seed=seed or 0, keep_input=keep_input, skip_empty=skip_empty, views=views,
        passes=passes, bridges_only=bridges_only,
        keep=keep if keep is not None else "attached" if drop_islands else chosen["keep"],
        min_confidence=floor or 0.0)
    job_config = JobConfig(overwrite=overwrite, ray=ray, gpu=gpu, workers=workers,
                           cpus_per_worker=cpus_per_worker, threads=threads,
                           preview_size=preview_size, input_threshold=input_threshold,
                           shard=shard, self_check=floor is None,
                           upsample=parse_upsample(upsample if upsample is not None
                                                   else chosen["upsample"]))
    if ray:
        use_address(address)
    err = Console(stderr=True)
    progress = _RichProgress(err)
    start = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            report = run_job(inputs, model, out, infer_config, job_config, progress)
    except KeyboardInterrupt:
        progress.stop()
        err.print("[yellow]interrupted[/]: finished shards are kept; re-run the same command "
                  "to resume", highlight=False)
        raise typer.Exit(130) from None
    finally:
        progress.stop()
    if as_json:
        print(json.dumps(asdict(report), indent=2))
    else:
        console = Console()
        if report.done:
            console.print(_results_table(report))
        seconds = time.perf_counter() - start
        console.print(f"{len(report.done)} mask(s), {report.pixels / 1e6:.1f} Mpx computed in "
                      f"{seconds:.1f} s ({report.pixels / 1e6 / max(seconds, 1e-9):.2f} Mpx/s)",
                      highlight=False)
    for key, message in report.failed:
        err.print(f"[red]skipped:[/] {message}", highlight=False, soft_wrap=True)
    if report.failed:
        err.print(f"[yellow]{len(report.failed)} mask(s) skipped; fix them and re-run the same "
                  "command to finish (repaired masks are kept)[/]", highlight=False)
        raise SystemExit(1)


def register(app: typer.Typer) -> None:
    """Add the `infer` command to the distpaint CLI."""
    app.command("infer")(infer)
