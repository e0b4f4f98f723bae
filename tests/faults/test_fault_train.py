"""Fault injected into `distpaint train --local` (a real subprocess, the `tiny` recipe made
smaller, a checkpoint every step): the driver is SIGKILLed while it writes a checkpoint (the
test watches the checkpoints folder for the writer's temporary directory and kills the moment it
appears), twice: in the first run once a checkpoint is complete, and in the second, resumed from
it, at a later step. The same command then finishes the run; its final checkpoint (generator, both
discriminators, optimisers, reward baseline, RNG states) and its metrics log are those of an
uninterrupted run of the same steps: the generator's model.pt byte for byte, the training state
equal tensor for tensor (Python's unused, OS-seeded global RNG state aside).

Run: .venv/bin/python -m pytest tests/faults/test_fault_train.py -q     (~20 s on 2 cores)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from distpaint.cli import app
from distpaint.train.lease import LEASE_FILE
from state_equal import same_state

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]
STEPS = 6
ARGS = ["train", "--config", "tiny", "--local", "--threads", "1", "--max-steps", str(STEPS),
        "--set", "checkpoint_every=1", "--set", "log_every=1", "--set", "keep_checkpoints=2",
        "--set", "data.n_masks=2", "--set", "data.batch_size=2", "--set", "data.mask_size=128"]


def _kill_during_checkpoint_write(out: Path, after: int) -> int:
    """Start the command on `out` and SIGKILL it while it writes the checkpoint of a step
    after `after`; that step."""
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "distpaint"), *ARGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder, deadline = out / "checkpoints", time.monotonic() + 240
    try:
        while True:
            try:
                writing = [n for n in os.listdir(folder) if n.startswith(".step_") and ".tmp-" in n]
            except FileNotFoundError:
                writing = []
            # the writer's temporary directory of a later step: killed inside save_checkpoint
            writing = [n for n in writing if int(n[len(".step_"):].split(".")[0]) > after]
            if writing:
                os.kill(proc.pid, signal.SIGKILL)
                assert proc.wait(timeout=60) == -signal.SIGKILL
                return int(writing[0][len(".step_"):].split(".")[0])
            assert proc.poll() is None, f"finished before a checkpoint write was caught: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no checkpoint write in time"
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _log(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("sec_per_step")
    return rows


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run's directory, run in this process through the same command."""
    ref = tmp_path_factory.mktemp("fault-train") / "ref"
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, [*ARGS, "--out", str(ref)])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return ref


def _same_final_checkpoint(run: Path, ref: Path) -> None:
    last = f"step_{STEPS:08d}"
    for name in ("model.pt", "config.yaml"):  # G's weights: the same bytes
        assert (run / "checkpoints" / last / name).read_bytes() == (ref / "checkpoints" / last / name).read_bytes()
    assert _log(run) == _log(ref)


def test_sigterm_stops_training_like_ctrl_c_and_the_same_command_resumes(tmp_path, reference):
    """A scheduler's stop (SIGTERM) once a checkpoint is written: exit 130 and one line, no
    traceback, the run's lease released (not left for a re-run to wait out); the same command
    then finishes the run as if it had never stopped."""
    out, lease = tmp_path / "run", tmp_path / "run" / LEASE_FILE
    command = [str(ROOT / ".venv" / "bin" / "distpaint"), *ARGS, "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoints" / "step_00000002").is_dir():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        assert lease.is_file()  # held while it trains
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted" in err and "Traceback" not in err, err
    assert not lease.exists()
    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    _same_final_checkpoint(out, reference)


def test_driver_killed_while_writing_checkpoints_resumes_to_the_same_bytes(tmp_path, reference):
    out = tmp_path / "run"
    first = _kill_during_checkpoint_write(out, after=1)  # step 1's checkpoint complete
    assert 2 <= first < STEPS
    second = _kill_during_checkpoint_write(out, after=first)  # resumed from step first - 1
    assert first < second <= STEPS
    final = subprocess.run([str(ROOT / ".venv" / "bin" / "distpaint"), *ARGS, "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    last = f"step_{STEPS:08d}"
    ref, run = reference / "checkpoints" / last, out / "checkpoints" / last
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in ref.iterdir())
    for name in ("model.pt", "config.yaml"):  # G's weights: the same bytes
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (run, ref)]
    assert [m.pop("sec_per_step") > 0 for m in metrics] == [True, True] and metrics[0] == metrics[1]
    # the discriminators, optimisers, reward baseline and RNG states: equal, except Python's
    # global `random` state, which every process seeds from the OS (the training draws nothing
    # from it: the RNGs it uses are explicit and seeded), so it differs between any two runs
    got, want = (torch.load(d / "train_state.pt", weights_only=False) for d in (run, ref))
    got["rng"].pop("python"), want["rng"].pop("python")
    assert same_state(got, want)
    assert [r["step"] for r in _log(out)] == list(range(1, STEPS + 1))
    assert _log(out) == _log(reference)
    # the killed writers' temporary directories were never taken for checkpoints
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == \
        sorted(p.name for p in (reference / "checkpoints").glob("step_*"))
