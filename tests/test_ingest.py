"""Tests of mask file reading/writing and ingestion into the store, including the CLI.

Real files written with imageio, tifffile and rasterio; real Zarr stores in tmp_path.
Run: .venv/bin/python -m pytest tests/test_ingest.py
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest
import rasterio
import tifffile
import typer
import zarr
from rasterio.crs import CRS
from affine import Affine
from typer.testing import CliRunner

from distpaint.cli import app
from distpaint.data.files import read_mask_file, write_mask_file
from distpaint.data.ingest import (
    IngestConfig,
    expand_sources,
    file_sha256,
    ingest_file,
    ingest_files,
    sample_name,
)
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4600000.0)


def _mask(shape=(700, 900), seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    mask[rng.integers(0, shape[0], 9), :] = True
    mask[:, rng.integers(0, shape[1], 9)] = True
    return mask


def _write_geotiff(path, values):
    with rasterio.open(
        path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1], count=1,
        dtype=values.dtype.name, crs=CRS.from_epsg(32633), transform=TRANSFORM,
    ) as ds:
        ds.write(values, 1)


def _sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _write(kind, path, mask):
    """Write `mask` as a file of `kind`; returns its path."""
    if kind == "png":
        iio.imwrite(path, mask.astype(np.uint8) * 255)
    elif kind == "png-rgb":
        iio.imwrite(path, np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2))
    elif kind == "tiff-tiled":
        tifffile.imwrite(path, mask.astype(np.uint8), tile=(256, 256), compression="zlib")
    elif kind == "tiff-plain":
        tifffile.imwrite(path, mask)
    elif kind == "geotiff":
        _write_geotiff(path, mask.astype(np.uint8) * 255)
    elif kind == "npy":
        np.save(path, mask.astype(np.float32))
    elif kind == "zarr":
        zarr.save_array(str(path), mask.astype(np.uint8), zarr_format=3)
    return path


SUFFIX = {"png": ".png", "png-rgb": ".png", "tiff-tiled": ".tif", "tiff-plain": ".tiff",
          "geotiff": ".tif", "npy": ".npy", "zarr": ".zarr"}


@pytest.mark.parametrize("kind", sorted(SUFFIX))
def test_ingest_round_trip_each_format(tmp_path, kind):
    mask = _mask()
    src = _write(kind, tmp_path / f"m_{kind}{SUFFIX[kind]}", mask)
    before = file_sha256(src)
    store = MaskStore.create(tmp_path / "s.zarr")
    result = ingest_file(src, store)
    assert result.name == f"m_{kind}" and result.shape == mask.shape and not result.warnings
    assert result.foreground == mask.sum()
    np.testing.assert_array_equal(store.array(result.name)[:], mask)
    attrs = store.attrs(result.name)
    assert attrs["source"] == str(src.resolve()) and attrs["sha256"] == before
    assert attrs["shape"] == list(mask.shape) and attrs["foreground"] == mask.sum()
    assert file_sha256(src) == before  # the source is never modified
    if src.is_file():
        assert _sha(src) == before


def test_geotiff_georeferencing_kept_and_written_back(tmp_path):
    mask = _mask((600, 500))
    src = tmp_path / "roads.tif"
    _write_geotiff(src, mask.astype(np.uint8))  # {0, 1}
    store = MaskStore.create(tmp_path / "s.zarr")
    ingest_file(src, store)
    attrs = store.attrs("roads")
    assert CRS.from_wkt(attrs["crs"]) == CRS.from_epsg(32633)
    assert attrs["transform"] == list(TRANSFORM)[:6]
    assert attrs["source_dtype"] == "uint8" and attrs["foreground_value"] == 1

    out = tmp_path / "roads_out.tif"
    write_mask_file(out, store.dask("roads"), attrs)
    with rasterio.open(out) as ds, rasterio.open(src) as orig:
        assert ds.crs == orig.crs and ds.transform == orig.transform
        assert ds.dtypes == orig.dtypes and ds.shape == orig.shape
        np.testing.assert_array_equal(ds.read(1), orig.read(1))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".npy", ".zarr"])
def test_write_mask_file_round_trip_keeps_values(tmp_path, suffix):
    mask = _mask((1300, 700))
    out = tmp_path / f"out{suffix}"
    meta = {"source_dtype": "uint8", "foreground_value": 1}
    write_mask_file(out, mask, meta)
    again, read_meta = read_mask_file(out)
    np.testing.assert_array_equal(again.compute(), mask)
    assert read_meta["foreground_value"] == (True if suffix == ".zarr" else 1)
    write_mask_file(out, ~mask, {})  # replaces atomically, default values 0/255 (bool for npy)
    again, read_meta = read_mask_file(out)
    np.testing.assert_array_equal(again.compute(), ~mask)
    assert read_meta["foreground_value"] in (255, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary left


def test_write_mask_file_failure_leaves_nothing(tmp_path):
    import dask.array as da

    def boom(block, block_id=None):
        if block_id == (1, 0):
            raise RuntimeError("model crashed")
        return block

    lazy = da.from_array(_mask((2048, 512)), chunks=1024).map_blocks(boom, dtype=bool)
    for suffix in (".tif", ".npy", ".zarr"):
        with pytest.raises(RuntimeError, match="model crashed"):
            write_mask_file(tmp_path / f"out{suffix}", lazy, {})
    assert list(tmp_path.iterdir()) == []


def test_non_binary_needs_threshold_and_error_lists_values(tmp_path):
    grey = (np.arange(300 * 300).reshape(300, 300) % 7 * 30).astype(np.uint8)
    src = tmp_path / "grey.png"
    iio.imwrite(src, grey)
    with pytest.raises(InputError, match=r"grey\.png: not a binary mask, values found: "
                       r"0, 30, 60, 90, 120, 150, 180; pass a threshold"):
        read_mask_file(src)
    many = tmp_path / "many.npy"
    np.save(many, np.linspace(0, 1, 300 * 300).reshape(300, 300))
    with pytest.raises(InputError, match=r"many\.npy: .*values found: 0, 1\.11\S+, .*, \.\.\."):
        read_mask_file(many)
    two = tmp_path / "two.npy"  # two values but no 0: still not a {0, v} mask
    np.save(two, np.where(_mask((300, 300)), 2, 1).astype(np.int16))
    with pytest.raises(InputError, match="values found: 1, 2"):
        read_mask_file(two)

    mask, meta = read_mask_file(src, threshold=100)
    np.testing.assert_array_equal(mask.compute(), grey > 100)
    assert meta["threshold"] == 100 and meta["foreground"] == (grey > 100).sum()
    store = MaskStore.create(tmp_path / "s.zarr")
    ingest_file(src, store, config=IngestConfig(threshold=100))
    np.testing.assert_array_equal(store.array("grey")[:], grey > 100)
    with pytest.raises(InputError, match=r"grey\.png: no pixel above threshold 250"):
        read_mask_file(src, threshold=250)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("garbage.png", b"this is not an image" * 10, "not a PNG file"),
        ("garbage.tif", b"this is not an image" * 10, "cannot read as TIFF"),
        ("garbage.npy", b"this is not an image" * 10, "cannot read as NPY"),
        ("empty.png", b"", r"empty file \(0 bytes\)"),
        ("empty.tif", b"", r"empty file \(0 bytes\)"),
        ("empty.npy", b"", r"empty file \(0 bytes\)"),
        ("mask.jpg", b"\xff\xd8\xff", "unsupported file type '.jpg'"),
    ],
)
def test_unreadable_and_empty_files_name_the_file(tmp_path, name, content, message):
    src = tmp_path / name
    src.write_bytes(content)
    store = MaskStore.create(tmp_path / "s.zarr")
    with pytest.raises(InputError, match=f"{name}: {message}"):
        ingest_file(src, store)
    assert store.names() == [] and sorted(os.listdir(store.path)) == ["zarr.json"]
    assert src.read_bytes() == content


def test_empty_masks_name_the_file(tmp_path):
    zero = tmp_path / "zero.png"
    iio.imwrite(zero, np.zeros((300, 300), np.uint8))
    with pytest.raises(InputError, match=r"zero\.png: empty mask \(every pixel is 0\)"):
        read_mask_file(zero)
    sized = tmp_path / "sized.npy"
    np.save(sized, np.zeros((0, 40), bool))
    with pytest.raises(InputError, match=r"sized\.npy: empty image \(shape \(0, 40\)\)"):
        read_mask_file(sized)
    with pytest.raises(InputError, match=r"nothere\.png: no such file"):
        read_mask_file(tmp_path / "nothere.png")


def test_colour_and_stack_inputs(tmp_path):
    rgb = np.zeros((300, 300, 3), np.uint8)
    rgb[10, :, 0] = 255
    iio.imwrite(tmp_path / "colour.png", rgb)
    with pytest.raises(InputError, match=r"colour\.png: a colour image"):
        read_mask_file(tmp_path / "colour.png")
    np.save(tmp_path / "stack.npy", np.ones((2, 300, 300), np.uint8))
    with pytest.raises(InputError, match=r"stack\.npy: expected a 2-D mask"):
        read_mask_file(tmp_path / "stack.npy")


def test_small_mask_is_padded_and_reported(tmp_path):
    small = _mask((100, 300))
    src = tmp_path / "tiny.npy"
    np.save(src, small)
    store = MaskStore.create(tmp_path / "s.zarr")
    report = ingest_files([src], store)
    (result,) = report.ingested
    assert result.shape == (256, 300) and result.padded_from == (100, 300)
    (warning,) = report.warnings
    assert "tiny.npy: 100x300 is smaller than one 256x256 patch" in warning
    assert store.attrs("tiny")["padded_from"] == [100, 300]
    stored = store.array("tiny")[:]
    np.testing.assert_array_equal(stored[:100], small)
    assert not stored[100:].any()
    out = tmp_path / "tiny_out.npy"  # written back at the original size
    write_mask_file(out, stored, store.attrs("tiny"))
    np.testing.assert_array_equal(np.load(out), small)


def test_zarr_sources_sample_and_store(tmp_path):
    first = MaskStore.create(tmp_path / "first.zarr")
    first.write("a", {"mask": _mask(seed=1)}, {"crs": "X", "transform": [1, 0, 0, 0, -1, 0]})
    first.write("b", {"mask": _mask(seed=2)})
    store = MaskStore.create(tmp_path / "second.zarr")
    report = ingest_files([tmp_path / "first.zarr"], store, IngestConfig(prefix="old_"))
    assert [r.name for r in report.ingested] == ["old_a", "old_b"]
    np.testing.assert_array_equal(store.array("old_b")[:], _mask(seed=2))
    assert store.attrs("old_a")["crs"] == "X"  # georeferencing carried over
    mask, _ = read_mask_file(tmp_path / "first.zarr" / "a")
    np.testing.assert_array_equal(mask.compute(), _mask(seed=1))
    with pytest.raises(InputError, match=r"first\.zarr: a mask store with 2 samples"):
        read_mask_file(tmp_path / "first.zarr")
    with pytest.raises(InputError, match="inside the output store"):
        ingest_file(tmp_path / "second.zarr" / "old_a", store, name="c")


def test_many_files_fail_fast_or_skip_bad(tmp_path):
    good = [_write("png", tmp_path / f"g{i}.png", _mask(seed=i)) for i in range(2)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    store = MaskStore.create(tmp_path / "s.zarr")
    with pytest.raises(InputError, match=r"bad\.png: not a PNG.*\(1 earlier source ingested\)"):
        ingest_files([good[0], bad, good[1]], store)
    assert store.names() == ["g0"]
    report = ingest_files([bad, good[1]], store, IngestConfig(skip_bad=True))
    assert [r.name for r in report.ingested] == ["g1"]
    assert report.failed == [(str(bad), f"{bad}: not a PNG file (no PNG signature)")]


def test_names_and_clashes(tmp_path):
    assert sample_name("dir/My Road (1).tif") == "My_Road_1"
    assert sample_name("x.ome.tif", prefix="p_") == "p_x.ome"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = _write("png", tmp_path / "a" / "m.png", _mask())
    two = _write("npy", tmp_path / "b" / "m.npy", _mask())
    with pytest.raises(InputError, match="would both become sample 'm'"):
        expand_sources([one, two])
    store = MaskStore.create(tmp_path / "s.zarr")
    ingest_files([one], store)
    with pytest.raises(InputError, match="samples already exist: m; pass --overwrite"):
        ingest_files([two], store)
    ingest_files([two], store, IngestConfig(overwrite=True))
    assert store.attrs("m")["format"] == "npy"
    with pytest.raises(ConfigError, match="threshold"):
        IngestConfig(threshold=float("nan"))
    with pytest.raises(ConfigError, match="prefix"):
        IngestConfig(prefix="a/b")


def _ingest_args(*args: str) -> list[str]:
    """Arguments for the app: with a single registered command Typer makes it the app itself."""
    is_group = hasattr(typer.main.get_command(app), "list_commands")
    return (["ingest"] if is_group else []) + list(args)


def test_cli_ingest_prints_table(tmp_path):
    src = _write("png", tmp_path / "vessels.png", _mask())
    tiny = tmp_path / "tiny.npy"
    np.save(tiny, _mask((50, 60)))
    out = tmp_path / "s.zarr"
    result = CliRunner().invoke(app, _ingest_args(str(src), str(tiny), "--out", str(out)))
    assert result.exit_code == 0, result.output
    assert "vessels" in result.output and "700x900" in result.output
    assert f"{100 * _mask().mean():.3f}%" in result.output
    assert "50x60 is smaller than one 256x256 patch" in result.output
    assert MaskStore.open(out).names() == ["tiny", "vessels"]

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    result = CliRunner().invoke(
        app, _ingest_args(str(bad), str(src), "--out", str(tmp_path / "t.zarr"), "--skip-bad")
    )
    assert result.exit_code == 1 and "skipped" in result.output and "vessels" in result.output


def test_cli_bad_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "distpaint"), *_ingest_args(str(bad), "--out",
                                                                   str(tmp_path / "s.zarr"))],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.png: cannot read as PNG" in lines[0], out.stderr


@pytest.mark.parametrize("kind", ["tiff-tiled", "tiff-plain", "geotiff", "npy"])
def test_large_files_are_read_in_windows(tmp_path, kind):
    from distpaint.data.files import read_raw

    mask = _mask((2500, 2100))
    src = _write(kind, tmp_path / f"big{SUFFIX[kind]}", mask)
    raw, _ = read_raw(src)
    assert raw.chunks == ((1024, 1024, 452), (1024, 1024, 52))  # lazy windows, not one block
    window = raw[1000:1300, 2000:2100].compute()
    np.testing.assert_array_equal(window != 0, mask[1000:1300, 2000:2100])


def test_corrupt_tile_found_while_reading_is_an_input_error(tmp_path):
    """A compressed TIFF whose last tile is damaged opens fine and fails only when Dask
    decodes that tile, deep inside a compute: still one error naming the file."""
    src = _write("tiff-tiled", tmp_path / "late.tif", _mask((1024, 1024)))
    with tifffile.TiffFile(src) as tif:
        offset, count = tif.pages[0].dataoffsets[-1], tif.pages[0].databytecounts[-1]
    data = bytearray(src.read_bytes())
    data[offset:offset + count] = b"\x00" * count
    src.write_bytes(bytes(data))
    before = _sha(src)
    with pytest.raises(InputError, match=r"late\.tif: cannot read as TIFF: .*decompress"):
        ingest_files([src], tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists() and _sha(src) == before


def test_broken_tiff_error_is_one_line_without_tifffile_log(tmp_path):
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"II*\x00garbage-garbage")
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "distpaint"), *_ingest_args(str(bad), "--out", str(tmp_path / "s.zarr"))],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].endswith("garbage.tif: cannot read as TIFF: no image in the file"), out.stderr


def test_failed_ingest_leaves_no_store_it_created(tmp_path):
    grey = tmp_path / "grey.png"
    iio.imwrite(grey, (np.arange(300 * 300).reshape(300, 300) % 3 * 100).astype(np.uint8))
    good = _write("png", tmp_path / "good.png", _mask((300, 300)))
    new = tmp_path / "new.zarr"
    with pytest.raises(InputError, match="values found: 0, 100, 200"):
        ingest_files([grey], new)
    assert not new.exists()
    # skip_bad with nothing ingested: same
    report = ingest_files([grey], new, IngestConfig(skip_bad=True))
    assert report.failed and not report.ingested and not new.exists()
    # the user's empty folder stays, empty
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(InputError):
        ingest_files([grey], folder)
    assert folder.is_dir() and list(folder.iterdir()) == []
    # an existing store is never removed; samples ingested before the bad one stay
    with pytest.raises(InputError, match=r"\(1 earlier source ingested\)"):
        ingest_files([good, grey], new)
    assert MaskStore.open(new).names() == ["good"]
    with pytest.raises(InputError):
        ingest_files([grey], new)
    assert MaskStore.open(new).names() == ["good"]


# ---- sources as infer takes them, names that keep non-ASCII, values and sizes refused -------
def test_sample_names_keep_non_ascii_information():
    assert sample_name("mäsk 道路.png") == "mask_u9053u8def"
    assert sample_name("道路.tif") == "u9053u8def" and sample_name("道.png") != sample_name("路.png")
    assert sample_name("ﬁeld Ｒｏａｄ.npy") == "field_Road"  # ligature, full-width: NFKD
    assert sample_name("straße.png") == "strau00dfe"  # no decomposition: code point
    assert sample_name("café.png", prefix="p_") == "p_cafe"
    assert sample_name("dir/My Road (1).tif") == "My_Road_1"  # ASCII rule unchanged


def test_names_that_collide_after_transliteration_are_refused_before_writing(tmp_path):
    one = _write("png", tmp_path / "mask.png", _mask())
    two = _write("png", tmp_path / "mäsk.png", _mask(seed=1))
    with pytest.raises(InputError, match=r"mask\.png and .*mäsk\.png would both become sample "
                                         r"'mask'"):
        ingest_files([one, two], tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()
    report = ingest_files([two, _write("png", tmp_path / "道路.png", _mask(seed=2))],
                          tmp_path / "s.zarr")
    assert [r.name for r in report.ingested] == ["mask", "u9053u8def"]


def test_cli_ingests_a_folder_and_a_quoted_glob(tmp_path):
    scans = tmp_path / "scans"
    (scans / "deep").mkdir(parents=True)
    (scans / ".hidden").mkdir()
    _write("png", scans / "a.png", _mask(seed=1))
    _write("tiff-tiled", scans / "deep" / "b.tif", _mask(seed=2))
    _write("png", scans / ".hidden" / "c.png", _mask(seed=3))
    (scans / "notes.txt").write_text("not a mask")
    result = CliRunner().invoke(app, _ingest_args(str(scans), "--out", str(tmp_path / "f.zarr")))
    assert result.exit_code == 0, result.output
    store = MaskStore.open(tmp_path / "f.zarr")
    assert store.names() == ["a", "b"]  # recursive, hidden skipped, only mask files
    np.testing.assert_array_equal(store.array("b")[:], _mask(seed=2))
    # a glob the shell did not expand (CliRunner passes it as it is, like a quoted one)
    result = CliRunner().invoke(app, _ingest_args(str(scans / "**" / "*.tif"), str(scans / "*.png"),
                                                  "--out", str(tmp_path / "g.zarr")))
    assert result.exit_code == 0, result.output
    assert MaskStore.open(tmp_path / "g.zarr").names() == ["a", "b"]
    with pytest.raises(InputError, match=r"\*\.npy: no file matches this pattern"):
        ingest_files([str(scans / "*.npy")], tmp_path / "h.zarr")
    assert not (tmp_path / "h.zarr").exists()


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_nan_and_inf_are_refused_with_their_count(tmp_path, threshold):
    values = _mask((300, 300)).astype(np.float64)
    values[0, :4] = np.nan
    values[1, :2] = [np.inf, -np.inf]
    np.save(tmp_path / "f.npy", values)
    with pytest.raises(InputError, match=r"f\.npy: 6 NaN/inf values among 90,000 pixels of "
                                         r"float64; a mask needs finite values"):
        read_mask_file(tmp_path / "f.npy", threshold)
    fixed = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)
    np.save(tmp_path / "ok.npy", fixed)
    mask, _ = read_mask_file(tmp_path / "ok.npy", threshold)
    np.testing.assert_array_equal(mask.compute(), fixed > (threshold or 0))


def test_png_pixel_limit_is_explicit_and_can_be_raised(tmp_path, monkeypatch):
    from PIL import Image

    from distpaint.data import files

    assert files.max_image_pixels() == 2**34 == files.DEFAULT_MAX_IMAGE_PIXELS
    src = _write("png", tmp_path / "big.png", _mask((300, 400)))
    monkeypatch.setenv("DISTPAINT_MAX_IMAGE_PIXELS", "100000")
    with pytest.raises(InputError, match=r"big\.png: 120,000 pixels \(300x400\) exceeds the "
                                         r"limit of 100,000 pixels .*DISTPAINT_MAX_IMAGE_PIXELS=N"):
        read_mask_file(src)
    monkeypatch.setenv("DISTPAINT_MAX_IMAGE_PIXELS", "120000")
    assert read_mask_file(src)[0].shape == (300, 400)
    monkeypatch.setenv("DISTPAINT_MAX_IMAGE_PIXELS", "-5")
    with pytest.raises(ConfigError, match="DISTPAINT_MAX_IMAGE_PIXELS='-5'"):
        read_mask_file(src)
    # Pillow's own guard is set to the same limit while reading (never switched off), its
    # warning made an error, both reported as an InputError
    default = Image.MAX_IMAGE_PIXELS
    for limit in (100_000, 50_000):  # warning (limit < size <= 2 limit) and error (> 2 limit)
        with pytest.raises(InputError, match=f"big\\.png: its size exceeds the limit of {limit:,}"):
            with files._pixel_limit(src, limit):
                assert Image.MAX_IMAGE_PIXELS == limit
                Image.open(src).load()
    assert Image.MAX_IMAGE_PIXELS == default


def test_truncated_tiffs_are_refused_with_their_sizes(tmp_path):
    for kind, name in (("tiff-tiled", "t.tif"), ("tiff-plain", "p.tiff"), ("geotiff", "g.tif")):
        src = _write(kind, tmp_path / name, _mask())
        data = src.read_bytes()
        src.write_bytes(data[: len(data) // 2])
        with pytest.raises(InputError, match=rf"{name}: truncated TIFF: the file has "
                                             rf"{len(data) // 2:,} bytes, its image data runs to "
                                             r"byte [\d,]+"):
            read_mask_file(src)


def test_broken_zarr_metadata_names_the_file(tmp_path):
    store = MaskStore.create(tmp_path / "s.zarr")
    store.write("a", {"mask": _mask()})
    (tmp_path / "s.zarr" / "a" / "zarr.json").write_text("[1, 2")
    with pytest.raises(InputError, match=r"s\.zarr/a/zarr\.json: broken Zarr metadata \(not "
                                         r"valid JSON: .*\)"):
        ingest_files([tmp_path / "s.zarr"], tmp_path / "t.zarr")
    assert not (tmp_path / "t.zarr").exists()
    (tmp_path / "s.zarr" / "a" / "zarr.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"s\.zarr/a/zarr\.json: broken Zarr metadata \(not a "
                                         r"JSON object\)"):
        read_mask_file(tmp_path / "s.zarr" / "a")
