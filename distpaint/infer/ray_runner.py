"""Inference on Ray: Ray Data spreads shard descriptors over an actor pool, one model per actor.

A task is a descriptor of one output shard of one mask, `(unit spec, y0, x0)`: a few hundred
bytes of JSON. Pixels never pass through Ray's object store: every actor opens the input and
the staging Zarr arrays itself, reads the shard's tile windows (tile plus halo) and writes the
shard whole, once (`engine.run_inference` restricted to that shard), so no two writers ever
touch one shard. After writing, the actor appends the shard to its own manifest file; the
driver gets back the shard's counts and finalises a mask when its last shard is in.

Ray: the cluster of `RAY_ADDRESS` (as inside `ray job submit`), or a private local instance
started here (no token authentication, shut down at the end). Actors: one per GPU with
`gpu=True` (bf16 autocast), else one per `cpus_per_worker` CPUs, each with that many torch
threads.

    for result in run_shards(tasks, "runs/x/checkpoints/step_00001000", InferConfig(),
                             "out/.distpaint-infer/manifest", RayOptions(workers=4)):
        print(result["uid"], result["shard"], result["counts"])
"""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from distpaint.capacity import cluster_capacity
from distpaint.errors import ConfigError, InputError
from distpaint.infer.engine import EmptyWindows, InferConfig, run_inference
from distpaint.infer.manifest import ManifestWriter
from distpaint.infer.model import PredictorsByFactor, load_predictor
from distpaint.infer.staging import UnitSpec, open_source, open_staging
from distpaint.ray_connect import connect as join

# Ray is imported inside the functions that run on it: `distpaint.infer.job` imports this
# module, and a local (non --ray) job must neither need nor load Ray.

__all__ = ["RayOptions", "ShardWorker", "connect", "run_shards"]


@dataclass
class RayOptions:
    """The actor pool."""

    workers: int | None = None
    """Actors; None: one per GPU with `gpu`, else one per `cpus_per_worker` CPUs."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per actor; its torch threads."""
    gpu: bool = False
    """One GPU per actor, bf16 autocast."""


def connect() -> bool:
    """Join the cluster of RAY_ADDRESS, or start a private local Ray; True if started here."""
    # address="local": a new instance even if another local one is running on this machine
    return join(address="local", dashboard=False, log_to_driver=False)


class ShardWorker:
    """Ray Data actor: holds one model and computes whole shards of any unit."""

    def __init__(self, model: Any, infer: dict, manifest_dir: str, gpu: bool,
                 threads: int) -> None:
        # one bare model; a predictor and an empty-window probe per up-sampling factor
        self.predictors = PredictorsByFactor(load_predictor(model, gpu=gpu, threads=threads),
                                             InferConfig(**infer))
        self.empties: dict[int, EmptyWindows] = {}
        self.writer = ManifestWriter(pathlib.Path(manifest_dir))
        self._uid: str | None = None
        self._opened: tuple[Any, Any] | None = None

    def _open(self, spec: UnitSpec) -> tuple[Any, Any]:
        """The unit's source and staging arrays, kept while consecutive shards share a unit
        (a PNG is decoded once per actor, not once per shard)."""
        if self._uid != spec.uid or self._opened is None:
            self._opened = None
            self._opened = (open_source(spec), open_staging(spec))
            self._uid = spec.uid
        return self._opened

    def shard(self, spec: UnitSpec, origin: tuple[int, int]) -> dict:
        """Compute and write shard `origin` of `spec`; its result record."""
        record: dict[str, Any] = {"uid": spec.uid, "shard": list(origin)}
        try:
            source, targets = self._open(spec)
            written: list = []

            def on_shard(o, counts) -> None:
                self.writer.shard(spec.uid, o, counts)
                written.append(counts)

            infer, predictor = self.predictors.infer_for(spec.upsample), self.predictors[spec.upsample]
            if spec.min_confidence is not None:  # chosen for this mask (`--min-confidence auto`)
                infer = replace(infer, min_confidence=spec.min_confidence)
            empty = self.empties.setdefault(spec.upsample, EmptyWindows(predictor, infer))
            run_inference(source, predictor, targets, infer, shards=[origin],
                          on_shard=on_shard, empty=empty)
            (h, w), (sh, sw) = spec.shape, spec.shards
            record["counts"] = asdict(written[0])
            record["pixels"] = (min(origin[0] + sh, h) - origin[0]) * (min(origin[1] + sw, w)
                                                                      - origin[1])
        except InputError as exc:  # a bad input found while reading: report, do not crash
            record["error"] = str(exc)
            self._opened = None
        return record

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for text in batch["task"]:
            task = json.loads(str(text))
            results.append(json.dumps(self.shard(UnitSpec.from_dict(task["spec"]),
                                                 tuple(task["shard"]))))
        return {"result": np.array(results, dtype=object)}


def _pool_size(options: RayOptions, tasks: int) -> int:
    """Actors of the pool: --workers, else one per GPU (or per --cpus-per-worker CPUs) the
    cluster has, or on an autoscaling cluster without them now, the most it can have
    (`distpaint.capacity`): the pool's demand is what brings the nodes up. An actor no node can
    ever hold is a one-line ConfigError."""
    capacity = cluster_capacity()
    actor = {"CPU": options.cpus_per_worker, "GPU": 1.0 if options.gpu else 0.0}
    key, each = ("GPU", 1.0) if options.gpu else ("CPU", options.cpus_per_worker)
    flags = "--gpu --ray" if options.gpu else f"--cpus-per-worker {options.cpus_per_worker:g}"
    if options.gpu and not capacity.autoscaling and capacity.now.get("GPU", 0) < 1 and not options.workers:
        # joined a cluster whose node types are unknown here: only --workers can size the pool
        raise ConfigError("--gpu --ray: the Ray cluster has no GPU now; pass --workers N to "
                          "request N GPU workers from an autoscaling cluster")
    if not options.workers or capacity.autoscaling:  # a fixed --workers on an unknown cluster: as asked
        capacity.check([actor] * (options.workers or 1), flags)
    have = capacity.now.get(key, 0.0)
    if have < each:  # nothing now: an autoscaling cluster is sized by the most it can have
        have = min(capacity.most().get(key, 0.0), 1e6)
    n = options.workers or max(1, int(have // each + 1e-9))
    return max(1, min(n, tasks))


def run_shards(tasks: list[tuple[UnitSpec, tuple[int, int]]], model: Any, infer: InferConfig,
               manifest_dir: str, options: RayOptions | None = None) -> Iterator[dict]:
    """Compute every (unit, shard origin) of `tasks` on a Ray actor pool; yields one result per
    shard as it finishes: {"uid", "shard", "counts", "pixels"} or {"uid", "shard", "error"}.
    `model` is what `model.load_predictor` takes (picklable)."""
    if not tasks:
        return
    options = options or RayOptions()
    started = connect()  # keeps the caller's SIGTERM handler (the CLI's: stop like Ctrl-C)
    try:
        import ray.data  # deferred: see the note at the imports

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the CLI draws its own
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        n = _pool_size(options, len(tasks))
        threads = max(1, int(options.cpus_per_worker))
        items = [{"task": json.dumps({"spec": replace(spec, attrs={}).to_dict(),
                                      "shard": list(origin)})} for spec, origin in tasks]
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 4 * n * 8))
        # (Ray 2.60's Data logs "constructor arguments in the object store" for any actor
        # pool, whatever the arguments: ray-project/ray#57733; these are a few hundred bytes)
        results = ds.map_batches(
            ShardWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=options.cpus_per_worker, num_gpus=1 if options.gpu else 0,
            fn_constructor_kwargs={"model": model, "infer": asdict(infer),
                                   "manifest_dir": manifest_dir, "gpu": options.gpu,
                                   "threads": threads},
        )
        for row in results.iter_rows():
            yield json.loads(str(row["result"]))
    finally:
        if started:
            import ray  # deferred: see the note at the imports

            ray.shutdown()
