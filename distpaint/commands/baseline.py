"""`distpaint baseline`: classical gap repair (closing, end-point linking), the floor to beat.

    distpaint baseline closing INPUT... --out OUT [--radius 3] [--sample NAME ...]
        [--input-threshold T] [--overwrite] [--json]
    distpaint baseline linking INPUT... --out OUT [--max-distance 20] [--max-angle 35]
        [--direction-length 8] [--sample NAME ...] [--input-threshold T] [--overwrite] [--json]

INPUT is what `distpaint infer` takes: mask files (PNG, TIFF, GeoTIFF, NPY, Zarr), folders,
globs and mask stores, and the outputs are infer's (`distpaint.infer.sources`): the repaired
mask in the input's own format (a GeoTIFF keeps its CRS and transform), the added pixels
(`NAME.added.EXT`, or a layer `added` of a store sample) and a preview PNG, written tile by
tile in constant memory by infer's job layer (the baseline runs as a model:
`distpaint.baselines.predictor`).

One mask store in and a `.zarr` OUT keep the evaluation layout (`distpaint.baselines.run`):
each sample (or each `--sample`) is written into OUT under its own name with its repaired
`mask` and SRC's `gaps` and `truth` layers copied, so that `distpaint evaluate --pred-store
OUT --truth-store SRC` scores it. Stores may be fsspec URLs (`s3://bucket/x.zarr`), in and out,
as for `distpaint infer`.
"""

from __future__ import annotations

import json
import pathlib
import time
from dataclasses import asdict
from typing import Any

import typer
from rich.console import Console

from distpaint.baselines.closing import ClosingConfig
from distpaint.baselines.linking import LinkingConfig
from distpaint.baselines.predictor import repair_files
from distpaint.baselines.run import repair_store
from distpaint.commands.infer import _results_table, _RichProgress
from distpaint.data import location
from distpaint.data.inputs import expand_inputs
from distpaint.errors import ConfigError

__all__ = ["baseline_app", "closing_command", "linking_command", "register"]

baseline_app = typer.Typer(
    help="Classical gap repair (closing, end-point linking) of mask files, folders, globs or "
         "stores.",
    no_args_is_help=True,
)
_console = Console()

_INPUTS_HELP = ("Mask files (.png .tif .tiff .npy .zarr), mask stores, directories, globs "
                "(as distpaint infer).")
_OUT_HELP = ("Output file (one input) or folder; for one store, a .zarr store with the "
             "evaluation layout (gaps and truth copied). Stores and folders of stores may be "
             "fsspec URLs (s3://bucket/out.zarr).")


def _store_mode(inputs: list[str], out: str) -> bool:
    """One distpaint store in and a .zarr out: the evaluation layout of `repair_store`."""
    if len(inputs) != 1 or not out.rstrip("/").lower().endswith(".zarr"):
        return False
    if location.is_url(inputs[0]):
        if not location.is_file(location.join(inputs[0].rstrip("/"), "zarr.json")):
            return False
    elif not (pathlib.Path(inputs[0]).is_dir() and (pathlib.Path(inputs[0]) / "zarr.json").is_file()):
        return False
    sources = expand_inputs(inputs)  # a broken store is refused here, naming the file
    return all(s.sample is not None for s in sources)


def _run(inputs: list[str], out: str, method: str, config: Any,
         sample: list[str] | None, overwrite: bool, input_threshold: float | None,
         as_json: bool) -> None:
    if _store_mode(inputs, out):
        if input_threshold is not None:
            raise ConfigError("--input-threshold binarises mask files; a store's masks are "
                              "binary already")
        names = repair_store(inputs[0], out, method, config, sample or None,
                             overwrite=overwrite,
                             progress=lambda name: _console.print(f"{method}: {name}",
                                                                  highlight=False))
        _console.print(f"wrote {len(names)} sample(s) to {out}")
        return
    if sample:
        raise ConfigError("--sample picks samples of one mask store written to a .zarr store "
                          "(--out OUT.zarr); it does not apply to these inputs")
    _run_files(inputs, out, method, config, overwrite, input_threshold, as_json)


def _run_files(inputs: list[str], out: str, method: str, config: Any,
               overwrite: bool, input_threshold: float | None, as_json: bool) -> None:
    """Files, folders, globs, stores into a folder: infer's job with the baseline as model;
    progress, results table and exit status as `distpaint infer`."""
    err = Console(stderr=True)
    progress = _RichProgress(err, method)
    start = time.perf_counter()
    try:
        report = repair_files(inputs, out, method, config, overwrite=overwrite,
                              input_threshold=input_threshold, progress=progress)
    finally:
        progress.stop()
    if as_json:
        print(json.dumps(asdict(report), indent=2))
    else:
        if report.done:
            _console.print(_results_table(report))
        seconds = time.perf_counter() - start
        _console.print(f"{method}: {len(report.done)} mask(s) in {seconds:.1f} s",
                       highlight=False)
    for _, message in report.failed:
        err.print(f"[red]skipped:[/] {message}", highlight=False, soft_wrap=True)
    if report.failed:
        err.print(f"[yellow]{len(report.failed)} mask(s) skipped; fix them and re-run the same "
                  "command to finish (repaired masks are kept)[/]", highlight=False)
        raise SystemExit(1)


@baseline_app.command("closing")
def closing_command(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help=_INPUTS_HELP),
    out: str = typer.Option(..., "--out", "-o", help=_OUT_HELP),
    radius: int = typer.Option(ClosingConfig.radius, help="Disk radius in px; closes gaps up to ~2x."),
    sample: list[str] | None = typer.Option(None, "--sample", help="One store to .zarr: only these samples (repeatable)."),
    input_threshold: float = typer.Option(None, help="Binarise non-binary input files: "
                                                     "foreground = value > T."),
    overwrite: bool = typer.Option(False, help="Replace outputs (samples) that already exist."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (files)."),
) -> None:
    """Morphological closing with a disk (input OR closed)."""
    _run(inputs, out, "closing", ClosingConfig(radius=radius), sample, overwrite,
         input_threshold, as_json)


@baseline_app.command("linking")
def linking_command(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help=_INPUTS_HELP),
    out: str = typer.Option(..., "--out", "-o", help=_OUT_HELP),
    max_distance: float = typer.Option(LinkingConfig.max_distance, help="Longest gap bridged, px."),
    max_angle: float = typer.Option(LinkingConfig.max_angle, help="Largest end-direction / bridge angle, degrees."),
    direction_length: int = typer.Option(LinkingConfig.direction_length, help="Skeleton px traced back to estimate an end's direction."),
    sample: list[str] | None = typer.Option(None, "--sample", help="One store to .zarr: only these samples (repeatable)."),
    input_threshold: float = typer.Option(None, help="Binarise non-binary input files: "
                                                     "foreground = value > T."),
    overwrite: bool = typer.Option(False, help="Replace outputs (samples) that already exist."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (files)."),
) -> None:
    """Bridge facing skeleton end points with segments as wide as the structure."""
    config = LinkingConfig(max_distance=max_distance, max_angle=max_angle,
                           direction_length=direction_length)
    _run(inputs, out, "linking", config, sample, overwrite, input_threshold, as_json)


def register(app: typer.Typer) -> None:
    """Add the `baseline` command group to the distpaint CLI."""
    app.add_typer(baseline_app, name="baseline")
