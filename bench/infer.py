"""Inference pipeline benchmark: throughput, empty-tile skipping, peak memory, MONAI, side by side.

    python bench/infer.py --json runs/bench-infer.json        # target sizes (~30 min, 2 loaded cores)
    python bench/infer.py --smoke-test --json /tmp/infer.json # tiny sizes, every code path, < 1 min
    python bench/infer.py --json OUT.json --model runs/x/checkpoints/step_00001000 --monai-size 4096

Options: --model NAME|CKPT (a registered generator, freshly initialised with --seed, or a trained
checkpoint; default unet_cpu), --threads (torch CPU threads, default 2), --tile/--batch (the
engine's, default 1024/4), --shard (output shard side, default 4096), --repeats (timed repeats
of 1 and 2, best kept: the cores are shared), --dense-size, --zeros-size, --rss-sizes,
--rss-fill diagonal|all, --rss-shards N, --monai-size, --monai-repeats, --no-monai,
--sections (some of: throughput skip zeros monai rss),
--work DIR (default: a temporary folder) and --keep (keep its stores and outputs).

Speed and memory do not depend on the weights, so without trained weights a freshly initialised
generator with a fixed seed stands in. All masks are samples of one Zarr mask store under
--work, written chunk by chunk (never whole in RAM). Measured in one run:

1. throughput: the pipeline (`run_inference`: Zarr store -> tile+halo windows -> model -> Zarr
   shards of mask + added, skip-empty off) on a dense synthetic 'roads' mask of --dense-size
   px, against the raw model forward on the same windows in the same batches (recorded from a
   warm-up run of the pipeline, replayed from memory). Mpx/s are mask pixels per second.
   Target: pipeline >= 0.8x raw.
2. skipping, skip-empty on: the same dense mask with the right half of its tile columns blanked
   together with their halo (exactly half of the windows empty) against the dense mask.
   Target: time ratio <= 0.55. Plus an all-background --zeros-size mask (dask zeros streamed
   into the store: no chunk is stored) through the whole pipeline, cold (with the one forward
   per window shape on an empty window that makes skipping exact) and again with that probe
   reused: seconds.
3. peak RSS for masks of --rss-sizes px, each run in a fresh subprocess; the peak is the child's
   VmHWM (ru_maxrss would do on a fresh process, but Linux carries a parent's ru_maxrss over
   fork+exec). The same roads structure fills the inner tiles (all but the ring of border
   tiles, inset by the halo so that the ring's windows are empty) of each diagonal shard region
   (`--rss-fill diagonal`: shard row == shard column, the model works in every shard row and
   column all through the run; `all`: every shard region); the other tiles are read and
   skipped, every shard is written (`--rss-shards N`: only the first N shards). The baseline
   (imports of python + numpy + torch + zarr + dask + distpaint, then the model) is reported and
   subtracted. Targets: peaks within 10% of each other, each < 2 GB (2e9 bytes).
4. MONAI: `monai.inferers.sliding_window_inference` with the same model on a dense roads mask of
   --monai-size px, read whole from the store into a tensor (that is how it works), roi = our
   tile + 2 halo, overlap such that windows step by exactly one tile (the same windows, except
   that MONAI shifts the last one inward where ours is clipped at the border), sw_batch_size =
   our batch, mode constant; the result thresholded, OR the input, written to Zarr like ours.
   Ours and MONAI's each run in fresh subprocesses (time and peak RSS measured inside); ratios
   reported. Skipped when monai is not installed (the `bench` extra; install it with
   `pip install --no-deps 'monai>=1.3'` so that monai's torch pin does not pull a CUDA torch).

Prints a table and writes every figure, the settings and what exactly was measured to --json
(rewritten after each section). Exit status 0 whether or not the targets are met (the table
says), 2 on bad options.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from distpaint.errors import ConfigError, DistpaintError  # light: no torch, no zarr

# Heavy imports (torch, zarr, the engine) happen inside functions: a memory child measures the
# RSS of its imports itself.

FORMAT = "distpaint-bench-infer"
SECTIONS = ("throughput", "skip", "zeros", "monai", "rss")
GB = 1e9
MIB = 2**20


@dataclass
class BenchConfig:
    """What to measure, at which sizes."""

    model: str = "unet_cpu"
    """A registered generator (freshly initialised with `seed`) or a checkpoint directory."""
    seed: int = 0
    """torch.manual_seed of a fresh generator, and the seed of the synthetic masks."""
    threads: int = 2
    """torch CPU threads (every run, ours and MONAI's)."""
    tile: int = 1024
    """The engine's tile side (output core of a window)."""
    batch: int = 4
    """Windows per forward pass (ours and MONAI's sw_batch_size)."""
    shard: int = 4096
    """Side of the output shards (the engine writes each whole, once); a multiple of `tile`."""
    repeats: int = 2
    """Timed repeats of the throughput, skipping and MONAI runs; the best is kept."""
    dense_size: int = 4096
    """Side of the dense 'roads' mask of the throughput and skipping figures."""
    zeros_size: int = 49152
    """Side of the all-background mask."""
    rss_sizes: tuple[int, ...] = (4096, 16384, 49152)
    """Sides of the masks of the peak-RSS runs."""
    rss_fill: str = "diagonal"
    """Shard regions of the peak-RSS masks that hold structure: `diagonal` (row == column: the
    model works in every shard row and column, all through the run) or `all`."""
    rss_shards: int | None = None
    """Compute only the first N shards of each peak-RSS run (None: all)."""
    monai_size: int = 8192
    """Side of the mask of the MONAI comparison."""
    monai_repeats: int = 2
    """Runs of each side of the MONAI comparison (each a fresh process); the best time kept."""
    monai: bool = True
    """Run the MONAI comparison (skipped anyway when monai is not installed)."""
    sections: tuple[str, ...] = SECTIONS
    """Which figures to measure."""
    smoke_test: bool = False
    """Tiny sizes (set by --smoke-test)."""

    def __post_init__(self) -> None:
        for name in ("threads", "tile", "batch", "shard", "repeats", "dense_size", "zeros_size",
                     "monai_size", "monai_repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a "
                                 f"positive integer, got {value!r}")
        if self.shard % self.tile:
            raise ConfigError(f"--shard {self.shard} must be a multiple of "
                             f"--tile {self.tile}")
        if self.shard // self.tile < 3:
            raise ConfigError(f"--shard {self.shard} must hold at least 3 tiles "
                             f"a side (the peak-RSS masks fill a shard's inner tiles)")
        if not self.rss_sizes or min(self.rss_sizes) < 1:
            raise ConfigError(f"--rss-sizes must be positive, got {self.rss_sizes}")
        unknown = sorted(set(self.sections) - set(SECTIONS))
        if unknown or not self.sections:
            raise ConfigError(f"--sections: unknown {unknown or 'none given'}; "
                             f"choose from {' '.join(SECTIONS)}")
        if self.rss_fill not in ("diagonal", "all"):
            raise ConfigError(f"--rss-fill must be diagonal or all, got "
                             f"{self.rss_fill!r}")
        if self.rss_shards is not None and self.rss_shards < 1:
            raise ConfigError(f"--rss-shards must be >= 1, got {self.rss_shards}")

    @classmethod
    def smoke(cls, **overrides: Any) -> BenchConfig:
        """Tiny sizes and the tiny generator: every code path in well under a minute. One torch
        thread: on oversubscribed cores two threads of tiny convolutions wait on each other."""
        base = dict(model="unet_tiny", threads=1, tile=128, batch=2, shard=512, repeats=1,
                    dense_size=512, zeros_size=4096, rss_sizes=(512, 1024, 1536),
                    monai_size=384, monai_repeats=1, smoke_test=True)
        base.update(overrides)
        return cls(**base)


def log(line: str) -> None:
    print(f"[bench/infer] {line}", file=sys.stderr, flush=True)


# ---- model ----------------------------------------------------------------------------------
def build_predictor(config: BenchConfig) -> tuple[Any, dict]:
    """(TorchPredictor, description) for `config.model`."""
    import torch

    from distpaint.errors import InputError
    from distpaint.infer.predictor import TorchPredictor, resolve_model
    from distpaint.models import create_model, list_models
    from distpaint.models.layers import count_parameters

    if pathlib.Path(config.model).exists():
        predictor = resolve_model(config.model, threads=config.threads)
        weights = f"checkpoint {config.model}"
    elif config.model in list_models("generator"):
        torch.manual_seed(config.seed)
        predictor = TorchPredictor(create_model(config.model, "generator"),
                                   threads=config.threads)
        weights = f"fresh init, torch.manual_seed({config.seed})"
    else:
        raise InputError(f"--model {config.model}: neither a checkpoint directory nor a "
                         f"registered generator ({', '.join(list_models('generator'))})")
    info = {"model": config.model, "weights": weights,
            "params": count_parameters(predictor.module), "align": predictor.align,
            "halo": predictor.receptive_halo, "threads": config.threads}
    return predictor, info


class Recorder:
    """A predictor that keeps a copy of every batch it is given (to replay them from memory)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.align, self.receptive_halo = inner, inner.align, inner.receptive_halo
        self.batches: list[Any] = []

    def __call__(self, batch: Any) -> Any:
        self.batches.append(batch.copy())
        return self.inner(batch)


# ---- stores ---------------------------------------------------------------------------------
class ShardPattern:
    """(H, W) bool array-like repeating one (S, S) pattern in the shard regions that `fill`
    selects (all, or the diagonal ones), empty elsewhere; slices are built on demand, so a
    49152 px mask is never in RAM."""

    def __init__(self, pattern: Any, shape: tuple[int, int], fill: str) -> None:
        self.pattern, self.shape, self.dtype, self.fill = pattern, shape, pattern.dtype, fill
        self.ndim = 2

    def __getitem__(self, key: tuple[slice, slice]) -> Any:
        import numpy as np

        ys, xs = (np.arange(*k.indices(n)) for k, n in zip(key, self.shape))
        side = self.pattern.shape[0]
        out = self.pattern[np.ix_(ys % side, xs % side)]
        if self.fill == "diagonal":
            out &= (ys // side)[:, None] == (xs // side)[None, :]
        return out


class Masks:
    """The benchmark's masks: samples of one mask store under the work folder."""

    def __init__(self, work: pathlib.Path) -> None:
        from distpaint.data.store import MaskStore

        self.path = work / "masks.zarr"
        self.store = MaskStore.create(self.path, exist_ok=True)

    def get(self, name: str, make: Any) -> Any:
        """The zarr array of sample `name`, written from `make()` (an array-like) if absent
        (names carry every setting the content depends on: a kept --work is reused safely)."""
        if name not in self.store:
            tic = time.perf_counter()
            self.store.write(name, {"mask": make()}, {"bench": "bench/infer.py"})
            log(f"wrote mask {name} in {time.perf_counter() - tic:.1f} s")
        return self.store.array(name)


def roads(shape: tuple[int, int], seed: int) -> Any:
    """A dense synthetic road network, lazy (Dask), as `distpaint synth roads` makes it."""
    from distpaint.data.synth import synth_mask

    return synth_mask("roads", shape, seed)


def blank_right_half(dense: Any, tile: int, halo: int) -> Any:
    """`dense` (Dask) with the right half of its tile columns blanked together with their halo:
    those tiles' windows are empty; the left half keeps its structure (less one halo-wide
    strip). An interleaved pattern would not do: with tile <= 2 halo the halos of the blanked
    columns would swallow the kept ones."""
    import dask.array as da
    import numpy as np

    width = dense.shape[1]
    keep = np.zeros(width, bool)
    keep[: max(0, -(-width // tile) // 2 * tile - halo)] = True
    return dense & da.from_array(keep, chunks=dense.chunks[1])[None, :]


def inner_tiles_pattern(config: BenchConfig, halo: int) -> Any:
    """(shard, shard) pattern: roads on the shard's inner tiles (all but its ring of border
    tiles), inset by the halo so that the ring's windows (in this and the neighbouring shard
    regions) are empty."""
    import numpy as np

    from distpaint.data.synth import synth_array

    side, lo = config.shard, config.tile + halo
    box = np.zeros((side, side), bool)
    box[lo: side - lo, lo: side - lo] = True
    return synth_array("roads", (side, side), config.seed) & box


def make_targets(path: pathlib.Path, shape: tuple[int, int], config: BenchConfig) -> dict:
    """Fresh output arrays `mask` and `added` laid out as `distpaint infer` lays them out."""
    import zarr
    from zarr.storage import LocalStore

    from distpaint.data.store import compressors
    from distpaint.infer.engine import output_layout

    shutil.rmtree(path, ignore_errors=True)
    chunks, shards = output_layout(shape, config.tile, shards=config.shard)
    group = zarr.open_group(LocalStore(path), mode="w", zarr_format=3)
    return {name: group.create_array(name, shape=shape, chunks=chunks, shards=shards, dtype=bool,
                                     fill_value=False, compressors=compressors())
            for name in ("mask", "added")}


def infer_config(config: BenchConfig, skip_empty: bool) -> Any:
    from distpaint.infer.engine import InferConfig

    return InferConfig(tile=config.tile, batch=config.batch, skip_empty=skip_empty)


def run_pipeline(source: Any, predictor: Any, out: pathlib.Path, config: BenchConfig,
                 skip_empty: bool, shards: Any = None, empty: Any = None,
                 on_shard: Any = None) -> Any:
    """One run of the engine into fresh targets; its InferStats. `empty`: an EmptyWindows
    probe to reuse (None: a fresh one, as a job's first mask has)."""
    from distpaint.infer.engine import run_inference

    targets = make_targets(out, tuple(source.shape), config)
    return run_inference(source, predictor, targets, infer_config(config, skip_empty),
                         shards=shards, empty=empty, on_shard=on_shard)


def stats_dict(stats: Any) -> dict:
    return {"seconds": round(stats.seconds, 3), "mpx_per_s": round(stats.mpx_per_s, 4),
            "tiles": stats.tiles, "predicted": stats.predicted, "skipped": stats.skipped,
            "batches": stats.batches, "forward_seconds": round(stats.forward_seconds, 3),
            "output_pixels": stats.output_pixels, "added_pixels": stats.added_pixels}


# ---- 1. throughput --------------------------------------------------------------------------
def bench_throughput(config: BenchConfig, predictor: Any, masks: Masks,
                     work: pathlib.Path) -> dict:
    size = config.dense_size
    source = masks.get(f"dense-{size}-s{config.seed}", lambda: roads((size, size), config.seed))
    recorder = Recorder(predictor)
    warm = run_pipeline(source, recorder, work / "out-throughput.zarr", config, False)
    batches = recorder.batches
    window_px = sum(b.shape[0] * b.shape[-2] * b.shape[-1] for b in batches)
    log(f"throughput: warm-up run {warm.seconds:.1f} s, {len(batches)} batches recorded")
    raw, pipe = [], []
    for _ in range(config.repeats):
        tic = time.perf_counter()
        for batch in batches:
            predictor(batch)
        raw.append(time.perf_counter() - tic)
        stats = run_pipeline(source, predictor, work / "out-throughput.zarr", config, False)
        pipe.append(stats)
        log(f"throughput: raw forward {raw[-1]:.1f} s, pipeline {stats.seconds:.1f} s")
    best = min(pipe, key=lambda s: s.seconds)
    mpx = size * size / 1e6
    raw_rate, pipe_rate = mpx / min(raw), mpx / best.seconds
    return {
        "measured": (f"dense synthetic roads mask {size}x{size} (foreground "
                     f"{warm.input_pixels / size**2:.3f}) in a Zarr store; pipeline = "
                     "run_inference store -> tiles -> model -> Zarr shards (mask + added), "
                     "skip-empty off; raw = the same batches of tile+halo windows (recorded from "
                     "the pipeline) replayed from memory through the predictor; Mpx/s of mask "
                     f"pixels; best of {config.repeats}"),
        "size": size, "tiles": best.tiles, "batches": len(batches),
        "window_mpx": round(window_px / 1e6, 3),
        "raw_seconds": [round(s, 3) for s in raw],
        "pipeline_seconds": [round(s.seconds, 3) for s in pipe],
        "raw_mpx_per_s": round(raw_rate, 4), "pipeline_mpx_per_s": round(pipe_rate, 4),
        "ratio": round(pipe_rate / raw_rate, 4),
        "pipeline_forward_share": round(best.forward_seconds / best.seconds, 4),
        "pipeline": stats_dict(best),
    }


# ---- 2. skipping ----------------------------------------------------------------------------
def bench_skipping(config: BenchConfig, predictor: Any, masks: Masks, work: pathlib.Path,
                   halo: int) -> dict:
    size = config.dense_size
    full = masks.get(f"dense-{size}-s{config.seed}", lambda: roads((size, size), config.seed))
    half = masks.get(f"half-{size}-s{config.seed}-t{config.tile}-h{halo}",
                     lambda: blank_right_half(roads((size, size), config.seed), config.tile, halo))
    from distpaint.infer.engine import EmptyWindows, make_grid

    grid = make_grid((size, size), predictor, infer_config(config, True))
    cols = grid.grid_shape[1]
    skipped_shapes = {t.window_shape for t in grid.tiles() if t.col >= cols // 2}
    # Skipping is exact because a skipped tile gets the model's output on an empty window of
    # its shape: one batch-1 forward per window shape (up to 9), probed once per job (the job
    # layer shares the probe between a job's masks). On a mask of a few tiles that fixed cost
    # is several tiles' worth, so both are timed: `half` with the probe already made (the
    # per-tile saving) and `half_cold` with a fresh probe per run (a one-mask job).
    shared = EmptyWindows(predictor, infer_config(config, True))
    run_pipeline(half, predictor, work / "out-half.zarr", config, True, empty=shared)  # warm-up
    runs: dict[str, list] = {"full": [], "half": [], "half_cold": []}
    for _ in range(config.repeats):
        for name, source, empty in (("full", full, shared), ("half", half, shared),
                                    ("half_cold", half, None)):
            runs[name].append(run_pipeline(source, predictor, work / f"out-{name}.zarr", config,
                                           True, empty=empty))
        log("skipping: " + ", ".join(f"{k} {v[-1].seconds:.1f} s" for k, v in runs.items()))
    best = {name: min(r, key=lambda s: s.seconds) for name, r in runs.items()}
    return {
        "measured": (f"skip-empty on; full = the dense roads mask {size}x{size}; half = the "
                     "same mask with the right half of the tile columns blanked with their halo "
                     "(those windows are empty), with the empty-window probe already made (a "
                     "warm-up run made it); half_cold = the same with a fresh probe per run, "
                     "its forwards (one per window shape of a skipped tile) in "
                     f"half_cold.forward_seconds; best of {config.repeats}"),
        "size": size,
        "full": stats_dict(best["full"]), "half": stats_dict(best["half"]),
        "half_cold": stats_dict(best["half_cold"]),
        "full_seconds": [round(s.seconds, 3) for s in runs["full"]],
        "half_seconds": [round(s.seconds, 3) for s in runs["half"]],
        "half_cold_seconds": [round(s.seconds, 3) for s in runs["half_cold"]],
        "half_predicted_fraction": round(best["half"].predicted / best["half"].tiles, 4),
        "ratio": round(best["half"].seconds / best["full"].seconds, 4),
        "cold_ratio": round(best["half_cold"].seconds / best["full"].seconds, 4),
        "probe_shapes": len(skipped_shapes),
    }


def bench_zeros(config: BenchConfig, predictor: Any, masks: Masks, work: pathlib.Path) -> dict:
    import dask.array as da

    size = config.zeros_size
    source = masks.get(f"zeros-{size}",
                       lambda: da.zeros((size, size), dtype=bool, chunks=config.shard))
    chunk_files = sum(1 for p in (masks.path / f"zeros-{size}" / "mask").rglob("*")
                      if p.is_file() and p.name != "zarr.json")
    from distpaint.infer.engine import EmptyWindows

    empty = EmptyWindows(predictor, infer_config(config, True))
    stats = run_pipeline(source, predictor, work / "out-zeros.zarr", config, True, empty=empty)
    warm = run_pipeline(source, predictor, work / "out-zeros.zarr", config, True, empty=empty)
    log(f"zeros: {size}x{size} in {stats.seconds:.1f} s, again with the probe done "
        f"{warm.seconds:.1f} s")
    return {
        "measured": (f"all-background {size}x{size} mask (a Zarr array written chunk by chunk "
                     f"from dask zeros; {chunk_files} chunk files stored), whole pipeline with "
                     "skip-empty on, every shard of mask + added written; `seconds` includes "
                     "the one forward per window shape on an empty window (forward_seconds), "
                     "`warm_seconds` is a second run reusing that probe (as a job's later "
                     "masks do)"),
        "size": size, "chunk_files": chunk_files, **stats_dict(stats),
        "warm_seconds": round(warm.seconds, 3),
    }


# ---- children: one measured process per run -------------------------------------------------
def vm_hwm() -> int:
    """Peak resident set size of this process image, bytes (VmHWM; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def child_main(spec: dict) -> dict:
    """One measured run in this (fresh) process: 'ours' (the pipeline) or 'monai'."""
    import dask  # noqa: F401  the imports every run pays, measured as the baseline
    import numpy as np  # noqa: F401
    import torch  # noqa: F401
    import zarr  # noqa: F401

    import distpaint.infer.engine  # noqa: F401
    import distpaint.models  # noqa: F401
    from distpaint.data.store import MaskStore

    if spec["kind"] == "monai":
        import monai.inferers  # noqa: F401
    imports = vm_hwm()
    config = BenchConfig(**spec["config"])
    predictor, _ = build_predictor(config)
    model = vm_hwm()
    source = MaskStore.open(spec["store"]).array(spec["sample"])
    out = pathlib.Path(spec["out"])
    if spec["kind"] == "ours":
        from distpaint.infer.engine import make_grid

        shards = None
        if spec.get("shards") is not None:
            from distpaint.data.store import shard_blocks

            blocks = list(shard_blocks(tuple(source.shape), (config.shard, config.shard)))
            shards = [(ys.start, xs.start) for ys, xs in blocks[: spec["shards"]]]
        trace: list[int] = []  # the peak so far, after each written shard (writer thread)
        stats = run_pipeline(source, predictor, out, config, spec["skip_empty"], shards,
                             on_shard=lambda origin, counts: trace.append(vm_hwm()))
        grid = make_grid(tuple(source.shape), predictor, infer_config(config, True))
        window_px = sum(t.window_shape[0] * t.window_shape[1] for t in grid.tiles())
        step = max(1, len(trace) // 10)
        result = {**stats_dict(stats), "shards": len(trace),
                  "window_mpx": round(window_px / 1e6, 3),
                  "rss_after_first_shard": trace[0],
                  "rss_trace": [[i + 1, trace[i]] for i in range(0, len(trace), step)]
                  + ([[len(trace), trace[-1]]] if (len(trace) - 1) % step else [])}
    else:
        result = monai_run(source, predictor, out, config)
    return {"kind": spec["kind"], "rss_imports": imports, "rss_model": model,
            "rss_peak": vm_hwm(), **result}


def monai_run(source: Any, predictor: Any, out: pathlib.Path, config: BenchConfig) -> dict:
    """MONAI's sliding window over the whole mask, read into memory; thresholded, written."""
    import math

    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    from distpaint.infer.engine import make_grid

    halo = make_grid(tuple(source.shape), predictor, infer_config(config, False)).halo
    roi = config.tile + 2 * halo
    # MONAI's step is int(roi * (1 - overlap)): aim half a pixel above one tile so the
    # float rounding cannot make it tile - 1
    overlap = (2 * halo - 0.5) / roi
    tic = time.perf_counter()
    image = np.asarray(source[...])
    x = torch.from_numpy(image).to(predictor.dtype)[None, None]

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return predictor.module.predict_proba(batch.contiguous(memory_format=predictor.memory_format))

    with torch.inference_mode():
        t_sw = time.perf_counter()
        probs = sliding_window_inference(x, roi, config.batch, forward, overlap=overlap,
                                         mode="constant", padding_mode="constant", cval=0.0)
        sw_seconds = time.perf_counter() - t_sw
    fg = probs[0, 0].float().numpy() > np.float32(0.5)
    del probs, x
    out_mask = fg | image
    targets = make_targets(out, tuple(source.shape), config)
    targets["mask"][...] = out_mask
    targets["added"][...] = fg & ~image
    seconds = time.perf_counter() - tic
    steps = [1 if n <= roi else math.ceil((n - roi) / config.tile) + 1 for n in source.shape]
    return {"seconds": round(seconds, 3), "sliding_window_seconds": round(sw_seconds, 3),
            "mpx_per_s": round(image.size / 1e6 / seconds, 4), "roi": roi,
            "overlap": round(overlap, 6), "windows": steps[0] * steps[1],
            "window_mpx": round(steps[0] * steps[1] * min(roi, source.shape[0])
                                * min(roi, source.shape[1]) / 1e6, 3),
            "output_pixels": int(np.count_nonzero(out_mask)),
            "added_pixels": int(np.count_nonzero(fg & ~image))}


def run_child(spec: dict) -> dict:
    """Run `spec` in a fresh Python process; its result."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {spec['kind']} on {spec['sample']} failed:\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_spec(kind: str, config: BenchConfig, masks: Masks, sample: str, out: pathlib.Path,
               **extra: Any) -> dict:
    return {"kind": kind, "config": dataclasses.asdict(config), "store": str(masks.path),
            "sample": sample, "out": str(out), **extra}


def mib(n: float) -> float:
    return round(n / MIB, 1)


# ---- 3. peak RSS ----------------------------------------------------------------------------
def bench_rss(config: BenchConfig, masks: Masks, work: pathlib.Path, halo: int) -> dict:
    pattern = inner_tiles_pattern(config, halo)
    per_shard = (config.shard // config.tile - 2) ** 2
    runs = []
    for size in config.rss_sizes:
        name = (f"inner-{config.rss_fill}-{size}-s{config.seed}-t{config.tile}-h{halo}"
                f"-S{config.shard}")
        masks.get(name, lambda s=size: ShardPattern(pattern, (s, s), config.rss_fill))
        result = run_child(child_spec("ours", config, masks, name,
                                      work / f"out-rss-{size}.zarr", skip_empty=True,
                                      shards=config.rss_shards))
        result["size"] = size
        result["pipeline_share"] = result["rss_peak"] - result["rss_model"]
        runs.append(result)
        log(f"rss: {size}x{size}: peak {mib(result['rss_peak'])} MiB, "
            f"{result['predicted']}/{result['tiles']} tiles predicted, {result['seconds']:.1f} s")
    peaks = [r["rss_peak"] for r in runs]
    shares = [r["pipeline_share"] for r in runs]
    limit = (f"only the first {config.rss_shards} shards of each mask computed"
             if config.rss_shards else "the whole mask: every tile read, every shard written")
    where = ("every shard region" if config.rss_fill == "all" else
             "each diagonal shard region (shard row == shard column; the others are empty)")
    return {
        "measured": (f"each size in a fresh subprocess, skip-empty on, {limit}; {where} holds "
                     f"the same roads structure on its {per_shard} inner tiles of "
                     f"{(config.shard // config.tile) ** 2} (inset by the halo, so the other "
                     "windows are empty): the model runs on full batches of real tiles; peak = "
                     "VmHWM of the child; baseline = after importing "
                     "python+numpy+torch+zarr+dask+distpaint and building the model"),
        "runs": [{"size": r["size"], "rss_imports_mib": mib(r["rss_imports"]),
                  "rss_model_mib": mib(r["rss_model"]), "rss_peak_mib": mib(r["rss_peak"]),
                  "pipeline_share_mib": mib(r["pipeline_share"]), "seconds": r["seconds"],
                  "tiles": r["tiles"], "predicted": r["predicted"], "skipped": r["skipped"],
                  "shards": r["shards"],
                  "rss_after_first_shard_mib": mib(r["rss_after_first_shard"]),
                  "peak_by_shard_mib": [[n, mib(b)] for n, b in r["rss_trace"]]}
                 for r in runs],
        "peak_spread": round(max(peaks) / min(peaks) - 1, 4),
        "share_spread": round(max(shares) / max(min(shares), 1) - 1, 4),
        "max_peak_bytes": max(peaks),
    }


# ---- 4. MONAI -------------------------------------------------------------------------------
def bench_monai(config: BenchConfig, masks: Masks, work: pathlib.Path) -> dict:
    try:
        import monai
    except ImportError:
        return {"skipped": "monai is not installed (pip install --no-deps 'monai>=1.3')"}
    size = config.monai_size
    name = f"dense-{size}-s{config.seed}"
    masks.get(name, lambda: roads((size, size), config.seed))
    runs: dict[str, list] = {"ours": [], "monai": []}
    for _ in range(config.monai_repeats):
        for kind in ("ours", "monai"):
            runs[kind].append(run_child(child_spec(kind, config, masks, name,
                                                   work / f"out-cmp-{kind}.zarr",
                                                   skip_empty=False)))
        log(f"monai: ours {runs['ours'][-1]['seconds']:.1f} s, "
            f"monai {runs['monai'][-1]['seconds']:.1f} s")
    best = {k: min(r, key=lambda d: d["seconds"]) for k, r in runs.items()}
    peak = {k: max(d["rss_peak"] for d in r) for k, r in runs.items()}
    share = {k: max(d["rss_peak"] - d["rss_model"] for d in r) for k, r in runs.items()}
    ours, theirs = best["ours"], best["monai"]
    return {
        "measured": (f"dense roads mask {size}x{size} from the Zarr store, the same model; "
                     "ours = the pipeline (skip-empty off) into Zarr; MONAI = read the whole "
                     "mask, sliding_window_inference(roi=tile+2*halo, overlap so the step is one "
                     "tile, sw_batch_size=batch, mode=constant), threshold OR input, write the "
                     "same Zarr layout; each run in a fresh subprocess, time and peak RSS "
                     f"(VmHWM) measured inside it; best time / highest peak of {config.monai_repeats}"),
        "monai_version": monai.__version__, "size": size,
        "ours_seconds": [d["seconds"] for d in runs["ours"]],
        "monai_seconds": [d["seconds"] for d in runs["monai"]],
        "ours_mpx_per_s": ours["mpx_per_s"], "monai_mpx_per_s": theirs["mpx_per_s"],
        "monai_sliding_window_seconds": theirs["sliding_window_seconds"],
        "ours_window_mpx": ours["window_mpx"], "monai_window_mpx": theirs["window_mpx"],
        "ours_tiles": ours["tiles"], "monai_windows": theirs["windows"],
        "monai_roi": theirs["roi"], "monai_overlap": theirs["overlap"],
        "ours_peak_mib": mib(peak["ours"]), "monai_peak_mib": mib(peak["monai"]),
        "ours_share_mib": mib(share["ours"]), "monai_share_mib": mib(share["monai"]),
        "ours_output_pixels": ours["output_pixels"], "monai_output_pixels": theirs["output_pixels"],
        "time_ratio": round(ours["seconds"] / theirs["seconds"], 4),
        "peak_ratio": round(peak["ours"] / peak["monai"], 4),
        "share_ratio": round(share["ours"] / max(share["monai"], 1), 4),
    }


# ---- report ---------------------------------------------------------------------------------
def targets(doc: dict) -> dict:
    """Each target: value, what it must be, met."""
    out = {}
    if "throughput" in doc:
        r = doc["throughput"]["ratio"]
        out["pipeline_vs_raw_forward"] = {"value": r, "target": ">= 0.8", "met": r >= 0.8}
    if "skip" in doc:
        r = doc["skip"]["ratio"]
        out["half_empty_time_ratio"] = {"value": r, "target": "<= 0.55", "met": r <= 0.55}
        r = doc["skip"]["cold_ratio"]
        out["half_empty_ratio_cold_probe"] = {"value": r, "target": "<= 0.55 (same, fresh probe)",
                                              "met": r <= 0.55}
    if "zeros" in doc:
        s = doc["zeros"]["seconds"]
        out["all_background_seconds"] = {"value": s, "target": "< 60 s (seconds, not minutes)",
                                         "met": s < 60}
    if "rss" in doc:
        spread, peak = doc["rss"]["peak_spread"], doc["rss"]["max_peak_bytes"]
        out["rss_flat"] = {"value": spread, "target": "peaks within 10%", "met": spread <= 0.10}
        out["rss_below_2gb"] = {"value": round(peak / GB, 3), "target": "< 2 GB",
                                "met": peak < 2 * GB}
    return out


def render(doc: dict) -> str:
    lines = [f"distpaint inference benchmark  (model {doc['model']['model']}, "
             f"{doc['model']['weights']}, halo {doc['model']['halo']}, tile {doc['config']['tile']}, "
             f"batch {doc['config']['batch']}, {doc['model']['threads']} torch threads"
             f"{', SMOKE TEST sizes' if doc['smoke_test'] else ''})", ""]
    t = doc.get("throughput")
    if t:
        n = t["size"]
        lines += [f"1. throughput, dense roads {n}x{n}, {t['tiles']} tiles in {t['batches']} batches",
                  f"   raw forward (windows in memory)   {t['raw_mpx_per_s']:8.3f} Mpx/s",
                  f"   pipeline Zarr -> model -> Zarr    {t['pipeline_mpx_per_s']:8.3f} Mpx/s"
                  f"   (forward {100 * t['pipeline_forward_share']:.0f}% of its wall time)",
                  f"   ratio pipeline / raw              {t['ratio']:8.3f}", ""]
    s = doc.get("skip")
    if s:
        n = s["size"]
        lines += [f"2. empty-tile skipping, {n}x{n}, skip-empty on",
                  f"   every tile full                   {s['full']['seconds']:8.2f} s  "
                  f"({s['full']['predicted']}/{s['full']['tiles']} tiles to the model)",
                  f"   half the tiles empty              {s['half']['seconds']:8.2f} s  "
                  f"({s['half']['predicted']}/{s['half']['tiles']} tiles to the model; "
                  "empty-window probe already made)",
                  f"   the same, fresh probe (1 job)     {s['half_cold']['seconds']:8.2f} s  "
                  f"({s['probe_shapes']} batch-1 probe forwards, "
                  f"{s['half_cold']['forward_seconds'] - s['half']['forward_seconds']:.1f} s more "
                  "in the model)",
                  f"   ratio half / full                 {s['ratio']:8.3f}   "
                  f"(fresh probe: {s['cold_ratio']:.3f})"]
    z = doc.get("zeros")
    if z:
        lines += [f"   all background {z['size']}x{z['size']:<8}{z['seconds']:8.2f} s  "
                  f"({z['tiles']} tiles, {z['predicted']} to the model, {z['mpx_per_s']:.0f} "
                  f"Mpx/s; {z['forward_seconds']:.1f} s of it: one forward per window shape "
                  f"on an empty window; {z['warm_seconds']:.2f} s with that probe reused)"]
    if s or z:
        lines.append("")
    r = doc.get("rss")
    if r:
        lines.append("3. peak RSS, each mask in a fresh process (MiB)")
        lines.append("   size      imports   +model  1st shard     peak   pipeline   tiles to model"
                     "   shards   seconds")
        for run in r["runs"]:
            lines.append(f"   {run['size']:<8}{run['rss_imports_mib']:9.0f}{run['rss_model_mib']:9.0f}"
                         f"{run['rss_after_first_shard_mib']:11.0f}"
                         f"{run['rss_peak_mib']:9.0f}{run['pipeline_share_mib']:11.0f}"
                         f"   {run['predicted']:>6}/{run['tiles']:<8}{run['shards']:>7}"
                         f"{run['seconds']:10.1f}")
        lines += [f"   spread of peaks {100 * r['peak_spread']:.1f}%, of pipeline shares "
                  f"{100 * r['share_spread']:.1f}% ('1st shard': the peak when the first shard "
                  "was written)", ""]
    m = doc.get("monai")
    if m and "skipped" in m:
        lines += [f"4. MONAI: skipped ({m['skipped']})", ""]
    elif m:
        n = m["size"]
        lines += [f"4. vs MONAI {m['monai_version']} sliding_window_inference, {n}x{n} "
                  f"(roi {m['monai_roi']}, {m['monai_windows']} windows; ours {m['ours_tiles']} tiles)",
                  "                 seconds     Mpx/s   peak MiB   above model MiB",
                  f"   ours        {min(m['ours_seconds']):9.1f} {m['ours_mpx_per_s']:9.3f}"
                  f" {m['ours_peak_mib']:10.0f} {m['ours_share_mib']:17.0f}",
                  f"   MONAI       {min(m['monai_seconds']):9.1f} {m['monai_mpx_per_s']:9.3f}"
                  f" {m['monai_peak_mib']:10.0f} {m['monai_share_mib']:17.0f}"
                  f"   (sliding window alone {m['monai_sliding_window_seconds']:.1f} s)",
                  f"   ratio ours / MONAI: time {m['time_ratio']:.3f}, peak RSS "
                  f"{m['peak_ratio']:.3f}, RSS above the model {m['share_ratio']:.3f}", ""]
    lines.append("targets")
    for name, t in doc["targets"].items():
        lines.append(f"   {name:<28} {t['value']!s:>10}   {t['target']:<32} "
                     f"{'met' if t['met'] else 'NOT MET'}")
    return "\n".join(lines)


def write_doc(path: pathlib.Path | None, doc: dict) -> None:
    if path is not None:
        doc["targets"] = targets(doc)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)


def run(config: BenchConfig, work: pathlib.Path, json_path: pathlib.Path | None) -> dict:
    from distpaint.infer.engine import make_grid

    tic = time.perf_counter()
    predictor, info = build_predictor(config)
    halo = make_grid((config.dense_size, config.dense_size), predictor,
                     infer_config(config, True)).halo
    doc: dict[str, Any] = {"format": FORMAT, "smoke_test": config.smoke_test,
                           "config": dataclasses.asdict(config), "model": info,
                           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                       "load_average_at_start": list(os.getloadavg())}}
    masks = Masks(work)
    sections = {"setup": time.perf_counter() - tic}
    steps = [("throughput", lambda: bench_throughput(config, predictor, masks, work)),
             ("skip", lambda: bench_skipping(config, predictor, masks, work, halo)),
             ("zeros", lambda: bench_zeros(config, predictor, masks, work)),
             ("monai", lambda: bench_monai(config, masks, work) if config.monai else None),
             ("rss", lambda: bench_rss(config, masks, work, halo))]
    for name, step in steps:
        if name not in config.sections:
            continue
        start = time.perf_counter()
        result = step()
        if result is not None:
            doc[name] = result
        sections[name] = time.perf_counter() - start
        doc["section_seconds"] = {k: round(v, 1) for k, v in sections.items()}
        write_doc(json_path, doc)
    doc["machine"]["load_average_at_end"] = list(os.getloadavg())
    doc["seconds"] = round(time.perf_counter() - tic, 1)
    doc["targets"] = targets(doc)
    write_doc(json_path, doc)
    return doc


def parse(argv: list[str] | None) -> tuple[BenchConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = BenchConfig()
    parser.add_argument("--json", type=pathlib.Path, default=None, help="write the figures here")
    parser.add_argument("--smoke-test", action="store_true", help="tiny sizes, < 1 min")
    parser.add_argument("--model", default=None, help=f"registered generator or checkpoint ({d.model})")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--shard", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--dense-size", type=int, default=None)
    parser.add_argument("--zeros-size", type=int, default=None)
    parser.add_argument("--rss-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--rss-fill", choices=("diagonal", "all"), default=None,
                        help="shard regions of the peak-RSS masks holding structure")
    parser.add_argument("--rss-shards", type=int, default=None,
                        help="compute only the first N shards of each peak-RSS mask")
    parser.add_argument("--monai-size", type=int, default=None)
    parser.add_argument("--monai-repeats", type=int, default=None)
    parser.add_argument("--no-monai", action="store_true")
    parser.add_argument("--sections", nargs="+", default=None, choices=SECTIONS,
                        help="measure only these figures (default: all)")
    parser.add_argument("--work", type=pathlib.Path, default=None,
                        help="folder of the stores and outputs (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep --work's contents")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {
        "model": args.model, "seed": args.seed, "threads": args.threads, "tile": args.tile,
        "batch": args.batch, "shard": args.shard, "repeats": args.repeats,
        "dense_size": args.dense_size, "zeros_size": args.zeros_size,
        "rss_sizes": tuple(args.rss_sizes) if args.rss_sizes else None,
        "rss_fill": args.rss_fill, "rss_shards": args.rss_shards,
        "monai_size": args.monai_size, "monai_repeats": args.monai_repeats,
        "sections": tuple(args.sections) if args.sections else None,
    }.items() if v is not None}
    if args.no_monai:
        overrides["monai"] = False
    config = BenchConfig.smoke(**overrides) if args.smoke_test else BenchConfig(**overrides)
    return config, args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(child_main(json.loads(argv[1]))))
        return 0
    try:
        config, args = parse(argv)
    except DistpaintError as exc:
        print(f"bench/infer.py: error: {exc}", file=sys.stderr)
        return 2
    made = args.work is None
    work = pathlib.Path(tempfile.mkdtemp(prefix="distpaint-bench-infer-")) if made else args.work
    work.mkdir(parents=True, exist_ok=True)
    try:
        doc = run(config, work, args.json)
    except DistpaintError as exc:
        print(f"bench/infer.py: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if made and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not args.keep:  # only what this script wrote into a folder it was given
            for path in [work / "masks.zarr", *work.glob("out-*.zarr")]:
                shutil.rmtree(path, ignore_errors=True)
    print(render(doc))
    if args.json:
        log(f"wrote {args.json} ({doc['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
