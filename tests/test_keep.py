"""`--keep`: which added pieces a repair keeps. By hand on small cases (a bridged cut, a loop
closed, a spur, a thickened edge, a filled corner, an island, a filled hole, a spur into a big
hole, open window edges, the confidence floor), and tiled through the streaming engine exactly
as on the whole image.

Run: .venv/bin/python -m pytest tests/test_keep.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi
from zarr.storage import LocalStore

from distpaint.data.store import compressors
from distpaint.errors import ConfigError
from distpaint.infer.engine import InferConfig, output_layout, run_inference
from distpaint.infer.keep import NO_REPAIR, confident_pieces, keep_added
from infer_models import FUNCTIONS, FnPredictor, whole_reference

EIGHT = np.ones((3, 3), bool)


def _components(a: np.ndarray) -> int:
    return ndi.label(a, structure=EIGHT)[1]


def test_bridges_keep_what_joins_and_drop_what_does_not():
    given = np.zeros((40, 60), bool)
    given[10, 0:20] = given[10, 26:60] = True           # a road cut at columns 20-25
    given[30, 5:40] = True                               # a road ending at column 39
    given[20:30, 5] = True                               # ... and a branch up from it
    output = given.copy()
    output[10, 20:26] = True                             # the cut bridged: joins two pieces
    output[30, 40:48] = True                             # a spur from the dead end
    output[31, 10:30] = True                             # the road thickened along 20 px
    output[28:30, 6:8] = True                            # the junction's corner filled
    output[2:4, 50:53] = True                            # an island
    kept = keep_added(output, given, "bridges")
    want = given.copy()
    want[10, 20:26] = True
    np.testing.assert_array_equal(kept, want)
    assert _components(kept) == _components(given) - 1  # the repair joined, never added
    # `attached` keeps all but the island; `all` keeps everything
    attached = keep_added(output, given, "attached")
    assert attached[30, 40:48].all() and attached[31, 10:30].all() and not attached[2:4, 50:53].any()
    np.testing.assert_array_equal(keep_added(output, given, "all"), output)


def test_bridges_need_a_dead_end_false_bridges_between_lines_go():
    """Two parallel 3-px roads: a rung painted between their sides joins two places but no
    dead end (a false bridge, like a fill between carriageways); a cut at a T junction leaves
    one dead end (the branch's) and its fill stays."""
    given = np.zeros((60, 80), bool)
    given[10:13, 0:80] = given[30:33, 0:80] = True        # two parallel roads
    given[33:50, 40:43] = True                             # a branch down from the lower one ...
    given[33:37, 40:43] = False                            # ... cut at the junction
    output = given.copy()
    output[13:30, 20:23] = True                            # a rung between the two roads
    output[33:37, 40:43] = True                            # the cut at the junction filled
    kept = keep_added(output, given, "bridges")
    assert not kept[13:30, 20:23].any()
    assert kept[33:37, 40:43].all()


def test_a_piece_closing_a_loop_is_a_bridge():
    given = np.zeros((30, 30), bool)
    given[5, 5:25] = given[5:25, 5] = given[24, 5:25] = True
    given[5:15, 24] = given[19:25, 24] = True           # one side of a square cut: rows 15-18
    output = given.copy()
    output[15:19, 24] = True
    # one component before and after: the piece touches the same component at two places
    np.testing.assert_array_equal(keep_added(output, given, "bridges"), output)


def test_a_filled_hole_stays_and_a_spur_into_a_big_hole_goes():
    given = np.zeros((60, 60), bool)
    given[2:12, 2:58] = True                             # a wide road ...
    given[6:9, 20:23] = False                            # ... with a cut inside it (a hole)
    given[12:58, 2] = given[57, 2:58] = given[12:58, 57] = True  # a block's outline
    output = given.copy()
    output[6:9, 20:23] = True                            # the hole filled
    output[12:20, 30] = True                             # a spur into the block (a big hole)
    kept = keep_added(output, given, "bridges")
    assert kept[6:9, 20:23].all()
    assert not kept[12:20, 30].any()
    # filling under half of a hole is not a fill
    small = given.copy()
    small[7, 21] = True                                  # 1 of 9, touching nothing
    assert not keep_added(small, given, "bridges")[7, 21]
    partial = given.copy()
    partial[6, 20:22] = True                             # 2 of 9
    assert not keep_added(partial, given, "bridges")[6, 20:22].any()


def test_ends_keeps_a_clean_bridge_and_drops_one_that_overshoots_or_bulges():
    given = np.zeros((40, 80), bool)
    given[19:22, 5:75] = True
    given[:, 30:40] = False                              # a 3-px line cut over 10 columns
    clean = given.copy()
    clean[19:22, 30:40] = True
    np.testing.assert_array_equal(keep_added(clean, given, "ends"), clean)
    spur = clean.copy()
    spur[8:19, 34:36] = True                             # the bridge grows a spur
    blob = given.copy()
    blob[12:29, 30:40] = True                            # a 17-px blob across a 3-px line
    for output in (spur, blob):
        added = output & ~given
        assert (keep_added(output, given, "bridges") == output).all()  # bridges keeps both
        assert not (keep_added(output, given, "ends") & added).any()
    # hole fills and open window edges as with bridges
    wide = np.zeros((20, 40), bool)
    wide[2:12, 2:38] = True
    wide[6:9, 20:23] = False
    filled = wide | np.pad(np.ones((3, 3), bool), ((6, 11), (20, 17)))
    np.testing.assert_array_equal(keep_added(filled, wide, "ends"), filled)


def test_small_single_pixel_hole_fill_is_whole_hole():
    given = np.ones((5, 5), bool)
    given[2, 2] = False
    output = np.ones((5, 5), bool)
    np.testing.assert_array_equal(keep_added(output, given, "bridges"), output)


def test_open_edges_keep_pieces_that_may_continue():
    given = np.zeros((20, 20), bool)
    given[10, 0:10] = True
    output = given.copy()
    output[10, 10:20] = True                             # a spur to the right edge
    assert not keep_added(output, given, "bridges")[10, 10:20].any()
    kept = keep_added(output, given, "bridges", open_edges=(False, False, False, True))
    assert kept[10, 10:20].all()


def test_input_pixels_the_output_lacks_stay_lacking():
    given = np.zeros((8, 8), bool)
    given[4, :] = True
    output = given.copy()
    output[4, 0] = False  # keep-input off: the model dropped an input pixel
    assert not keep_added(output, given, "bridges")[4, 0]


def test_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="--keep must be one of ends, bridges, attached, all"):
        InferConfig(keep="some")


def test_min_confidence_drops_the_unsure_bridges_the_policy_keeps():
    given = np.zeros((40, 80), bool)
    given[9:12, 5:75] = given[29:32, 5:75] = True
    given[:, 30:40] = False                              # two 3-px lines, each cut over 10 columns
    output = given.copy()
    output[9:12, 30:40] = output[29:32, 30:40] = True    # both cuts bridged ...
    probs = np.zeros(given.shape, np.float32)
    probs[9:12, 30:40], probs[29:32, 30:40] = 0.9, 0.5   # ... one of them unsure
    kept = keep_added(output, given, "ends", probs=probs, min_confidence=0.55)
    assert kept[9:12, 30:40].all() and not kept[29:32, 30:40].any()
    np.testing.assert_array_equal(kept & given, given)
    np.testing.assert_array_equal(keep_added(output, given, "ends", probs=probs), output)  # no floor
    probs[29:32, 30:35] = 0.7                            # the mean of the piece counts: 0.6 >= 0.55
    assert keep_added(output, given, "ends", probs=probs, min_confidence=0.55)[29:32, 30:40].all()
    # the policy decides first: a spur is dropped however sure the model is of it
    spur = given.copy()
    spur[10, 75:79] = True
    assert not keep_added(spur, given, "ends", probs=np.ones(given.shape, np.float32),
                          min_confidence=0.55)[10, 75:79].any()
    # a piece reaching an open edge of a window is not judged there
    edge = np.zeros((10, 10), bool)
    edge[5, 3:10] = True
    assert confident_pieces(edge, np.zeros((10, 10), np.float32), 0.5, (False, False, False, True))[5, 3:10].all()
    assert not confident_pieces(edge, np.zeros((10, 10), np.float32), 0.5).any()


def test_min_confidence_is_checked():
    for bad in (1.01, -0.1, "0.5", True):
        with pytest.raises(ConfigError, match="--min-confidence must be auto or in"):
            InferConfig(min_confidence=bad)
    assert InferConfig(min_confidence=1.0).min_confidence == NO_REPAIR
    with pytest.raises(ConfigError, match="needs the model's probabilities"):
        keep_added(np.ones((4, 4), bool), np.zeros((4, 4), bool), "all", min_confidence=0.5)


def _targets(path, shape, tile):
    chunks, shard = output_layout(shape, tile, shards=2 * tile)
    group = zarr.open_group(LocalStore(path), mode="w", zarr_format=3)
    return {name: group.create_array(name, shape=shape, chunks=chunks, shards=shard, dtype=bool,
                                     fill_value=False, compressors=compressors())
            for name in ("mask", "added")}


def _dashes(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Short horizontal dashes 2 px apart along rows 8 px apart: the 3x3 dilation joins
    neighbouring dashes (a bridge) and thickens every dash (a one-sided piece)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, bool)
    for y in range(3, shape[0] - 3, 8):
        x = int(rng.integers(0, 6))
        while x < shape[1] - 4:
            length = int(rng.integers(2, 5))
            image[y, x:x + length] = True
            x += length + int(rng.choice([2, 7]))  # 2: bridged by dilate3; 7: not
    return image


@pytest.mark.parametrize("shape", [(37, 53), (150, 170)])
@pytest.mark.parametrize("tile", [16, 48])
def test_tiled_bridges_equal_the_whole_image(tmp_path, shape, tile):
    image = _dashes(shape, tile)
    image[:, int(shape[1] * 0.6):] = False  # empty tiles take the skip path
    targets = _targets(tmp_path / "o.zarr", shape, tile)
    # dilate3 thickens every dash (dropped) and bridges dashes 2 px apart (kept); a halo of
    # 16 px (the model needs 1) lets each window judge the pieces that end inside it, and a
    # chain of bridged dashes longer than the halo is kept by both (it touches two dashes)
    config = InferConfig(tile=tile, halo=16, batch=2, keep="bridges", threshold=0.5)
    run_inference(image, FnPredictor("dilate3"), targets, config)
    plain = whole_reference(image, "dilate3")
    want = keep_added(plain, image, "bridges")
    got = targets["mask"][:]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(targets["added"][:], want & ~image)
    assert (plain & ~want).sum() > 20 and (want & ~image).any()  # some dropped, some kept


def _cut_short_lines(seed: int, cut_share: float) -> np.ndarray:
    """16-px vertical lines 1 or 3 px wide, 24 px apart, `cut_share` of them cut over 2 px."""
    rng = np.random.default_rng(seed)
    image = np.zeros((120, 130), bool)
    for y in range(6, 110, 24):
        for x in range(6, 120, 24):
            width = int(rng.choice([1, 3]))
            image[y:y + 16, x:x + width] = True
            if rng.random() < cut_share:
                image[y + 7:y + 9, x:x + width] = False
    return image


@pytest.mark.parametrize("tile", [16, 40])
def test_tiled_ends_equal_the_whole_image_for_pieces_within_the_halo(tmp_path, tile):
    """`ends` judges a piece from the input around it: pieces that fit in the halo are judged
    as on the whole image. Short vertical lines 1 or 3 px wide, most cut over 2 px, 24 px
    apart: dilate3 bridges every cut and thickens every line; `ends` keeps the pieces along
    the 3-px lines (their skeleton ends stay in the input) and drops those along the 1-px ones
    (thickened past the line's ends)."""
    image = _cut_short_lines(seed=5, cut_share=0.8)
    targets = _targets(tmp_path / "o.zarr", image.shape, tile)
    config = InferConfig(tile=tile, halo=16, batch=2, keep="ends", threshold=0.5)
    run_inference(image, FnPredictor("dilate3"), targets, config)
    plain = whole_reference(image, "dilate3")
    want = keep_added(plain, image, "ends")
    np.testing.assert_array_equal(targets["mask"][:], want)
    bridges = keep_added(plain, image, "bridges")
    assert (want & ~image).any() and (bridges & ~want).any()  # some kept, some dropped


@pytest.mark.parametrize("tile", [16, 40])
def test_tiled_min_confidence_equals_the_whole_image_for_pieces_within_the_halo(tmp_path, tile):
    """The floor reads each piece's mean probability in its window: for pieces within the halo
    it is the whole image's. Vertical lines 1 or 3 px wide, cut over 2 px: `dilate3_unsure`
    bridges the cuts of 3-px lines surely (0.9 beside them) and those of 1-px lines unsurely
    (0.6); at a floor of 0.75 with `bridges` the first stay and the second go."""
    image = _cut_short_lines(seed=7, cut_share=1.0)
    targets = _targets(tmp_path / "o.zarr", image.shape, tile)
    config = InferConfig(tile=tile, halo=16, batch=2, keep="bridges", threshold=0.5, min_confidence=0.75)
    run_inference(image, FnPredictor("dilate3_unsure"), targets, config)
    plain = whole_reference(image, "dilate3_unsure")
    probs = FUNCTIONS["dilate3_unsure"][0](image.astype(np.float32))
    want = keep_added(plain, image, "bridges", probs=probs, min_confidence=0.75)
    np.testing.assert_array_equal(targets["mask"][:], want)
    bridges = keep_added(plain, image, "bridges")
    assert (want & ~image).any() and (bridges & ~want).any()  # some kept, some dropped by the floor
