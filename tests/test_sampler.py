"""Tests of the patch sampler (distpaint.data.sampler) on real Zarr stores.

Run: .venv/bin/python -m pytest tests/test_sampler.py -q
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.draw import line

from distpaint.data.gaps import GapConfig
from distpaint.data.sampler import PatchBatch, PatchSampler, SamplerConfig, corrupt_batch
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError

SMALL = SamplerConfig(patch_size=64, batch_size=4, min_foreground=0.03, stride=8)


def lines_mask(shape: tuple[int, int], seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    for _ in range(n):
        r0, r1 = rng.integers(0, shape[0], 2)
        c0, c1 = rng.integers(0, shape[1], 2)
        rr, cc = line(r0, c0, r1, c1)
        mask[rr, cc] = True
    return ndi.binary_dilation(mask, iterations=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two samples: a 700x900 mask of lines and a 400x300 one; 128-px chunks (odd-sized edges)."""
    path = tmp_path_factory.mktemp("sampler") / "masks.zarr"
    writer = MaskStore.create(path)
    masks = {"big": lines_mask((700, 900), 0, 25), "small": lines_mask((400, 300), 1, 10)}
    for name, mask in masks.items():
        writer.write(name, {"mask": mask}, chunks=128)
    store = MaskStore.open(path)
    store.truth = masks  # the pixels the sampler must return
    return store


def _overlap(ay, ax, by, bx, p):
    return abs(ay - by) < p and abs(ax - bx) < p


def test_deterministic_across_instances_and_seeds(store):
    a, b = PatchSampler(store, SMALL, seed=3), PatchSampler(store, SMALL, seed=3)
    other = PatchSampler(store, SMALL, seed=4)
    differs = False
    for step in range(6):
        x, y = a.batch(step, 1, 2), b.batch(step, 1, 2)
        assert x.name == y.name
        np.testing.assert_array_equal(x.ys, y.ys)
        np.testing.assert_array_equal(x.xs, y.xs)
        np.testing.assert_array_equal(x.patches, y.patches)
        z = other.batch(step, 1, 2)
        differs |= z.name != x.name or not (np.array_equal(z.ys, x.ys) and np.array_equal(z.xs, x.xs))
    assert differs
    # Steps differ from each other too.
    assert not np.array_equal(a.batch(0).ys, a.batch(1).ys) or a.batch(0).name != a.batch(1).name


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), step=st.integers(0, 10**6), world=st.integers(1, 4))
def test_ranks_share_the_sample_and_get_disjoint_non_overlapping_patches(store, seed, step, world):
    config = SamplerConfig(patch_size=64, batch_size=3, min_foreground=0.02, stride=8)
    sampler = PatchSampler(store, config, seed=seed)
    batches = [sampler.batch(step, rank, world) for rank in range(world)]
    assert len({b.name for b in batches}) == 1
    positions = [(y, x) for b in batches for y, x in zip(b.ys.tolist(), b.xs.tolist())]
    assert len(positions) == 3 * world
    for i, (ay, ax) in enumerate(positions):
        for by, bx in positions[:i]:
            assert not _overlap(ay, ax, by, bx, 64)
    name, ys, xs, ranks = sampler.plan(step, world)
    assert name == batches[0].name
    for rank, b in enumerate(batches):
        np.testing.assert_array_equal(ys[ranks == rank], b.ys)
        np.testing.assert_array_equal(xs[ranks == rank], b.xs)


def test_patches_are_the_stores_pixels_and_meet_the_threshold(store):
    sampler = PatchSampler(store, SMALL, seed=0)
    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough foreground here: no fallback may happen
        for step in range(12):
            batch = sampler.batch(step, 0, 1)
            assert isinstance(batch, PatchBatch) and batch.patches.shape == (4, 64, 64)
            assert batch.patches.dtype == bool
            truth = store.truth[batch.name]
            for patch, y, x in zip(batch.patches, batch.ys, batch.xs):
                assert y % 8 == 0 and x % 8 == 0
                assert 0 <= y <= truth.shape[0] - 64 and 0 <= x <= truth.shape[1] - 64
                np.testing.assert_array_equal(patch, truth[y : y + 64, x : x + 64])
                assert patch.mean() >= SMALL.min_foreground
            seen.add(batch.name)
    assert seen == {"big", "small"}


def test_overview_counts_are_exact(store):
    sampler = PatchSampler(store, SMALL, seed=0)
    truth = store.truth["small"]  # 400x300: 50x37 full 8x8 cells, last 4 columns dropped
    expected = truth[:400, :296].reshape(50, 8, 37, 8).sum(axis=(1, 3))
    np.testing.assert_array_equal(sampler.overview("small"), expected)


def test_threshold_is_exact_and_rejection_shows(store):
    # At a threshold above most patches' foreground, every accepted patch still meets it.
    strict = SamplerConfig(patch_size=64, batch_size=2, min_foreground=0.08, stride=8)
    sampler = PatchSampler(store, strict, seed=1, names=["big"])
    fractions = [p.mean() for step in range(8) for p in sampler.batch(step).patches]
    assert min(fractions) >= 0.08
    loose = PatchSampler(store, SamplerConfig(patch_size=64, batch_size=2, min_foreground=0.0, stride=8), seed=1, names=["big"])
    assert min(p.mean() for step in range(8) for p in loose.batch(step).patches) < 0.08


def test_too_little_foreground_falls_back_with_a_warning(tmp_path):
    store = MaskStore.create(tmp_path / "empty.zarr")
    store.write("blank", {"mask": np.zeros((256, 256), bool)})
    sampler = PatchSampler(store, SamplerConfig(patch_size=64, batch_size=4, stride=8), seed=0)
    with pytest.warns(RuntimeWarning, match="foreground"):
        batch = sampler.batch(0)
    assert batch.patches.shape == (4, 64, 64) and not batch.patches.any()
    # No room for 9 x 4 non-overlapping 128-px patches in 256x256: overlap, warned, no hang.
    crowded = PatchSampler(store, SamplerConfig(patch_size=128, batch_size=9, min_foreground=0, stride=8), seed=0)
    with pytest.warns(RuntimeWarning, match="overlap"):
        assert crowded.batch(0).patches.shape == (9, 128, 128)


def test_user_errors(store, tmp_path):
    with pytest.raises(InputError, match="smaller than"):
        PatchSampler(store, SamplerConfig(patch_size=512, stride=16), seed=0)
    with pytest.raises(InputError):
        PatchSampler(store, SMALL, seed=0, names=["nope"])
    with pytest.raises(InputError, match="no samples"):
        PatchSampler(MaskStore.create(tmp_path / "none.zarr"), SMALL, seed=0)
    for kwargs in (dict(patch_size=100, stride=16), dict(min_foreground=1.5), dict(batch_size=0)):
        with pytest.raises(ConfigError):
            SamplerConfig(**kwargs)
    sampler = PatchSampler(store, SMALL, seed=0)
    with pytest.raises(ConfigError):
        sampler.batch(0, rank=2, world_size=2)
    with pytest.raises(ConfigError):
        sampler.batch(-1)


def test_weights_by_area(store):
    config = SamplerConfig(patch_size=64, batch_size=1, min_foreground=0.0, stride=8)
    sampler = PatchSampler(store, config, seed=0)
    names = [sampler.plan(step)[0] for step in range(600)]
    share = names.count("big") / len(names)
    assert abs(share - 630000 / 750000) < 0.06  # areas 700*900 and 400*300
    uniform = PatchSampler(store, SamplerConfig(patch_size=64, batch_size=1, min_foreground=0.0, stride=8, weight_by_area=False), seed=0)
    share = [uniform.plan(step)[0] for step in range(600)].count("big") / 600
    assert abs(share - 0.5) < 0.07


def test_corrupt_batch(store):
    batch = PatchSampler(store, SMALL, seed=2).batch(0)
    x, y, gaps = corrupt_batch(batch, GapConfig(kind="mix"), np.random.default_rng(0))
    assert x.shape == y.shape == gaps.shape == batch.patches.shape
    np.testing.assert_array_equal(y, batch.patches)
    np.testing.assert_array_equal(x | gaps, y)
    assert not (x & gaps).any() and gaps.any()
    again = corrupt_batch(batch, GapConfig(kind="mix"), np.random.default_rng(0))
    np.testing.assert_array_equal(again[2], gaps)
