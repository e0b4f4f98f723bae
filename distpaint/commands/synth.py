"""`distpaint synth`: write synthetic thin-structure masks into a mask store.

    distpaint synth roads --size 4096 4096 --seed 0 --count 4 --out synth.zarr
    distpaint synth roots --size 2500 1000 --seed 7 --root-hairs --out synth.zarr
    distpaint synth roads --size 4096 4096 --count 8 --out s3://bucket/synth.zarr   # object storage

KIND is one of roots, vessels, roads, sketch. Sample i is named `<kind>-<i:04d>` and drawn
from the i-th seed spawned from --seed (`numpy.random.SeedSequence(seed).spawn(count)`); the
seed, base seed and options are stored in its attrs. Masks are rasterised and written chunk by
chunk, so a 40000 x 40000 mask needs no more memory than a small one. Prints a table of the
samples (name, shape, foreground %, seconds).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from distpaint.data.store import MaskStore
from distpaint.data.synth import KINDS, SynthConfig
from distpaint.data.synth.writer import SynthSample, check_synth_request, write_synth
from distpaint.errors import ConfigError

__all__ = ["register", "synth"]


def synth(
    kind: str = typer.Argument(..., help=f"Kind of structure: {', '.join(KINDS)}."),
    size: tuple[int, int] = typer.Option((2048, 2048), "--size", help="Mask height and width (px)."),
    seed: int = typer.Option(0, "--seed", help="Base seed; sample i uses the i-th spawned seed."),
    count: int = typer.Option(1, "--count", "-n", help="Number of samples to write."),
    # str, not Path: a store may be a URL (s3://bucket/masks.zarr), which Path would mangle
    out: str = typer.Option(..., "--out", "-o", help="Mask store to write (created if missing): a folder or "
                                                     "an fsspec URL (s3://bucket/masks.zarr)."),
    chunks: int = typer.Option(1024, help="Side of the square chunks (rasterisation and Zarr)."),
    density: float = typer.Option(1.0, help="Structures per unit area, relative to the default."),
    width_scale: float = typer.Option(1.0, help="Multiplier on every stroke width."),
    root_hairs: bool = typer.Option(False, "--root-hairs/--no-root-hairs", help="roots: draw 1-px root hairs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace samples that already exist."),
) -> None:
    """Generate synthetic masks (roots, vessels, roads, sketch) into a Zarr mask store."""
    config = SynthConfig(density=density, width_scale=width_scale, root_hairs=root_hairs)
    # Every option is checked before the store is created: a bad request leaves nothing behind.
    check_synth_request(kind, size, seed, count)
    if isinstance(chunks, bool) or chunks < 1:
        raise ConfigError(f"synth --chunks must be a positive integer, got {chunks}")
    store = MaskStore.create(out, exist_ok=True)
    samples = write_synth(store, kind, size, seed, count, config=config, chunks=chunks, overwrite=overwrite)
    _print_samples(samples, out)


def _print_samples(samples: list[SynthSample], out: str) -> None:
    table = Table(title=f"synthetic samples in {out}")
    for column in ("sample", "seed", "shape", "foreground", "seconds"):
        table.add_column(column, justify="left" if column == "sample" else "right")
    for s in samples:
        fg = "-" if s.foreground is None else f"{100 * s.foreground:.2f}%"
        table.add_row(s.name, str(s.seed), f"{s.shape[0]}x{s.shape[1]}", fg, f"{s.seconds:.2f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the `synth` command to the distpaint CLI."""
    app.command("synth")(synth)
