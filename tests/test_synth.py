"""Tests of the synthetic thin structures (distpaint.data.synth) and `distpaint synth`.

Determinism, chunk-invariance, the structure each kind must have (measured on the pixels with
skeletons, distance transforms and connected components, so a generator that stops drawing
laterals, bifurcations, roundabouts or hairs fails), bad requests, the CLI, and a bounded-memory
check of the chunked writer (the peak-RSS figures themselves are in bench/synth.py).

Run: .venv/bin/python -m pytest tests/test_synth.py -q
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import typer
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.stats import spearmanr
from skimage.measure import label, regionprops
from skimage.morphology import skeletonize
from typer.testing import CliRunner

from distpaint.data.store import MaskStore
from distpaint.data.synth import (
    KINDS,
    SynthConfig,
    rasterize,
    sample_seeds,
    synth_array,
    synth_geometry,
    synth_mask,
)
from distpaint.data.synth.config import MAX_SIDE
from distpaint.data.synth.writer import write_synth
from distpaint.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- measuring helpers


def _neighbours(skel: np.ndarray) -> np.ndarray:
    """Number of 8-neighbours of each skeleton pixel."""
    return ndi.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - skel


def skeleton_points(mask: np.ndarray, margin: int = 0) -> tuple[int, int]:
    """(end points, junctions) of the mask's skeleton; end points within `margin` px of the
    border (structures running out of the image) are not counted; a junction is one
    8-connected cluster of skeleton pixels with three or more neighbours."""
    skel = skeletonize(mask)
    nb = _neighbours(skel)
    ends = skel & (nb == 1)
    if margin:
        inner = np.zeros_like(ends)
        inner[margin:-margin, margin:-margin] = True
        ends &= inner
    junctions = label(skel & (nb >= 3), connectivity=2).max()
    return int(ends.sum()), int(junctions)


def widths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(skeleton, local width at each pixel = 2 x distance to background, zero outside)."""
    edt = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    return skeletonize(mask), 2 * edt


def components(mask: np.ndarray) -> int:
    return int(label(mask, connectivity=2).max())


def one_px_pixels(mask: np.ndarray) -> int:
    """Foreground pixels whose two horizontal or two vertical neighbours are both background:
    pixels of a 1-px wide stroke (a root hair), rare in strokes 2 px and wider."""
    p = np.pad(mask, 1)
    c = p[1:-1, 1:-1]
    across_h = ~p[1:-1, :-2] & ~p[1:-1, 2:]
    across_v = ~p[:-2, 1:-1] & ~p[2:, 1:-1]
    return int((c & (across_h | across_v)).sum())


def round_holes(mask: np.ndarray) -> int:
    """Enclosed background regions that look like the inside of a roundabout: 100-3500 px,
    convex (solidity > 0.9) and nearly circular (eccentricity < 0.6). City blocks enclosed
    by roads are larger or elongated and do not count."""
    bg = label(~mask, connectivity=1)
    border = set(np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]])).tolist())
    return sum(1 for r in regionprops(bg) if r.label not in border and 100 < r.area < 3500
               and r.solidity > 0.9 and r.eccentricity < 0.6)


def geodesic_width_profile(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along the skeleton of the largest component: (geodesic distance from its widest
    skeleton pixel, local width) per skeleton pixel. In a tree whose branches narrow at every
    bifurcation, width falls with the distance from the trunk."""
    lab = label(mask, connectivity=2)
    largest = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    skel, width = widths(largest)
    ys, xs = np.nonzero(skel)
    index = -np.ones(skel.shape, np.int64)
    index[ys, xs] = np.arange(ys.size)
    rows, cols, lengths = [], [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        y2, x2 = ys + dy, xs + dx
        ok = (y2 < skel.shape[0]) & (x2 >= 0) & (x2 < skel.shape[1])
        ok[ok] = skel[y2[ok], x2[ok]]
        rows.append(index[ys[ok], xs[ok]])
        cols.append(index[y2[ok], x2[ok]])
        lengths.append(np.full(int(ok.sum()), np.hypot(dy, dx)))
    graph = sparse.coo_matrix((np.concatenate(lengths), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(ys.size, ys.size)).tocsr()
    w = width[ys, xs]
    dist = dijkstra(graph, directed=False, indices=int(np.argmax(w)))
    ok = np.isfinite(dist)
    return dist[ok], w[ok]


# ---------------------------------------------------------------- determinism and chunking


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_pixels_different_seed_different_pixels(kind):
    a = synth_array(kind, (600, 500), 11)
    assert a.dtype == bool and a.shape == (600, 500)
    assert 0.002 < a.mean() < 0.3, f"{kind}: foreground {a.mean():.4f} is not a thin structure"
    np.testing.assert_array_equal(a, synth_array(kind, (600, 500), 11))
    assert (a != synth_array(kind, (600, 500), 12)).sum() > 0.05 * a.sum()


def test_kinds_draw_independent_streams_from_one_seed():
    masks = {kind: synth_array(kind, (512, 512), 3) for kind in KINDS}
    for i, a in enumerate(KINDS):
        for b in KINDS[i + 1:]:
            assert (masks[a] != masks[b]).any(), f"{a} and {b} are identical"


def test_pixels_do_not_depend_on_the_process():
    """Same pixels in a fresh interpreter with another hash seed (no set/dict-order or
    global-RNG dependence)."""
    code = textwrap.dedent("""
        import hashlib
        from distpaint.data.synth import synth_array
        print(hashlib.sha256(synth_array("roads", (700, 300), 5).tobytes()).hexdigest())
    """)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    here = hashlib.sha256(synth_array("roads", (700, 300), 5).tobytes()).hexdigest()
    assert out.stdout.strip() == here


@pytest.mark.parametrize("kind", KINDS)
def test_pixels_do_not_depend_on_the_chunking(kind):
    """A non-multiple shape: edge chunks are ragged for 64 and 100, one chunk for 1024."""
    shape, seed = (700, 523), 4
    reference = synth_array(kind, shape, seed)
    assert reference.any()
    for chunks in (64, 100, 1024):
        lazy = synth_mask(kind, shape, seed, chunks=chunks)
        assert lazy.dtype == bool and lazy.shape == shape
        assert lazy.chunksize == (min(chunks, shape[0]), min(chunks, shape[1]))
        np.testing.assert_array_equal(lazy.compute(), reference, err_msg=f"chunks={chunks}")


def test_any_window_equals_the_same_slice_of_the_whole_mask():
    geometry = synth_geometry("vessels", (800, 800), 9)
    whole = rasterize(geometry, 0, 800, 0, 800)
    rng = np.random.default_rng(0)
    for _ in range(20):
        y0, x0 = rng.integers(0, 780, 2)
        y1, x1 = y0 + rng.integers(1, 800 - y0 + 1), x0 + rng.integers(1, 800 - x0 + 1)
        np.testing.assert_array_equal(rasterize(geometry, y0, y1, x0, x1), whole[y0:y1, x0:x1])


def test_sample_seeds_are_deterministic_and_distinct():
    seeds = sample_seeds(7, 5)
    assert seeds == sample_seeds(7, 5) and len(set(seeds)) == 5
    assert sample_seeds(7, 3) == seeds[:3]  # sample i does not depend on --count
    assert sample_seeds(8, 5) != seeds


# ---------------------------------------------------------------- structure of each kind


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roots_primary_tapers_and_carries_thinner_laterals(seed):
    shape = (1500, 600)  # one plant
    primary = synth_array("roots", shape, seed, SynthConfig(lateral_order=1))
    full = synth_array("roots", shape, seed)
    # The primary alone is one unbranched, tapering path.
    assert components(primary) == 1
    ends, junctions = skeleton_points(primary)
    assert ends == 2 and junctions == 0, (ends, junctions)
    skel, width = widths(primary)
    rows = np.nonzero(skel)[0]
    top, bottom = rows.min(), rows.max()
    y = np.arange(shape[0])[:, None]
    upper = np.median(width[skel & (y < top + 0.25 * (bottom - top))])
    lower = np.median(width[skel & (y > bottom - 0.25 * (bottom - top))])
    assert upper > 1.3 * lower, f"primary does not taper: {upper} at the top, {lower} at the tip"
    # Laterals are drawn after the primary from the same stream, so the primary is part of the
    # full plant; what is left are many laterals, all attached, narrower than the primary.
    assert (primary <= full).all()
    assert components(full) == 1
    laterals = full & ~ndi.binary_dilation(primary, iterations=2)
    assert components(laterals) >= 10
    skel_full, width_full = widths(full)
    assert np.median(width_full[skel_full & laterals]) < np.median(width_full[skel_full & primary])
    assert skeleton_points(full)[1] >= 10


@pytest.mark.parametrize("seed", [0, 3])
def test_root_hairs_only_when_enabled(seed):
    shape = (1500, 600)
    bare = synth_array("roots", shape, seed)
    hairy = synth_array("roots", shape, seed, SynthConfig(root_hairs=True))
    assert one_px_pixels(bare) < 0.01 * bare.sum()
    assert one_px_pixels(hairy) > 0.1 * hairy.sum()
    assert skeleton_points(hairy)[0] > 10 * skeleton_points(bare)[0]
    # the primary is drawn before any hair, so it is still there underneath
    assert (synth_array("roots", shape, seed, SynthConfig(lateral_order=1)) <= hairy).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_vessels_bifurcating_tree_narrowing_away_from_the_trunk(seed):
    mask = synth_array("vessels", (1024, 1024), seed)
    # One vessel system per ~1600 px: a tree (plus at most a couple of branches that leave the
    # image and come back).
    assert components(mask) <= 3
    assert skeleton_points(mask)[1] >= 10  # bifurcations
    dist, width = geodesic_width_profile(mask)
    rho = spearmanr(dist, width)[0]
    assert rho < -0.35, f"width does not fall along the tree (Spearman {rho:.2f})"
    quarter = np.quantile(dist, [0.25, 0.75])
    assert np.median(width[dist <= quarter[0]]) > 1.5 * np.median(width[dist >= quarter[1]])


def test_vessels_stop_below_the_minimum_width():
    thin = synth_array("vessels", (1024, 1024), 0)
    coarse = synth_array("vessels", (1024, 1024), 0, SynthConfig(vessel_min_width=4.0))
    assert coarse.sum() < thin.sum() and skeleton_points(coarse)[1] < skeleton_points(thin)[1]


@pytest.mark.parametrize("seed", [0, 1])
def test_roads_network_with_junctions_dead_ends_and_varying_widths(seed):
    mask = synth_array("roads", (2048, 2048), seed)
    ends, junctions = skeleton_points(mask, margin=30)
    assert junctions >= 30, junctions
    assert ends >= 5, f"{ends} dead ends inside the image"
    assert components(mask) <= 10  # a network, not scattered strokes
    skel, width = widths(mask)
    w = width[skel]
    assert np.percentile(w, 90) >= 2 * np.percentile(w, 10), "roads all have the same width"
    wide = synth_array("roads", (2048, 2048), seed, SynthConfig(width_scale=2.0))
    skel2, width2 = widths(wide)
    assert 1.6 < np.median(width2[skel2]) / np.median(w) < 2.4


def test_roads_dead_end_rate_controls_dead_ends():
    ends = {rate: sum(skeleton_points(synth_array("roads", (2048, 2048), s,
                                                  SynthConfig(dead_end_rate=rate)), margin=30)[0]
                      for s in (0, 1))
            for rate in (0.0, 1.0)}
    assert ends[1.0] > 2 * ends[0.0], ends


def test_roads_roundabouts_are_holes():
    counts = {rate: sum(round_holes(synth_array("roads", (1024, 1024), s,
                                                SynthConfig(roundabout_rate=rate))) for s in range(3))
              for rate in (0.0, 1.0)}
    assert counts[0.0] == 0 and counts[1.0] >= 10, counts
    # with the default rate a city-sized mask has a few
    default = synth_array("roads", (4096, 4096), 1)
    assert 1 <= round_holes(default) <= 60
    assert label(~default, connectivity=1).max() > 1  # Betti-1 > 0: enclosed background


@pytest.mark.parametrize("seed", [0, 1])
def test_sketch_is_many_thin_strokes(seed):
    mask = synth_array("sketch", (1024, 1024), seed)
    assert components(mask) >= 10
    ends, _ = skeleton_points(mask, margin=5)
    assert ends >= 20
    skel, width = widths(mask)
    assert np.percentile(width[skel], 90) <= 13  # pen widths 1-6 px (radius 0.5-6)
    assert one_px_pixels(mask) > 0  # the thinnest pens draw 1-px lines


@pytest.mark.parametrize("kind", KINDS)
def test_density_scales_the_amount_of_structure(kind):
    sparse_mask = synth_array(kind, (2048, 2048), 0, SynthConfig(density=0.3))
    dense = synth_array(kind, (2048, 2048), 0, SynthConfig(density=3.0))
    assert dense.sum() > 1.5 * sparse_mask.sum()


# ---------------------------------------------------------------- bad requests


@pytest.mark.parametrize("call, message", [
    (lambda: synth_array("trees", (64, 64), 0), "unknown synth kind 'trees'; choose one of roots"),
    (lambda: synth_array("roads", (0, 64), 0), "sides in [1, "),
    (lambda: synth_array("roads", (64, -3), 0), "sides in [1, "),
    (lambda: synth_array("roads", (MAX_SIDE + 1, 8), 0), "sides in [1, "),
    (lambda: synth_array("roads", (64,), 0), "two integers (H, W)"),
    (lambda: synth_array("roads", (64, 10.5), 0), "two integers (H, W), got (64, 10.5)"),
    (lambda: synth_array("roads", ("a", 64), 0), "two integers (H, W)"),
    (lambda: synth_array("roads", 64, 0), "two integers (H, W)"),
    (lambda: synth_array("roads", (64, 64), -1), "seed must be a non-negative integer, got -1"),
    (lambda: synth_array("roads", (64, 64), 1.5), "seed must be a non-negative integer, got 1.5"),
    (lambda: synth_array("roads", (64, 64), True), "seed must be a non-negative integer"),
    (lambda: synth_mask("roads", (64, 64), 0, chunks=0), "chunks must be a positive integer"),
    (lambda: SynthConfig(density=0), "density must be in [0.05, 20.0], got 0"),
    (lambda: SynthConfig(width_scale=float("nan")), "width_scale must be a number"),
    (lambda: SynthConfig(root_hairs="yes"), "root_hairs must be true or false"),
    (lambda: SynthConfig(lateral_order=4), "lateral_order must be 1, 2 or 3"),
    (lambda: SynthConfig.from_dict({"densty": 2}), "unknown synth option(s) densty"),
])
def test_bad_requests_raise_config_error(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value)


@pytest.mark.parametrize("count", [0, -2, True, 1.0])
def test_bad_count(tmp_path, count):
    store = MaskStore.create(tmp_path / "s.zarr")
    with pytest.raises(ConfigError, match="--count must be a positive integer"):
        write_synth(store, "roads", (64, 64), 0, count)
    assert store.names() == []


# ---------------------------------------------------------------- the store writer and CLI


def _synth_args(*args: str) -> list[str]:
    from distpaint.cli import app

    is_group = hasattr(typer.main.get_command(app), "list_commands")
    return (["synth"] if is_group else []) + list(args)


def test_cli_writes_samples_with_provenance(tmp_path):
    from distpaint.cli import app

    out = tmp_path / "s.zarr"
    args = _synth_args("roads", "--size", "300", "260", "--seed", "3", "--count", "2",
                       "--chunks", "128", "--out", str(out))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "roads-0000" in result.output and "300x260" in result.output
    store = MaskStore.open(out)
    assert store.names() == ["roads-0000", "roads-0001"]
    for i, name in enumerate(store.names()):
        attrs = store.attrs(name)
        assert attrs["kind"] == "roads" and attrs["base_seed"] == 3 and attrs["index"] == i
        assert attrs["seed"] == sample_seeds(3, 2)[i]
        assert attrs["shape"] == [300, 260] and attrs["config"] == SynthConfig().to_dict()
        assert store.array(name).chunks == (128, 128)
        # any sample can be regenerated alone from its attrs
        np.testing.assert_array_equal(store.array(name)[:], synth_array("roads", (300, 260), attrs["seed"]))
    assert not (store.array("roads-0000")[:] == store.array("roads-0001")[:]).all()

    # Existing samples are not replaced without --overwrite; the store is left as it was.
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and isinstance(again.exception, ConfigError)
    assert "already exist; pass --overwrite" in str(again.exception)
    assert CliRunner().invoke(app, args + ["--overwrite"]).exit_code == 0

    hairy = tmp_path / "h.zarr"
    result = CliRunner().invoke(app, _synth_args("roots", "--size", "400", "300", "--root-hairs",
                                                 "--width-scale", "1.5", "--out", str(hairy)))
    assert result.exit_code == 0, result.output
    config = MaskStore.open(hairy).attrs("roots-0000")["config"]
    assert config["root_hairs"] is True and config["width_scale"] == 1.5


@pytest.mark.parametrize("args, message", [
    (["trees", "--size", "64", "64"], "unknown synth kind 'trees'; choose one of roots, vessels, roads, sketch"),
    (["roads", "--size", "0", "64"], "synth shape must have sides in [1, 1048576], got (0, 64)"),
    (["roads", "--count", "0"], "synth --count must be a positive integer, got 0"),
    (["roads", "--seed", "-1"], "synth seed must be a non-negative integer, got -1"),
    (["roads", "--density", "0"], "synth option density must be in [0.05, 20.0], got 0.0"),
    (["roads", "--chunks", "0"], "synth --chunks must be a positive integer, got 0"),
])
def test_cli_bad_options_one_red_line_and_no_store(tmp_path, args, message):
    out = tmp_path / "s.zarr"
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "distpaint"), *_synth_args(*args, "--out", str(out))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not out.exists(), "a refused request must not create the store"


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    from distpaint.data.store import MaskStore
    from distpaint.data.synth.writer import write_synth

    store = MaskStore.create(sys.argv[1])
    write_synth(store, "roads", (2048, 2048), 0, 1, measure=False)  # imports, pools, allocator
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    (s,) = write_synth(store, "vessels", (16384, 16384), 1, 1, measure=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(peak - base, int(store.array(s.name)[::64, ::64].sum()))  # KiB, a few foreground px
""")


def test_large_mask_is_written_in_bounded_memory(tmp_path):
    """A 16384^2 bool mask is 256 MiB in memory; the chunked writer holds the geometry (grows
    with the area, ~8 MB here), two 4096^2 shards being computed and written and the
    rasteriser's bounded temporaries: ~110 MiB measured, against 275+ MiB when the mask is
    materialised first. The bound leaves room for allocator noise, not for a whole mask."""
    proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path / "big.zarr")],
                          capture_output=True, text=True, timeout=300, check=True)
    grew_kib, foreground = (int(v) for v in proc.stdout.split())
    assert foreground > 0
    assert grew_kib < 180 * 1024, f"peak RSS grew by {grew_kib // 1024} MiB writing a 256 MiB mask"
