"""The `distpaint` entry point: user errors and usage errors end in a message and exit 2,
never a traceback (distpaint/cli.py main()).

Run: .venv/bin/python -m pytest tests/test_cli.py -q
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "distpaint"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["corrupt", "src.zarr", "--out", "o.zarr"], "Missing option '--seed'"),
    (["synth", "roads", "--size", "64", "abc", "--out", "o.zarr"], "Invalid value for '--size'"),
    (["synth", "roads", "--count", "many", "--out", "o.zarr"], "Invalid value for '--count'"),
    (["ingest", "--bogus", "x"], "No such option: --bogus"),
    (["no-such-command"], "No such command 'no-such-command'"),
])
def test_usage_errors_exit_2_with_clicks_message(tmp_path, args, message):
    proc = _run(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and message in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_user_error_is_one_red_line_and_help_exits_0(tmp_path):
    proc = _run("synth", "trees", "--out", "o.zarr", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown synth kind 'trees'; choose one of roots, vessels, roads, sketch"]
    assert _run("--help", cwd=tmp_path).returncode == 0
    assert _run("synth", "--help", cwd=tmp_path).returncode == 0
