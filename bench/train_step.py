"""Benchmark: distributed training step time, patches/s and the step-time breakdown.

Runs the real distributed trainer (`distpaint.train.distributed.train_distributed`: Ray Train,
DDP over gloo, the re-composer actor, data streamed from a Zarr store) on one local Ray
instance, side by side:

1. **Small** (`cpu_small` recipe, 8 patches of 64 px per rank): 1 worker and 2 workers (one
   CPU and one torch thread each), plus the same steps in this process with no Ray (the
   `InMemoryRecomposer`), reporting seconds per step, patches/s, the 2-vs-1-worker scaling;
2. **Paper settings** (`paper` recipe: paper-size G, D_L, D_G, 8 patches of 256 px per rank,
   self-critical baseline, so two compositions per step) on a store of 2500 x 1000 masks,
   2 workers: the per-phase breakdown of a step (data, G, D_L, D_G, policy gradient without
   the actor, actor round trips, time spent waiting in the actor for the other ranks, buffer
   sync) for every rank, and the actor's share of the step (round trips including the waiting:
   the stricter figure). Target: < 10 %;
3. **The actor alone** at paper settings: two ranks (Ray tasks) sending 8 random 256-px
   patches each per composition to the actor, no training: the actor's absolute cost per step,
   and the step time above which it stays under 10 % (what a GPU step must exceed).

Times are means over the timed steps (the first step of each run is warm-up); phases come
from `PhaseTimer` via `train_step(timer=...)`. The actor's time is the round trip of each
rank's `compose` call less the time the actor reports it waited for the other ranks
(`actor_wait`: rank skew that would otherwise surface at the next all-reduce).

    python bench/train_step.py [--json] [--steps 8] [--paper-steps 3]
    python bench/train_step.py --smoke-test      # tiny sizes, same code path
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

PHASES = ("data", "g", "d_local", "d_global", "policy_gradient", "actor", "actor_wait", "sync")


def recipe(name: str, **overrides):
    from distpaint.train.config import config_from_dict, packaged_config, recipe_data

    data = recipe_data(packaged_config(name))
    for key, value in overrides.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    return config_from_dict(data, name)


def paper_store(path: Path, shape: tuple[int, int], count: int, seed: int = 0) -> Path:
    """`count` synthetic roots masks of `shape` (the issue's 2500 x 1000) in a store."""
    from distpaint.data.store import MaskStore
    from distpaint.data.synth import synth_array

    store = MaskStore.create(path)
    for i in range(count):
        store.write(f"roots-{i}", {"mask": synth_array("roots", shape, seed + i)}, {"kind": "roots"})
    return path


def distributed(cfg, root: Path, name: str, workers: int, steps: int, data: str | None = None) -> dict:
    """One distributed run; per-rank breakdown from the workers' status files."""
    from distpaint.train.distributed import DistributedConfig, train_distributed

    t0 = time.perf_counter()
    summary = train_distributed(cfg, root / name, max_steps=steps, options=DistributedConfig(
        num_workers=workers, mlflow=False, val_data="none", data=data, max_failures=0))
    wall = time.perf_counter() - t0
    ranks = [json.loads((root / name / "workers" / f"rank_{r}.json").read_text())["timing"]
             for r in range(workers)]
    m = summary["metrics"]
    step = float(np.mean([r["step"] for r in ranks]))
    return {
        "workers": workers,
        "sec_per_step": step,
        "patches_per_s": m["patches_per_s"],
        "breakdown_per_rank": [{k: round(r.get(k, 0.0), 4) for k in (*PHASES, "step")} for r in ranks],
        "actor_share_per_rank": [r.get("actor", 0.0) / r["step"] for r in ranks],
        "actor_share_with_wait_per_rank": [(r.get("actor", 0.0) + r.get("actor_wait", 0.0)) / r["step"]
                                           for r in ranks],
        "wall_s_including_startup": wall,
    }


def _rank_loop(actor, rank: int, world: int, steps: int, names: list[str], shape: tuple[int, int],
               m: int, patch: int, tags: tuple[str, ...]) -> dict:
    """One simulated rank: `steps` compositions per tag of `m` random patches each, at
    non-overlapping positions (rank r takes columns r * patch ...)."""
    from distpaint.train.actor import ActorRecomposer
    from distpaint.train.timing import PhaseTimer

    rng = np.random.default_rng(rank)
    timer = PhaseTimer()
    client = ActorRecomposer(actor, 1, rank, world, timer)
    rows = (shape[0] - patch) // max(m - 1, 1)
    ys = np.arange(m) * rows
    xs = np.full(m, (rank * patch) % max(shape[1] - patch, 1))
    for step in range(steps + len(names)):
        if step == len(names):  # every mask cached: time from here
            timer.reset()
        for tag in tags:
            client.put(names[step % len(names)], step, rng.random((m, patch, patch)) < 0.1, ys, xs, rank=rank, tag=tag)
            client.global_view(names[step % len(names)], step, tag=tag)
        timer.step_done()
    return timer.summary()


def actor_alone(store: Path, names: list[str], shape: tuple[int, int], world: int, steps: int, m: int,
                patch: int, tags: tuple[str, ...]) -> dict:
    """The actor's cost with no training around it: `world` ranks as Ray tasks (processes)."""
    import ray

    from distpaint.train.actor import create_recomposer

    actor = create_recomposer("bench-actor-alone", str(store))
    try:
        task = ray.remote(num_cpus=0)(_rank_loop)
        per_rank = ray.get([task.remote(actor, r, world, steps, names, shape, m, patch, tags) for r in range(world)])
    finally:
        ray.kill(actor)
    per_step = max(r.get("actor", 0.0) for r in per_rank)
    return {"ranks": world, "compositions_per_step": len(tags), "patches_per_rank": m, "patch_size": patch,
            "actor_s_per_step": per_step, "actor_wait_s_per_step": max(r.get("actor_wait", 0.0) for r in per_rank),
            "actor_ms_per_composition": 1e3 * per_step / len(tags),
            "step_time_for_10pct_share_s": per_step / 0.10}


def in_process(cfg, steps: int) -> dict:
    """The same steps without Ray: local data, in-memory re-composer, one thread."""
    import torch

    from distpaint.train.data import LocalData
    from distpaint.train.recompose import InMemoryRecomposer
    from distpaint.train.step import StepState, build_models, build_optimizers, train_step
    from distpaint.train.timing import PhaseTimer

    torch.manual_seed(cfg.seed)
    models = build_models(cfg)
    opts = build_optimizers(models, cfg.optim)
    data = LocalData(cfg.data, cfg.seed, cfg.variant)
    rec = InMemoryRecomposer(cfg.loss.global_max_size, cfg.loss.global_margin)
    for name, truth in data.masks.items():
        rec.add_mask(name, truth)
    sampler, state, timer = torch.Generator().manual_seed(1), StepState(), PhaseTimer()
    for step in range(steps + 1):
        if step == 1:
            timer.reset()
        with timer("data"):
            batch = data.batch(step)
        train_step(models, opts, batch, rec, cfg, step, sampler, state, timer=timer)
        timer.step_done()
    s = timer.summary()
    return {"workers": 0, "sec_per_step": s["step"], "patches_per_s": cfg.data.batch_size / s["step"],
            "breakdown": {k: round(v, 4) for k, v in s.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--steps", type=int, default=8, help="timed steps of the small runs")
    ap.add_argument("--paper-steps", type=int, default=3, help="timed steps at paper settings (0: skip)")
    ap.add_argument("--smoke-test", action="store_true", help="tiny sizes, same code path")
    args = ap.parse_args()

    import ray
    import torch

    torch.set_num_threads(1)
    small_name = "tiny" if args.smoke_test else "cpu_small"
    steps = 2 if args.smoke_test else args.steps
    big = {"name": "tiny", "shape": (320, 192), "steps": 1} if args.smoke_test else \
        {"name": "paper", "shape": (2500, 1000), "steps": args.paper_steps}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                             "ray": ray.__version__}}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-train-step-") as tmp:
            root = Path(tmp)
            cfg = recipe(small_name, checkpoint_every=10_000, log_every=10_000)
            small = {"config": small_name, "patch_size": cfg.data.patch_size, "patches_per_rank": cfg.data.batch_size,
                     "in_process": in_process(cfg, steps)}
            from distpaint.train.store_data import synthesize_store

            store = str(synthesize_store(cfg, root / "small.zarr", world_size=2))  # one store for both
            for n in (1, 2):
                small[f"workers_{n}"] = distributed(cfg, root, f"small-{n}", n, steps + 1, data=store)
            small["scaling_2_vs_1"] = small["workers_2"]["patches_per_s"] / small["workers_1"]["patches_per_s"]
            out["small"] = small
            if big["steps"] > 0:
                pcfg = recipe(big["name"], checkpoint_every=10_000, log_every=10_000,
                              data={"batch_size": 8 if big["name"] == "paper" else 4})
                store = paper_store(root / "paper.zarr", big["shape"], count=4)
                tags = ("sample", "greedy") if pcfg.loss.baseline == "self_critical" else ("sample",)
                out["actor_alone"] = actor_alone(store, [f"roots-{i}" for i in range(4)], big["shape"], 2,
                                                 5 if args.smoke_test else 30, pcfg.data.batch_size,
                                                 pcfg.data.patch_size, tags)
                run = distributed(pcfg, root, "paper-2", 2, big["steps"] + 1, data=str(store))
                share = max(run["actor_share_with_wait_per_rank"])  # the stricter figure
                out["paper"] = {"config": big["name"], "mask_shape": list(big["shape"]),
                                "patch_size": pcfg.data.patch_size, "patches_per_rank": pcfg.data.batch_size,
                                "global_view_max": pcfg.loss.global_max_size, "baseline": pcfg.loss.baseline,
                                "timed_steps": big["steps"], **run, "actor_share": share,
                                "target_actor_share": 0.10, "ok": share < 0.10}
    finally:
        ray.shutdown()
    if args.json:
        print(json.dumps(out, indent=1))
        return
    s = out["small"]
    print(f"small ({s['config']}, {s['patches_per_rank']} x {s['patch_size']} px per rank):")
    for key in ("in_process", "workers_1", "workers_2"):
        r = s[key]
        print(f"  {key:11s} {r['sec_per_step']:.3f} s/step  {r['patches_per_s']:.1f} patches/s")
    print(f"  2 vs 1 worker: x{s['scaling_2_vs_1']:.2f} patches/s")
    if "paper" in out:
        p = out["paper"]
        print(f"paper settings ({p['patches_per_rank']} x {p['patch_size']} px per rank, masks {p['mask_shape']}):")
        for r, b in enumerate(p["breakdown_per_rank"]):
            print(f"  rank {r}: " + "  ".join(f"{k} {v:.3f}" for k, v in b.items()))
        print(f"  actor share {p['actor_share']:.1%} incl. waiting for other ranks (target < 10%): "
              f"{'OK' if p['ok'] else 'MISSED'}")
    if "actor_alone" in out:
        a = out["actor_alone"]
        print(f"actor alone: {a['actor_ms_per_composition']:.1f} ms per composition, "
              f"{a['actor_s_per_step'] * 1e3:.1f} ms per step; < 10 % of any step longer than "
              f"{a['step_time_for_10pct_share_s']:.2f} s")


if __name__ == "__main__":
    main()
