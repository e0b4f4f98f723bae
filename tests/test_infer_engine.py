"""The streaming engine is exact: Zarr -> tiles -> model -> whole shards equals the model applied to
the whole image, pixel for pixel (MONAI's sliding-window test with trivial "models", STYLE.md),
for every tile size, batch size, source type, skip-empty and keep-input setting; and the real
generator, tiled from a Zarr store, agrees with whole-image inference on a 2048x2048 mask.

Run: .venv/bin/python -m pytest tests/test_infer_engine.py -q
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from distpaint.data.store import compressors
from distpaint.errors import ConfigError
from distpaint.infer.engine import InferConfig, output_layout, pixel_uniforms, run_inference
from distpaint.infer.tiling import TileGrid, read_window, whole_apply
from infer_models import FUNCTIONS, FnPredictor, whole_reference


def _image(shape, seed=0, density=0.03):
    """Sparse random foreground in the left 60% of the columns; the rest empty, so that some
    tiles (with their halo) hold nothing and are skipped."""
    rng = np.random.default_rng(seed)
    image = rng.random(shape) < density
    image[:, int(shape[1] * 0.6):] = False
    return image


def _targets(path, shape, tile, shards=4096):
    chunks, shard = output_layout(shape, tile, shards=shards)
    group = zarr.open_group(LocalStore(path), mode="w", zarr_format=3)
    return {name: group.create_array(name, shape=shape, chunks=chunks, shards=shard, dtype=bool,
                                     fill_value=False, compressors=compressors())
            for name in ("mask", "added")}


def _source(kind, image, tmp_path):
    if kind == "numpy":
        return image
    if kind == "dask":
        return da.from_array(image, chunks=(23, 31))
    array = zarr.create_array(LocalStore(tmp_path / "src.zarr"), shape=image.shape,
                              chunks=(32, 32), dtype=bool, fill_value=False, zarr_format=3)
    array[:] = image
    return array


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("shape", [(37, 53), (200, 129), (257, 300)])
@pytest.mark.parametrize("tile", [16, 48, 128])
def test_engine_equals_function_on_whole_image(tmp_path, name, shape, tile):
    image = _image(shape, seed=tile)
    targets = _targets(tmp_path / "out.zarr", shape, tile, shards=2 * tile)
    stats = run_inference(_source("zarr", image, tmp_path), FnPredictor(name), targets,
                          InferConfig(keep="all", tile=tile, batch=3))
    want = whole_reference(image, name)
    np.testing.assert_array_equal(targets["mask"][:], want)
    np.testing.assert_array_equal(targets["added"][:], want & ~image)
    assert stats.output_pixels == want.sum() and stats.added_pixels == (want & ~image).sum()
    assert stats.input_pixels == image.sum() and stats.predicted + stats.skipped == stats.tiles


@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr"])
@pytest.mark.parametrize("keep_input", [True, False])
@pytest.mark.parametrize("skip_empty", [True, False])
@pytest.mark.parametrize("batch", [1, 4])
def test_sources_settings_and_batches_are_exact(tmp_path, kind, keep_input, skip_empty, batch):
    image = _image((150, 170), seed=3, density=0.08)
    targets = _targets(tmp_path / "out.zarr", image.shape, 32, shards=64)
    config = InferConfig(keep="all", tile=32, batch=batch, threshold=0.3, keep_input=keep_input,
                         skip_empty=skip_empty)
    run_inference(_source(kind, image, tmp_path), FnPredictor("pool16"), targets, config)
    want = whole_reference(image, "pool16", threshold=0.3, keep_input=keep_input)
    np.testing.assert_array_equal(targets["mask"][:], want)
    if not keep_input:  # the model drops input pixels here: the comparison is not trivial
        assert (image & ~want).any()


def test_tiles_without_foreground_never_reach_the_model(tmp_path):
    image = _image((300, 400), seed=1)
    grid = TileGrid(image.shape, tile=48, halo=16, align=16)
    busy = sum(read_window(image, t, image.shape).any() for t in grid.tiles())
    predictor = FnPredictor("pool16")
    stats = run_inference(image, predictor, _targets(tmp_path / "o.zarr", image.shape, 48),
                          InferConfig(keep="all", tile=48, batch=2))
    assert stats.predicted == busy < len(grid) and stats.skipped == len(grid) - busy
    # the model saw the busy windows plus one all-background probe per skipped window shape
    probes = len(predictor.windows) - busy
    assert 1 <= probes <= 9
    off = run_inference(image, FnPredictor("pool16"), _targets(tmp_path / "p.zarr", image.shape, 48),
                        InferConfig(keep="all", tile=48, batch=2, skip_empty=False))
    assert off.predicted == len(grid) and off.skipped == 0


def test_skipping_is_exact_for_a_model_that_fires_on_empty_input(tmp_path):
    image = _image((256, 320), seed=2)
    targets = _targets(tmp_path / "o.zarr", image.shape, 32)
    stats = run_inference(image, FnPredictor("fires_on_empty"), targets, InferConfig(keep="all", tile=32))
    want = whole_reference(image, "fires_on_empty")
    assert stats.skipped > 0 and (want & ~image)[:, 250:].any()  # skipped tiles got pixels
    np.testing.assert_array_equal(targets["mask"][:], want)


def test_sampling_is_keyed_by_pixel_position_and_tiling_invariant(tmp_path):
    image = _image((130, 150), seed=4, density=0.1)
    probs = whole_apply(image.astype(np.float32), FUNCTIONS["pool16"][0], 16)
    want = (pixel_uniforms(7, 0, 130, 0, 150) < probs) | image
    for tile in (16, 48, 144):
        targets = _targets(tmp_path / f"o{tile}.zarr", image.shape, tile)
        run_inference(image, FnPredictor("pool16"), targets,
                      InferConfig(keep="all", tile=tile, sample=True, seed=7, batch=2))
        np.testing.assert_array_equal(targets["mask"][:], want)
    other = (pixel_uniforms(8, 0, 130, 0, 150) < probs) | image
    assert (other != want).any()


def test_a_halo_below_the_receptive_field_is_refused(tmp_path):
    image = _image((64, 64))
    with pytest.raises(ConfigError, match="--halo 0 is smaller than the model's receptive radius"):
        run_inference(image, FnPredictor("pool16"), _targets(tmp_path / "o.zarr", (64, 64), 16),
                      InferConfig(keep="all", tile=16, halo=0))
    with pytest.raises(ConfigError, match="--tile 24"):
        run_inference(image, FnPredictor("pool16"), _targets(tmp_path / "p.zarr", (64, 64), 16),
                      InferConfig(keep="all", tile=24))


def test_shards_in_separate_runs_write_the_same_bytes(tmp_path):
    """A run split by shards (a resumed job, or Ray actors) writes what one run writes."""
    image = _image((200, 260), seed=5, density=0.1)
    config = InferConfig(keep="all", tile=32, batch=3)
    whole = _targets(tmp_path / "one.zarr", image.shape, 32, shards=64)
    one = run_inference(image, FnPredictor("pool16"), whole, config)
    split = _targets(tmp_path / "two.zarr", image.shape, 32, shards=64)
    origins = [(y, x) for y in range(0, 200, 64) for x in range(0, 260, 64)]
    seen = []
    for part in (origins[::2], origins[1::2]):
        run_inference(image, FnPredictor("pool16"), split, config, shards=part,
                      on_shard=lambda o, c: seen.append((o, c)))
    assert sorted(o for o, _ in seen) == sorted(origins)
    assert sum(c.added_pixels for _, c in seen) == one.added_pixels
    assert sum(c.tiles for _, c in seen) == one.tiles
    for name in ("mask", "added"):
        files = sorted(p.relative_to(tmp_path / "one.zarr")
                       for p in (tmp_path / "one.zarr" / name).rglob("*") if p.is_file())
        assert files
        for rel in files:
            assert (tmp_path / "one.zarr" / rel).read_bytes() == (tmp_path / "two.zarr" / rel).read_bytes()


def test_real_generator_tiled_from_zarr_equals_whole_image_2048(tmp_path, tiny_checkpoint):
    """A trained (tiny) U-Net, tiled from a Zarr store through the streaming engine, agrees with
    one forward pass over the whole 2048x2048 mask on every pixel; the threshold is the median
    probability, so the model decides a good part of the pixels (not a trivial map)."""
    from distpaint.data.synth import synth_array
    from distpaint.infer.predictor import resolve_model

    predictor = resolve_model(tiny_checkpoint, threads=2)
    assert predictor.align == 16 and predictor.receptive_halo >= 60
    image = synth_array("roads", (2048, 2048), 3)
    probs = whole_apply(image, lambda x: predictor(x[None, None])[0, 0], predictor.align)
    threshold = float(np.median(probs))
    source = zarr.create_array(LocalStore(tmp_path / "in.zarr"), shape=image.shape,
                               chunks=(1024, 1024), dtype=bool, fill_value=False, zarr_format=3)
    source[:] = image
    targets = _targets(tmp_path / "out.zarr", image.shape, 512, shards=1024)
    stats = run_inference(source, predictor, targets,
                          InferConfig(keep="all", tile=512, batch=2, threshold=threshold, keep_input=False,
                                      skip_empty=False))
    want = probs > np.float32(threshold)
    assert 0.1 < want.mean() < 0.9 and stats.predicted == 16
    np.testing.assert_array_equal(targets["mask"][:], want)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from infer_models import tiny_checkpoint_dir

    return tiny_checkpoint_dir(tmp_path_factory.getbasetemp())
