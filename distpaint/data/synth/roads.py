"""Synthetic road networks: a perturbed, rotated grid of arterials plus local streets.

Arterial junctions sit on a jittered grid (spacing 380-650 px, rotated by up to ~30 degrees),
joined by cubic Bezier roads, most nearly straight and some curved. A random spanning tree of
the grid is always kept and the other links with probability 0.72, so the network is connected
yet has T-junctions and dead-end arterials. Some grid lines are major roads (11-16 px wide),
other arterials are 7-10 px, local streets 4-6 px. Inside each block, 0 to ~8 local streets
cross from one side to the opposite one (intersections), some stopping short (dead ends,
sometimes with a turning circle). A few junctions become roundabouts: a ring road that the
incoming arterials stop at. Big masks also get winding highways crossing the grid.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree

from distpaint.data.synth.config import SynthConfig
from distpaint.data.synth.geometry import PathBuilder
from distpaint.data.synth.paths import bezier, walk

__all__ = ["build_roads"]

STEP = 8.0  # px between vertices of a road
KEEP_LINK = 0.72  # probability to keep a grid link that is not in the spanning tree
HIGHWAY_AREA = 4000.0**2  # px^2 of (padded) image per highway, on average
HIGHWAY_REACH = 1000.0  # px around the image where highways may start


def build_roads(builder: PathBuilder, shape: tuple[int, int], rng: np.random.Generator, cfg: SynthConfig) -> None:
    """Add the road network of a (H, W) mask to `builder`."""
    spacing = rng.uniform(300, 520) / np.sqrt(cfg.density)
    nodes = _grid_nodes(shape, spacing, rng)  # (nv, nu, 2) x, y
    edges, kind = _grid_links(nodes.shape[:2], rng)  # (E, 2) node ids, (E,) 0 = along u, 1 = along v
    ctrl = _edge_controls(nodes.reshape(-1, 2), edges, rng)
    width = _edge_radii(nodes.shape[:2], edges, kind, rng) * cfg.width_scale
    rings = _roundabouts(nodes.reshape(-1, 2), edges, width, rng, cfg)
    _draw_edges(builder, ctrl, width, edges, rings)
    _local_streets(builder, nodes.reshape(-1, 2), nodes.shape[:2], edges, kind, ctrl, rng, cfg)
    _highways(builder, shape, rng, cfg)


def _grid_nodes(shape, spacing, rng):
    """Junction positions: a jittered grid, rotated about the image centre, covering the image."""
    h, w = shape
    angle = rng.uniform(-0.5, 0.5)
    c, s = np.cos(angle), np.sin(angle)
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) - [w / 2, h / 2]
    # Corner coordinates in the grid's frame (u along the rotated x axis, v along rotated y).
    u, v = corners[:, 0] * c + corners[:, 1] * s, -corners[:, 0] * s + corners[:, 1] * c
    nu = int(np.ceil((u.max() - u.min()) / spacing)) + 2
    nv = int(np.ceil((v.max() - v.min()) / spacing)) + 2
    gu = u.min() - 0.5 * spacing + spacing * np.arange(nu)
    gv = v.min() - 0.5 * spacing + spacing * np.arange(nv)
    uu, vv = np.meshgrid(gu, gv)  # (nv, nu)
    uu = uu + rng.normal(0, 0.15 * spacing, uu.shape)
    vv = vv + rng.normal(0, 0.15 * spacing, vv.shape)
    x = w / 2 + uu * c - vv * s
    y = h / 2 + uu * s + vv * c
    return np.stack([x, y], axis=-1)


def _grid_links(grid_shape, rng):
    """Links of the grid kept: a random spanning tree plus each other link with KEEP_LINK."""
    nv, nu = grid_shape
    ids = np.arange(nv * nu).reshape(nv, nu)
    along_u = np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], axis=1)
    along_v = np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], axis=1)
    edges = np.concatenate([along_u, along_v])
    kind = np.concatenate([np.zeros(len(along_u), np.int8), np.ones(len(along_v), np.int8)])
    weight = rng.uniform(1.0, 2.0, len(edges))
    graph = coo_matrix((weight, (edges[:, 0], edges[:, 1])), shape=(nv * nu, nv * nu))
    tree = minimum_spanning_tree(graph).tocoo()
    in_tree = np.zeros(nv * nu * 2 + 1, bool)  # keyed by (a * 2 + is_along_v) of its lower node
    lo, hi = np.minimum(tree.row, tree.col), np.maximum(tree.row, tree.col)
    in_tree[lo * 2 + (hi - lo != 1)] = True
    keep = in_tree[edges[:, 0] * 2 + kind] | (rng.random(len(edges)) < KEEP_LINK)
    return edges[keep], kind[keep]


def _edge_controls(xy, edges, rng):
    """(E, 4, 2) cubic Bezier control points: nearly straight roads, about 30 % curved."""
    p0, p3 = xy[edges[:, 0]], xy[edges[:, 1]]
    d = p3 - p0
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)  # |normal| = |d|
    bend = np.where(rng.random(len(edges)) < 0.3, 0.15, 0.03)[:, None]
    o1, o2 = (rng.normal(0, 1, (len(edges), 1)) * bend for _ in range(2))
    return np.stack([p0, p0 + d / 3 + normal * o1, p0 + 2 * d / 3 + normal * o2, p3], axis=1)


def _edge_radii(grid_shape, edges, kind, rng):
    """Half-widths: whole grid lines that are major roads 5.5-8 px, other arterials 3.5-5 px."""
    nv, nu = grid_shape
    major_row = np.where(rng.random(nv) < 0.3, rng.uniform(5.5, 8.0, nv), 0.0)
    major_col = np.where(rng.random(nu) < 0.3, rng.uniform(5.5, 8.0, nu), 0.0)
    row, col = np.divmod(edges[:, 0], nu)
    major = np.where(kind == 0, major_row[row], major_col[col])
    return np.where(major > 0, major, rng.uniform(3.5, 5.0, len(edges)))


def _roundabouts(xy, edges, width, rng, cfg):
    """{node id: (cx, cy, R)} of the junctions (degree >= 3) turned into roundabouts."""
    degree = np.bincount(edges.ravel(), minlength=len(xy))
    chosen = np.nonzero((degree >= 3) & (rng.random(len(xy)) < cfg.roundabout_rate))[0]
    radius = rng.uniform(16.0, 30.0, chosen.size) * cfg.width_scale
    return {int(n): (xy[n, 0], xy[n, 1], float(R)) for n, R in zip(chosen, radius)}


def _sample(ctrl, spacing=STEP):
    """Bezier vertices every ~`spacing` px: padded (k, m) x, y and (k,) valid counts."""
    chord = np.linalg.norm(ctrl[:, 3] - ctrl[:, 0], axis=1)
    polygon = np.linalg.norm(np.diff(ctrl, axis=1), axis=2).sum(axis=1)
    n = np.maximum(np.ceil(0.5 * (chord + polygon) / spacing).astype(np.int64) + 1, 2)
    t = np.minimum(np.arange(n.max(initial=2))[None, :] / (n - 1)[:, None], 1.0)
    x, y = bezier(ctrl, t)
    return x, y, n


def _draw_edges(builder, ctrl, width, edges, rings):
    """Draw the arterials; roads into a roundabout stop on its ring, then draw the rings."""
    touches = np.array([a in rings or b in rings for a, b in edges], dtype=bool)
    _draw_curves(builder, ctrl[~touches], width[~touches])
    for e in np.nonzero(touches)[0]:
        x, y, n = _sample(ctrl[e : e + 1])
        px, py = x[0, : n[0]], y[0, : n[0]]
        for node, at_start in ((edges[e, 0], True), (edges[e, 1], False)):
            if node in rings:
                px, py = _cut_at_ring(px, py, rings[node], at_start)
        if px.size >= 2:
            builder.add_paths(px, py, np.full(px.size, width[e]))
    ring_r = np.mean(width) if width.size else 4.0
    for cx, cy, R in rings.values():
        theta = np.linspace(0, 2 * np.pi, max(16, int(np.ceil(2 * np.pi * R / 4))) + 1)
        builder.add_paths(cx + R * np.cos(theta), cy + R * np.sin(theta), np.full(theta.size, ring_r))


def _draw_curves(builder, ctrl, radius, batch=4096):
    """Draw Bezier roads of constant half-width, `batch` curves at a time (bounded memory)."""
    for i in range(0, len(ctrl), batch):
        x, y, n = _sample(ctrl[i : i + batch])
        builder.add_paths(x, y, np.broadcast_to(radius[i : i + batch, None], x.shape), n)


def _cut_at_ring(px, py, ring, at_start):
    """Drop the vertices inside the ring; the first one kept is moved onto the ring."""
    cx, cy, R = ring
    if not at_start:
        px, py = _cut_at_ring(px[::-1], py[::-1], ring, True)
        return px[::-1], py[::-1]
    dist = np.hypot(px - cx, py - cy)
    outside = np.nonzero(dist >= R)[0]
    if outside.size == 0:
        return px[:0], py[:0]
    q = max(outside[0] - 1, 0)
    px, py = px[q:].copy(), py[q:].copy()
    d = max(dist[q], 1e-9)
    px[0], py[0] = cx + (px[0] - cx) * R / d, cy + (py[0] - cy) * R / d
    return px, py


def _local_streets(builder, xy, grid_shape, edges, kind, ctrl, rng, cfg):
    """Streets across each block between two opposite sides; some stop short (dead ends)."""
    nv, nu = grid_shape
    lookup = {(int(a), int(k)): i for i, (a, k) in enumerate(zip(edges[:, 0], kind))}
    ci, cj = np.divmod(np.arange((nv - 1) * (nu - 1)), nu - 1)
    corner = ci * nu + cj
    # Block sides as (edge id or -1 if the link was dropped, first node, second node): top and
    # bottom run along u, left and right along v, each pair parametrised the same way round.
    top, bottom = (_edge_ids(lookup, corner, 0), corner, corner + 1), (_edge_ids(lookup, corner + nu, 0), corner + nu, corner + nu + 1)
    left, right = (_edge_ids(lookup, corner, 1), corner, corner + nu), (_edge_ids(lookup, corner + 1, 1), corner + 1, corner + nu + 1)
    busy = np.where(rng.random(corner.size) < 0.2, 0.0, rng.uniform(0.5, 6.0, corner.size)) * cfg.density
    count = rng.poisson(busy)
    block = np.repeat(np.arange(corner.size), count)
    k = np.arange(block.size) - np.repeat(np.cumsum(count) - count, count)
    # Streets run top to bottom or left to right; in a quarter of the blocks both ways (a grid).
    vertical = (rng.random(corner.size) < 0.5)[block]
    mixed = (rng.random(corner.size) < 0.25)[block]
    vertical = np.where(mixed, rng.random(block.size) < 0.5, vertical)
    a = tuple(np.where(vertical, p[block], q[block]) for p, q in zip(top, left))
    b = tuple(np.where(vertical, p[block], q[block]) for p, q in zip(bottom, right))
    flip = (a[0] < 0) & (b[0] >= 0)  # always start on a side that exists
    a, b = (tuple(np.where(flip, q, p) for p, q in zip(a, b)), tuple(np.where(flip, p, q) for p, q in zip(a, b)))
    ok = a[0] >= 0
    block, k, a, b = block[ok], k[ok], tuple(p[ok] for p in a), tuple(p[ok] for p in b)
    n = count[block]
    t = (k + 1) / (n + 1) + rng.normal(0, 0.15, k.size) / (n + 1)
    start = _point_on(ctrl, xy, a, t)
    end = _point_on(ctrl, xy, b, np.clip(t + rng.normal(0, 0.05, t.size), 0.05, 0.95))
    dead = (b[0] < 0) | (rng.random(t.size) < cfg.dead_end_rate)
    reach = np.where(dead, rng.uniform(0.25, 0.7, t.size), 1.0)[:, None]
    end = start + reach * (end - start)
    radius = rng.uniform(2.0, 3.0, t.size) * cfg.width_scale
    _draw_streets(builder, start, end, radius, rng)
    bulb = dead & (rng.random(t.size) < 0.4)
    builder.add_discs(end[bulb, 0], end[bulb, 1], radius[bulb] + rng.uniform(3.0, 6.0, bulb.sum()) * cfg.width_scale)


def _edge_ids(lookup, node, k):
    return np.array([lookup.get((int(n), k), -1) for n in node], dtype=np.int64)


def _point_on(ctrl, xy, side, t):
    """(S, 2) points at parameter t on block sides: on the road if it exists, else on the chord."""
    edge, n0, n1 = side
    x, y = bezier(ctrl[np.maximum(edge, 0)], np.asarray(t)[:, None])
    on_road = np.stack([x[:, 0], y[:, 0]], axis=1)
    on_chord = xy[n0] + np.asarray(t)[:, None] * (xy[n1] - xy[n0])
    return np.where((edge >= 0)[:, None], on_road, on_chord)


def _draw_streets(builder, start, end, radius, rng):
    """Gently curved streets (cubic Bezier) from `start` to `end`, (S, 2) each."""
    d = end - start
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    bend = np.where(rng.random(len(d)) < 0.3, 0.12, 0.03)[:, None]
    o1, o2 = (rng.normal(0, 1, (len(d), 1)) * bend for _ in range(2))
    ctrl = np.stack([start, start + d / 3 + normal * o1, start + 2 * d / 3 + normal * o2, end], axis=1)
    _draw_curves(builder, ctrl, radius)


def _highways(builder, shape, rng, cfg):
    """Long, slowly winding roads (12-16 px) crossing the grid, one per ~4000^2 px^2 on average.

    They start anywhere in the image grown by HIGHWAY_REACH on every side, so their length (not
    the image size) sets their scale and edges are crossed as often as the middle.
    """
    h, w = shape
    pad = HIGHWAY_REACH
    count = rng.poisson((h + 2 * pad) * (w + 2 * pad) * cfg.density / HIGHWAY_AREA)
    if count == 0:
        return
    x0 = rng.uniform(-pad, w + pad, count)
    y0 = rng.uniform(-pad, h + pad, count)
    n_steps = np.ceil(rng.uniform(3000.0, 6000.0, count) / STEP).astype(np.int64)
    paths = walk(rng, x0, y0, rng.uniform(0, 2 * np.pi, count), n_steps, STEP, turn=0.012, smooth=15.0)
    radius = rng.uniform(6.0, 8.0, count) * cfg.width_scale
    builder.add_paths(paths.x, paths.y, np.broadcast_to(radius[:, None], paths.x.shape), paths.n)
