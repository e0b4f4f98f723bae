"""Joining Ray only when told (`distpaint.ray_connect`): with a real `ray start --head` running
on this machine, joining Ray with no RAY_ADDRESS and no --address starts a private Ray of its
own instead of joining "the latest cluster"; an address (like RAY_ADDRESS) joins that head.

Every command joins Ray through `connect()` (train, tune, infer --ray, the demo); the tests
call it in a fresh process, as a command does, rather than run a whole command (a training run
with its own Ray and dashboard costs ~35 s here). The head is private to this module: loopback,
a free port, 1 CPU, no dashboard, its own RAY_TMPDIR. RAY_TMPDIR is also where Ray's default lookup finds "the latest cluster"
(`$RAY_TMPDIR/ray/ray_current_cluster`), so the commands run here with the same RAY_TMPDIR would
see this head, and only this head, if they looked. The folder is short and under /tmp: Ray's
socket paths inside it must stay under the 107-character limit of a Unix socket.

Run: .venv/bin/python -m pytest tests/test_ray_connect.py -q
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ray_heads import stop_session

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(ray_tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_TMPDIR=str(ray_tmp), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return env


@pytest.fixture(scope="module")
def head():
    """(gcs address, RAY_TMPDIR) of a running `ray start --head --block`."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="dp-ray-", dir="/tmp"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # --block: `ray start` stays in the foreground and stops what it started when terminated
    proc = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                             "--include-dashboard", "false", "--disable-usage-stats"],
                            env=_env(ray_tmp), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    current = ray_tmp / "ray" / "ray_current_cluster"
    try:
        deadline = time.monotonic() + 90
        while not current.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "ray start --head did not come up in 90 s"
            time.sleep(0.2)
        time.sleep(0.5)  # the file is written once the GCS is up; let the raylet register
        yield current.read_text().strip(), ray_tmp
    finally:
        _stop_session(proc)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _stop_session(proc: subprocess.Popen) -> None:
    """Stop `ray start` and everything in its session."""
    stop_session(proc.pid)
    proc.wait(timeout=5)


def _connect_and_report(ray_tmp: Path, address: str | None) -> list[str]:
    """In a fresh process with RAY_TMPDIR pointing at the head: connect() as every command does
    (train, tune, infer --ray, demo), then print whether it started Ray and which GCS it is on."""
    code = ("import ray\nfrom distpaint.ray_connect import connect\n"
            f"started = connect(address={address!r}, dashboard=False, log_to_driver=False, num_cpus=1)\n"
            "print(started, ray.get_runtime_context().gcs_address, flush=True)\nray.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", code], env=_env(ray_tmp), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Connecting to latest cluster" not in done.stderr
    return done.stdout.split()


def test_no_address_starts_a_private_ray_beside_a_running_head(head):
    address, ray_tmp = head
    started, gcs = _connect_and_report(ray_tmp, None)
    assert started == "True" and gcs != address
    # the control: in the same environment Ray's default lookup does find and join the head
    code = "import ray\nray.init()\nprint(ray.get_runtime_context().gcs_address)\nray.shutdown()\n"
    default = subprocess.run([sys.executable, "-c", code], env=_env(ray_tmp), capture_output=True,
                             text=True, timeout=120)
    assert default.stdout.split() == [address], default.stderr[-2000:]


def test_address_joins_the_given_cluster(head):
    address, ray_tmp = head
    assert _connect_and_report(ray_tmp, address) == ["False", address]
