"""cluster.yaml, checked offline: Ray's own cluster-config schema accepts it (`ray up` has no dry
run), it has the shape the project promises (a CPU head that trains nothing, a single-GPU and a
multi-GPU worker type with bounds, spot, the Ray image of the Ray installed here, setup that
installs this checkout), the storage is named once, and the commands that carry the storage
really run: the settings command writes the variables every node sources, and the head's
MLflow server command starts a server that distpaint's tracking code logs to, artifacts landing
under $DISTPAINT_S3/mlflow (a local directory standing in for the bucket). Security: Ray's token
authentication is on for every node, the secrets come from .secrets/ (file_mounts), and MLflow
listens on the head's private address only, behind its basic-auth app, as one server process.

Run: .venv/bin/python -m pytest tests/test_cluster.py -q
"""

from __future__ import annotations

import copy
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster.yaml"
ENV_FILE = ".distpaint_env"
SETTINGS = ("DISTPAINT_S3", "DISTPAINT_EFS", "DISTPAINT_MLFLOW_PORT")
"""The settings a user edits: each value must appear exactly once in the file."""
SECRETS = "~/.distpaint_secrets/cluster.env"
"""Where the settings file sources the secrets from (the container's home is /home/ray)."""


def _load() -> tuple[dict, str]:
    text = CLUSTER.read_text()
    return yaml.safe_load(text), text


def _strings(node) -> list[str]:
    """Every string value in the parsed YAML (aliases expanded: a shared command counts twice)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def settings_values(config: dict) -> dict[str, str]:
    """VAR -> value as written in the settings command (the first initialization command)."""
    command = config["initialization_commands"][0]
    return dict(re.findall(r"'export (\w+)=([^']*)'", command))


def check_cluster(config: dict, text: str) -> None:
    """The promises of cluster.yaml, as assertions (also run on broken copies below)."""
    import ray

    types = config["available_node_types"]
    head_name = config["head_node_type"]
    head = types[head_name]
    # The head trains nothing: it offers Ray's scheduler no CPU and no GPU, and is not spot.
    assert head["resources"].get("CPU") == 0, "the head must offer 0 CPUs to the scheduler"
    assert head["resources"].get("GPU", 0) == 0, "the head must offer no GPU"
    assert "InstanceMarketOptions" not in head["node_config"], "the head must not be spot"

    workers = {name: t for name, t in types.items() if name != head_name}
    gpus = sorted(t["resources"].get("GPU", 0) for t in workers.values())
    assert len(workers) >= 2 and all(g >= 1 for g in gpus), f"every worker type needs GPUs: {gpus}"
    assert gpus[0] == 1 and gpus[-1] > 1, f"need a single-GPU and a multi-GPU type: {gpus}"
    for name, t in workers.items():
        assert 0 <= t.get("min_workers", 0) <= t["max_workers"] and t["max_workers"] >= 1, name
        market = t["node_config"].get("InstanceMarketOptions", {})
        assert market.get("MarketType") == "spot", f"{name} is not spot"
        assert t["resources"].get("CPU", 0) >= 1, f"{name} offers no CPU"
    assert sum(t["max_workers"] for t in workers.values()) <= config["max_workers"]

    # The image: rayproject/ray (ray-ml stopped at 2.30) of the Ray installed here, a GPU build.
    image = config["docker"]["image"]
    m = re.fullmatch(r"rayproject/ray:(\d+)\.(\d+)\.(\d+)(?:-py3(\d+))?-gpu", image)
    assert m, f"not a rayproject/ray:<version>[-py3X]-gpu image: {image}"
    installed = tuple(int(x) for x in ray.__version__.split(".")[:2])
    assert (int(m[1]), int(m[2])) == installed, f"{image} is not Ray {ray.__version__}"
    assert m[4] is None or int(m[4]) >= 11, "zarr 3.1 needs Python >= 3.11"
    for t in types.values():  # no node type swaps in another image
        assert "worker_image" not in t.get("docker", {})

    # Setup installs this checkout, which file_mounts uploads from next to cluster.yaml; the
    # secrets (.secrets/, git-ignored) travel the same way, not with the checkout or a job.
    mounts = dict(config["file_mounts"])
    secrets = mounts.pop(str(Path(SECRETS).parent).replace("~", "/home/ray"), None)
    assert secrets == ".secrets", f"the secrets folder is not mounted where the settings read it: {mounts}"
    assert "/.secrets" in config["rsync_exclude"]
    (remote, local), = mounts.items()
    assert (CLUSTER.parent / local).resolve() == ROOT
    assert any("pip install" in c and remote in c for c in config["setup_commands"]), \
        "no setup command installs the uploaded checkout"

    # Storage: named once, in the settings command, which runs first on the host and in the
    # container; everything else uses the variables.
    values = settings_values(config)
    settings = config["initialization_commands"][0]
    assert config["setup_commands"][0] == settings, "the container does not get the settings first"
    for var in SETTINGS:
        assert var in values, f"{var} is not set in the settings command"
        elsewhere = [s for s in _strings(config) if values[var] in s and s != settings]
        assert not elsewhere, f"{var}'s value {values[var]!r} is repeated in {elsewhere}"
    assert values["DISTPAINT_S3"].startswith("s3://")
    for var in ("DISTPAINT_S3", "DISTPAINT_EFS"):  # not even a comment repeats them
        assert text.count(values[var]) == 1, f"{var}'s value appears more than once in the file"
    assert text.count("s3://") == 1, "an S3 URI outside the settings"

    # The MLflow server and Ray start on the head with the settings sourced (jobs inherit them).
    start = config["head_start_ray_commands"]
    mlflow = [c for c in start if "mlflow server" in c]
    assert len(mlflow) == 1 and "$DISTPAINT_S3" in mlflow[0] and "$DISTPAINT_MLFLOW_PORT" in mlflow[0]
    for c in start + config["worker_start_ray_commands"]:
        if "ray start" in c:
            assert f". ~/{ENV_FILE}" in c, f"ray start without the settings: {c}"
    assert any("ray start --head" in c for c in start)

    # Security. Ray: token authentication, the same mode on every node (the settings), the
    # token from the secrets file the settings source.
    assert values.get("RAY_AUTH_MODE") == "token", "Ray's token authentication is off"
    assert f". {SECRETS}" in settings, "the settings do not source the secrets"
    # MLflow: the basic-auth app on the head's private address (never all interfaces), its admin
    # from the secrets, one server process (SQLite holds one writer).
    server = mlflow[0]
    assert "--app-name basic-auth" in server, "MLflow without its basic-auth app"
    host = re.search(r"--host[ =](\S+)", server)
    assert host and host[1].strip("'\"") == "$DISTPAINT_HEAD_IP", f"MLflow listens on {host and host[1]}"
    assert "0.0.0.0" not in server and "::" not in server
    assert 'MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD"' in server
    workers = re.search(r"--workers[ =](\d+)", server)
    if "sqlite:" in server:
        assert workers and workers[1] == "1", "several MLflow server processes on one SQLite file"


def test_cluster_yaml_passes_rays_schema_and_keeps_its_promises():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config, text = _load()
    validate_config(prepare_config(copy.deepcopy(config)))
    check_cluster(config, text)


def _set(path: str, value):
    def apply(config: dict, text: str):
        node = config
        *parents, last = path.split("/")
        for key in parents:
            node = node[key]
        node[last] = value
        return config, text
    return apply


def _drop_multi_gpu(config: dict, text: str):
    config["available_node_types"] = {k: v for k, v in config["available_node_types"].items()
                                      if v["resources"].get("GPU", 0) <= 1}
    return config, text


def _second_s3(config: dict, text: str):
    config["setup_commands"].append("aws s3 sync s3://my-distpaint-bucket/distpaint/stores /tmp/x")
    return config, text + "\n# s3://elsewhere\n"


def _mlflow_server(old: str, new: str):
    def apply(config: dict, text: str):
        start = config["head_start_ray_commands"]
        i, = [i for i, c in enumerate(start) if "mlflow server" in c]
        assert old in start[i]
        start[i] = start[i].replace(old, new)
        return config, text
    return apply


def _settings(old: str, new: str):
    def apply(config: dict, text: str):
        for commands in (config["initialization_commands"], config["setup_commands"]):
            assert old in commands[0]
            commands[0] = commands[0].replace(old, new)
        return config, text
    return apply


@pytest.mark.parametrize("breakage", [
    _set("available_node_types/head/resources", {}),                    # head schedules work
    _set("available_node_types/head/resources", {"CPU": 0, "GPU": 1}),
    _drop_multi_gpu,
    _set("available_node_types/gpu_small/node_config/InstanceMarketOptions", {}),
    _set("available_node_types/gpu_small/max_workers", 0),
    _set("docker/image", "rayproject/ray-ml:2.30.0-gpu"),
    _set("docker/image", "rayproject/ray:2.30.0-py311-gpu"),
    _set("docker/image", "rayproject/ray:2.60.0-py311-cpu"),
    _set("file_mounts", {"/home/ray/distpaint": "/somewhere/else"}),
    _second_s3,
    _mlflow_server("--host \"$DISTPAINT_HEAD_IP\"", "--host 0.0.0.0"),
    _mlflow_server("--app-name basic-auth ", ""),
    _mlflow_server("--workers 1", "--workers 2"),
    _settings("'export RAY_AUTH_MODE=token'", "'export RAY_AUTH_MODE=disabled'"),
    _settings(f"'[ ! -f {SECRETS} ] || . {SECRETS}'", ""),
    _set("file_mounts", {"/home/ray/distpaint": "."}),
], ids=["head-resources-autodetected", "head-gpu", "no-multi-gpu", "on-demand-worker",
        "no-bounds", "ray-ml", "old-ray", "cpu-image", "other-checkout", "s3-twice",
        "mlflow-on-all-interfaces", "mlflow-without-auth", "mlflow-workers-on-sqlite",
        "ray-auth-disabled", "no-secrets", "secrets-not-mounted"])
def test_the_checks_catch_a_broken_cluster_yaml(breakage):
    """So that the test above can fail: the same checks refuse broken copies."""
    config, text = breakage(*_load())
    with pytest.raises(AssertionError):
        check_cluster(config, text)


def _run(command: str, home: Path, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a cluster command as the launcher would (bash, in a home of its own)."""
    full_env = {"HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    return subprocess.run(["bash", "-c", command], env=full_env, capture_output=True, text=True,
                          timeout=60, **kw)


def _env_after(home: Path, env: dict | None = None) -> dict[str, str]:
    out = _run(f". ~/{ENV_FILE} && env", home, env)
    assert out.returncode == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def test_settings_command_writes_the_environment_every_node_sources(tmp_path):
    config, _ = _load()
    out = _run(config["initialization_commands"][0], tmp_path)
    assert out.returncode == 0, out.stderr
    values = settings_values(config)
    head = _env_after(tmp_path)
    for var in SETTINGS:
        assert head[var] == values[var]
    assert head["DISTPAINT_SHARED"] == "/mnt/distpaint"  # what docker.run_options binds
    assert any(o.split()[-1] == "/mnt/distpaint:/mnt/distpaint" for o in config["docker"]["run_options"])
    assert head["RAY_AUTH_MODE"] == "token"
    # On the head: its own address; on a worker (the launcher exports RAY_HEAD_IP): the head's.
    assert re.fullmatch(rf"http://[0-9a-f.:]+:{values['DISTPAINT_MLFLOW_PORT']}", head["DISTPAINT_MLFLOW"])
    assert head["DISTPAINT_MLFLOW"] == f"http://{head['DISTPAINT_HEAD_IP']}:{values['DISTPAINT_MLFLOW_PORT']}"
    assert "RAY_AUTH_TOKEN" not in head  # no secrets file here (the host): sourcing it is skipped
    worker = _env_after(tmp_path, {"RAY_HEAD_IP": "10.1.2.3"})
    assert worker["DISTPAINT_MLFLOW"] == f"http://10.1.2.3:{values['DISTPAINT_MLFLOW_PORT']}"
    # In the container (the secrets mounted): Ray's token and MLflow's login reach every process
    secrets = tmp_path / Path(SECRETS).relative_to("~")
    secrets.parent.mkdir()
    secrets.write_text("export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=abc\n"
                       "export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=pw\n")
    worker = _env_after(tmp_path, {"RAY_HEAD_IP": "10.1.2.3"})
    assert (worker["RAY_AUTH_TOKEN"], worker["MLFLOW_TRACKING_PASSWORD"]) == ("abc", "pw")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_group(pgid: int) -> None:
    """Stop the process group of a command this test started (and only that one)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _status(url: str, auth: str | None = None) -> int:
    """HTTP status of a GET (401 and friends included)."""
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_head_mlflow_server_command_serves_runs_with_artifacts_under_the_s3_prefix(tmp_path, monkeypatch):
    """The head's MLflow command, run for real with the bucket replaced by a local directory
    and a free port: it listens on the head's address (DISTPAINT_HEAD_IP, not on every
    interface), refuses requests without the login from the secrets file (401), and
    distpaint's tracking code (what the driver and rank 0 use) logs a run with a checkpoint
    artifact through it with that login in its environment; a second run of the command
    starts no second server."""
    import base64

    from distpaint.train.tracking import RunLogger, finish_run, find_run, start_run

    config, _ = _load()
    home, bucket = tmp_path / "home", tmp_path / "bucket"
    home.mkdir()
    assert _run(config["initialization_commands"][0], home).returncode == 0
    port = _free_port()
    with open(home / ENV_FILE, "a") as f:  # later exports win: local stand-ins for S3 and the port
        f.write(f"export DISTPAINT_S3={bucket.as_uri()}\nexport DISTPAINT_MLFLOW_PORT={port}\n"
                "export DISTPAINT_MLFLOW=http://$DISTPAINT_HEAD_IP:$DISTPAINT_MLFLOW_PORT\n")
    secrets = home / Path(SECRETS).relative_to("~")  # what file_mounts puts on the head
    secrets.parent.mkdir()
    secrets.write_text("export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=s3cret-pw-42\n")
    head_ip = _env_after(home)["DISTPAINT_HEAD_IP"]
    command, = [c for c in config["head_start_ray_commands"] if "mlflow server" in c]
    first = subprocess.Popen(["bash", "-c", command], env={
        "HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLFLOW_DISABLE_TELEMETRY": "true"}, start_new_session=True)
    pgid = first.pid
    try:
        assert first.wait(timeout=30) == 0
        pid = int((home / "mlflow" / "server.pid").read_text())
        uri = _env_after(home)["DISTPAINT_MLFLOW"]
        assert uri == f"http://{head_ip}:{port}"
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.read().strip() == b"OK":
                        break
            except OSError:
                pass
            assert time.time() < deadline, (home / "mlflow" / "server.log").read_text()[-3000:]
            time.sleep(0.5)

        # Not on every interface: where the head's address is not loopback, loopback is closed
        if not head_ip.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
        # Basic auth: nothing without the login, a wrong one refused, the right one served
        api = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
        login = base64.b64encode(b"admin:s3cret-pw-42").decode()
        assert _status(api) == 401
        assert _status(api, "Basic " + base64.b64encode(b"admin:wrong").decode()) == 401
        assert _status(api, "Basic " + login) == 200

        again = _run(command, home)
        assert again.returncode == 0 and "already running" in again.stdout
        assert int((home / "mlflow" / "server.pid").read_text()) == pid

        ckpt = tmp_path / "step_00000002"
        ckpt.mkdir()
        (ckpt / "model.pt").write_bytes(b"weights")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")  # what jobs get from the secrets
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret-pw-42")
        run_id = start_run(uri, None, "cluster-check", {"lr": "0.001"})
        log = RunLogger(uri, run_id)
        log.metrics(2, {"loss_g": 1.5})
        log.flush()
        finish_run(uri, run_id, "FINISHED", checkpoint_dir=ckpt)

        run = find_run(uri, "cluster-check")
        assert run.info.run_id == run_id and run.info.status == "FINISHED"
        assert run.data.params == {"lr": "0.001"} and run.data.metrics == {"loss_g": 1.5}
        stored = list((bucket / "mlflow").rglob("checkpoint/model.pt"))
        assert len(stored) == 1 and stored[0].read_bytes() == b"weights"
        assert (home / "mlflow" / "mlflow.db").is_file()  # the backend: the head's own disk
        assert (home / "mlflow" / "basic_auth.db").is_file()  # MLflow's users, beside it
    finally:
        _kill_group(pgid)
