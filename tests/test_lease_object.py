"""One driver per training run on object storage (distpaint.train.lease.ObjectLease), against
the moto S3 server with real processes: while one process holds the lease of `s3://.../run`
(an object created with `If-None-Match: *`, renewed with `If-Match`), a second driver (the
library, and `distpaint train --storage s3://... --name` through the console script) is refused
in one line and leaves the bucket as it was; the lease is released on exit, taken over at once
from a driver killed on this host, taken over from a silent driver after the timeout (whose
heartbeat then notices and stops it), refused where the server ignores conditional writes, and
kept when the answer to its own create or renewal was lost and the client's retry refused.

Run: .venv/bin/python -m pytest tests/test_lease_object.py -q
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from s3_proxy import HoldingProxy

from distpaint.data import location
from distpaint.errors import ConfigError
from distpaint.train.lease import LEASE_ENV, LEASE_FILE, LeaseConfig, ObjectLease, hold_run

ROOT = pathlib.Path(__file__).resolve().parents[1]
DISTPAINT = str(ROOT / ".venv" / "bin" / "distpaint")
FAST = LeaseConfig(heartbeat_s=0.2, timeout_s=2.0)

HOLDER = """
import select, sys
from distpaint.errors import ConfigError
from distpaint.train.lease import LeaseConfig, hold_run
try:
    with hold_run(sys.argv[1], LeaseConfig(heartbeat_s=0.2, timeout_s=2.0)):
        print("held", flush=True)
        while not select.select([sys.stdin], [], [], 0.05)[0]:  # until the test says so
            pass
except ConfigError as exc:
    print(f"error: {exc}", flush=True)
    sys.exit(2)
print("released", flush=True)
"""


def _holder(url: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def holder(s3):
    """A second process holding the lease of a fresh s3://.../run until its stdin gets a line."""
    url = s3.url("runs", "run")
    proc = _holder(url)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _objects(url: str) -> dict[str, bytes]:
    fs, path = location.fs_path(url)
    fs.invalidate_cache()
    return {p[len(path) + 1:]: fs.cat_file(p) for p in fs.find(path)}


def _owner(url: str) -> dict:
    return json.loads(_objects(url)[LEASE_FILE])


def test_a_second_driver_is_refused_and_the_first_keeps_its_lease(holder):
    url, proc = holder
    fs, path = location.fs_path(url)
    fs.pipe_file(f"{path}/checkpoints/step_00000001/model.pt", b"weights")
    before = _objects(url)
    assert _owner(url)["pid"] == proc.pid
    with pytest.raises(ConfigError, match=rf"{url}: this run is being trained by another driver "
                                          rf"\(pid {proc.pid} on .*; last heartbeat \d+ s ago\)"):
        with hold_run(url):
            pass
    time.sleep(2.5)  # longer than the holder's timeout: its heartbeat keeps the lease alive
    with pytest.raises(ConfigError, match=f"pid {proc.pid}"):
        with hold_run(url, FAST):
            pass
    after = _objects(url)
    first, last = json.loads(before.pop(LEASE_FILE)), json.loads(after.pop(LEASE_FILE))
    assert last["beats"] > first["beats"]  # renewed by the holder meanwhile, still its lease,
    assert last["token"] == first["token"] and after == before  # and the refused wrote nothing
    proc.stdin.write("done\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released" and proc.wait() == 0
    assert LEASE_FILE not in _objects(url)  # released on exit
    with hold_run(url) as lease:  # free again
        assert isinstance(lease, ObjectLease) and _owner(url)["pid"] == os.getpid()
    assert sorted(_objects(url)) == ["checkpoints/step_00000001/model.pt"]


def test_distpaint_train_on_the_bucket_is_refused_in_one_line(holder, s3):
    """The console script is refused before it starts Ray or writes anything to the bucket."""
    url, proc = holder
    storage, name = url.rsplit("/", 1)
    before = {k: v for k, v in _objects(storage).items() if not k.endswith(LEASE_FILE)}
    err = subprocess.run([DISTPAINT, "train", "--config", "tiny", "--storage", storage, "--name", name,
                          "--max-steps", "1"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled"}, cwd=ROOT)
    lines = err.stderr.strip().splitlines()
    assert err.returncode == 2 and len(lines) == 1, err.stderr
    assert lines[0].startswith(f"error: {url}: this run is being trained by another driver "
                               f"(pid {proc.pid} on "), lines[0]
    assert {k: v for k, v in _objects(storage).items() if not k.endswith(LEASE_FILE)} == before
    assert proc.poll() is None and _owner(url)["pid"] == proc.pid  # the first driver untouched


def test_a_killed_driver_of_this_host_is_taken_over_at_once(holder):
    url, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _owner(url)["pid"] == proc.pid  # SIGKILL: no release
    with hold_run(url):  # its pid is gone on this host: stale now, not after the timeout
        assert _owner(url)["pid"] == os.getpid()
    assert LEASE_FILE not in _objects(url)


def test_a_silent_driver_is_taken_over_after_the_timeout_and_stops(holder):
    url, proc = holder
    proc.send_signal(signal.SIGSTOP)  # alive but silent: a stalled or partitioned driver
    try:
        with pytest.raises(ConfigError, match=f"pid {proc.pid}"):  # not silent for long yet
            with hold_run(url, FAST):
                pass
        time.sleep(3.5)  # > timeout by the server's clock (1 s resolution)
        with hold_run(url, FAST) as lease:
            assert _owner(url)["pid"] == os.getpid()
            proc.send_signal(signal.SIGCONT)
            # its next heartbeat's If-Match fails: it notices, stops, and leaves our lease alone
            line = proc.stdout.readline().strip()
            assert proc.wait(timeout=30) == 2
            assert line.startswith(f"error: {url}/{LEASE_FILE}: another driver took this run's lease "
                                   "over (this driver was silent for more than 2 s); stopped"), line
            time.sleep(0.5)  # a few of our beats
            assert _owner(url)["pid"] == os.getpid() and not lease.lost.is_set()
    finally:
        proc.send_signal(signal.SIGCONT)
    assert LEASE_FILE not in _objects(url)


def test_storage_without_conditional_writes_is_refused_not_trusted(s3, monkeypatch, caplog):
    url = s3.url("runs", "run")
    with HoldingProxy(s3.endpoint, drop_conditions=True) as proxy:  # the headers never arrive
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        with pytest.raises(ConfigError, match=rf"^{url}/{LEASE_FILE}: this storage ignores conditional "
                                              rf"writes .*; set {LEASE_ENV}=off to train without one$"):
            with hold_run(url):
                pass
        assert _objects(url) == {}  # nothing left behind (the probe removed)
        monkeypatch.setenv(LEASE_ENV, "off")  # knowingly without a lease
        with caplog.at_level(logging.WARNING, logger="distpaint.train.lease"):
            with hold_run(url) as lease:
                assert lease is None
        assert "without a lease" in caplog.text
    monkeypatch.delenv(LEASE_ENV)
    with pytest.raises(ConfigError, match=r"^gs://b/runs/r: no lease for this storage \(conditional "
                                          r"writes are implemented for s3:// only\)"):
        with hold_run("gs://b/runs/r"):
            pass


def test_a_lost_answer_to_our_own_write_is_not_taken_for_a_rival(s3, monkeypatch):
    """The server did the create (or a renewal) but its answer was lost: the client sends it
    again, and the retry's condition fails on our own write. The lease sees its token there and
    carries on, instead of refusing itself or stopping a healthy driver."""
    for nth, what in ((0, "create"), (1, "renewal")):
        url = s3.url("runs", "run")
        seen = []

        def cut(method: str, path: str, nth=nth, seen=seen) -> bool:
            if method == "PUT" and path.endswith(f"/run/{LEASE_FILE}"):
                seen.append(path)
                return len(seen) == nth + 1
            return False

        with HoldingProxy(s3.endpoint, cut=cut) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
            with hold_run(url, FAST) as lease:  # the client's retry was refused: it is ours
                time.sleep(1.0)  # a few renewals
                assert proxy.was_cut.is_set(), what
                assert not lease.lost.is_set() and _owner(url)["pid"] == os.getpid(), what
                assert json.loads(_objects(url)[LEASE_FILE])["beats"] >= 4, what  # renewed since
            assert LEASE_FILE not in _objects(url), what
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
