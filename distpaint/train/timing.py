"""Wall-clock breakdown of training steps by phase (G, D_L, D_G, policy gradient, actor, data).

`PhaseTimer` is the `timer` argument of `train_step` (a callable returning a context manager
per phase) and times the distributed trainer's own phases too. On a GPU it synchronises the
device at every phase boundary, so each phase is charged its own kernels (which slows the step
slightly: enable it for measurements, as bench/train_step.py does).

    timer = PhaseTimer(cuda=False)
    with timer("data"):
        batch = data.batch(step)
    train_step(..., timer=timer)
    timer.summary()     # {"data": seconds per step, "g": ..., "step": ..., }

Torch only.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterator

__all__ = ["PhaseTimer"]


class PhaseTimer:
    """Accumulates seconds per phase over steps; nested phases are charged to the innermost
    one only (the outer phase's time excludes them), so the phases add up to the step."""

    def __init__(self, cuda: bool = False) -> None:
        self.cuda = cuda
        self.seconds: dict[str, float] = defaultdict(float)
        self.steps = 0
        self._stack: list[list] = []  # [phase, start, time spent in nested phases]

    def _sync(self) -> None:
        if self.cuda:
            import torch  # deferred: this module is torch-free; only CUDA timing needs torch

            torch.cuda.synchronize()

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self._sync()
        frame = [phase, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._sync()
            self._stack.pop()
            total = time.perf_counter() - frame[1]
            self.seconds[phase] += total - frame[2]
            if self._stack:
                self._stack[-1][2] += total

    def move(self, src: str, dst: str, seconds: float) -> None:
        """Re-charge `seconds` already counted in `src` to `dst` (e.g. the part of a round
        trip spent waiting on other ranks)."""
        self.seconds[src] -= seconds
        self.seconds[dst] += seconds

    def step_done(self) -> None:
        """Count one step (the divisor of `summary`)."""
        self.steps += 1

    def reset(self) -> None:
        """Forget everything measured so far (e.g. after warm-up steps)."""
        self.seconds.clear()
        self.steps = 0

    def summary(self) -> dict[str, float]:
        """Mean seconds per step of each phase, and `step`: their sum."""
        n = max(self.steps, 1)
        out = {k: v / n for k, v in sorted(self.seconds.items())}
        out["step"] = sum(out.values())
        return out
