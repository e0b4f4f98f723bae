"""Every command block of README.md is executed, in order, at tiny sizes, so the documentation
cannot rot.

The blocks run in one scratch folder (the README's commands build on each other: the store
that `synth` writes is the one `infer` repairs) with `.venv/bin` first on PATH, next to links
to the checkout's `tune_spaces/`, `bench/`, `cluster.yaml` and `job_runtime_env.yaml`, and the
input files the README assumes a user has (`scans/*.png`, a GeoTIFF `field.tif`, a GeoJSON
street layer `streets.geojson`, a SUMO network `town.net.xml`, an SVG drawing `drawing.svg`).
Sizes and step counts are shrunk by the substitutions in `TINY`; nothing else is changed.

The real benchmark (`distpaint realdata fetch/build`, ~400 MB of registry packages for every
kind, minutes of drawing) runs on its smallest part: `fetch --kind drawings` (~100 MB, about
15 s: KanjiVG and two icon sets, into the README's cache `~/.cache/distpaint/real`, so a second
run finds them there) and `build --kind drawings --split val` (about 25 s); the quality report
on it and `bench/real_targets.py` then run on those drawings. That checker's exit status 1
means "a target missed" (a measurement, not a broken command): accepted when it printed its
checks.

What cannot run here is checked for what it promises instead, and says so:
- the first block (`make demo`, `make test`) is what CI and tests/test_demo.py run;
- `pip install "ray[default]==X"`: X is the Ray this project installs and the cluster image's;
- `ray up|dashboard|down cluster.yaml`: cluster.yaml passes Ray's schema and its own checks
  (tests/test_cluster.py); there is no AWS here;
- `ray job submit ... -- ENTRYPOINT`: the flags name files that exist; the jobs' `distpaint`
  commands are parsed by the CLI's own parser, their recipe, search space and model resolved,
  and their variables checked against cluster.yaml; tests/test_jobs.py submits these very lines
  (TINY's sizes, no GPU flags) to a real `ray start --head` with DISTPAINT_S3 in a bucket of
  the moto S3 server, so Ray starts once for all three;
- `distpaint tune` (local): parsed in the same way (a sweep costs ~75 s here); tests/test_tune.py
  runs sweeps, tests/test_tune_resume.py one with the README's defaults (no --storage, no
  --mlflow-uri: ./runs/NAME, its own MLflow store, best_config.yaml);
- `mlflow ui ...`: started on a free port, must serve the run's page, then stopped.

Run: .venv/bin/python -m pytest tests/test_readme.py -q -s   (-s prints each command's wall
time; about 4 minutes on 2 idle cores before the real-data blocks, which add about 4 more: 15
minutes in all next to two busy training runs)
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

pytestmark = pytest.mark.cost(370)  # seconds on 2 idle cores: started first by `make test`

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = ROOT / ".venv" / "bin"

TINY = [
    (r"--size \d+ \d+", "--size 256 256"),
    (r"--max-steps \d+", "--max-steps 4"),
    # 2 patches from 2 synthetic masks instead of the recipes' 8 from 16: a 4-step run takes
    # ~23 s instead of ~68 s on 2 busy cores, and every part of training still runs
    (r"distpaint train ", "distpaint train --set data.batch_size=2 --set data.n_masks=2 "),
    (r"--num-samples \d+", "--num-samples 1"),  # a sweep of one trial runs every part of `tune`
    (r"--max-concurrent \d+", "--max-concurrent 1"),
    # one DDP rank: starting the second costs ~10 s per run here, and 2-rank training is what
    # tests/test_distributed.py checks
    (r"--num-workers \d+", "--num-workers 1"),
    (r"--workers \d+", "--workers 1"),
    (r"step_\d{8}", "step_00000004"),
    (r"--last \d+", "--last 1"),
    (r"(benchset make .*)$", r"\1 --small --kind roads"),
    (r"(bench/quality\.py .*)$", r"\1 --limit 2"),
    # the real benchmark's smallest part (see the module docstring): drawings, validation split
    (r"(distpaint realdata fetch .*)$", r"\1 --kind drawings"),
    (r"(distpaint realdata build .*)$", r"\1 --kind drawings --split val"),
    # no real training roads here (the build above draws only drawings): train on the street
    # layers the README rasterised (streets.zarr: two masks that hold a batch of 512-px patches)
    (r"runs/real/train/roads\.zarr", "streets.zarr"),
]
"""(pattern, replacement) applied to every command line: tiny sizes, few steps."""
NO_GPU = [(r" --gpu\b", ""), (r" --gpus-per-trial \S+", "")]
"""The cluster's GPU flags, dropped when its commands run on this CPU machine."""


def blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, first line number) of every fenced code block."""
    found = []
    for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.M | re.S):
        found.append((m[1], m[2], text[: m.start()].count("\n") + 1))
    return found


def commands(body: str) -> list[str]:
    """The command lines of a bash block (comments dropped, continuations joined)."""
    lines, current = [], ""
    for raw in body.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def tiny(command: str, rules=TINY) -> str:
    for pattern, replacement in rules:
        command = re.sub(pattern, replacement, command)
    return command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runner:
    """Runs README commands in `work` as a user with the activated venv would."""

    def __init__(self, work: Path):
        self.work = work
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                    "VIRTUAL_ENV": str(ROOT / ".venv"), "PYTHONUNBUFFERED": "1"}
        self.env.pop("RAY_ADDRESS", None)
        self.log: list[str] = []

    def run(self, command: str, env: dict | None = None, timeout: int = 600,
            ok: tuple[int, ...] = (0,)) -> str:
        t0 = time.monotonic()
        proc = subprocess.run(["bash", "-c", "set -euo pipefail; " + command], cwd=self.work,
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)
        self.log.append(f"$ {command}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
        # shown with the test's output (pytest -s, or on failure): where the test's time goes
        print(f"{time.monotonic() - t0:6.1f} s  $ {command[:160]}", flush=True)
        assert proc.returncode in ok, f"README command failed ({proc.returncode}): {command}\n" \
                                     f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        return proc.stdout

    def mlflow_ui(self, command: str) -> None:
        port = _free_port()
        proc = subprocess.Popen(shlex.split(command) + ["--port", str(port)], cwd=self.work,
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            deadline, page = time.monotonic() + 120, None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                    break
                except OSError:
                    time.sleep(1)
            assert page is not None and b"MLflow" in page, f"{command} served nothing"
            # the run the README trained is in the store it names
            api = f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search"
            request = urllib.request.Request(api, data=b'{"experiment_ids": ["0", "1"]}',
                                             headers={"Content-Type": "application/json"})
            assert b"run_id" in urllib.request.urlopen(request, timeout=10).read()
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)


TOWN_NET = """<?xml version="1.0" encoding="UTF-8"?>
<net version="1.16" junctionCornerDetail="5">
    <location netOffset="-500000.00,-4200000.00" convBoundary="0.00,0.00,1100.00,600.00"
        origBoundary="15,37.9,15.02,37.91"
        projParameter="+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs"/>
    <edge id="main" from="W" to="E" priority="7" type="highway.primary">
        <lane id="main_0" index="0" speed="13.89" length="1100.00" shape="0.00,300.00 1100.00,300.00"/>
        <lane id="main_1" index="1" speed="13.89" length="1100.00" shape="0.00,303.20 1100.00,303.20"/>
    </edge>
    <edge id="side" from="S" to="N" priority="4" type="highway.residential">
        <lane id="side_0" index="0" speed="13.89" length="600.00" shape="550.00,0.00 550.00,600.00"/>
    </edge>
    <edge id="tram" from="T0" to="T1" priority="1" type="railway.tram">
        <lane id="tram_0" index="0" allow="tram" speed="13.89" length="1100.00" width="2.00"
            shape="0.00,100.00 1100.00,100.00"/>
    </edge>
    <junction id="W" type="dead_end" x="0.00" y="300.00" incLanes="" intLanes=""
        shape="0.00,298.40 0.00,304.80"/>
    <junction id="E" type="dead_end" x="1100.00" y="300.00" incLanes="main_0 main_1" intLanes=""
        shape="1100.00,304.80 1100.00,298.40"/>
    <junction id="S" type="dead_end" x="550.00" y="0.00" incLanes="" intLanes=""
        shape="548.40,0.00 551.60,0.00"/>
    <junction id="N" type="dead_end" x="550.00" y="600.00" incLanes="side_0" intLanes=""
        shape="551.60,600.00 548.40,600.00"/>
</net>
"""
"""A SUMO network (`town.net.xml`): a two-lane primary road crossed by a residential street,
1100 x 600 m, and a tram line the README's `--exclude 'railway.*'` leaves out."""

DRAWING_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="120" height="90" viewBox="0 0 120 90">
  <g fill="none" stroke="black" stroke-width="1.5">
    <path d="M 10 80 C 30 10 60 10 80 50 S 110 80 115 20"/>
    <path d="M 15 15 L 60 15 L 60 45 Z"/>
    <circle cx="90" cy="65" r="12"/>
  </g>
</svg>
"""
"""An SVG line drawing (`drawing.svg`): a curve, a triangle and a circle."""


def _streets(path: Path) -> None:
    """A GeoJSON street layer in UTM (EPSG:32633) with a `highway` column: a 560 m grid of
    primary and residential streets, a service road and a footway (left out by the README's
    `--exclude footway`)."""
    import geopandas as gpd
    import shapely

    x0, y0, rows = 500000.0, 4200000.0, []
    for i, offset in enumerate(range(20, 560, 90)):
        kind = "primary" if i % 3 == 0 else "residential"
        rows.append((kind, shapely.LineString([(x0, y0 + offset), (x0 + 560, y0 + offset + 15)])))
        rows.append((kind, shapely.LineString([(x0 + offset, y0), (x0 + offset - 10, y0 + 560)])))
    rows.append(("service", shapely.LineString([(x0 + 60, y0 + 60), (x0 + 130, y0 + 200)])))
    rows.append(("footway", shapely.LineString([(x0 + 300, y0 + 300), (x0 + 400, y0 + 250)])))
    frame = gpd.GeoDataFrame({"highway": [k for k, _ in rows]}, geometry=[g for _, g in rows],
                             crs="EPSG:32633")
    frame.to_file(path, driver="GeoJSON")


def _inputs(work: Path) -> None:
    """The files the README's examples start from: PNG scans, a GeoTIFF, a GeoJSON street
    layer, a SUMO network and an SVG drawing."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from distpaint.data.gaps import GapConfig, corrupt
    from distpaint.data.synth import synth_array

    (work / "scans").mkdir()
    for i in range(2):
        truth = synth_array("roads", (192, 256), seed=10 + i)
        damaged, _ = corrupt(truth, GapConfig(kind="mix"), np.random.default_rng(i))
        iio.imwrite(work / "scans" / f"scan{i}.png", damaged.astype(np.uint8) * 255)
    field = synth_array("roads", (256, 256), seed=20).astype(np.uint8)
    with rasterio.open(work / "field.tif", "w", driver="GTiff", height=256, width=256, count=1,
                       dtype="uint8", crs=CRS.from_epsg(32633),
                       transform=from_origin(500000, 4200000, 0.5, 0.5)) as ds:
        ds.write(field, 1)
    _streets(work / "streets.geojson")
    (work / "town.net.xml").write_text(TOWN_NET)
    (work / "drawing.svg").write_text(DRAWING_SVG)
    for name in ("tune_spaces", "bench", "cluster.yaml", "job_runtime_env.yaml"):
        (work / name).symlink_to(ROOT / name)


def _check_cluster_command(command: str) -> None:
    """`ray up|dashboard|down cluster.yaml`: the file Ray would read is valid (no AWS here)."""
    import copy

    from ray.autoscaler._private.util import prepare_config, validate_config

    sys.path.insert(0, str(ROOT / "tests"))
    from test_cluster import _load, check_cluster

    assert "cluster.yaml" in command.split()
    config, text = _load()
    validate_config(prepare_config(copy.deepcopy(config)))
    check_cluster(config, text)


def _submitted_entrypoint(command: str, work: Path) -> str:
    """Check `ray job submit`'s flags; return the entrypoint (after `--`)."""
    head, sep, entrypoint = command.partition(" -- ")
    assert sep, f"no entrypoint in {command}"
    flags = shlex.split(head)
    assert flags[:3] == ["ray", "job", "submit"]
    assert flags[flags.index("--working-dir") + 1] == "."
    env_file = flags[flags.index("--runtime-env") + 1]
    assert (ROOT / env_file).is_file()
    return entrypoint


def _cluster_env(work: Path) -> dict:
    """The cluster's storage variables (cluster.yaml's settings), as local folders: values for
    the parser (tests/test_jobs.py runs the jobs against an S3 server)."""
    shared, s3 = work / "shared", work / "s3"
    for folder in (shared, s3):
        folder.mkdir(exist_ok=True)
    return {"DISTPAINT_S3": str(s3), "DISTPAINT_SHARED": str(shared),
            "DISTPAINT_MLFLOW": f"sqlite:///{work / 'cluster-mlflow.db'}"}


def _check_entrypoint_parses(entrypoint: str, env: dict) -> None:
    """A job entrypoint that is not run here: every `distpaint` command in it parses with the
    CLI's own parser (flags exist, values have their types, required ones are given), its
    --config and --space load, its --model is shipped, and every $VARIABLE it reads is one that
    cluster.yaml sets on the nodes."""
    import typer

    from distpaint.cli import app
    from distpaint.commands.train import _resolve_config
    from distpaint.tune.space import load_space
    from distpaint.weights import shipped_models

    shell = shlex.split(entrypoint)
    inner = shell[2] if shell[:2] == ["sh", "-c"] else entrypoint
    cluster = (ROOT / "cluster.yaml").read_text()
    for var in re.findall(r"\$\{?(\w+)", inner):
        assert var in env and var in cluster, f"{var}: not set on the cluster's nodes"
    group = typer.main.get_command(app)
    for part in re.split(r"\s*&&\s*", inner):
        args = [re.sub(r"\$\{?(\w+)\}?", lambda m: env[m[1]], a) for a in shlex.split(part)]
        if args[:1] != ["distpaint"]:
            continue
        with group.make_context("distpaint", args[1:], resilient_parsing=True) as parent:
            sub = group.get_command(parent, args[1])
            assert sub is not None, f"no command {args[1]!r}: {part}"
            ctx = sub.make_context(args[1], args[2:], parent=parent)  # raises on a bad flag
        params = ctx.params
        if params.get("config"):
            _resolve_config(params["config"])
        if params.get("space"):
            load_space(ROOT / params["space"])
        if params.get("model"):
            assert params["model"] in shipped_models(), part


def _needs_steps(command: str) -> str:
    """Cluster jobs train with the recipe's steps: cap them here."""
    if re.search(r"distpaint (train|tune)\b", command) and "--max-steps" not in command:
        command = re.sub(r"(distpaint (train|tune)\b)", r"\1 --max-steps 4", command)
    return command


def test_readme_opens_with_the_two_commands():
    lang, body, _ = blocks(README.read_text())[0]
    assert lang == "bash"
    assert [c.split()[:2] for c in commands(body)] == [["make", "demo"], ["make", "test"]]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_command_block_runs(tmp_path):
    from distpaint.weights import shipped_models

    if "roads" not in shipped_models():
        pytest.fail("the README's examples use the shipped `roads` model, which is missing")
    work = tmp_path / "work"
    work.mkdir()
    _inputs(work)
    runner = Runner(work)
    ran = {"bash": 0, "python": 0}
    for lang, body, line in blocks(README.read_text())[1:]:
        if lang == "python":
            out = runner.run(f"python - <<'PY'\n{body}PY")
            assert out.strip(), f"README.md:{line}: the Python example printed nothing"
            ran["python"] += 1
            continue
        assert lang == "bash", f"README.md:{line}: a code block without a runnable language ({lang!r})"
        for command in commands(body):
            ran["bash"] += 1
            if command.startswith("pip install"):
                import ray

                pins = re.findall(r"ray\[default\]==([\d.]+)", command)
                assert pins == [ray.__version__], f"README.md:{line}: {command}"
                assert f"rayproject/ray:{ray.__version__}" in (ROOT / "cluster.yaml").read_text()
            elif re.match(r"ray (up|dashboard|down)\b", command):
                _check_cluster_command(command.rstrip(" &"))
            elif command.startswith("ray job submit"):
                # these very lines run as jobs on a real `ray start --head` against the S3
                # server in tests/test_jobs.py (Ray starts once there for all of them)
                _check_entrypoint_parses(_submitted_entrypoint(command, work), _cluster_env(work))
            elif command.startswith("mlflow ui"):
                runner.mlflow_ui(command)
            elif re.search(r"bench/real_targets\.py\b", command):
                # exit status 1: a target missed on these few drawings (a measurement); the
                # command itself must run and report its checks
                out = runner.run(tiny(command), ok=(0, 1))
                assert re.search(r"\d+ of \d+ checks pass", out), f"README.md:{line}: {out}"
            elif re.match(r"distpaint tune\b", command):
                # a sweep costs ~75 s here; tests/test_tune_resume.py runs this command's shape
                # with its defaults (storage ./runs, the sweep's own MLflow store, best_config.yaml)
                _check_entrypoint_parses(command, {})
            else:
                runner.run(tiny(command))
    assert ran["python"] >= 1 and ran["bash"] >= 20, ran

    # What the commands promise, spot-checked
    from distpaint.data.store import MaskStore

    repaired = MaskStore.open(work / "repaired.zarr")
    damaged = MaskStore.open(work / "damaged.zarr")
    for name in damaged.names():
        assert (repaired.array(name)[:] >= damaged.array(name)[:]).all()
    assert (work / "field_repaired.tif").is_file() and (work / "field_repaired_2x2.tif").is_file()
    import rasterio

    with rasterio.open(work / "field_repaired.tif") as ds, rasterio.open(work / "field.tif") as src:
        assert ds.crs == src.crs and ds.transform == src.transform
    assert (work / "quality" / "quality.md").is_file()
    # --keep: the default (bridges) and attached keep pieces of the raw output (all)
    with rasterio.open(work / "field_repaired.tif") as a, rasterio.open(work / "field_attached.tif") as b, \
            rasterio.open(work / "field_raw.tif") as c:
        bridges, attached, raw = (ds.read(1) > 0 for ds in (a, b, c))
    assert (raw >= bridges).all() and (raw >= attached).all()
    # rasterize: one sample per file; the real benchmark and its report
    assert MaskStore.open(work / "streets.zarr").names() == ["streets", "town"]
    assert MaskStore.open(work / "lines.zarr").names() == ["drawing"]
    assert (work / "runs" / "real" / "manifest.json").is_file()
    assert (work / "quality" / "real" / "quality.json").is_file()
