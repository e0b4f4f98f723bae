"""Harm metrics on hand-made masks with known answers (lengths and pixel counts drawn here),
and exactness across tiles."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk as draw_disk
from skimage.draw import line

from distpaint.errors import ConfigError
from distpaint.metrics import EvalConfig, cldice, evaluate, n_components
from distpaint.metrics.evaluation import METRICS
from distpaint.metrics.harm import HARM_KEYS

EIGHT = np.ones((3, 3), bool)


def dead_end_line(width: int = 3, shape=(80, 160)):
    """A horizontal line `width` px wide from x = 10 to its natural dead end at x = 79, with one
    7-px gap at x = 20..26: (truth, input, gaps)."""
    truth = np.zeros(shape, bool)
    top = 40 - width // 2
    truth[top : top + width, 10:80] = True
    gaps = np.zeros_like(truth)
    gaps[:, 20:27] = True
    gaps &= truth
    return truth, truth & ~gaps, gaps


def cross():
    """A '+' of 3-px lines with two 6-px gaps: (truth, input, gaps)."""
    truth = np.zeros((96, 128), bool)
    truth[40:43, 5:120] = True
    truth[8:90, 70:73] = True
    gaps = np.zeros_like(truth)
    gaps[:, 20:26] = True
    gaps[60:66, :] = True
    gaps &= truth
    return truth, truth & ~gaps, gaps


def test_harm_metrics_are_registered_with_the_input():
    harm = [m for m in METRICS if m.group == "harm"]
    assert tuple(m.key for m in harm) == HARM_KEYS
    assert all(m.needs == "input" for m in harm)
    truth, inp, gaps = cross()
    assert not set(HARM_KEYS) & set(evaluate(truth, truth))  # no input: no harm metrics
    assert set(HARM_KEYS) <= set(evaluate(truth, truth, inp))


def test_a_perfect_fill_does_no_harm():
    truth, inp, gaps = cross()
    m = evaluate(truth, truth, inp, gaps)
    assert m["no_harm"] == 1.0
    assert (m["spur_length"], m["thickening"], m["thickening_share"]) == (0, 0, 0.0)
    assert (m["islands"], m["island_pixels"], m["input_removed"]) == (0, 0, 0)
    assert m["components_added"] == n_components(truth) - n_components(inp) == -2
    assert m["cldice_input"] == pytest.approx(cldice(inp, truth).cldice)
    assert m["cldice_input"] < 1.0
    assert m["cldice_gain"] == pytest.approx(1.0 - m["cldice_input"]) and m["cldice_gain"] > 0
    # the identity does no harm either, and gains nothing
    ident = evaluate(inp, truth, inp, gaps)
    assert (ident["no_harm"], ident["cldice_gain"], ident["components_added"]) == (1.0, 0.0, 0)


def _spur(kind: str, width: int) -> tuple[np.ndarray, int]:
    """The spur pixels drawn from the dead end (x = 79) of `dead_end_line(width)`, and their
    drawn length in pixels along the spur."""
    spur = np.zeros((80, 160), bool)
    if kind == "straight":  # 1 px wide, continuing the line
        spur[40, 80:100] = True
    elif kind == "diagonal":  # 1 px wide, 45 degrees down-right from the end's lower corner
        rr, cc = line(40 + width // 2 + 1, 80, 40 + width // 2 + 20, 99)
        spur[rr, cc] = True
    elif kind == "bent":  # 12 px straight on, then 15 px up
        spur[40, 80:92] = True
        spur[25:40, 91] = True
        return spur, 12 + 15
    else:  # 3 px wide
        spur[39:42, 80:100] = True
    return spur, 20


@pytest.mark.parametrize("width", [1, 3, 5])
@pytest.mark.parametrize("kind", ["straight", "diagonal", "bent", "wide"])
def test_a_spur_from_a_natural_dead_end_measures_its_drawn_length(kind, width):
    truth, inp, gaps = dead_end_line(width)
    spur, length = _spur(kind, width)
    m = evaluate(truth | spur, truth, inp, gaps)  # gap filled, spur painted
    assert abs(m["spur_length"] - length) <= 2, m["spur_length"]
    assert m["islands"] == 0 and m["input_removed"] == 0
    assert m["thickening"] <= 2  # at most the sides of a wide spur's base
    # the components did not grow, so clDice decides the verdict
    assert m["components_added"] == -1
    assert m["no_harm"] == float(cldice(truth | spur, truth).cldice >= cldice(inp, truth).cldice)


def test_no_harm_follows_cldice_for_spurs():
    truth, inp, gaps = dead_end_line(3)
    spur, _ = _spur("straight", 3)
    long = evaluate(inp | spur, truth, inp, gaps)  # a spur, the gap left open: harm
    assert long["cldice_gain"] < 0 and long["components_added"] == 0 and long["no_harm"] == 0.0
    short = np.zeros_like(spur)
    short[40, 80:83] = True  # a 3-px spur while closing a 7-px gap: net gain
    m = evaluate(truth | short, truth, inp, gaps)
    assert m["spur_length"] == 3
    assert m["cldice_gain"] > 0 and m["no_harm"] == 1.0


@pytest.mark.parametrize("rows", [[39, 41], [39], [41]])
def test_a_thickened_line_is_thickening_not_spur(rows):
    """A 1-px line painted 3 px wide (or 2 px, on either side) along 40 px away from the gap:
    every added pixel is thickening. With the band above the line the skeleton of the 2-px
    line runs in the added row, which must not count as a spur."""
    truth, inp, gaps = dead_end_line(1)
    pred = inp.copy()
    for r in rows:
        pred[r, 35:75] = True
    m = evaluate(pred, truth, inp, gaps)
    assert m["added_pixels"] == 40 * len(rows)
    assert m["thickening"] == 40 * len(rows) and m["thickening_share"] == 1.0
    assert m["spur_length"] == 0 and m["islands"] == 0
    # next to the gap the same band is repair, not harm
    near = inp.copy()
    near[39, 27:29] = True  # within 3 px of the gap pixel (40, 26)
    m = evaluate(near, truth, inp, gaps)
    assert m["thickening"] == 0 and m["added_pixels"] == 2


def test_an_island_adds_a_component_and_is_harm():
    truth, inp, gaps = dead_end_line(3)
    pred = inp.copy()
    pred[10:13, 120:124] = True  # 12 px far from everything
    pred[60, 40] = True  # a single pixel
    m = evaluate(pred, truth, inp, gaps)
    assert (m["islands"], m["island_pixels"]) == (2, 13)
    assert m["components_added"] == 2 and m["no_harm"] == 0.0
    assert m["spur_length"] == 0 and m["thickening"] == 0  # islands are neither
    one = inp.copy()
    one[10:13, 120:124] = True
    m = evaluate(one, truth, inp, gaps)
    assert (m["islands"], m["components_added"], m["no_harm"]) == (1, 1, 0.0)
    # a piece touching the input diagonally is attached, not an island
    attached = inp.copy()
    attached[42, 50] = True  # the line's rows are 39..41
    assert evaluate(attached, truth, inp, gaps)["islands"] == 0


def test_a_repair_that_erases_input_is_harm():
    truth, inp, gaps = dead_end_line(3)
    pred = truth.copy()
    pred[39, 50] = False  # an edge pixel of the line: clDice and components stay as good
    pred[41, 60:62] = False
    m = evaluate(pred, truth, inp, gaps)
    assert m["input_removed"] == 3
    assert m["cldice_gain"] > 0 and m["components_added"] < 0  # only the erasure is harm
    assert m["no_harm"] == 0.0
    assert evaluate(truth, truth, inp, gaps)["no_harm"] == 1.0


def tiled_case():
    """300 x 300: lines crossing the 64-px tile borders, disc gaps, and a repair with a spur
    crossing a tile border, a one-sided band across another, islands on tile corners (one
    joined only diagonally through a corner) and an erased input pixel. Returns
    (truth, input, gaps, pred, drawn) with the drawn spur length and band pixels."""
    truth = np.zeros((300, 300), bool)
    truth[99:102, 10:290] = True  # 3 px, crosses x = 64, 128, 192, 256
    truth[20:280, 40] = True  # 1 px, crosses y = 64, 128, 192, 256
    truth[line(150, 70, 290, 210)] = True
    truth[200, 10:61] = True  # natural dead end at x = 60
    region = np.zeros_like(truth)
    for centre, r in (((100, 30), 5), ((100, 160), 6), ((60, 40), 4), ((220, 140), 5)):
        region[draw_disk(centre, r, shape=truth.shape)] = True
    gaps = truth & region
    inp = truth & ~region
    pred = truth.copy()
    pred[200, 61:91] = True  # spur of 30 px from the dead end, across x = 64
    pred[98, 180:230] = True  # one-sided band above the 3-px line, across x = 192
    pred[125:132, 125:132] = True  # island on the tile corner (128, 128)
    pred[188:192, 188:192] = True  # island in tile (2, 2) ...
    pred[192:195, 192:195] = True  # ... joined through the corner pixel pair (191,191)-(192,192)
    pred[250, 250:260] = True  # island across x = 256
    pred[101, 120] = False  # an erased input pixel
    drawn = {"spur": 30, "band": 50}
    return truth, inp, gaps, pred, drawn


def test_harm_is_exact_across_tiles():
    truth, inp, gaps, pred, drawn = tiled_case()
    whole = evaluate(pred, truth, inp, gaps)
    # independent expectations from the whole image
    added = pred & ~inp
    labels, n = ndimage.label(added, structure=EIGHT)
    touching = np.unique(labels[ndimage.binary_dilation(inp, structure=EIGHT) & added])
    islands = [i for i in range(1, n + 1) if i not in touching]
    assert whole["islands"] == len(islands) == 3
    assert whole["island_pixels"] == sum(int((labels == i).sum()) for i in islands) == 49 + 16 + 9 + 10
    assert whole["spur_length"] == drawn["spur"]
    assert whole["thickening"] == drawn["band"]
    assert whole["input_removed"] == 1 and whole["no_harm"] == 0.0
    assert whole["components_added"] == n_components(pred) - n_components(inp)
    for tile in (64, 50):
        tiled = evaluate(pred, truth, inp, gaps, EvalConfig(tile=tile))
        lazy = evaluate(*(da.from_array(a, chunks=40) for a in (pred, truth, inp, gaps)),
                        config=EvalConfig(tile=tile))
        for key in HARM_KEYS:
            assert tiled[key] == pytest.approx(whole[key], abs=1e-12), (tile, key)
            assert lazy[key] == pytest.approx(whole[key], abs=1e-12), (tile, key)


def test_harm_tolerance_is_configurable_and_checked():
    truth, inp, gaps = dead_end_line(1)
    pred = inp.copy()
    pred[39, 27:33] = True  # beside the line, right of the gap's last pixel (40, 26)
    # (39, x) is within 3 px of (40, 26) when 1 + (x - 26)^2 <= 9: x = 27, 28 are repair
    assert evaluate(pred, truth, inp, gaps)["thickening"] == 4
    wide = evaluate(pred, truth, inp, gaps, EvalConfig(harm_tolerance=10))
    assert wide["thickening"] == 0
    with pytest.raises(ConfigError, match="harm_tolerance"):
        EvalConfig(halo=3, harm_tolerance=3)
