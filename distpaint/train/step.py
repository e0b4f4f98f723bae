"""One training step of Algorithm 1 (and GAN-GL-M's real-data step), in plain PyTorch.

Per synthetic batch (m corrupted patches x of one mask, their complete patches y, complete
patches y2 of another mask):
  1. G forward: logits, foreground probability p                          (Alg. 1, line 5)
  2. D_L update on y vs G's output, one forward of the concatenation       (line 6, eq. 5)
  3. D_G update on pairs (y, y2) -> 1 and (fake, y) -> 0, one forward      (line 7, eq. 8)
  4. Bernoulli-sample a ~ p, put the patches into the `Recomposer`, reward
     r = D_G(X_hat, Y) on the recomposed global view (eval mode, no grad)  (line 8)
  5. G update: lambda1 CE + lambda2 LSGAN(D_L(fake)) + lambda3 REINFORCE   (line 9, eq. 10)
with the reward baseline b of `LossConfig.baseline`. A real batch (GAN-GL-M) trains only G
with the masked CE (eq. 11). Which terms run depends on the variant (`TrainConfig.variant`).

    models = build_models(cfg); opts = build_optimizers(models, cfg.optim)
    metrics = train_step(models, opts, batch, recomposer, cfg, step, sampler, state)

Importable with torch and numpy only; the distributed trainer calls the same function with
its DDP-wrapped models and a Ray-actor recomposer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from distpaint.errors import ConfigError, InputError
from distpaint.models import config_to_dict, create_model
from distpaint.models.modelfile import load_generator, load_model_file
from distpaint.train import losses
from distpaint.train.config import OptimConfig, TrainConfig
from distpaint.train.recompose import Recomposer
from distpaint.weights import checkpoint_or_shipped

__all__ = ["Models", "Optimizers", "TrainBatch", "StepState", "Timer", "build_models",
           "build_optimizers", "train_step"]


@dataclass
class Models:
    """The networks of a run; discriminators are None when the variant does not use them."""

    g: nn.Module
    """Generator (returns logits (B, 2, H, W))."""
    d_local: nn.Module | None = None
    """PatchGAN D_L."""
    d_global: nn.Module | None = None
    """Siamese D_G."""


@dataclass
class Optimizers:
    """Adam optimisers matching `Models`."""

    g: torch.optim.Optimizer
    """Optimiser of G."""
    d_local: torch.optim.Optimizer | None = None
    """Optimiser of D_L."""
    d_global: torch.optim.Optimizer | None = None
    """Optimiser of D_G."""


@dataclass
class TrainBatch:
    """One training step's input, all from mask `name`; tensors `(m, 1, P, P)` float in {0, 1}:
    corrupted patches, targets, gap regions (built by `LocalData` and `StoreData` from the
    complete patches that `distpaint.data.sampler.PatchBatch` holds)."""

    name: str
    """Whole mask the patches come from (the recomposer's key)."""
    x: torch.Tensor
    """Corrupted input patches."""
    y: torch.Tensor
    """Complete patches (the target)."""
    region: torch.Tensor
    """Erased gap region (background and foreground) of each patch."""
    ys: np.ndarray
    """(m,) top-left rows in the whole mask."""
    xs: np.ndarray
    """(m,) top-left columns in the whole mask."""
    y_other: torch.Tensor | None = None
    """Complete patches of another mask (D_G's positive pairs); None for real batches."""
    real: bool = False
    """A real-data batch of GAN-GL-M: masked CE only."""

    def to(self, device: torch.device | str) -> "TrainBatch":
        """Copy with the tensors on `device`."""
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return TrainBatch(self.name, move(self.x), move(self.y), move(self.region), self.ys, self.xs,
                          move(self.y_other), self.real)


@dataclass
class StepState:
    """State carried between steps (saved in checkpoints)."""

    ema_reward: float | None = None
    """Moving average of the reward (the `ema` baseline)."""
    history: dict = field(default_factory=dict)
    """Free-form counters (e.g. number of real batches seen)."""


def build_models(cfg: TrainConfig, *, fresh: bool = True) -> Models:
    """Instantiate the variant's networks (seed torch before calling for reproducibility).
    `fresh`: a new run, whose G starts from `model.init_generator` if set; pass False when a
    checkpoint is restored next (its weights win, and the start checkpoint may be gone)."""
    m = cfg.model
    g = create_model(m.generator, "generator", **m.generator_args)
    if fresh and m.init_generator:
        _init_from(g, m.init_generator)
    d_local = create_model(m.local_disc, "local_disc", **m.local_disc_args) if cfg.uses_local else None
    d_global = create_model(m.global_disc, "global_disc", **m.global_disc_args) if cfg.uses_global else None
    return Models(g, d_local, d_global)


def _init_from(g: nn.Module, source: str) -> None:
    """Copy the weights of checkpoint or shipped model `source` into G (same architecture)."""
    try:
        path = checkpoint_or_shipped(source)
    except InputError as exc:
        raise ConfigError(f"model.init_generator: {exc}") from None
    start = load_generator(path)
    have, want = config_to_dict(start.config), config_to_dict(g.config)
    # a U-Net may grow bottleneck context blocks after those it has: the new ones start as the
    # identity (ContextBlock), so the grown G computes the same function at step 0
    had, wants = list(have.get("context_dilations") or []), list(want.get("context_dilations") or [])
    grows = (type(start) is type(g) and len(wants) > len(had) and wants[:len(had)] == had
             and {**want, "context_dilations": have.get("context_dilations", [])} == have)
    if type(start) is not type(g) or (have != want and not grows):
        name = load_model_file(path)["generator"]["name"]
        raise ConfigError(f"model.init_generator: {path} holds generator '{name}' "
                          f"({type(start).__name__} with {have}), not this run's "
                          f"{type(g).__name__} with {want}; set model.generator (and "
                          f"generator_args) to match, e.g. train with the recipe it was "
                          f"trained with: --config {path / 'config.yaml'}")
    missing, unexpected = g.load_state_dict(start.state_dict(), strict=not grows)
    if unexpected or any(not key.startswith("context.") for key in missing):
        raise ConfigError(f"model.init_generator: {path}'s weights do not fit this run's G "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


def build_optimizers(models: Models, optim: OptimConfig) -> Optimizers:
    """Adam for each network: lr_g for G, lr_d for the discriminators (two time-scales)."""

    def adam(module: nn.Module | None, lr: float) -> torch.optim.Optimizer | None:
        return None if module is None else torch.optim.Adam(module.parameters(), lr=lr, betas=optim.betas)

    return Optimizers(adam(models.g, optim.lr_g), adam(models.d_local, optim.lr_d),
                      adam(models.d_global, optim.lr_d))


Timer = Callable[[str], ContextManager[None]]
"""`timer(phase)` -> context manager timing one phase of a step (see `train_step`)."""


@contextlib.contextmanager
def _untimed(phase: str) -> Iterator[None]:
    yield


@contextlib.contextmanager
def _frozen(module: nn.Module | None) -> Iterator[None]:
    """No parameter gradients for `module` (G's update must not touch the discriminators)."""
    if module is None:
        yield
        return
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _update(opt: torch.optim.Optimizer, loss: torch.Tensor, params=None, clip: float = 0.0) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0 and params is not None:
        nn.utils.clip_grad_norm_(params, clip)
    opt.step()


def _update_local(models: Models, opts: Optimizers, batch: TrainBatch, prob: torch.Tensor,
                  cfg: TrainConfig) -> dict[str, float]:
    fake = losses.fake_for_local(prob, cfg.loss.local_fake, cfg.loss.threshold).detach()
    m = batch.y.shape[0]
    scores = models.d_local(torch.cat([batch.y, fake]))  # one forward: real and fake share norm
    real_s, fake_s = scores[:m], scores[m:]
    loss = losses.lsgan_d_loss(real_s, fake_s)
    _update(opts.d_local, loss)
    return {"loss_dl": loss.item(), "dl_real": real_s.mean().item(), "dl_fake": fake_s.mean().item()}


def _update_global(models: Models, opts: Optimizers, batch: TrainBatch, prob: torch.Tensor,
                   actions: torch.Tensor, cfg: TrainConfig) -> dict[str, float]:
    if cfg.loss.dg_fake == "threshold":
        fake = (prob.detach() > cfg.loss.threshold).to(prob.dtype)
    else:
        fake = actions
    m = batch.y.shape[0]
    partner = batch.y if cfg.loss.dg_positive == "self" else batch.y_other
    # positives (y1, y2) (or (y, y)) and negatives (G(x1), y1) in one forward of both Siamese branches
    logits = models.d_global.logits(torch.cat([batch.y, fake]), torch.cat([partner, batch.y]))
    loss = losses.siamese_d_loss(logits[:m], logits[m:])
    _update(opts.d_global, loss)
    return {"loss_dg": loss.item(), "dg_pos": torch.sigmoid(logits[:m]).mean().item(),
            "dg_neg": torch.sigmoid(logits[m:]).mean().item()}


def _reward(models: Models, recomposer: Recomposer, batch: TrainBatch, patches: torch.Tensor,
            step: int, tag: str, rank: int) -> float:
    """Put `patches` (m, 1, P, P), recompose, and score the global view with D_G."""
    arr = patches[:, 0].detach().to("cpu", torch.uint8).numpy()
    recomposer.put(batch.name, step, arr, batch.ys, batch.xs, rank=rank, tag=tag)
    view = recomposer.global_view(batch.name, step, tag=tag)
    device = patches.device
    x_hat = torch.from_numpy(view.x_hat).to(device, torch.float32)[None, None]
    truth = torch.from_numpy(view.truth).to(device, torch.float32)[None, None]
    # eval mode: no power iteration, so the reward does not move D_G's state
    with torch.no_grad(), _evaluating(models.d_global):
        score = models.d_global(x_hat, truth)
    return float(_from_rank0(score).item())


def _patch_rewards(models: Models, batch: TrainBatch, patches: torch.Tensor) -> torch.Tensor:
    """D_G's score `(m,)` of each patch in place against its complete patch (reward_scope=patch).
    Under DDP each rank scores its own patches (nothing is broadcast, unlike the view reward)."""
    with torch.no_grad(), _evaluating(models.d_global):
        return models.d_global(patches, batch.y)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _from_rank0(score: torch.Tensor) -> torch.Tensor:
    """Rank 0's `score` on every rank (itself outside a process group). Every rank scores the
    same recomposed view with the same weights; the broadcast makes the view reward bitwise
    equal on every rank even where GPU kernels are not deterministic."""
    if _distributed():
        dist.broadcast(score, src=0)
    return score


def _mean_over_ranks(value: float) -> float:
    """`value` averaged over the ranks of torch.distributed's default group (itself outside
    one), so a moving-average baseline of per-rank rewards stays identical on every rank."""
    if not _distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def _baseline(cfg: TrainConfig, state: StepState, reward: float, greedy_reward):
    """b for `reward` (the step's mean reward); the greedy reward(s) for self_critical (a float,
    or a `(m,)` tensor of per-patch rewards)."""
    kind = cfg.loss.baseline
    if kind == "none":
        return 0.0
    if kind == "self_critical":
        return greedy_reward if isinstance(greedy_reward, torch.Tensor) else float(greedy_reward)
    b = reward if state.ema_reward is None else state.ema_reward
    mom = cfg.loss.ema_momentum
    state.ema_reward = reward if state.ema_reward is None else mom * state.ema_reward + (1 - mom) * reward
    return b


def _policy_term(models: Models, recomposer: Recomposer, batch: TrainBatch, logits: torch.Tensor,
                 prob: torch.Tensor, actions: torch.Tensor, cfg: TrainConfig, step: int,
                 state: StepState, rank: int) -> tuple[torch.Tensor, dict[str, float]]:
    candidates = cfg.loss.pg_region == "candidates"
    region = (batch.x < 0.5).to(prob.dtype) if candidates else None
    # the output is input OR prediction when only candidate pixels are actions
    sampled = torch.maximum(actions, batch.x) if candidates else actions
    per_patch = cfg.loss.reward_scope == "patch"

    def score(patches: torch.Tensor, tag: str):
        if per_patch:
            return _patch_rewards(models, batch, patches)
        return _reward(models, recomposer, batch, patches, step, tag, rank)

    rewards = score(sampled, "sample")  # (m,) per patch, or the view's float
    greedy_reward = None
    if cfg.loss.baseline == "self_critical":
        greedy = (prob.detach() > cfg.loss.threshold).to(prob.dtype)
        greedy = torch.maximum(greedy, batch.x) if candidates else greedy
        greedy_reward = score(greedy, "greedy")
    # per-patch rewards are each rank's own; their mean over every rank feeds the ema baseline
    reward = _mean_over_ranks(float(rewards.mean())) if per_patch else rewards
    b = _baseline(cfg, state, reward, greedy_reward)
    advantage = rewards - b
    pg = losses.policy_gradient_loss(logits, actions, advantage, region, cfg.loss.pg_reduction)
    mean = lambda v: float(v.mean()) if isinstance(v, torch.Tensor) else float(v)  # noqa: E731
    return pg, {"reward": reward, "baseline": mean(b), "advantage": mean(advantage), "pg": pg.item()}


def train_step(models: Models, opts: Optimizers, batch: TrainBatch, recomposer: Recomposer | None,
               cfg: TrainConfig, step: int, sampler: torch.Generator, state: StepState,
               rank: int = 0, timer: Timer | None = None) -> dict[str, float]:
    """Run one step on `batch` (already on the models' device); returns scalar metrics.

    `sampler` is the torch generator of the Bernoulli sampling (on the batch's device);
    `recomposer` may be None for variants without D_G. `timer(phase)`, if given, is entered
    around each phase ("g": G's forward, loss and update; "d_local"; "d_global";
    "policy_gradient": rewards and the REINFORCE term) to measure the step's breakdown; it
    does not change what the step computes.
    """
    phase = timer or _untimed
    for module in (models.g, models.d_local, models.d_global):
        if module is not None:
            module.train()
    loss_cfg = cfg.loss
    with phase("g"):
        logits = models.g(batch.x)  # (m, 2, P, P)
        prob = losses.foreground_prob(logits)  # (m, 1, P, P)
    metrics: dict[str, float] = {}
    if batch.real:  # GAN-GL-M real batch: masked CE only (eq. 11)
        with phase("g"):
            mask = batch.region if loss_cfg.masked_ce_on == "region" else batch.region * batch.y
            mce = losses.masked_ce_loss(logits, batch.y, mask)
            _update(opts.g, loss_cfg.lambda_ce * mce, models.g.parameters(), cfg.optim.grad_clip)
        return {"masked_ce": mce.item(), "loss_g": (loss_cfg.lambda_ce * mce).item()}

    if cfg.uses_local:
        with phase("d_local"):
            metrics.update(_update_local(models, opts, batch, prob, cfg))
    actions = None
    if cfg.uses_global:
        with phase("d_global"):
            actions = torch.bernoulli(prob.detach(), generator=sampler)
            metrics.update(_update_global(models, opts, batch, prob, actions, cfg))

    with phase("g"):
        ce = losses.ce_loss(logits, batch.y)
        loss_g = loss_cfg.lambda_ce * ce
        metrics["ce"] = ce.item()
        if loss_cfg.lambda_cldice > 0:
            # the output users get is input OR prediction: score that, not G's raw map
            repaired = batch.x + (1 - batch.x) * prob
            cl = losses.soft_cldice_loss(repaired, batch.y, loss_cfg.cldice_iterations)
            loss_g = loss_g + loss_cfg.lambda_cldice * cl
            metrics["soft_cldice"] = cl.item()
        if cfg.uses_local:
            with _frozen(models.d_local):
                fake = losses.fake_for_local(prob, loss_cfg.local_fake, loss_cfg.threshold)
                adv = losses.lsgan_g_loss(models.d_local(fake))
            loss_g = loss_g + loss_cfg.lambda_local * adv
            metrics["lsgan_g"] = adv.item()
    if cfg.uses_global:
        if recomposer is None and loss_cfg.reward_scope == "view":
            raise ValueError(f"variant {cfg.variant} needs a recomposer")
        with phase("policy_gradient"):
            pg, pg_metrics = _policy_term(models, recomposer, batch, logits, prob, actions, cfg, step, state, rank)
        loss_g = loss_g + loss_cfg.lambda_global * pg
        metrics.update(pg_metrics)
    with phase("g"):
        _update(opts.g, loss_g, models.g.parameters(), cfg.optim.grad_clip)
    metrics["loss_g"] = loss_g.item()
    return metrics
