"""`distpaint infer` on the command line, with a real (tiny, trained) checkpoint: outputs and
progress bar, one-line errors (exit 2), a bad file in an archive skipped (exit 1), and a real
SIGKILL of a single-mask run: no half-written output, and re-running the same command finishes
the job to the bytes of an uninterrupted run.

Run: .venv/bin/python -m pytest tests/test_infer_cli.py -q
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from distpaint.data.files import read_raw, write_mask_file
from distpaint.data.synth import synth_array
from distpaint.infer.engine import InferConfig
from distpaint.infer.job import JobConfig, run_job
from distpaint.infer.predictor import resolve_model
from distpaint.infer.tiling import whole_apply

pytestmark = pytest.mark.cost(110)  # seconds on 2 idle cores: started first by `make test`

ROOT = Path(__file__).resolve().parents[1]
DISTPAINT = str(ROOT / ".venv" / "bin" / "distpaint")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from infer_models import tiny_checkpoint_dir

    return tiny_checkpoint_dir(tmp_path_factory.getbasetemp())


def _cli(*args, cwd, **kw):
    # a wide table: the report folds long paths at 80 columns, and the assertions look for names
    kw["env"] = {**kw.get("env", os.environ), "COLUMNS": "250"}
    return subprocess.run([DISTPAINT, "infer", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, **kw)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_cli_repairs_a_png_with_progress_and_report(tmp_path, ckpt):
    mask = synth_array("roads", (300, 260), 1)
    write_mask_file(tmp_path / "roads.png", mask)
    proc = _cli("roads.png", "--model", ckpt, "--out", "fixed.png", "--threshold", "0.4878",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "tiles" in proc.stderr and "Mpx/s" in proc.stderr  # the progress bar
    assert "roads.png" in proc.stdout and "1 mask(s)" in proc.stdout
    predictor = resolve_model(ckpt)
    probs = whole_apply(mask, lambda x: predictor(x[None, None])[0, 0], predictor.align)
    raw = (probs > np.float32(0.4878)) | mask
    assert 0 < (raw & ~mask).sum() < mask.size / 2
    # the default keeps only the bridging pieces (one tile: the whole image, so the tiled rule
    # equals the whole-image one)
    from distpaint.infer.keep import keep_added

    want = keep_added(raw, mask, "bridges")
    assert (want & ~mask).sum() < (raw & ~mask).sum()
    out = np.asarray(read_raw(tmp_path / "fixed.png")[0].compute())
    np.testing.assert_array_equal(out == 255, want)
    added = np.asarray(read_raw(tmp_path / "fixed.added.png")[0].compute())
    np.testing.assert_array_equal(added == 255, want & ~mask)
    assert (tmp_path / "fixed.preview.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fixed.added.png", "fixed.png", "fixed.preview.png", "roads.png"]
    # --drop-islands (= --keep attached): the raw repair without its added components touching
    # no input; --keep all: the raw repair
    from distpaint.infer.islands import drop_islands

    proc = _cli("roads.png", "--model", ckpt, "--out", "sub/kept.png", "--threshold", "0.4878",
                "--drop-islands", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    kept = np.asarray(read_raw(tmp_path / "sub" / "kept.png")[0].compute()) == 255
    np.testing.assert_array_equal(kept, drop_islands(raw, mask))
    proc = _cli("roads.png", "--model", ckpt, "--out", "sub/all.png", "--threshold", "0.4878",
                "--keep", "all", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    every = np.asarray(read_raw(tmp_path / "sub" / "all.png")[0].compute()) == 255
    np.testing.assert_array_equal(every, raw)


def test_cli_errors_are_one_line_exit_2_and_bad_archive_files_exit_1(tmp_path, ckpt):
    write_mask_file(tmp_path / "m.png", synth_array("roots", (100, 100), 2))
    cases = [
        (["m.png", "--model", "nope", "--out", "o.png"],
         "error: model 'nope' does not exist; available: "),
        (["m.png", "--model", ckpt, "--out", "o.png", "--sample", "--threshold", "0.3"],
         "error: --threshold and --sample exclude each other"),
        (["m.png", "--model", ckpt, "--out", "m.png", "--overwrite"],
         "error: " + str(tmp_path / "m.png") + " would overwrite the input"),
        (["missing.png", "--model", ckpt, "--out", "o.png"],
         "error: missing.png: no such file or directory"),
    ]
    for args, start in cases:
        proc = _cli(*args, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(start), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]
    (tmp_path / "arch").mkdir()
    write_mask_file(tmp_path / "arch" / "a.png", synth_array("roots", (100, 100), 3))
    (tmp_path / "arch" / "b.tif").write_bytes(b"II*\x00garbage")
    proc = _cli("arch", "--model", ckpt, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "skipped:" in proc.stderr and "b.tif: cannot read as TIFF" in proc.stderr
    assert (tmp_path / "out" / "a.png").is_file() and not (tmp_path / "out" / "b.tif").exists()


def _wait_for_shards(manifest: Path, proc: subprocess.Popen, n: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = sum(len(p.read_text().splitlines()) for p in manifest.glob("*.jsonl")) \
            if manifest.is_dir() else 0
        if lines >= n:
            return lines
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {n} shards in the manifest after {timeout} s")


def test_sigkill_leaves_no_output_and_the_same_command_resumes_to_the_same_bytes(tmp_path, ckpt):
    mask = synth_array("roads", (1024, 768), 5)
    write_mask_file(tmp_path / "big.tif", mask)
    args = ["big.tif", "--model", ckpt, "--out", "run/big.tif", "--tile", "128", "--shard",
            "256", "--threshold", "0.4878", "--json"]
    proc = subprocess.Popen([DISTPAINT, "infer", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    done = _wait_for_shards(tmp_path / "run" / ".big.tif.distpaint-infer" / "manifest", proc, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done < 12  # 12 shards in all: killed part-way
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".big.tif.distpaint-infer"]
    again = _cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    (result,) = json.loads(again.stdout)["done"]
    assert result["resumed_shards"] >= 2
    run_job([tmp_path / "big.tif"], ckpt, tmp_path / "ref" / "big.tif",
            InferConfig(tile=128, batch=1, threshold=0.4878), JobConfig(shard=256))
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")
    assert (_files(tmp_path / "run")["big.added.tif"] != _files(tmp_path / "run")["big.tif"])


def test_tiny_and_one_pixel_wide_masks_gain_no_fill_without_a_gap(tmp_path):
    """Masks smaller than the shipped roads model's receptive field (288 px) and 1xN masks.
    The engine pads them only to the model's alignment (16), with zeros, as whole-image
    inference does. With `--keep all` the model thickens the short 1-px line of the 10x10
    mask (74 of its 92 background pixels; 86 when the same 10x10 sits in the middle of a
    256x256 zero image, so it is the model's answer to a short thin line, not the padding);
    the default `--keep bridges` drops such fill: nothing joins the input at two places."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    masks = {"t10.png": np.zeros((10, 10), bool), "row.png": np.zeros((1, 40), bool),
             "col.png": np.zeros((40, 1), bool), "dot.png": np.ones((1, 1), bool)}
    masks["t10.png"][4, 1:9] = True
    masks["row.png"][0, 5:15] = masks["row.png"][0, 20:35] = True
    masks["col.png"][5:15, 0] = True
    for name, mask in masks.items():
        write_mask_file(tiny / name, mask)
    for keep, out in (("bridges", "kept"), ("all", "raw")):
        proc = _cli("tiny", "--model", "roads", "--out", out, "--keep", keep, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    for name, mask in masks.items():
        kept = np.asarray(read_raw(tmp_path / "kept" / name)[0].compute()) != 0
        assert kept.shape == mask.shape and (kept >= mask).all()
        assert (kept & ~mask).sum() <= 2, name
        raw = np.asarray(read_raw(tmp_path / "raw" / name)[0].compute()) != 0
        if 1 in mask.shape:  # 1xN: no room to thicken, the raw output gains a pixel at most
            assert (raw & ~mask).sum() <= 3, name
