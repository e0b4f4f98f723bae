"""bench/recomposer_windows.py: its former whole-mask actor (`WholeMaskService`) and the
windowed one compose the same views byte for byte, the whole-mask one reading every mask whole
and the windowed one only windows; a run of each variant (in-process, tiny sizes) reports
consistent figures.

Run: .venv/bin/python -m pytest tests/test_bench_recomposer_windows.py -q
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from scripts import load_script

from distpaint.data.store import MaskStore
from distpaint.train.actor import RecomposerService, pack_patches

bench = load_script("bench/recomposer_windows.py")


def test_both_variants_compose_the_same_views_and_read_what_they_say(tmp_path):
    path = tmp_path / "masks.zarr"
    bench.make_store(path, 1536, 2)
    whole = bench.WholeMaskService(str(path), max_size=512, margin=32)
    windowed = RecomposerService(str(path), max_size=512, margin=32, cache_bytes=1 << 20)
    rng = np.random.default_rng(0)
    for step in range(6):
        name = f"m{step % 2}"
        ys, xs = rng.integers(0, 1536 - 64, (2, 3))
        bits = pack_patches(rng.random((3, 64, 64)) < 0.3)
        got = [asyncio.run(s.compose(1, name, step, "sample", 0, 1, bits, ys, xs, 64))[0] for s in (whole, windowed)]
        assert got[0].x_hat.tobytes() == got[1].x_hat.tobytes() and got[0].truth.tobytes() == got[1].truth.tobytes()
        assert got[0].origin == got[1].origin and got[0].x_hat.any()
    assert whole.whole_read == 2 * 1536 * 1536  # each mask once, whole
    assert windowed.cache.largest_read <= (512 + 2 * 1024) ** 2 and windowed.cache.nbytes <= 1 << 20
    assert MaskStore.open(path).array("m0")[...].any()


@pytest.mark.parametrize("placement", ["spread", "clustered"])
def test_a_run_of_each_variant_reports_its_figures(tmp_path, placement):
    path = tmp_path / "masks.zarr"
    bench.make_store(path, 1024, 2)
    rows = {v: bench.child(v, str(path), steps=5, patches=4, seed=0, placement=placement) for v in ("whole", "windowed")}
    for row in rows.values():
        assert row["cold_s"] > 0 and row["mean_s_per_step"] > 0 and row["peak_rss_mb"] > 0
    assert rows["whole"]["read_mb"] == 2 * 1024 * 1024 / 2**20  # the two masks, whole
    assert 0 < rows["windowed"]["read_mb"] <= rows["whole"]["read_mb"] * 5 / 2  # windows of 5 steps at most
