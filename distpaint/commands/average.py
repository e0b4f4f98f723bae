"""`distpaint average`: one generator from the mean weights of several checkpoints of a run.

    distpaint average runs/roads --last 8 --out runs/roads/average
    distpaint average runs/roads/checkpoints/step_00009000 runs/roads/checkpoints/step_00010000 \
        --out runs/roads/average

See `distpaint.train.average` for why (GAN checkpoints oscillate; their mean is steadier).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from distpaint.errors import ConfigError

__all__ = ["register", "average"]


def average(
    sources: list[Path] = typer.Argument(..., help="Checkpoint directories, or one run directory (with --last)"),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory to write"),
    last: int = typer.Option(0, "--last", help="With a run directory: average its newest N checkpoints"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out"),
) -> None:
    """Average the generator weights of checkpoints (for inference, shipping or --init)."""
    # deferred (torch): `distpaint` imports every command module when it starts
    from distpaint.train.average import average_checkpoints, run_checkpoints

    if last < 0:
        raise ConfigError("--last must be >= 0")
    paths = list(sources)
    if last:
        if len(sources) != 1:
            raise ConfigError("--last takes one run directory")
        found = run_checkpoints(sources[0])
        if len(found) < last:
            raise ConfigError(f"{sources[0]}: --last {last} but the run keeps {len(found)} checkpoint(s) "
                              f"(raise keep_checkpoints in its recipe)")
        paths = found[-last:]
    target = average_checkpoints(paths, out, overwrite=overwrite)
    Console().print(f"averaged {len(paths)} checkpoint(s) ({paths[0].name} .. {paths[-1].name}) into {target}",
                    highlight=False)


def register(app: typer.Typer) -> None:
    """Add `distpaint average` to the CLI."""
    app.command("average")(average)
