"""`--drop-islands`: added components that touch no input pixel are left out, by hand on a small
case, and tiled through the streaming engine exactly as on the whole image (islands smaller
than the halo), thresholded or sampled, skipped tiles included.

Run: .venv/bin/python -m pytest tests/test_islands.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from distpaint.data.store import compressors
from distpaint.errors import ConfigError
from distpaint.infer.engine import InferConfig, output_layout, pixel_uniforms, run_inference
from distpaint.infer.islands import drop_islands
from distpaint.infer.tiling import whole_apply
from infer_models import FnPredictor, islands, whole_reference


def test_islands_go_bridges_spurs_and_open_edges_stay():
    given = np.zeros((12, 20), bool)
    given[5, 0:6] = given[5, 10:16] = True
    output = given.copy()
    output[5, 6:10] = True          # bridge between the two pieces
    output[4, 16] = True            # spur touching one piece diagonally (8-adjacency)
    output[9:11, 2:4] = True        # island
    output[0, 18:20] = True         # island on the top edge
    kept = drop_islands(output, given)
    want = output.copy()
    want[9:11, 2:4] = want[0, 18:20] = False
    np.testing.assert_array_equal(kept, want)
    # where the image continues beyond the top edge, the edge component may join something
    kept_open = drop_islands(output, given, open_edges=(True, False, False, False))
    assert kept_open[0, 18:20].all() and not kept_open[9:11, 2:4].any()
    # nothing added, or keep-input off (an input pixel missing from the output stays missing)
    np.testing.assert_array_equal(drop_islands(given, given), given)
    partial = output & ~(np.arange(20) == 0)[None, :]
    assert not drop_islands(partial, given)[5, 0]


def _targets(path, shape, tile):
    chunks, shard = output_layout(shape, tile, shards=2 * tile)
    group = zarr.open_group(LocalStore(path), mode="w", zarr_format=3)
    return {name: group.create_array(name, shape=shape, chunks=chunks, shards=shard, dtype=bool,
                                     fill_value=False, compressors=compressors())
            for name in ("mask", "added")}


@pytest.mark.parametrize("shape", [(37, 53), (200, 170)])
@pytest.mark.parametrize("tile", [16, 48])
@pytest.mark.parametrize("sample", [False, True])
def test_tiled_drop_islands_equals_the_whole_image(tmp_path, shape, tile, sample):
    rng = np.random.default_rng(tile)
    image = rng.random(shape) < 0.03
    image[:, int(shape[1] * 0.6):] = False  # empty tiles: the skip path must drop islands too
    targets = _targets(tmp_path / "o.zarr", shape, tile)
    config = InferConfig(keep="all", tile=tile, batch=2, drop_islands=True, sample=sample, seed=3)
    run_inference(image, FnPredictor("islands"), targets, config)
    if sample:
        probs = whole_apply(image.astype(np.float32), islands, 16)
        plain = (pixel_uniforms(3, 0, shape[0], 0, shape[1]) < probs) | image
    else:
        plain = whole_reference(image, "islands")
    want = drop_islands(plain, image)
    np.testing.assert_array_equal(targets["mask"][:], want)
    np.testing.assert_array_equal(targets["added"][:], want & ~image)
    assert (plain & ~want).sum() > 9  # some islands were dropped, and fill remains
    assert (want & ~image).any()


def test_drop_islands_must_be_a_bool():
    with pytest.raises(ConfigError, match="drop_islands must be true or false"):
        InferConfig(keep="all", drop_islands=1)
