"""Vectorised curve helpers shared by the generators: smooth random walks and Bezier curves.

Walks are the workhorse: k paths advance in fixed steps while their heading drifts by
smoothed Gaussian noise (tortuosity), optionally relaxing towards a target heading
(gravitropism for roots, a preferred direction for strokes). Everything is computed on padded
(k, m) arrays from an explicit `numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter

__all__ = ["Walks", "smooth_noise", "walk", "bezier", "taper"]

_MAX_BATCH_VERTICES = 1 << 20  # vertices per walk batch: bounds the (k, m) temporaries


@dataclass(frozen=True)
class Walks:
    """k padded paths: vertices x, y and headings (radians) of shape (k, m); n (k,) valid counts."""

    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray
    n: np.ndarray


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """(k, m) Gaussian noise smoothed along rows by a Gaussian of `sigma` steps, unit variance."""
    noise = rng.standard_normal(shape)
    if sigma <= 0:
        return noise
    smoothed = gaussian_filter1d(noise, sigma, axis=1, mode="reflect")
    # Variance of white noise after a unit-sum Gaussian kernel is ~1 / (2 sqrt(pi) sigma).
    return smoothed * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)


def walk(
    rng: np.random.Generator,
    x0: np.ndarray,
    y0: np.ndarray,
    heading0: np.ndarray,
    n_steps: np.ndarray,
    step: float,
    turn: float | np.ndarray,
    smooth: float = 4.0,
    target: float | None = None,
    pull: float = 0.0,
    curvature: np.ndarray | None = None,
) -> Walks:
    """k random walks of n_steps[i] steps of `step` px from (x0, y0) with initial heading.

    turn: std (radians per step) of the heading change, scalar or (k,); smooth: correlation
    length of that change in steps; target/pull: each step the heading deviation from `target`
    shrinks by the factor (1 - pull); curvature: (k,) constant turn per step added to the noise.
    Returns padded arrays of m = max(n_steps) + 1 vertices.
    """
    x0, y0, heading0 = (np.asarray(a, dtype=np.float64).ravel() for a in (x0, y0, heading0))
    n_steps = np.maximum(np.asarray(n_steps, dtype=np.int64).ravel(), 1)
    k, m = x0.size, int(n_steps.max(initial=1))
    dh = smooth_noise(rng, (k, m), smooth) * np.broadcast_to(np.asarray(turn, dtype=np.float64), (k,))[:, None]
    if curvature is not None:
        dh += np.asarray(curvature, dtype=np.float64)[:, None]
    heading = _headings(heading0, dh, target, pull)  # (k, m): heading of step j
    x = np.empty((k, m + 1))
    y = np.empty((k, m + 1))
    x[:, 0], y[:, 0] = x0, y0
    np.cumsum(step * np.cos(heading), axis=1, out=x[:, 1:])
    np.cumsum(step * np.sin(heading), axis=1, out=y[:, 1:])
    x[:, 1:] += x0[:, None]
    y[:, 1:] += y0[:, None]
    heading = np.concatenate([heading, heading[:, -1:]], axis=1)
    return Walks(x, y, heading, n_steps + 1)


def _headings(heading0, dh, target, pull):
    """Heading per step: integrated noise, or an AR(1) relaxation towards `target`."""
    if target is None or pull <= 0:
        return heading0[:, None] + np.cumsum(dh, axis=1)
    keep = 1.0 - pull
    dev0 = heading0 - target
    # e_j = keep * e_{j-1} + dh_j with e_{-1} = dev0, run along rows by a first-order IIR filter.
    dev, _ = lfilter([1.0], [1.0, -keep], dh, axis=1, zi=(keep * dev0)[:, None])
    return target + dev


def walk_batches(n_steps: np.ndarray):
    """Slices of paths (in the given order) whose padded size stays under a vertex budget."""
    n_steps = np.asarray(n_steps)
    start = 0
    while start < n_steps.size:
        stop = start + 1
        peak = int(n_steps[start])
        while stop < n_steps.size and max(peak, int(n_steps[stop])) * (stop + 1 - start) <= _MAX_BATCH_VERTICES:
            peak = max(peak, int(n_steps[stop]))
            stop += 1
        yield slice(start, stop)
        start = stop


def bezier(ctrl: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cubic Bezier curves. ctrl: (k, 4, 2) control points; t: (k, m) parameters -> x, y (k, m)."""
    t = np.asarray(t, dtype=np.float64)
    s = 1.0 - t
    w = (s**3, 3 * s * s * t, 3 * s * t * t, t**3)
    x = sum(w[i] * ctrl[:, i, 0, None] for i in range(4))
    y = sum(w[i] * ctrl[:, i, 1, None] for i in range(4))
    return x, y


def taper(u: np.ndarray, start: np.ndarray, end: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Radius along a path: start at u=0 to end at u=1, shaped by `power`; u (k, m), start/end (k,)."""
    u = np.clip(u, 0.0, 1.0)
    return end[:, None] + (start - end)[:, None] * (1.0 - u) ** power
