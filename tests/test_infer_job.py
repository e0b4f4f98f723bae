"""Inference jobs (distpaint.infer.job): every input format in and out (GeoTIFF georeferencing
kept), the added layer and the preview, stores, folders and globs, exactness of the job path
(trivial model == function on the whole image), inputs never overwritten, existing outputs
refused, bad masks of an archive skipped, and an interrupted job resumed to the same bytes.

Run: .venv/bin/python -m pytest tests/test_infer_job.py -q
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import imageio.v3 as iio
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from distpaint.data.files import read_raw, write_mask_file
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError
from distpaint.infer.engine import InferConfig
from distpaint.infer.job import JobConfig, run_job
from distpaint.infer.preview import COLOURS
from infer_models import FnFactory, whole_reference

TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4600000.0)
INFER = InferConfig(keep="all", tile=32, threshold=0.2, batch=2)
JOB = JobConfig(shard=64, preview_size=64)


def _mask(shape=(150, 170), seed=0, density=0.15):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    mask[:, int(shape[1] * 0.6):] = False
    return mask


def _read(path):
    raw, meta = read_raw(path)
    return np.asarray(raw.compute()), meta


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("suffix, values", [
    (".png", "u8"), (".tif", "u8"), (".npy", "bool"), (".npy", "u8"), (".zarr", "bool"),
])
def test_outputs_keep_format_values_and_equal_the_whole_image_function(tmp_path, suffix, values):
    mask = _mask()
    data = mask.astype(np.uint8) * 255 if values == "u8" else mask
    src = tmp_path / f"in{suffix}"
    write_mask_file(src, mask, {"source_dtype": str(data.dtype),
                                "foreground_value": 255 if values == "u8" else True})
    report = run_job([src], FnFactory("pool16"), tmp_path / "out", INFER, JOB)
    want = whole_reference(mask, "pool16", threshold=0.2)
    out, meta = _read(tmp_path / "out" / f"in{suffix}")
    added, _ = _read(tmp_path / "out" / f"in.added{suffix}")
    assert out.dtype == data.dtype and set(np.unique(out)) <= set(np.unique(data)) | {0}
    np.testing.assert_array_equal(out != 0, want)
    np.testing.assert_array_equal(added != 0, want & ~mask)
    (result,) = report.done
    assert result.added_pixels == (want & ~mask).sum() > 0 and result.input_pixels == mask.sum()
    assert result.predicted < result.tiles  # the empty right part was skipped
    assert not (tmp_path / "out" / ".distpaint-infer").exists()  # finished: work folder gone


def test_preview_shows_input_white_and_added_red(tmp_path):
    mask = _mask()
    write_mask_file(tmp_path / "m.png", mask)
    run_job([tmp_path / "m.png"], FnFactory("pool16"), tmp_path / "o",
            INFER, JobConfig(shard=64, preview_size=1000))
    preview = iio.imread(tmp_path / "o" / "m.preview.png")
    want = whole_reference(mask, "pool16", threshold=0.2)
    assert preview.shape == (*mask.shape, 3)
    np.testing.assert_array_equal((preview == COLOURS["added"]).all(-1), want & ~mask)
    np.testing.assert_array_equal((preview == COLOURS["input"]).all(-1), mask)
    # reduced: a 64-px preview of a 150x170 mask (factor 3) keeps every added pixel visible
    run_job([tmp_path / "m.png"], FnFactory("pool16"), tmp_path / "p", INFER, JOB)
    small = iio.imread(tmp_path / "p" / "m.preview.png")
    assert small.shape == (50, 57, 3)
    assert (small == COLOURS["added"]).all(-1).sum() >= (want & ~mask).sum() / 9


def test_geotiff_keeps_crs_and_transform(tmp_path):
    mask = _mask(seed=1)
    with rasterio.open(tmp_path / "geo.tif", "w", driver="GTiff", height=150, width=170,
                       count=1, dtype="uint8", crs=CRS.from_epsg(32633),
                       transform=TRANSFORM) as ds:
        ds.write(mask.astype(np.uint8) * 255, 1)
    run_job([tmp_path / "geo.tif"], FnFactory("pool16"), tmp_path / "fixed.tif", INFER, JOB)
    for name in ("fixed.tif", "fixed.added.tif"):
        with rasterio.open(tmp_path / name) as ds:
            assert ds.crs == CRS.from_epsg(32633) and ds.transform == TRANSFORM
    out, _ = _read(tmp_path / "fixed.tif")
    np.testing.assert_array_equal(out != 0, whole_reference(mask, "pool16", threshold=0.2))
    assert (tmp_path / "fixed.preview.png").is_file()


def test_store_in_store_out_with_added_layer_and_provenance(tmp_path):
    store = MaskStore.create(tmp_path / "in.zarr")
    masks = {"a": _mask(seed=2), "b": _mask((90, 200), seed=3)}
    for name, m in masks.items():
        store.write(name, {"mask": m}, {"crs": "EPSG:32633", "foreground": int(m.sum())})
    report = run_job([tmp_path / "in.zarr"], FnFactory("pool16"), tmp_path / "out.zarr", INFER, JOB)
    out = MaskStore.open(tmp_path / "out.zarr")
    assert out.names() == ["a", "b"] and len(report.done) == 2
    for name, m in masks.items():
        want = whole_reference(m, "pool16", threshold=0.2)
        assert out.layers(name) == ["added", "mask"]
        np.testing.assert_array_equal(out.array(name)[:], want)
        np.testing.assert_array_equal(out.array(name, "added")[:], want & ~m)
        attrs = out.attrs(name)
        assert attrs["crs"] == "EPSG:32633" and attrs["inference"]["threshold"] == 0.2
        assert attrs["inference"]["tile"] == INFER.tile
        assert (tmp_path / "out.previews" / f"{name}.png").is_file()


def test_folders_globs_and_output_names(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_mask_file(tmp_path / "in" / "a.png", _mask(seed=4))
    write_mask_file(tmp_path / "in" / "sub" / "b.tif", _mask(seed=5))
    write_mask_file(tmp_path / "c.npy", _mask(seed=6))
    report = run_job([tmp_path / "in", str(tmp_path / "*.npy")], FnFactory("dilate3"),
                     tmp_path / "out", InferConfig(keep="all", tile=32), JOB)
    assert len(report.done) == 3 and not report.failed
    names = {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")}
    assert names == {"a.png", "a.added.png", "a.preview.png", "sub/b.tif", "sub/b.added.tif",
                     "sub/b.preview.png", "c.npy", "c.added.npy", "c.preview.png"}
    out, _ = _read(tmp_path / "out" / "sub" / "b.tif")
    np.testing.assert_array_equal(out != 0, whole_reference(_mask(seed=5), "dilate3"))
    with pytest.raises(InputError, match="no file matches"):
        run_job([str(tmp_path / "*.tiff")], FnFactory("dilate3"), tmp_path / "x", INFER, JOB)
    (tmp_path / "two").mkdir()
    write_mask_file(tmp_path / "two" / "a.png", _mask(seed=7))
    with pytest.raises(InputError, match="would both write"):
        run_job([tmp_path / "in" / "a.png", tmp_path / "two" / "a.png"], FnFactory("dilate3"),
                tmp_path / "y", INFER, JOB)


def test_inputs_are_never_overwritten_and_outputs_need_overwrite(tmp_path):
    write_mask_file(tmp_path / "m.png", _mask())
    before = (tmp_path / "m.png").read_bytes()
    for out in (tmp_path / "m.png", tmp_path):
        with pytest.raises(InputError, match="input"):
            run_job([tmp_path / "m.png"], FnFactory("pool16"), out, INFER,
                    JobConfig(shard=64, overwrite=True))
    (tmp_path / "in").mkdir()
    write_mask_file(tmp_path / "in" / "n.png", _mask(seed=1))
    with pytest.raises(InputError, match="inside the input directory"):
        run_job([tmp_path / "in"], FnFactory("pool16"), tmp_path / "in" / "out", INFER, JOB)
    assert (tmp_path / "m.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "m.png"]  # nothing left over
    run_job([tmp_path / "m.png"], FnFactory("pool16"), tmp_path / "o.png", INFER, JOB)
    with pytest.raises(InputError, match="output exists: .*o.png.*--overwrite"):
        run_job([tmp_path / "m.png"], FnFactory("pool16"), tmp_path / "o.png", INFER, JOB)
    run_job([tmp_path / "m.png"], FnFactory("dilate3"), tmp_path / "o.png", InferConfig(keep="all", tile=32),
            JobConfig(shard=64, overwrite=True))
    out, _ = _read(tmp_path / "o.png")
    np.testing.assert_array_equal(out != 0, whole_reference(_mask(), "dilate3"))


@pytest.mark.parametrize("content, message", [
    ("garbage", "cannot read as PNG"),
    ("float", "not a binary mask, values found: .*--input-threshold T"),
    ("empty", "empty mask .*nothing to repair"),
])
def test_a_single_bad_mask_is_an_error_naming_it(tmp_path, content, message):
    path = tmp_path / ("bad.npy" if content == "float" else "bad.png")
    if content == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    elif content == "float":
        np.save(path, np.random.default_rng(0).random((40, 40)))
    else:
        write_mask_file(path, np.zeros((40, 40), bool))
    with pytest.raises(InputError, match=message) as err:
        run_job([path], FnFactory("pool16"), tmp_path / "out", INFER, JOB)
    assert str(path) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_model_and_option_errors(tmp_path):
    write_mask_file(tmp_path / "m.png", _mask())
    with pytest.raises(InputError, match="model 'no-such-model' does not exist"):
        run_job([tmp_path / "m.png"], "no-such-model", tmp_path / "o", INFER, JOB)
    (tmp_path / "notackpt").mkdir()
    with pytest.raises(InputError, match="not a distpaint checkpoint"):
        run_job([tmp_path / "m.png"], tmp_path / "notackpt", tmp_path / "o", INFER, JOB)
    with pytest.raises(ConfigError, match="--tile 40"):
        run_job([tmp_path / "m.png"], FnFactory("pool16"), tmp_path / "o", InferConfig(keep="all", tile=40), JOB)
    with pytest.raises(ConfigError, match="--halo 0"):
        run_job([tmp_path / "m.png"], FnFactory("pool16"), tmp_path / "o",
                InferConfig(keep="all", tile=32, halo=0), JOB)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "notackpt"]


def test_bad_masks_of_an_archive_are_skipped_and_retried_on_rerun(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(3):
        write_mask_file(tmp_path / "in" / f"ok{i}.png", _mask(seed=i))
    np.save(tmp_path / "in" / "grey.npy", np.random.default_rng(0).random((40, 40)))
    report = run_job([tmp_path / "in"], FnFactory("pool16"), tmp_path / "out", INFER, JOB)
    assert [r.key.rsplit("/", 1)[-1] for r in report.done] == ["ok0.png", "ok1.png", "ok2.png"]
    ((key, message),) = report.failed
    assert key.endswith("grey.npy") and "not a binary mask" in message
    assert report.work_dir is not None  # kept, so that a re-run retries only the bad mask
    np.save(tmp_path / "in" / "grey.npy", _mask(seed=9))
    again = run_job([tmp_path / "in"], FnFactory("pool16"), tmp_path / "out", INFER, JOB)
    assert not again.failed and len(again.done) == 4
    assert again.pixels == 150 * 170  # only the fixed mask was computed
    out, _ = _read(tmp_path / "out" / "grey.npy")
    np.testing.assert_array_equal(out, whole_reference(_mask(seed=9), "pool16", threshold=0.2))
    assert not (tmp_path / "out" / ".distpaint-infer").exists()


def test_an_interrupted_job_resumes_to_the_same_bytes(tmp_path):
    mask = _mask((300, 200), seed=11, density=0.05)
    mask[:, 120:] = _mask((300, 80), seed=12, density=0.05)  # every tile busy
    write_mask_file(tmp_path / "m.tif", mask)
    run_job([tmp_path / "m.tif"], FnFactory("pool16"), tmp_path / "ref" / "m.tif", INFER, JOB)
    with pytest.raises(KeyboardInterrupt):
        run_job([tmp_path / "m.tif"], FnFactory("pool16", interrupt_at=12), tmp_path / "run" / "m.tif",
                INFER, JOB)
    work = tmp_path / "run" / ".m.tif.distpaint-infer"
    assert work.is_dir() and not (tmp_path / "run" / "m.tif").exists()  # no half-written output
    report = run_job([tmp_path / "m.tif"], FnFactory("pool16"), tmp_path / "run" / "m.tif",
                     INFER, JOB)
    assert 0 < report.done[0].resumed_shards < 20 and report.pixels < 300 * 200
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")


@pytest.mark.parametrize("option, named", [
    ({"drop_islands": True}, "(--drop-islands was True, now False)"),
    ({"passes": 2, "bridges_only": True}, "(--bridges-only was True, now False)"),
])
def test_a_retry_with_other_output_options_is_refused_and_overwrite_starts_over(
        tmp_path, option, named):
    """These options change the output bytes: shards written with them are not resumed
    without (nor the other way round); the retry is refused naming the option, and only
    --overwrite discards the progress and starts over."""
    import dataclasses

    mask = _mask((300, 200), seed=11, density=0.05)
    write_mask_file(tmp_path / "m.tif", mask)
    other = dataclasses.replace(INFER, **option)
    with pytest.raises(KeyboardInterrupt):
        run_job([tmp_path / "m.tif"], FnFactory("pool16", interrupt_at=12), tmp_path / "run" / "m.tif",
                other, JOB)
    plain = dataclasses.replace(INFER, passes=other.passes)  # the same halo and grid
    kept = _files(tmp_path / "run")
    with pytest.raises(InputError, match=re.escape(named)):
        run_job([tmp_path / "m.tif"], FnFactory("pool16"), tmp_path / "run" / "m.tif", plain, JOB)
    assert _files(tmp_path / "run") == kept
    report = run_job([tmp_path / "m.tif"], FnFactory("pool16"), tmp_path / "run" / "m.tif", plain,
                     dataclasses.replace(JOB, overwrite=True))
    assert report.done[0].resumed_shards == 0
    run_job([tmp_path / "m.tif"], FnFactory("pool16"), tmp_path / "ref" / "m.tif", plain, JOB)
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")


def test_a_retry_with_another_model_or_tile_keeps_the_progress(tmp_path):
    """After an interrupted job (some units finished, others part-way), retries with another
    model or tile are refused before anything is touched, naming what differs; the original
    command then resumes (nothing recomputed that was done) to the uninterrupted bytes."""
    import dataclasses

    (tmp_path / "in").mkdir()
    for i in range(3):
        write_mask_file(tmp_path / "in" / f"m{i}.png", _mask((300, 200), seed=20 + i, density=0.05))
    with pytest.raises(KeyboardInterrupt):  # m0 finished and in place, m1 part-way
        run_job([tmp_path / "in"], FnFactory("pool16", interrupt_at=55), tmp_path / "run", INFER,
                JOB)
    assert (tmp_path / "run" / "m0.png").is_file() and not (tmp_path / "run" / "m2.png").exists()
    kept = _files(tmp_path / "run")
    with pytest.raises(InputError, match=r"\.distpaint-infer: an interrupted job with other "
                       r"settings .*--model was fn:pool16, now fn:dilate3.*--overwrite"):
        run_job([tmp_path / "in"], FnFactory("dilate3"), tmp_path / "run", INFER, JOB)
    with pytest.raises(InputError, match=r"\(--tile was 32, now 64\); re-run it with its settings"):
        run_job([tmp_path / "in"], FnFactory("pool16"), tmp_path / "run",
                dataclasses.replace(INFER, tile=64), JOB)
    assert _files(tmp_path / "run") == kept  # nothing touched, the progress kept
    record = tmp_path / "run" / ".distpaint-infer" / "job.json"  # an unreadable record too
    good = record.read_bytes()
    record.write_bytes(good[:40])
    with pytest.raises(InputError, match=r"job\.json: unreadable record of an interrupted job"):
        run_job([tmp_path / "in"], FnFactory("pool16"), tmp_path / "run", INFER, JOB)
    record.write_bytes(good)
    assert _files(tmp_path / "run") == kept
    report = run_job([tmp_path / "in"], FnFactory("pool16"), tmp_path / "run", INFER, JOB)
    assert len(report.done) == 3 and report.done[1].resumed_shards > 0
    assert report.pixels < 2 * 300 * 200  # m0 not recomputed, nor m1's finished shards
    run_job([tmp_path / "in"], FnFactory("pool16"), tmp_path / "ref", INFER, JOB)
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")


def test_the_default_tile_is_resolved_and_named_so_jobs_resume_across_it(tmp_path):
    """tile=None is `auto_tile` of the halo (1024 for pool16's 16 px): the output's attributes
    and the job's key name the resolved tile, so a job started with the default resumes when
    re-run with that tile spelled out."""
    import dataclasses

    mask = _mask((2100, 1100), seed=13, density=0.02)  # 3 x 2 tiles of 1024, one shard each
    write_mask_file(tmp_path / "m.tif", mask)
    auto = dataclasses.replace(INFER, tile=None)
    with pytest.raises(KeyboardInterrupt):
        run_job([tmp_path / "m.tif"], FnFactory("pool16", interrupt_at=4), tmp_path / "run" / "m.tif",
                auto, JOB)
    spelled = dataclasses.replace(INFER, tile=1024)
    report = run_job([tmp_path / "m.tif"], FnFactory("pool16"), tmp_path / "run" / "m.tif", spelled, JOB)
    assert report.done[0].resumed_shards > 0
    run_job([tmp_path / "m.tif"], FnFactory("pool16"), tmp_path / "ref" / "m.tif", spelled, JOB)
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")
    out, _ = _read(tmp_path / "run" / "m.tif")
    np.testing.assert_array_equal(out != 0, whole_reference(mask, "pool16", threshold=0.2))
    store = MaskStore.create(tmp_path / "in.zarr")
    store.write("a", {"mask": mask[:300, :300]}, {})
    run_job([tmp_path / "in.zarr"], FnFactory("pool16"), tmp_path / "out.zarr", auto, JOB)
    assert MaskStore.open(tmp_path / "out.zarr").attrs("a")["inference"]["tile"] == 1024


def test_the_job_key_names_a_confidence_floor_only_when_there_is_one():
    """A floor changes the output bytes, so it is part of the job's identity; none leaves the
    key as jobs interrupted before the option existed have it (they resume)."""
    from distpaint.infer.job import _job_key

    plain, described = _job_key("fp", INFER, 1, JOB)
    assert "min_confidence" not in described
    floored, described = _job_key("fp", dataclasses.replace(INFER, min_confidence=0.55), 1, JOB)
    assert floored != plain and described["min_confidence"] == 0.55
