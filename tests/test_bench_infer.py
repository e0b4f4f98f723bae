"""The inference benchmark runs: `bench/infer.py --smoke-test` (tiny sizes, every code path,
under a minute) writes every figure with sane values. Timings are not judged here (the cores
are shared); the targets are the real run's business. The MONAI part is skipped cleanly when
monai is not installed (CI installs only `.[test]`).

Run: .venv/bin/python -m pytest tests/test_bench_infer.py -q
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_smoke_run_of_bench_infer(tmp_path):
    out = tmp_path / "infer.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "infer.py"), "--smoke-test",
                           "--json", str(out), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["format"] == "distpaint-bench-infer" and doc["smoke_test"] is True
    assert doc["model"]["halo"] > 0 and doc["model"]["align"] == 16

    t = doc["throughput"]
    assert t["raw_mpx_per_s"] > 0 and t["pipeline_mpx_per_s"] > 0 and t["ratio"] > 0
    assert t["pipeline"]["predicted"] == t["tiles"] > 1 and t["pipeline"]["skipped"] == 0

    s = doc["skip"]
    assert s["full"]["skipped"] == 0 and s["full"]["predicted"] == s["full"]["tiles"]
    assert s["half"]["predicted"] * 2 == s["half"]["tiles"]  # exactly half the windows empty
    assert s["half_predicted_fraction"] == 0.5 and s["ratio"] > 0 and s["cold_ratio"] > 0
    assert s["half_cold"]["predicted"] == s["half"]["predicted"] and s["probe_shapes"] >= 1

    z = doc["zeros"]
    assert z["predicted"] == 0 and z["skipped"] == z["tiles"] > 1 and z["chunk_files"] == 0
    assert z["seconds"] > 0 and z["output_pixels"] == 0

    r = doc["rss"]
    assert [run["size"] for run in r["runs"]] == doc["config"]["rss_sizes"] and len(r["runs"]) == 3
    for run in r["runs"]:
        assert 0 < run["rss_imports_mib"] <= run["rss_model_mib"] <= run["rss_peak_mib"] < 2000
        assert 0 < run["predicted"] < run["tiles"]  # the model ran, on part of the tiles
    assert r["peak_spread"] >= 0 and r["max_peak_bytes"] > 0

    m = doc["monai"]
    if importlib.util.find_spec("monai") is None:
        assert "skipped" in m
    else:
        assert m["time_ratio"] > 0 and m["peak_ratio"] > 0
        assert m["ours_peak_mib"] > 0 and m["monai_peak_mib"] > 0
        assert m["monai_windows"] >= 1 and m["ours_tiles"] >= m["monai_windows"]
        # the untrained model adds nothing here, so both outputs are the input
        assert m["ours_output_pixels"] == m["monai_output_pixels"] > 0

    assert set(doc["targets"]) == {"pipeline_vs_raw_forward", "half_empty_time_ratio",
                                   "half_empty_ratio_cold_probe", "all_background_seconds",
                                   "rss_flat", "rss_below_2gb"}
    assert "1. throughput" in proc.stdout and "targets" in proc.stdout
    assert not (tmp_path / "work" / "masks.zarr").exists()  # cleaned up without --keep
