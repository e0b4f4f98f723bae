"""Baselines: closing and end-point linking on hand-made gaps; tiled equals in-memory."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import line
from skimage.measure import label

from distpaint.baselines import (
    ClosingConfig,
    LinkingConfig,
    closing,
    closing_dask,
    linking,
    linking_dask,
)
from distpaint.baselines.run import repair_store
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError


def components(m: np.ndarray) -> int:
    return int(label(m, connectivity=2).max())


def line_with_gap(gap: tuple[int, int], width: int = 3):
    """A horizontal line `width` px wide, columns 5..114, with columns gap[0]:gap[1] erased."""
    truth = np.zeros((60, 120), bool)
    truth[30 - width // 2 : 30 - width // 2 + width, 5:115] = True
    broken = truth.copy()
    broken[:, gap[0] : gap[1]] = False
    return truth, broken


def random_broken(seed: int, shape=(300, 300)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, bool)
    for _ in range(30):
        y0, x0, y1, x1 = rng.integers(0, shape[0], 4)
        m[line(y0, x0, y1, x1)] = True
    m = ndimage.binary_dilation(m)
    gaps = ndimage.binary_dilation(rng.random(shape) < 0.02, iterations=3)
    return m & ~gaps


# ---- closing -------------------------------------------------------------------------------
def test_closing_fills_a_small_gap_and_keeps_every_pixel():
    truth, broken = line_with_gap((50, 54))
    out = closing(broken, ClosingConfig(radius=3))
    assert components(broken) == 2 and components(out) == 1
    assert (out >= broken).all()
    assert out[30, 50:54].all()  # joined through the centre (a disk closing leaves a neck)
    # structures touching the image border survive (the image is mirrored, not zero-padded)
    edge = np.zeros((20, 20), bool)
    edge[:, 0:2] = True
    assert (closing(edge) == edge).all()


@pytest.mark.parametrize("chunks", [37, 64, 300])
def test_closing_dask_equals_in_memory(chunks):
    m = random_broken(0)
    config = ClosingConfig(radius=4)
    tiled = closing_dask(da.from_array(m, chunks=chunks), config).compute()
    assert (tiled == closing(m, config)).all()


def test_closing_config_is_validated():
    with pytest.raises(ConfigError, match="radius"):
        ClosingConfig(radius=0)


# ---- linking -------------------------------------------------------------------------------
def test_linking_bridges_a_gap_in_a_width_3_line_with_width_3():
    truth, broken = line_with_gap((50, 62))
    out = linking(broken)
    assert components(out) == 1
    assert out[29:32, 50:62].all()  # the gap is filled over the full width ...
    assert not out[:27].any() and not out[34:].any()  # ... and not much wider
    assert (out >= broken).all()
    assert (out ^ truth).sum() <= 12  # only the rounded caps of the bridge differ


def test_linking_does_not_join_unrelated_perpendicular_ends():
    m = np.zeros((100, 100), bool)
    m[49:52, 10:41] = True  # ends at column 40, heading right
    m[60:91, 49:52] = True  # ends at row 60, heading up; the ends are 14 px apart at 45 deg
    assert (linking(m) == m).all()
    # the same ends facing each other are joined
    facing = np.zeros((100, 100), bool)
    facing[49:52, 10:41] = True
    facing[49:52, 55:90] = True
    assert components(linking(facing)) == 1


def test_linking_respects_max_distance():
    _, broken = line_with_gap((40, 70))  # 30 px gap
    assert components(linking(broken, LinkingConfig(max_distance=20))) == 2
    assert components(linking(broken, LinkingConfig(max_distance=40))) == 1


@pytest.mark.parametrize("angle", [44, 53, 62])
def test_linking_ends_stay_inside_the_image_where_a_branch_leaves_it(angle):
    """A 2-3 px line leaving through the top border at an angle: the end projected on its
    branch used to fall on row -1 (NumPy then drew the bridge on the far side, or raised an
    IndexError on the right or bottom border)."""
    from skimage.morphology import skeletonize

    from distpaint.baselines.linking import find_ends

    a = np.radians(angle)
    m = np.zeros((40, 60), bool)
    rr, cc = line(25, 20, int(round(25 - 40 * np.sin(a))), int(round(20 + 40 * np.cos(a))))
    keep = (rr >= 0) & (cc < 60)
    m[rr[keep], cc[keep]] = True
    m = ndimage.binary_dilation(m)
    edt = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    ends = find_ends(skeletonize(m), edt, LinkingConfig(), m)
    assert ends and all(0 <= e.y < 40 and 0 <= e.x < 60 for e in ends)


def test_linking_dask_equals_in_memory_across_tile_borders():
    _, broken = line_with_gap((55, 66))  # the gap straddles the chunk border at column 60
    lazy = linking_dask(da.from_array(broken, chunks=(30, 60))).compute()
    assert (lazy == linking(broken)).all()
    m = random_broken(1)
    assert (linking_dask(da.from_array(m, chunks=100)).compute() == linking(m)).all()


def test_linking_config_is_validated():
    with pytest.raises(ConfigError, match="max_angle"):
        LinkingConfig(max_angle=120)
    with pytest.raises(ConfigError, match="max_distance"):
        LinkingConfig(max_distance=0)


def test_empty_mask_is_returned_unchanged():
    empty = np.zeros((20, 20), bool)
    assert not linking(empty).any() and not closing(empty).any()


# ---- stores --------------------------------------------------------------------------------
def test_repair_store_writes_same_names_and_copies_reference_layers(tmp_path):
    truth, broken = line_with_gap((50, 54))
    src = MaskStore.create(tmp_path / "src.zarr")
    src.write("a", {"mask": broken, "gaps": truth & ~broken, "truth": truth}, {"seed": 3})
    src.write("b", {"mask": broken})
    names = repair_store(tmp_path / "src.zarr", tmp_path / "out.zarr", "closing",
                         ClosingConfig(radius=3))
    out = MaskStore.open(tmp_path / "out.zarr")
    assert names == out.names() == ["a", "b"]
    assert out.layers("a") == ["gaps", "mask", "truth"] and out.layers("b") == ["mask"]
    assert (out.array("a")[:] == closing(broken, ClosingConfig(radius=3))).all()
    assert (out.array("a", "truth")[:] == truth).all()
    attrs = out.attrs("a")
    assert attrs["baseline"] == "closing" and attrs["baseline_config"] == {"radius": 3}
    assert attrs["seed"] == 3
    with pytest.raises(InputError, match="differ"):
        repair_store(tmp_path / "src.zarr", tmp_path / "src.zarr", "closing", ClosingConfig())
    with pytest.raises(ConfigError, match="unknown baseline"):
        repair_store(tmp_path / "src.zarr", tmp_path / "x.zarr", "magic", ClosingConfig())


# ---- files, folders, globs and stores, as distpaint infer takes them -------------------------
def _read(path):
    from distpaint.data.files import read_raw

    return np.asarray(read_raw(path)[0].compute()) != 0


def test_baseline_runs_as_a_model_of_infers_job_tiled_equals_whole(tmp_path):
    from distpaint.baselines.predictor import BaselineFactory, BaselinePredictor, repair_files
    from distpaint.data.files import write_mask_file

    m = random_broken(2, (260, 300))
    write_mask_file(tmp_path / "in.png", m)
    config = ClosingConfig(radius=4)
    report = repair_files([tmp_path / "in.png"], tmp_path / "out.png", "closing", config,
                          tile=64)  # 5 x 5 tiles, halo 2r + 1
    (result,) = report.done
    assert result.tiles == 25
    want = closing(m, config)
    np.testing.assert_array_equal(_read(tmp_path / "out.png"), want)
    np.testing.assert_array_equal(_read(tmp_path / "out.added.png"), want & ~m)
    assert (tmp_path / "out.preview.png").is_file()
    assert result.added_pixels == (want & ~m).sum() > 0
    # linking: whole-mask result over several tiles where no greedy choice competes
    _, broken = line_with_gap((55, 66))
    write_mask_file(tmp_path / "line.npy", broken)
    repair_files([tmp_path / "line.npy"], tmp_path / "line_out.npy", "linking",
                 LinkingConfig(), tile=32)
    np.testing.assert_array_equal(np.load(tmp_path / "line_out.npy"), linking(broken))
    assert components(np.load(tmp_path / "line_out.npy")) == 1
    # the predictor: align 1, the baseline's halo, 0/1 probabilities
    predictor = BaselineFactory("linking", LinkingConfig(max_distance=10))()
    assert isinstance(predictor, BaselinePredictor)
    assert (predictor.align, predictor.receptive_halo) == (1, LinkingConfig(max_distance=10).halo)
    probs = predictor(broken[None, None].astype(np.float32))
    assert probs.dtype == np.float32 and set(np.unique(probs)) <= {0.0, 1.0}
    assert BaselineFactory("closing", ClosingConfig(3)).fingerprint != \
        BaselineFactory("closing", ClosingConfig(4)).fingerprint
    with pytest.raises(ConfigError, match="unknown baseline"):
        BaselineFactory("magic", ClosingConfig())
    with pytest.raises(ConfigError, match="needs a LinkingConfig"):
        BaselineFactory("linking", ClosingConfig())


def _baseline_cli(*args):
    from typer.testing import CliRunner

    from distpaint.cli import app

    result = CliRunner().invoke(app, ["baseline", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_cli_baseline_takes_files_folders_globs_and_writes_like_infer(tmp_path):
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    from distpaint.data.files import write_mask_file

    _, broken = line_with_gap((50, 54))
    write_mask_file(tmp_path / "in.png", broken)
    result = _baseline_cli("closing", tmp_path / "in.png", "--out", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("closing ") and "infer" not in result.stderr  # its label
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.png", "out.added.png", "out.png", "out.preview.png"]
    np.testing.assert_array_equal(_read(tmp_path / "out.png"), closing(broken))
    # a GeoTIFF keeps its georeferencing; a folder of masks and a quoted glob into a folder
    scans = tmp_path / "scans"
    scans.mkdir()
    meta = {"crs": CRS.from_epsg(32633).to_wkt(),
            "transform": list(Affine(0.5, 0, 5e5, 0, -0.5, 4.6e6))[:6]}
    write_mask_file(scans / "geo.tif", broken, meta)
    write_mask_file(scans / "b.npy", random_broken(3, (90, 120)))
    result = _baseline_cli("linking", scans, "--out", tmp_path / "fixed")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "fixed").iterdir()) == [
        "b.added.npy", "b.npy", "b.preview.png", "geo.added.tif", "geo.preview.png", "geo.tif"]
    with rasterio.open(tmp_path / "fixed" / "geo.tif") as ds:
        assert ds.crs == CRS.from_epsg(32633) and list(ds.transform)[:6] == meta["transform"]
        np.testing.assert_array_equal(ds.read(1) != 0, linking(broken))
    result = _baseline_cli("closing", scans / "*.npy", "--out", tmp_path / "globbed",
                           "--radius", "2")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "globbed" / "b.npy"),
                                  closing(random_broken(3, (90, 120)), ClosingConfig(radius=2)))
    # an existing output is refused without --overwrite, as by infer
    with pytest.raises(InputError, match="output exists"):
        _baseline_cli("closing", tmp_path / "in.png", "--out", tmp_path / "out.png")
    assert _baseline_cli("closing", tmp_path / "in.png", "--out", tmp_path / "out.png",
                         "--overwrite").exit_code == 0
    with pytest.raises(ConfigError, match="--sample picks samples of one mask store"):
        _baseline_cli("closing", tmp_path / "in.png", "--out", tmp_path / "o.png", "--sample", "a")


def test_cli_baseline_stores_keep_the_evaluation_layout_or_write_like_infer(tmp_path):
    truth, broken = line_with_gap((50, 54))
    src = MaskStore.create(tmp_path / "src.zarr")
    src.write("a", {"mask": broken, "gaps": truth & ~broken, "truth": truth})
    src.write("b", {"mask": broken})
    # one store to a .zarr: repair_store, as before (gaps and truth copied, --sample)
    result = _baseline_cli("closing", tmp_path / "src.zarr", "--out", tmp_path / "eval.zarr",
                           "--sample", "a")
    assert result.exit_code == 0, result.output
    out = MaskStore.open(tmp_path / "eval.zarr")
    assert out.names() == ["a"] and out.layers("a") == ["gaps", "mask", "truth"]
    assert out.attrs("a")["baseline"] == "closing"
    # a store into a folder: infer's layout (layers mask and added, previews)
    result = _baseline_cli("closing", tmp_path / "src.zarr", "--out", tmp_path / "folder")
    assert result.exit_code == 0, result.output
    out = MaskStore.open(tmp_path / "folder" / "src.zarr")
    assert out.names() == ["a", "b"] and out.layers("b") == ["added", "mask"]
    np.testing.assert_array_equal(out.array("b")[:], closing(broken))
    assert sorted(p.name for p in (tmp_path / "folder" / "src.previews").iterdir()) == [
        "a.png", "b.png"]
