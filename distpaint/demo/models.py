"""The demo's own model: a brief GAN-GL training run on local Ray.

`train_demo_model` synthesises a training archive of road masks (seeds disjoint from the
demo's held-out masks), trains the `demo` recipe on Ray Train (`distpaint.train.distributed`:
DDP workers, the re-composer actor, MLflow in SQLite under the run folder) and returns where
the checkpoint and the MLflow store are; `distpaint.demo.repairs.model_repair` turns the
checkpoint into the report's `trained` row.

    run = train_demo_model(DemoConfig(), pathlib.Path("demo_out"), log=print)
    repair = model_repair("trained", run.checkpoint, "GAN-GL trained by the demo")
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from distpaint.data.store import MaskStore
from distpaint.data.synth.writer import write_synth
from distpaint.demo.config import DemoConfig
from distpaint.ray_connect import connect
from distpaint.train.config import config_from_dict, config_to_dict, load_config, packaged_config
from distpaint.train.distributed import DistributedConfig, train_distributed

# Ray and torch (`train.store_data`) are imported inside `train_demo_model`: `distpaint demo`
# (and so the CLI's start-up) imports this module, and neither is needed until training starts.

__all__ = ["TRAIN_SEED_OFFSET", "DemoRun", "train_demo_model", "mlflow_ui_command"]

TRAIN_SEED_OFFSET = 1_000_003
"""Training masks use seed + this: the held-out masks (seed) are never trained on."""


@dataclass
class DemoRun:
    """What the demo's training run left behind."""

    run_dir: pathlib.Path
    """The run folder (checkpoints, MLflow store, training data)."""
    checkpoint: pathlib.Path
    """The last checkpoint (a directory `distpaint infer --model` accepts)."""
    mlflow_uri: str | None
    """Tracking URI of the run (sqlite:///.../mlflow.db), None if not logged."""
    steps: int
    """Optimisation steps done."""
    metrics: dict
    """Metrics of the last report (losses, validation scores)."""


def mlflow_ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on a tracking URI."""
    return f"mlflow ui --backend-store-uri {uri}"


def train_demo_model(config: DemoConfig, out: pathlib.Path, log=print) -> DemoRun:
    """Train the demo recipe into `out/run` on `config.workers` local Ray workers."""
    import ray  # deferred: see the note at the imports

    from distpaint.train.store_data import store_mask_size  # deferred (torch): see the imports

    recipe = config_to_dict(load_config(packaged_config(config.recipe)))
    recipe["max_steps"] = config.train_steps
    recipe["checkpoint_every"] = min(recipe["checkpoint_every"], config.train_steps)
    recipe["data"]["kind"] = config.kind
    cfg = config_from_dict(recipe, f"demo recipe {config.recipe}")
    run_dir = out / "run"
    data = out / "stores" / "train.zarr"
    size = store_mask_size(cfg, config.workers)  # room for every rank's patches
    write_synth(MaskStore.create(data), config.kind, (size, size), config.seed + TRAIN_SEED_OFFSET,
                config.train_masks, measure=False)
    options = DistributedConfig(num_workers=config.workers, data=str(data),
                                val_max_side=min(512, config.size))
    # A private local Ray whose workers' logs stay in its session folder: the demo's console
    # shows its own stages, not every rank's warnings interleaved with the report.
    started = connect(log_to_driver=False)
    if started:
        log("local Ray started; worker logs in /tmp/ray/session_latest/logs")
    try:
        summary = train_distributed(cfg, run_dir, options=options)
    finally:
        if started:
            ray.shutdown()
    if not summary.get("checkpoint"):
        raise RuntimeError(f"demo training in {run_dir} finished without a checkpoint")
    mlflow = summary.get("mlflow")
    return DemoRun(run_dir, pathlib.Path(summary["checkpoint"]), mlflow[0] if mlflow else None,
                   summary["step"], summary.get("metrics", {}))
