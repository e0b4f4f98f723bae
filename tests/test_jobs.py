"""Every workflow as a Ray job, the way a user runs them on a cluster: a real Ray head started
with `ray start --head`, and the README's `ray job submit --working-dir . --runtime-env
job_runtime_env.yaml -- sh -c 'distpaint ...'` lines (section "Run on a cluster") for
training, a Tune sweep and inference, run from the repository root as written.

The head is private to this module: loopback only, its own --temp-dir and ports, 2 CPUs, no
token authentication; like a cluster node it runs with the virtualenv on PATH (the installed
`distpaint` command) and with cluster.yaml's settings in its environment: DISTPAINT_S3 a
prefix in a bucket of the session's S3 server (moto, tests/conftest.py; AWS_ENDPOINT_URL and
the dummy keys in the head's environment too, as a node's instance profile would provide them),
DISTPAINT_SHARED a local folder (the EFS mount), DISTPAINT_MLFLOW an SQLite tracking store (the
head's MLflow server). It is stopped by killing the session that `ray start` created (every
daemon and Ray worker keeps it) and everything below it: `ray stop` would stop every Ray on the
machine, and it has no --address to pick one.

What differs from the README's lines, and only this: the job server's address (the test
head's, not the SSH tunnel's localhost:8265), the sizes and steps of tests/test_readme.py's
TINY (4 steps, one worker, one trial, tiny training pools) and no GPU flags. The training and
Tune jobs run side by side on the head's 2 CPUs; then the README's inference job, and one that
repairs a mask with the checkpoint the training job wrote to the bucket and reports from which
directory `distpaint` was imported (the uploaded working dir, not the installed copy); the Tune
line's command run again from another driver (this process) resumes the finished sweep from the
bucket instead of training again.
The bucket is listed afterwards: checkpoints, synthesised data, sweep state, report and MLflow
artifacts are there.

tests/test_readme.py checks these lines' flags and parses their commands; it leaves running
them to this module, so Ray starts once for all of them.

Run: .venv/bin/python -m pytest tests/test_jobs.py -q -s   (-s prints the jobs' wall times)
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import shlex
import shutil
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
from ray_heads import short_temp_dir, stop_session
from test_readme import NO_GPU, TINY, _needs_steps, blocks, commands, tiny

pytestmark = pytest.mark.cost(140)  # seconds on 2 idle cores: started first by `make test`

pytest.importorskip("ray.job_submission")  # ray[default]: the job server and its client

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNTIME_ENV = ROOT / "job_runtime_env.yaml"
README = ROOT / "README.md"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
TUNE_TINY = [(r"distpaint tune ", "distpaint tune --set data.batch_size=2 --set data.n_masks=2 ")]
"""The sweep's trials train on the small pool that TINY gives `distpaint train`."""


@dataclass
class Head:
    """A running private Ray head."""

    address: str
    """Job server (dashboard) URL."""
    temp_dir: Path
    """Its --temp-dir: sessions, logs, unpacked working dirs."""
    shared: Path
    """DISTPAINT_SHARED in its environment: inputs and outputs of the jobs."""
    s3: str
    """DISTPAINT_S3 in its environment: s3://BUCKET/PREFIX on the session's S3 server."""
    mlflow: str
    """DISTPAINT_MLFLOW in its environment: the jobs' tracking store (SQLite)."""
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
def head(tmp_path_factory, s3_server):
    temp_dir = Path(short_temp_dir("dp-head-"))  # Ray's socket paths must fit 107 bytes
    shared = tmp_path_factory.mktemp("shared")
    s3 = s3_server.url("cluster")
    mlflow = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    # the store's tables made once, here: the training and Tune jobs start together, and two
    # processes creating them at once collide (the cluster's one MLflow server does it once)
    MlflowClient(mlflow).search_experiments()
    gcs, dash, client, agent, agent_grpc, env_agent, metrics, node_mgr, obj_mgr = _free_ports(9)
    low = random.randrange(20000, 29000)  # below the ephemeral range, apart from Ray's default 10002-19999
    env = _client_env()
    env.update(
        PATH=f"{BIN}:{env['PATH']}",  # as with an activated virtualenv: `distpaint` is the installed command
        DISTPAINT_SHARED=str(shared),
        DISTPAINT_S3=s3,
        DISTPAINT_MLFLOW=mlflow,
        **s3_server.env,  # the S3 endpoint and keys, for every job, trial and worker
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
        yield Head(f"http://127.0.0.1:{dash}", temp_dir, shared, s3, mlflow, session)
    finally:
        stop_session(session)
        left = _alive_in(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
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


def readme_jobs() -> list[str]:
    """The README's `ray job submit` lines, in order."""
    return [c for lang, body, _ in blocks(README.read_text()) if lang == "bash"
            for c in commands(body) if c.startswith("ray job submit")]


def _as_here(command: str, head: Head) -> str:
    """A README job line as it runs here: the test head's job server, TINY's sizes and steps,
    no GPU flags (see the module docstring); nothing else changed."""
    assert "--address http://localhost:8265 " in command, command
    command = command.replace("--address http://localhost:8265 ", f"--address {head.address} ")
    return _needs_steps(tiny(command, TINY + TUNE_TINY + NO_GPU))


class Submitted:
    """A README job line running as typed (`ray job submit` waits for the job and prints its
    log), from the repository root, as its own process."""

    def __init__(self, command: str, log: Path):
        self.command, self.log = command, log
        self.tic = time.perf_counter()
        with open(log, "w") as out:
            env = {**_client_env(), "PATH": f"{BIN}:{os.environ['PATH']}"}  # an activated virtualenv
            self.proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 300) -> str:
        """The job's output once `ray job submit` exits 0 (the job SUCCEEDED); fails otherwise."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_session(self.proc.pid)
            raise
        self.seconds = time.perf_counter() - self.tic
        out = self.log.read_text()
        assert self.proc.returncode == 0, f"{self.command}\nexit {self.proc.returncode}\n{out[-5000:]}"
        assert re.search(r"Job '\S+' succeeded", out), out[-3000:]
        return out


def _archive(path: Path) -> None:
    """$DISTPAINT_SHARED/archive.zarr, which the README's inference job repairs: two scans
    ingested as the README's local section does (`distpaint ingest scans/*.png`)."""
    import imageio.v3 as iio
    from typer.testing import CliRunner

    from distpaint.cli import app
    from distpaint.data.gaps import GapConfig, corrupt
    from distpaint.data.synth import synth_array

    scans = []
    for i in range(2):
        truth = synth_array("roads", (192, 256), seed=10 + i)
        damaged, _ = corrupt(truth, GapConfig(kind="mix"), np.random.default_rng(i))
        scans.append(path.parent / "scans" / f"scan{i}.png")
        scans[-1].parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(scans[-1], damaged.astype(np.uint8) * 255)
    result = CliRunner().invoke(app, ["ingest", *map(str, scans), "--out", str(path), "--threshold", "127"])
    assert result.exit_code == 0, result.output


def _keys(url: str) -> set[str]:
    """Every object below `url`, as paths relative to it."""
    from distpaint.data import location

    fs, root = location.fs_path(url)
    fs.invalidate_cache()
    return {k[len(root.rstrip("/")) + 1:] for k in fs.find(root)}


def _read(url: str) -> str:
    from distpaint.data import location

    fs, key = location.fs_path(url)
    return fs.cat_file(key).decode()


def _rerun(line: str, head: Head, monkeypatch):
    """The `distpaint` command of a README job line, run in this process with the values the
    head gives its variables (as a driver on another machine would, with RAY_ADDRESS unset)."""
    from typer.testing import CliRunner

    from distpaint.cli import app

    inner = shlex.split(line.partition(" -- ")[2])
    assert inner[:2] == ["sh", "-c"], line
    values = {"DISTPAINT_S3": head.s3, "DISTPAINT_MLFLOW": head.mlflow, "DISTPAINT_SHARED": str(head.shared)}
    args = [re.sub(r"\$\{?(\w+)\}?", lambda m: values[m[1]], a) for a in shlex.split(inner[2])]
    assert args[0] == "distpaint", args
    monkeypatch.chdir(ROOT)  # the job's working dir: the space file's path is relative to it
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return CliRunner().invoke(app, args[1:])


def test_readme_cluster_jobs_run_as_written(head, s3, tmp_path, monkeypatch):
    jobs = readme_jobs()
    assert [re.search(r"distpaint (\w+)", j)[1] for j in jobs] == ["train", "tune", "infer"], jobs
    train_line, tune_line, infer_line = (_as_here(j, head) for j in jobs)
    _archive(head.shared / "archive.zarr")
    started = time.perf_counter()
    # training and the sweep side by side: one 1-CPU trainer plus one trial (0.9 + 0.01 CPUs)
    train = Submitted(train_line, tmp_path / "train.log")
    tune = Submitted(tune_line, tmp_path / "tune.log")
    train_log = train.wait()
    assert "done: 4 steps of run roads-gpu" in train_log, train_log[-3000:]

    # The README's inference job (shipped model, stores in the shared folder), then one with the
    # checkpoint the training job wrote into the bucket, on a Ray Data actor each.
    infer = Submitted(infer_line, tmp_path / "infer.log")
    infer.wait()
    from distpaint.data.store import MaskStore

    archive = MaskStore.open(head.shared / "archive.zarr")
    repaired = MaskStore.open(next((head.shared / "repaired").glob("*.zarr")))
    assert repaired.names() == archive.names()
    for name in archive.names():  # keep-input: the repair only adds
        assert (repaired.array(name)[:] >= archive.array(name)[:]).all()

    mask = _input_mask(head.shared / "in" / "roots.png")
    checkpoint = "$DISTPAINT_S3/runs/roads-gpu/checkpoints/step_00000004"
    own = (
        'python -c "import distpaint; print(\'distpaint from\', distpaint.__file__)" && '
        f'distpaint infer "$DISTPAINT_SHARED/in/roots.png" --model "{checkpoint}" '
        '--out "$DISTPAINT_SHARED/out/roots.png" --ray --workers 1 --tile 128'
    )
    _submit(head, "job-infer", ["sh", "-c", own])

    # the sweep; then its command again from another driver (this process, with a Ray of its own
    # or the session's, while the inference job runs): the finished sweep is restored from the
    # bucket, nothing trains
    tune_log = tune.wait()
    sweep = f"{head.s3}/sweeps/lambdas"
    rows = list(csv.DictReader(io.StringIO(_read(f"{sweep}/summary.csv"))))
    assert len(rows) == 1 and rows[0]["steps"] == "4", (rows, tune_log[-3000:])
    trial = rows[0]["trial"]
    # a checkpoint `--model` reads: the URL, not pyarrow's key within the bucket
    assert rows[0]["checkpoint"] == f"{sweep}/runs/lambdas-{trial}/checkpoints/step_00000004", rows
    checkpoints = {k for k in _keys(sweep) if "/checkpoints/" in k}
    again = time.perf_counter()
    result = _rerun(tune_line, head, monkeypatch)
    again = time.perf_counter() - again
    assert result.exit_code == 0, result.output[-3000:] + repr(result.exception)
    assert f"resuming sweep {sweep}" in result.output, result.output[-3000:]
    assert list(csv.DictReader(io.StringIO(_read(f"{sweep}/summary.csv")))) == rows
    assert {k for k in _keys(sweep) if "/checkpoints/" in k} == checkpoints

    own_log = _wait(head, "job-infer")
    import imageio.v3 as iio

    out_dir = head.shared / "out"
    repaired = iio.imread(out_dir / "roots.png") > 0
    added = iio.imread(out_dir / "roots.added.png") > 0
    assert repaired.shape == mask.shape
    assert np.array_equal(repaired, mask | added)  # keep-input: the input plus the model's fill
    assert not (added & mask).any()
    assert "1 mask(s)" in own_log
    # The job imported the code it uploaded, unpacked under the head's temp dir, not /work/...
    source = next(line for line in own_log.splitlines() if line.startswith("distpaint from"))
    assert str(head.temp_dir) in source and "working_dir_files" in source, source


    # What the jobs left in the bucket (listed with s3fs) and in the tracking store
    keys = _keys(head.s3)
    run = "runs/roads-gpu/"
    for key in (f"{run}checkpoints/step_00000004/model.pt", f"{run}train.zarr/zarr.json", f"{run}val.zarr/zarr.json"):
        assert key in keys, sorted(k for k in keys if k.startswith(run))
    swept = "sweeps/lambdas/"
    for key in ("sweep.json", "tuner.pkl", "valset/manifest.json", "data/train.zarr/zarr.json", "summary.csv",
                "summary.md", "metric_vs_params.png", "best_config.yaml",
                f"runs/lambdas-{trial}/checkpoints/step_00000004/model.pt"):
        assert swept + key in keys, sorted(k for k in keys if k.startswith(swept))
    assert any(re.fullmatch(rf"{swept}valset/patch/\w+\.zarr/zarr\.json", k) for k in keys)
    assert any(k.startswith(swept) and k.endswith(".json") and "experiment_state" in k for k in keys)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(head.mlflow)
    trained = client.search_runs([client.get_experiment_by_name("distpaint").experiment_id])
    parent = [r for r in client.search_runs([client.get_experiment_by_name("distpaint-tune").experiment_id])
              if r.data.tags.get("distpaint.role") == "sweep"]
    assert [r.info.run_name for r in trained] == ["roads-gpu"] and len(parent) == 1
    for r, prefix, artifact in ((trained[0], f"{head.s3}/runs/mlartifacts", "model"),
                                (parent[0], f"{sweep}/mlartifacts", "summary.csv")):
        assert r.info.artifact_uri.startswith(prefix + "/"), r.info.artifact_uri
        logged = r.info.artifact_uri[len(head.s3) + 1:] + f"/{artifact}"
        assert any(k.startswith(logged) for k in keys), (logged, sorted(keys)[:50])
    print(f"\njob wall times: train {train.seconds:.1f} s, README infer {infer.seconds:.1f} s after it, "
          f"tune {tune.seconds:.1f} s alongside, its re-run {again:.1f} s; "
          f"all {time.perf_counter() - started:.1f} s")
