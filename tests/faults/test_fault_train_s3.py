"""Fault injected into `distpaint train --storage s3://...` (a real subprocess on its own
private local Ray, the moto S3 server, the `tiny` recipe made smaller, a checkpoint every step):
the driver is SIGKILLed while its last checkpoint is being uploaded to the bucket.

Every S3 request of the run's processes (the driver, Ray Train's controller and worker) goes
through a relay (tests/s3_proxy.py) that stops the upload of the last step's `train_state.pt`
in flight: the bucket then holds that step's config.yaml, metrics.json and model.pt, no
train_state.pt, and a checkpoint manager snapshot that does not list it; the driver is killed
while that upload waits (Ray's processes die with it). Until then nothing failed, so the
generator it uploaded is the final one of an uninterrupted run of the same seed. Re-running the
same command takes the dead driver's lease over, resumes from the last checkpoint Ray Train
registered (never the half-uploaded one: the registered checkpoints are not written again, the
others are), redoes the last step and finishes: its final model.pt
is byte for byte the uninterrupted one, its metrics equal, every checkpoint complete, and every
MLflow metric has exactly one point per step.

Run: .venv/bin/python -m pytest tests/faults/test_fault_train_s3.py -q   (two training runs on
Ray, each starting its own: 152 s on the shared 2 cores at a load average of 10)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from s3_proxy import HoldingProxy

from distpaint.data import location
from distpaint.train.tracking import find_run, tracking_client

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.cost(80)]

ROOT = Path(__file__).resolve().parents[2]
DISTPAINT = str(ROOT / ".venv" / "bin" / "distpaint")
STEPS = 3
LAST = f"step_{STEPS:08d}"
ARGS = ["train", "--config", "tiny", "--num-workers", "1", "--max-steps", str(STEPS),
        "--set", "checkpoint_every=1", "--set", "log_every=1", "--set", "keep_checkpoints=10",
        "--set", "data.n_masks=2", "--set", "data.batch_size=2", "--set", "data.mask_size=128",
        "--val-data", "none"]
LOSSES = ("loss_g", "loss_dl", "loss_dg", "ce", "reward", "baseline", "dl_real", "dg_pos")


def _ray_processes(temp_dir: str) -> list[int]:
    """Pids of the processes of the Ray instance whose session lives under `temp_dir`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if temp_dir.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def _objects(url: str) -> dict[str, bytes]:
    """Every object under `url` (relative key -> bytes), read from the server directly."""
    fs, path = location.fs_path(url)
    fs.invalidate_cache()
    return {p[len(path) + 1:]: fs.cat_file(p) for p in fs.find(path)
            if p != path and not p.endswith("/")}  # not the folder markers pyarrow writes


def _modified(url: str) -> dict[str, object]:
    """Last-Modified of every object under `url` (relative key -> time)."""
    fs, path = location.fs_path(url)
    fs.invalidate_cache()
    return {p[len(path) + 1:]: info["LastModified"] for p, info in fs.find(path, detail=True).items()
            if p != path and not p.endswith("/")}


def _metrics(data: bytes) -> dict:
    return {k: v for k, v in json.loads(data).items() if not k.startswith("time/") and k != "patches_per_s"}


def test_driver_killed_during_a_checkpoint_upload_resumes_to_the_same_bytes(s3, tmp_path):
    storage, mlflow = s3.url("runs"), f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = location.join(storage, "run")
    command = [DISTPAINT, *ARGS, "--storage", storage, "--name", "run", "--mlflow-uri", mlflow]
    ray_tmp = tempfile.mkdtemp(prefix="rayf", dir="/tmp")  # short: Ray's socket paths
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    held = f"/run/checkpoints/{LAST}/train_state.pt"
    try:
        with HoldingProxy(s3.endpoint, hold=lambda m, p: m == "PUT" and p.endswith(held)) as proxy:
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, cwd=tmp_path, env={**env, "AWS_ENDPOINT_URL": proxy.endpoint})
            try:
                assert proxy.held.wait(240), f"no upload of {held}: {proc.stderr.read()[-3000:]}"
                # the real state at the kill: the last checkpoint half uploaded and not registered
                # the other files upload in parallel threads, unheld: wait for them to land
                others, deadline = {"config.yaml", "metrics.json", "model.pt"}, time.monotonic() + 120
                while set(partial := _objects(location.join(run, "checkpoints", LAST))) != others:
                    assert set(partial) < others and time.monotonic() < deadline, sorted(partial)
                    time.sleep(0.2)
                snapshot = _objects(run)["checkpoint_manager_snapshot.json"].decode()
                registered = [s for s in range(1, STEPS + 1) if f"step_{s:08d}" in snapshot]
                assert registered and STEPS not in registered
                written = _modified(location.join(run, "checkpoints"))
                os.kill(proc.pid, signal.SIGKILL)
                assert proc.wait(timeout=60) == -signal.SIGKILL
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        deadline = time.monotonic() + 30  # its Ray dies with it: nothing goes on uploading
        while _ray_processes(ray_tmp):
            assert time.monotonic() < deadline, f"Ray outlived its driver: {_ray_processes(ray_tmp)}"
            time.sleep(0.2)
        assert _objects(run)["driver.lock"]  # SIGKILL: the lease stays, its pid is dead

        final = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert final.returncode == 0, final.stderr[-3000:]
    finally:
        for pid in _ray_processes(ray_tmp):  # only if an assertion above failed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)

    objects = _objects(run)
    assert "driver.lock" not in objects  # released by the finished driver
    done = _objects(location.join(run, "checkpoints"))
    assert sorted(done) == [f"step_{s:08d}/{f}" for s in range(1, STEPS + 1)
                            for f in ("config.yaml", "metrics.json", "model.pt", "train_state.pt")]
    # the final generator: the bytes the uninterrupted process uploaded before it was killed
    assert done[f"{LAST}/model.pt"] == partial["model.pt"]
    assert done[f"{LAST}/config.yaml"] == partial["config.yaml"]
    redone = _metrics(done[f"{LAST}/metrics.json"])
    assert redone == _metrics(partial["metrics.json"]) and redone["step"] == STEPS
    assert LAST in objects["checkpoint_manager_snapshot.json"].decode()
    # resumed, not restarted: the registered checkpoints were not written again, the rest were
    again = _modified(location.join(run, "checkpoints"))
    for key, when in written.items():
        assert (again[key] == when) == (int(key[len("step_"):].split("/")[0]) in registered), key

    client = tracking_client(mlflow)
    mlrun = find_run(mlflow, "run")
    assert mlrun.info.status == "FINISHED"
    for key in LOSSES:  # one point per step (the killed driver's last steps not logged twice)
        history = sorted((m.step, m.value) for m in client.get_metric_history(mlrun.info.run_id, key))
        assert [s for s, _ in history] == list(range(1, STEPS + 1)), key
        assert history[-1][1] == pytest.approx(redone[key], rel=1e-6), key  # logged before the kill
