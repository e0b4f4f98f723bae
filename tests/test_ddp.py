"""G, D_L, D_G as separate DDP modules (distpaint.train.ddp): after DDP steps on different data
per rank, parameters AND buffers (BatchNorm running stats, spectral-norm u/v) are bitwise
identical on every rank, and the view D_G scored holds every rank's patches; without
`sync_buffers` the BatchNorm buffers drift apart (so the test can fail). Two real gloo
processes, no Ray: the ranks share one re-composition through `_GatheringRecomposer` (the
actor's role in a Ray run), each rank sending half of the step's patches of one mask."""

from __future__ import annotations

import gc
import os
import pickle
import socket
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from distpaint.train.config import config_from_dict
from distpaint.train.data import LocalData
from distpaint.train.ddp import state_digest, sync_buffers, unwrap, wrap_models
from distpaint.train.recompose import InMemoryRecomposer
from distpaint.train.step import StepState, TrainBatch, build_models, build_optimizers, train_step

TINY = {
    "model": {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"},
    "data": {"mask_size": 128, "n_masks": 3, "patch_size": 32, "batch_size": 4},
    "loss": {"global_margin": 16, "global_max_size": 96},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _GatheringRecomposer:
    """Every rank's patches of a (mask, step, tag) in one view, like the re-composer actor:
    `put` stages this rank's patches, `global_view` all-gathers every rank's staged patches
    (a rank that put none sends nothing, and its patches are missing from the view) and
    composes them. Records each view it returns and each rank's own puts."""

    def __init__(self, data: LocalData, cfg) -> None:
        self.inner = InMemoryRecomposer(cfg.loss.global_max_size, cfg.loss.global_margin)
        for name, truth in data.masks.items():
            self.inner.add_mask(name, truth)
        self.staged: dict = {}
        self.views: list = []
        self.puts: list = []

    def put(self, name, step, patches, ys, xs, *, rank=0, tag="sample") -> None:
        self.staged[(name, step, tag)] = (rank, patches.astype(bool), ys, xs)
        self.puts.append((step, tag, patches.astype(bool), ys, xs))

    def global_view(self, name, step, *, tag="sample"):
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self.staged.pop((name, step, tag), None))
        for part in filter(None, gathered):
            rank, patches, ys, xs = part
            self.inner.put(name, step, patches, ys, xs, rank=rank, tag=tag)
        view = self.inner.global_view(name, step, tag=tag)
        self.views.append((step, tag, view))
        return view


def _share(batch: TrainBatch, rank: int, world: int) -> TrainBatch:
    """Rank `rank`'s share of a step's batch: every `world`-th patch (ranks get different
    patches of one mask, as `StoreData` gives them in a Ray run)."""
    part = slice(rank, None, world)
    return TrainBatch(batch.name, batch.x[part], batch.y[part], batch.region[part], batch.ys[part],
                      batch.xs[part], None if batch.y_other is None else batch.y_other[part], batch.real)


def _worker(rank: int, world: int, port: int, sync: bool, variant: str, queue, loss: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _train_and_report(rank, world, sync, variant, queue, loss)
    finally:
        # The DDP modules hold the process group: they must be gone before it is destroyed, or
        # gloo's threads outlive it and the interpreter aborts at exit ("terminate called
        # without an active exception"), which failed this test at random.
        gc.collect()
        dist.destroy_process_group()


def _train_and_report(rank: int, world: int, sync: bool, variant: str, queue, loss: dict) -> None:
    cfg = config_from_dict({**TINY, "variant": variant, "loss": {**TINY["loss"], **loss}})
    torch.manual_seed(cfg.seed + rank)  # different init per rank: DDP must broadcast rank 0's
    models = build_models(cfg)
    opts = build_optimizers(models, cfg.optim)
    dmodels = wrap_models(models)
    start = {k: state_digest(getattr(models, k)) for k in ("g", "d_local", "d_global")}
    data = LocalData(cfg.data, cfg.seed, cfg.variant)
    rec = _GatheringRecomposer(data, cfg)
    sampler = torch.Generator().manual_seed(100 + rank)
    state, rewards, advantages = StepState(), [], []
    for step in range(3):
        batch = _share(data.batch(step), rank, world)  # different patches on each rank
        metrics = train_step(dmodels, opts, batch, rec, cfg, step, sampler, state, rank=rank)
        rewards.append(metrics.get("reward"))
        advantages.append(metrics.get("advantage"))
        if sync:
            sync_buffers(dmodels)
    digests = {k: state_digest(getattr(dmodels, k)) for k in ("g", "d_local", "d_global")}
    bn = unwrap(dmodels.g).stem[0][1].running_mean.tolist()  # G's first BatchNorm
    out = [None] * world
    dist.all_gather_object(out, {"digests": digests, "start": start, "rewards": rewards, "bn": bn,
                                 "advantages": advantages, "ema": state.ema_reward,
                                 "views": rec.views, "puts": rec.puts})
    if rank == 0:
        # through a file: the views outgrow the pipe's buffer, and the parent reads the queue
        # only after joining the workers
        fd, path = tempfile.mkstemp(suffix=".pkl")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(out, fh)
        queue.put(path)


def _run(sync: bool, variant: str = "gan-gl", **loss) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(2, _free_port(), sync, variant, queue, loss), nprocs=2, join=True,
                       start_method="spawn")
    path = queue.get()
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    finally:
        os.unlink(path)


@pytest.fixture(scope="module")
def synced():
    return _run(sync=True)


def test_parameters_and_buffers_identical_across_ranks(synced):
    r0, r1 = synced
    for net in ("g", "d_local", "d_global"):
        assert r0["digests"][net]["params"] == r1["digests"][net]["params"], net
        assert r0["digests"][net]["buffers"] == r1["digests"][net]["buffers"], net
        # training moved the weights (the comparison is not between two untouched models)
        assert r0["digests"][net]["params"] != r0["start"][net]["params"], net
    # spectral norm's u/v and BatchNorm's running stats moved too
    assert r0["digests"]["g"]["buffers"] != r0["start"]["g"]["buffers"]
    assert r0["digests"]["d_local"]["buffers"] != r0["start"]["d_local"]["buffers"]


def test_view_d_g_scored_holds_every_ranks_patches(synced):
    """train_step puts each rank's sampled patches at their positions; rank 0's view (the
    scored one: its reward is broadcast) holds both ranks' patches pixel for pixel."""
    r0, r1 = synced
    assert all(r is not None for r in r0["rewards"])
    assert [(s, t) for s, t, _ in r0["views"]] == [(step, "sample") for step in range(3)]
    for (step, tag, view), (_, _, other) in zip(r0["views"], r1["views"]):
        assert np.array_equal(view.x_hat, other.x_hat) and view.origin == other.origin
        oy, ox = view.origin
        puts = [p for rank in (r0, r1) for p in rank["puts"] if p[:2] == (step, tag)]
        assert len(puts) == 2  # one put per rank
        for _, _, patches, ys, xs in puts:
            p, differs = patches.shape[-1], False
            for patch, y, x in zip(patches, ys, xs):
                assert np.array_equal(view.x_hat[y - oy:y - oy + p, x - ox:x - ox + p], patch), (step, y, x)
                differs |= not np.array_equal(view.truth[y - oy:y - oy + p, x - ox:x - ox + p], patch)
            assert differs, step  # the check can fail: a dropped rank leaves the truth there


def test_without_buffer_sync_batchnorm_stats_diverge():
    r0, r1 = _run(sync=False, variant="unet")
    assert r0["digests"]["g"]["params"] == r1["digests"]["g"]["params"]  # DDP syncs gradients
    assert r0["digests"]["g"]["buffers"] != r1["digests"]["g"]["buffers"]  # but not BatchNorm stats
    assert r0["bn"] != r1["bn"]


def test_patch_reward_scores_each_ranks_own_patches():
    """reward_scope: patch under DDP: each rank's advantages come from its own patches (rank 0's
    broadcast scores would make them equal), while the ema baseline, fed the mean reward over
    both ranks, and the models stay identical."""
    r0, r1 = _run(sync=True, dg_positive="self", reward_scope="patch", baseline="ema")
    assert r0["rewards"] == r1["rewards"]  # the mean over both ranks, reported on each
    assert r0["ema"] is not None and r0["ema"] == r1["ema"]
    assert r0["advantages"][1:] != r1["advantages"][1:]  # step 0's ema starts at the reward itself
    for net in ("g", "d_local", "d_global"):
        assert r0["digests"][net]["params"] == r1["digests"][net]["params"], net
