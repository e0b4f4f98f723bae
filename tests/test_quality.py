"""The quality benchmark: bench/quality.py smoke run (the real code path at tiny size), known
answers through the whole harness (identity 0, truth 1), the method registry with a trained
checkpoint (patch and tiled whole-mask repair agree), figures and result files."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import dask.array as da
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scipy import ndimage

from distpaint.benchmark.figures import ADDED, MISSING, REMOVED, grid, repair_rgb
from distpaint.benchmark.methods import (
    Method,
    get_method,
    method_names,
    model_method,
    register_method,
    resolve_methods,
)
from distpaint.benchmark.quality import (
    HARM_METRICS,
    TABLE_METRICS,
    QualityConfig,
    figure,
    markdown,
    no_harm_share,
    payload,
    run_quality,
    tables,
)
from distpaint.data.benchset import BenchsetConfig, make_benchset
from distpaint.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    config = BenchsetConfig.small(seed=2, kinds=("roads", "sketch"))
    return make_benchset(tmp_path_factory.mktemp("q") / "set", config, log=lambda _: None)


def oracle(bench) -> Method:
    """A method that returns the truth of whatever corrupted input it is given (looked up in
    the benchmark stores): the perfect repair, to check the harness scores it 1."""
    table: dict[bytes, np.ndarray] = {}
    for level in bench.levels():
        for kind in bench.kinds(level):
            store = bench.store(level, kind)
            for name in store.names():
                inp = np.asarray(store.array(name, "mask")[...])
                table[inp.tobytes()] = np.asarray(store.array(name, "truth")[...])

    def repair(mask: np.ndarray) -> np.ndarray:
        return table[np.asarray(mask, bool).tobytes()]

    return Method("truth", "the ground truth", repair=repair)


def test_smoke_run_of_bench_quality(tmp_path):
    """`distpaint quality --smoke-test` (the command behind `bench/quality.py`) builds a tiny
    set and runs every level, kind, method, t-test and figure: the identity scores 0 and never
    adds a pixel."""
    out = tmp_path / "q"
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "distpaint"), "quality", "--smoke-test",
                           "--json", "--out", str(out), "--kinds", "roads", "vessels"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["format"] == "distpaint-quality" and list(doc["methods"]) == ["identity", "closing", "linking"]
    for level in ("patch", "whole"):
        for kind in ("roads", "vessels"):
            cell = doc["results"][level][kind]
            ident = cell["identity"]["aggregate"]
            assert ident["rel_pixel_diff"]["mean"] == 0.0 and ident["mse_gaps"]["mean"] == 1.0
            assert ident["false_fill"]["mean"] == 0.0 and ident["added_pixels"]["mean"] == 0.0
            assert ident["rel_component_diff"]["n"] == 0 or ident["rel_component_diff"]["mean"] == 0.0
            for method in ("closing", "linking"):
                agg = cell[method]["aggregate"]
                assert all(agg[k]["n"] >= 1 for k in ("mse", "cldice")), method
                assert agg["added_pixels"]["mean"] > 0  # both baselines fill something
                assert cell[method]["repair_seconds"] > 0
            assert "samples" not in cell["identity"]  # --json prints aggregates only
            # harm: the identity never harms; no baseline erases input pixels
            assert cell["identity"]["no_harm"]["share"] == 1.0
            assert all(cell[m]["aggregate"]["input_removed"]["mean"] == 0 for m in cell)
            assert all(0 <= cell[m]["no_harm"]["share"] <= 1 for m in cell)
        tests = doc["ttest"]["tests"][level]["roads"]
        assert {t["metric"] for t in tests} >= set(TABLE_METRICS)
    assert doc["harm_metrics"] == list(HARM_METRICS)
    full = json.loads((out / "quality.json").read_text())
    assert len(full["results"]["patch"]["roads"]["linking"]["samples"]) == 6
    assert "| identity |" in (out / "quality.md").read_text()
    assert "**whole level: harm**" in (out / "quality.md").read_text()
    for level in ("patch", "whole"):
        image = iio.imread(out / f"quality_{level}.png")
        assert image.ndim == 3 and image.shape[0] > 2 * 512  # two kinds, 512-px panels
        assert (image == ADDED).all(axis=-1).any()  # the baselines' additions are drawn red


def test_quality_targets_pair_methods_across_files_of_one_benchmark_set(tmp_path):
    """bench/quality_targets.py merges results of the same set (a method evaluated later) and
    refuses to pair results of different sets."""
    for name, methods in (("a", ["identity", "closing"]), ("b", ["linking"])):
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "quality.py"), "--smoke-test",
                               "--out", str(tmp_path / name), "--kinds", "roads",
                               "--methods", *methods],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    files = [str(tmp_path / n / "quality.json") for n in ("a", "b")]
    targets = [sys.executable, str(ROOT / "bench" / "quality_targets.py")]
    proc = subprocess.run([*targets, *files, "--model", "linking", "--against", "identity", "closing",
                           "--roads-model", "", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checks = json.loads(proc.stdout)["checks"]
    assert {(c["level"], c["check"]) for c in checks} >= {
        ("patch", "linking beats identity on mse_gaps"), ("whole", "linking beats closing on mse_gaps")}
    # linking fills gaps, the identity never does: on 6 patches that is a significant win
    (win,) = [c for c in checks if c["level"] == "patch" and c["check"] == "linking beats identity on mse_gaps"]
    assert win["linking"] < win["identity"] == 1.0
    other = json.loads((tmp_path / "b" / "quality.json").read_text())
    other["benchset"]["digest"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    proc = subprocess.run([*targets, files[0], str(tmp_path / "other.json"), "--model", "closing"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "scored on another benchmark set" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_truth_scores_one_and_identity_zero_through_the_harness(bench):
    methods = [get_method("identity"), oracle(bench)]
    result = run_quality(bench, methods, QualityConfig(ttest=("identity", "truth")),
                         log=lambda _: None)
    for level in ("patch", "whole"):
        for kind in ("roads", "sketch"):
            cells = result.cells[level][kind]
            store = bench.store(level, kind)
            for name, cell in cells.items():
                assert len(cell.samples) == (6 if level == "patch" else 1)
                for sample, metrics in cell.samples.items():
                    want = 1.0 if name == "truth" else 0.0
                    assert metrics["rel_pixel_diff"] == want
                    assert math.isnan(metrics["rel_component_diff"]) or \
                        metrics["rel_component_diff"] == want
                    assert metrics["skeleton_recall_gaps"] == want
                    assert metrics["mse_gaps"] == 1.0 - want
                    assert metrics["false_fill"] == 0.0
                    # neither the identity nor the truth harms
                    assert metrics["no_harm"] == 1.0
                    assert metrics["spur_length"] == metrics["thickening"] == 0
                    assert metrics["input_removed"] == 0
                    # restoring a piece the gaps erased whole is an island (a blind repair
                    # cannot know of it), so the truth has exactly those
                    truth, inp = (np.asarray(store.array(sample, layer)[...], bool)
                                  for layer in ("truth", "mask"))
                    labels, n = ndimage.label(truth, structure=np.ones((3, 3), bool))
                    erased = n - len(np.unique(labels[inp]))
                    assert metrics["islands"] == (erased if name == "truth" else 0)
                    if name == "truth":
                        assert metrics["mse"] == 0.0 and metrics["cldice"] == 1.0
                        assert metrics["cldice_gain"] >= 0.0
            if level == "patch":
                by_metric = {t.metric: t for t in result.ttests[level][kind]}
                assert by_metric["rel_pixel_diff"].n == 6
                assert math.isnan(by_metric["rel_pixel_diff"].p)  # constant difference: undefined
                assert by_metric["mse"].p < 0.05  # the truth is significantly better
    doc = payload(result)
    json.dumps(doc, allow_nan=False)  # NaN written as null
    assert doc["benchset"]["digest"] == bench.digest
    text = markdown(result)
    assert "**patch level, roads** (N = 6)" in text and "| truth | 0 (0) |" in text
    assert "| roads | truth | 100% (6/6) |" in text and "| sketch | identity | 100% (1/1) |" in text
    assert doc["results"]["patch"]["roads"]["truth"]["no_harm"] == {"share": 1.0, "masks": 6, "n": 6}
    assert any("harm" in str(t.title) for t in tables(result))
    assert figure(result, "whole").shape[1] > 4 * 512  # input, truth and two methods


def test_no_harm_share_counts_the_masks_without_harm(bench):
    """A method that paints an island on every second mask and returns the others unchanged:
    the share without harm is the unchanged ones."""
    harmed: dict[bytes, bool] = {}

    def island_on_every_second(mask: np.ndarray) -> np.ndarray:
        out = mask.copy()
        harm = len(harmed) % 2 == 1
        if harm:  # a 3x3 island where the input is empty 2 px around
            free = ~ndimage.binary_dilation(mask, iterations=3)
            y, x = np.argwhere(free[2:-2, 2:-2])[0] + 2
            out[y - 1 : y + 2, x - 1 : x + 2] = True
        harmed[mask.tobytes()] = harm
        return out

    method = Method("odd", "islands on every second mask", repair=island_on_every_second)
    result = run_quality(bench, [method], QualityConfig(levels=("patch",), kinds=("roads",)),
                         log=lambda _: None)
    cell = result.cells["patch"]["roads"]["odd"]
    store = bench.store("patch", "roads")
    expected = {n: 0.0 if harmed[np.asarray(store.array(n, "mask")[...], bool).tobytes()] else 1.0
                for n in cell.samples}
    assert {n: m["no_harm"] for n, m in cell.samples.items()} == expected
    assert {n: m["islands"] for n, m in cell.samples.items()} == {
        n: int(v == 0.0) for n, v in expected.items()}
    ok = int(sum(expected.values()))
    assert ok == 3 and len(expected) == 6
    assert no_harm_share(cell) == {"share": 0.5, "masks": 3, "n": 6}
    assert "| roads | odd | 50% (3/6) |" in markdown(result)


def test_limit_kinds_and_bad_configs(bench):
    result = run_quality(bench, [get_method("identity")],
                         QualityConfig(levels=("patch",), kinds=("sketch",), limit=2),
                         log=lambda _: None)
    assert list(result.cells) == ["patch"] and list(result.cells["patch"]) == ["sketch"]
    assert len(result.cells["patch"]["sketch"]["identity"].samples) == 2
    with pytest.raises(ConfigError, match="not among the methods"):
        run_quality(bench, [get_method("identity")], QualityConfig(ttest=("identity", "x")))
    with pytest.raises(ConfigError, match="levels"):
        QualityConfig(levels=("tile",))


def test_method_registry():
    assert method_names()[:3] == ["identity", "closing", "linking"]
    closing = get_method("closing:radius=5")
    assert closing.name == "closing:radius=5" and "radius 5" in closing.description
    mask = np.zeros((40, 60), bool)
    mask[15:26, 5:25] = mask[15:26, 29:55] = True  # an 11-px bar with a 4-px gap
    assert closing.repair(mask)[20, 25:29].all() and not get_method("identity").repair(mask)[20, 26]
    np.testing.assert_array_equal(closing.repair_many(mask[None])[0], closing.repair(mask))
    lazy = da.from_array(mask, chunks=20)
    np.testing.assert_array_equal(np.asarray(closing.repair_whole(lazy, None)), closing.repair(mask))
    with pytest.raises(ConfigError, match="unknown method 'dilate'"):
        get_method("dilate")
    with pytest.raises(ConfigError, match="unknown option"):
        get_method("linking:radius=3")
    with pytest.raises(ConfigError, match="key=value"):
        get_method("closing:5")
    with pytest.raises(ConfigError, match="named twice"):
        resolve_methods(["closing", "closing"])
    with pytest.raises(ConfigError, match="already registered"):
        register_method("closing", lambda: closing)
    register_method("test-invert", lambda: Method("test-invert", "x", repair=lambda m: ~m),
                    replace=True)
    assert get_method("test-invert").repair(mask).sum() == mask.size - mask.sum()


def test_model_method_from_a_checkpoint(tmp_path):
    """A trained checkpoint plugs in as a method: the patch path (whole-image forward) and the
    tiled whole-mask path (the streaming engine, several tiles) give the same pixels."""
    from distpaint.train.config import load_config, packaged_config
    from distpaint.train.local import train_local

    torch.set_num_threads(1)
    run = tmp_path / "run"
    train_local(load_config(packaged_config("tiny")), run, max_steps=1)
    ckpt = next((run / "checkpoints").iterdir())
    method = model_method(f"tiny={ckpt}", tile=64, threshold=0.5)
    assert method.name == "tiny"
    rng = np.random.default_rng(0)
    mask = np.zeros((150, 170), bool)
    for _ in range(12):
        y, x = rng.integers(0, 140), rng.integers(0, 160)
        mask[y : y + 2, x : x + 10] = True
    patch = method.repair(mask)
    assert patch.shape == mask.shape and not (mask & ~patch).any()  # input kept
    whole = np.asarray(method.repair_whole(da.from_array(mask, chunks=64), tmp_path)[...])
    np.testing.assert_array_equal(whole, patch)
    batch = method.repair_many(np.stack([mask, mask[::-1]]))
    np.testing.assert_array_equal(batch[0], patch)
    labelled = model_method(str(ckpt))
    assert labelled.name == f"{run.name}/checkpoints/{ckpt.name}"


def test_repair_colours_and_grid():
    inp = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0]], bool)
    truth = np.array([[1, 1, 0, 1]], bool)
    rgb = repair_rgb(inp, pred, truth)
    assert tuple(rgb[0, 1]) == REMOVED and tuple(rgb[0, 2]) == ADDED
    assert tuple(rgb[0, 3]) == MISSING and tuple(rgb[0, 0]) == (255, 255, 255)
    image = grid([("a", [("x", rgb), ("y", rgb)])], scale=3)
    assert image.dtype == np.uint8 and image.shape[1] > 2 * 12
