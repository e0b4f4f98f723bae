"""CLI round trips: baseline -> evaluate (batch and single) -> JSON -> compare."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from distpaint.cli import app
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError
from distpaint.metrics import evaluate
from distpaint.metrics.report import read_samples

runner = CliRunner()


def cross(k: int, gap_at: int):
    """A '+' of 3-px lines with one 6-px gap in the horizontal bar: (truth, input, gaps)."""
    truth = np.zeros((96, 128), bool)
    truth[40 + k : 43 + k, 5:120] = True
    truth[8:90, 70:73] = True
    gaps = np.zeros_like(truth)
    gaps[:, gap_at : gap_at + 6] = True
    gaps &= truth
    return truth, truth & ~gaps, gaps


@pytest.fixture
def ref_store(tmp_path):
    store = MaskStore.create(tmp_path / "ref.zarr")
    for k in range(4):
        truth, inp, gaps = cross(k, 20 + 6 * k)
        store.write(f"s{k}", {"mask": inp, "gaps": gaps, "truth": truth})
    return tmp_path / "ref.zarr"


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def test_baselines_evaluate_and_compare_round_trip(ref_store, tmp_path):
    invoke("baseline", "linking", ref_store, "--out", tmp_path / "link.zarr")
    invoke("baseline", "closing", ref_store, "--out", tmp_path / "close.zarr", "--radius", "4")
    # the identity: the corrupted store evaluated against itself
    invoke("evaluate", "--pred-store", ref_store, "--truth-store", ref_store,
           "--json", tmp_path / "id.json")
    out = invoke("evaluate", "--pred-store", tmp_path / "link.zarr", "--truth-store", ref_store,
                 "--json", tmp_path / "link.json", "--no-traits")
    assert "rel_pixel_diff" in out.output and "N = 4" in out.output
    doc = json.loads((tmp_path / "link.json").read_text())
    assert sorted(doc["samples"]) == ["s0", "s1", "s2", "s3"]
    assert doc["aggregate"]["rel_pixel_diff"]["n"] == 4
    assert "length_pred" not in doc["samples"]["s0"]
    # the JSON holds exactly what the library computes
    ref = MaskStore.open(ref_store)
    pred = MaskStore.open(tmp_path / "link.zarr").array("s2")[:]
    direct = evaluate(pred, ref.array("s2", "truth")[:], ref.array("s2")[:])
    for key, value in doc["samples"]["s2"].items():
        assert (value is None and math.isnan(direct[key])) or value == pytest.approx(direct[key])
    assert "no harm on 4 of 4 samples (100%)" in out.output  # linking only bridges the gaps
    ident = read_samples(tmp_path / "id.json")
    assert all(s["rel_pixel_diff"] == 0.0 for s in ident.values())
    assert all(s["no_harm"] == 1.0 and s["cldice_gain"] == 0.0 for s in ident.values())
    linked = read_samples(tmp_path / "link.json")
    assert all(s["component_diff"] == 0 for s in linked.values())  # every gap bridged
    out = invoke("compare", tmp_path / "link.json", tmp_path / "id.json",
                 "--metric", "rel_pixel_diff", "--metric", "cldice")
    assert "paired two-tailed t-test" in out.output and "rel_pixel_diff" in out.output


def test_single_mode_with_files_and_store_references(ref_store, tmp_path):
    truth, inp, gaps = cross(1, 26)
    np.save(tmp_path / "truth.npy", truth)
    np.save(tmp_path / "input.npy", inp.astype(np.uint8) * 255)  # 0/255 is a binary mask too
    invoke("evaluate", "--pred", tmp_path / "truth.npy", "--truth", tmp_path / "truth.npy",
           "--input", tmp_path / "input.npy", "--json", tmp_path / "one.json")
    (metrics,) = read_samples(tmp_path / "one.json").values()
    assert metrics["rel_pixel_diff"] == 1.0 and metrics["cldice"] == 1.0
    assert metrics["false_fill"] == 0.0
    assert metrics["no_harm"] == 1.0 and metrics["spur_length"] == 0
    # a spur 20 px long down from the side of the horizontal bar (rows 41-43): shown, counted
    spur = truth.copy()
    spur[44:64, 40] = True  # 9 to 22 px from the gap (x = 26..31)
    np.save(tmp_path / "spur.npy", spur)
    out = invoke("evaluate", "--pred", tmp_path / "spur.npy", "--truth", tmp_path / "truth.npy",
                 "--input", tmp_path / "input.npy", "--json", tmp_path / "spur.json",
                 "--no-traits")
    assert "spur_length" in out.output and "no_harm" in out.output and "harm" in out.output
    (metrics,) = read_samples(tmp_path / "spur.json").values()
    assert metrics["spur_length"] == 20 and metrics["islands"] == 0
    invoke("evaluate", "--pred", tmp_path / "spur.npy", "--truth", tmp_path / "truth.npy",
           "--input", tmp_path / "input.npy", "--json", tmp_path / "far.json", "--no-traits",
           "--harm-tolerance", "30")
    (metrics,) = read_samples(tmp_path / "far.json").values()
    assert metrics["spur_length"] == 0  # within 30 px of the gap: repair, not harm
    # the same sample by store references, gaps given instead of the input
    invoke("evaluate", "--pred", f"{ref_store}::s1", "--truth", f"{ref_store}::s1::truth",
           "--gaps", f"{ref_store}::s1::gaps", "--json", tmp_path / "ref.json")
    samples = read_samples(tmp_path / "ref.json")
    assert list(samples) == ["s1"] and samples["s1"]["rel_pixel_diff"] == 0.0


def test_user_errors(ref_store, tmp_path):
    with pytest.raises(ConfigError, match="either"):
        invoke("evaluate", "--pred", "a.npy", "--truth-store", ref_store)
    with pytest.raises(InputError, match="--pred"):
        invoke("evaluate", "--pred", tmp_path / "missing.npy", "--truth", tmp_path / "t.npy")
    np.save(tmp_path / "grey.npy", np.arange(12, dtype=np.uint8).reshape(3, 4))
    with pytest.raises(InputError, match="not a binary mask"):
        invoke("evaluate", "--pred", tmp_path / "grey.npy", "--truth", tmp_path / "grey.npy")
    with pytest.raises(InputError, match="no prediction"):
        MaskStore.create(tmp_path / "empty.zarr")
        invoke("evaluate", "--pred-store", tmp_path / "empty.zarr", "--truth-store", ref_store)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InputError, match="not a distpaint evaluation"):
        invoke("compare", tmp_path / "x.json", tmp_path / "x.json")


def test_cli_reports_user_errors_in_one_line_with_status_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "distpaint.cli", "compare", str(tmp_path / "a.json"),
         str(tmp_path / "b.json")], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "no such result file" in proc.stderr and "Traceback" not in proc.stderr
