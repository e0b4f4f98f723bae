"""The re-composer as a Ray actor: one per training run, named after it (Algorithm 1, step 8).

Each rank sends its step's Bernoulli-sampled patches and their positions; the actor pastes
every rank's patches into the ground-truth whole mask (the `InMemoryRecomposer` logic, wrapped,
not re-implemented) and returns the same `GlobalView` to every rank once all ranks have sent
theirs, so every rank scores the same X_hat with D_G (and `distpaint.train.ddp` broadcasts
rank 0's score): the reward is identical on every rank at a step.

- Only the view window is read: the window around the step's patches (at most
  `LossConfig.global_max_size` per side, 4096 by default) is read from the training store
  through a cache of decoded chunks bounded in bytes (`cache_bytes`; `distpaint.train.windows`),
  never a whole mask: a 50k x 50k mask costs the actor a few windows, not 2.5 GB.
- One round trip per composition: the client's `put` only stages the patches, `global_view`
  sends them and waits for the composed view (`RecomposerService.compose`). Masks travel as
  packed bits both ways (8x fewer bytes: at paper settings a 2500 x 1000 view pair is 0.6 MB
  instead of 5 MB; packing costs ~0.1 ms), and the view of a step is packed once for all ranks.
  The reply also says how long the call waited for the other ranks (`actor_wait` in the step's
  breakdown: rank skew, not the actor's cost).
- Restarts of the worker group: the group of a run that lost a worker starts a new *session*
  (a token rank 0 draws from the clock and broadcasts); the actor drops everything of older
  sessions (staged patches of the dead attempt would otherwise be mixed into the re-run steps)
  and refuses calls from them.
- Restarts of the actor: Ray restarts a killed actor (`max_restarts=-1`; its state is only
  staged patches and cached chunks, rebuilt from the ranks and the store). Calls that were in
  flight fail; every rank then learns from the others whether all of them got the step's view
  (`agree`, an all-reduce the worker supplies) and if not, all send their patches again: a rank
  that did get the view before the actor died is needed too, since the new actor has none of
  its patches. A call that reaches the actor twice is answered once composed, never counted
  twice. The step goes on exactly as without the fault.

    handle = create_recomposer("run-1", store_path, max_size=4096, margin=256)
    rec = ActorRecomposer(get_recomposer("run-1"), session, rank=0, world_size=2, agree=all_ok)
    rec.put(name, step, patches, ys, xs, rank=0); view = rec.global_view(name, step)

Needs Ray (driver and workers); the training step only sees the `Recomposer` interface.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, NamedTuple

import numpy as np

from distpaint.data.store import MaskStore
from distpaint.train.recompose import GlobalView, InMemoryRecomposer
from distpaint.train.windows import ChunkCache, StoreWindows

# Ray is imported inside the functions that call it: `distpaint.train.distributed` imports this
# module, and importing that must not load Ray (the CLI imports it at start-up for the demo).

__all__ = ["NAMESPACE", "RecomposerService", "ActorRecomposer", "PackedView", "actor_name", "create_recomposer",
           "get_recomposer", "new_session", "pack_patches", "unpack_patches", "StaleSession"]

NAMESPACE = "distpaint"
"""Ray namespace of the re-composer actors (so workers of the run find the driver's actor)."""


class PackedView(NamedTuple):
    """A `GlobalView` as packed bits (what travels between the actor and the ranks)."""

    x_hat: np.ndarray
    """`np.packbits` of X_hat (flattened)."""
    truth: np.ndarray
    """`np.packbits` of the truth window (flattened)."""
    shape: tuple[int, int]
    """(h, w) of the window."""
    origin: tuple[int, int]
    """Window's top-left corner in the whole mask."""

    @classmethod
    def pack(cls, view: GlobalView) -> "PackedView":
        return cls(np.packbits(view.x_hat), np.packbits(view.truth), view.x_hat.shape, view.origin)

    def unpack(self) -> GlobalView:
        n = self.shape[0] * self.shape[1]
        bits = lambda b: np.unpackbits(b, count=n).reshape(self.shape).view(bool)  # noqa: E731
        return GlobalView(bits(self.x_hat), bits(self.truth), tuple(self.origin))


def pack_patches(patches: np.ndarray) -> np.ndarray:
    """(m, P, Q) bool/0-1 -> packed bits along the last axis (m, P, ceil(Q / 8)) uint8."""
    return np.packbits(np.asarray(patches, dtype=bool), axis=-1)


def unpack_patches(bits: np.ndarray, width: int) -> np.ndarray:
    """Inverse of `pack_patches` for patches `width` pixels wide."""
    return np.unpackbits(bits, axis=-1, count=width).view(bool)


class StaleSession(RuntimeError):
    """A call from a worker group that has been replaced by a newer one."""


def actor_name(run_name: str) -> str:
    """Name of run `run_name`'s re-composer actor (one per run)."""
    return f"recomposer:{run_name}"


DEFAULT_CACHE_BYTES = 1 << 30
"""Default budget of the actor's chunk cache: sixty-four 4096 x 4096 windows of one layer, or
every chunk of four 16384 x 16384 masks (then as fast as masks held whole: bench/
recomposer_windows.py), and still 1 GiB with masks of any size (a 50000^2 mask is 2.5 GB)."""


class RecomposerService:
    """The actor's class (an asyncio actor: `compose` calls of all ranks wait concurrently)."""

    def __init__(self, store_path: str, *, layer: str = "mask", background_layer: str | None = None,
                 max_size: int = 4096, margin: int = 256, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 timeout_s: float = 600.0, max_open: int = 256) -> None:
        """`layer`: the complete masks Y; `background_layer`: a layer of corrupted whole masks X
        to compose into (None: Y, `distpaint.train.recompose`); `cache_bytes`: budget of the
        decoded chunks kept; `max_open`: samples whose (small) array handles are kept open."""
        self.store_path = store_path
        self.layer = layer
        self.background_layer = background_layer
        self.max_size = max_size
        self.margin = margin
        self.timeout_s = timeout_s
        self.max_open = max_open
        self.cache = ChunkCache(cache_bytes)
        self.composed = 0
        self._store = None
        self._open: OrderedDict[str, tuple[StoreWindows, StoreWindows | None]] = OrderedDict()
        self._session = -1
        self._reset()

    def _reset(self) -> None:
        """Forget every step's patches and views (open masks and cached chunks stay)."""
        # keep_steps=2: a rank may be one step ahead while a slow rank composes the last one
        self._rec = InMemoryRecomposer(self.max_size, self.margin, keep_steps=2)
        for name, (truth, background) in self._open.items():
            self._rec.add_mask(name, truth, background)
        self._ranks: dict[tuple, set[int]] = {}
        self._done: dict[tuple, asyncio.Event] = {}
        self._views: dict[tuple, PackedView] = {}
        self._aborted: set[tuple] = set()

    # ---- masks -----------------------------------------------------------------------------
    def _load(self, name: str) -> None:
        """Open mask `name`'s layers on first use (metadata only: windows are read per step);
        close the least recently used beyond `max_open` (never the one in use)."""
        if name in self._open:
            self._open.move_to_end(name)
            return
        if self._store is None:
            self._store = MaskStore.open(self.store_path)
        truth = StoreWindows(self._store.array(name, self.layer), (name, self.layer), self.cache)
        background = None
        if self.background_layer is not None:
            background = StoreWindows(self._store.array(name, self.background_layer),
                                      (name, self.background_layer), self.cache)
        self._open[name] = (truth, background)
        self._rec.add_mask(name, truth, background)
        while len(self._open) > self.max_open:
            old, _ = self._open.popitem(last=False)
            self._rec.discard(old)

    # ---- remote methods ----------------------------------------------------------------------
    def _check_session(self, session: int) -> None:
        if session < self._session:
            raise StaleSession(f"session {session} was replaced by {self._session}")
        if session > self._session:  # a new worker group: forget the old one's steps
            for event in self._done.values():
                event.set()  # release waiters of the old session (they then fail)
            self._session = session
            self._reset()

    async def compose(self, session: int, name: str, step: int, tag: str, rank: int, world_size: int,
                      patches: np.ndarray, ys: np.ndarray, xs: np.ndarray, width: int | None = None,
                      attempt: int = 0) -> tuple[PackedView, float] | None:
        """Add rank `rank`'s patches at corners `ys`, `xs` for (`name`, `step`, `tag`), wait
        until all `world_size` ranks have added theirs; returns the packed global view and the
        seconds this call waited for the other ranks. `patches` are `(m, P, Q)` bool, or packed
        bits (`pack_patches`) when `width` (= Q) is given. `attempt` counts the times the ranks
        have sent this composition after a failure (module docstring): None if that attempt was
        aborted. The same rank's patches sent again add nothing: the call waits for, or gets,
        the same view."""
        self._check_session(session)
        key = (name, int(step), tag, int(attempt))
        if key in self._aborted:
            return None
        ranks = self._ranks.setdefault(key, set())
        if rank not in ranks:
            if width is not None:
                patches = unpack_patches(patches, width)
            self._load(name)
            self._rec.put(name, int(step), patches, ys, xs, rank=rank, tag=self._tag(key))
            ranks.add(rank)
        done = self._done.setdefault(key, asyncio.Event())
        waited = 0.0
        if key in self._views:
            pass
        elif len(ranks) == world_size:
            self._views[key] = PackedView.pack(self._rec.global_view(name, int(step), tag=self._tag(key)))
            self.composed += 1
            self._forget_before(int(step) - 2)
            done.set()
        else:
            start = time.perf_counter()
            try:
                await asyncio.wait_for(done.wait(), self.timeout_s)
            except asyncio.TimeoutError:
                raise TimeoutError(f"re-composer: only ranks {sorted(ranks)} of {world_size} sent "
                                   f"patches for {key[:3]} within {self.timeout_s} s") from None
            waited = time.perf_counter() - start
        if key in self._aborted and session == self._session:
            return None
        if session != self._session or key not in self._views:
            raise StaleSession(f"session {session} was replaced by {self._session}")
        return self._views[key], waited

    def abort(self, session: int, name: str, step: int, tag: str, attempt: int) -> None:
        """Give up attempt `attempt` of a composition (a rank's call of it failed): calls of
        it waiting now, and any made later, return None at once."""
        self._check_session(session)
        key = (name, int(step), tag, int(attempt))
        self._aborted.add(key)
        if key in self._done:
            self._done[key].set()

    @staticmethod
    def _tag(key: tuple) -> str:
        """The `InMemoryRecomposer` tag of (name, step, tag, attempt): attempts kept apart."""
        return key[2] if key[3] == 0 else f"{key[2]}@{key[3]}"

    def _forget_before(self, step: int) -> None:
        for key in [k for k in self._done if k[1] < step]:
            self._views.pop(key, None)
            self._ranks.pop(key, None)
            self._done.pop(key, None)
        self._aborted = {k for k in self._aborted if k[1] >= step}

    def stats(self) -> dict[str, Any]:
        """The actor's state, for tests and monitoring: session, process and node, views
        composed, ranks waiting per step, open masks, and the chunk cache (masks in it, bytes
        held, bytes read from the store, largest single read)."""
        import ray  # deferred: see the note at the imports

        waiting = {"/".join(map(str, k)): sorted(r) for k, r in self._ranks.items() if k not in self._views}
        return {"session": self._session, "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
                "composed": self.composed, "waiting": waiting, "pending": len(self._done),
                "open": list(self._open), "cached": [f"{n}/{layer}" for n, layer in self.cache.masks()],
                "cached_bytes": self.cache.nbytes, "cache_budget": self.cache.max_bytes,
                "bytes_read": self.cache.bytes_read, "largest_read": self.cache.largest_read}


def create_recomposer(run_name: str, store_path: str, *, max_size: int = 4096, margin: int = 256,
                      layer: str = "mask", num_cpus: float = 0.0, resources: dict | None = None,
                      cache_bytes: int = DEFAULT_CACHE_BYTES, timeout_s: float = 600.0) -> Any:
    """Start run `run_name`'s actor (fails if one is already running: one driver per run).
    `num_cpus`/`resources` place it (0 CPUs by default: it mostly copies memory). Ray restarts
    it whenever its process dies, for as long as the driver lives (module docstring)."""
    import ray  # deferred: see the note at the imports

    cls = ray.remote(RecomposerService)
    return cls.options(name=actor_name(run_name), namespace=NAMESPACE, num_cpus=num_cpus,
                       resources=resources or {}, max_restarts=-1, max_concurrency=1000).remote(
        str(store_path), layer=layer, max_size=max_size, margin=margin, cache_bytes=cache_bytes,
        timeout_s=timeout_s)


def get_recomposer(run_name: str) -> Any:
    """Handle of run `run_name`'s actor (from a worker)."""
    import ray  # deferred: see the note at the imports

    return ray.get_actor(actor_name(run_name), namespace=NAMESPACE)


class ActorRecomposer:
    """`Recomposer` client of the actor for one rank (see the module docstring).

    `timer`, if given, times each round trip as phase "actor", less the time the actor
    reports having waited for the other ranks, which goes to phase "actor_wait".

    `agree(ok)`, a collective over the ranks (the worker's all-reduce), returns whether every
    rank's call succeeded; calls that failed because the actor died are then sent again by all
    ranks, for up to `retry_s` seconds. Without it, a failed call is sent again only with one
    rank (with several, a rank that did get its view would never send its patches again), and
    raised otherwise: the worker group then restarts from the last checkpoint."""

    def __init__(self, handle: Any, session: int, rank: int, world_size: int, timer: Any = None,
                 agree: Callable[[bool], bool] | None = None, retry_s: float = 120.0) -> None:
        self.handle = handle
        self.session = session
        self.rank = rank
        self.world_size = world_size
        self.timer = timer
        self.agree = agree
        self.retry_s = retry_s
        self.retries = 0
        """Compositions sent again after a failure (for the status file and the fault test)."""
        self._staged: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def put(self, name: str, step: int, patches: np.ndarray, ys: np.ndarray, xs: np.ndarray,
            *, rank: int = 0, tag: str = "sample") -> None:
        if rank != self.rank:
            raise ValueError(f"this client is rank {self.rank}, got patches of rank {rank}")
        patches = np.asarray(patches)
        self._staged[(name, int(step), tag)] = (pack_patches(patches), patches.shape[-1],
                                                np.asarray(ys), np.asarray(xs))

    def global_view(self, name: str, step: int, *, tag: str = "sample") -> GlobalView:
        try:
            bits, width, ys, xs = self._staged.pop((name, int(step), tag))
        except KeyError:
            raise KeyError(f"no patches were put for mask {name!r}, step {step}, tag {tag!r}") from None
        with self.timer("actor") if self.timer is not None else nullcontext():
            packed, waited = self._compose(self.session, name, int(step), tag, self.rank, self.world_size,
                                           bits, ys, xs, width)
            view = packed.unpack()  # fresh, writable arrays
        if self.timer is not None:  # waiting for the other ranks is rank skew, not actor work
            self.timer.move("actor", "actor_wait", waited)
        return view

    def _compose(self, *args: Any) -> tuple[PackedView, float]:
        """One composition; while any rank's call failed, every rank sends it again as the next
        attempt (class and module docstrings)."""
        import ray  # deferred: see the note at the imports

        deadline = time.monotonic() + self.retry_s
        for attempt in itertools.count():
            result, error = None, None
            try:
                result = ray.get(self.handle.compose.remote(*args, attempt=attempt))
            except ray.exceptions.RayActorError as exc:  # died (or unreachable) mid-call
                error = exc
            ok = result is not None  # None: this attempt was aborted by another rank
            if self.agree is not None:
                if not ok:
                    # release the ranks waiting for this attempt in the (restarted) actor, so
                    # that they too reach the agreement instead of waiting for our patches
                    self._call(deadline, self.handle.abort, self.session, *args[1:4], attempt)
                if self.agree(ok):
                    return result
            elif ok:
                return result
            elif self.world_size > 1:
                raise error
            else:
                time.sleep(0.2)  # alone: wait for the actor's restart and send again
            if time.monotonic() > deadline:
                raise error or RuntimeError(f"re-composer: calls of other ranks failed for {self.retry_s} s")
            self.retries += 1
        raise AssertionError("unreachable")

    def _call(self, deadline: float, method: Any, *args: Any) -> Any:
        """`method.remote(*args)`'s result, asked again while the actor restarts (until
        `deadline`)."""
        import ray  # deferred: see the note at the imports

        while True:
            try:
                return ray.get(method.remote(*args))
            except ray.exceptions.RayActorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # a restarting actor refuses calls until its constructor has run

    def stats(self) -> dict[str, Any]:
        """The actor's `stats()`, asked again while it restarts (up to `retry_s`)."""
        return self._call(time.monotonic() + self.retry_s, self.handle.stats)


def new_session() -> int:
    """A session token larger than any earlier one (nanoseconds since the epoch)."""
    return time.time_ns()
