"""`distpaint corrupt`: erase random gaps from every sample of a store, into another store.

    distpaint corrupt SRC --gaps mix --seed 0 --out DST [--density 1.0]
        [--hit-foreground/--no-hit-foreground] [--sample NAME ...] [--overwrite]

Each output sample has the layers `mask` (the corrupted mask), `gaps` (M, the foreground
pixels removed) and `truth` (the source mask); its attrs record the gap config and seed.
Corruption runs block by block (Dask), so masks of any size fit in memory, and the gaps
depend only on (seed, sample name, gap options, source chunking). Writing into SRC is refused.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from distpaint.data.gaps import GAP_KINDS, GapConfig, corrupt_store
from distpaint.errors import ConfigError

__all__ = ["register", "corrupt"]


def corrupt(
    # str, not Path: stores may be URLs (s3://bucket/x.zarr), which Path would mangle
    src: str = typer.Argument(..., help="Mask store to read (its `mask` layers are the truth): a folder or a URL."),
    gaps: str = typer.Option("mix", "--gaps", help=f"Gap kind: {', '.join(GAP_KINDS)}."),
    seed: int = typer.Option(..., "--seed", help="Seed of the gaps (>= 0)."),
    out: str = typer.Option(..., "--out", "-o", help="Mask store to write (created if missing; a folder or a URL); not SRC."),
    density: float = typer.Option(1.0, help="Multiplier on the gap counts (per 256x256 area)."),
    hit_foreground: bool = typer.Option(True, "--hit-foreground/--no-hit-foreground",
                                        help="Centre gaps on foreground pixels (else uniformly)."),
    sample: list[str] | None = typer.Option(None, "--sample", help="Only these samples (repeatable)."),
    overwrite: bool = typer.Option(False, help="Replace samples that already exist in OUT."),
) -> None:
    """Corrupt the masks of SRC with random gaps and write mask/gaps/truth samples into OUT."""
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    config = GapConfig(kind=gaps, density=density, hit_foreground=hit_foreground)
    results = corrupt_store(src, out, config, seed, names=sample or None, overwrite=overwrite)
    table = Table(title=f"{gaps} gaps (seed {seed}) into {out}")
    for column in ("sample", "shape", "foreground px", "removed"):
        table.add_column(column, justify="left" if column == "sample" else "right")
    for r in results:
        share = r["removed"] / r["foreground"] if r["foreground"] else 0.0
        table.add_row(r["name"], f"{r['shape'][0]}x{r['shape'][1]}", str(r["foreground"]), f"{r['removed']} ({share:.1%})")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the `corrupt` command to the distpaint CLI."""
    app.command("corrupt")(corrupt)
