"""Shared pytest fixtures: a real local Ray instance and a real S3-compatible server (each
started once per session, only by the tests that ask for it), and the GPU skip marker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from ray_heads import short_temp_dir

# A private local Ray: no token auth, no telemetry, no usage stats.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """A real local Ray instance with 2 CPUs, shared by every test of the session that uses it,
    started the way the commands start theirs (with the dashboard, whose state API Ray Train's
    placement-group cleaner needs: distpaint.ray_connect)."""
    import ray

    from distpaint.ray_connect import connect

    if ray.is_initialized():
        yield ray
        return
    temp_dir = short_temp_dir("dp-ray-")
    connect(num_cpus=2, temp_dir=temp_dir, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible endpoint with one bucket."""

    endpoint: str
    """http://127.0.0.1:PORT"""
    bucket: str
    """A bucket that exists (tests write under their own prefix: `s3.url(...)`)."""
    env: dict
    """The AWS_* variables that point every client (boto3, s3fs, pyarrow) at it."""

    def url(self, *parts: str) -> str:
        """s3://BUCKET/<a fresh prefix>/PARTS: a place no other test uses."""
        return "/".join([f"s3://{self.bucket}", uuid.uuid4().hex[:8], *parts])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's standalone server: an actual HTTP S3 endpoint on 127.0.0.1 (a free port), in its
    own process, so the code under test (and its subprocesses, Ray workers) talk real S3 over
    HTTP to it, as to AWS or MinIO. Use the function fixture `s3`, which sets the variables."""
    pytest.importorskip("moto.server", reason="needs moto[server] (the test extra)")
    pytest.importorskip("s3fs", reason="needs s3fs (the test extra)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not listen within 60 s"
                time.sleep(0.1)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     ).create_bucket(Bucket="distpaint-test")
        yield S3Server(endpoint, "distpaint-test", env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """The session's S3 server with AWS_* set for this test (and the processes it starts), and
    the local work folders of object-storage inference jobs in this test's tmp_path."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DISTPAINT_WORK_CACHE", str(tmp_path / "work-cache"))
    return s3_server


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def _module_cost(items) -> dict:
    """Seconds each module declares with `pytestmark = pytest.mark.cost(seconds)` (0 if none)."""
    cost: dict = {}
    for item in items:
        marker = item.get_closest_marker("cost")
        seconds = float(marker.args[0]) if marker and marker.args else 0.0
        cost[item.module] = max(cost.get(item.module, 0.0), seconds)
    return cost


def pytest_collection_modifyitems(config, items):
    # Costly modules first, costliest first (stable otherwise, modules kept whole): `make test`
    # runs whole modules on two xdist workers (--dist loadscope), so the long ones start at
    # once and the many short ones even out the end.
    cost = _module_cost(items)
    first = {}
    for index, item in enumerate(items):
        first.setdefault(item.module, index)
    items.sort(key=lambda item: (-cost[item.module], first[item.module]))
    if _has_cuda():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
