"""GPU benchmark: training-step time and tiled-inference throughput, side by side in one run.

    python bench/gpu.py --json                      # on one GPU, a few minutes
    python bench/gpu.py --smoke-test --json         # every code path at tiny sizes, on CPU
    python bench/gpu.py --json --out OUT.json --peak-tflops 989 --budget-s 240

Measured in one process, on one device, each figure next to the one it is compared with:

1. **train** (`paper` recipe: GAN-GL, `unet_paper` G, `patchgan_paper` D_L, `siamese_paper`
   D_G, 8 patches of 256 px, the `InMemoryRecomposer`): `train_step` time in fp32 (torch's
   defaults: TF32 convolutions allowed by cuDNN, as a plain run has them) and under
   `torch.autocast(bfloat16)`, each on freshly built models with the same seed; warm-up steps,
   then the median of N steps with `torch.cuda.synchronize()` before and after each step.
   Batches are built on the CPU before timing (the data side is not measured). Also: the
   per-phase breakdown (`PhaseTimer`, synchronised) of a few more steps, the FLOPs of one step
   (`FlopCounterMode`, forward and backward of every network) and so the achieved fraction of
   the device's dense bf16 peak, and the peak GPU memory. `bf16_speedup` = fp32 / bf16 median.
2. **infer**: for each model (the shipped `roads`, `general`, `general-thin` when present, and
   a freshly initialised `unet_paper`), a synthetic 'roads' mask of --size px through the
   streaming engine (`run_inference`: tile+halo windows, batches of --batch equal-shape
   windows, the predictor's GPU path with bf16 autocast, keep=--keep, skip-empty off, into
   in-memory shard targets, so no Zarr compression is timed) after one warm-up run of the
   same mask; then the same windows replayed through the predictor alone ("raw": host->GPU
   copy, forward, GPU->host copy) and through the module alone with the windows already on
   the GPU ("device": the model-bound ceiling of this tiling), timed with synchronisation.
   FLOPs per pixel come from `FlopCounterMode` on one interior window; executed FLOPs count
   every window pixel (halos included), so achieved / peak is the share of the GPU's dense
   bf16 peak the run used (peak from a table by device name: H100 SXM 989, H100 PCIe 756,
   H100 NVL 835, H200 989, H200 NVL 836, A100 312 TFLOP/s; else --peak-tflops; the run also
   measures an 8192^3 bf16 matmul, the practical ceiling, and reports the share of that).
   For --fp32-model (`roads`) also: fp32 (bf16 off) on the same mask, its agreement with the
   bf16 output, and the pipeline with the default keep policy (`bridges`, CPU post-processing).
3. **monai**: MONAI's `sliding_window_inference` with the same module (bf16 autocast), the same
   mask (on the GPU), roi = tile + 2 halo, overlap so the windows step by one tile, sw_batch_size
   = --batch; seconds against ours from the same run, and the agreement of the two outputs
   (MONAI averages the overlaps, ours keeps each window's core). Skipped when monai does not
   import.

The GPU predictor is built as `TorchPredictor(module, receptive_halo=<measured on the CPU>,
gpu=True)`; whether `resolve_model(NAME, gpu=True)` itself works is checked once and reported
under `resolve_model_gpu` (the halo measurement runs on a module already on the GPU).

Options: --size (8192), --batch (8), --tile (the engine's auto_tile), --keep (all), --models
(roads general general-thin unet_paper), --fp32-model (roads), --repeats (2, best kept),
--train-steps (20), --train-warmup (5), --train-batches (4), --phase-steps (3), --peak-tflops,
--sections (train infer), --device (cuda if available), --threads, --seed, --budget-s (420),
--out FILE. --smoke-test: the paper recipe with the tiny networks (unet_tiny, patchgan_tiny,
siamese_tiny) on 4 patches of 32 px, 2 timed steps; a 128^2 mask in 64-px tiles for `general`
and `unet_paper`; --fp32-model general; one torch thread; on the CPU. Fractions of the peak
are always of the dense *bf16* peak, fp32 (TF32) figures included.

Every part runs even when an earlier one failed: errors are reported under `errors` (and in
the part), parts are skipped (with the reason) once --budget-s seconds have passed. Prints
one JSON object (--json: on one line). Exit status 0 unless the options are bad (2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import statistics
import sys
import time
import traceback
from typing import Any, Callable

import numpy as np

try:  # run as `python bench/gpu.py` from a checkout where distpaint is not installed
    import distpaint  # noqa: F401
except ImportError:
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

FORMAT = "distpaint-bench-gpu"

PEAK_BF16_DENSE_TFLOPS = (
    # (substring of torch.cuda.get_device_name(), dense bf16 TFLOP/s, what it is); first match wins
    ("H100 PCIe", 756.0, "H100 PCIe"),
    ("H100 NVL", 835.0, "H100 NVL"),
    ("H100", 989.0, "H100 SXM"),
    ("H200 NVL", 836.0, "H200 NVL"),
    ("H200", 989.0, "H200 SXM"),
    ("A100", 312.0, "A100"),
)
"""Vendor dense (no sparsity) bf16 tensor-core peaks."""

SHIPPED = ("roads", "general", "general-thin")
FRESH = "unet_paper"


def log(line: str) -> None:
    print(f"[bench/gpu] {line}", file=sys.stderr, flush=True)


class Run:
    """Budget, errors and device of one benchmark run."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.start = time.perf_counter()
        self.errors: dict[str, str] = {}
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def part(self, name: str, fn: Callable[[], Any]) -> Any:
        """`fn()`, or {"skipped": ...} past the budget, or {"error": ...} if it raised."""
        if self.elapsed() > self.args.budget_s:
            log(f"{name}: skipped (budget of {self.args.budget_s:.0f} s spent)")
            return {"skipped": f"budget of {self.args.budget_s:.0f} s spent "
                               f"({self.elapsed():.0f} s elapsed)"}
        tic = time.perf_counter()
        log(f"{name} ...")
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - every part runs, failures are reported
            tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-2500:]
            self.errors[name] = f"{type(exc).__name__}: {exc}"[:500]
            log(f"{name}: FAILED {type(exc).__name__}: {exc}\n{tail}")
            return {"error": f"{type(exc).__name__}: {exc}"[:500], "traceback": tail}
        finally:
            if self.cuda:
                import torch

                torch.cuda.empty_cache()
        log(f"{name}: {time.perf_counter() - tic:.1f} s")
        return result


# ---- device ---------------------------------------------------------------------------------
def device_info(run: Run) -> dict:
    import torch

    info: dict[str, Any] = {"type": run.device.type, "torch": torch.__version__,
                            "python": platform.python_version(), "host": platform.node(),
                            "cuda_available": torch.cuda.is_available()}
    if run.cuda:
        props = torch.cuda.get_device_properties(run.device)
        info.update(name=torch.cuda.get_device_name(run.device), cuda=torch.version.cuda,
                    capability=list(torch.cuda.get_device_capability(run.device)),
                    sm_count=props.multi_processor_count,
                    memory_gib=round(props.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version())
    else:
        info["name"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
    return info


def backend_flags() -> dict:
    import torch

    return {"cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def peak_table(name: str, override: float | None) -> dict:
    if override is not None:
        return {"dense_bf16_tflops": override, "source": "--peak-tflops"}
    for key, tflops, what in PEAK_BF16_DENSE_TFLOPS:
        if key.lower() in name.lower():
            return {"dense_bf16_tflops": tflops, "source": f"table: {what} (device name {name!r})"}
    return {"dense_bf16_tflops": None,
            "source": f"unknown device {name!r}: pass --peak-tflops for achieved/peak"}


def measured_matmul(run: Run) -> dict:
    """bf16 matmul TFLOP/s (n^3, mean of timed products after warm-ups): the practical ceiling."""
    import torch

    n = 8192 if run.cuda else 512
    reps = 10 if run.cuda else 2
    a = torch.randn(n, n, device=run.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=run.device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    run.sync()
    tic = time.perf_counter()
    for _ in range(reps):
        a @ b
    run.sync()
    seconds = (time.perf_counter() - tic) / reps
    return {"n": n, "reps": reps, "tflops": round(2 * n**3 / seconds / 1e12, 2)}


# ---- 1. training step -----------------------------------------------------------------------
def paper_config(smoke: bool):
    """The shipped `paper` recipe (tiny networks and patches with --smoke-test)."""
    from distpaint.train.config import config_from_dict, packaged_config, recipe_data

    data = recipe_data(packaged_config("paper"))
    if smoke:
        data["model"] = {**data.get("model", {}), "generator": "unet_tiny",
                         "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"}
        data["data"] = {**data.get("data", {}), "mask_size": 128, "n_masks": 3,
                        "patch_size": 32, "batch_size": 4}
        data["loss"] = {**data.get("loss", {}), "global_margin": 16, "global_max_size": 96}
    return config_from_dict(data, "paper" + (" (smoke-test sizes)" if smoke else ""))


def _autocast(run: Run, bf16: bool):
    import torch

    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(run.device.type, dtype=torch.bfloat16)


def _train_once(run: Run, cfg, batches, bf16: bool, steps: int, warmup: int,
                phase_steps: int) -> dict:
    import torch

    from distpaint.train.recompose import InMemoryRecomposer
    from distpaint.train.step import StepState, build_models, build_optimizers, train_step
    from distpaint.train.timing import PhaseTimer

    torch.manual_seed(cfg.seed)
    models = build_models(cfg)
    for m in (models.g, models.d_local, models.d_global):
        if m is not None:
            m.to(run.device)
    opts = build_optimizers(models, cfg.optim)
    rec = InMemoryRecomposer(cfg.loss.global_max_size, cfg.loss.global_margin)
    for name, truth in batches["masks"].items():
        rec.add_mask(name, truth)
    sampler = torch.Generator(run.device).manual_seed(cfg.seed + 1)
    state = StepState()
    data = batches["batches"]
    if run.cuda:
        torch.cuda.reset_peak_memory_stats(run.device)
    times, metrics, step = [], {}, 0
    for step in range(warmup + steps):
        batch = data[step % len(data)]
        run.sync()
        tic = time.perf_counter()
        with _autocast(run, bf16):
            metrics = train_step(models, opts, batch, rec, cfg, step, sampler, state)
        run.sync()
        if step >= warmup:
            times.append(time.perf_counter() - tic)
    timer = PhaseTimer(cuda=run.cuda)
    for k in range(phase_steps):
        s = warmup + steps + k
        with _autocast(run, bf16):
            train_step(models, opts, data[s % len(data)], rec, cfg, s, sampler, state, timer=timer)
        timer.steps += 1
    flops = None
    with contextlib.suppress(Exception):  # the count is a bonus: never fail the timing for it
        from torch.utils.flop_counter import FlopCounterMode

        s = warmup + steps + phase_steps
        with FlopCounterMode(display=False) as counter, _autocast(run, bf16):
            train_step(models, opts, data[s % len(data)], rec, cfg, s, sampler, state)
        flops = int(counter.get_total_flops())
    median = statistics.median(times)
    q = sorted(times)
    out = {"precision": "bf16 autocast" if bf16 else "fp32",
           "steps_timed": len(times), "warmup": warmup,
           "median_s": round(median, 5), "min_s": round(q[0], 5), "max_s": round(q[-1], 5),
           "p10_s": round(q[len(q) // 10], 5), "p90_s": round(q[min(len(q) - 1, (9 * len(q)) // 10)], 5),
           "patches_per_s": round(cfg.data.batch_size / median, 2),
           "phases_s": {k: round(v / max(timer.steps, 1), 5) for k, v in timer.seconds.items()},
           "phase_steps": timer.steps,
           "finite": bool(all(math.isfinite(v) for v in metrics.values())),
           "last_metrics": {k: round(float(v), 5) for k, v in metrics.items()},
           "flops_per_step": flops,
           "achieved_tflops": None if flops is None else round(flops / median / 1e12, 3)}
    if run.cuda:
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(run.device) / 2**30, 2)
    return out


def bench_train(run: Run, peak: dict, matmul: dict) -> dict:
    from distpaint.train.data import LocalData

    args = run.args
    cfg = paper_config(args.smoke_test)
    data = LocalData(cfg.data, cfg.seed, cfg.variant)
    tic = time.perf_counter()
    batches = {"batches": [data.batch(s).to(run.device) for s in range(args.train_batches)],
               "masks": data.masks}
    log(f"train: {args.train_batches} batches built in {time.perf_counter() - tic:.1f} s")
    out: dict[str, Any] = {
        "recipe": "paper", "variant": cfg.variant, "generator": cfg.model.generator,
        "local_disc": cfg.model.local_disc, "global_disc": cfg.model.global_disc,
        "batch": cfg.data.batch_size, "patch": cfg.data.patch_size,
        "baseline": cfg.loss.baseline, "global_max_size": cfg.loss.global_max_size,
        "what": ("train_step wall time, synchronised before and after each step; batches "
                 "prebuilt on the device; models rebuilt with the same seed for each precision")}
    for key, bf16 in (("fp32", False), ("bf16", True)):
        out[key] = run.part(f"train {key}", lambda bf16=bf16: _train_once(
            run, cfg, batches, bf16, args.train_steps, args.train_warmup, args.phase_steps))
    fp32, bf16 = out["fp32"], out["bf16"]
    if "median_s" in fp32 and "median_s" in bf16:
        out["bf16_speedup"] = round(fp32["median_s"] / bf16["median_s"], 3)
    tflops = peak.get("dense_bf16_tflops")
    for key in ("fp32", "bf16"):
        part = out[key]
        if part.get("achieved_tflops") is None:
            continue
        if tflops:
            part["fraction_of_bf16_peak"] = round(part["achieved_tflops"] / tflops, 5)
        if matmul.get("tflops"):
            part["fraction_of_matmul"] = round(part["achieved_tflops"] / matmul["tflops"], 5)
    return out


# ---- 2. inference ---------------------------------------------------------------------------
class ArrayTarget:
    """In-memory bool output with the `shards` layout the engine writes whole (no Zarr)."""

    def __init__(self, shape: tuple[int, int], shards: tuple[int, int]) -> None:
        self.array = np.zeros(shape, bool)
        self.shape, self.shards, self.chunks = tuple(shape), tuple(shards), tuple(shards)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.array[key] = value

    def __getitem__(self, key: Any) -> Any:
        return self.array[key]


class Recorder:
    """A predictor that keeps every batch it is given (replayed from memory afterwards)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.align, self.receptive_halo = inner, inner.align, inner.receptive_halo
        self.batches: list[np.ndarray] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch.copy())
        return self.inner(batch)


class Models:
    """CPU modules and their measured halos, built once per model name."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Any, int, dict]] = {}

    def get(self, name: str) -> tuple[Any, int, dict]:
        """(CPU module in eval mode, receptive halo rounded to align, description)."""
        if name not in self._cache:
            import torch

            from distpaint.infer.predictor import receptive_radius
            from distpaint.infer.tiling import round_up
            from distpaint.models import create_model, list_models
            from distpaint.models.layers import count_parameters
            from distpaint.models.modelfile import load_generator
            from distpaint.weights import checkpoint_or_shipped, shipped_models

            if name in shipped_models():
                module = load_generator(checkpoint_or_shipped(name))
                weights = "shipped"
            elif name in list_models("generator"):
                torch.manual_seed(0)
                module = create_model(name, "generator").eval()
                weights = "fresh init, torch.manual_seed(0)"
            else:
                raise ValueError(f"{name}: neither a shipped model nor a registered generator")
            align = int(module.size_multiple)
            tic = time.perf_counter()
            halo = round_up(receptive_radius(module, align), align)
            info = {"model": name, "weights": weights, "architecture": type(module).__name__,
                    "params": count_parameters(module), "align": align, "halo": halo,
                    "halo_measure_s": round(time.perf_counter() - tic, 2)}
            self._cache[name] = (module, halo, info)
        return self._cache[name]

    def predictor(self, name: str, run: Run, bf16: bool):
        """The project's predictor on `run`'s device, halo measured on the CPU beforehand."""
        import copy

        from distpaint.infer.predictor import TorchPredictor

        module, halo, _ = self.get(name)
        return TorchPredictor(copy.deepcopy(module), receptive_halo=halo, gpu=run.cuda, bf16=bf16)


def resolve_model_gpu_check(run: Run, models: Models, name: str) -> dict:
    """Does `resolve_model(name, gpu=True)` (the CLI's --gpu path) build, with the CPU's halo?"""
    from distpaint.infer.predictor import resolve_model

    if not run.cuda:
        return {"skipped": "no CUDA device (the gpu=True path needs one)"}
    _, halo, _ = models.get(name)
    try:
        predictor = resolve_model(name, gpu=True)
    except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on without it
        return {"model": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return {"model": name, "ok": predictor.receptive_halo == halo,
            "halo": predictor.receptive_halo, "cpu_halo": halo,
            "autocast_bf16": predictor.autocast, "device": str(predictor.device)}


def flops_per_pixel(run: Run, module: Any, shape: tuple[int, int], bf16: bool) -> int:
    """FLOPs of one forward of `module` on a (1, 1, h, w) window, per window pixel."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 1, *shape, device=run.device)
    with torch.inference_mode(), _autocast(run, bf16), FlopCounterMode(display=False) as counter:
        module(x)
    return int(round(counter.get_total_flops() / (shape[0] * shape[1])))


def engine_run(image: np.ndarray, predictor: Any, args: argparse.Namespace, keep: str,
               tile: int | None) -> tuple[Any, dict]:
    """One run of the streaming engine over `image` into in-memory targets."""
    from distpaint.infer.engine import InferConfig, make_grid, output_layout, run_inference

    config = InferConfig(tile=tile, batch=args.batch, keep=keep, skip_empty=False)
    grid = make_grid(image.shape, predictor, config)
    _, shards = output_layout(image.shape, grid.tile)
    targets = {"mask": ArrayTarget(image.shape, shards), "added": ArrayTarget(image.shape, shards)}
    stats = run_inference(image, predictor, targets, config)
    return stats, {"mask": targets["mask"].array, "grid": grid}


def _time_best(run: Run, fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        run.sync()
        tic = time.perf_counter()
        fn()
        run.sync()
        best = min(best, time.perf_counter() - tic)
    return best


def bench_model(run: Run, models: Models, image: np.ndarray, name: str, peak: dict,
                matmul: dict, bf16: bool = True, keep: str | None = None) -> dict:
    """Ours (the engine), raw (predictor replay) and device (module on resident windows)."""
    import torch

    args = run.args
    keep = keep or args.keep
    predictor = models.predictor(name, run, bf16)
    amp = predictor.autocast  # bf16 autocast on the GPU only, as the predictor itself does
    _, _, info = models.get(name)
    recorder = Recorder(predictor)
    warm, _ = engine_run(image, recorder, args, keep, args.tile)  # warm-up, records the batches
    best, result = None, None
    for _ in range(args.repeats):
        run.sync()
        stats, result = engine_run(image, predictor, args, keep, args.tile)
        if best is None or stats.seconds < best.seconds:
            best = stats
    assert best is not None and result is not None
    grid = result["grid"]
    batches = recorder.batches
    window_px = sum(b.shape[0] * b.shape[-2] * b.shape[-1] for b in batches)
    raw_s = _time_best(run, lambda: [predictor(b) for b in batches], args.repeats)
    resident = [torch.from_numpy(b).to(run.device).contiguous(memory_format=predictor.memory_format)
                for b in batches]
    module = predictor.module

    def device_pass() -> None:
        with torch.inference_mode(), _autocast(run, amp):
            for x in resident:
                module.predict_proba(x)

    device_s = _time_best(run, device_pass, args.repeats)
    del resident
    biggest = max((b.shape[-2:] for b in batches), key=lambda s: s[0] * s[1])
    fpp = flops_per_pixel(run, module, tuple(int(n) for n in biggest), amp)
    executed = fpp * window_px
    mask_mpx = image.size / 1e6
    out = {**info, "precision": "bf16 autocast" if amp else "fp32", "keep": keep,
           "size": list(image.shape), "tile": grid.tile, "batch": args.batch,
           "tiles": best.tiles, "batches": len(batches), "window_mpx": round(window_px / 1e6, 3),
           "window_overhead": round(window_px / image.size, 3),
           "warmup_s": round(warm.seconds, 3),
           "pipeline_s": round(best.seconds, 4), "pipeline_mpx_per_s": round(mask_mpx / best.seconds, 2),
           "pipeline_forward_s": round(best.forward_seconds, 4),
           "raw_s": round(raw_s, 4), "raw_mpx_per_s": round(mask_mpx / raw_s, 2),
           "device_s": round(device_s, 4), "device_mpx_per_s": round(mask_mpx / device_s, 2),
           "pipeline_vs_device": round(device_s / best.seconds, 4),
           "flops_window": list(biggest), "flop_per_window_px": fpp,
           "flop_per_mask_px": int(round(executed / image.size)),
           "executed_tflop": round(executed / 1e12, 4),
           "output_pixels": int(best.output_pixels), "added_pixels": int(best.added_pixels)}
    for key, seconds in (("pipeline", best.seconds), ("raw", raw_s), ("device", device_s)):
        achieved = executed / seconds / 1e12
        out[f"{key}_tflops"] = round(achieved, 3)
        if peak.get("dense_bf16_tflops"):
            out[f"{key}_fraction_of_bf16_peak"] = round(achieved / peak["dense_bf16_tflops"], 5)
        if matmul.get("tflops"):
            out[f"{key}_fraction_of_matmul"] = round(achieved / matmul["tflops"], 5)
    out["_mask"] = result["mask"]  # popped by the caller (agreement figures), never printed
    out["_predictor"] = predictor
    return out


def bench_monai(run: Run, image: np.ndarray, ours: dict) -> dict:
    """MONAI's sliding_window_inference with the same module and mask, on the device."""
    import monai
    import torch
    from monai.inferers import sliding_window_inference

    predictor = ours["_predictor"]
    halo, tile, batch = ours["halo"], ours["tile"], ours["batch"]
    roi = tile + 2 * halo
    # MONAI's step is int(roi * (1 - overlap)): aim half a pixel above one tile
    overlap = (2 * halo - 0.5) / roi
    module = predictor.module

    def forward(x: torch.Tensor) -> torch.Tensor:
        with _autocast(run, predictor.autocast):
            return module.predict_proba(x.contiguous(memory_format=predictor.memory_format)).float()

    def once() -> np.ndarray:
        x = torch.from_numpy(image).to(run.device, torch.float32)[None, None]
        with torch.inference_mode():
            probs = sliding_window_inference(x, roi, batch, forward, overlap=overlap,
                                             mode="constant", padding_mode="constant", cval=0.0,
                                             sw_device=run.device, device=run.device)
            fg = (probs[0, 0] > 0.5).cpu().numpy()
        return fg | image

    once()  # warm-up
    best, mask = float("inf"), None
    for _ in range(run.args.repeats):
        run.sync()
        tic = time.perf_counter()
        mask = once()
        run.sync()
        best = min(best, time.perf_counter() - tic)
    assert mask is not None
    steps = [1 if n <= roi else math.ceil((n - roi) / tile) + 1 for n in image.shape]
    return {"model": ours["model"], "monai_version": monai.__version__, "roi": roi,
            "overlap": round(overlap, 6), "sw_batch_size": batch, "windows": steps[0] * steps[1],
            "precision": ours["precision"], "monai_s": round(best, 4),
            "monai_mpx_per_s": round(image.size / 1e6 / best, 2),
            "ours_s": ours["pipeline_s"], "ours_mpx_per_s": ours["pipeline_mpx_per_s"],
            "ours_speedup": round(best / ours["pipeline_s"], 3),
            "mask_agreement": round(float(np.mean(mask == ours["_mask"])), 7),
            "what": ("input on the device, output stitched on the device, thresholded at 0.5 "
                     "OR the input; best of --repeats after a warm-up; ours is the pipeline "
                     "figure of the same model from this run")}


def synthetic_mask(size: int, seed: int) -> np.ndarray:
    from distpaint.data.synth import synth_array

    return np.asarray(synth_array("roads", (size, size), seed), dtype=bool)


def bench_infer(run: Run, peak: dict, matmul: dict) -> tuple[dict, dict]:
    """(infer section, monai section)."""
    from distpaint.weights import shipped_models

    args = run.args
    tic = time.perf_counter()
    image = synthetic_mask(args.size, args.seed)
    log(f"infer: {args.size}^2 roads mask in {time.perf_counter() - tic:.1f} s "
        f"({image.mean():.3f} foreground)")
    models = Models()
    have = set(shipped_models())
    names = [n for n in args.models if n in have or n not in SHIPPED]
    missing = [n for n in args.models if n in SHIPPED and n not in have]
    infer: dict[str, Any] = {"size": args.size, "batch": args.batch, "keep": args.keep,
                             "mask": "synthetic roads (distpaint.data.synth.synth_array)",
                             "foreground": round(float(image.mean()), 4),
                             "not_shipped": missing, "models": []}
    monai: dict[str, Any] = {}
    try:
        import monai as _monai  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        monai = {"skipped": f"monai does not import ({type(exc).__name__}: {exc})"[:300]}
    else:
        monai = {"models": []}
    check_name = "roads" if "roads" in have else names[0]
    infer["resolve_model_gpu"] = run.part(f"resolve_model({check_name!r}, gpu=True)",
                                          lambda: resolve_model_gpu_check(run, models, check_name))
    results: dict[str, dict] = {}
    for name in names:
        row = run.part(f"infer {name}", lambda name=name: bench_model(run, models, image, name,
                                                                      peak, matmul))
        results[name] = row
        if "models" in monai and "_mask" in row:
            monai["models"].append(run.part(f"monai {name}", lambda row=row: bench_monai(run, image, row)))
    extra = args.fp32_model
    if extra in results and "_mask" in results[extra]:
        bf16_row = results[extra]

        def fp32() -> dict:
            row = bench_model(run, models, image, extra, peak, matmul, bf16=False)
            mask = row.pop("_mask")
            row.pop("_predictor")
            row["bf16_mask_agreement"] = round(float(np.mean(mask == bf16_row["_mask"])), 7)
            added32, added16 = mask & ~image, bf16_row["_mask"] & ~image
            union = np.count_nonzero(added32 | added16)
            row["bf16_added_iou"] = round(np.count_nonzero(added32 & added16) / union, 5) if union else 1.0
            row["bf16_speedup_pipeline"] = round(row["pipeline_s"] / bf16_row["pipeline_s"], 3)
            row["bf16_speedup_device"] = round(row["device_s"] / bf16_row["device_s"], 3)
            return row

        def default_keep() -> dict:
            from distpaint.infer.engine import InferConfig

            keep = InferConfig().keep
            predictor = models.predictor(extra, run, True)
            stats, _ = engine_run(image, predictor, args, keep, args.tile)
            return {"keep": keep, "pipeline_s": round(stats.seconds, 4),
                    "pipeline_mpx_per_s": round(image.size / 1e6 / stats.seconds, 2),
                    "forward_s": round(stats.forward_seconds, 4),
                    "vs_keep_all": round(bf16_row["pipeline_s"] / stats.seconds, 4)}

        infer["fp32"] = run.part(f"infer {extra} fp32", fp32)
        infer["default_keep"] = run.part(f"infer {extra} default keep", default_keep)
    for row in results.values():
        row.pop("_mask", None)
        row.pop("_predictor", None)
        infer["models"].append(row)
    return infer, monai


# ---- main -----------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true",
                        help="every code path at tiny sizes (on the CPU unless --device cuda)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on one line")
    parser.add_argument("--out", help="also write the JSON object to this file")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available; "
                        "cpu with --smoke-test)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="dense bf16 peak of the device in TFLOP/s (default: from the table)")
    parser.add_argument("--sections", nargs="+", default=["train", "infer"],
                        choices=["train", "infer"], help="infer includes MONAI")
    parser.add_argument("--size", type=int, default=None, help="mask side (default 8192; smoke 128)")
    parser.add_argument("--batch", type=int, default=None, help="windows per forward (default 8; smoke 4)")
    parser.add_argument("--tile", type=int, default=None, help="tile side (default: the engine's "
                        "auto_tile; smoke 64)")
    parser.add_argument("--keep", default="all", choices=["all", "attached", "bridges"],
                        help="keep policy of the timed runs (default all: no CPU post-processing)")
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"default: {' '.join(SHIPPED)} {FRESH}; smoke: general {FRESH}")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats, best kept (2; smoke 1)")
    parser.add_argument("--train-steps", type=int, default=None, help="timed steps (20; smoke 2)")
    parser.add_argument("--train-warmup", type=int, default=None, help="warm-up steps (5; smoke 1)")
    parser.add_argument("--train-batches", type=int, default=None, help="distinct batches (4; smoke 2)")
    parser.add_argument("--phase-steps", type=int, default=None, help="steps of the breakdown (3; smoke 1)")
    parser.add_argument("--fp32-model", default=None,
                        help="model also run in fp32 and with the default keep (roads; smoke general)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; smoke 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=None,
                        help="skip the parts not started after this many seconds (default 420)")
    args = parser.parse_args(argv)
    import torch

    smoke = args.smoke_test
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.device == "cpu" and not smoke:
        log("warning: full sizes on the CPU take very long; use --smoke-test")
    defaults = {"size": (8192, 128), "batch": (8, 4), "tile": (None, 64), "repeats": (2, 1),
                "train_steps": (20, 2), "train_warmup": (5, 1), "train_batches": (4, 2),
                "phase_steps": (3, 1), "budget_s": (420.0, 600.0),
                "models": ([*SHIPPED, FRESH], ["general", FRESH]),
                "fp32_model": ("roads", "general"), "threads": (None, 1)}
    for key, (full, tiny) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if smoke else full)
    for key in ("size", "batch", "repeats", "train_steps", "train_batches"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.train_warmup < 0 or args.phase_steps < 0:
        parser.error("--train-warmup and --phase-steps must be >= 0")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    run = Run(args)
    doc: dict[str, Any] = {"format": FORMAT, "smoke_test": args.smoke_test,
                           "settings": {k: v for k, v in vars(args).items() if k not in ("json", "out")}}
    doc["device"] = run.part("device", lambda: device_info(run))
    doc["flags"] = backend_flags()
    name = doc["device"].get("name", "") if isinstance(doc["device"], dict) else ""
    peak = peak_table(name, args.peak_tflops) if run.cuda or args.peak_tflops else {
        "dense_bf16_tflops": None, "source": "not a GPU run (pass --peak-tflops to compare)"}
    peak["measured_matmul_bf16"] = run.part("matmul", lambda: measured_matmul(run))
    doc["peak"] = peak
    matmul = peak["measured_matmul_bf16"] if isinstance(peak["measured_matmul_bf16"], dict) else {}
    doc["train"] = (run.part("train", lambda: bench_train(run, peak, matmul)) if "train" in args.sections
                    else {"skipped": "--sections"})
    if "infer" in args.sections:
        both = run.part("infer", lambda: bench_infer(run, peak, matmul))
        doc["infer"], doc["monai"] = both if isinstance(both, tuple) else (both, {"skipped": "infer failed"})
    else:
        doc["infer"] = doc["monai"] = {"skipped": "--sections"}
    doc["errors"] = run.errors
    doc["seconds"] = round(run.elapsed(), 1)
    text = json.dumps(doc, indent=None if args.json else 2, default=str)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
