"""Baseline 2: end-point linking, the classical gap repair for thin structures.

1. Skeletonise the mask (`skimage.morphology.skeletonize`); end points are skeleton pixels
   with exactly one skeleton neighbour.
2. Each end's outgoing direction is the unit vector along its branch, from the skeleton pixel
   `direction_length` steps back to the one two steps behind the end (thinning bends the last
   pixels of a flat end; the walk stops at a junction; ends whose branch is shorter than
   `min_branch` pixels, i.e. spurs and specks, are skipped). The end is then moved onto that
   straight branch and out to the tip of the structure, where the gap really starts.
3. Candidate pairs are ends closer than `max_distance` whose directions both point at each
   other: the angle between end a's direction and the vector a -> b, and between end b's
   direction and b -> a, are both at most `max_angle`. So two unrelated ends that meet at a
   right angle are not joined, while the two sides of a gap in a line are.
4. Pairs are chosen greedily by the score distance / max_distance + mean angle / max_angle
   (lowest first), each end used at most once.
5. Each bridge is the straight segment between its ends, drawn with the local width: a disk
   of radius round(median distance-transform value along the two traced branches) - 1, so a
   3-px wide line gets a 3-px wide bridge. Output = input OR bridges.

The Dask version tiles with a halo of max_distance + 2 * direction_length + 32 px (zero
beyond the image). A tile sees every pair that can draw into its core, so the result equals
the in-memory one except where greedy choices compete across a tile border (several
candidate pairs for one end, an approximation accepted for masks larger than memory).

Usage::

    from distpaint.baselines.linking import LinkingConfig, linking, linking_dask
    repaired = linking(mask, LinkingConfig(max_distance=20, max_angle=35))

or `distpaint baseline linking SRC --out DST --max-distance 20 --max-angle 35`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dask.array as da
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.draw import line
from skimage.morphology import disk, skeletonize

from distpaint.errors import ConfigError

__all__ = ["End", "LinkingConfig", "find_ends", "link_pairs", "linking", "linking_dask"]

_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass
class LinkingConfig:
    """Options of the end-point linking baseline."""

    max_distance: float = 20.0
    """Longest gap bridged, in pixels between the two end points."""
    max_angle: float = 35.0
    """Largest angle in degrees between an end's outgoing direction and the bridge."""
    direction_length: int = 8
    """Skeleton pixels walked back from an end to estimate its direction."""
    min_branch: int = 3
    """Ends whose branch has fewer skeleton pixels than this have no reliable direction."""

    def __post_init__(self) -> None:
        if not self.max_distance > 0:
            raise ConfigError(f"max_distance must be > 0 pixels, got {self.max_distance}")
        if not 0 < self.max_angle <= 90:
            raise ConfigError(f"max_angle must be in (0, 90] degrees, got {self.max_angle}")
        if self.direction_length < 2:
            raise ConfigError(f"direction_length must be >= 2, got {self.direction_length}")
        if not 2 <= self.min_branch <= self.direction_length + 1:
            raise ConfigError(f"min_branch must be in [2, direction_length + 1], got "
                              f"{self.min_branch}")

    @property
    def halo(self) -> int:
        """Context pixels a tile needs: every end and branch that can draw into the core."""
        return math.ceil(self.max_distance) + 2 * self.direction_length + 32


@dataclass(frozen=True)
class End:
    """A skeleton end point with its direction and local half-width."""

    y: int
    """Row of the structure's tip (the skeleton end moved out to the mask's edge)."""
    x: int
    """Column of the tip."""
    dy: float
    """Outgoing unit direction, row component."""
    dx: float
    """Outgoing unit direction, column component."""
    radius: float
    """Median distance-transform value along the traced branch (half the width + ~0.5)."""


def _trace(skel: np.ndarray, y: int, x: int, steps: int) -> list[tuple[int, int]]:
    """Skeleton pixels from end (y, x) back along its branch, at most `steps` steps, stopping
    at a junction. A thin corner (two unvisited neighbours that touch each other) is one step."""
    h, w = skel.shape
    path, seen = [(y, x)], {(y, x)}
    for _ in range(steps):
        cy, cx = path[-1]
        nbrs = [(cy + dy, cx + dx) for dy, dx in _OFFSETS
                if 0 <= cy + dy < h and 0 <= cx + dx < w and skel[cy + dy, cx + dx]
                and (cy + dy, cx + dx) not in seen]
        if not nbrs:
            break
        if len(nbrs) > 2 or (len(nbrs) == 2 and max(abs(nbrs[0][0] - nbrs[1][0]),
                                                     abs(nbrs[0][1] - nbrs[1][1])) > 1):
            break  # a junction: the direction beyond it belongs to another branch
        seen.update(nbrs)
        path.append(max(nbrs, key=lambda p: (p[0] - cy) ** 2 + (p[1] - cx) ** 2))
    return path


def _tip(mask: np.ndarray, y: float, x: float, dy: float, dx: float, steps: int) -> tuple[int, int]:
    """Walk from (y, x) along (dy, dx) while the next pixel is foreground: the structure's tip.
    Thinning stops a skeleton short of a flat end; bridges start from the real tip."""
    h, w = mask.shape
    # the end projected onto its straight branch can fall just outside the image when the
    # branch meets the border at an angle: start from the nearest pixel inside
    ty, tx = min(max(round(y), 0), h - 1), min(max(round(x), 0), w - 1)
    for k in range(1, steps + 1):
        ny, nx = round(y + k * dy), round(x + k * dx)
        if not (0 <= ny < h and 0 <= nx < w and mask[ny, nx]):
            break
        ty, tx = ny, nx
    return int(ty), int(tx)


def find_ends(skel: np.ndarray, edt: np.ndarray, config: LinkingConfig,
              mask: np.ndarray | None = None) -> list[End]:
    """The end points of skeleton `skel` with a usable direction (see the module docstring).

    Zhang thinning bends the last pixel or two of a branch towards a corner, so the direction
    is taken from the branch behind them, and the end is moved onto that straight branch and
    out to the tip of the structure (`mask`, default: `edt > 0`)."""
    mask = edt > 0 if mask is None else mask
    neighbours = ndimage.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8),
                                  mode="constant") - skel
    ends = []
    for y, x in zip(*np.nonzero(skel & (neighbours == 1)), strict=True):
        path = _trace(skel, int(y), int(x), config.direction_length)
        if len(path) < config.min_branch:
            continue
        (ny, nx), (fy, fx) = path[min(2, len(path) - 2)], path[-1]
        norm = math.hypot(ny - fy, nx - fx)
        dy, dx = (ny - fy) / norm, (nx - fx) / norm
        along = (y - fy) * dy + (x - fx) * dx  # the end projected on the straight branch
        radius = float(np.median(edt[tuple(np.array(path).T)]))
        ty, tx = _tip(mask, fy + along * dy, fx + along * dx, dy, dx, math.ceil(radius) + 1)
        ends.append(End(ty, tx, dy, dx, radius))
    return ends


def link_pairs(ends: list[End], config: LinkingConfig) -> list[tuple[int, int]]:
    """Index pairs of `ends` to bridge: close, facing each other, chosen greedily by score."""
    if len(ends) < 2:
        return []
    pts = np.array([(e.y, e.x) for e in ends], dtype=np.float64)
    dirs = np.array([(e.dy, e.dx) for e in ends])
    pairs = cKDTree(pts).query_pairs(config.max_distance, output_type="ndarray")
    if len(pairs) == 0:
        return []
    a, b = pairs[:, 0], pairs[:, 1]
    v = pts[b] - pts[a]
    dist = np.hypot(v[:, 0], v[:, 1])
    unit = v / np.maximum(dist, 1e-12)[:, None]
    angle_a = np.degrees(np.arccos(np.clip((dirs[a] * unit).sum(1), -1, 1)))
    angle_b = np.degrees(np.arccos(np.clip(-(dirs[b] * unit).sum(1), -1, 1)))
    ok = (angle_a <= config.max_angle) & (angle_b <= config.max_angle) & (dist > 0)
    score = dist / config.max_distance + (angle_a + angle_b) / (2 * config.max_angle)
    used = np.zeros(len(ends), bool)
    chosen = []
    for k in np.flatnonzero(ok)[np.argsort(score[ok], kind="stable")]:
        if not used[a[k]] and not used[b[k]]:
            used[a[k]] = used[b[k]] = True
            chosen.append((int(a[k]), int(b[k])))
    return chosen


def _draw_bridge(out: np.ndarray, a: End, b: End) -> None:
    """OR a straight bridge from a to b, as wide as the branches it joins, into `out`."""
    radius = max(0, round((a.radius + b.radius) / 2) - 1)
    rr, cc = line(a.y, a.x, b.y, b.x)
    if radius == 0:
        out[rr, cc] = True
        return
    y0, x0 = max(0, rr.min() - radius), max(0, cc.min() - radius)
    y1, x1 = min(out.shape[0], rr.max() + radius + 1), min(out.shape[1], cc.max() + radius + 1)
    canvas = np.zeros((rr.max() - rr.min() + 2 * radius + 1, cc.max() - cc.min() + 2 * radius + 1),
                      bool)
    canvas[rr - rr.min() + radius, cc - cc.min() + radius] = True
    canvas = ndimage.binary_dilation(canvas, structure=disk(radius))
    oy, ox = rr.min() - radius, cc.min() - radius  # canvas origin in image coordinates
    out[y0:y1, x0:x1] |= canvas[y0 - oy : y1 - oy, x0 - ox : x1 - ox]


def linking(mask: np.ndarray, config: LinkingConfig | None = None) -> np.ndarray:
    """The mask with bridges drawn between facing skeleton end points (bool, same shape)."""
    config = config or LinkingConfig()
    mask = np.asarray(mask, dtype=bool)
    out = mask.copy()
    if not mask.any():
        return out
    skel = skeletonize(mask)
    # zero-padded so that, as in a tile, everything beyond the image is background
    edt = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    ends = find_ends(skel, edt, config, mask)
    for i, j in link_pairs(ends, config):
        _draw_bridge(out, ends[i], ends[j])
    return out


def linking_dask(mask: da.Array, config: LinkingConfig | None = None) -> da.Array:
    """Lazy tiled linking of a Dask mask (see the module docstring for the approximation)."""
    config = config or LinkingConfig()
    # map_overlap rechunks chunks smaller than the halo itself, but the halo cannot exceed
    # the array; a smaller zero halo on a single-chunk axis changes nothing.
    depth = {axis: min(config.halo, n) for axis, n in enumerate(mask.shape)}
    return da.map_overlap(linking, mask.astype(bool), depth=depth, boundary=0,
                          trim=True, dtype=bool, config=config)
