"""G, D_L and D_G as three separate DDP modules, with the GAN pitfalls of DDP handled.

`wrap_models(models)` returns a `Models` that `train_step` uses unchanged:

- **One DDP per network** (G, D_L, D_G), each with its own reducer, so a backward through one
  network all-reduces only that network's gradients.
- **Frozen or gradient-free calls bypass DDP.** `train_step` runs D_L with its parameters
  frozen for G's adversarial term and D_G without gradients for the reward. Those calls give
  the network's parameters no gradient, so DDP has nothing to reduce: `DDPNet` routes a call
  through DDP only when grad mode is on and the network's own parameters require gradients,
  and otherwise to the plain module, so a reducer is armed only by a forward whose backward
  brings it every gradient (no reliance on how DDP treats an armed reducer left without any).
- **D_G's logits.** `train_step` trains D_G with `d_global.logits(a, b)`, a method DDP does not
  expose; `DDPNet` wraps it in its own DDP entry point.
- **Buffers.** `forward_sync_buffers=False` (formerly `broadcast_buffers=False`) everywhere:
  DDP's default re-broadcasts rank 0's buffers in place at every forward, which breaks a
  backward through two forwards of one BatchNorm network and silently discards every other
  rank's BatchNorm statistics. Instead `sync_buffers(models)` runs after every optimiser step:
  BatchNorm running means and variances are averaged over ranks (the running statistics of the
  global batch, up to the variance of the means), and every other buffer (spectral norm's power-iteration vectors u and v,
  `num_batches_tracked`) is broadcast from rank 0. After it, parameters and buffers are
  bitwise identical on every rank, so rank 0's checkpoint is the model of every rank.
- **The reward.** D_G's gradient-free calls (the reward) go to the plain network; `train_step`
  itself makes the view reward identical on every rank (every rank scores the same recomposed
  view and rank 0's score is broadcast, bitwise equal even where GPU kernels are not
  deterministic). With `loss.reward_scope: patch` each rank scores its own patches, and the
  moving-average baseline is fed the mean reward over every rank (one all-reduce), so its state
  stays identical on every rank too.

    models = build_models(cfg); opts = build_optimizers(models, cfg.optim)
    dmodels = wrap_models(models)             # inside an initialised process group
    train_step(dmodels, opts, batch, ...); sync_buffers(dmodels)

Torch only (torch.distributed); tests: tests/test_ddp.py.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from distpaint.train.step import Models

__all__ = ["DDPNet", "wrap_models", "unwrap", "sync_buffers", "state_digest"]



# torch 2.13 renamed DDP's broadcast_buffers to forward_sync_buffers; the project accepts
# torch >= 2.4 (GPU images often carry an older one), so pass whichever this torch knows
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
                   else {"broadcast_buffers": False})

class _Method(nn.Module):
    """Makes `module.<name>` the forward of a module DDP can wrap."""

    def __init__(self, module: nn.Module, name: str) -> None:
        super().__init__()
        self.inner = module
        self.name = name

    def forward(self, *args: Any) -> Any:
        return getattr(self.inner, self.name)(*args)


class DDPNet(nn.Module):
    """A network as `train_step` sees it under DDP (see the module docstring).

    `module` is the plain network (also what checkpoints save: `.module`, as with DDP);
    `entry` names the method gradient-carrying calls use (`forward`, or `logits` for D_G)."""

    def __init__(self, module: nn.Module, *, entry: str = "forward", device_ids: list[int] | None = None) -> None:
        super().__init__()
        self.module = module
        self.entry = entry
        target = module if entry == "forward" else _Method(module, entry)
        # not a registered child: parameters, state_dict and train()/eval() are the module's
        # forward_sync_buffers=False: no re-broadcast of rank 0's buffers at every forward
        # (the former broadcast_buffers=False; see the module docstring)
        object.__setattr__(self, "ddp", DDP(target, device_ids=device_ids, **_NO_BUFFER_SYNC))

    def _synced(self) -> bool:
        return torch.is_grad_enabled() and any(p.requires_grad for p in self.module.parameters())

    def _call(self, entry: str, plain: Callable[..., Any], *args: Any) -> Any:
        if entry == self.entry and self._synced():
            return self.ddp(*args)
        return plain(*args)

    def forward(self, *args: Any) -> Any:
        if self.entry == "logits" and self._synced():  # a differentiable score: via the logits
            return torch.sigmoid(self.ddp(*args))
        return self._call("forward", self.module, *args)

    def logits(self, *args: Any) -> Any:
        return self._call("logits", self.module.logits, *args)

    def train(self, mode: bool = True) -> "DDPNet":
        super().train(mode)
        self.ddp.train(mode)
        return self


def unwrap(module: nn.Module | None) -> nn.Module | None:
    """The plain network of a `DDPNet` / DDP (or `module` itself)."""
    return getattr(module, "module", module)


def wrap_models(models: Models, device: torch.device | str = "cpu") -> Models:
    """DDP-wrap each network of `models` (already on `device`); needs an initialised process
    group. DDP broadcasts rank 0's parameters and buffers on construction."""
    device = torch.device(device)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    wrap = lambda m, **kw: None if m is None else DDPNet(m, device_ids=ids, **kw)  # noqa: E731
    wrapped = Models(wrap(models.g), wrap(models.d_local),
                     wrap(models.d_global, entry="logits"))
    sync_buffers(wrapped, average=False)  # explicit, whatever DDP's init sync covers
    return wrapped


def _modules(models: Models) -> list[nn.Module]:
    return [unwrap(m) for m in (models.g, models.d_local, models.d_global) if m is not None]


def _bn_stats(module: nn.Module) -> set[int]:
    """ids of the running mean/var buffers of every BatchNorm in `module`."""
    ids: set[int] = set()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            ids.update(id(b) for b in (m.running_mean, m.running_var) if b is not None)
    return ids


def _coalesced(tensors: list[torch.Tensor], op: Callable[[torch.Tensor], None]) -> None:
    """Apply the collective `op` to all `tensors` (one dtype) in one flat buffer."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    op(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


@torch.no_grad()
def sync_buffers(models: Models, average: bool = True) -> None:
    """Make every buffer equal on all ranks: BatchNorm running stats averaged, the rest
    (spectral-norm u/v, counters) broadcast from rank 0; with `average=False` everything is
    broadcast from rank 0. A no-op without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    averaged: list[torch.Tensor] = []
    broadcast: dict[torch.dtype, list[torch.Tensor]] = {}
    for module in _modules(models):
        stats = _bn_stats(module) if average else set()
        for buf in module.buffers():
            if id(buf) in stats:
                averaged.append(buf)
            else:
                broadcast.setdefault(buf.dtype, []).append(buf)

    def mean(flat: torch.Tensor) -> None:
        dist.all_reduce(flat)
        flat.div_(world)

    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for buf in averaged:
        by_dtype.setdefault(buf.dtype, []).append(buf)
    for bufs in by_dtype.values():
        _coalesced(bufs, mean)
    for bufs in broadcast.values():
        _coalesced(bufs, lambda flat: dist.broadcast(flat, src=0))


def state_digest(module: nn.Module | None) -> dict[str, str]:
    """SHA-256 of a network's parameters and of its buffers (bitwise), e.g. to compare ranks."""
    if module is None:
        return {}
    module = unwrap(module)

    def digest(tensors: Any) -> str:
        h = hashlib.sha256()
        for name, t in tensors:
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    return {"params": digest(module.named_parameters()), "buffers": digest(module.named_buffers())}
