"""Releasing the placement groups of Ray Train worker groups whose workers are all dead.

A trial that ASHA stops loses its Ray Train controller abruptly (Tune kills the trial's actor,
and the controller shares its fate). Ray Train's detached PlacementGroupCleaner is meant to
remove the worker group's placement group then, but it misses some: CI once found one 0.9-CPU
group of a stopped trial still reserved 60 s after a 3-trial sweep (tests/test_tune.py), which
is enough to make the next trial of a sweep on a small instance wait forever. Ray itself frees
such a group only when the job that created it ends, i.e. after the whole sweep.

So the sweep's driver sweeps up after the cleaner (`GroupReleaser`, a Tune callback): a live
placement group that holds Ray Train workers (actors of class `RayTrainWorker`) of this job, all
of them dead, is removed. That is safe: a worker group whose workers all died is never used
again (its controller, if still alive, replaces the whole group and removes the old one itself;
removing a removed group is a no-op), and a group being started has live or pending workers.
It needs the state API (the dashboard, as `distpaint.ray_connect` starts it); without it the
releaser logs once and does nothing.

    from distpaint.tune.placement import release_orphaned_groups
    release_orphaned_groups()          # -> ids of the groups it removed
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import ray
import ray._private.worker
from ray._raylet import PlacementGroupID
from ray.tune import Callback
from ray.util import placement_group_table
from ray.util.placement_group import PlacementGroup, remove_placement_group
from ray.util.state import list_actors

__all__ = ["WORKER_CLASS", "train_workers", "orphaned_groups", "release_orphaned_groups", "GroupReleaser"]

log = logging.getLogger(__name__)

WORKER_CLASS = "RayTrainWorker"
"""Class name of Ray Train's worker actors (ray.train.v2 worker_group/worker.py)."""


def _dashboard() -> str | None:
    """The dashboard (state API server) of the Ray instance this process is connected to. Left
    to itself, the state API client scans the machine for Ray instances and refuses when it
    finds several (another user's or test's Ray beside ours)."""
    try:
        url = ray._private.worker.get_dashboard_url()
    except Exception:  # not connected, or a Ray without a dashboard: the client's own search
        return None
    if not url:
        return None
    return url if "://" in url else f"http://{url}"


def train_workers(job_id: str | None = None) -> list:
    """Ray Train worker actors (dead ones too) of job `job_id` (None: of every job), from the
    state API."""
    # matched here, not by the API's filter, which compares the qualified name
    actors = list_actors(address=_dashboard(), detail=True, limit=10_000,
                         raise_on_missing_output=False, timeout=10)
    return [a for a in actors if a.class_name.rsplit(".", 1)[-1] == WORKER_CLASS
            and (job_id is None or a.job_id == job_id)]


def orphaned_groups(job_id: str | None = None) -> list[str]:
    """Hex ids of the live placement groups that hold Ray Train workers (of job `job_id`; None:
    of any job), every one of them dead."""
    live = {pg_id for pg_id, pg in placement_group_table().items() if pg.get("state") != "REMOVED"}
    if not live:
        return []
    states: dict[str, list[str]] = defaultdict(list)
    for actor in train_workers(job_id):
        if actor.placement_group_id in live:
            states[actor.placement_group_id].append(actor.state)
    return sorted(pg for pg, s in states.items() if all(state == "DEAD" for state in s))


def release_orphaned_groups(job_id: str | None = None) -> list[str]:
    """Remove the groups `orphaned_groups(job_id)` names; returns their ids."""
    released = []
    for pg_id in orphaned_groups(job_id):
        remove_placement_group(PlacementGroup(PlacementGroupID(bytes.fromhex(pg_id))))
        log.warning("released placement group %s: its Ray Train workers are dead (a stopped trial) "
                    "but it still reserved their resources", pg_id)
        released.append(pg_id)
    return released


def _current_job() -> str:
    return ray.get_runtime_context().get_job_id()


def _workers_alive(job_id: str) -> bool:
    return any(a.state != "DEAD" for a in train_workers(job_id))


class GroupReleaser(Callback):
    """Tune callback of the sweep's driver: releases orphaned worker groups of this job after
    every trial that ends and at most every `interval_s` while the sweep runs (a trial's workers
    die a moment after Tune reports it stopped); `finish()`, called by the sweep after
    `Tuner.fit`, waits (up to `final_wait_s`) for this job's workers to die and releases once
    more."""

    def __init__(self, interval_s: float = 5.0, final_wait_s: float = 30.0) -> None:
        self.interval_s = interval_s
        self.final_wait_s = final_wait_s
        self.released: list[str] = []
        self._job: str | None = None
        self._next = 0.0
        self._disabled = False

    def _release(self) -> None:
        if self._disabled:
            return
        try:
            self._job = self._job or _current_job()
            self.released += release_orphaned_groups(self._job)
        except Exception as exc:  # no state API (no dashboard): Ray Train's cleaner is all there is
            self._disabled = True
            log.warning("cannot look for orphaned placement groups (%s); stopped trials may keep "
                        "their CPUs reserved until the sweep ends", exc)
        self._next = time.monotonic() + self.interval_s

    def on_step_begin(self, iteration, trials, **info) -> None:
        if time.monotonic() >= self._next:
            self._release()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._release()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._release()

    def finish(self) -> None:
        """The end-of-sweep pass (also safe to call again)."""
        deadline = time.monotonic() + self.final_wait_s
        try:
            self._job = self._job or _current_job()
            while _workers_alive(self._job) and time.monotonic() < deadline:
                time.sleep(0.5)
        except Exception:
            pass
        self._release()
