"""`distpaint ingest`: write mask files (PNG, TIFF, GeoTIFF, NPY, Zarr) into a mask store.

    distpaint ingest roads.tif vessels/*.png scans/ 'more/**/*.tif' old.zarr --out masks.zarr
        [--threshold 127] [--chunks 1024] [--overwrite] [--skip-bad] [--prefix NAME_]
        [--patch-size 256]
    distpaint ingest scans/ s3://bucket/old.zarr --out s3://bucket/masks.zarr   # object storage

SOURCES are expanded as `distpaint infer` expands its inputs: files, folders (every mask file
below them), quoted globs and mask stores (one sample per sample). Sample names are the file
stems made ASCII (`distpaint.data.ingest.sample_name`: 'mäsk 道路.png' -> 'mask_u9053u8def');
two sources with one name are refused before anything is written. The output store and store
sources may be fsspec URLs (`distpaint.data.location`); mask files are read from local paths.

Prints a table of the samples written (name, shape, foreground fraction, source) and a yellow
warning for each mask padded up to one patch. The first bad source stops the run with a
one-line error (exit status 2); with `--skip-bad` bad sources are listed and the others
ingested (exit status 1 if any was skipped).
"""

from __future__ import annotations


import typer
from rich.console import Console
from rich.table import Table

from distpaint.data.ingest import IngestConfig, IngestReport, ingest_files

__all__ = ["register", "ingest"]


def ingest(
    sources: list[str] = typer.Argument(
        ..., metavar="SOURCES...",
        help="Mask files (.png, .tif/.tiff (GeoTIFF too), .npy, .zarr array or sample), "
        "folders (every mask file below), globs ('scans/*.png') and mask stores (folders or URLs)."
    ),
    # str, not Path: a store may be a URL (s3://bucket/masks.zarr), which Path would mangle
    out: str = typer.Option(..., "--out", "-o", help="Mask store to write (created if missing): "
                            "a folder or an fsspec URL (s3://bucket/masks.zarr)."),
    threshold: float | None = typer.Option(
        None, help="Binarise non-binary images: foreground = value > THRESHOLD."
    ),
    chunks: int = typer.Option(1024, help="Side of the square Zarr chunks."),
    patch_size: int = typer.Option(256, help="Pad masks smaller than this on either side."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace samples that already exist."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Report bad sources and ingest the others (exit status 1 if any)."
    ),
    prefix: str = typer.Option("", help="Prepended to every sample name."),
) -> None:
    """Ingest mask files into a Zarr v3 mask store (one sample per file, named by its stem)."""
    config = IngestConfig(
        threshold=threshold, chunks=chunks, patch_size=patch_size, overwrite=overwrite,
        skip_bad=skip_bad, prefix=prefix,
    )
    report = ingest_files(sources, out, config)
    _print_report(report, out)
    if report.failed:
        # SystemExit, not typer.Exit: the app runs with standalone_mode=False, where click
        # turns typer.Exit into a return value that the entry point would drop.
        raise SystemExit(1)


def _print_report(report: IngestReport, out: str) -> None:
    console = Console()
    table = Table(title=f"ingested into {out}")
    for column in ("sample", "shape", "foreground", "source"):
        table.add_column(column, justify="right" if column == "foreground" else "left")
    for result in report.ingested:
        h, w = result.shape
        table.add_row(
            result.name, f"{h}x{w}", f"{100 * result.foreground_fraction:.3f}%", result.source
        )
    console.print(table)
    err = Console(stderr=True)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    for source, message in report.failed:
        err.print(f"[red]skipped:[/] {message}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `ingest` command to the distpaint CLI."""
    app.command("ingest")(ingest)
