"""Distributed training on a real local Ray (2 CPU workers, tiny config): checkpoints every K
steps, ranks agree bitwise on parameters and buffers, every rank's patches are in the global
view D_G scored (the re-composer actor), the MLflow run holds what the
run logged (read back from the SQLite store), and re-running the same run directory through
the CLI resumes it instead of starting over."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from distpaint.cli import app
from distpaint.errors import ConfigError, InputError
from distpaint.train.checkpoint import load_generator, load_train_state
from distpaint.train.config import config_to_dict, load_config, packaged_config
from distpaint.train.distributed import DistributedConfig, _check_capacity, resolve_run, train_distributed
from distpaint.train.tracking import flatten

pytestmark = pytest.mark.cost(60)  # seconds on 2 idle cores: started first by `make test`

STEPS, MORE = 6, 8


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    data = yaml.safe_load(packaged_config("tiny").read_text())
    data.update(checkpoint_every=3, log_every=2, keep_checkpoints=5)
    path = tmp_path_factory.mktemp("recipe") / "tiny_k3.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def run(ray_local, recipe, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny-2w"
    cfg = load_config(recipe)
    summary = train_distributed(cfg, out, max_steps=STEPS,
                                options=DistributedConfig(num_workers=2, record_views=True))
    return cfg, out, summary


def _adam_steps(ckpt) -> set[int]:
    state = load_train_state(ckpt)
    return {int(s["step"]) for key in ("opt_g", "opt_d_local", "opt_d_global")
            for s in state[key]["state"].values()}


def test_trains_to_checkpoints_every_k_steps(run):
    cfg, out, summary = run
    assert summary["step"] == STEPS
    found = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert found == ["step_00000003", "step_00000006"]
    assert summary["checkpoint"] == str(out / "checkpoints" / "step_00000006")
    assert _adam_steps(out / "checkpoints" / "step_00000006") == {STEPS}  # every optimiser stepped 6 times
    g = load_generator(out / "checkpoints" / "step_00000006")
    assert type(g).__name__ == "UNet"
    assert (out / "train.zarr").is_dir() and (out / "val.zarr").is_dir()  # synthesised defaults


def test_ranks_agree_bitwise(run):
    _, out, _ = run
    r0, r1 = (json.loads((out / "workers" / f"rank_{r}.json").read_text()) for r in (0, 1))
    assert r0["pid"] != r1["pid"] and r0["step"] == r1["step"] == STEPS
    for net in ("g", "d_local", "d_global"):
        assert r0["digests"][net] == r1["digests"][net], net  # parameters AND buffers
    assert len(r0["rewards"]) == STEPS


def test_every_ranks_patches_are_in_the_view_d_g_scored(run):
    """Rank 0's view is the one scored (its reward is broadcast): at every step it must hold
    both ranks' sampled patches, pixel for pixel at their positions, and rank 1 must have got the
    same view. A rank whose patches the actor dropped leaves the truth there instead, which
    differs from an (untrained) G's Bernoulli samples."""
    _, out, _ = run
    views = out / "workers" / "views"
    for step in range(STEPS):
        got = [np.load(views / f"rank_{r}_step_{step}_sample.npz") for r in (0, 1)]
        scored = got[0]
        assert np.array_equal(got[1]["x_hat"], scored["x_hat"])
        assert np.array_equal(got[1]["origin"], scored["origin"])
        oy, ox = scored["origin"]
        corners = set()
        for rank in got:
            patches, ys, xs = rank["patches"], rank["ys"], rank["xs"]
            assert len(patches) == 4, step  # tiny: batch_size 4 per rank
            p, differs = patches.shape[-1], False
            for patch, y, x in zip(patches, ys, xs):
                corners.add((int(y), int(x)))
                window = scored["x_hat"][y - oy:y - oy + p, x - ox:x - ox + p]
                assert np.array_equal(window, patch), (step, y, x)
                differs |= not np.array_equal(scored["truth"][y - oy:y - oy + p, x - ox:x - ox + p], patch)
            assert differs, step  # the check can fail: the samples are not what a drop leaves (the truth)
        assert len(corners) == 8, step  # the ranks' patches are different ones


def test_mlflow_run_holds_the_logged_contents(run):
    from mlflow.tracking import MlflowClient

    cfg, out, summary = run
    uri, run_id = summary["mlflow"]
    assert uri == f"sqlite:///{out}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("distpaint")
    assert exp.artifact_location == (out / "mlartifacts").as_uri()
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED" and r.info.run_name == out.name
    want = flatten({**config_to_dict(cfg), "max_steps": STEPS})
    assert {k: v for k, v in r.data.params.items() if not k.startswith("dist.")} == want
    assert r.data.params["dist.num_workers"] == "2"

    def history(key):
        return [m.step for m in client.get_metric_history(run_id, key)]

    for key in ("loss_g", "ce", "loss_dl", "loss_dg", "pg", "reward"):  # per-step losses
        assert history(key) == list(range(1, STEPS + 1)), key
    for key in ("dl_real", "dl_fake", "dg_pos", "dg_neg"):  # discriminator scores
        assert len(history(key)) == STEPS, key
    for key in ("reward_mean", "reward_std", "patches_per_s", "time/actor", "time/g"):  # every log_every
        assert history(key) == [2, 4, 6], key
    for key in ("val/rel_component_diff", "val/cldice"):  # at every checkpoint
        assert history(key) == [3, 6], key
    assert r.data.metrics["patches_per_s"] > 0
    repairs = [a.path for a in client.list_artifacts(run_id, "repairs/step_00000006")]
    assert repairs and all(p.endswith(".png") for p in repairs)
    files = {a.path for a in client.list_artifacts(run_id, "checkpoint")}
    assert {"checkpoint/model.pt", "checkpoint/train_state.pt", "checkpoint/config.yaml"} <= files


def test_cli_rerun_resumes(run, recipe):
    _, out, summary = run
    result = CliRunner().invoke(app, ["train", "--config", str(recipe), "--out", str(out), "--num-workers", "2",
                                      "--max-steps", str(MORE)])
    assert result.exit_code == 0, result.output
    starts = [json.loads(line) for line in (out / "workers" / "starts.jsonl").read_text().splitlines()]
    assert sorted(s["start_step"] for s in starts) == [0, 0, STEPS, STEPS]  # resumed, not restarted
    assert _adam_steps(out / "checkpoints" / "step_00000008") == {MORE}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(summary["mlflow"][0])
    runs = client.search_runs([client.get_experiment_by_name("distpaint").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == summary["mlflow"][1]  # the same MLflow run
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss_g")] == list(range(1, MORE + 1))
    assert runs[0].data.tags["max_steps"] == str(MORE)


def test_bad_input_is_refused_before_training(run, ray_local, tmp_path):
    cfg, out, _ = run
    with pytest.raises(ConfigError, match="--num-workers"):
        DistributedConfig(num_workers=0)
    with pytest.raises(ConfigError, match="either --out or --storage"):
        resolve_run(out, DistributedConfig(name="other"))
    with pytest.raises(ConfigError, match="needs 3 CPU"):
        _check_capacity(DistributedConfig(num_workers=3))  # the 2-CPU instance can never fit them
    changed = load_config(packaged_config("tiny"))  # checkpoint_every differs from the run's
    with pytest.raises(ConfigError, match="different config"):
        train_distributed(changed, out, max_steps=STEPS)
    with pytest.raises(InputError, match="not a distpaint mask store"):
        train_distributed(cfg, tmp_path / "x", options=DistributedConfig(data=str(tmp_path)))
    # object storage without --data: the synthesised data go to the bucket, which must exist
    with pytest.raises(InputError, match="bucket 'bucket' does not exist"):
        train_distributed(cfg, options=DistributedConfig(storage="s3://bucket/runs", name="x"))
