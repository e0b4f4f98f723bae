"""One driver per training run (distpaint.train.lease), with real processes: while one process
holds a run's lease, a second driver (the library, `train_local`, and `distpaint train`
through the console script) is refused in one line naming the run and the holder, and
leaves the run directory as it was; the lease is released on exit, taken over at once from a
driver killed on this host, kept alive by its heartbeat, and taken over from a silent driver of
another host after the timeout.

Run: .venv/bin/python -m pytest tests/test_lease.py -q
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from distpaint.errors import ConfigError
from distpaint.train.lease import LEASE_FILE, LeaseConfig, hold_run

ROOT = pathlib.Path(__file__).resolve().parents[1]
DISTPAINT = str(ROOT / ".venv" / "bin" / "distpaint")

HOLDER = """
import sys, time
from distpaint.train.lease import LeaseConfig, hold_run
with hold_run(sys.argv[1], LeaseConfig(heartbeat_s=0.2, timeout_s=2.0)):
    print("held", flush=True)
    sys.stdin.readline()   # hold until the test says so
print("released", flush=True)
"""


@pytest.fixture
def holder(tmp_path):
    """A real second process holding the lease of tmp_path/run until its stdin gets a line."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _tree(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_second_driver_is_refused_and_the_first_keeps_its_lease(holder):
    run, proc = holder
    (run / "checkpoints").mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    before = _tree(run)
    with pytest.raises(ConfigError, match=rf"{run}: this run is being trained by another driver "
                                          rf"\(pid {proc.pid} on .*; last heartbeat \d+ s ago\)"):
        with hold_run(run):
            pass
    time.sleep(2.5)  # longer than the holder's timeout: its heartbeat keeps the lease alive
    with pytest.raises(ConfigError, match=f"pid {proc.pid}"):
        with hold_run(run, LeaseConfig(heartbeat_s=0.2, timeout_s=2.0)):
            pass
    assert _tree(run) == before  # the refused driver touched nothing
    proc.stdin.write("done\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released" and proc.wait() == 0
    assert not (run / LEASE_FILE).exists()  # released on exit
    with hold_run(run) as lease:  # free again
        assert json.loads((run / LEASE_FILE).read_text())["pid"] == os.getpid()
        assert lease is not None
    assert not (run / LEASE_FILE).exists()


def test_distpaint_train_is_refused_in_one_line_and_train_local_too(holder):
    """The console script (Ray driver: refused before Ray starts) and the --local loop."""
    from distpaint.train.config import load_config, packaged_config
    from distpaint.train.local import train_local

    run, proc = holder
    before = _tree(run)
    err = subprocess.run([DISTPAINT, "train", "--config", "cpu_small", "--out", str(run),
                          "--max-steps", "1"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled"}, cwd=run.parent)
    lines = err.stderr.strip().splitlines()
    assert err.returncode == 2 and len(lines) == 1, err.stderr
    assert lines[0].startswith(f"error: {run}: this run is being trained by another driver "
                               f"(pid {proc.pid} on "), lines[0]
    with pytest.raises(ConfigError, match=f"{run}: this run is being trained by another driver"):
        train_local(load_config(packaged_config("cpu_small")), run, max_steps=1)
    assert _tree(run) == before and proc.poll() is None  # the first driver untouched


def test_a_killed_driver_of_this_host_is_taken_over_at_once(holder):
    run, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run / LEASE_FILE).exists()  # SIGKILL: no release
    with hold_run(run):  # the owner's pid is gone on this host: stale now, not after a timeout
        assert json.loads((run / LEASE_FILE).read_text())["pid"] == os.getpid()


def test_a_silent_driver_of_another_host_is_taken_over_after_the_timeout(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lease = run / LEASE_FILE
    lease.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "t", "started": 0.0}))
    config = LeaseConfig(heartbeat_s=0.5, timeout_s=30.0)
    with pytest.raises(ConfigError, match=r"pid 1 on elsewhere"):  # fresh: alive for all we know
        with hold_run(run, config):
            pass
    old = time.time() - 31
    os.utime(lease, (old, old))
    with hold_run(run, config):  # silent for longer than the timeout: taken over
        assert json.loads(lease.read_text())["host"] != "elsewhere"
    assert not lease.exists()
