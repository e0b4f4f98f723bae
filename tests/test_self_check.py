"""`--min-confidence auto` (distpaint.infer.self_check): the floor chosen per mask by repairing
new cuts made in it, on hand-made masks with predictors whose repair is known: one that fills
every cut exactly (the lowest floor wins), one that paints nothing or only thickens (no floor
gains: nothing is kept); the window budget, determinism, the job (the floor recorded, taken
again on resume; a mask left as it came runs no tile through the model) and the CLI value."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from skimage.draw import line

from distpaint.errors import ConfigError
from distpaint.infer import self_check
from distpaint.infer.engine import InferConfig
from distpaint.infer.keep import NO_REPAIR, keep_added
from distpaint.infer.self_check import (BOUND_SPREADS, CANDIDATE_FLOORS, MIN_GAIN, choose_min_confidence,
                                        parse_min_confidence)
from scipy import ndimage

pytestmark = pytest.mark.cost(10)

CONFIG = InferConfig(keep="all", threshold=0.5)


def _lines(shape=(300, 300), width=3) -> np.ndarray:
    """A few straight lines `width` px wide across the image."""
    mask = np.zeros(shape, bool)
    h, w = shape
    for (r0, c0, r1, c1) in ((10, 10, h - 10, w - 10), (h - 10, 10, 10, w - 10), (h // 2, 5, h // 2, w - 5),
                             (5, w // 3, h - 5, w // 3)):
        rr, cc = line(r0, c0, r1, c1)
        mask[rr, cc] = True
    return ndimage.binary_dilation(mask, iterations=width // 2)


class _Knows:
    """A predictor that knows the complete mask: probability `p` on it, 0 elsewhere; with
    `thicken`, instead `p` only beside it (2 px out), never on it."""

    align, receptive_halo = 1, 0

    def __init__(self, complete: np.ndarray, p: float = 0.9, thicken: bool = False) -> None:
        self.complete, self.p, self.thicken = complete, p, thicken

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, w = self.complete.shape
        where = self.complete
        if self.thicken:
            where = ndimage.binary_dilation(self.complete, iterations=2) & ~self.complete
        out = np.zeros(x.shape, np.float32)
        out[:, 0, :h, :w] = self.p * where  # every image of the batch: cut and uncut
        return out


def test_parse_min_confidence():
    assert parse_min_confidence("auto") is None
    assert parse_min_confidence("0.55") == 0.55 and parse_min_confidence(1) == NO_REPAIR
    for bad in ("most", "1.5", -0.1, True):
        with pytest.raises(ConfigError, match="--min-confidence must be auto or"):
            parse_min_confidence(bad)


def test_no_repair_keeps_no_added_piece_even_at_an_open_edge():
    given = np.zeros((20, 20), bool)
    given[10, :8] = given[10, 12:] = True
    output = given.copy()
    output[10, 8:12] = True  # a bridge
    output[0:3, 19] = True  # a piece at the (open) right edge
    probs = np.where(output & ~given, 0.99, 0).astype(np.float32)
    kept = keep_added(output, given, "all", (True, True, True, True), probs=probs, min_confidence=NO_REPAIR)
    np.testing.assert_array_equal(kept, given)


def test_a_repair_that_fills_the_cuts_gets_the_lowest_floor():
    mask = _lines()
    check = choose_min_confidence(mask, _Knows(mask, p=0.9), CONFIG)
    assert check.floor == CANDIDATE_FLOORS[0] and check.cuts >= 4 and check.pixels == mask.size
    # every floor up to 0.9 keeps the perfect fill, 0.95 keeps nothing
    assert all(check.gains[f] > MIN_GAIN for f in CANDIDATE_FLOORS if f <= 0.9)
    assert check.gains[0.95] == 0.0
    assert check == choose_min_confidence(mask, _Knows(mask, p=0.9), CONFIG)  # deterministic
    assert choose_min_confidence(mask, _Knows(mask, p=0.9), CONFIG, seed=1).gains != check.gains


def test_a_fill_sure_to_0_8_is_kept_by_the_floors_under_it():
    mask = _lines()
    check = choose_min_confidence(mask, _Knows(mask, p=0.8), CONFIG)
    # floors above 0.8 drop the fill; those under keep it alike: the lowest of them
    assert check.floor == 0.55 and check.gains[0.85] == 0.0 and check.gains[0.75] == check.gains[0.55]


@pytest.mark.parametrize("thicken", [False, True])
def test_a_repair_that_gains_nothing_keeps_nothing(thicken):
    mask = _lines()
    predictor = _Knows(mask, p=0.9 if thicken else 0.0, thicken=thicken)
    check = choose_min_confidence(mask, predictor, CONFIG)
    assert check.floor == NO_REPAIR and max(check.gains.values()) < MIN_GAIN


def _dashes(mask: np.ndarray, rows=(40, 80, 220, 260), on=12, off=5) -> tuple[np.ndarray, np.ndarray]:
    """`mask` with dashed lines 3 px wide across it at `rows` (their own breaks, no damage),
    and the same lines drawn whole (a repair that joins every dash)."""
    dashed, whole = mask.copy(), mask.copy()
    for r in rows:
        whole[r - 1:r + 2, 5:-5] = True
        for c in range(5, mask.shape[1] - 5, on + off):
            dashed[r - 1:r + 2, c:c + on] = True
    return dashed, whole


def test_what_the_repair_paints_where_the_mask_is_whole_counts_against_it():
    """A repair that closes every cut but also joins the dashes of dashed lines (breaks the mask
    has of its own, far more than its gaps at the protocol's density would explain) paints most
    of its centreline where the input is whole: the check counts it (`unexplained` < 0) and
    keeps nothing; the same fill without the joined dashes keeps the lowest floor."""
    dashed, whole = _dashes(_lines())
    honest = choose_min_confidence(dashed, _Knows(dashed, p=0.9), CONFIG)
    assert honest.floor == CANDIDATE_FLOORS[0] and all(v == 0 for v in honest.unexplained.values())
    joins = choose_min_confidence(dashed, _Knows(whole, p=0.9), CONFIG)
    assert joins.unexplained[0.55] < 0 and joins.gains[0.55] < honest.gains[0.55]
    assert joins.floor == NO_REPAIR
    # the uncut repair's own centreline px it judges are those it adds: at 0.95 nothing
    assert joins.unexplained[0.95] == 0


def test_the_allowance_sets_how_much_of_the_uncut_repair_is_explained():
    """`floor_gains` from one measurement: an allowance large enough explains every joined dash
    (nothing counted against the repair), a smaller one counts more of it."""
    dashed, whole = _dashes(_lines())
    found = self_check.measure(dashed, _Knows(whole, p=0.9), CONFIG)
    counted = {a: self_check.floor_gains(found, a)[2][0.55] for a in (0.5, 1.0, 100.0)}
    assert counted[0.5] < counted[1.0] < 0 and counted[100.0] == 0
    gains, _, unexplained = self_check.floor_gains(found)
    assert gains == choose_min_confidence(dashed, _Knows(whole, p=0.9), CONFIG).gains


def test_a_mask_with_no_centreline_keeps_nothing():
    empty = np.zeros((64, 64), bool)
    assert choose_min_confidence(empty, _Knows(empty), CONFIG).floor == NO_REPAIR


def test_a_large_mask_is_checked_in_a_budget_of_windows(monkeypatch):
    monkeypatch.setattr(self_check, "WINDOW", 100)
    monkeypatch.setattr(self_check, "CHECK_PIXELS", 2 * 100 * 100)
    mask = _lines((400, 400))
    seen = []

    class Nothing:  # paints nothing; records the windows it is shown
        align, receptive_halo = 1, 0

        def __call__(self, x):
            seen.append(x.shape[-2:])
            return np.zeros(x.shape, np.float32)

    check = choose_min_confidence(mask, Nothing(), CONFIG)
    assert check.pixels == 2 * 100 * 100 and seen == [(100, 100)] * 2 and check.floor == NO_REPAIR


def test_the_job_records_the_floor_it_chose_and_keys_on_auto(tmp_path):
    """`dilate3` grows lines by one pixel: it closes none of the check's 4-11 px cuts, so the
    check keeps nothing and the output is the input; the floor and the gains are in the
    output's attributes, and `auto` is part of the job's identity."""
    from distpaint.data.store import MaskStore
    from distpaint.infer.job import JobConfig, _job_key, run_job
    from infer_models import FnFactory

    mask = _lines((200, 200), width=1)
    mask[100, 90:110] = False  # a gap dilate3 cannot close either
    store = MaskStore.create(tmp_path / "in.zarr")
    store.write("a", {"mask": mask}, {})
    infer = InferConfig(keep="bridges", tile=64, threshold=0.5, batch=2)
    job = JobConfig(shard=128, preview_size=64, self_check=True)
    report = run_job([tmp_path / "in.zarr"], FnFactory("dilate3"), tmp_path / "out.zarr", infer, job)
    # nothing kept: said per mask, and no tile went through the model
    (done,) = report.done
    assert done.min_confidence == NO_REPAIR and done.predicted == 0 and done.tiles == 16
    out = MaskStore.open(tmp_path / "out.zarr")
    how = out.attrs("a")["inference"]
    assert how["min_confidence"] == NO_REPAIR and how["self_check"]["floor"] == NO_REPAIR
    assert set(how["self_check"]["gains"]) == {f"{f:g}" for f in CANDIDATE_FLOORS}
    assert how["self_check"]["rule"] == {"bound_spreads": BOUND_SPREADS, "min_gain": MIN_GAIN}
    np.testing.assert_array_equal(np.asarray(out.array("a")[...]), mask)
    auto, described = _job_key("fp", infer, 1, job)
    assert described["min_confidence"] == "auto"
    assert auto != _job_key("fp", infer, 1, dataclasses.replace(job, self_check=False))[0]


def test_a_resumed_job_takes_the_floor_its_interrupted_attempt_recorded(tmp_path, monkeypatch):
    """The floor is chosen once per mask: a job interrupted after its check resumes with the
    floor recorded in the unit's staging group (the shards already written used it), without
    checking again, and ends with the uninterrupted job's bytes and attributes."""
    from distpaint.data.store import MaskStore
    from distpaint.infer import job as job_module
    from distpaint.infer.job import JobConfig, run_job
    from infer_models import FnFactory

    mask = _lines((384, 384), width=3)
    mask[120:136, 40:60] = False  # a gap
    store = MaskStore.create(tmp_path / "in.zarr")
    store.write("a", {"mask": mask}, {})
    infer = InferConfig(keep="all", tile=64, threshold=0.5, batch=1)  # `closes` gains at 0.55 with it
    job = JobConfig(shard=64, preview_size=64, self_check=True)
    reference = run_job([tmp_path / "in.zarr"], FnFactory("closes"), tmp_path / "ref.zarr", infer, job)
    assert reference.done[0].min_confidence < NO_REPAIR  # a floor that keeps pieces: tiles run
    checks = []
    real_check = job_module.choose_min_confidence
    monkeypatch.setattr(job_module, "choose_min_confidence",
                        lambda *a, **k: checks.append(1) or real_check(*a, **k))
    with pytest.raises(KeyboardInterrupt):  # after the check's forward pass and a few tiles
        run_job([tmp_path / "in.zarr"], FnFactory("closes", interrupt_at=5), tmp_path / "run.zarr", infer, job)
    assert checks == [1]
    report = run_job([tmp_path / "in.zarr"], FnFactory("closes"), tmp_path / "run.zarr", infer, job)
    assert checks == [1] and report.done[0].resumed_shards > 0  # not checked again
    ref, run = MaskStore.open(tmp_path / "ref.zarr"), MaskStore.open(tmp_path / "run.zarr")
    np.testing.assert_array_equal(np.asarray(run.array("a")[...]), np.asarray(ref.array("a")[...]))
    assert run.attrs("a")["inference"] == ref.attrs("a")["inference"]
    assert report.done[0].min_confidence == ref.attrs("a")["inference"]["min_confidence"]


@pytest.mark.parametrize("keep_input", [True, False])
def test_no_repair_runs_no_tile_through_the_model_when_the_output_is_the_input(tmp_path, keep_input):
    """With NO_REPAIR (what `auto` chooses for a mask the model cannot show a gain on) and the
    input kept, the output is the input whatever the model says: no tile is predicted. Without
    the input kept, the model decides which input pixels stay, so it runs."""
    import zarr
    from zarr.storage import LocalStore

    from distpaint.data.store import compressors
    from distpaint.infer.engine import output_layout, run_inference

    class Thickens:
        """Probability 0.9 on the input and one pixel around it: it adds pixels everywhere."""

        align, receptive_halo, calls = 1, 2, 0

        def __call__(self, x: np.ndarray) -> np.ndarray:
            Thickens.calls += 1
            return np.stack([0.9 * ndimage.binary_dilation(image[0] > 0.5)[None] for image in x]).astype(np.float32)

    mask = _lines((200, 200))
    predictor = Thickens()
    chunks, shards = output_layout(mask.shape, 64)
    group = zarr.open_group(LocalStore(tmp_path / "out.zarr"), mode="w", zarr_format=3)
    out = group.create_array("mask", shape=mask.shape, chunks=chunks, shards=shards, dtype=bool,
                             fill_value=False, compressors=compressors())
    config = InferConfig(tile=64, keep="all", threshold=0.5, min_confidence=NO_REPAIR, keep_input=keep_input)
    stats = run_inference(mask, predictor, {"mask": out}, config)
    np.testing.assert_array_equal(np.asarray(out[...]), mask)
    assert stats.tiles == 16 and stats.added_pixels == 0
    if keep_input:
        assert config.repairs_nothing and Thickens.calls == 0 and stats.predicted == 0
    else:
        assert not config.repairs_nothing and Thickens.calls > 0 and stats.predicted == 16
    # any floor under NO_REPAIR may keep a piece (p = 0.9 is not under 0.9): the model runs
    assert not dataclasses.replace(config, min_confidence=0.9).repairs_nothing


def test_choose_floor_takes_the_lowest_floor_expected_to_gain_or_nothing():
    from distpaint.infer.self_check import choose_floor

    gains = {0.55: 0.0005, 0.65: 0.004, 0.75: 0.006}
    spreads = {0.55: 0.004, 0.65: 0.001, 0.75: 0.004}
    assert choose_floor(gains, spreads, z=0, min_gain=0.001) == 0.65  # 0.55 gains too little
    assert choose_floor(gains, spreads, z=0, min_gain=0) == 0.55
    assert choose_floor(gains, spreads, z=2, min_gain=0) == 0.65  # 0.002 > 0; 0.55: -0.0075
    assert choose_floor(gains, spreads, z=5, min_gain=0) == NO_REPAIR  # no bound above 0
    assert choose_floor(gains, spreads, z=0, min_gain=0.01) == NO_REPAIR
    assert choose_floor({}, {}) == NO_REPAIR
    # by default the bound is BOUND_SPREADS spreads below the expected gain, against MIN_GAIN:
    # 0.55's 0.005 gains enough on its own, not once 2 spreads of 0.003 are taken off
    gains[0.55], spreads[0.55], spreads[0.65] = 0.005, 0.003, 0.0008
    assert (BOUND_SPREADS, MIN_GAIN) == (2.0, 0.002)
    assert choose_floor(gains, spreads, z=0) == 0.55
    assert choose_floor(gains, spreads) == 0.65  # 0.004 - 2 x 0.0008 = 0.0024 > 0.002


def test_cli_auto_with_the_shipped_general_model(tmp_path):
    """`distpaint infer --model general --min-confidence auto` on a damaged PNG (the card's
    default spelled out): exit 0, the output has the input's shape and keeps every input pixel."""
    import subprocess
    from pathlib import Path

    from distpaint.data.files import read_raw, write_mask_file
    from distpaint.data.gaps import GapConfig, corrupt

    distpaint = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "distpaint")
    damaged, _ = corrupt(_lines((256, 320)), GapConfig(kind="cut"), np.random.default_rng(0))
    write_mask_file(tmp_path / "m.png", damaged)
    proc = subprocess.run([distpaint, "infer", str(tmp_path / "m.png"), "--model", "general",
                           "--min-confidence", "auto", "--out", str(tmp_path / "o.png")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})  # the table's header unfolded
    assert proc.returncode == 0, proc.stderr
    assert "auto floor" in proc.stdout + proc.stderr  # the floor chosen is said per mask
    out = np.asarray(read_raw(tmp_path / "o.png")[0]) != 0
    assert out.shape == damaged.shape and not (damaged & ~out).any()
