"""Fault injected into a real distributed training run (Ray Train, 2 DDP workers, the `tiny`
recipe made smaller): the run's re-composer actor is killed twice while a rank waits in it for
the other's patches, first with `ray.kill(handle, no_restart=False)`, then with SIGKILL of its
process. Ray restarts it, it reads its windows from the store again, the ranks agree that a call
failed and send the step again: the run goes on in the same worker group (no restart from a
checkpoint) and its final checkpoint equals an uninterrupted run's byte for byte (G's model.pt)
and tensor for tensor (discriminators, optimisers, reward baseline, RNG states).

Both runs share the test session's local Ray and run side by side (half a CPU per worker).

Run: .venv/bin/python -m pytest tests/faults/test_fault_recomposer.py -q     (~50 s on 2 cores)
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch
import yaml

from distpaint.train.actor import get_recomposer
from distpaint.train.config import config_from_dict, packaged_config
from distpaint.train.distributed import DistributedConfig, train_distributed
from state_equal import same_state

pytestmark = [pytest.mark.fault, pytest.mark.cost(40)]

STEPS = 12


def _config():
    data = yaml.safe_load(packaged_config("tiny").read_text())
    data.update(checkpoint_every=STEPS, log_every=STEPS, keep_checkpoints=1)
    data["data"].update(n_masks=2, batch_size=2, mask_size=128)
    return config_from_dict(data)


def _start(out, outcome: dict) -> threading.Thread:
    options = DistributedConfig(num_workers=2, cpus_per_worker=0.5, mlflow=False, val_data="none", max_failures=1)

    def fit() -> None:
        try:
            outcome["summary"] = train_distributed(_config(), out, max_steps=STEPS, options=options)
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=fit, daemon=True)  # a hung run fails the test, never blocks the exit
    thread.start()
    return thread


def _kill_while_a_rank_waits(ray, name: str, after: int, how: str, deadline: float) -> dict:
    """Once the actor of run `name` has composed `after` views (since its last start) and a rank
    waits in it, kill it `how` ("ray.kill" or "SIGKILL"); its stats just before."""
    while time.monotonic() < deadline:
        try:
            stats = ray.get(get_recomposer(name).stats.remote(), timeout=10)
        except (ValueError, ray.exceptions.RayError):  # not created yet, or restarting
            time.sleep(0.05)
            continue
        if stats["composed"] >= after and stats["waiting"]:
            if how == "ray.kill":
                ray.kill(get_recomposer(name), no_restart=False)
            else:
                os.kill(stats["pid"], signal.SIGKILL)
            return stats
        time.sleep(0.005)
    raise AssertionError(f"no moment to kill the actor of {name} ({how})")


def test_killed_recomposer_actor_is_restarted_and_the_run_ends_with_the_same_weights(ray_local, tmp_path):
    ray = ray_local
    ref_out, run_out = tmp_path / "ref", tmp_path / "run"
    ref, run = {}, {}
    threads = [_start(ref_out, ref), _start(run_out, run)]
    deadline = time.monotonic() + 240
    try:
        first = _kill_while_a_rank_waits(ray, "run", 2, "ray.kill", deadline)
        second = _kill_while_a_rank_waits(ray, "run", 2, "SIGKILL", deadline)
    finally:
        for thread in threads:
            thread.join(timeout=300)
    assert "error" not in ref and "error" not in run, (ref.get("error"), run.get("error"))
    assert first["pid"] != second["pid"]  # the second kill hit the restarted actor
    assert run["summary"]["step"] == ref["summary"]["step"] == STEPS

    # recovered inside the step: one worker group (one session), no restart from a checkpoint
    starts = [json.loads(line) for line in (run_out / "workers" / "starts.jsonl").read_text().splitlines()]
    assert len({s["session"] for s in starts}) == 1 and len(starts) == 2, starts
    ranks = [json.loads((run_out / "workers" / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["recomposer_retries"] == ranks[1]["recomposer_retries"] >= 1  # they agreed to resend
    assert ranks[0]["digests"] == ranks[1]["digests"]

    last = f"step_{STEPS:08d}"
    got, want = run_out / "checkpoints" / last, ref_out / "checkpoints" / last
    assert (got / "model.pt").read_bytes() == (want / "model.pt").read_bytes()  # G: the same bytes
    a, b = (torch.load(d / "train_state.pt", weights_only=False) for d in (got, want))
    a["rng"].pop("python"), b["rng"].pop("python")  # OS-seeded in every process, never drawn from
    assert same_state(a, b)
    ref_ranks = [json.loads((ref_out / "workers" / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["rewards"] == ref_ranks[0]["rewards"]  # every step's reward, as uninterrupted
