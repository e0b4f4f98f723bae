"""distpaint.tune.placement on a real local Ray: a placement group whose Ray Train workers all
died is released, and nothing else is (live workers, other actors' groups, empty groups).
The workers here are actors of a class named like Ray Train's (the releaser matches the class
name); tests/test_tune.py checks that a real sweep's workers carry that name.

Run: .venv/bin/python -m pytest tests/test_placement.py -q
"""

from __future__ import annotations

import time

import pytest

from distpaint.tune import placement
from distpaint.tune.placement import WORKER_CLASS, GroupReleaser, orphaned_groups, release_orphaned_groups


def _actor_classes():
    # defined in a function, so that Ray ships them by value (workers cannot import tests/)
    class RayTrainWorker:  # the name is what matters
        def ping(self) -> int:
            return 1

    class OtherActor:
        def ping(self) -> int:
            return 1

    return RayTrainWorker, OtherActor


RayTrainWorker, OtherActor = _actor_classes()


def _state(pg) -> str:
    from ray.util import placement_group_table

    return placement_group_table(pg)["state"]


def _dead(actor) -> None:
    import ray
    from ray.util.state import get_actor

    actor_id = actor._actor_id.hex()
    ray.kill(actor)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if get_actor(actor_id, address=placement._dashboard()).state == "DEAD":  # our Ray's, not any
            return
        time.sleep(0.2)
    raise AssertionError("the killed actor never showed as DEAD")


@pytest.fixture
def group(ray_local):
    """A factory: (placement group, actor of `cls` running in it)."""
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    made = []

    def make(cls, with_actor: bool = True):
        pg = placement_group([{"CPU": 0.25}])
        ray_local.get(pg.ready(), timeout=30)
        made.append(pg)
        if not with_actor:
            return pg, None
        actor = ray_local.remote(num_cpus=0.25)(cls).options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=pg)).remote()
        assert ray_local.get(actor.ping.remote(), timeout=60) == 1
        return pg, actor

    yield make
    for pg in made:
        remove_placement_group(pg)


def test_the_group_of_dead_workers_is_released_and_only_it(group, ray_local):
    assert RayTrainWorker.__name__ == WORKER_CLASS
    job = ray_local.get_runtime_context().get_job_id()
    orphan, worker = group(RayTrainWorker)
    alive, running = group(RayTrainWorker)  # (a dropped handle would end the actor)
    other, other_actor = group(OtherActor)
    empty, _ = group(RayTrainWorker, with_actor=False)
    assert orphan.id.hex() not in orphaned_groups(job)  # its worker still runs

    _dead(worker)
    _dead(other_actor)
    assert orphaned_groups(job) == [orphan.id.hex()]
    assert orphaned_groups("ffffffff") == []  # another job's workers: none here
    assert release_orphaned_groups(job) == [orphan.id.hex()]
    assert _state(orphan) == "REMOVED"
    assert {_state(alive), _state(other), _state(empty)} == {"CREATED"}
    assert release_orphaned_groups(job) == []  # nothing left to do
    assert ray_local.get(running.ping.remote()) == 1


def test_the_sweep_callback_releases_and_removing_twice_is_harmless(group, ray_local):
    from ray.util.placement_group import remove_placement_group

    orphan, worker = group(RayTrainWorker)
    _dead(worker)
    releaser = GroupReleaser(interval_s=0.0, final_wait_s=5.0)
    releaser.on_step_begin(0, [])
    assert releaser.released == [orphan.id.hex()] and _state(orphan) == "REMOVED"
    remove_placement_group(orphan)  # what a surviving controller does afterwards: no error
    releaser.finish()
    assert releaser.released == [orphan.id.hex()]
