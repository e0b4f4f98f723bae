"""Fault tolerance on a real local Ray: a training worker process is killed (SIGKILL of its PID,
read from the worker status files) in the middle of a run; Ray Train restarts the worker group
from the last checkpoint, the run finishes with exactly the configured number of optimisation
steps, and every checkpoint on disk loads."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import yaml

from distpaint.errors import ConfigError
from distpaint.train.checkpoint import load_generator, load_train_state
from distpaint.train.config import config_from_dict, packaged_config
from distpaint.train.distributed import DistributedConfig, train_distributed

pytestmark = pytest.mark.cost(70)  # seconds on 2 idle cores: started first by `make test`

STEPS, K = 24, 4


def _read(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_worker_restarts_from_last_checkpoint(ray_local, tmp_path):
    data = yaml.safe_load(packaged_config("tiny").read_text())
    data.update(checkpoint_every=K, log_every=K, keep_checkpoints=10)
    cfg = config_from_dict(data)
    out = tmp_path / "kill"
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["summary"] = train_distributed(cfg, out, max_steps=STEPS,
                                                   options=DistributedConfig(num_workers=2, max_failures=2))
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=fit)
    thread.start()
    victim = None
    deadline = time.time() + 240
    while thread.is_alive() and time.time() < deadline:
        status = _read(out / "workers" / "rank_1.json")
        if status and status["step"] >= K and (out / "checkpoints" / f"step_{K:08d}").is_dir():
            time.sleep(0.3)  # into the next checkpoint interval: mid-step, not at a barrier
            victim = status
            os.kill(status["pid"], signal.SIGKILL)  # a real kill of the worker process
            break
        time.sleep(0.02)
    thread.join(timeout=300)
    assert victim is not None, f"no worker to kill before the run ended: {outcome}"
    assert "error" not in outcome, outcome.get("error")
    assert not _alive(victim["pid"])

    summary = outcome["summary"]
    assert summary["step"] == STEPS
    final = out / "checkpoints" / f"step_{STEPS:08d}"
    state = load_train_state(final)
    # every optimiser took exactly STEPS steps: the lost steps were redone from the checkpoint,
    # none counted twice
    assert {int(s["step"]) for key in ("opt_g", "opt_d_local", "opt_d_global")
            for s in state[key]["state"].values()} == {STEPS}

    starts = [json.loads(line) for line in (out / "workers" / "starts.jsonl").read_text().splitlines()]
    sessions = sorted({s["session"] for s in starts})
    assert len(sessions) == 2, starts  # one restart
    restart = [s for s in starts if s["session"] == sessions[1]]
    assert {s["rank"] for s in restart} == {0, 1}
    # from the last checkpoint: the one the victim had reported (or, if killed between its
    # status write and the report's barrier, the one before)
    (resumed_at,) = {s["start_step"] for s in restart}
    assert resumed_at in (victim["step"], victim["step"] - K) and resumed_at >= K
    assert victim["step"] < STEPS
    assert victim["pid"] not in {s["pid"] for s in restart}

    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == [f"step_{s:08d}" for s in range(K, STEPS + 1, K)]
    for name in names:  # no checkpoint is corrupt
        assert load_train_state(out / "checkpoints" / name)["step"] == int(name.split("_")[1])
        load_generator(out / "checkpoints" / name)
    r0, r1 = (_read(out / "workers" / f"rank_{r}.json") for r in (0, 1))
    assert r0["digests"] == r1["digests"] and r0["rewards"] == r1["rewards"]


def test_a_worker_group_that_cannot_be_placed_fails_the_run_instead_of_waiting(ray_local, tmp_path, monkeypatch):
    """Every CPU of the (never growing) local instance is held by someone else: the run fails
    after `placement_retries` start-up timeouts rather than retrying forever (Ray's default)."""
    from ray.util.placement_group import placement_group, remove_placement_group

    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "2")  # propagated to Ray Train's controller
    held = placement_group([{"CPU": ray_local.cluster_resources()["CPU"]}])
    ray_local.get(held.ready(), timeout=60)
    try:
        data = yaml.safe_load(packaged_config("tiny").read_text())
        with pytest.raises(Exception, match="(?i)worker group"):
            train_distributed(config_from_dict(data), tmp_path / "blocked", max_steps=4,
                              options=DistributedConfig(num_workers=1, placement_retries=1, mlflow=False,
                                                        val_data="none"))
    finally:
        remove_placement_group(held)


def test_placement_retries_are_unlimited_on_a_cluster_and_two_on_a_local_instance(monkeypatch):
    from distpaint.train.distributed import _placement_retries, default_placement_retries

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # joined a cluster: its autoscaler may add nodes
    assert default_placement_retries() == -1
    monkeypatch.delenv("RAY_ADDRESS")
    assert default_placement_retries() == 2
    assert _placement_retries(DistributedConfig(placement_retries=5)) == 5
    with pytest.raises(ConfigError, match="placement_retries"):
        DistributedConfig(placement_retries=-2)
