"""The re-composer Ray actor (distpaint.train.actor) on a real local Ray: every rank gets the
same global view, equal to the in-memory re-composer's, only once all ranks sent their patches;
only the view windows are read from the store (byte for byte the in-memory views, at the mask
borders too), through a chunk cache bounded in bytes, even from a 50000 x 50000 mask, and from
a bucket; a new session drops the old one's steps; a killed actor is restarted and the ranks
send the step again to get the same view; a call sent twice counts once."""

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
        assert stats["cached"] == ["m1/mask"] and stats["open"] == ["m1"]  # read lazily: only the mask in use
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


def test_chunk_cache_is_bounded_in_bytes(ray_local, store):
    ray = ray_local
    actor = create_recomposer("test-cache", store.path, cache_bytes=2 * 300 * 200)
    try:
        rng = np.random.default_rng(3)
        for step, name in enumerate(["m0", "m1", "m2", "m0"]):
            ray.get(actor.compose.remote(1, name, step, "sample", 0, 1, _patches(rng), np.array([0, 50, 100]),
                                         np.array([0, 0, 0])))
        stats = ray.get(actor.stats.remote())
        assert stats["cached"] == ["m2/mask", "m0/mask"]  # least recently used first, m1 evicted
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


# ---- windows read from the store (no Ray: the actor's class and its recomposer in-process) ----

def _steps(rng, shape, p=32, count=12):
    """Corner sets of `count` steps: random ones, and ones against each border and corner (windows
    clipped by the mask's edges)."""
    h, w = shape
    fixed = [([0, 0], [0, 40]), ([h - p, h - p], [w - p, 0]), ([0, h - p], [w - p, w - p]),
             ([h // 2, h - p], [0, 3]), ([5, 7], [w - p - 1, w // 2])]
    out = [(np.array(ys), np.array(xs)) for ys, xs in fixed]
    for _ in range(count - len(fixed)):
        m = int(rng.integers(1, 5))
        out.append((rng.integers(0, h - p + 1, m), rng.integers(0, w - p + 1, m)))
    return out


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    """A store of two masks with a corrupted layer each, chunked finely (64 x 64 px chunks of
    1000 x 700 and 700 x 1000 masks, the last ones partial: windows cross many chunk borders)."""
    rng = np.random.default_rng(5)
    store = MaskStore.create(tmp_path_factory.mktemp("windows") / "masks.zarr")
    for name, shape in (("a", (1000, 700)), ("b", (700, 1000))):
        truth = rng.random(shape) < 0.2
        store.write(name, {"mask": truth, "gaps": truth & (rng.random(shape) < 0.7)}, chunks=64)
    return store


@pytest.mark.parametrize("cache_bytes", [0, 40_000, 64 << 20])  # none, evicting within a window, all
@pytest.mark.parametrize("background", [None, "gaps"])
def test_windowed_views_are_the_in_memory_views_byte_for_byte(layered, cache_bytes, background):
    import asyncio

    from distpaint.train.actor import RecomposerService

    service = RecomposerService(str(layered.path), background_layer=background, max_size=300, margin=40,
                                cache_bytes=cache_bytes)
    ref = InMemoryRecomposer(300, 40)
    for name in ("a", "b"):
        ref.add_mask(name, layered.array(name)[...], None if background is None else layered.array(name, background)[...])
    rng = np.random.default_rng(6)
    step = 0
    for name in ("a", "b", "a"):  # back to a: its chunks come from the cache where they fit
        for ys, xs in _steps(rng, layered.shape(name)):
            patches = rng.random((len(ys), 32, 32)) < 0.5
            ref.put(name, step, patches, ys, xs)
            want = ref.global_view(name, step)
            got = asyncio.run(service.compose(1, name, step, "sample", 0, 1, pack_patches(patches), ys, xs, 32))
            view = got[0].unpack()
            assert view.origin == want.origin
            for a, b in ((view.x_hat, want.x_hat), (view.truth, want.truth)):
                assert a.dtype == b.dtype == bool and a.shape == b.shape and a.tobytes() == b.tobytes()
            step += 1
    assert service.cache.nbytes <= cache_bytes
    whole = sum(np.prod(layered.shape(n)) for n in ("a", "b")) * (1 if background is None else 2)
    if cache_bytes == 64 << 20:  # every chunk read once, however often its window came back
        assert service.cache.bytes_read <= whole


def test_a_huge_mask_is_read_a_window_at_a_time(tmp_path):
    """A 50000 x 50000 mask (2.5 GB as bools) made lazily: two shards written, the others never
    stored (background, per the store's shard record). Views at its corners, centre and across
    shard borders read only their windows: the actor's cache stays within its budget and no
    read exceeds one chunk-aligned window."""
    import asyncio
    import tracemalloc

    import zarr

    from distpaint.data.integrity import record_shards
    from distpaint.data.store import compressors
    from distpaint.train.actor import RecomposerService

    side, max_size, budget = 50_000, 4096, 48 << 20
    store = MaskStore.create(tmp_path / "huge.zarr")
    group = zarr.open_group(store.path, mode="r+").create_group("huge", attributes={"shape": [side, side]})
    array = group.create_array("mask", shape=(side, side), chunks=(1024, 1024), shards=(4096, 4096), dtype=bool,
                               fill_value=False, compressors=compressors())
    rng = np.random.default_rng(7)
    corner = rng.random((4096, 4096)) < 0.05
    array[:4096, :4096] = corner
    last = side - side % 4096
    far = rng.random((side - last, side - last)) < 0.05
    array[last:, last:] = far
    record_shards(array)
    assert len(list((store.path / "huge" / "mask" / "c").rglob("*"))) < 10  # two shard files

    service = RecomposerService(str(store.path), max_size=max_size, margin=256, cache_bytes=budget)
    places = [(0, 0), (side - 64, side - 64), (side // 2, side // 2), (4096 - 32, 4096 - 32), (last - 40, 100)]
    tracemalloc.start()
    try:
        for step, (y, x) in enumerate(places):
            ys, xs = np.array([y, max(0, y - 3000)]), np.array([x, min(side - 64, x + 3000)])
            patches = np.ones((2, 64, 64), bool)
            view = asyncio.run(service.compose(1, "huge", step, "sample", 0, 1, patches, ys, xs))[0].unpack()
            y0, x0 = view.origin
            h, w = view.truth.shape
            assert h <= max_size and w <= max_size
            np.testing.assert_array_equal(view.truth, store.array("huge")[y0:y0 + h, x0:x0 + w])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    window = (max_size + 2 * 1024) ** 2  # a window's chunk-aligned box, at most
    assert service.cache.nbytes <= budget
    assert service.cache.largest_read <= window
    assert service.cache.bytes_read <= len(places) * window < side * side // 10
    # the cache, a box, the window, X_hat, their packing and this test's copies: not the 2.5 GB mask
    assert peak < budget + 4 * window < side * side // 10
    # the written shards' pixels came through
    np.testing.assert_array_equal(view.truth, store.array("huge")[y0:y0 + h, x0:x0 + w])


# ---- the actor killed ------------------------------------------------------------------------

def _agreement(world: int):
    """`agree` of ActorRecomposer for ranks that are threads of this process (the worker uses
    an all-reduce): every rank gets whether all ranks' calls succeeded."""
    import threading

    votes: list[bool] = []
    barrier = threading.Barrier(world)

    def agree(ok: bool) -> bool:
        votes.append(ok)
        barrier.wait(timeout=200)
        out = all(votes[-world:])
        barrier.wait(timeout=200)  # all have read the round's votes before the next round's
        return out

    return agree


def _wait_for(ray, actor, predicate, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stats = ray.get(actor.stats.remote(), timeout=10)
            if predicate(stats):
                return stats
        except ray.exceptions.RayError:  # restarting, or slow
            pass
        time.sleep(0.05)
    raise AssertionError("the actor never reached the expected state")


def test_a_killed_actor_is_restarted_and_the_ranks_send_the_step_again(ray_local, store):
    """Rank 0 waits in the actor for rank 1 when the actor is killed: rank 0's call fails, the
    actor restarts (and reads its window again), rank 1 calls the new actor; both agree that a
    call failed, send the step again and get the view an uninterrupted actor gives."""
    import threading

    ray = ray_local
    # bounded waits everywhere: a failure here must not leave a call waiting for 600 s
    actor = create_recomposer("test-kill", store.path, max_size=4096, margin=8, timeout_s=120)
    try:
        first = ray.get(actor.stats.remote(), timeout=60)
        agree = _agreement(2)
        clients = [ActorRecomposer(actor, 3, rank, 2, agree=agree, retry_s=90) for rank in (0, 1)]
        rng = np.random.default_rng(8)
        parts = [(_patches(rng), np.array([0, 40, 100]), np.array([0, 50, 150])),
                 (_patches(rng), np.array([200, 250, 10]), np.array([10, 100, 120]))]
        views: dict = {}

        def rank(r):
            try:
                clients[r].put("m2", 9, *parts[r], rank=r)
                views[r] = clients[r].global_view("m2", 9)
            except BaseException as exc:  # reported below
                views[r] = exc

        t0 = threading.Thread(target=rank, args=(0,), daemon=True)
        t0.start()
        _wait_for(ray, actor, lambda s: s["waiting"] == {"m2/9/sample/0": [0]})
        ray.kill(actor, no_restart=False)  # rank 0's call is in the actor
        t1 = threading.Thread(target=rank, args=(1,), daemon=True)
        t1.start()
        t0.join(240), t1.join(240)
        ref = InMemoryRecomposer(4096, 8)
        ref.add_mask("m2", store.array("m2")[...])
        for r in (0, 1):
            ref.put("m2", 9, *parts[r], rank=r)
        want = ref.global_view("m2", 9)
        for r in (0, 1):
            assert isinstance(views[r], GlobalView), views[r]
            assert views[r].x_hat.tobytes() == want.x_hat.tobytes() and views[r].origin == want.origin
            assert views[r].truth.tobytes() == want.truth.tobytes()
        assert clients[0].retries >= 1 and clients[0].retries == clients[1].retries  # they agreed
        now = ray.get(actor.stats.remote(), timeout=60)
        assert now["pid"] != first["pid"] and now["composed"] == 1 and now["bytes_read"] > 0
    finally:
        ray.kill(actor)


def test_a_call_sent_twice_is_counted_once(ray_local, store):
    """A retried call that did reach the actor (the reply was lost) adds nothing: the rank
    waits for, or gets, the same view; an aborted attempt answers None at once."""
    ray = ray_local
    actor = create_recomposer("test-twice", store.path, max_size=4096, margin=8, timeout_s=120)
    try:
        rng = np.random.default_rng(9)
        p0, p1 = _patches(rng), _patches(rng)
        a = actor.compose.remote(4, "m0", 1, "sample", 0, 2, p0, np.array([0, 40, 80]), np.array([0, 0, 0]))
        b = actor.compose.remote(4, "m0", 1, "sample", 0, 2, p0, np.array([0, 40, 80]), np.array([0, 0, 0]))
        ready, _ = ray.wait([a, b], timeout=1.0)
        assert not ready  # rank 0 twice is still one rank of two
        c = actor.compose.remote(4, "m0", 1, "sample", 1, 2, p1, np.array([200, 240, 100]), np.array([0, 0, 0]))
        views = [pv.unpack() for pv, _ in ray.get([a, b, c], timeout=60)]
        assert views[0].x_hat.tobytes() == views[1].x_hat.tobytes() == views[2].x_hat.tobytes()
        again = ray.get(actor.compose.remote(4, "m0", 1, "sample", 1, 2, p1, np.array([200, 240, 100]),
                                             np.array([0, 0, 0])), timeout=60)
        assert again[0].unpack().x_hat.tobytes() == views[0].x_hat.tobytes()
        assert ray.get(actor.stats.remote(), timeout=60)["composed"] == 1
        waiting = actor.compose.remote(4, "m0", 2, "sample", 0, 2, p0[:1], np.array([0]), np.array([0]), attempt=1)
        ray.get(actor.abort.remote(4, "m0", 2, "sample", 1), timeout=60)
        assert ray.get(waiting, timeout=30) is None
        assert ray.get(actor.compose.remote(4, "m0", 2, "sample", 1, 2, p1[:1], np.array([0]), np.array([0]),
                                            attempt=1), timeout=60) is None
    finally:
        ray.kill(actor)


def test_windows_are_read_from_object_storage(s3):
    """The actor's class on a store in a bucket (the moto server, over HTTP): the same views as
    the in-memory re-composer, with only the windows' chunks read."""
    import asyncio

    from distpaint.train.actor import RecomposerService

    rng = np.random.default_rng(10)
    truth = rng.random((700, 500)) < 0.2
    url = s3.url("masks.zarr")
    MaskStore.create(url).write("m", {"mask": truth}, chunks=128)
    service = RecomposerService(url, max_size=256, margin=16, cache_bytes=1 << 20)
    ref = InMemoryRecomposer(256, 16)
    ref.add_mask("m", truth)
    for step, (ys, xs) in enumerate(_steps(rng, truth.shape, count=5)):
        patches = rng.random((len(ys), 32, 32)) < 0.5
        ref.put("m", step, patches, ys, xs)
        want = ref.global_view("m", step)
        view = asyncio.run(service.compose(1, "m", step, "sample", 0, 1, patches, ys, xs))[0].unpack()
        assert view.origin == want.origin
        assert view.x_hat.tobytes() == want.x_hat.tobytes() and view.truth.tobytes() == want.truth.tobytes()
    assert service.cache.largest_read <= (256 + 2 * 128) ** 2 < truth.size
