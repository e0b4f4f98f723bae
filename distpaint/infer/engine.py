"""Streaming inference: mask bytes flow source -> tile -> model -> Zarr in constant memory.

`run_inference(source, predictor, targets, config)` reads tile windows (tile plus halo, see
`distpaint.infer.tiling`) on reader threads ahead of the model, batches windows of equal shape,
runs the predictor on the calling thread (torch releases the GIL, so reading, the forward and
writing overlap), turns probabilities into pixels (threshold, or Bernoulli sampling keyed by
seed and pixel position) and hands them to one writer thread that assembles whole shards of
the target Zarr arrays and writes each shard once, when its last tile is done. Memory is
bounded by the read-ahead, one batch and the shards being assembled, whatever the mask size.

- skip-empty: a tile whose window (tile plus halo) holds no foreground is not sent to the
  model. Its output is the model's output on an all-background window of the same shape,
  computed once per window shape (`EmptyWindows`): the tile sees nothing but its window, so
  this is exact for any model. A trained inpainter maps empty context to background, so the
  cached answer is "nothing" and a skipped tile costs only its read.
- keep-input: output = input OR model fill, so inference never deletes a user's pixel.
- keep (which added pieces to keep, `distpaint.infer.keep`): all of them, those attached to
  the input (`--drop-islands`), or only those that bridge; judged on each tile's window.
- sampling: the uniform number of pixel (y, x) is a hash of (seed, y, x), so the sampled mask
  is the same whatever the tiling, batching or thread timing.

    stats = run_inference(zarr_array, predictor, {"mask": out, "added": added}, InferConfig())

`shards` restricts a run to some shards of the targets and `on_shard` is told when each is
written (the job layer keeps a manifest of finished shards with it, so a killed run resumes
shard by shard and the Ray path gives each actor whole shards).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np

from distpaint.data.store import DEFAULT_CHUNKS, DEFAULT_SHARDS, shard_blocks
from distpaint.errors import ConfigError
from distpaint.infer.keep import NO_REPAIR, check_keep, check_min_confidence, keep_added
from distpaint.infer.predictor import Predictor
from distpaint.infer.refine import bridges_of, check_refinement, refinement_of
from distpaint.infer.tiling import Tile, TileGrid, auto_tile, read_window, round_up
from distpaint.infer.upsample import check_upsample

__all__ = [
    "InferConfig",
    "InferStats",
    "ShardCounts",
    "EmptyWindows",
    "as_source",
    "make_grid",
    "output_layout",
    "pixel_uniforms",
    "decide",
    "run_inference",
]

Progress = Callable[[int, int], None]
"""progress(tiles_done, tiles_total), called on the calling thread."""
Origin = tuple[int, int]
"""(y0, x0): top-left pixel of a shard of the targets."""


@dataclass
class InferConfig:
    """How to tile, batch and binarise."""

    tile: int | None = None
    """Side of a tile's output core; a multiple of the model's down-sampling factor. None =
    `distpaint.infer.tiling.auto_tile` of the halo: 1024 for halos up to 160 px, 1536 for the
    288-px halo of the shipped roads model (the output does not depend on it, only speed and
    memory do)."""
    halo: int | None = None
    """Context on each side of a tile; None = the model's receptive radius. Smaller than the
    receptive radius is refused (the result would depend on the tiling); rounded up to the
    down-sampling factor."""
    batch: int = 1
    """Tiles (of equal window shape) per forward pass. 1 (the CLI's default on CPU) keeps a
    forward's memory to one window, which matters with `auto_tile`'s 1536-px tiles; GPUs want
    more (the CLI's --gpu default is 8)."""
    threshold: float = 0.5
    """Foreground where the probability is > threshold (unless `sample`)."""
    sample: bool = False
    """Draw each pixel as Bernoulli(probability) instead of thresholding."""
    seed: int = 0
    """Seed of the Bernoulli sampling (tiling-invariant)."""
    views: int = 1
    """Test-time augmentation: mean probabilities over this many flips/transposes of each
    window (1, 2, 4 or 8; costs that many forward passes). Not in the paper: off by default,
    measured in docs/HISTORY.md (`distpaint.infer.refine`)."""
    passes: int = 1
    """Iterative repair: run the model this many times, each pass on the input OR the previous
    pass's pixels above `threshold` (1 to 8; the halo grows with it). Not in the paper: off
    by default, measured in docs/HISTORY.md."""
    bridges_only: bool = False
    """With `passes` >= 2: the first pass's output plus only the pieces later passes add that
    join it at two or more places (`distpaint.infer.bridges`). Not in the paper: off by
    default, measured in docs/HISTORY.md."""
    upsample: int = 1
    """Run the model on the window up-sampled this many times (1 to 4; nearest neighbour),
    its probabilities max-pooled back (`distpaint.infer.upsample`): thin lines at the width
    the model knows. The jobs' `auto` (`distpaint infer`'s default) chooses 1 or 2 per mask
    from its line width. Not in the paper; measured in docs/REAL_MASKS.md."""
    keep_input: bool = True
    """Output = input OR model fill: never delete a pixel of the input."""
    drop_islands: bool = False
    """Remove added components that touch no input pixel (`distpaint.infer.islands`; exact
    for islands that fit in the halo). Not in the paper: off by default, measured in the
    docs/HISTORY.md."""
    keep: str = "bridges"
    """Which added pieces to keep (`distpaint.infer.keep`): `bridges` (only pieces joining the
    input at two or more places next to a dead end, or filling a small hole: never a spur, a
    thickened edge, a corner fill or an island), `attached` (drop islands) or `all` (the
    model's raw output, as the paper has it). `bridges` was chosen on the real validation
    masks (README, Quality): it does no harm where `all` lowers clDice. A model card may
    name its own (`distpaint.weights.inference_defaults`)."""
    min_confidence: float = 0.0
    """Drop each added piece the keep policy keeps whose mean probability is under this (0:
    none; 1: every added piece; `distpaint.infer.keep`): a floor on how sure the model is of a
    whole bridge. Not in the paper; chosen on the real validation masks (docs/REAL_MASKS.md). A
    model card may name its own, or `auto`: chosen per mask by the jobs
    (`distpaint.infer.self_check`, `JobConfig.self_check`)."""
    skip_empty: bool = True
    """Do not run the model on tiles whose window holds no foreground."""
    readers: int = 2
    """Threads reading tile windows ahead of the model."""
    prefetch: int = 2
    """Batches read ahead of the one being predicted."""

    def __post_init__(self) -> None:
        if self.tile is not None and (isinstance(self.tile, bool) or not isinstance(self.tile, int)
                                      or self.tile < 1):
            raise ConfigError(f"--tile must be a positive integer, got {self.tile!r}")
        if self.halo is not None and (not isinstance(self.halo, int) or self.halo < 0):
            raise ConfigError(f"--halo must be a non-negative integer, got {self.halo!r}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"--batch must be a positive integer, got {self.batch!r}")
        if not 0.0 <= float(self.threshold) < 1.0:
            raise ConfigError(f"--threshold must be in [0, 1), got {self.threshold!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer, got {self.seed!r}")
        check_refinement(self.views, self.passes, self.bridges_only)
        if not isinstance(self.drop_islands, bool):
            raise ConfigError(f"drop_islands must be true or false, got {self.drop_islands!r}")
        check_keep(self.keep)
        check_min_confidence(self.min_confidence)
        check_upsample(self.upsample)
        if self.readers < 1 or self.prefetch < 0:
            raise ConfigError(
                f"readers ({self.readers}) must be >= 1 and prefetch ({self.prefetch}) >= 0"
            )


    @property
    def pieces(self) -> str:
        """The keep policy in effect: `keep`, or `attached` where only `drop_islands` asks."""
        return "attached" if self.keep == "all" and self.drop_islands else self.keep

    @property
    def judges_pieces(self) -> bool:
        """Whether added pieces are judged at all (a policy other than `all`, or a floor)."""
        return self.pieces != "all" or self.min_confidence > 0

    @property
    def repairs_nothing(self) -> bool:
        """Whether the output is the input whatever the model says: the floor keeps no added
        piece (NO_REPAIR, what `--min-confidence auto` chooses for a mask the model cannot
        show a gain on) and every input pixel is kept. No tile then needs the model."""
        return self.min_confidence >= NO_REPAIR and self.keep_input


@dataclass
class InferStats:
    """What one inference run did."""

    shape: tuple[int, int]
    """(H, W) of the mask."""
    tiles: int = 0
    """Tiles this run computed (all of the grid's, or those of the requested shards)."""
    predicted: int = 0
    """Tiles sent to the model."""
    skipped: int = 0
    """Empty tiles not sent to the model (skip-empty)."""
    batches: int = 0
    """Forward passes."""
    input_pixels: int = 0
    """Foreground pixels of the input."""
    output_pixels: int = 0
    """Foreground pixels of the output."""
    added_pixels: int = 0
    """Output pixels that are not input pixels."""
    seconds: float = 0.0
    """Wall time of the run."""
    halo: int = 0
    """Halo used."""
    forward_seconds: float = field(default=0.0, repr=False)
    """Time spent inside the predictor."""

    @property
    def mpx_per_s(self) -> float:
        """Throughput in mega-pixels (of the mask) per second."""
        return self.shape[0] * self.shape[1] / 1e6 / max(self.seconds, 1e-9)


class _DaskSource:
    """Slicing a Dask array computes the window synchronously (the reader threads are the
    parallelism; a nested thread pool per window would only add overhead)."""

    def __init__(self, array: Any) -> None:
        self.array, self.shape = array, tuple(array.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key].compute(scheduler="synchronous"))


def as_source(array: Any) -> Any:
    """A 2-D array-like whose slices are NumPy arrays (zarr.Array and NumPy are already)."""
    return _DaskSource(array) if isinstance(array, da.Array) else array


def make_grid(shape: tuple[int, int], predictor: Predictor, config: InferConfig) -> TileGrid:
    """The tile grid of an (H, W) mask for `predictor` under `config`."""
    align, need = int(predictor.align), int(predictor.receptive_halo)
    halo = need if config.halo is None else config.halo
    if halo < need:
        raise ConfigError(
            f"--halo {halo} is smaller than the model's receptive radius ({need} px): tiles "
            f"would not see enough context; use --halo {need} or more"
        )
    halo = round_up(halo, align)
    tile = auto_tile(halo, align) if config.tile is None else config.tile
    return TileGrid(shape, tile=tile, halo=halo, align=align)


def output_layout(
    shape: tuple[int, int], tile: int, chunks: int = DEFAULT_CHUNKS, shards: int = DEFAULT_SHARDS
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(chunks, shards) of an output array such that every shard is a whole number of tiles
    (or the whole extent): each shard is then written once, by one writer, whole.

    Chunk side: the largest divisor of `tile` not above `chunks`; shard side: the largest
    multiple of `tile` not above `shards` (at least one tile), both clipped to the array.
    """
    chunk = next(d for d in range(min(tile, chunks), 0, -1) if tile % d == 0)
    shard = tile * max(1, shards // tile)
    chunk_shape = tuple(min(chunk, n) for n in shape)
    shard_shape = tuple(min(shard, round_up(n, c)) for n, c in zip(shape, chunk_shape))
    return chunk_shape, shard_shape  # type: ignore[return-value]


# ---- binarisation ---------------------------------------------------------------------------
_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(
    0x9E3779B97F4A7C15
)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic is intended)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def pixel_uniforms(seed: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Uniform [0, 1) float32 numbers of the pixels [y0, y1) x [x0, x1), each a hash of
    (seed, y, x): a counter-based stream, identical whatever the tiling (a sequential
    Generator would make pixels depend on the order tiles are processed)."""
    key = _splitmix64(np.array([seed], dtype=np.uint64))
    ys = np.arange(y0, y1, dtype=np.uint64)[:, None] << np.uint64(32)
    xs = np.arange(x0, x1, dtype=np.uint64)[None, :]
    bits = _splitmix64((ys | xs) ^ key) >> np.uint64(40)  # top 24 bits: exact in float32
    return bits.astype(np.float32) * np.float32(2.0**-24)


def decide(
    probs: np.ndarray | None, given: np.ndarray, core: tuple[int, int, int, int],
    config: InferConfig,
) -> np.ndarray:
    """Output pixels of one tile core: probabilities (h, w) -> bool, OR the input `given`
    with keep-input. `probs=None` (a skipped tile) outputs the input."""
    if probs is None:
        return given.copy()
    if config.sample:
        fg = pixel_uniforms(config.seed, *core) < probs
    else:
        fg = probs > np.float32(config.threshold)
    return fg | given if config.keep_input else fg


@dataclass
class ShardCounts:
    """What went into one written shard (the manifest records it, so the totals of a resumed
    run are those of an uninterrupted one)."""

    tiles: int = 0
    """Tiles in the shard."""
    predicted: int = 0
    """Tiles sent to the model."""
    input_pixels: int = 0
    """Foreground pixels of the input."""
    output_pixels: int = 0
    """Foreground pixels of the output."""
    added_pixels: int = 0
    """Output pixels that are not input pixels."""


OnShard = Callable[[Origin, ShardCounts], None]
"""on_shard((y0, x0), counts): called on the writer thread once the shard is written."""


class EmptyWindows:
    """The model's output on all-background windows, one forward per window shape.

    A tile whose window holds no foreground gets exactly the model's output on a zero window
    of that shape (the tile's result depends on nothing but its window). When that output
    decides no pixel (the model maps empty context to background), `probs` returns None and
    the tile's output is the (empty) input with no work at all. Reuse one instance across runs
    with the same predictor and config to probe each shape once.
    """

    def __init__(self, predictor: Predictor, config: InferConfig) -> None:
        self.predictor, self.config = predictor, config
        self._cache: dict[tuple[int, int], np.ndarray | None] = {}
        self.forward_seconds = 0.0
        """Time spent probing."""

    def probs(self, shape: tuple[int, int]) -> np.ndarray | None:
        """(h, w) probabilities of an empty window of `shape`, or None if they decide nothing."""
        if shape not in self._cache:
            t0 = time.perf_counter()
            p = np.asarray(self.predictor(np.zeros((1, 1, *shape), np.float32)))[0, 0]
            self.forward_seconds += time.perf_counter() - t0
            # threshold: foreground iff p > t; sampling: iff u < p with u >= 0
            limit = 0.0 if self.config.sample else float(self.config.threshold)
            self._cache[shape] = None if float(p.max()) <= limit else p
        return self._cache[shape]


# ---- the pipeline ---------------------------------------------------------------------------
class _ShardAssembler:
    """Collects tile outputs per shard of the targets and writes each shard whole, once."""

    def __init__(self, targets: Mapping[str, Any], grid: TileGrid, config: InferConfig,
                 stats: InferStats, on_shard: OnShard | None = None) -> None:
        self.targets, self.grid, self.config, self.stats = targets, grid, config, stats
        self.on_shard = on_shard
        first = targets["mask"]
        self.shard = tuple(first.shards or first.chunks)
        self.buffers: dict[tuple[int, int], dict[str, Any]] = {}

    def blocks(
        self, only: set[Origin] | None = None
    ) -> Iterator[tuple[tuple[slice, slice], list[Tile]]]:
        """(shard block, its tiles) in writing order, only the shards whose origins are in
        `only` if given; checks the shards hold whole tiles."""
        for block in shard_blocks(self.grid.shape, self.shard):
            (ys, xs) = block
            if only is None or (ys.start, xs.start) in only:
                yield block, list(self.grid.tiles_in(ys.start, ys.stop, xs.start, xs.stop))

    def open(self, block: tuple[slice, slice], count: int) -> None:
        ys, xs = block
        key = (ys.start, xs.start)
        shape = (ys.stop - ys.start, xs.stop - xs.start)
        self.buffers[key] = {"block": block, "left": count, "counts": ShardCounts(tiles=count),
                             "mask": np.zeros(shape, bool), "added": np.zeros(shape, bool)}

    def add(self, tile: Tile, probs: np.ndarray | None, given: np.ndarray,
            predicted: bool) -> None:
        """Decide the tile's pixels, place them, write the shard if it is complete.
        `probs=None`: nothing to decide (a skipped tile), the output is the input."""
        key = self._key(tile)
        buf = self.buffers[key]
        counts: ShardCounts = buf["counts"]
        counts.predicted += int(predicted)
        n_given = int(np.count_nonzero(given))
        counts.input_pixels += n_given
        (ys, xs), (y0, y1, x0, x1) = buf["block"], tile.core
        local = slice(y0 - ys.start, y1 - ys.start), slice(x0 - xs.start, x1 - xs.start)
        if probs is None:
            counts.output_pixels += n_given
            if n_given:  # the buffers start empty
                buf["mask"][local] = given
        else:
            out = decide(probs, given, tile.core, self.config)
            added = out & ~given
            counts.output_pixels += int(np.count_nonzero(out))
            counts.added_pixels += int(np.count_nonzero(added))
            buf["mask"][local], buf["added"][local] = out, added
        buf["left"] -= 1
        if buf["left"] == 0:
            for name, target in self.targets.items():
                target[buf["block"]] = buf[name]
            del self.buffers[key]
            self.stats.input_pixels += counts.input_pixels
            self.stats.output_pixels += counts.output_pixels
            self.stats.added_pixels += counts.added_pixels
            if self.on_shard is not None:
                self.on_shard(key, counts)

    def _key(self, tile: Tile) -> tuple[int, int]:
        sy, sx = self.shard
        return tile.core[0] // sy * sy, tile.core[2] // sx * sx


def _read(source: Any, tile: Tile, shape: tuple[int, int]) -> tuple[Tile, np.ndarray]:
    return tile, read_window(source, tile, shape)



def run_inference(
    source: Any,
    predictor: Predictor,
    targets: Mapping[str, Any],
    config: InferConfig,
    progress: Progress | None = None,
    *,
    shards: Iterable[Origin] | None = None,
    on_shard: OnShard | None = None,
    empty: EmptyWindows | None = None,
) -> InferStats:
    """Infer the 2-D bool `source` (zarr.Array, NumPy, Dask, or any array-like whose slices
    are NumPy arrays) into `targets`.

    targets: {"mask": zarr.Array} and optionally "added", bool arrays of the source's shape
        whose shards hold whole tiles (create them with `output_layout`); each shard is
        written once, whole.
    progress: called with (tiles done, tiles of this run) as tiles finish.
    shards: origins (y0, x0) of the target shards to compute (default: all).
    on_shard: called (on the writer thread) after each shard is written, with its counts.
    empty: the empty-window probe to reuse (default: a new one for this run).
    Returns the run's `InferStats`. Exceptions of reader or writer threads propagate.
    """
    if (*refinement_of(predictor), bridges_of(predictor)) != (config.views, config.passes, config.bridges_only):
        # the predictor is refined where it is built (model.load_predictor, model_method), so
        # that its halo and the empty-window probe see the refinement too
        def said(views: int, passes: int, bridges: bool) -> str:
            return f"views={views}, passes={passes}" + (", bridges_only" if bridges else "")

        raise ConfigError(f"{said(config.views, config.passes, config.bridges_only)}: wrap the "
                          "predictor with distpaint.infer.refine.refine(predictor, views=..., "
                          "passes=..., bridges_only=...) (it applies "
                          f"{said(*refinement_of(predictor), bridges_of(predictor))})")
    source = as_source(source)
    shape = tuple(int(n) for n in source.shape)
    grid = make_grid(shape, predictor, config)
    for name, target in targets.items():
        if tuple(target.shape) != shape:
            raise ConfigError(f"output {name!r} has shape {target.shape}, input {shape}")
    stats = InferStats(shape=shape, halo=grid.halo)
    assembler = _ShardAssembler(targets, grid, config, stats, on_shard)
    plan = list(assembler.blocks(None if shards is None else {tuple(o) for o in shards}))
    stats.tiles = sum(len(tiles) for _, tiles in plan)
    empty = empty if empty is not None else EmptyWindows(predictor, config)
    probed = empty.forward_seconds
    start = time.perf_counter()
    with ThreadPoolExecutor(config.readers, thread_name_prefix="distpaint-read") as readers, \
            ThreadPoolExecutor(1, thread_name_prefix="distpaint-write") as writer:
        _Pipeline(source, predictor, grid, config, stats, assembler, readers, writer,
                  progress, empty).run(plan)
    stats.seconds = time.perf_counter() - start
    stats.forward_seconds += empty.forward_seconds - probed
    return stats


class _Pipeline:
    """One run: read ahead, batch by window shape, predict, hand tiles to the writer."""

    def __init__(self, source, predictor, grid, config, stats, assembler, readers, writer,
                 progress, empty) -> None:
        self.source, self.predictor, self.grid, self.config = source, predictor, grid, config
        self.stats, self.assembler, self.readers, self.writer = stats, assembler, readers, writer
        self.progress, self.empty = progress, empty
        self.buckets: dict[tuple[int, int], list[tuple[Tile, np.ndarray]]] = {}
        self.pending: deque[Future] = deque()
        self.done = 0

    def run(self, plan: list[tuple[tuple[slice, slice], list[Tile]]]) -> None:
        order = iter([(i, tile) for i, (_, tiles) in enumerate(plan) for tile in tiles])
        lookahead = self.config.batch * (self.config.prefetch + 1)
        reads: deque[tuple[int, Future]] = deque()

        def top_up() -> None:
            while len(reads) < lookahead:
                nxt = next(order, None)
                if nxt is None:
                    return
                reads.append((nxt[0], self.readers.submit(_read, self.source, nxt[1],
                                                          self.grid.shape)))

        current = -1
        try:
            top_up()
            while reads:
                shard_index, future = reads.popleft()
                top_up()
                if shard_index != current:
                    # a shard's tiles are all predicted before the next shard's: batches never
                    # straddle shards, so a shard's pixels do not depend on which other shards
                    # a run (or a resumed run, or a Ray actor) computes
                    self.flush()
                    current = shard_index
                    self.assembler.open(plan[shard_index][0], len(plan[shard_index][1]))
                self.take(*future.result())
            self.flush()
            while self.pending:
                self.pending.popleft().result()
        finally:
            for _, future in reads:  # on error: do not leave reads running for nothing
                future.cancel()

    def take(self, tile: Tile, window: np.ndarray) -> None:
        given = window[tile.core_in_window]
        if self.config.repairs_nothing:  # the forward pass would be thrown away whole
            self.submit(tile, None, given, False)
            self.tick(1)
            return
        if self.config.skip_empty and not window.any():
            self.stats.skipped += 1
            probs = self.empty.probs(tile.window_shape)
            if probs is not None and self.config.judges_pieces:
                probs = self.kept_only(tile, probs, window)
            self.submit(tile, None if probs is None else probs[tile.core_in_window], given, False)
            self.tick(1)
            return
        bucket = self.buckets.setdefault(tile.window_shape, [])
        bucket.append((tile, window))
        if len(bucket) == self.config.batch:
            self.predict(self.buckets.pop(tile.window_shape))

    def flush(self) -> None:
        for key in list(self.buckets):
            self.predict(self.buckets.pop(key))

    def predict(self, items: list[tuple[Tile, np.ndarray]]) -> None:
        batch = np.stack([w for _, w in items])[:, None].astype(np.float32)  # (B, 1, h, w)
        t0 = time.perf_counter()
        probs = np.asarray(self.predictor(batch))
        self.stats.forward_seconds += time.perf_counter() - t0
        if probs.shape != batch.shape:
            raise ConfigError(f"the model returned shape {probs.shape} for input {batch.shape}")
        self.stats.batches += 1
        self.stats.predicted += len(items)
        for (tile, window), p in zip(items, probs[:, 0]):
            core = tile.core_in_window
            if self.config.judges_pieces:
                p = self.kept_only(tile, p, window)
            self.submit(tile, p[core], window[core], True)
        self.tick(len(items))

    def kept_only(self, tile: Tile, probs: np.ndarray, window: np.ndarray) -> np.ndarray:
        """The window's probabilities with those of the added pieces the keep policy drops
        set to 0, so that `decide` leaves them out; edges of the window inside the image are
        open."""
        (wy0, wy1, wx0, wx1), (h, w) = tile.window, self.grid.shape
        # only the window's part inside the image: fill the model paints on the zero padding
        # past the image's end is never written and must not join islands to other fill
        iy1, ix1 = min(wy1, h), min(wx1, w)
        inside = slice(0, iy1 - wy0), slice(0, ix1 - wx0)
        given = window[inside].astype(bool)
        output = decide(probs[inside], given, (wy0, iy1, wx0, ix1), self.config)  # as tiles will
        kept = keep_added(output, given, self.config.pieces,
                          open_edges=(wy0 > 0, wy1 < h, wx0 > 0, wx1 < w),
                          probs=probs[inside], min_confidence=self.config.min_confidence)
        probs = probs.copy()
        probs[inside][output & ~kept] = 0
        return probs

    def submit(self, tile: Tile, probs: np.ndarray | None, given: np.ndarray,
               predicted: bool) -> None:
        # bounded memory: never more than two batches of tiles waiting for the writer
        while len(self.pending) > 2 * self.config.batch:
            self.pending.popleft().result()
        self.pending.append(self.writer.submit(self.assembler.add, tile, probs, given, predicted))

    def tick(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.stats.tiles)
