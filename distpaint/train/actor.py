"""The re-composer as a Ray actor: one per training run, named after it (Algorithm 1, step 8).

Each rank sends its step's Bernoulli-sampled patches and their positions; the actor pastes
every rank's patches into the ground-truth whole mask (the `InMemoryRecomposer` logic, wrapped,
not re-implemented) and returns the same `GlobalView` to every rank once all ranks have sent
theirs, so every rank scores the same X_hat with D_G (and `distpaint.train.ddp` broadcasts
rank 0's score): the reward is identical on every rank at a step.

- Whole masks are read from the training store on first use (`MaskStore.array(name)[:]`), and
  kept in an LRU cache bounded in bytes (`cache_bytes`); the global view is bounded by
  `LossConfig.global_max_size` (default 4096 x 4096) around the step's patches.
- One round trip per composition: the client's `put` only stages the patches, `global_view`
  sends them and waits for the composed view (`RecomposerService.compose`). Masks travel as
  packed bits both ways (8x fewer bytes: at paper settings a 2500 x 1000 view pair is 0.6 MB
  instead of 5 MB; packing costs ~0.1 ms), and the view of a step is packed once for all ranks.
  The reply also says how long the call waited for the other ranks (`actor_wait` in the step's
  breakdown: rank skew, not the actor's cost).
- Restarts: the worker group of a run that lost a worker starts a new *session* (a token rank 0
  draws from the clock and broadcasts); the actor drops everything of older sessions (staged
  patches of the dead attempt would otherwise be mixed into the re-run steps) and refuses calls
  from them.

    handle = create_recomposer("run-1", store_path, world_size=2, max_size=4096, margin=256)
    rec = ActorRecomposer(get_recomposer("run-1"), session, rank=0, world_size=2)
    rec.put(name, step, patches, ys, xs, rank=0); view = rec.global_view(name, step)

Needs Ray (driver and workers); the training step only sees the `Recomposer` interface.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from contextlib import nullcontext
from typing import Any, NamedTuple

import numpy as np

from distpaint.data.store import MaskStore
from distpaint.train.recompose import GlobalView, InMemoryRecomposer

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


class RecomposerService:
    """The actor's class (an asyncio actor: `compose` calls of all ranks wait concurrently)."""

    def __init__(self, store_path: str, *, layer: str = "mask", max_size: int = 4096, margin: int = 256,
                 cache_bytes: int = 4 << 30, timeout_s: float = 600.0) -> None:
        self.store_path = store_path
        self.layer = layer
        self.max_size = max_size
        self.margin = margin
        self.cache_bytes = cache_bytes
        self.timeout_s = timeout_s
        self._store = None
        self._sizes: OrderedDict[str, int] = OrderedDict()  # cached masks, least recent first
        self._cached: dict[str, np.ndarray] = {}
        self._session = -1
        self._reset()

    def _reset(self) -> None:
        """Forget every step's patches and views (cached masks stay)."""
        # keep_steps=2: a rank may be one step ahead while a slow rank composes the last one
        self._rec = InMemoryRecomposer(self.max_size, self.margin, keep_steps=2)
        for name, truth in self._cached.items():
            self._rec.add_mask(name, truth)
        self._ranks: dict[tuple, set[int]] = {}
        self._done: dict[tuple, asyncio.Event] = {}
        self._views: dict[tuple, GlobalView] = {}

    # ---- masks -----------------------------------------------------------------------------
    def _load(self, name: str) -> None:
        """Read whole mask `name` on first use; evict least recently used masks beyond the
        byte budget (never the one in use)."""
        if name in self._cached:
            self._sizes.move_to_end(name)
            return
        if self._store is None:
            self._store = MaskStore.open(self.store_path)
        truth = np.asarray(self._store.array(name, self.layer)[...], dtype=bool)
        self._cached[name] = truth
        self._sizes[name] = truth.nbytes
        self._rec.add_mask(name, truth)
        while sum(self._sizes.values()) > self.cache_bytes and len(self._sizes) > 1:
            old, _ = self._sizes.popitem(last=False)
            self._cached.pop(old)
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
                      patches: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                      width: int | None = None) -> tuple[PackedView, float]:
        """Add rank `rank`'s patches at corners `ys`, `xs` for (`name`, `step`, `tag`), wait
        until all `world_size` ranks have added theirs; returns the packed global view and the
        seconds this call waited for the other ranks. `patches` are `(m, P, Q)` bool, or packed
        bits (`pack_patches`) when `width` (= Q) is given."""
        self._check_session(session)
        if width is not None:
            patches = unpack_patches(patches, width)
        key = (name, int(step), tag)
        ranks = self._ranks.setdefault(key, set())
        if rank in ranks:
            raise ValueError(f"rank {rank} sent patches for {key} twice in session {session}")
        self._load(name)
        self._rec.put(name, int(step), patches, ys, xs, rank=rank, tag=tag)
        ranks.add(rank)
        done = self._done.setdefault(key, asyncio.Event())
        waited = 0.0
        if len(ranks) == world_size:
            self._views[key] = PackedView.pack(self._rec.global_view(name, int(step), tag=tag))
            self._forget_before(int(step) - 2)
            done.set()
        else:
            start = time.perf_counter()
            try:
                await asyncio.wait_for(done.wait(), self.timeout_s)
            except asyncio.TimeoutError:
                raise TimeoutError(f"re-composer: only ranks {sorted(ranks)} of {world_size} sent "
                                   f"patches for {key} within {self.timeout_s} s") from None
            waited = time.perf_counter() - start
        if session != self._session or key not in self._views:
            raise StaleSession(f"session {session} was replaced by {self._session}")
        return self._views[key], waited

    def _forget_before(self, step: int) -> None:
        for key in [k for k in self._done if k[1] < step]:
            self._views.pop(key, None)
            self._ranks.pop(key, None)
            self._done.pop(key, None)

    def stats(self) -> dict[str, Any]:
        """Cached masks, session and the actor's node (for tests and monitoring)."""
        import ray  # deferred: see the note at the imports

        return {"session": self._session, "cached": list(self._sizes), "cached_bytes": sum(self._sizes.values()),
                "pending": len(self._done), "node_id": ray.get_runtime_context().get_node_id()}


def create_recomposer(run_name: str, store_path: str, *, max_size: int = 4096, margin: int = 256,
                      layer: str = "mask", num_cpus: float = 0.0, resources: dict | None = None,
                      cache_bytes: int = 4 << 30) -> Any:
    """Start run `run_name`'s actor (fails if one is already running: one driver per run).
    `num_cpus`/`resources` place it (0 CPUs by default: it mostly copies memory)."""
    import ray  # deferred: see the note at the imports

    cls = ray.remote(RecomposerService)
    return cls.options(name=actor_name(run_name), namespace=NAMESPACE, num_cpus=num_cpus,
                       resources=resources or {}, max_restarts=3, max_concurrency=1000).remote(
        str(store_path), layer=layer, max_size=max_size, margin=margin, cache_bytes=cache_bytes)


def get_recomposer(run_name: str) -> Any:
    """Handle of run `run_name`'s actor (from a worker)."""
    import ray  # deferred: see the note at the imports

    return ray.get_actor(actor_name(run_name), namespace=NAMESPACE)


class ActorRecomposer:
    """`Recomposer` client of the actor for one rank (see the module docstring).

    `timer`, if given, times each round trip as phase "actor", less the time the actor
    reports having waited for the other ranks, which goes to phase "actor_wait"."""

    def __init__(self, handle: Any, session: int, rank: int, world_size: int, timer: Any = None) -> None:
        self.handle = handle
        self.session = session
        self.rank = rank
        self.world_size = world_size
        self.timer = timer
        self._staged: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def put(self, name: str, step: int, patches: np.ndarray, ys: np.ndarray, xs: np.ndarray,
            *, rank: int = 0, tag: str = "sample") -> None:
        if rank != self.rank:
            raise ValueError(f"this client is rank {self.rank}, got patches of rank {rank}")
        patches = np.asarray(patches)
        self._staged[(name, int(step), tag)] = (pack_patches(patches), patches.shape[-1],
                                                np.asarray(ys), np.asarray(xs))

    def global_view(self, name: str, step: int, *, tag: str = "sample") -> GlobalView:
        import ray  # deferred: see the note at the imports

        try:
            bits, width, ys, xs = self._staged.pop((name, int(step), tag))
        except KeyError:
            raise KeyError(f"no patches were put for mask {name!r}, step {step}, tag {tag!r}") from None
        with self.timer("actor") if self.timer is not None else nullcontext():
            ref = self.handle.compose.remote(self.session, name, int(step), tag, self.rank,
                                             self.world_size, bits, ys, xs, width)
            packed, waited = ray.get(ref)
            view = packed.unpack()  # fresh, writable arrays
        if self.timer is not None:  # waiting for the other ranks is rank skew, not actor work
            self.timer.move("actor", "actor_wait", waited)
        return view


def new_session() -> int:
    """A session token larger than any earlier one (nanoseconds since the epoch)."""
    return time.time_ns()
