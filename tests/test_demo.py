"""Tests of `distpaint demo` (distpaint.demo): the whole demo at tiny size once (local Ray,
2 training workers, MLflow, the shipped roads model), the report's contents checked against
the stores, the output-folder rules, the extension point (the other tests skip training and
the shipped model to stay fast).

Run: .venv/bin/python -m pytest tests/test_demo.py -q
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from distpaint.data.store import MaskStore
from distpaint.demo import INPUT, DemoConfig, StoreRepair, baseline_repairs, run_demo
from distpaint.demo.outdir import MARKER
from distpaint.demo.report import HEADLINE, RED, WHITE, preview
from distpaint.errors import ConfigError
from distpaint.metrics import evaluate

pytestmark = pytest.mark.cost(35)  # seconds on 2 idle cores: started first by `make test`

ROOT = Path(__file__).resolve().parents[1]
SIZE, COUNT = 256, 2
TRAIN_STEPS = 4
METHODS = ["closing", "linking", "shipped", "trained"]


def _quick(**kwargs) -> DemoConfig:
    """A demo without the training run and the shipped model (seconds)."""
    return DemoConfig(**{"train_steps": 0, "model": None, **kwargs})


def _args(*args: str) -> list[str]:
    from distpaint.cli import app

    is_group = hasattr(typer.main.get_command(app), "list_commands")
    return (["demo"] if is_group else []) + list(args)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One CLI run at tiny size, shared by the report checks: (out folder, CLI output)."""
    from distpaint.cli import app

    out = tmp_path_factory.mktemp("demo") / "demo_out"
    result = CliRunner().invoke(app, _args("--out", str(out), "--size", str(SIZE),
                                           "--count", str(COUNT), "--seed", "5",
                                           "--train-steps", str(TRAIN_STEPS), "--workers", "2",
                                           "--model", "roads"))
    assert result.exit_code == 0, result.output
    return out, result.output


def test_prints_the_report_path_last(demo_run):
    out, output = demo_run
    assert output.strip().splitlines()[-1] == f"report: {(out / 'report').absolute()}"
    assert "repair with linking" in output and "evaluate closing" in output
    assert f"train GAN-GL for {TRAIN_STEPS} steps on 2 Ray workers" in output
    ui = f"MLflow UI of the training run: mlflow ui --backend-store-uri sqlite:///{out / 'run' / 'mlflow.db'}"
    assert ui in output


def test_training_run_logged_to_mlflow_and_held_out_masks_never_trained_on(demo_run):
    import sqlite3

    out, _ = demo_run
    db = sqlite3.connect(out / "run" / "mlflow.db")
    runs = db.execute("select run_uuid, status from runs").fetchall()
    assert len(runs) == 1 and runs[0][1] == "FINISHED"
    steps = db.execute("select max(step) from metrics where run_uuid = ?", (runs[0][0],)).fetchone()[0]
    assert steps == TRAIN_STEPS
    params = dict(db.execute("select key, value from params").fetchall())
    assert params["variant"] == "gan-gl" and params["data.kind"] == "roads"
    train = MaskStore.open(out / "stores" / "train.zarr")
    truth = MaskStore.open(out / "stores" / "truth.zarr")
    held_out = {truth.attrs(n)["seed"] for n in truth.names()}
    assert held_out.isdisjoint(train.attrs(n)["seed"] for n in train.names())


def test_stores_hold_the_pipeline(demo_run):
    out, _ = demo_run
    stores = {name: MaskStore.open(out / "stores" / f"{name}.zarr")
              for name in ("truth", "corrupted", "closing", "linking")}
    names = [f"roads-{i:04d}" for i in range(COUNT)]
    for store in stores.values():
        assert store.names() == names
    for name in names:
        truth = stores["truth"].array(name)[:]
        assert truth.shape == (SIZE, SIZE) and truth.any()
        assert stores["truth"].attrs(name)["base_seed"] == 5
        c = stores["corrupted"]
        inp, gaps = c.array(name)[:], c.array(name, "gaps")[:]
        np.testing.assert_array_equal(c.array(name, "truth")[:], truth)
        np.testing.assert_array_equal(inp, truth & ~gaps)
        assert gaps.any() and c.attrs(name)["gap_config"]["kind"] == "mix"
        for method in METHODS:
            repaired = MaskStore.open(out / "stores" / f"{method}.zarr").array(name)[:]
            assert (repaired >= inp).all()  # every method only adds pixels


def test_metrics_json_matches_an_independent_evaluation(demo_run):
    out, _ = demo_run
    doc = json.loads((out / "report" / "metrics.json").read_text())
    assert doc["format"] == "distpaint-demo-report"
    assert doc["config"]["size"] == SIZE and doc["config"]["count"] == COUNT
    assert list(doc["methods"]) == [INPUT, *METHODS]
    corrupted = MaskStore.open(out / "stores" / "corrupted.zarr")
    for method, payload in doc["methods"].items():
        assert payload["format"] == "distpaint-evaluation"
        assert sorted(payload["samples"]) == corrupted.names()
        store = corrupted if method == INPUT else MaskStore.open(out / "stores" / f"{method}.zarr")
        for name, metrics in payload["samples"].items():
            inp, truth = corrupted.array(name)[:], corrupted.array(name, "truth")[:]
            pred = store.array(name)[:]
            assert metrics["pixel_diff"] == int((pred != truth).sum())
            assert metrics["added_pixels"] == int((pred & ~inp).sum())
            again = evaluate(pred, truth, input=inp)
            for key in ("cldice", "component_diff", "rel_pixel_diff", "skeleton_recall_gaps"):
                assert metrics[key] == pytest.approx(again[key], nan_ok=True), (method, key)
    assert all(m["rel_pixel_diff"] == 0 for m in doc["methods"][INPUT]["samples"].values())
    mean = doc["methods"]["linking"]["aggregate"]["pixel_diff"]["mean"]
    values = [m["pixel_diff"] for m in doc["methods"]["linking"]["samples"].values()]
    assert mean == pytest.approx(np.mean(values))


def test_markdown_table_lists_every_method_and_headline_metric(demo_run):
    out, _ = demo_run
    text = (out / "report" / "metrics.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| method |"))
    for key in HEADLINE:
        assert key in header
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert {INPUT, *METHODS} <= set(rows)
    assert len(rows["closing"].split("|")) == len(HEADLINE) + 3  # label + metrics, with edges
    for name in (f"roads-{i:04d}" for i in range(COUNT)):
        for view in ("before", "truth", *METHODS):
            link = f"images/{name}/{view}.png"
            assert f"]({link})" in text and (out / "report" / link).is_file()


def test_pngs_show_input_white_and_added_pixels_red(demo_run):
    out, _ = demo_run
    corrupted = MaskStore.open(out / "stores" / "corrupted.zarr")
    images = out / "report" / "images"
    for name in corrupted.names():
        inp, gaps = corrupted.array(name)[:], corrupted.array(name, "gaps")[:]
        before = iio.imread(images / name / "before.png")
        assert before.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal((before == WHITE).all(-1), inp)
        assert ((before != 0).any(-1) == (inp | gaps)).all()  # gaps drawn, in grey
        for method in METHODS:
            pred = MaskStore.open(out / "stores" / f"{method}.zarr").array(name)[:]
            after = iio.imread(images / name / f"{method}.png")
            np.testing.assert_array_equal((after == WHITE).all(-1), inp)
            np.testing.assert_array_equal((after == RED).all(-1), pred & ~inp)
        truth = iio.imread(images / name / "truth.png")
        np.testing.assert_array_equal((truth == WHITE).all(-1), corrupted.array(name, "truth")[:])


def test_preview_any_pools_large_masks():
    import dask.array as da

    mask = np.zeros((1001, 702), bool)
    mask[1000, 0] = True  # in the ragged edge: still shown
    mask[5, 333] = True
    small = preview(da.from_array(mask, chunks=256), 300)
    assert small.shape == (251, 176)  # factor ceil(1001 / 300) = 4
    assert small[1, 83] and small[250, 0] and small.sum() == 2
    np.testing.assert_array_equal(preview(da.from_array(mask, chunks=256), 1001), mask)


def test_rerun_replaces_and_refuses_other_folders(tmp_path):
    out = tmp_path / "d"
    run_demo(_quick(out=out, size=128, count=1, seed=1), log=lambda _: None)
    first = MaskStore.open(out / "stores" / "truth.zarr").attrs("roads-0000")["seed"]
    (out / "report" / "stale.txt").write_text("from the first run")
    run_demo(_quick(out=out, size=128, count=1, seed=2), log=lambda _: None)
    assert MaskStore.open(out / "stores" / "truth.zarr").attrs("roads-0000")["seed"] != first
    assert not (out / "report" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # nothing left aside

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not write .*refusing to overwrite"):
        run_demo(_quick(out=mine, size=128, count=1))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        run_demo(_quick(out=a_file, size=128, count=1))
    empty = tmp_path / "empty"
    empty.mkdir()
    run_demo(_quick(out=empty, size=128, count=1), log=lambda _: None)
    assert (empty / MARKER).is_file() and (empty / "report" / "metrics.md").is_file()


def test_failed_run_keeps_the_previous_report_and_extra_methods_join_the_report(tmp_path):
    out = tmp_path / "d"
    config = _quick(out=out, size=128, count=1)

    def copy_input(src: Path, dst: Path) -> None:  # a stand-in "model": returns its input
        shutil.copytree(src, dst)

    repairs = [*baseline_repairs(config), StoreRepair("identity", "returns the input", copy_input)]
    result = run_demo(config, repairs, log=lambda _: None)
    assert list(result.summaries) == [INPUT, "closing", "linking", "identity"]
    assert result.summaries["identity"]["pixel_diff"].mean == result.summaries[INPUT]["pixel_diff"].mean
    assert (out / "report" / "images" / "roads-0000" / "identity.png").is_file()
    before = (out / "report" / "metrics.md").read_text()

    def broken(src: Path, dst: Path) -> None:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        run_demo(_quick(out=out, size=128, count=1, seed=9),
                 [StoreRepair("broken", "fails", broken)], log=lambda _: None)
    assert (out / "report" / "metrics.md").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]

    with pytest.raises(ConfigError, match="unique and not input"):
        run_demo(config, [StoreRepair("input", "clash", copy_input)])


@pytest.mark.parametrize("args, message", [
    (["--size", "10"], "demo --size must be an integer >= 64, got 10"),
    (["--count", "0"], "demo --count must be an integer >= 1, got 0"),
    (["--seed", "-1"], "demo --seed must be an integer >= 0, got -1"),
    (["--train-steps", "-1"], "demo --train-steps must be an integer >= 0, got -1"),
    (["--workers", "0"], "demo --workers must be an integer >= 1, got 0"),
    (["--model", "nosuch"], "demo --model 'nosuch' is not a shipped model"),
])
def test_bad_options(tmp_path, args, message):
    from distpaint.cli import app

    result = CliRunner().invoke(app, _args("--out", str(tmp_path / "d"), *args))
    assert isinstance(result.exception, ConfigError) and message in str(result.exception)
    assert not (tmp_path / "d").exists()


def test_console_script_runs_the_demo(tmp_path):
    """`make demo` runs `.venv/bin/distpaint demo`: the real entry point, at tiny size."""
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "distpaint"), *_args(
        "--out", "demo_out", "--size", "128", "--count", "1", "--train-steps", "0",
        "--model", "none")], cwd=tmp_path,
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"report: {tmp_path / 'demo_out' / 'report'}"
    assert (tmp_path / "demo_out" / "report" / "metrics.md").is_file()
