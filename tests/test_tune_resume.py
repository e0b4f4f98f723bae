"""An interrupted sweep resumes: `distpaint tune` (its own local Ray, in a subprocess) is stopped
with SIGTERM once both trials have written a checkpoint; it exits 130 with the sweep marked
unfinished. Re-running the same command restores the Tuner, and the trainer resumes each
unfinished trial from its run's latest checkpoint (a second worker start at step > 0) instead of
starting over; the sweep then completes every trial and MLflow still holds 1 parent and 2
children (the resumed trials continue their child runs).

The command is the README's local sweep (tests/test_readme.py only parses it): no --storage and
no --mlflow-uri, so the sweep lives in ./runs/NAME with its own MLflow store and best_config.yaml.

Run: .venv/bin/python -m pytest tests/test_tune_resume.py -q     (~2-3 min on 2 cores)
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES, STEPS, EVERY = 2, 8, 2

pytestmark = [pytest.mark.slow, pytest.mark.cost(180)]


def _cmd() -> list[str]:
    # the defaults: storage ./runs (the subprocess runs in the test's folder), the sweep's own store
    return [str(ROOT / ".venv" / "bin" / "distpaint"), "tune", "--space", str(ROOT / "tune_spaces" / "lambdas.yaml"),
            "--config", "tiny", "--num-samples", str(SAMPLES), "--max-steps", str(STEPS), "--report-every", str(EVERY),
            "--scheduler", "fifo", "--name", "r", "--verbose", "0"]


def _env(tmp_path: Path) -> dict:
    # the subprocess starts a private local Ray: no token files, quick report barriers
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", MLFLOW_DISABLE_TELEMETRY="true",
               RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.1")
    env.pop("RAY_ADDRESS", None)
    return env


def test_interrupted_sweep_resumes_from_trial_checkpoints(tmp_path):
    storage = tmp_path / "runs"  # tune's default storage, in the command's working folder
    runs = storage / "r" / "runs"
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(_cmd(), stdout=log, stderr=subprocess.STDOUT, env=_env(tmp_path), cwd=tmp_path)
    deadline = time.time() + 400
    try:
        while not (runs.is_dir() and len(list(runs.iterdir())) == SAMPLES
                   and all(any(d.glob("checkpoints/step_*")) for d in runs.iterdir())):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no checkpoints in time"
            time.sleep(1)
        proc.send_signal(signal.SIGTERM)  # a scheduler's stop: graceful, like Ctrl-C
        assert proc.wait(timeout=180) == 130, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in (tmp_path / "first.log").read_text()
    with open(storage / "r" / "summary.csv") as fh:
        first = list(csv.DictReader(fh))
    assert any(r["status"] == "unfinished" for r in first)

    second = subprocess.run(_cmd(), capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path,
                            timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming sweep" in second.stdout
    with open(storage / "r" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == SAMPLES and all(r["status"] == "completed" and r["steps"] == str(STEPS) for r in rows)
    assert (storage / "r" / "best_config.yaml").is_file() and (storage / "r" / "summary.md").is_file()
    starts = [[json.loads(line) for line in (d / "workers" / "starts.jsonl").read_text().splitlines()]
              for d in sorted(runs.iterdir())]
    assert len(starts) == SAMPLES  # the resumed sweep did not start new trials
    resumed = [s for s in starts if len(s) > 1]
    assert resumed, starts
    assert all(s[-1]["start_step"] > 0 for s in resumed)  # from the trial's checkpoint, not from step 0

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{storage / 'r' / 'mlflow.db'}")
    runs_ = client.search_runs([client.get_experiment_by_name("distpaint-tune").experiment_id])
    parents = [r for r in runs_ if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs_ if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == SAMPLES and all(c.info.status == "FINISHED" for c in children)
    for c in children:
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "val/rel_component_diff")]
        assert steps and steps[-1] == STEPS  # the resumed trial continued its child run to the end
