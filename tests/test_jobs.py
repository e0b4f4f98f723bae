"""Every workflow as a Ray job, the way a user runs them on a cluster: a real Ray head started
with `ray start --head`, and `ray job submit --working-dir <repo> --runtime-env
job_runtime_env.yaml -- distpaint ...` for training, a Tune sweep and inference.

The head is private to this module: loopback only, its own --temp-dir and ports, 2 CPUs, no
token authentication; like a cluster node it runs with the virtualenv on PATH (the installed
`distpaint` command) and with DISTPAINT_SHARED set (cluster.yaml's shared directory), so jobs
see the settings in their environment. It is stopped by killing the session that `ray start`
created (every daemon and Ray worker keeps it) and everything below it: `ray stop` would stop
every Ray on the machine, and it has no --address to pick one.

The training and Tune jobs run side by side on the head's 2 CPUs; the inference job repairs a
mask with the checkpoint the training job wrote, with Ray Data actors, and reports from which
directory `distpaint` was imported (the uploaded working dir, not the installed copy).

Run: .venv/bin/python -m pytest tests/test_jobs.py -q
"""

from __future__ import annotations

import csv
import os
import random
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from ray_heads import stop_session

pytest.importorskip("ray.job_submission")  # ray[default]: the job server and its client

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNTIME_ENV = ROOT / "job_runtime_env.yaml"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class Head:
    """A running private Ray head."""

    address: str
    """Job server (dashboard) URL."""
    temp_dir: Path
    """Its --temp-dir: sessions, logs, unpacked working dirs."""
    shared: Path
    """DISTPAINT_SHARED in its environment: inputs and outputs of the jobs."""
    session: int
    """Session id of `ray start`, kept by the daemons and workers it left running."""


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return env


def _alive_in(temp_dir: Path) -> list[str]:
    """Command lines of live processes that mention `temp_dir` (ours, if any survived)."""
    import psutil

    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and str(temp_dir) in " ".join(proc.info["cmdline"] or []):
                out.append(" ".join(proc.info["cmdline"])[:200])
        except psutil.Error:
            continue
    return out


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    temp_dir = tmp_path_factory.mktemp("rayhead")  # short: Ray's socket paths must fit 107 bytes
    shared = tmp_path_factory.mktemp("shared")
    gcs, dash, client, agent, agent_grpc, env_agent, metrics, node_mgr, obj_mgr = _free_ports(9)
    low = random.randrange(20000, 29000)  # below the ephemeral range, apart from Ray's default 10002-19999
    env = _client_env()
    env.update(
        PATH=f"{BIN}:{env['PATH']}",  # as with an activated virtualenv: `distpaint` is the installed command
        DISTPAINT_SHARED=str(shared),
        MLFLOW_DISABLE_TELEMETRY="true",
        RAY_TRAIN_HEALTH_CHECK_INTERVAL_S=os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1"),
        # Loopback only: Ray replaces a --node-ip-address of 127.0.0.1 by the machine's address
        # unless it believes it runs where clusters are off (this switch); then every port binds
        # to 127.0.0.1.
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        # Ray Train's workers query the state API with no address; with other engineers' Ray
        # instances on this machine, auto-detection finds several and fails. Name ours.
        RAY_API_SERVER_ADDRESS=f"http://127.0.0.1:{dash}",
    )
    cmd = [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
           "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
           "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
           "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(env_agent),
           "--metrics-export-port", str(metrics), "--node-manager-port", str(node_mgr),
           "--object-manager-port", str(obj_mgr), "--min-worker-port", str(low),
           "--max-worker-port", str(low + 199), "--num-cpus", "2", "--num-gpus", "0",
           "--temp-dir", str(temp_dir), "--disable-usage-stats"]
    start = subprocess.Popen(cmd, env=env, cwd=temp_dir, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    session = start.pid  # start_new_session: the session of every process ray start leaves behind
    try:
        out, _ = start.communicate(timeout=120)
        assert start.returncode == 0, out[-3000:]
        yield Head(f"http://127.0.0.1:{dash}", temp_dir, shared, session)
    finally:
        stop_session(session)
        left = _alive_in(temp_dir)
        assert not left, f"processes of the test's Ray head survived: {left}"


def _submit(head: Head, submission_id: str, entrypoint: list[str]) -> None:
    """`ray job submit --no-wait` as a user types it, from the repository root."""
    cmd = [str(BIN / "ray"), "job", "submit", "--address", head.address, "--submission-id", submission_id,
           "--working-dir", ".", "--runtime-env", RUNTIME_ENV.name, "--no-wait", "--", *entrypoint]
    out = subprocess.run(cmd, cwd=ROOT, env=_client_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def _wait(head: Head, submission_id: str, timeout: float = 240) -> str:
    """Wait for a terminal status; SUCCEEDED returns the job's log, anything else fails with it."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(head.address)
    deadline = time.time() + timeout
    while True:
        status = str(client.get_job_status(submission_id).value)
        if status in TERMINAL or time.time() > deadline:
            break
        time.sleep(1)
    logs = client.get_job_logs(submission_id)
    info = client.get_job_info(submission_id)
    assert status == "SUCCEEDED", f"{submission_id}: {status} ({info.message})\n{logs[-4000:]}"
    return logs


def _input_mask(path: Path) -> np.ndarray:
    """A 256 px synthetic roots mask with two bands erased: gaps to repair."""
    import imageio.v3 as iio

    from distpaint.data.synth import synth_array

    mask = synth_array("roots", (256, 256), 3)
    mask[96:104, :] = False
    mask[:, 150:156] = False
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, (mask * 255).astype(np.uint8))
    return mask


def test_runtime_env_uploads_the_code_and_weights_but_no_data(tmp_path):
    """The exclude list, applied by Ray's own packager (with .gitignore switched off, so the
    list stands on its own), to a checkout holding every kind of thing the list is about."""
    from ray._private.runtime_env.packaging import create_package

    runtime_env = yaml.safe_load(RUNTIME_ENV.read_text())
    assert set(runtime_env) <= {"excludes", "env_vars"}  # working_dir comes from --working-dir
    repo = tmp_path / "repo"
    keep = ["distpaint/__init__.py", "distpaint/data/store.py", "distpaint/weights/roads/model.pt",
            "distpaint/weights/roads/card.json", "distpaint/configs/tiny.yaml", "tune_spaces/lambdas.yaml",
            "job_runtime_env.yaml", "pyproject.toml", "bench/train_step.py"]
    drop = [".git/objects/ab/cdef", ".venv/bin/python", "data/roads.tif", "stores/masks.zarr/zarr.json",
            "runs/r1/checkpoints/step_00000010/model.pt", "demo_out/report/metrics.md", "mlruns/0/meta.yaml",
            "masks.zarr/zarr.json", "inputs/big.zarr/c/0/0", "runs/r1/mlflow.db", "sub/mlflow.db",
            "distpaint/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/cache/nodeids",
            ".hypothesis/examples/x", "distpaint.egg-info/PKG-INFO"]
    for name in keep + drop:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(name)
    package = tmp_path / "pkg.zip"
    create_package(str(repo), package, include_gitignore=False, excludes=runtime_env["excludes"])
    uploaded = {n for n in zipfile.ZipFile(package).namelist() if not n.endswith("/")}
    assert uploaded == set(keep)


def test_train_tune_and_infer_as_ray_jobs(head):
    shared = head.shared
    run_dir = shared / "runs" / "job-train"
    # Training, literally `ray job submit --working-dir . -- distpaint train ...`.
    _submit(head, "job-train", ["distpaint", "train", "--config", "tiny", "--num-workers", "1",
                                "--max-steps", "2", "--out", str(run_dir)])
    # Tune at the same time, written as on a cluster: paths from the head's environment (the
    # single quotes keep $DISTPAINT_SHARED for the shell on the head) and the space file from
    # the uploaded working dir. One 1-CPU trainer plus one trial (0.9 + 0.01 CPUs) fit in 2.
    _submit(head, "job-tune", ["sh", "-c", "distpaint tune --space tune_spaces/lambdas.yaml --config tiny "
                               "--num-samples 1 --max-steps 2 --report-every 2 --workers-per-trial 1 "
                               '--storage "$DISTPAINT_SHARED/sweeps" --name job-tune'])
    started = time.perf_counter()
    train_log = _wait(head, "job-train")
    train_s = time.perf_counter() - started

    checkpoints = sorted((run_dir / "checkpoints").glob("step_*"))
    assert [c.name for c in checkpoints] == ["step_00000002"], train_log[-3000:]
    assert (checkpoints[-1] / "model.pt").is_file() and (run_dir / "mlflow.db").is_file()
    assert "done: 2 steps of run job-train" in train_log

    # Inference with the checkpoint the training job wrote, on a Ray Data actor.
    mask = _input_mask(shared / "in" / "roots.png")
    model = checkpoints[-1].relative_to(shared)
    infer = (
        'python -c "import distpaint; print(\'distpaint from\', distpaint.__file__)" && '
        f'distpaint infer "$DISTPAINT_SHARED/in/roots.png" --model "$DISTPAINT_SHARED/{model}" '
        '--out "$DISTPAINT_SHARED/out/roots.png" --ray --workers 1 --tile 128'
    )
    _submit(head, "job-infer", ["sh", "-c", infer])
    infer_log = _wait(head, "job-infer")
    infer_s = time.perf_counter() - started - train_s

    import imageio.v3 as iio

    out_dir = shared / "out"
    repaired = iio.imread(out_dir / "roots.png") > 0
    added = iio.imread(out_dir / "roots.added.png") > 0
    assert repaired.shape == mask.shape
    assert np.array_equal(repaired, mask | added)  # keep-input: the input plus the model's fill
    assert not (added & mask).any()
    assert (out_dir / "roots.preview.png").is_file()
    assert "1 mask(s)" in infer_log
    # The job imported the code it uploaded, unpacked under the head's temp dir, not /work/...
    source = next(line for line in infer_log.splitlines() if line.startswith("distpaint from"))
    assert str(head.temp_dir) in source and "working_dir_files" in source, source

    tune_log = _wait(head, "job-tune")
    sweep = shared / "sweeps" / "job-tune"
    assert (sweep / "best_config.yaml").is_file(), tune_log[-3000:]
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["steps"] == "2", rows
    total_s = time.perf_counter() - started
    print(f"\njob wall times: train {train_s:.1f} s, infer {infer_s:.1f} s after it, "
          f"tune alongside; all three {total_s:.1f} s")

