"""Test-time refinements (`--views`, `--passes`, distpaint.infer.refine): hand-checkable effects
on trivial models, exactness of the tiled engine and the job path against the refined function
on the whole image, the halo they need, and clear errors for bad settings.

Run: .venv/bin/python -m pytest tests/test_refine.py -q
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage
from zarr.storage import LocalStore

from distpaint.benchmark.methods import model_method
from distpaint.data.store import compressors
from distpaint.errors import ConfigError, InputError
from distpaint.infer.engine import InferConfig, output_layout, run_inference
from distpaint.infer.job import JobConfig, run_job
from distpaint.infer.bridges import bridges_only
from distpaint.infer.refine import refine, refinement_of
from distpaint.infer.tiling import whole_apply
from infer_models import FnFactory, FnPredictor, whole_reference

DISTPAINT = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "distpaint")


class ShiftDown:
    """Probability 1 one row below every input pixel: radius 1, not flip-equivariant."""

    align, receptive_halo = 1, 1

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.zeros_like(batch)
        out[..., 1:, :] = batch[..., :-1, :]
        return out


def _point(size=11):
    x = np.zeros((1, 1, size, size), np.float32)
    x[..., 5, 5] = 1
    return x


def test_views_average_the_flips_and_transposes_back_in_place():
    x = _point()
    one = refine(ShiftDown(), views=1)(x)[0, 0]
    assert one[6, 5] == 1 and one.sum() == 1
    for views in (2, 4):  # rotation by 180 degrees (and the flips): half up, half down
        p = refine(ShiftDown(), views=views)(x)[0, 0]
        assert p[6, 5] == p[4, 5] == 0.5 and p.sum() == 1
    p = refine(ShiftDown(), views=8)(x)[0, 0]  # transposed views shift sideways
    assert p[6, 5] == p[4, 5] == p[5, 6] == p[5, 4] == 0.25 and p.sum() == 1


def test_passes_repeat_the_model_on_its_own_pixels_and_widen_the_halo():
    x = _point(21)
    for passes in (1, 2, 3):
        predictor = refine(FnPredictor("dilate3"), passes=passes)
        p = predictor(x)[0, 0]
        want = ndimage.binary_dilation(x[0, 0] > 0, np.ones((3, 3)), iterations=passes)
        np.testing.assert_array_equal(p > 0.5, want)
        assert predictor.receptive_halo == passes and refinement_of(predictor) == (1, passes)
    assert refinement_of(refine(FnPredictor("pool16"), views=4, passes=2)) == (4, 2)


def _targets(path, shape, tile, shards):
    chunks, shard = output_layout(shape, tile, shards=shards)
    group = zarr.open_group(LocalStore(path), mode="w", zarr_format=3)
    return {name: group.create_array(name, shape=shape, chunks=chunks, shards=shard, dtype=bool,
                                     fill_value=False, compressors=compressors())
            for name in ("mask", "added")}


@pytest.mark.parametrize("name", ["pool16", "fires_on_empty", "dilate3"])
@pytest.mark.parametrize("views, passes", [(8, 1), (1, 3), (4, 2)])
@pytest.mark.parametrize("shape, tile", [((200, 129), 32), ((257, 300), 48)])
def test_tiled_refinement_equals_the_refined_function_on_the_whole_image(
        tmp_path, name, views, passes, shape, tile):
    rng = np.random.default_rng(tile)
    image = rng.random(shape) < 0.15
    image[:, int(shape[1] * 0.6):] = False  # empty tiles: skipped, answered by the probe
    config = InferConfig(keep="all", tile=tile, batch=3, threshold=0.2, views=views, passes=passes)
    predictor = refine(FnPredictor(name), views=views, passes=passes, threshold=0.2)
    targets = _targets(tmp_path / "out.zarr", shape, tile, shards=2 * tile)
    stats = run_inference(image, predictor, targets, config)
    want = whole_reference(image, name, threshold=0.2, views=views, passes=passes)
    np.testing.assert_array_equal(targets["mask"][:], want)
    assert stats.skipped > 0 and stats.halo >= passes * FnPredictor(name).receptive_halo
    # against the plain model: dilate3 and pool16 are symmetric under flips and transposes
    # (of the aligned, padded image), so views alone change nothing; passes, and the striped
    # fires_on_empty, change the probabilities
    plain, refined = FnPredictor(name), refine(FnPredictor(name), views=views, passes=passes,
                                               threshold=0.2)
    probs = [whole_apply(image.astype(np.float32), lambda x, p=p: p(x[None, None])[0, 0],
                         plain.align) for p in (plain, refined)]
    assert np.allclose(*probs) == (passes == 1 and name != "fires_on_empty")


def test_the_engine_refuses_a_predictor_without_the_configured_refinement():
    with pytest.raises(ConfigError, match="views=4, passes=1: wrap the predictor"):
        run_inference(np.zeros((32, 32), bool), FnPredictor("dilate3"), {},
                      InferConfig(keep="all", tile=32, views=4))


def test_a_job_with_refinements_equals_the_refined_function_and_never_resumes_a_plain_one(
        tmp_path):
    from distpaint.data.files import read_raw, write_mask_file

    mask = np.random.default_rng(5).random((300, 200)) < 0.15
    write_mask_file(tmp_path / "m.png", mask)
    job = JobConfig(shard=64, preview_size=64)
    plain = InferConfig(keep="all", tile=32, threshold=0.2)
    refined = InferConfig(keep="all", tile=32, threshold=0.2, views=2, passes=2)
    with pytest.raises(KeyboardInterrupt):  # a plain job killed half-way...
        run_job([tmp_path / "m.png"], FnFactory("fires_on_empty", interrupt_at=12),
                tmp_path / "o.png", plain, job)
    # ...is not resumed by the refined one: refused, its progress kept, until --overwrite;
    # then none of its shards is reused
    with pytest.raises(InputError, match="--views was 1, now 2"):
        run_job([tmp_path / "m.png"], FnFactory("fires_on_empty"), tmp_path / "o.png", refined, job)
    report = run_job([tmp_path / "m.png"], FnFactory("fires_on_empty"), tmp_path / "o.png",
                     refined, JobConfig(shard=64, preview_size=64, overwrite=True))
    assert report.done[0].resumed_shards == 0
    got = np.asarray(read_raw(tmp_path / "o.png")[0].compute()) != 0
    want = whole_reference(mask, "fires_on_empty", 0.2, views=2, passes=2)
    np.testing.assert_array_equal(got, want)
    assert (want != whole_reference(mask, "fires_on_empty", 0.2)).any()


@pytest.mark.parametrize("kwargs, match", [
    ({"views": 3}, "--views must be one of 1, 2, 4, 8, got 3"),
    ({"views": 0}, "--views must be one of"),
    ({"passes": 0}, "--passes must be an integer from 1 to 8, got 0"),
    ({"passes": 9}, "--passes must be an integer from 1 to 8"),
    ({"passes": 1.5}, "--passes must be an integer"),
    ({"bridges_only": True}, "--bridges-only keeps what later passes bridge: it needs --passes 2"),
    ({"passes": 2, "bridges_only": 1}, "bridges_only must be true or false, got 1"),
])
def test_bad_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        InferConfig(keep="all", **kwargs)
    with pytest.raises(ConfigError, match=match):
        refine(FnPredictor("dilate3"), **kwargs)


def test_benchmark_model_specs_take_refinements_after_a_colon(tmp_path):
    method = model_method("r=roads:views=2,passes=2")
    assert method.name == "r" and "views 2, passes 2" in method.description
    assert "bridges only" in model_method("roads:passes=2,bridges_only=1").description
    assert "bridging pieces only" in model_method("roads:keep=bridges").description
    assert "up-sampled x2 where lines are thin" in model_method("roads:upsample=auto").description
    assert "up-sampled x2," not in model_method("roads").description  # the card's factor: 1
    with pytest.raises(ConfigError, match=r"options after ':' must be views=INTEGER, passes=INTEGER, "
                                          r"threshold=NUMBER in \(0, 1\), keep=POLICY, min_confidence=auto\|NUMBER in \[0, 1\], "
                                          r"upsample=auto\|FACTOR, drop_islands=0/1 or "
                                          r"bridges_only=0/1, got 'colour=2'"):
        model_method("roads:colour=2")
    with pytest.raises(ConfigError, match="--keep must be one of"):
        model_method("roads:keep=most")
    assert "pieces of mean probability >= 0.55 only" in model_method("roads:min_confidence=0.55").description
    assert "mean probability" not in model_method("roads").description  # the card names no floor
    assert "floor chosen per mask by a self-check" in model_method("roads:min_confidence=auto").description
    for bad in ("threshold=1.5", "threshold=x", "views=2.5", "drop_islands=2", "min_confidence=1.5"):
        with pytest.raises(ConfigError, match=f"got '{bad}'"):
            model_method(f"roads:{bad}")
    # a model's own threshold overrides the run's, and decides: a higher one adds no more pixels
    mask = np.zeros((64, 64), bool)
    mask[32, 4:28] = mask[32, 36:60] = True
    low, high = model_method("roads:threshold=0.2"), model_method("roads:threshold=0.8", threshold=0.2)
    assert "p > 0.2," in low.description and "p > 0.8," in high.description
    added_low, added_high = low.repair(mask) & ~mask, high.repair(mask) & ~mask
    assert added_low.sum() > added_high.sum() and not (added_high & ~added_low).any()
    # drop_islands: the plain repair without its added components that touch no input
    from distpaint.infer.islands import drop_islands

    mask[50:60, 10:12] = True  # something for the model to paint around
    # (keep=all: the card's default keep policy, bridges, would drop more than islands)
    plain, dropped = model_method("roads:threshold=0.2,keep=all"), model_method("roads:threshold=0.2,drop_islands=1")
    assert "islands dropped" in dropped.description
    np.testing.assert_array_equal(dropped.repair(mask), drop_islands(plain.repair(mask), mask))


def test_cli_refuses_bad_views_with_one_line(tmp_path):
    from distpaint.data.files import write_mask_file

    write_mask_file(tmp_path / "m.png", np.eye(32, dtype=bool))
    proc = subprocess.run([DISTPAINT, "infer", str(tmp_path / "m.png"),
                           "--model", "roads", "--out", str(tmp_path / "o.png"), "--views", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--views must be one of 1, 2, 4, 8, got 3" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.png").exists()
    proc = subprocess.run([DISTPAINT, "infer", str(tmp_path / "m.png"), "--model", "roads",
                           "--out", str(tmp_path / "o.png"), "--min-confidence", "1.5"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--min-confidence must be auto or in [0, 1], got 1.5" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.png").exists()


def _hand_made() -> tuple[np.ndarray, np.ndarray]:
    """(first, later): the first output holds two bars with a gap and a stub; a later pass
    adds the bridge of the gap, a spur off the stub, a thickening along a bar, an island and a
    piece at the window's bottom edge."""
    first = np.zeros((20, 30), bool)
    first[5, 2:10] = first[5, 15:25] = True  # two bars, gap at columns 10..14
    first[12:15, 5] = True                  # a stub
    later = first.copy()
    later[5, 10:15] = True                  # bridge: touches both bars
    later[15:18, 5] = True                  # spur: touches the stub once
    later[6, 16:24] = True                  # thickening: one long contact with the bar
    later[10, 20:23] = True                 # island
    later[17:20, 27] = True                 # reaches the bottom edge, touches nothing
    return first, later


def test_bridges_only_keeps_later_pieces_that_join_the_first_output_twice():
    """Of the hand-made case only the bridge stays, and the edge piece where that edge is open
    (the image continues beyond it)."""
    first, later = _hand_made()
    want = first.copy()
    want[5, 10:15] = True
    np.testing.assert_array_equal(bridges_only(first, later), want)
    want[17:20, 27] = True
    np.testing.assert_array_equal(bridges_only(first, later, open_edges=(False, True, False, False)), want)
    assert not bridges_only(first, first).__xor__(first).any()


class _Scripted:
    """A predictor that answers its calls with given probabilities, in order."""

    align, receptive_halo = 1, 1

    def __init__(self, *outputs: np.ndarray) -> None:
        self.outputs, self.inputs = list(outputs), []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.inputs.append(batch.copy())
        return self.outputs.pop(0)


def test_bridges_only_passes_keep_the_first_pass_plus_what_joins_it():
    """Two passes answering the hand-made case above: the result is pass 1's probabilities
    except on the bridge (pass 2's), and on the piece at the window's edge, which a window
    cannot judge (the image may continue there)."""
    first, later = _hand_made()
    x = np.zeros((1, 1, *first.shape), np.float32)
    x[0, 0, 5, 2:10] = 1  # the input: one bar; pass 1 adds the other bar and the stub
    p1 = np.where(first, 0.9, 0.2)[None, None].astype(np.float32)
    p2 = np.where(later, 0.8, 0.1)[None, None].astype(np.float32)
    model = _Scripted(p1, p2)
    predictor = refine(model, passes=2, bridges_only=True)
    assert predictor.receptive_halo == 2 and refinement_of(predictor) == (1, 2)
    p = predictor(x)[0, 0]
    np.testing.assert_array_equal(model.inputs[1][0, 0] > 0.5, first)  # pass 2 saw pass 1's pixels
    kept = np.zeros_like(first)
    kept[5, 10:15] = kept[17:20, 27] = True
    np.testing.assert_array_equal(p, np.where(kept, p2[0, 0], p1[0, 0]))
