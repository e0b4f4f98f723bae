"""Metrics: hand-made cases with known answers, tiled (Dask) vs in-memory agreement, stats."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage, stats
from skimage.draw import disk as draw_disk
from skimage.draw import line
from skimage.measure import euler_number as sk_euler
from skimage.measure import label as sk_label

from distpaint.errors import ConfigError, InputError
from distpaint.metrics import (
    EvalConfig,
    betti_numbers,
    cldice,
    euler_number,
    evaluate,
    false_fill,
    mse,
    mse_in_gaps,
    n_components,
    paper_relative_improvement,
    pixel_difference,
    relative_improvement,
    skeleton_recall,
    traits,
)
from distpaint.metrics.stats import aggregate, compare_results, paired_ttest
from distpaint.metrics.tiles import IN_MEMORY_PIXELS, choose_tile, map_tiles


# ---- fixtures: hand-made masks -------------------------------------------------------------
def gapped_line(width: int = 3, gap: tuple[int, int] = (45, 52)):
    """A horizontal line of `width` px with one gap: (truth, input, gaps)."""
    truth = np.zeros((40, 100), bool)
    truth[20 - width // 2 : 20 - width // 2 + width, 5:95] = True
    gaps = np.zeros_like(truth)
    gaps[:, gap[0] : gap[1]] = True
    gaps &= truth
    return truth, truth & ~gaps, gaps


def ring(shape=(50, 50), centre=(25, 25), outer=15, inner=10):
    m = np.zeros(shape, bool)
    m[draw_disk(centre, outer, shape=shape)] = True
    m[draw_disk(centre, inner, shape=shape)] = False
    return m


def thin_lines(shape, n, seed, width=1):
    """Random straight lines, `width` px wide: thin structures like the real data."""
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, bool)
    for _ in range(n):
        y0, y1 = rng.integers(0, shape[0], 2)
        x0, x1 = rng.integers(0, shape[1], 2)
        rr, cc = line(y0, x0, y1, x1)
        m[rr, cc] = True
    if width > 1:
        m = ndimage.binary_dilation(m, iterations=(width - 1) // 2)
    return m


# ---- pixel metrics -------------------------------------------------------------------------
def test_pixel_metrics_on_a_line_with_one_gap():
    truth, inp, gaps = gapped_line()
    assert pixel_difference(inp, truth) == 21  # 3 rows x 7 columns removed
    assert mse(inp, truth) == pytest.approx(21 / truth.size)
    assert mse_in_gaps(inp, truth, gaps) == 1.0
    assert mse_in_gaps(truth, truth, gaps) == 0.0
    assert math.isnan(mse_in_gaps(truth, truth, np.zeros_like(gaps)))


def test_relative_improvement_signed_and_paper_form():
    assert relative_improvement(10, 10) == 0.0  # identity
    assert relative_improvement(10, 0) == 1.0  # perfect repair
    assert relative_improvement(10, 20) == -1.0  # worse is negative ...
    assert paper_relative_improvement(10, 20) == 1.0  # ... but the paper's |.| scores it 1
    assert math.isnan(relative_improvement(0, 0))
    assert math.isnan(paper_relative_improvement(0, 3))


def test_false_fill_catches_a_model_that_paints_everything():
    truth, inp, gaps = gapped_line()
    everything = np.ones_like(truth)
    assert false_fill(everything, inp, gaps) > 0.95
    assert false_fill(truth, inp, gaps) == 0.0  # every added pixel is in a gap
    assert false_fill(inp, inp, gaps) == 0.0  # nothing added
    # a blob one pixel beyond the gap is within the default 2 px tolerance, 5 px is not
    near, far = truth.copy(), truth.copy()
    near[22, 46] = True
    far[26, 48] = True
    assert false_fill(near, inp, gaps) == 0.0
    assert false_fill(far, inp, gaps) == pytest.approx(1 / 22)
    assert false_fill(far, inp, gaps, tolerance=10) == 0.0


# ---- topology ------------------------------------------------------------------------------
def test_line_with_gap_components_and_cldice():
    truth, inp, gaps = gapped_line()
    assert n_components(truth) == 1
    assert n_components(inp) == 2
    repaired = cldice(truth, truth)
    assert (repaired.cldice, repaired.precision, repaired.sensitivity) == (1.0, 1.0, 1.0)
    broken = cldice(inp, truth)
    assert broken.precision == 1.0 and broken.sensitivity < 1.0
    assert skeleton_recall(truth, truth, gaps) == 1.0
    assert skeleton_recall(inp, truth, gaps) == 0.0


def test_ring_has_one_hole_and_betti_duality():
    assert betti_numbers(ring()) == (1, 1)
    two = ring((50, 100)) | ring((50, 100), centre=(25, 70), outer=12, inner=6)
    assert betti_numbers(two) == (2, 2)
    # a diamond of diagonal steps is one 8-connected curve; its inside is 4-connected
    # background cut off from the border: one component, one hole
    diamond = np.zeros((21, 21), bool)
    for (y0, x0), (y1, x1) in [((10, 2), (2, 10)), ((2, 10), (10, 18)), ((10, 18), (18, 10)),
                               ((18, 10), (10, 2))]:
        diamond[line(y0, x0, y1, x1)] = True
    assert betti_numbers(diamond) == (1, 1)
    # a hole touching the border is not a hole
    cup = ring()[:, :30]
    assert betti_numbers(cup)[1] == 0


@pytest.mark.parametrize("tile", [None, 16, 23, 64])
def test_components_and_euler_match_skimage_on_random_masks(tile):
    rng = np.random.default_rng(7)
    for _ in range(4):
        m = rng.random((97, 131)) < 0.45  # many components and holes, crossing every border
        assert n_components(m, tile=tile) == sk_label(m, connectivity=2).max()
        assert euler_number(m, tile=tile) == sk_euler(m, connectivity=2)


def test_empty_and_full_masks():
    empty, full = np.zeros((30, 40), bool), np.ones((30, 40), bool)
    assert betti_numbers(empty, tile=16) == (0, 0)
    assert betti_numbers(full, tile=16) == (1, 0)
    c = cldice(empty, empty)
    assert c.cldice == 1.0  # nothing claimed, nothing missed
    assert cldice(empty, full).cldice == 0.0


# ---- traits --------------------------------------------------------------------------------
def test_traits_of_simple_shapes():
    m = np.zeros((20, 40), bool)
    m[10, 5:35] = True
    t = traits(m)
    assert (t.length, t.tips, t.branches, t.hull_area) == (29.0, 2, 0, 30.0)
    diag = np.eye(20, dtype=bool)
    assert traits(diag).length == pytest.approx(19 * math.sqrt(2))
    cross = np.zeros((41, 41), bool)
    cross[20, 5:36] = True
    cross[5:36, 20] = True
    t = traits(cross)
    assert (t.tips, t.branches) == (4, 1)
    dot = np.zeros((5, 5), bool)
    dot[2, 2] = True
    assert traits(dot).hull_area == 1.0
    rect = np.zeros((30, 30), bool)
    rect[5:15, 3:23] = True
    assert traits(rect).hull_area == 200.0
    assert traits(np.zeros((8, 8), bool)).hull_area == 0.0


def test_traits_tiled_match_in_memory():
    m = thin_lines((300, 260), 25, seed=3)
    whole = traits(m)
    for tile in (64, 100):
        tiled = traits(da.from_array(m, chunks=50), tile=tile)
        assert tiled.tips == whole.tips
        assert tiled.branches == whole.branches
        assert tiled.hull_area == whole.hull_area
        assert tiled.length == pytest.approx(whole.length, rel=1e-9)


# ---- the whole evaluation ------------------------------------------------------------------
def test_identity_scores_zero_and_truth_scores_one():
    truth, inp, gaps = gapped_line()
    ident = evaluate(inp, truth, inp, gaps)
    perfect = evaluate(truth, truth, inp, gaps)
    for key in ("rel_pixel_diff", "rel_component_diff", "paper_rel_pixel_diff",
                "paper_rel_component_diff", "length_rel_improvement", "tips_rel_improvement"):
        assert ident[key] == 0.0, key
        assert perfect[key] == 1.0, key
    assert (ident["components_pred"], perfect["components_pred"]) == (2, 1)
    assert ident["skeleton_recall_gaps"] == 0.0 and perfect["skeleton_recall_gaps"] == 1.0
    assert perfect["cldice"] == 1.0 and perfect["mse"] == 0.0 and perfect["mse_gaps"] == 0.0
    assert perfect["false_fill"] == 0.0 and ident["added_pixels"] == 0
    assert math.isnan(perfect["rel_betti1_error"])  # the gap cut no hole: nothing to improve
    worse = evaluate(np.ones_like(truth), truth, inp, gaps)
    assert worse["rel_pixel_diff"] < 0 < worse["paper_rel_pixel_diff"]
    assert worse["false_fill"] > 0.95


def test_ring_cut_by_a_gap_through_the_whole_evaluation():
    """A ring cut once: the hole is lost (B1 1 -> 0) but it stays one component; the perfect
    repair restores B1 (relative improvement 1), the identity does not (0)."""
    truth = ring()
    gaps = np.zeros_like(truth)
    gaps[:, 23:28] = True
    gaps[25:, :] = False  # cut the top of the ring only
    gaps &= truth
    inp = truth & ~gaps
    ident, perfect = evaluate(inp, truth, inp, gaps), evaluate(truth, truth, inp, gaps)
    assert (ident["holes_truth"], ident["holes_input"], ident["holes_pred"]) == (1, 0, 0)
    assert (ident["components_input"], ident["component_diff"]) == (1, 0)
    assert math.isnan(ident["rel_component_diff"])  # the cut split nothing: nothing to improve
    assert (ident["betti1_error"], ident["rel_betti1_error"]) == (1, 0.0)
    assert (perfect["holes_pred"], perfect["betti1_error"], perfect["rel_betti1_error"]) == (1, 0, 1.0)
    assert perfect["cldice"] == 1.0 and ident["cldice"] < 1.0


def test_input_and_gaps_derive_each_other():
    truth, inp, gaps = gapped_line()
    pred = truth.copy()
    pred[30, 10:20] = True
    full = evaluate(pred, truth, inp, gaps)
    np.testing.assert_equal(evaluate(pred, truth, input=inp), full)  # NaN == NaN here
    np.testing.assert_equal(evaluate(pred, truth, gaps=gaps), full)
    assert "rel_pixel_diff" not in evaluate(pred, truth)


def _close(a: float, b: float, key: str, rel: float) -> None:
    if isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), key
    else:
        assert b == pytest.approx(a, rel=rel, abs=1e-9), key


EXACT = ("mse", "mse_gaps", "pixel_diff", "pixel_diff_input", "rel_pixel_diff",
         "components_pred", "components_truth", "components_input", "component_diff",
         "rel_component_diff", "betti0_error", "betti1_error", "holes_pred", "holes_truth",
         "holes_input", "added_pixels", "false_fill", "hull_area_pred", "hull_area_truth",
         "components_added", "input_removed", "islands", "island_pixels")


@pytest.mark.parametrize("seed", [0, 1])
def test_dask_tiles_agree_with_numpy_for_every_metric(seed):
    rng = np.random.default_rng(seed)
    truth = thin_lines((256, 320), 30, seed, width=3) | (rng.random((256, 320)) < 0.01)
    region = ndimage.binary_dilation(rng.random(truth.shape) < 0.003, iterations=4)
    inp, gaps = truth & ~region, truth & region
    pred = inp | (ndimage.binary_dilation(gaps) & truth) | (rng.random(truth.shape) < 0.002)
    whole = evaluate(pred, truth, inp, gaps)
    chunks = 40
    lazy = [da.from_array(a, chunks=chunks) for a in (pred, truth, inp, gaps)]
    tiled = evaluate(*lazy, config=EvalConfig(tile=80, halo=32))
    assert tiled.keys() == whole.keys()
    for key in whole:
        # pixel, component and Betti metrics are exact; skeleton ones agree closely because
        # these structures are far thinner than the halo
        _close(whole[key], tiled[key], key, 0.0 if key in EXACT else 0.02)


def test_large_lazy_mask_is_tiled_and_exact():
    # a mask above the in-memory limit goes through tiles by itself: 8200 x 8200 lazy zeros
    # with a few lines drawn into one chunk keep the test fast
    side = 8200
    assert side * side > IN_MEMORY_PIXELS
    base = da.zeros((side, side), dtype=bool, chunks=2048)
    lines = thin_lines((2048, 2048), 5, seed=4)
    big = da.block([[da.from_array(lines), base[:2048, 2048:]], [base[2048:, :2048],
                                                                 base[2048:, 2048:]]])
    assert choose_tile(big.shape, {"m": big}, None) == 2048
    assert n_components(big) == sk_label(lines, connectivity=2).max()


def test_shape_mismatch_and_bad_config_are_user_errors():
    with pytest.raises(InputError, match="differ in shape"):
        evaluate(np.zeros((5, 5), bool), np.zeros((5, 6), bool))
    with pytest.raises(ConfigError, match="halo"):
        EvalConfig(halo=0)
    with pytest.raises(ConfigError, match="fill_tolerance"):
        EvalConfig(halo=4, fill_tolerance=5)
    with pytest.raises(ConfigError, match="tile"):
        EvalConfig(tile=3)


def test_map_tiles_sees_the_whole_image_once_with_zero_halo_outside():
    m = np.arange(50 * 70).reshape(50, 70) % 3 == 0

    def kernel(windows, tile):
        w = windows["m"]
        assert w.shape == (tile.shape[0] + 10, tile.shape[1] + 10)
        return int(tile.core(w).sum()), int(w.sum())

    grid = map_tiles(kernel, {"m": m}, halo=5, tile=16)
    assert sum(c for row in grid for c, _ in row) == m.sum()
    corner = grid[0][0][1]  # the top-left window: 21 x 21 of image, the rest zero padding
    assert corner == m[:21, :21].sum()


# ---- statistics ----------------------------------------------------------------------------
def test_aggregate_and_paired_ttest():
    a = {"s1": {"m": 1.0, "r": float("nan")}, "s2": {"m": 2.0, "r": 0.5},
         "s3": {"m": 4.0, "r": 0.7}}
    b = {"s1": {"m": 1.5}, "s2": {"m": 2.1}, "s3": {"m": 3.0}, "s9": {"m": 100.0}}
    agg = aggregate(a)
    assert agg["m"].mean == pytest.approx(7 / 3) and agg["m"].n == 3
    assert agg["m"].std == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert agg["r"].n == 2  # NaN skipped
    (test,) = compare_results(a, b, ["m"])
    ref = stats.ttest_rel([1.0, 2.0, 4.0], [1.5, 2.1, 3.0])
    assert test.n == 3
    assert (test.t, test.p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    same = paired_ttest("m", {"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.0})
    assert math.isnan(same.p)
