"""In-process training data: mixed kinds, fresh pools, width and gap-density ranges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distpaint.errors import ConfigError
from distpaint.train.config import DataConfig, config_from_dict
from distpaint.train.data import LocalData

SMALL = {"mask_size": 128, "n_masks": 4, "patch_size": 32, "batch_size": 4}


def _data(**overrides) -> LocalData:
    return LocalData(DataConfig(**{**SMALL, **overrides}), seed=0)


def test_all_kinds_cycle_through_the_pool_and_partners_share_the_kind():
    data = _data(kind="all", n_masks=8)
    kinds = [name.split("-")[0] for name in sorted(data.masks, key=lambda n: int(n.split("-")[1]))]
    assert kinds == ["roots", "vessels", "roads", "sketch"] * 2
    for step in range(6):
        batch = data.batch(step)
        kind = batch.name.split("-")[0]
        others = [data.masks[n] for n in data.masks if n != batch.name and n.startswith(kind)]
        # the positive pair's patches are cut from a mask of the same kind
        patch = batch.y_other[0, 0].numpy().astype(bool)
        p = patch.shape[0]
        found = any((m[y:y + p, x:x + p] == patch).all()
                    for m in others for y in range(0, m.shape[0] - p + 1)
                    for x in range(0, m.shape[1] - p + 1) if m[y:y + p, x:x + p].sum() == patch.sum())
        assert found


def test_comma_list_of_kinds_and_bad_kinds():
    assert DataConfig(kind="roads, vessels").kinds == ("roads", "vessels")
    with pytest.raises(ConfigError, match="data.kind"):
        DataConfig(kind="roads,rivers")
    with pytest.raises(ConfigError, match="width_scale"):
        DataConfig(width_scale=(2.0, 1.0))
    with pytest.raises(ConfigError, match="gap_density"):
        DataConfig(gap_density=(-0.1, 1.0))
    with pytest.raises(ConfigError, match="unknown key 'data.colour'"):
        config_from_dict({"data": {"colour": 1}})


def test_refreshed_pools_are_new_masks_and_a_pure_function_of_the_step():
    data = _data(kind="roads", refresh_every=5)
    first, second = data.pool_for(0), data.pool_for(5)
    assert data.generation(4) == 0 and data.generation(5) == 1
    assert set(first).isdisjoint(second)  # names carry the generation
    assert not any(np.array_equal(a, b) for a in first.values() for b in second.values())
    again = _data(kind="roads", refresh_every=5)
    b1, b2 = data.batch(7), again.batch(7)
    assert b1.name == b2.name and b1.name in second and torch.equal(b1.x, b2.x)
    assert _data(kind="roads").generation(10**6) == 0  # no refresh: one pool


def test_width_scale_range_gives_thin_and_thick_masks():
    fixed = _data(kind="vessels", n_masks=6, mask_size=256)
    varied = _data(kind="vessels", n_masks=6, mask_size=256, width_scale=(0.5, 2.0))
    fg_fixed = np.array([m.mean() for m in fixed.masks.values()])
    fg_varied = np.array([m.mean() for m in varied.masks.values()])
    assert fg_fixed.min() > 0
    # same geometry seeds, widths scaled per mask: the foreground fraction spreads out
    assert np.std(fg_varied / fg_fixed) > 0.1


def test_gap_density_range_scales_the_damage():
    light = _data(kind="roads", gap_density=(0.2, 0.2))
    heavy = _data(kind="roads", gap_density=(2.0, 2.0))
    removed = [sum(float(((b.y - b.x)).sum()) for b in map(d.batch, range(8))) for d in (light, heavy)]
    assert removed[1] > 3 * removed[0]


def _store_with(path, masks):
    from distpaint.data.store import MaskStore

    store = MaskStore.create(path)
    for name, mask in masks.items():
        store.write(name, {"mask": mask})
    return path


def _lines(shape, step, offset):
    mask = np.zeros(shape, bool)
    mask[offset::step, :] = True
    return mask


def test_store_masks_feed_a_share_of_the_steps(tmp_path):
    """data.store: batches cut from the store's complete masks on store_share of the steps,
    their partners from another stored mask; share 0 draws exactly the synthetic batches."""
    masks = {"a": _lines((256, 256), 16, 3), "b": _lines((256, 256), 12, 5),
             "tiny": _lines((40, 300), 8, 1)}  # too small for 4 patches of 64: left out
    path = str(_store_with(tmp_path / "real.zarr", masks))
    base = dict(kind="roads", mask_size=256, n_masks=2, patch_size=64, batch_size=4)
    data = LocalData(DataConfig(**base, store=path, store_share=0.5), seed=3)
    assert sorted(data.stored) == ["store-a", "store-b"]
    assert {"store-a", "store-b"} <= set(data.pool_for(0))  # the recomposer holds them too
    names = [data.batch(step).name for step in range(40)]
    from_store = [n for n in names if n.startswith("store-")]
    assert 10 <= len(from_store) <= 30  # about half
    step = names.index(from_store[0])
    batch = data.batch(step)
    whole = masks[batch.name.removeprefix("store-")]
    for y, ys, xs in zip(batch.y[:, 0].numpy().astype(bool), batch.ys, batch.xs):
        np.testing.assert_array_equal(y, whole[ys:ys + 64, xs:xs + 64])  # real pixels
    assert batch.x.sum() < batch.y.sum()  # with gaps
    other = batch.y_other[:, 0].numpy().astype(bool)
    partner = masks["b" if batch.name == "store-a" else "a"]
    # horizontal lines: a patch of the partner equals its rows r..r+64 at any column
    assert all(any(np.array_equal(o, partner[r:r + 64, :64]) for r in range(193)) for o in other)
    plain = LocalData(DataConfig(**base), seed=3)
    none = LocalData(DataConfig(**base, store=path, store_share=0.0), seed=3)
    for step in range(6):
        torch.testing.assert_close(none.batch(step).x, plain.batch(step).x)


def test_store_needs_two_usable_masks(tmp_path):
    path = str(_store_with(tmp_path / "one.zarr", {"a": _lines((256, 256), 16, 3)}))
    with pytest.raises(Exception, match="at least 2 masks"):
        LocalData(DataConfig(kind="roads", mask_size=256, n_masks=2, patch_size=64, batch_size=4,
                             store=path), seed=0)
    with pytest.raises(ConfigError, match="store_share"):
        DataConfig(store_share=1.5)


def test_several_stores_partner_within_their_store(tmp_path):
    a = str(_store_with(tmp_path / "a.zarr", {"x": _lines((256, 256), 16, 3), "y": _lines((256, 256), 16, 9)}))
    b = str(_store_with(tmp_path / "b.zarr", {"x": _lines((256, 256), 10, 1), "z": _lines((256, 256), 10, 6)}))
    data = LocalData(DataConfig(kind="roads", mask_size=256, n_masks=2, patch_size=64,
                                batch_size=4, store=f"{a}, {b}", store_share=1.0), seed=1)
    assert sorted(data.stored) == ["store-0:x", "store-0:y", "store-1:x", "store-1:z"]
    stores = [data.batch(step).name.split(":")[0] for step in range(40)]
    assert 10 <= stores.count("store-0") <= 30  # each store about as often
    for step in range(8):
        batch = data.batch(step)
        spacing = 16 if batch.name.startswith("store-0:") else 10
        rows = np.flatnonzero(batch.y_other[0, 0].numpy().any(1))
        assert set(np.diff(rows)) == {spacing}  # the partner's lines: the same store's spacing
