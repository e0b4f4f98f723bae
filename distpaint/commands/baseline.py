"""`distpaint baseline`: classical gap repair of a whole mask store, the floor to beat.

    distpaint baseline closing SRC --out DST [--radius 3] [--sample NAME ...] [--overwrite]
    distpaint baseline linking SRC --out DST [--max-distance 20] [--max-angle 35]
        [--direction-length 8] [--sample NAME ...] [--overwrite]

Each sample of SRC (its `mask` layer) is repaired lazily, tile by tile, and written into DST
under the same name, with SRC's `gaps` and `truth` layers copied, so that
`distpaint evaluate --pred-store DST --truth-store SRC` scores it.
"""

from __future__ import annotations

import pathlib
from typing import Any

import typer
from rich.console import Console

from distpaint.baselines.closing import ClosingConfig
from distpaint.baselines.linking import LinkingConfig
from distpaint.baselines.run import repair_store

__all__ = ["baseline_app", "closing_command", "linking_command", "register"]

baseline_app = typer.Typer(
    help="Classical gap repair (closing, end-point linking) of every sample of a store.",
    no_args_is_help=True,
)
_console = Console()


def _run(src: pathlib.Path, out: pathlib.Path, method: str, config: Any,
         sample: list[str] | None, overwrite: bool) -> None:
    names = repair_store(src, out, method, config, sample or None, overwrite=overwrite,
                         progress=lambda name: _console.print(f"{method}: {name}",
                                                              highlight=False))
    _console.print(f"wrote {len(names)} sample(s) to {out}")


@baseline_app.command("closing")
def closing_command(
    src: pathlib.Path = typer.Argument(..., help="Mask store to repair (its `mask` layers)."),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="Store to write (created if missing)."),
    radius: int = typer.Option(ClosingConfig.radius, help="Disk radius in px; closes gaps up to ~2x."),
    sample: list[str] | None = typer.Option(None, "--sample", help="Only these samples (repeatable)."),
    overwrite: bool = typer.Option(False, help="Replace samples that already exist in OUT."),
) -> None:
    """Morphological closing with a disk (input OR closed)."""
    _run(src, out, "closing", ClosingConfig(radius=radius), sample, overwrite)


@baseline_app.command("linking")
def linking_command(
    src: pathlib.Path = typer.Argument(..., help="Mask store to repair (its `mask` layers)."),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="Store to write (created if missing)."),
    max_distance: float = typer.Option(LinkingConfig.max_distance, help="Longest gap bridged, px."),
    max_angle: float = typer.Option(LinkingConfig.max_angle, help="Largest end-direction / bridge angle, degrees."),
    direction_length: int = typer.Option(LinkingConfig.direction_length, help="Skeleton px traced back to estimate an end's direction."),
    sample: list[str] | None = typer.Option(None, "--sample", help="Only these samples (repeatable)."),
    overwrite: bool = typer.Option(False, help="Replace samples that already exist in OUT."),
) -> None:
    """Bridge facing skeleton end points with segments as wide as the structure."""
    config = LinkingConfig(max_distance=max_distance, max_angle=max_angle,
                           direction_length=direction_length)
    _run(src, out, "linking", config, sample, overwrite)


def register(app: typer.Typer) -> None:
    """Add the `baseline` command group to the distpaint CLI."""
    app.add_typer(baseline_app, name="baseline")
