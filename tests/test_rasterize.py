"""`distpaint rasterize` and `distpaint.data.vector`: vector lines burnt into mask stores.

Every input is small vector data written here in tmp_path: GeoJSON (projected and in degrees),
Shapefile and GeoPackage with classes, SUMO nets (.net.xml and .net.xml.gz), GraphML graphs and
SVG drawings. Checks burnt widths in pixels, CRS/transform attrs, pixel-centre coordinates,
class tables and filters, connectivity, chunking invariance, and one-line CLI errors.

Run: .venv/bin/python -m pytest tests/test_rasterize.py -q
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import shapely
from rasterio import Affine

from distpaint.data.store import MaskStore
from distpaint.data.vector import (
    RasterizeConfig,
    VectorLines,
    WidthRule,
    rasterize_file,
    rasterize_lines,
    read_vector,
)
from distpaint.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EIGHT = np.ones((3, 3), dtype=bool)


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the real entry point (`distpaint.cli.main`) in-process: (exit status, out, err)."""
    from distpaint import cli

    monkeypatch.setattr(sys, "argv", ["distpaint", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _components(mask: np.ndarray) -> int:
    return ndi.label(mask, EIGHT)[1]


def _run_length(column: np.ndarray) -> int:
    """Length of the single run of True in a 1-D profile (fails if there are several)."""
    idx = np.flatnonzero(column)
    assert len(idx) and (np.diff(idx) == 1).all(), idx
    return len(idx)


# ---- GIS files ---------------------------------------------------------------------------------
def _geojson_utm(path: Path) -> Path:
    import geopandas as gpd

    frame = gpd.GeoDataFrame(
        {"width": [4.0, 2.0], "name": ["horizontal", "vertical"]},
        geometry=[shapely.LineString([(500000, 4000000), (500100, 4000000)]),
                  shapely.LineString([(500200, 3999950), (500200, 4000050)])],
        crs="EPSG:32633")
    frame.to_file(path, driver="GeoJSON")
    return path


@pytest.mark.parametrize("res", [0.5, 1.0])
def test_geojson_widths_crs_transform_and_pixel_centres(tmp_path, monkeypatch, capsys, res):
    from pyproj import CRS

    src = _geojson_utm(tmp_path / "roads.geojson")
    before = _sha(src)
    code, out, err = _cli(monkeypatch, capsys, "rasterize", src, "--out", tmp_path / "o.zarr",
                          "--resolution", res, "--width-attr", "width", "--licence", "CC0",
                          "--attribution", "me")
    assert code == 0, err
    assert "roads" in out and "geojson" in out
    assert _sha(src) == before
    store = MaskStore.open(tmp_path / "o.zarr")
    attrs, mask = store.attrs("roads"), store.array("roads")[:]
    assert CRS.from_wkt(attrs["crs"]).to_epsg() == 32633
    assert attrs["format"] == "vector:geojson" and attrs["unit"] == "metre"
    assert attrs["resolution"] == res and attrs["features"] == 2
    assert attrs["licence"] == "CC0" and attrs["attribution"] == "me"
    assert attrs["source"] == str(src.resolve()) and attrs["sha256"] == before
    assert attrs["width_rule"]["mode"] == "attr"
    t = Affine(*attrs["transform"])
    # North-up; extent = footprints (round caps add half a width), snapped to the pixel size.
    assert (t.a, t.b, t.d, t.e) == (res, 0.0, 0.0, -res)
    assert (t.c, t.f) == (500000 - 2.0, 4000050 + 1.0)
    assert mask.shape == (round(102 / res), round(203 / res))
    inv = ~t
    col = int((inv @ (500050, 4000000))[0])
    rows = np.flatnonzero(mask[:, col])
    assert _run_length(mask[:, col]) == round(4 / res)  # 4 m wide
    # the burnt run is centred on the line: its middle pixel centre maps to y = 4000000
    x_mid, y_mid = t @ (col + 0.5, (rows[0] + rows[-1]) / 2 + 0.5)
    assert y_mid == pytest.approx(4000000, abs=1e-9)
    assert x_mid == pytest.approx(500050, abs=res)
    row = int((inv @ (500200, 4000000))[1])
    assert _run_length(mask[row, round(150 / res):]) == round(2 / res)  # 2 m wide
    # the pixel whose centre is the line's start point is foreground, one width/2 above is not
    c0, r0 = (int(v) for v in inv @ (500000.1, 4000000.1))
    assert mask[r0, c0] and not mask[r0 - round(2.5 / res), c0]


def test_geojson_in_degrees_is_reprojected_to_utm(tmp_path):
    import geopandas as gpd
    from pyproj import CRS

    frame = gpd.GeoDataFrame(geometry=[shapely.LineString([(15.0, 52.0), (15.001, 52.0)])],
                             crs="EPSG:4326")
    frame.to_file(tmp_path / "deg.geojson", driver="GeoJSON")
    store = MaskStore.create(tmp_path / "o.zarr")
    result = rasterize_file(tmp_path / "deg.geojson", store,
                            RasterizeConfig(resolution=1.0, rule=WidthRule(width=3.0)))
    attrs = store.attrs("deg")
    assert CRS.from_wkt(attrs["crs"]).to_epsg() == 32633
    assert attrs["vector"]["reprojected_from"] == "EPSG:4326"
    # 0.001 degrees of longitude at 52 N is ~68.5 m, + 3 m of round caps
    assert 70 <= result.shape[1] <= 73 and result.unit == "metre"
    assert _components(store.array("deg")[:]) == 1


def test_web_mercator_is_reprojected_to_true_metres(tmp_path):
    """EPSG:3857 is in "metres" stretched by 1/cos(latitude): 1000 of them at 51.5 N are ~623 m."""
    import geopandas as gpd

    frame = gpd.GeoDataFrame(geometry=[shapely.LineString([(-15000, 6712000), (-14000, 6712000)])],
                             crs="EPSG:3857")
    frame.to_file(tmp_path / "merc.geojson", driver="GeoJSON")
    store = MaskStore.create(tmp_path / "o.zarr")
    result = rasterize_file(tmp_path / "merc.geojson", store,
                            RasterizeConfig(resolution=1.0, rule=WidthRule(width=2.0)))
    assert store.attrs("merc")["vector"]["reprojected_from"] == "EPSG:3857"
    assert 620 <= result.shape[1] <= 628


def _osm_frame():
    import geopandas as gpd

    return gpd.GeoDataFrame(
        {"highway": ["primary", "residential", "footway", "track"]},
        geometry=[shapely.LineString([(0, 0), (100, 0)]),
                  shapely.LineString([(0, 50), (100, 50)]),
                  shapely.LineString([(0, 100), (100, 100)]),
                  shapely.LineString([(0, 150), (100, 150)])],
        crs="EPSG:32633")


def test_shapefile_and_geopackage_class_table_and_exclude(tmp_path, monkeypatch, capsys):
    frame = _osm_frame()
    frame.to_file(tmp_path / "shp_roads.shp")
    frame.to_file(tmp_path / "gpkg_roads.gpkg", layer="roads", driver="GPKG")
    frame.iloc[:1].to_file(tmp_path / "gpkg_roads.gpkg", layer="other", driver="GPKG")
    (tmp_path / "widths.yaml").write_text("residential: 4\ntrack: 2.5\n")
    out = tmp_path / "o.zarr"
    options = ["--out", out, "--resolution", 1, "--class-attr", "highway",
               "--class-widths", tmp_path / "widths.yaml", "--exclude", "foot*"]
    code, _, err = _cli(monkeypatch, capsys, "rasterize", tmp_path / "shp_roads.shp", *options)
    assert code == 0, err
    code, _, err = _cli(monkeypatch, capsys, "rasterize", tmp_path / "gpkg_roads.gpkg", *options,
                        "--layer", "roads")
    assert code == 0, err
    store = MaskStore.open(out)
    masks = {n: store.array(n)[:] for n in ("shp_roads", "gpkg_roads")}
    np.testing.assert_array_equal(masks["shp_roads"], masks["gpkg_roads"])
    attrs = store.attrs("gpkg_roads")
    assert attrs["features"] == 3 and attrs["layer"] == "roads"
    assert attrs["class_filters"]["exclude"] == ["foot*"]
    assert attrs["width_rule"]["class_widths"]["residential"] == 4.0
    assert attrs["width_rule"]["class_widths"]["primary"] == 10.0  # built-in table kept
    mask, inv = masks["gpkg_roads"], ~Affine(*attrs["transform"])
    col = int((inv @ (50, 0))[0])
    profile = mask[:, col]
    for y, width in ((0, 10), (50, 4), (150, 2.5)):
        row = int((inv @ (50, y))[1])
        lo, hi = max(0, row - 8), row + 8
        assert np.count_nonzero(profile[lo:hi]) in (np.floor(width), np.ceil(width)), y
    assert not profile[int((inv @ (50, 100))[1]) - 3:int((inv @ (50, 100))[1]) + 3].any()


# ---- SUMO ---------------------------------------------------------------------------------------
SUMO_NET = """<?xml version="1.0" encoding="UTF-8"?>
<net version="1.16" junctionCornerDetail="5">
    <location netOffset="-500000.00,-4000000.00" convBoundary="0.00,-50.00,100.00,3.20"
        origBoundary="15,36,15.1,36.1"
        projParameter="+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs"/>
    <type id="highway.primary" priority="7" numLanes="2" speed="13.89"/>
    <edge id=":J1_0" function="internal">
        <lane id=":J1_0_0" index="0" speed="13.89" length="8.00" shape="46.00,0.00 54.00,0.00"/>
    </edge>
    <edge id=":J1_c0" function="crossing" crossingEdges="F">
        <lane id=":J1_c0_0" index="0" speed="1.00" length="8.00" width="4.00"
            shape="46.00,-3.00 54.00,-3.00"/>
    </edge>
    <edge id="E0" from="J0" to="J1" priority="7" type="highway.primary">
        <lane id="E0_0" index="0" speed="13.89" length="46.00" shape="0.00,0.00 46.00,0.00"/>
        <lane id="E0_1" index="1" speed="13.89" length="46.00" width="3.00"
            shape="0.00,3.20 46.00,3.20"/>
    </edge>
    <edge id="E1" from="J1" to="J2" priority="4" type="highway.residential">
        <lane id="E1_0" index="0" speed="13.89" length="46.00" shape="54.00,0.00 100.00,0.00"/>
    </edge>
    <edge id="F" from="J1" to="J3" priority="1" type="highway.footway">
        <lane id="F_0" index="0" allow="pedestrian" speed="2.78" length="46.00" width="2.00"
            shape="50.00,-6.00 50.00,-50.00"/>
    </edge>
    <junction id="J0" type="dead_end" x="0.00" y="0.00" incLanes="" intLanes=""
        shape="0.00,-1.60 0.00,4.70"/>
    <junction id="J1" type="priority" x="50.00" y="0.00" incLanes="E0_0 E0_1" intLanes=":J1_0_0"
        shape="46.00,-5.00 54.00,-5.00 54.00,4.70 46.00,4.70"/>
    <junction id="J2" type="dead_end" x="100.00" y="0.00" incLanes="E1_0" intLanes=""
        shape="100.00,1.60 100.00,-1.60"/>
    <junction id="J3" type="dead_end" x="50.00" y="-50.00" incLanes="F_0" intLanes=""
        shape="49.00,-50.00 51.00,-50.00"/>
    <junction id=":J1_0_0" type="internal" x="50.00" y="0.00" incLanes=":J1_0_0" intLanes=""/>
    <connection from="E0" to="E1" fromLane="0" toLane="0" via=":J1_0_0" dir="s" state="M"/>
</net>
"""


def test_sumo_net_lanes_and_junctions_connected_footway_excluded(tmp_path):
    from pyproj import CRS

    (tmp_path / "town.net.xml").write_text(SUMO_NET)
    with gzip.open(tmp_path / "town_gz.net.xml.gz", "wt") as fh:
        fh.write(SUMO_NET)
    lines = read_vector(tmp_path / "town.net.xml")
    # lanes E0_0, E0_1, E1_0, F_0 and junction J1 (internal/crossing lanes, 2-point shapes skipped)
    assert len(lines) == 5 and lines.metric
    # a junction is burnt when any road ending there is: it carries all their classes
    assert lines.classes[-1] == "highway.footway|highway.primary|highway.residential"
    store = MaskStore.create(tmp_path / "o.zarr")
    config = RasterizeConfig(resolution=0.5, rule=WidthRule(exclude=("highway.footway",)))
    for name in ("town.net.xml", "town_gz.net.xml.gz"):
        rasterize_file(tmp_path / name, store, config)
    assert store.names() == ["town", "town_gz"]
    mask = store.array("town")[:]
    np.testing.assert_array_equal(mask, store.array("town_gz")[:])
    attrs = store.attrs("town")
    assert attrs["format"] == "vector:sumo" and attrs["features"] == 4
    assert attrs["vector"]["sumo"]["netOffset"] == [-500000.0, -4000000.0]
    assert CRS.from_wkt(attrs["crs"]).equals(CRS.from_proj4(
        "+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs"))
    assert _components(mask) == 1
    inv = ~Affine(*attrs["transform"])

    def px(x, y):  # net coordinates -> (row, col): projected = net - netOffset
        c, r = inv @ (x + 500000.0, y + 4000000.0)
        return int(r), int(c)

    assert mask[px(50, 0)] and mask[px(47, -4.5)]     # junction polygon, filled
    assert mask[px(20, 0)] and mask[px(80, 0)]        # lanes
    assert mask.shape[0] == 20  # y from -5 (junction J1) to 5: the footway (to -51) is not burnt
    # lane E1_0 at the default 3.2 m: 6 or 7 pixels at 0.5 m/px
    assert _run_length(mask[:, px(80, 0)[1]]) in (6, 7)


def test_sumo_without_projection_keeps_net_coordinates(tmp_path):
    text = SUMO_NET.replace('projParameter="+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs"',
                            'projParameter="!"')
    (tmp_path / "plain.net.xml").write_text(text)
    lines = read_vector(tmp_path / "plain.net.xml")
    assert lines.crs is None and lines.metric
    burnt = rasterize_lines(lines, 1.0, WidthRule())
    assert burnt.grid.bounds[0] == -2.0 and burnt.features == 5  # footway kept, net x from 0


# ---- GraphML ------------------------------------------------------------------------------------
def test_graphml_edges_with_and_without_wkt_geometry(tmp_path):
    import networkx as nx

    graph = nx.MultiDiGraph(crs="EPSG:32633")
    graph.add_node("a", x=500000.0, y=4000000.0, lon=15.0, lat=36.1)
    graph.add_node("b", x=500100.0, y=4000000.0)
    graph.add_node("c", x=500100.0, y=4000100.0)
    graph.add_edge("a", "b", highway="residential", lanes="2")
    graph.add_edge("b", "a", highway="residential", lanes="2")  # the other direction: drawn once
    graph.add_edge("b", "c", highway="['primary', 'secondary']", lanes="['2', '3']",
                   geometry="LINESTRING (500100 4000000, 500150 4000050, 500100 4000100)")
    nx.write_graphml(graph, tmp_path / "streets.graphml")
    lines = read_vector(tmp_path / "streets.graphml")
    assert len(lines) == 2 and lines.metric
    store = MaskStore.create(tmp_path / "o.zarr")
    rule = WidthRule(lanes_attr="lanes", lane_width=3.0)
    rasterize_file(tmp_path / "streets.graphml", store, RasterizeConfig(resolution=1.0, rule=rule))
    mask, attrs = store.array("streets")[:], store.attrs("streets")
    inv = ~Affine(*attrs["transform"])

    def px(x, y):
        c, r = inv @ (500000 + x, 4000000 + y)
        return int(r), int(c)

    assert mask[px(150, 50)] and not mask[px(100, 50)]  # along the WKT, not the straight chord
    assert _run_length(mask[:, px(50, 0)[1]]) == 6      # 2 lanes x 3 m
    assert _components(mask) == 1
    # no crs: plain units, north-up, --px-per-unit
    del graph.graph["crs"]
    nx.write_graphml(graph, tmp_path / "plain.graphml")
    plain = read_vector(tmp_path / "plain.graphml")
    assert plain.crs is None and not plain.metric
    burnt = rasterize_lines(plain, 0.5, WidthRule(class_attr="highway", exclude=("secondary",)))
    assert burnt.features == 2 and burnt.grid.transform.e == -0.5
    assert sorted(burnt.widths) == [6.0, 10.0]  # residential; primary|secondary -> primary


# ---- SVG ----------------------------------------------------------------------------------------
SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 40 30">
  <rect x="0" y="0" width="40" height="30" fill="#eee"/>
  <g transform="translate(5,2) scale(2)" fill="none">
    <path d="M 0 2 C 2 2 4 6 6 6 L 15 6" stroke="black" stroke-width="1"/>
  </g>
</svg>
"""


@pytest.mark.parametrize("size", [(40, 30), (80, 60)])
def test_svg_path_width_and_position_not_flipped(tmp_path, size):
    path = tmp_path / "drawing.svg"
    path.write_text(SVG.format(w=size[0], h=size[1]))
    store = MaskStore.create(tmp_path / "o.zarr")
    result = rasterize_file(path, store, RasterizeConfig(px_per_unit=4))
    mask, attrs = store.array("drawing")[:], store.attrs("drawing")
    assert result.features == 1  # the filled rect has no stroke
    assert mask.shape == (120, 160)  # viewBox 40 x 30 user units at 4 px per unit
    assert attrs["transform"] == [0.25, 0.0, 0.0, 0.0, 0.25, 0.0] and attrs["crs"] is None
    assert attrs["unit"] == "user unit" and attrs["px_per_unit"] == 4.0
    # the straight part runs at y = 2 + 2*6 = 14 user units -> rows 52..59 (2 units = 8 px)
    rows = np.flatnonzero(mask[:, 30 * 4])
    assert rows.tolist() == list(range(52, 60))
    assert mask[6 * 4, 5 * 4]                      # start point (5, 6)
    assert mask[10 * 4, 11 * 4]                    # the Bezier's midpoint (3, 4) -> (11, 10)
    assert not mask[120 - 56, 30 * 4]              # not flipped
    assert _components(mask) == 1


# ---- streaming ----------------------------------------------------------------------------------
def _wiggly_lines() -> VectorLines:
    x = np.linspace(0, 2000, 4001)
    wave = shapely.LineString(np.column_stack([x, 150 + 120 * np.sin(x / 97.0)]))
    diagonal = shapely.LineString([(0, 0), (2000, 300)])
    polygon = shapely.Polygon([(500, 20), (900, 40), (700, 280)])
    return VectorLines(geometries=[wave, diagonal, polygon], widths=[0.3, 5.0, np.nan],
                       crs=None, unit="unit")


def test_chunked_burn_equals_one_block_and_long_line_stays_connected(tmp_path):
    lines = _wiggly_lines()
    rule = WidthRule(min_width_px=1.0)
    small = rasterize_lines(lines, 1.0, rule, chunks=64)
    whole = rasterize_lines(lines, 1.0, rule, chunks=4096)
    assert np.prod(small.mask.numblocks) > 100 and whole.mask.numblocks == (1, 1)
    a, b = small.mask.compute(), whole.mask.compute()
    np.testing.assert_array_equal(a, b)
    assert a.dtype == bool and a.any()
    assert _components(a) == 1  # a 0.3 px wave kept at 1 px across ~100 blocks
    thin = rasterize_lines(lines.subset(np.array([True, False, False])), 1.0,
                           WidthRule(min_width_px=1.0), chunks=64).mask.compute()
    assert _components(thin) == 1
    # written through the store's shard-by-shard writer: the same pixels
    store = MaskStore.create(tmp_path / "o.zarr")
    store.write("wiggly", {"mask": small.mask}, chunks=64)
    np.testing.assert_array_equal(store.array("wiggly")[:], b)


def test_width_rule_validation():
    with pytest.raises(ConfigError, match="choose one width source"):
        WidthRule(width=3.0, width_attr="width")
    with pytest.raises(ConfigError, match="class widths need --class-attr"):
        WidthRule(class_widths={"a": 1.0})
    with pytest.raises(ConfigError, match="cap"):
        WidthRule(cap="butt")
    with pytest.raises(ConfigError, match="default width"):
        WidthRule(default_width=0)


# ---- CLI errors ---------------------------------------------------------------------------------
def _bad_inputs(tmp: Path) -> list[tuple[list, str, str]]:
    (tmp / "notes.txt").write_text("hello")
    (tmp / "broken.net.xml").write_text("<net><edge id='x'>")
    (tmp / "broken.svg").write_text("<svg><path d='M 0 0 L")
    (tmp / "town.net.xml").write_text(SUMO_NET)
    _geojson_utm(tmp / "utm.geojson")
    frame = _osm_frame()
    frame.to_file(tmp / "two.gpkg", layer="roads", driver="GPKG")
    frame.to_file(tmp / "two.gpkg", layer="more", driver="GPKG")
    return [
        (["missing.geojson"], "missing.geojson: no such file", ""),
        (["notes.txt"], "notes.txt: unknown vector file type", ""),
        (["broken.net.xml"], "broken.net.xml: not a SUMO network: malformed XML", ""),
        (["broken.svg"], "broken.svg: not a readable SVG", ""),
        (["town.net.xml", "--include", "railway.*"], "town.net.xml: no feature left", ""),
        (["utm.geojson", "--px-per-unit", "4"], "utm.geojson: coordinates are metres", ""),
        (["utm.geojson", "--class-attr", "highway"], "utm.geojson: no attribute 'highway'", ""),
        (["two.gpkg"], "two.gpkg: has 2 layers", ""),
    ]


def test_cli_errors_are_one_line_exit_2_and_leave_nothing(tmp_path, monkeypatch, capsys):
    cases = _bad_inputs(tmp_path)
    before = {p.name: _sha(p) for p in tmp_path.iterdir()}
    monkeypatch.chdir(tmp_path)
    for args, message, _ in cases:
        code, _, err = _cli(monkeypatch, capsys, "rasterize", *args, "--out", "o.zarr")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (args, err)
        assert lines[0].startswith("error: ") and message in lines[0], (args, err)
        assert "Traceback" not in err
        assert not (tmp_path / "o.zarr").exists(), args  # a store this run created is removed
    assert {p.name: _sha(p) for p in tmp_path.iterdir()} == before  # inputs untouched


def test_cli_existing_sample_refused_unless_overwrite(tmp_path, monkeypatch, capsys):
    (tmp_path / "town.net.xml").write_text(SUMO_NET)
    args = ["rasterize", tmp_path / "town.net.xml", "--out", tmp_path / "o.zarr",
            "--resolution", "1"]
    assert _cli(monkeypatch, capsys, *args)[0] == 0
    code, _, err = _cli(monkeypatch, capsys, *args, "--name", "town")
    assert code == 2 and "samples already exist: town" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _cli(monkeypatch, capsys, *args, "--resolution", "0.5", "--overwrite")
    assert code == 0, err
    assert MaskStore.open(tmp_path / "o.zarr").attrs("town")["resolution"] == 0.5
    code, _, err = _cli(monkeypatch, capsys, *args, "--name", "x", tmp_path / "town.net.xml")
    assert code == 2 and "--name applies to one source" in err


def test_console_script_reports_a_missing_file_in_one_line(tmp_path):
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "distpaint"), "rasterize", "nowhere.gpkg", "--out",
         "o.zarr"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: nowhere.gpkg: no such file"]
    assert list(tmp_path.iterdir()) == []
