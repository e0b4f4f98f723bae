"""`distpaint benchset`: build and check the fixed, seeded benchmark sets.

    distpaint benchset make --out bench_data --seed 0          # ~1 min on 2 cores, ~70 MB
    distpaint benchset make --out /tmp/tiny --seed 0 --small   # seconds (tests, smoke runs)
    distpaint benchset verify bench_data                        # files still exactly as built?
    distpaint benchset make --out s3://bucket/bench --seed 0    # object storage (same bytes)

`make` writes, per synthetic kind (roots, vessels, roads, sketch), a patch-level store
`OUT/patch/<kind>.zarr` (256 x 256 patches, each with its own `mix` gaps) and a whole-mask
store `OUT/whole/<kind>.zarr` (2048 x 2048 masks), every sample holding the layers
`mask` (corrupted input), `gaps` and `truth`, and `OUT/manifest.json`. The same options give
the same files byte for byte; the seeds are disjoint from everything training draws
(`distpaint.data.benchset`). Score methods on them with `bench/quality.py` or
`distpaint evaluate --pred-store P --truth-store OUT/whole/roads.zarr`.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from distpaint.data.benchset import (
    BenchsetConfig,
    make_benchset,
    open_benchset,
    verify_benchset,
)
from distpaint.data.synth import KINDS
from distpaint.errors import InputError

__all__ = ["benchset_app", "make_command", "register", "verify_command"]

benchset_app = typer.Typer(help="Fixed, seeded benchmark sets (patch and whole-mask level).",
                           no_args_is_help=True)
_console = Console()
_DEFAULT = BenchsetConfig()


@benchset_app.command("make")
def make_command(
    # str, not Path: OUT may be a URL (s3://bucket/bench), which Path would mangle
    out: str = typer.Option(..., "--out", "-o", help="Folder or fsspec URL to write (must not exist, or be empty)."),
    seed: int = typer.Option(0, "--seed", help="Base seed of the sets (>= 0)."),
    small: bool = typer.Option(False, "--small", help="Tiny sets for tests: 6 patches and one 512 px mask per kind."),
    kind: list[str] | None = typer.Option(None, "--kind", help=f"Only these kinds (repeatable; default all: {', '.join(KINDS)})."),
    patches: int | None = typer.Option(None, help=f"Patches per kind (default {_DEFAULT.patches})."),
    whole: int | None = typer.Option(None, help=f"Whole masks per kind (default {_DEFAULT.whole_count})."),
    whole_size: int | None = typer.Option(None, help=f"Side of the whole masks, px (default {_DEFAULT.whole_size})."),
    gap_density: float = typer.Option(_DEFAULT.gap_density, help="Density of the mix gaps (counts per 256x256 area)."),
) -> None:
    """Write the patch-level and whole-mask benchmark sets of every kind, with a manifest."""
    base = BenchsetConfig.small(seed) if small else BenchsetConfig(seed=seed)
    values = base.to_dict()
    values.update(kinds=tuple(kind) if kind else base.kinds, gap_density=gap_density)
    for key, value in (("patches", patches), ("whole_count", whole), ("whole_size", whole_size)):
        if value is not None:
            values[key] = value
    config = BenchsetConfig.from_dict(values)
    bench = make_benchset(out, config, log=lambda line: _console.print(line, highlight=False))
    _console.print(_summary_table(bench.manifest, out))


def _summary_table(manifest: dict, out: str) -> Table:
    table = Table(title=f"benchmark sets in {out} (seed {manifest['config']['seed']})")
    for column in ("level", "kind", "samples", "source masks", "foreground", "removed"):
        table.add_column(column, justify="left" if column in ("level", "kind") else "right")
    for level, kinds in manifest["sets"].items():
        for kind, s in kinds.items():
            fg, rm = s["foreground_mean"], s["removed_fraction_mean"]
            table.add_row(level, kind, str(s["samples"]), str(s["source_masks"]),
                          "-" if fg is None else f"{fg:.2%}", "-" if rm is None else f"{rm:.1%}")
    return table


@benchset_app.command("verify")
def verify_command(
    path: str = typer.Argument(..., help="A folder (or URL) written by `distpaint benchset make`."),
) -> None:
    """Recompute every store's SHA-256 digest and compare it with the manifest."""
    bad = verify_benchset(path)
    if bad:
        raise InputError(f"{path}: store(s) changed since they were built: {', '.join(bad)}; "
                         "rebuild the set")
    bench = open_benchset(path)
    _console.print(_summary_table(bench.manifest, path))
    _console.print(f"all stores match the manifest (digest {bench.digest[:16]})")


def register(app: typer.Typer) -> None:
    """Add the `benchset` command group to the distpaint CLI."""
    app.add_typer(benchset_app, name="benchset")
