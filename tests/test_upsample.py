"""Up-sampled repair of thin lines (distpaint.infer.upsample): the wrapped predictor is exact
under tiling, `auto` tells thin lines from wide ones without reading a whole giant mask, and a
job repairs each mask of an archive at its own factor, recorded in the output.

Run: .venv/bin/python -m pytest tests/test_upsample.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import ray.cloudpickle
import zarr
from skimage.morphology import skeletonize

from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError
from distpaint.infer.engine import InferConfig, run_inference
from distpaint.infer.job import JobConfig, run_job
from distpaint.infer.tiling import round_up, whole_apply
from distpaint.infer.upsample import (
    UpsampledPredictor,
    choose_upsample,
    line_width,
    upsampled,
)
import infer_models
from infer_models import FnFactory, FnPredictor

ray.cloudpickle.register_pickle_by_value(infer_models)  # Ray actors need not import tests/


def _lines(shape=(160, 200), width=1, seed=0, n=8):
    """Horizontal and vertical lines `width` px wide, a few cut."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    for y in rng.integers(10, shape[0] - 10, n):
        mask[y:y + width, :] = True
    for x in rng.integers(10, shape[1] - 10, n):
        mask[:, x:x + width] = True
    mask[:, 60:66] = False
    return mask


def _whole(predictor, mask, threshold=0.5):
    probs = whole_apply(mask.astype(np.float32), lambda x: predictor(x[None, None])[0, 0],
                        predictor.align)
    return (probs > np.float32(threshold)) | mask


@pytest.mark.parametrize("factor", [2, 3])
def test_tiled_upsampled_inference_equals_the_whole_image(factor):
    mask = _lines()
    predictor = UpsampledPredictor(FnPredictor("pool16"), factor)
    assert predictor.align == 16 and predictor.receptive_halo == 16
    out = {"mask": zarr.zeros(mask.shape, chunks=(32, 32), dtype=bool)}
    run_inference(mask, predictor, out, InferConfig(tile=32, keep="all", upsample=factor))
    np.testing.assert_array_equal(out["mask"][...], _whole(predictor, mask))
    # the model saw the window at `factor` times its size
    assert all(h % (16 * factor) == 0 for h, _ in predictor.base.windows)


def test_upsampling_pools_the_probabilities_back_by_their_maximum():
    base = FnPredictor("dilate3")
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 4, 4] = 1
    probs = UpsampledPredictor(base, 2)(x)
    assert probs.shape == x.shape
    # at 2x the 3x3 dilation reaches 1 px around the 2x2 block: every neighbouring block
    np.testing.assert_array_equal(probs[0, 0] > 0, np.pad(np.ones((3, 3), bool), ((3, 2), (3, 2))))
    assert upsampled(base, 1) is base


def test_auto_chooses_two_for_thin_lines_and_one_for_wide_ones():
    assert 0.9 < line_width(_lines(width=1)) < 1.2 and 4.5 < line_width(_lines(width=5)) < 5.5
    assert choose_upsample(_lines(width=1)) == 2
    assert choose_upsample(_lines(width=2)) == 2
    assert choose_upsample(_lines(width=4)) == 1
    assert choose_upsample(np.zeros((50, 50), bool)) == 1
    # 14-px roads cut to slivers by 300 discs of radius 4-11 on their centreline (three
    # quarters removed): the slivers' skeletons are mostly thin tips (twice the distance to the
    # background there: median 2.8 px), but the area per centreline pixel stays wide (3.3 px)
    rng = np.random.default_rng(0)
    slivers = _lines(shape=(300, 300), width=14, n=3)
    centre = np.argwhere(skeletonize(slivers))
    yy, xx = np.ogrid[:300, :300]
    for y, x in centre[rng.choice(len(centre), 300, replace=False)]:
        slivers[(yy - y) ** 2 + (xx - x) ** 2 <= int(rng.integers(4, 12)) ** 2] = False
    assert slivers.sum() < 0.3 * _lines(shape=(300, 300), width=14, n=3).sum()
    assert choose_upsample(slivers) == 1


class _CountingArray:
    """A lazily read 2-D array counting the pixels read through it."""

    def __init__(self, array):
        self.array, self.shape, self.chunks, self.read = array, array.shape, array.chunks, 0

    def __getitem__(self, window):
        block = self.array[window]
        self.read += block.size
        return block


def test_auto_reads_a_sample_of_a_large_mask_not_all_of_it(tmp_path):
    big = zarr.create_array(tmp_path / "big.zarr", shape=(8192, 8192), chunks=(1024, 1024),
                            dtype=bool, fill_value=False)
    for y in range(0, 8192, 1024):  # thin lines in every chunk row
        big[y + 500, :] = True
    counted = _CountingArray(big)
    assert choose_upsample(counted) == 2
    assert counted.read <= 16 * 1024 * 1024 < big.size


@pytest.mark.parametrize("ray", [False, True], ids=["local", "ray"])
def test_a_job_upsamples_each_mask_as_its_lines_ask_and_records_it(tmp_path, request, ray):
    if ray:
        request.getfixturevalue("ray_local")  # the session's private local Ray
    store = MaskStore.create(tmp_path / "in.zarr")
    masks = {"thin": _lines(width=1), "wide": _lines(width=6, seed=1)}
    for name, m in masks.items():
        store.write(name, {"mask": m}, {"foreground": int(m.sum())})
    infer = InferConfig(keep="all", tile=32, threshold=0.2)
    run_job([tmp_path / "in.zarr"], FnFactory("pool16"), tmp_path / "out.zarr", infer,
            JobConfig(shard=64, preview_size=64, upsample=None, ray=ray, workers=1))
    out = MaskStore.open(tmp_path / "out.zarr")
    for name, factor in (("thin", 2), ("wide", 1)):
        assert out.attrs(name)["inference"]["upsample"] == factor
        predictor = upsampled(FnPredictor("pool16"), factor)
        np.testing.assert_array_equal(out.array(name)[:], _whole(predictor, masks[name], 0.2))


@pytest.mark.parametrize("bad", [0, 5, True, 1.5])
def test_bad_factors_are_refused(bad):
    with pytest.raises(ConfigError, match="--upsample"):
        JobConfig(upsample=bad)
    with pytest.raises(ConfigError, match="--upsample"):
        InferConfig(upsample=bad)
