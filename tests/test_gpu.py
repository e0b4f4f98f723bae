"""CUDA checks: the training step of every variant, DDP over NCCL, bf16 against fp32 inference,
tiled against whole-image GPU inference, and the re-composer with CUDA tensors; plus the CPU
smoke test of bench/gpu.py (runs everywhere).

Every CUDA test carries the `gpu` marker and an explicit skip without a CUDA device (tests/
conftest.py skips `gpu` items too), so on a machine without one this file reports skips and the
smoke test. The marks are per test rather than a module-level `pytestmark`, because the smoke
test must run here, unmarked. Tests that need Dask/Zarr (config validation, the synthetic masks,
the engine) skip when those do not import: on a GPU machine without them, carry the wheels
(`bash bench/gpu_check.sh --fetch-wheels`, see that script).

    bash bench/gpu_check.sh                          # on the GPU machine: pytest -m gpu + bench
    .venv/bin/pytest -q tests/test_gpu.py            # here: skips + the smoke test

Figures the tests measure but do not assert (bit-exactness, bf16 tiling differences) are
recorded with `record_property`, which `--junitxml` writes out (gpu_check.sh does).
"""

from __future__ import annotations

import copy
import gc
import importlib.util
import inspect
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.cuda.is_available()
DEVICE = os.environ.get("DISTPAINT_GPU_TESTS_DEVICE", "cuda")
"""Where the `gpu` tests run. `cpu` is a dry run of their logic on a machine without a GPU (it
proves nothing about CUDA): `DISTPAINT_GPU_TESTS_DEVICE=cpu pytest --noconftest -m gpu
tests/test_gpu.py` (--noconftest: conftest.py skips `gpu` items without CUDA)."""
ON_GPU = DEVICE == "cuda"
_on_cuda = pytest.mark.skipif(ON_GPU and not CUDA, reason="needs a CUDA device")


def gpu(fn):
    """The `gpu` marker plus an explicit skip without CUDA (also when run without conftest)."""
    return pytest.mark.gpu(_on_cuda(fn))


TINY = {
    "model": {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"},
    "data": {"mask_size": 128, "n_masks": 3, "patch_size": 32, "batch_size": 4},
    "loss": {"global_margin": 16, "global_max_size": 96},
}


def _need_data_stack() -> None:
    """Config validation, the synthetic masks and the engine import Dask and Zarr."""
    for name in ("dask.array", "zarr"):
        try:
            importlib.import_module(name)
        except ImportError as exc:  # also a dependency of theirs missing (numcodecs, ...)
            pytest.skip(f"{name} does not import here ({exc}); carry the wheels: "
                        "bash bench/gpu_check.sh --fetch-wheels")


def _cfg(variant: str = "gan-gl", **loss):
    from distpaint.train.config import config_from_dict

    model = dict(TINY["model"])
    if variant == "cnn":
        model["generator"] = "cnn_tiny"
    return config_from_dict({**TINY, "variant": variant, "model": model,
                             "loss": {**TINY["loss"], **loss}})


def _on_device(t: torch.Tensor) -> bool:
    return t.device.type == DEVICE


def _setup(cfg, device=DEVICE):
    from distpaint.train.data import LocalData
    from distpaint.train.recompose import InMemoryRecomposer
    from distpaint.train.step import StepState, build_models, build_optimizers

    torch.manual_seed(0)
    models = build_models(cfg)
    for m in (models.g, models.d_local, models.d_global):
        if m is not None:
            m.to(device)
    opts = build_optimizers(models, cfg.optim)
    data = LocalData(cfg.data, 0, cfg.variant)
    rec = InMemoryRecomposer(cfg.loss.global_max_size, cfg.loss.global_margin)
    for name, truth in data.masks.items():
        rec.add_mask(name, truth)
    return models, opts, data, rec, torch.Generator(device).manual_seed(1), StepState()


def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _moved(before, module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


# ---- training step ---------------------------------------------------------------------------
def _variants():
    from distpaint.train.config import VARIANTS

    return VARIANTS


@gpu
@pytest.mark.parametrize("variant", _variants())
def test_train_step_of_every_variant_on_cuda(variant):
    """Two steps (a real masked-CE batch second for GAN-GL-M / unet-m) on CUDA: finite losses,
    G's (and the discriminators') parameters move, everything stays on the GPU."""
    _need_data_stack()
    from distpaint.train.step import train_step

    cfg = _cfg(variant)
    models, opts, data, rec, sampler, state = _setup(cfg)
    g0 = _params(models.g)
    d0 = {k: _params(getattr(models, k)) for k in ("d_local", "d_global") if getattr(models, k) is not None}
    history = []
    for step in (0, 1):
        batch = data.batch(step).to(DEVICE)
        assert _on_device(batch.x) and _on_device(batch.y) and _on_device(batch.region)
        metrics = train_step(models, opts, batch, rec if cfg.uses_global else None, cfg, step,
                             sampler, state)
        assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
        history.append(metrics)
    first = set(history[0])
    assert {"ce", "loss_g"} <= first
    assert ("loss_dl" in first and "lsgan_g" in first) == cfg.uses_local
    assert ("loss_dg" in first and "pg" in first) == cfg.uses_global
    if cfg.uses_global:
        assert 0 < history[0]["reward"] < 1
    if cfg.uses_real:
        assert set(history[1]) == {"masked_ce", "loss_g"}
    assert _moved(g0, models.g)
    for key, before in d0.items():
        assert _moved(before, getattr(models, key)), key
    for module in (models.g, models.d_local, models.d_global):
        if module is not None:
            assert all(_on_device(p) for p in module.parameters())
            assert all(_on_device(b) for b in module.buffers())
    exp_avg = [s["exp_avg"] for s in opts.g.state.values()]
    assert exp_avg and all(_on_device(t) for t in exp_avg)
    with torch.no_grad():
        assert _on_device(models.g(data.batch(2).to(DEVICE).x))


@gpu
def test_train_step_under_bf16_autocast_is_finite():
    """The step bench/gpu.py times in bf16: train_step inside torch.autocast(bfloat16)."""
    _need_data_stack()
    from distpaint.train.step import train_step

    cfg = _cfg("gan-gl")
    models, opts, data, rec, sampler, state = _setup(cfg)
    g0 = _params(models.g)
    for step in range(3):
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            metrics = train_step(models, opts, data.batch(step).to(DEVICE), rec, cfg, step,
                                 sampler, state)
        assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert _moved(g0, models.g)
    assert all(p.dtype == torch.float32 for p in models.g.parameters())  # autocast, not .half()


# ---- DDP over NCCL -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_broadcast_buffers(*args, forward_sync_buffers=None, **kwargs):
    """DDP for a torch without `forward_sync_buffers` (< 2.13): the same switch under its old
    name `broadcast_buffers`."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(*args, broadcast_buffers=(
        True if forward_sync_buffers is None else forward_sync_buffers), **kwargs)


@gpu
def test_ddp_over_nccl_one_rank(monkeypatch):
    """A real NCCL process group (world size 1, TCP store on 127.0.0.1), the project's DDP
    wrapping of G, D_L and D_G (`wrap_models` on cuda:0), two training steps with the view
    reward (broadcast from rank 0 over NCCL) and with the per-patch reward (its mean
    all-reduced over NCCL), then `sync_buffers`: finite, weights move, gradients reduced on
    the GPU. Fails at the end, after the NCCL check, if distpaint/train/ddp.py's DDP keyword
    does not exist in this torch."""
    _need_data_stack()
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from distpaint.train import ddp
    from distpaint.train.step import train_step

    backend = "nccl" if ON_GPU else "gloo"  # gloo: the CPU dry run only
    assert dist.is_available() and (not ON_GPU or dist.is_nccl_available()), "no NCCL backend"
    missing_kwarg = "forward_sync_buffers" not in inspect.signature(
        DistributedDataParallel.__init__).parameters
    if missing_kwarg or os.environ.get("DISTPAINT_GPU_TESTS_SHIM_DDP"):  # the latter: dry runs
        monkeypatch.setattr(ddp, "DDP", _ddp_broadcast_buffers)
    if ON_GPU:
        torch.cuda.set_device(0)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0,
                            world_size=1)
    try:
        assert dist.get_backend() == backend and dist.get_world_size() == 1
        for loss in ({}, {"dg_positive": "self", "reward_scope": "patch", "baseline": "ema"}):
            cfg = _cfg("gan-gl", **loss)
            models, opts, data, rec, sampler, state = _setup(cfg)
            dmodels = ddp.wrap_models(models, "cuda:0" if ON_GPU else "cpu")
            for key in ("g", "d_local", "d_global"):
                net = getattr(dmodels, key)
                assert isinstance(net, ddp.DDPNet), key
                assert net.ddp.device_ids == ([0] if ON_GPU else None), key
            g0 = _params(models.g)
            for step in (0, 1):
                metrics = train_step(dmodels, opts, data.batch(step).to(DEVICE), rec, cfg, step,
                                     sampler, state, rank=0)
                ddp.sync_buffers(dmodels)
                assert all(math.isfinite(v) for v in metrics.values()), (loss, metrics)
                assert 0 < metrics["reward"] < 1
            assert _moved(g0, ddp.unwrap(dmodels.g))
            grads = [p.grad for p in ddp.unwrap(dmodels.g).parameters() if p.requires_grad]
            assert grads and all(g is not None and _on_device(g) for g in grads)
            if loss:
                assert state.ema_reward is not None  # fed by the NCCL all-reduce of the mean
            del dmodels, models, opts
            gc.collect()
    finally:
        gc.collect()
        dist.destroy_process_group()
    if missing_kwarg:
        pytest.fail(f"distpaint/train/ddp.py builds DDP(..., forward_sync_buffers=False), a "
                    f"keyword torch {torch.__version__} does not have (it came with torch 2.13; "
                    f"pyproject allows torch>=2.4): the NCCL steps above passed only with "
                    f"broadcast_buffers=False substituted")


# ---- inference ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def roads_halo() -> int:
    """The shipped roads model's receptive halo, measured on the CPU as resolve_model does."""
    from distpaint.infer.predictor import resolve_model

    return resolve_model("roads").receptive_halo


def _gpu_predictor(halo: int, bf16: bool):
    """The predictor's GPU path for the shipped roads model, halo given (measured on the CPU),
    so these tests do not depend on `test_resolve_model_gpu_builds_the_roads_predictor`."""
    from distpaint.infer.predictor import TorchPredictor
    from distpaint.models.modelfile import load_generator
    from distpaint.weights import checkpoint_or_shipped

    return TorchPredictor(load_generator(checkpoint_or_shipped("roads")), receptive_halo=halo,
                          gpu=ON_GPU, bf16=bf16)


def _roads_with_gaps(size: int, seed: int) -> np.ndarray:
    """A synthetic road network with 400 square holes of 4-10 px cut into its foreground."""
    from distpaint.data.synth import synth_array

    image = np.asarray(synth_array("roads", (size, size), seed), dtype=bool)
    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero(image)
    for i in rng.choice(len(ys), size=400, replace=False):
        r = int(rng.integers(4, 11))
        image[ys[i]:ys[i] + r, xs[i]:xs[i] + r] = False
    return image


@gpu
def test_resolve_model_gpu_builds_the_roads_predictor(roads_halo):
    """`resolve_model("roads", gpu=True)` (the CLI's --gpu path) builds a CUDA predictor with
    bf16 autocast and the same halo as on the CPU, and predicts."""
    from distpaint.infer.predictor import resolve_model

    predictor = resolve_model("roads", gpu=ON_GPU)
    assert predictor.device.type == DEVICE and predictor.autocast == ON_GPU
    assert predictor.receptive_halo == roads_halo
    out = predictor(np.zeros((2, 1, 64, 64), np.float32))
    assert out.dtype == np.float32 and out.shape == (2, 1, 64, 64)


@gpu
def test_bf16_inference_agrees_with_fp32(roads_halo, record_property):
    """The GPU predictor with bf16 autocast against fp32 on the same 1024^2 roads mask with gaps:
    mean |p_bf16 - p_fp32| < 1e-2, thresholded masks agree on >= 99.9% of the pixels, and the
    pixels each adds (the repair, about 1% of the image here) overlap with IoU >= 0.9: the 0.1%
    of pixels the agreement lets differ could otherwise hide a tenth of the repair."""
    _need_data_stack()
    image = _roads_with_gaps(1024, 5)
    x = image[None, None].astype(np.float32)
    bf16, fp32 = _gpu_predictor(roads_halo, True), _gpu_predictor(roads_halo, False)
    assert bf16.autocast == ON_GPU and not fp32.autocast and bf16.device.type == DEVICE
    p16, p32 = bf16(x)[0, 0], fp32(x)[0, 0]
    assert p16.dtype == np.float32 and p16.shape == image.shape
    mad = float(np.abs(p16 - p32).mean())
    agree = float(np.mean((p16 > 0.5) == (p32 > 0.5)))
    add16, add32 = (p16 > 0.5) & ~image, (p32 > 0.5) & ~image
    union = int(np.count_nonzero(add16 | add32))
    iou = np.count_nonzero(add16 & add32) / union if union else 1.0
    for key, value in (("mean_abs_prob_diff", mad), ("mask_agreement", agree),
                       ("max_abs_prob_diff", float(np.abs(p16 - p32).max())),
                       ("added_pixels_fp32", int(add32.sum())), ("added_iou", iou)):
        record_property(key, value)
    assert add32.sum() > 0, "the model added nothing: the comparison would be trivial"
    assert mad < 1e-2, mad
    assert agree >= 0.999, agree
    assert iou >= 0.9, (iou, int(add16.sum()), int(add32.sum()))


class _ArrayTarget:
    """In-memory output laid out in shards of whole tiles (what the engine writes)."""

    def __init__(self, shape, shards):
        self.array = np.zeros(shape, bool)
        self.shape, self.shards, self.chunks = tuple(shape), tuple(shards), tuple(shards)

    def __setitem__(self, key, value):
        self.array[key] = value

    def __getitem__(self, key):
        return self.array[key]


@gpu
def test_tiled_gpu_inference_equals_whole_image_fp32(roads_halo, record_property):
    """The streaming engine (tiles of 512 px + the 288-px halo, batches of 4 windows) on the GPU
    in fp32 against one forward pass over the whole zero-padded 2048^2 mask, with TF32 off and
    deterministic cuDNN.

    Exactness, stated: the windows are true sub-images (the CPU tests prove the tiling exact
    bit for bit), but cuDNN picks its convolution algorithm per input shape, and algorithms sum
    in different orders, so GPU probabilities of a window and of the whole image can differ in
    the last bits. Asserted: tiled probabilities within 1e-4 of whole-image ones everywhere,
    and the engine's mask equal to the whole image's thresholded probabilities at every pixel
    whose probability is more than 1e-4 away from the threshold (in practice: every pixel;
    the count of the others and whether the probabilities were bit-identical are recorded).
    bf16 autocast is not exact (activations rounded to 8 bits of mantissa, per-shape kernels):
    its tiled-vs-whole difference is only recorded."""
    _need_data_stack()
    from distpaint.infer.engine import InferConfig, make_grid, output_layout, run_inference
    from distpaint.infer.tiling import tiled_apply, whole_apply

    image = _roads_with_gaps(2048, 7)
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        predictor = _gpu_predictor(roads_halo, bf16=False)
        fn = lambda a: predictor(a[None, None])[0, 0]  # noqa: E731
        whole = whole_apply(image.astype(np.float32), fn, predictor.align)
        config = InferConfig(keep="all", tile=512, batch=4, threshold=0.5, keep_input=False,
                             skip_empty=False)
        grid = make_grid(image.shape, predictor, config)
        _, shards = output_layout(image.shape, grid.tile, shards=1024)
        targets = {"mask": _ArrayTarget(image.shape, shards), "added": _ArrayTarget(image.shape, shards)}
        stats = run_inference(image, predictor, targets, config)
        tiled = tiled_apply(image.astype(np.float32), fn, grid)
    finally:
        (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = flags
    tol = 1e-4
    want = whole > np.float32(0.5)
    mask = targets["mask"].array
    diff = float(np.abs(tiled - whole).max())
    disagree = mask != want
    record_property("fp32_max_abs_prob_diff", diff)
    record_property("fp32_bit_identical", bool(np.array_equal(tiled, whole)))
    record_property("fp32_mask_pixels_differing", int(disagree.sum()))
    assert stats.predicted == 16 and grid.halo == roads_halo
    assert 0.01 < want.mean() < 0.5  # not a trivial map
    assert diff <= tol, diff
    assert not (disagree & (np.abs(whole - 0.5) > tol)).any(), int(disagree.sum())
    bf16 = _gpu_predictor(roads_halo, bf16=True)
    fn16 = lambda a: bf16(a[None, None])[0, 0]  # noqa: E731
    whole16 = whole_apply(image.astype(np.float32), fn16, bf16.align)
    tiled16 = tiled_apply(image.astype(np.float32), fn16, grid)
    record_property("bf16_max_abs_prob_diff", float(np.abs(tiled16 - whole16).max()))
    record_property("bf16_mask_agreement", float(np.mean((tiled16 > 0.5) == (whole16 > 0.5))))


# ---- re-composer --------------------------------------------------------------------------
@gpu
def test_recomposer_with_cuda_patches():
    """Patches on the GPU go through the re-composer (to the CPU and back): the global view
    holds exactly those patches, the reward is D_G's score of that view (as a CPU copy of D_G
    scores it), D_G's state is untouched; the step does the same with the Bernoulli sample and,
    with the self-critical baseline, the thresholded output; per-patch rewards stay on the GPU."""
    _need_data_stack()
    from distpaint.train import step as step_mod
    from distpaint.train.recompose import compose, view_window

    cfg = _cfg("gan-gl")
    models, opts, data, rec, sampler, state = _setup(cfg)
    batch = data.batch(0).to(DEVICE)
    patches = torch.bernoulli(torch.full_like(batch.y, 0.3), generator=sampler)
    assert _on_device(patches)
    before = {k: v.clone() for k, v in models.d_global.state_dict().items()}
    reward = step_mod._reward(models, rec, batch, patches, 0, "sample", 0)
    assert isinstance(reward, float) and 0 < reward < 1
    assert all(torch.equal(before[k], v) for k, v in models.d_global.state_dict().items())
    view = rec.global_view(batch.name, 0)
    truth = data.masks[batch.name]
    arr = patches[:, 0].cpu().numpy().astype(bool)
    y0, y1, x0, x1 = view_window(truth.shape, batch.ys, batch.xs, arr.shape[1:],
                                 cfg.loss.global_margin, cfg.loss.global_max_size)
    assert view.origin == (y0, x0)
    np.testing.assert_array_equal(view.x_hat, compose(truth[y0:y1, x0:x1], arr, batch.ys,
                                                      batch.xs, (y0, x0)))
    np.testing.assert_array_equal(view.truth, truth[y0:y1, x0:x1])
    d_cpu = copy.deepcopy(models.d_global).cpu().eval()
    t = lambda a: torch.from_numpy(a).float()[None, None]  # noqa: E731
    with torch.no_grad():
        cpu_reward = float(d_cpu(t(view.x_hat), t(view.truth)))
    assert abs(reward - cpu_reward) < 5e-3, (reward, cpu_reward)

    per_patch = step_mod._patch_rewards(models, batch, patches)
    assert _on_device(per_patch) and per_patch.shape == (batch.x.shape[0],)

    cfg = _cfg("gan-gl", baseline="self_critical")
    models, opts, data, rec, sampler, state = _setup(cfg)
    metrics = step_mod.train_step(models, opts, data.batch(0).to(DEVICE), rec, cfg, 0, sampler, state)
    assert 0 < metrics["reward"] < 1 and math.isfinite(metrics["advantage"])
    name = data.batch(0).name
    assert rec.global_view(name, 0, tag="sample").x_hat.any()
    rec.global_view(name, 0, tag="greedy")  # the thresholded output was composed too


# ---- bench/gpu.py (CPU) ----------------------------------------------------------------------
def _bench_module():
    return load_script("bench/gpu.py")


def test_bench_gpu_peak_table():
    bench = _bench_module()
    assert bench.peak_table("NVIDIA H100 80GB HBM3", None)["dense_bf16_tflops"] == 989.0
    assert bench.peak_table("NVIDIA H100 PCIe", None)["dense_bf16_tflops"] == 756.0
    assert bench.peak_table("NVIDIA H200", None)["dense_bf16_tflops"] == 989.0
    assert bench.peak_table("NVIDIA H200 NVL", None)["dense_bf16_tflops"] == 836.0
    assert bench.peak_table("Some GPU", None)["dense_bf16_tflops"] is None
    assert bench.peak_table("Some GPU", 123.0) == {"dense_bf16_tflops": 123.0, "source": "--peak-tflops"}


@pytest.mark.slow
def test_bench_gpu_smoke_test_runs_every_path(tmp_path):
    """`python bench/gpu.py --smoke-test --json` on the CPU: one JSON object with every section,
    no errors, the figures present and sane."""
    _need_data_stack()
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke-test", "--json",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1  # --json: one object on one line
    doc = json.loads(lines[0])
    assert doc == json.loads(out.read_text())
    assert {"format", "smoke_test", "settings", "device", "flags", "peak", "train", "infer",
            "monai", "errors", "seconds"} <= set(doc)
    assert doc["format"] == "distpaint-bench-gpu" and doc["smoke_test"] is True
    assert doc["errors"] == {}, doc["errors"]
    assert doc["device"]["type"] == "cpu"
    assert doc["peak"]["measured_matmul_bf16"]["tflops"] > 0

    train = doc["train"]
    assert train["recipe"] == "paper" and train["variant"] == "gan-gl"
    for key in ("fp32", "bf16"):
        part = train[key]
        assert {"median_s", "p10_s", "p90_s", "patches_per_s", "phases_s", "flops_per_step",
                "achieved_tflops", "finite"} <= set(part), part
        assert part["median_s"] > 0 and part["finite"] and part["steps_timed"] == 2
        assert {"g", "d_local", "d_global", "policy_gradient"} <= set(part["phases_s"])
        assert part["flops_per_step"] > 0
    assert train["bf16_speedup"] > 0

    infer = doc["infer"]
    assert [row["model"] for row in infer["models"]] == ["general", "unet_paper"]
    for row in infer["models"]:
        for key in ("pipeline_mpx_per_s", "raw_mpx_per_s", "device_mpx_per_s", "pipeline_tflops",
                    "device_tflops", "flop_per_window_px", "halo", "tile", "tiles", "window_mpx",
                    "pipeline_fraction_of_matmul"):
            assert row[key] > 0, (row["model"], key)
    paper = infer["models"][1]
    assert paper["weights"].startswith("fresh init") and paper["params"] > 5e6
    assert 3e5 < paper["flop_per_window_px"] < 5e5  # the paper-size G, FlopCounterMode's count
    assert infer["resolve_model_gpu"] == {"skipped": "no CUDA device (the gpu=True path needs one)"}
    assert infer["fp32"]["precision"] == "fp32" and 0.99 <= infer["fp32"]["bf16_mask_agreement"] <= 1
    assert infer["default_keep"]["keep"] == "bridges" and infer["default_keep"]["pipeline_s"] > 0

    monai = doc["monai"]
    if "skipped" in monai:
        assert "monai" in monai["skipped"]
    else:
        assert [m["model"] for m in monai["models"]] == ["general", "unet_paper"]
        for m in monai["models"]:
            assert m["monai_s"] > 0 and m["ours_speedup"] > 0 and 0.9 < m["mask_agreement"] <= 1
