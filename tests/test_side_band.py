"""The known side band of GAN-GL-M's real batches (`DataConfig.real_band`): hand cases and the
wiring into both data sources (in-process LocalData and the store-backed StoreData)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from distpaint.errors import ConfigError
from distpaint.train.config import DataConfig, config_from_dict, packaged_config
from distpaint.train.data import LocalData
from distpaint.train.side_band import centreline_ends, side_band
from distpaint.train.store_data import StoreData, synthesize_store

SMALL = {"kind": "roots", "real_kind": "sketch", "mask_size": 128, "n_masks": 4, "patch_size": 32,
         "batch_size": 4}


def _line_with_region() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.zeros((20, 30), bool)
    y[10, 2:25] = True  # a 1-px line, columns 2..24
    region = np.zeros_like(y)
    region[8:13, 12:16] = True  # an erased square across it
    return y & ~region, y, region


def test_band_runs_beside_the_line_and_stops_short_of_its_ends():
    x, y, region = _line_with_region()
    band = side_band(x, y, region, width=1)
    expected = np.zeros_like(y)
    # the ends of the two remnants are columns 2, 11, 16 and 24 (half-width 1 there: the
    # distance transform of a 1-px line is 1); pixels within 1 + 1 + 1 = 3 px of an end are out
    for row in (9, 11):
        expected[row, 5:9] = True    # left remnant: ends at 2 and 11
        expected[row, 19:22] = True  # right remnant: ends at 16 and 24
    np.testing.assert_array_equal(band, expected)
    assert not (band & y).any() and not (band & region).any()


def test_band_never_covers_an_inherent_gap_beyond_a_stump():
    # an inherent gap (columns 12..15, not in the region) splits the line; the region is elsewhere
    y = np.zeros((20, 40), bool)
    y[10, 2:12] = True
    y[10, 16:38] = True
    region = np.zeros_like(y)
    region[8:13, 28:31] = True
    x = y & ~region
    band = side_band(x, y, region, width=2)
    assert not band[:, 10:18].any()  # the gap and the pixels right beside the stumps stay unsupervised
    assert band[8, 22] and band[12, 22]  # two px beside the stroke, away from its ends
    assert side_band(x, y, region, width=0).sum() == 0


def test_centreline_ends_of_a_line_and_a_dot():
    m = np.zeros((9, 12), bool)
    m[4, 1:8] = True
    m[1, 10] = True
    ends = centreline_ends(m)
    assert {tuple(p) for p in np.argwhere(ends)} == {(4, 1), (4, 7), (1, 10)}


def test_real_band_must_not_be_negative():
    with pytest.raises(ConfigError, match="real_band"):
        DataConfig(**SMALL, real_band=-1)


def _check_band_batches(with_band, without_band, steps) -> None:
    for step in steps:
        a, b = with_band.batch(step), without_band.batch(step)
        np.testing.assert_array_equal(a.x.numpy(), b.x.numpy())  # same patches and gaps
        extra = (a.region > 0.5) & ~(b.region > 0.5)
        if step % 2 == 0:  # synthetic batches are untouched
            assert not extra.any()
            continue
        assert extra.any(), f"no band in real batch {step}"
        assert not (extra & (a.y > 0.5)).any()  # only background is added to the loss mask
        assert ((b.region > 0.5) <= (a.region > 0.5)).all()


def test_local_data_adds_the_band_to_real_batches_only():
    with_band = LocalData(DataConfig(**SMALL, real_band=1), seed=0, variant="gan-gl-m")
    without = LocalData(DataConfig(**SMALL), seed=0, variant="gan-gl-m")
    _check_band_batches(with_band, without, range(6))


def test_store_data_adds_the_band_to_real_batches_only(tmp_path):
    base = yaml.safe_load(packaged_config("tiny").read_text())
    base["variant"] = "gan-gl-m"
    base["data"] = {**base.get("data", {}), **SMALL}
    cfgs = [config_from_dict({**base, "data": {**base["data"], "real_band": band}}) for band in (1, 0)]
    store = synthesize_store(cfgs[0], tmp_path / "train.zarr", 1)
    _check_band_batches(StoreData(store, cfgs[0], 0, 1), StoreData(store, cfgs[1], 0, 1), range(4))


def _thin_line_and_bar(bar_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.zeros((30, 40), bool)
    y[5, 2:38] = True  # a 1-px line
    y[15:15 + bar_rows, 2:38] = True  # a bar `bar_rows` px wide, 10 px away
    region = np.zeros_like(y)
    return y.copy(), y, region


def test_max_width_keeps_the_band_beside_thin_strokes_only():
    x, y, region = _thin_line_and_bar(5)
    every = side_band(x, y, region, width=1)
    thin = side_band(x, y, region, width=1, max_width=2)
    assert every[14, 20] and every[20, 20]  # beside the 5-px bar without the limit
    assert not thin[10:, :].any()  # none beside the bar (nor within width + 1 of it) with it
    np.testing.assert_array_equal(thin[:10], every[:10])  # beside the 1-px line: unchanged


def test_max_width_counts_a_stroke_of_exactly_that_width_as_thin():
    x, y, region = _thin_line_and_bar(2)
    assert side_band(x, y, region, width=1, max_width=2)[17, 20]  # below the 2-px bar
    assert not side_band(x, y, region, width=1, max_width=1)[17, 20]


def test_real_band_max_width_must_not_be_negative():
    with pytest.raises(ConfigError, match="real_band_max_width"):
        DataConfig(**SMALL, real_band=1, real_band_max_width=-1)


def test_both_data_sources_limit_the_band_to_thin_strokes(tmp_path):
    roads = {**SMALL, "real_kind": "roads", "width_scale": (2.0, 2.0)}  # wide real strokes
    local = [LocalData(DataConfig(**roads, real_band=1, real_band_max_width=limit), seed=0,
                       variant="gan-gl-m") for limit in (2, 0)]
    base = yaml.safe_load(packaged_config("tiny").read_text())
    base["variant"] = "gan-gl-m"
    cfgs = [config_from_dict({**base, "data": {**base.get("data", {}), **roads, "real_band": 1,
                                               "real_band_max_width": limit}}) for limit in (2, 0)]
    store = synthesize_store(cfgs[0], tmp_path / "train.zarr", 1)
    for thin_source, every_source in (local, [StoreData(store, c, 0, 1) for c in cfgs]):
        smaller = False
        for step in (1, 3, 5):  # real batches
            a, b = thin_source.batch(step), every_source.batch(step)
            np.testing.assert_array_equal(a.x.numpy(), b.x.numpy())
            assert ((a.region > 0.5) <= (b.region > 0.5)).all()
            smaller |= bool(((b.region > 0.5) & ~(a.region > 0.5)).any())
        assert smaller, "the limit removed no band pixel beside wide road strokes"
