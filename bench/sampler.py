"""Benchmark: can one core feed a training worker? Patch sampling + gaps vs one training step.

Writes a temporary on-disk mask store with one SIZE x SIZE synthetic mask (roots from
`distpaint.data.synth` if available, else random thick lines drawn with skimage), then, all
on ONE thread (dask synchronous, Blosc/zarr/torch single-threaded), measures side by side:

- the sampler: 256x256 patches/s read from the store (foreground-aware, 8 per batch), with the
  one-off per-sample overview reported separately;
- `corrupt()` ms per 256x256 patch for each gap kind, on patches from that store;
- the consumption rate of one training worker: forward + backward of the paper-size U-Net
  generator (`distpaint.models` "unet_paper", or a stand-in U-Net of the same shape if that
  is not importable) on a batch of 8 patches on CPU;

and prints the ratio (sampled-and-corrupted patches/s) / (patches/s one worker consumes);
target >= 10.

    python bench/sampler.py [--json] [--size 8192] [--batches 40] [--train-steps 2]
    python bench/sampler.py --smoke-test       # tiny sizes, runs the same code path in seconds
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLOSC_NTHREADS"):
    os.environ[_var] = "1"  # before numpy/torch/blosc load their thread pools

import argparse
import json
import platform
import tempfile
import time
import warnings

import dask
import numpy as np

PATCH = 256


def single_thread() -> None:
    """Pin every library that could use more than one core to one thread."""
    import numcodecs
    import zarr

    dask.config.set(scheduler="synchronous")
    numcodecs.blosc.set_nthreads(1)
    numcodecs.blosc.use_threads = False
    zarr.config.set({"async.concurrency": 1, "threading.max_workers": 1})


def make_mask(size: int, seed: int):
    """A lazy (dask) thin-structure mask and a word on where it came from."""
    try:
        from distpaint.data.synth import synth_mask

        mask = synth_mask("roots", (size, size), seed)
        mask[:64, :64].compute()  # fail here, not in the store writer, if synth is unfinished
        return mask, "distpaint.data.synth roots"
    except Exception as exc:  # synth not ready: a simple stand-in keeps the bench runnable
        import dask.array as da
        from scipy import ndimage as ndi
        from skimage.draw import line

        rng = np.random.default_rng(seed)
        mask = np.zeros((size, size), bool)
        for _ in range(max(8, size // 32)):
            r0, c0, r1, c1 = rng.integers(0, size, 4)
            rr, cc = line(r0, c0, r1, c1)
            mask[rr, cc] = True
        mask = ndi.binary_dilation(mask, iterations=2)
        return da.from_array(mask, chunks=1024), f"random lines (synth unavailable: {type(exc).__name__})"


def bench_sampler(store, batches: int) -> dict:
    from distpaint.data.sampler import PatchSampler, SamplerConfig

    config = SamplerConfig(patch_size=PATCH, batch_size=8)
    sampler = PatchSampler(store, config, seed=0)
    warnings.simplefilter("ignore", RuntimeWarning)  # sparse masks fall back now and then
    t0 = time.perf_counter()
    sampler.batch(0)  # computes and caches the sample's overview
    overview_s = time.perf_counter() - t0
    fg = []
    # CPU time of the whole process (zarr decodes on its own I/O thread), and wall time, which
    # on a shared machine also counts other people's load.
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, batches + 1):
        fg.extend(sampler.batch(step).patches.mean(axis=(1, 2)).tolist())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    for step in range(1, batches + 1):
        sampler.plan(step)
    plan_ms = (time.perf_counter() - t0) / batches * 1e3
    n = batches * config.batch_size
    return {
        "patches": n,
        "patches_per_s_wall": n / wall,
        "patches_per_s_cpu": n / cpu,
        "plan_ms_per_batch": plan_ms,
        "overview_s_once_per_sample": overview_s,
        "mean_patch_foreground": float(np.mean(fg)),
        "min_patch_foreground": float(np.min(fg)),
        "sampler": sampler,
    }


def bench_gaps(patches: np.ndarray, repeat: int) -> dict:
    from distpaint.data.gaps import GAP_KINDS, GapConfig, corrupt

    out = {}
    for kind in GAP_KINDS:
        for hit in (True, False):
            config = GapConfig(kind=kind, hit_foreground=hit)
            rng = np.random.default_rng(0)
            corrupt(patches[0], config, rng)  # warm the blob library cache
            removed = []
            c0 = time.thread_time()
            for _ in range(repeat):
                for patch in patches:
                    _, gaps = corrupt(patch, config, rng)
                    removed.append(gaps.sum() / max(patch.sum(), 1))
            ms = (time.thread_time() - c0) / (repeat * len(patches)) * 1e3
            out[f"{kind}{'' if hit else '_uniform'}"] = {"ms_per_patch": ms, "removed_fraction": float(np.mean(removed))}
    return out


def _standin_unet():
    """The paper's G shape (16-32-64-128-256-512, 4 stride-2 downs, NN-up + conv, skips)."""
    import torch
    from torch import nn

    def block(cin, cout, stride=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self, widths=(16, 32, 64, 128, 256, 512)):
            super().__init__()
            self.stem = block(1, widths[0])
            self.downs = nn.ModuleList(block(a, b, 2) for a, b in zip(widths[:4], widths[1:5]))
            self.mid = block(widths[4], widths[5])
            # Decoder: (input width, skip width) per level, deepest first: 512+128, 128+64, ...
            levels = [(widths[5], widths[3]), (widths[3], widths[2]), (widths[2], widths[1]), (widths[1], widths[0])]
            self.ups = nn.ModuleList(block(cin + skip, skip) for cin, skip in levels)
            self.head = nn.Conv2d(widths[0], 2, 1)

        def forward(self, x):
            skips = [self.stem(x)]
            for down in self.downs:
                skips.append(down(skips[-1]))
            h = self.mid(skips.pop())
            for up in self.ups:
                h = up(torch.cat([nn.functional.interpolate(h, scale_factor=2, mode="nearest"), skips.pop()], 1))
            return self.head(h)  # (B, 2, H, W) logits, as distpaint.models generators

    return UNet()


def bench_training(batch: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    try:
        from distpaint.models import create_model

        model, which = create_model("unet_paper"), "distpaint.models unet_paper"
    except Exception as exc:
        model, which = _standin_unet(), f"stand-in U-Net in bench (distpaint.models unavailable: {type(exc).__name__})"
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 1, PATCH, PATCH, generator=gen) < 0.05).float()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    times = []
    for i in range(steps + 1):  # the first step warms up allocators and is not counted
        t0 = time.perf_counter()
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out, x[:, 0].long())  # the paper's L_CE
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if i:
            times.append(time.perf_counter() - t0)
    step_s = float(np.median(times))
    return {
        "model": which,
        "parameters": sum(p.numel() for p in model.parameters()),
        "step_s": step_s,
        "patches_per_s": batch / step_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size", type=int, default=8192, help="side of the synthetic mask")
    parser.add_argument("--batches", type=int, default=40, help="sampler batches of 8 timed")
    parser.add_argument("--gap-repeat", type=int, default=3, help="passes over 16 patches per gap kind")
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--smoke-test", action="store_true", help="tiny sizes: check the code path")
    args = parser.parse_args()
    if args.smoke_test:
        args.size, args.batches, args.gap_repeat, args.train_steps = 2048, 3, 1, 1

    single_thread()
    from distpaint.data.sampler import corrupt_batch
    from distpaint.data.gaps import GapConfig
    from distpaint.data.store import MaskStore

    with tempfile.TemporaryDirectory(prefix="bench-sampler-") as tmp:
        mask, source = make_mask(args.size, seed=0)
        t0 = time.perf_counter()
        store = MaskStore.create(os.path.join(tmp, "bench.zarr"))
        store.write("mask", {"mask": mask}, {"source": source})
        write_s = time.perf_counter() - t0
        store = MaskStore.open(store.path)
        sampling = bench_sampler(store, args.batches)
        sampler = sampling.pop("sampler")
        patches = np.concatenate([sampler.batch(10_000 + s).patches for s in range(2)])
        gaps = bench_gaps(patches, args.gap_repeat)
        # The whole data path of one step: sample a batch of 8 and corrupt it with mix gaps.
        rng, config = np.random.default_rng(0), GapConfig(kind="mix")
        t0, c0 = time.perf_counter(), time.process_time()
        for step in range(20_000, 20_000 + args.batches):
            corrupt_batch(sampler.batch(step), config, rng)
        data_rate = args.batches * 8 / (time.process_time() - c0)
        data_rate_wall = args.batches * 8 / (time.perf_counter() - t0)
    training = bench_training(8, args.train_steps)
    result = {
        "host": platform.node(),
        "threads": 1,
        "mask": {"size": args.size, "source": source, "write_s": write_s},
        "sampler": sampling,
        "corrupt_ms_per_patch": gaps,
        "sample_and_mix_gaps_patches_per_s_cpu": data_rate,
        "sample_and_mix_gaps_patches_per_s_wall": data_rate_wall,
        "training_worker": training,
        "ratio_sampler_to_training": sampling["patches_per_s_cpu"] / training["patches_per_s"],
        "ratio_sampler_to_training_wall": sampling["patches_per_s_wall"] / training["patches_per_s"],
        "ratio_sampler_plus_mix_gaps_to_training": data_rate / training["patches_per_s"],
        "ratio_sampler_plus_mix_gaps_to_training_wall": data_rate_wall / training["patches_per_s"],
        "target_ratio": 10,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"mask {args.size}^2 ({source}), written in {write_s:.1f} s")
    print(f"sampler: {sampling['patches_per_s_cpu']:.0f} patches/s (cpu), {sampling['patches_per_s_wall']:.0f} (wall); "
          f"overview {sampling['overview_s_once_per_sample']:.2f} s once per sample")
    for kind, v in gaps.items():
        print(f"corrupt {kind:18s} {v['ms_per_patch']:6.2f} ms/patch, removes {v['removed_fraction']:.1%} of foreground")
    print(f"sample + mix gaps: {data_rate:.0f} patches/s (cpu), {data_rate_wall:.0f} (wall)")
    print(f"training worker ({training['model']}): {training['step_s']:.2f} s/step of 8 = {training['patches_per_s']:.1f} patches/s")
    print(f"ratio sampler/training: {result['ratio_sampler_to_training']:.0f}x; with mix gaps: "
          f"{result['ratio_sampler_plus_mix_gaps_to_training']:.0f}x cpu, "
          f"{result['ratio_sampler_plus_mix_gaps_to_training_wall']:.0f}x wall (target >= 10x)")


if __name__ == "__main__":
    main()
