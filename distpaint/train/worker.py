"""The per-worker training loop of a distributed run (Ray Train's `train_loop_per_worker`).

Every rank builds G, D_L and D_G from the config, resumes from the run's latest checkpoint
(`ray.train.get_checkpoint()`: after a worker failure, or when a run is re-run with the same
name and storage), wraps them as separate DDP modules (`distpaint.train.ddp`) and runs
`train_step` with its share of the step's patches from the training store (`StoreData`) and
the run's re-composer actor (`ActorRecomposer`). After every step, buffers are synchronised.

Every `checkpoint_every` steps (and at the last step) all ranks call `ray.train.report` (a
barrier: never every step); rank 0 attaches a checkpoint (the `distpaint.train.checkpoint`
directory format) that Ray persists to `<storage>/<name>/checkpoints/step_XXXXXXXX`, runs the
validation on the benchmark set and logs to MLflow. Rank 0 alone writes to MLflow: every step's
losses and discriminator scores, and every `log_every` steps the reward's mean and std, the
throughput (patches/s) and the step-time breakdown (`time/<phase>`).

Each rank keeps a status file `<run dir>/workers/rank_<r>.json` (pid, node, step, digests of
the networks' parameters and buffers, the rewards of its recent steps, the re-composer actor's
node and pid, the compositions sent again after the actor died) and appends a line to
`<run dir>/workers/starts.jsonl` when it starts: operators (and the fault tests) see which
process trains which rank, and that ranks agree.

The Bernoulli sampling is re-seeded from (seed, step, rank) at every step and the data are a
pure function of (seed, step, rank, world size), so a restarted run repeats exactly the steps
an uninterrupted one would have taken.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from distpaint.train.actor import ActorRecomposer, get_recomposer, new_session
from distpaint.train.checkpoint import CHECKPOINTS, RngStates, checkpoint_name, restore, save_checkpoint
from distpaint.train.config import config_from_dict
from distpaint.train.ddp import state_digest, sync_buffers, wrap_models
from distpaint.train.local import _check_same_config
from distpaint.train.step import StepState, build_models, build_optimizers, train_step
from distpaint.train.store_data import StoreData
from distpaint.train.timing import PhaseTimer
from distpaint.train.tracking import RunLogger
from distpaint.train.validation import load_val_samples, validate

# Ray is imported inside the functions that run under it (`train_worker`: Ray Train takes ~2 s
# to import): the status file (`_Status`) is also written outside Ray, in unit use.

__all__ = ["WorkerSpec", "train_worker", "step_seed"]

STATUS_DIR = "workers"
"""Sub-directory of the run directory with the workers' status files."""


@dataclass
class WorkerSpec:
    """What every worker needs (passed as `train_loop_config`, a plain dict)."""

    config: dict
    """The full `TrainConfig` as a dict (`config_to_dict`)."""
    max_steps: int
    """Train up to this step."""
    run_name: str
    """Training run name (the re-composer actor is named after it)."""
    store: str
    """Training mask store (a path every worker can read)."""
    val_store: str | None = None
    """Validation set (a store or directory of stores); None: no validation."""
    val_every: int = 0
    """Validate every this many steps (0: at every checkpoint) and at the end."""
    val_max_side: int = 1024
    """Validation masks are cropped to this side."""
    mlflow_uri: str | None = None
    """Tracking URI rank 0 logs to; None: no MLflow."""
    mlflow_run_id: str | None = None
    """MLflow run created by the driver."""
    status_dir: str | None = None
    """Directory of the status files; None: none written (remote storage)."""
    threads: int = 1
    """torch CPU threads per worker."""
    sync_timing: bool = False
    """Synchronise the GPU at phase boundaries (exact breakdown on GPUs, slightly slower)."""
    record_views: bool = False
    """Write each global view this rank got, with its own patches, under `status_dir`/views
    (`_ViewRecorder`; DistributedConfig.record_views)."""

    def to_dict(self) -> dict:
        return asdict(self)


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of rank `rank`'s Bernoulli sampler at `step`."""
    return int(np.random.SeedSequence([seed, step, rank, 1]).generate_state(1)[0])


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


class _ViewRecorder:
    """A `Recomposer` that passes every call through and writes, per global view it serves, an
    `.npz` with the view (x_hat, truth, origin) and the patches this rank put for it
    (`<folder>/rank_<r>_step_<s>_<tag>.npz`): what D_G scored and what each rank sent, so a test
    can check pixel by pixel that no rank's patches were left out of the view."""

    def __init__(self, inner, folder: Path, rank: int) -> None:
        self.inner, self.folder, self.rank = inner, folder, rank
        self._put: dict[tuple[str, int, str], tuple] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def put(self, name, step, patches, ys, xs, *, rank=0, tag="sample") -> None:
        self._put[(name, step, tag)] = (np.asarray(patches, dtype=bool), np.asarray(ys), np.asarray(xs))
        self.inner.put(name, step, patches, ys, xs, rank=rank, tag=tag)

    def global_view(self, name, step, *, tag="sample"):
        view = self.inner.global_view(name, step, tag=tag)
        patches, ys, xs = self._put.pop((name, step, tag))
        np.savez_compressed(self.folder / f"rank_{self.rank}_step_{step}_{tag}.npz", x_hat=view.x_hat,
                            truth=view.truth, origin=np.asarray(view.origin), patches=patches, ys=ys, xs=xs)
        return view


class _Status:
    """The rank's status file and the shared starts log."""

    def __init__(self, folder: str | None, rank: int, session: int, start: int) -> None:
        self.folder = Path(folder) if folder else None
        self.data = {"rank": rank, "pid": os.getpid(), "host": socket.gethostname(), "session": session,
                     "start_step": start, "step": start, "rewards": {}, "digests": {}}
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / "starts.jsonl", "a") as fh:
                fh.write(json.dumps({k: self.data[k] for k in ("rank", "pid", "host", "session", "start_step")}) + "\n")
            try:
                import ray  # deferred: see the note at the imports

                self.data["node_id"] = ray.get_runtime_context().get_node_id()
            except Exception:  # not in Ray (unit use)
                pass
            self.write()

    def reward(self, step: int, value: float | None) -> None:
        if value is not None:
            rewards = self.data["rewards"]
            rewards[str(step)] = value
            while len(rewards) > 200:  # recent steps only
                rewards.pop(next(iter(rewards)))

    def write(self, **fields) -> None:
        self.data.update(fields)
        if self.folder is not None:
            _write_json(self.folder / f"rank_{self.data['rank']}.json", self.data)


def _broadcast_int(value: int, device: torch.device) -> int:
    t = torch.tensor([value], dtype=torch.int64, device=device)  # nccl needs a CUDA tensor
    dist.broadcast(t, src=0)
    return int(t.item())


def _all_ok(device: torch.device):
    """`agree` of `ActorRecomposer`: did every rank's call succeed? (one all-reduce)"""

    def agree(ok: bool) -> bool:
        t = torch.tensor([0 if ok else 1], dtype=torch.int32, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item()) == 0

    return agree


class _Window:
    """Rank 0's aggregates over the steps since the last log."""

    def __init__(self) -> None:
        self.rewards: list[float] = []
        self.start = time.perf_counter()
        self.steps = 0
        self.timing: dict[str, float] = {}

    def add(self, metrics: dict) -> None:
        self.steps += 1
        if "reward" in metrics:
            self.rewards.append(metrics["reward"])

    def summary(self, patches_per_step: int, timer) -> dict[str, float]:
        elapsed = time.perf_counter() - self.start
        out = {"patches_per_s": patches_per_step * self.steps / elapsed, "sec_per_step": elapsed / self.steps}
        if self.rewards:
            out.update(reward_mean=float(np.mean(self.rewards)), reward_std=float(np.std(self.rewards)))
        now = dict(timer.seconds)
        for phase, total in now.items():
            out[f"time/{phase}"] = (total - self.timing.get(phase, 0.0)) / self.steps
        self.timing = now
        self.rewards, self.steps, self.start = [], 0, time.perf_counter()
        return out


def train_worker(spec_dict: dict) -> None:
    """Ray Train's per-worker function (see the module docstring)."""
    import ray.train  # deferred: see the note at the imports
    import ray.train.torch  # deferred: see the note at the imports

    spec = WorkerSpec(**spec_dict)
    cfg = config_from_dict(spec.config, "train_loop_config")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.set_num_threads(max(1, spec.threads))
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    warnings.filterwarnings("once", category=RuntimeWarning, module="distpaint.data.sampler")

    torch.manual_seed(cfg.seed)
    ckpt = ray.train.get_checkpoint()
    models = build_models(cfg, fresh=ckpt is None)
    for m in (models.g, models.d_local, models.d_global):
        if m is not None:
            m.to(device)
    opts = build_optimizers(models, cfg.optim)
    state, start = StepState(), 0
    if ckpt is not None:
        with ckpt.as_directory() as folder:
            resumed = restore(folder, models, opts, map_location=device)
        _check_same_config(resumed.config, cfg, Path(ckpt.path))
        state, start = resumed.state, resumed.step
    dmodels = wrap_models(models, device)
    session = _broadcast_int(new_session() if rank == 0 else 0, device)

    timer = PhaseTimer(cuda=device.type == "cuda" and spec.sync_timing)
    client = recomposer = None
    if cfg.uses_global:  # survives restarts of the actor (its module docstring)
        agree = _all_ok(device) if world > 1 else None
        client = recomposer = ActorRecomposer(get_recomposer(spec.run_name), session, rank, world, timer, agree)
    data = StoreData(spec.store, cfg, rank, world)
    sampler = torch.Generator(device)
    status = _Status(spec.status_dir, rank, session, start)
    if client is not None:
        actor = client.stats()
        status.write(recomposer_node=actor["node_id"], recomposer_pid=actor["pid"])
    if recomposer is not None and spec.record_views and spec.status_dir:
        recomposer = _ViewRecorder(recomposer, Path(spec.status_dir) / "views", rank)
    logger = val_samples = None
    if rank == 0 and spec.mlflow_uri and spec.mlflow_run_id:
        logger = RunLogger(spec.mlflow_uri, spec.mlflow_run_id)
    if rank == 0 and spec.val_store:
        val_samples = load_val_samples(spec.val_store, spec.val_max_side)
    val_every = spec.val_every or cfg.checkpoint_every
    patches_per_step = cfg.data.batch_size * world
    window, metrics = _Window(), {}
    run_start, warm = None, start + 1  # the first step of a session is warm-up (not timed)

    for step in range(start, spec.max_steps):
        if step == warm:
            timer.reset()
            window = _Window()
            run_start = time.perf_counter()
        with timer("data"):
            batch = data.batch(step).to(device)
        sampler.manual_seed(step_seed(cfg.seed, step, rank))
        metrics = train_step(dmodels, opts, batch, recomposer, cfg, step, sampler, state, rank=rank, timer=timer)
        with timer("sync"):
            sync_buffers(dmodels)
        timer.step_done()
        done = step + 1
        status.reward(done, metrics.get("reward"))
        window.add(metrics)
        if logger is not None:
            logger.metrics(done, metrics)
            if done % cfg.log_every == 0 and window.steps:
                logger.metrics(done, window.summary(patches_per_step, timer))
        if done % cfg.checkpoint_every and done != spec.max_steps:
            continue
        # ---- every K steps: validation (rank 0), checkpoint (rank 0), report (all ranks) -----
        report = {"step": done, **metrics}
        if val_samples is not None and (done % val_every == 0 or done == spec.max_steps):
            val_metrics, images = validate(models.g, val_samples)
            report.update(val_metrics)
            if logger is not None:
                logger.metrics(done, val_metrics)
                for name, image in images.items():
                    logger.image(image, f"repairs/step_{done:08d}/{name.replace('/', '__')}.png")
        if done == spec.max_steps and run_start is not None:
            report.update({f"time/{k}": v for k, v in timer.summary().items()})
            report["patches_per_s"] = patches_per_step * timer.steps / (time.perf_counter() - run_start)
        if logger is not None:
            logger.flush()
        digests = {k: state_digest(getattr(models, k)) for k in ("g", "d_local", "d_global")}
        status.write(step=done, digests=digests, timing=timer.summary() if run_start is not None else {},
                     recomposer_retries=client.retries if client is not None else 0)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                save_checkpoint(Path(tmp) / "ckpt", config=cfg, models=models, opts=opts, step=done, state=state,
                                rng=RngStates.capture(sampler), metrics=report)
                checkpoint = ray.train.Checkpoint.from_directory(str(Path(tmp) / "ckpt"))
            ray.train.report(report, checkpoint=checkpoint,
                             checkpoint_dir_name=f"{CHECKPOINTS}/{checkpoint_name(done)}")
