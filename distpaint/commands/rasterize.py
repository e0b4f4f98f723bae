"""`distpaint rasterize`: burn vector line data (GIS files, SUMO networks, GraphML street graphs,
SVG drawings) into binary masks of a mask store.

    distpaint rasterize SOURCES... --out STORE [--resolution 0.5] [--px-per-unit 4]
        [--width W | --width-attr A | --lanes-attr A [--lane-width 3.2] | --class-attr A
        [--class-widths FILE]] [--default-width W] [--min-width-px 1] [--include GLOB]...
        [--exclude GLOB]... [--cap round|flat|square] [--join round|mitre|bevel] [--layer L]
        [--margin M] [--bounds MINX MINY MAXX MAXY] [--name N] [--overwrite]
        [--licence TEXT] [--attribution TEXT] [--chunks 1024]

Sources: .gpkg .shp .geojson .json .fgb (geopandas/pyogrio; reprojected to metres when in
degrees or feet), .net.xml[.gz] (SUMO: lanes at their widths plus junction polygons),
.graphml[.gz] (street graphs), .svg (stroked shapes, widths = stroke widths). One sample per
source, named by its stem. Prints a table of the samples written; bad input ends in one red
line naming the file (exit status 2). STORE may be an fsspec URL (`s3://bucket/roads.zarr`):
the vector files are read here, the samples written there (each published whole).
"""

from __future__ import annotations

import pathlib

import typer
from rich.console import Console
from rich.table import Table

from distpaint.data.vector import RasterizeConfig, WidthRule, load_class_widths, rasterize_files

__all__ = ["register", "rasterize"]


def rasterize(
    sources: list[pathlib.Path] = typer.Argument(
        ..., help="Vector files: .gpkg .shp .geojson .json .fgb .net.xml[.gz] .graphml[.gz] .svg."
    ),
    # str, not Path: a store may be a URL (s3://bucket/masks.zarr), which Path would mangle
    out: str = typer.Option(..., "--out", "-o", help="Mask store to write (created if missing): "
                            "a folder or an fsspec URL (s3://bucket/masks.zarr)."),
    resolution: float | None = typer.Option(
        None, help="Metres per pixel for georeferenced data and SUMO nets (default 0.5)."),
    px_per_unit: float | None = typer.Option(
        None, help="Pixels per unit for data without a CRS (SVG user units; default 4)."),
    width: float | None = typer.Option(None, help="One width for every line (metres / units)."),
    width_attr: str | None = typer.Option(None, help="Attribute holding each line's width."),
    lanes_attr: str | None = typer.Option(
        None, help="Attribute holding a lane count; width = lanes x --lane-width."),
    lane_width: float = typer.Option(3.2, help="Width of one lane for --lanes-attr."),
    class_attr: str | None = typer.Option(
        None, help="Attribute holding the class (e.g. highway): widths from the class table "
        "unless another width option is given; --include/--exclude match it."),
    class_widths: pathlib.Path | None = typer.Option(
        None, help="YAML/JSON mapping class: width laid over the built-in OSM highway table."),
    default_width: float = typer.Option(
        1.0, help="Width of lines the data gives none for (missing attribute, unknown class)."),
    min_width_px: float = typer.Option(1.0, help="Smallest burnt width in pixels."),
    include: list[str] | None = typer.Option(
        None, "--include", help="Burn only classes matching this glob (repeatable)."),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", help="Skip classes matching this glob, e.g. 'highway.footway', "
        "'railway.*' (repeatable)."),
    cap: str = typer.Option("round", help="Line ends: round, flat or square."),
    join: str = typer.Option("round", help="Line corners: round, mitre or bevel."),
    layer: str | None = typer.Option(None, help="Layer of a multi-layer GeoPackage."),
    margin: float = typer.Option(0.0, help="Background around the data, in CRS units."),
    bounds: tuple[float, float, float, float] | None = typer.Option(
        None, help="Rasterise MINX MINY MAXX MAXY (output CRS) instead of the data's extent."),
    name: str | None = typer.Option(None, help="Sample name (one source only)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace samples that already exist."),
    licence: str | None = typer.Option(None, help="Licence of the data, kept in the attrs."),
    attribution: str | None = typer.Option(None, help="Attribution, kept in the attrs."),
    chunks: int = typer.Option(1024, help="Side of the square blocks burnt and Zarr chunks."),
) -> None:
    """Burn vector lines (GIS, SUMO, GraphML, SVG) into a mask store, one sample per file."""
    table = load_class_widths(class_widths) if class_widths is not None else None
    rule = WidthRule(
        width=width, width_attr=width_attr, lanes_attr=lanes_attr, lane_width=lane_width,
        class_attr=class_attr, class_widths=table, default_width=default_width,
        include=tuple(include or ()), exclude=tuple(exclude or ()), min_width_px=min_width_px,
        cap=cap, join=join,
    )
    config = RasterizeConfig(
        resolution=resolution, px_per_unit=px_per_unit, rule=rule, margin=margin,
        bounds=bounds, layer=layer, chunks=chunks, overwrite=overwrite, licence=licence,
        attribution=attribution,
    )
    results = rasterize_files(sources, out, config, name=name)
    _print_results(results, out)


def _print_results(results, out: str) -> None:
    table = Table(title=f"rasterized into {out}")
    for column in ("sample", "kind", "shape", "features", "pixel", "foreground", "source"):
        table.add_column(column, justify="right" if column in ("features", "foreground")
                         else "left")
    for r in results:
        pixel = (f"{r.pixel_size:g} m/px" if r.unit == "metre"
                 else f"{1 / r.pixel_size:g} px/unit")
        table.add_row(r.name, r.kind, f"{r.shape[0]}x{r.shape[1]}", str(r.features), pixel,
                      f"{100 * r.foreground_fraction:.3f}%", r.source)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the `rasterize` command to the distpaint CLI."""
    app.command("rasterize")(rasterize)
