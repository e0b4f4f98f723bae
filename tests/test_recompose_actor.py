"""The re-composer Ray actor (distpaint.train.actor) on a real local Ray: every rank gets the
same global view, equal to the in-memory re-composer's, only once all ranks sent their patches;
masks are read lazily and cached within a byte budget; a new session drops the old one's steps."""

from __future__ import annotations

import numpy as np
import pytest

from distpaint.data.store import MaskStore
from distpaint.train.actor import (ActorRecomposer, PackedView, StaleSession, create_recomposer, pack_patches,
                                   unpack_patches)
from distpaint.train.recompose import GlobalView, InMemoryRecomposer
from distpaint.train.timing import PhaseTimer


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    store = MaskStore.create(tmp_path_factory.mktemp("actor") / "masks.zarr")
    for i in range(3):
        store.write(f"m{i}", {"mask": rng.random((300, 200)) < 0.1}, chunks=64)
    return store


def _patches(rng, m=3, p=32):
    return (rng.random((m, p, p)) < 0.5).astype(np.uint8)


def test_packing_round_trips():
    rng = np.random.default_rng(0)
    patches = rng.random((3, 16, 24)) < 0.5
    np.testing.assert_array_equal(unpack_patches(pack_patches(patches), 24), patches)
    view = GlobalView(rng.random((13, 7)) < 0.5, rng.random((13, 7)) < 0.5, (4, 5))
    back = PackedView.pack(view).unpack()
    np.testing.assert_array_equal(back.x_hat, view.x_hat)
    np.testing.assert_array_equal(back.truth, view.truth)
    assert back.origin == (4, 5) and back.x_hat.flags.writeable


def test_every_rank_gets_the_in_memory_view(ray_local, store):
    ray = ray_local
    actor = create_recomposer("test-views", store.path, max_size=4096, margin=8)
    try:
        # the actor is up before rank 0 calls: otherwise rank 1's call could run first on a
        # slow start and rank 0 would find the step complete (no wait to measure)
        ray.get(actor.stats.remote())
        rng = np.random.default_rng(1)
        p0, p1 = _patches(rng), _patches(rng)
        ys0, xs0 = np.array([0, 40, 100]), np.array([0, 50, 150])
        ys1, xs1 = np.array([200, 250, 10]), np.array([10, 100, 120])
        r0 = actor.compose.remote(7, "m1", 5, "sample", 0, 2, p0, ys0, xs0)
        ready, _ = ray.wait([r0], timeout=1.0)
        assert not ready  # rank 0 waits for rank 1's patches
        r1 = actor.compose.remote(7, "m1", 5, "sample", 1, 2, p1, ys1, xs1)
        (pv0, wait0), (pv1, wait1) = ray.get([r0, r1])
        v0, v1 = pv0.unpack(), pv1.unpack()
        assert wait0 > 0 and wait1 == 0.0  # rank 0 waited for rank 1, rank 1 completed the step
        ref = InMemoryRecomposer(4096, 8)
        ref.add_mask("m1", store.array("m1")[...])
        ref.put("m1", 5, p1, ys1, xs1, rank=1)
        ref.put("m1", 5, p0, ys0, xs0, rank=0)
        want = ref.global_view("m1", 5)
        for v in (v0, v1):
            np.testing.assert_array_equal(v.x_hat, want.x_hat)
            np.testing.assert_array_equal(v.truth, want.truth)
            assert v.origin == want.origin
        # the patches really are in the view, and the mask around them is the truth
        np.testing.assert_array_equal(v0.x_hat[200 - v0.origin[0]:232 - v0.origin[0], 10:42], p1[0].astype(bool))
        stats = ray.get(actor.stats.remote())
        assert stats["cached"] == ["m1"]  # read lazily: only the mask in use
    finally:
        ray.kill(actor)


def test_client_is_a_recomposer_and_times_the_actor(ray_local, store):
    ray = ray_local
    actor = create_recomposer("test-client", store.path, max_size=64, margin=0)
    try:
        timer = PhaseTimer()
        client = ActorRecomposer(actor, session=1, rank=0, world_size=1, timer=timer)
        rng = np.random.default_rng(2)
        patches = _patches(rng, m=2, p=16)
        client.put("m0", 0, patches, np.array([0, 200]), np.array([0, 150]), rank=0)
        view = client.global_view("m0", 0)
        assert view.x_hat.shape == (64, 64)  # bounded global view, centred on the patches
        assert view.x_hat.flags.writeable
        assert timer.seconds["actor"] > 0 and timer.seconds["actor_wait"] == 0.0  # one rank: no waiting
        with pytest.raises(KeyError):
            client.global_view("m0", 1)
    finally:
        ray.kill(actor)


def test_cache_is_bounded_in_bytes(ray_local, store):
    ray = ray_local
    actor = create_recomposer("test-cache", store.path, cache_bytes=2 * 300 * 200)
    try:
        rng = np.random.default_rng(3)
        for step, name in enumerate(["m0", "m1", "m2", "m0"]):
            ray.get(actor.compose.remote(1, name, step, "sample", 0, 1, _patches(rng), np.array([0, 50, 100]),
                                         np.array([0, 0, 0])))
        stats = ray.get(actor.stats.remote())
        assert stats["cached"] == ["m2", "m0"]  # least recently used first, m1 evicted
        assert stats["cached_bytes"] <= 2 * 300 * 200
    finally:
        ray.kill(actor)


def test_new_session_drops_the_old_one(ray_local, store):
    ray = ray_local
    actor = create_recomposer("test-session", store.path)
    try:
        rng = np.random.default_rng(4)
        stale = _patches(rng)
        # a worker group of session 1 died after rank 1 sent its patches of step 3
        old = actor.compose.remote(1, "m0", 3, "sample", 1, 2, stale, np.array([0, 50, 100]), np.array([0, 0, 0]))
        # the restarted group (session 2) re-runs step 3: rank 1's stale patches must not count
        fresh = [_patches(rng) for _ in range(2)]
        r0 = actor.compose.remote(2, "m0", 3, "sample", 0, 2, fresh[0], np.array([0, 50, 100]), np.array([100, 100, 100]))
        with pytest.raises(ray.exceptions.RayTaskError) as err:
            ray.get(old)
        assert isinstance(err.value.as_instanceof_cause(), StaleSession)
        ready, _ = ray.wait([r0], timeout=1.0)
        assert not ready  # still waits for session 2's rank 1
        r1 = actor.compose.remote(2, "m0", 3, "sample", 1, 2, fresh[1], np.array([0, 50, 100]), np.array([0, 0, 0]))
        v0, v1 = (packed.unpack() for packed, _ in ray.get([r0, r1]))
        np.testing.assert_array_equal(v0.x_hat, v1.x_hat)
        np.testing.assert_array_equal(v0.x_hat[0:32, 0:32], fresh[1][0].astype(bool))
        with pytest.raises(ray.exceptions.RayTaskError):  # calls of the old session are refused
            ray.get(actor.compose.remote(1, "m0", 4, "sample", 0, 2, stale, np.array([0]), np.array([0])))
    finally:
        ray.kill(actor)
