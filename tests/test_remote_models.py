"""`--model` from elsewhere (`distpaint.weights.remote`): a checkpoint folder on a real
S3-compatible server (the session fixture `s3`: moto's standalone server over HTTP) and MLflow
URIs (`runs:/`, `models:/NAME/VERSION`) of a real local tracking store (SQLite), fetched into a
cache, verified, re-fetched when the remote checkpoint changes, bad URIs as one-line errors.

Run: .venv/bin/python -m pytest tests/test_remote_models.py -q
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from distpaint.data import location
from distpaint.errors import InputError
from distpaint.infer.model import model_fingerprint
from distpaint.weights import checkpoint_or_shipped, inference_defaults

import infer_models


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return infer_models.tiny_checkpoint_dir(tmp_path_factory.getbasetemp())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTPAINT_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


def _upload(folder: str, url: str) -> None:
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            location.put_file(path, location.join(url, path.name))


def test_checkpoint_folder_on_s3_is_fetched_verified_and_refreshed(s3, ckpt, cache, tmp_path):
    url = s3.url("runs", "tiny", "step_00000004")
    _upload(ckpt, url)
    local = checkpoint_or_shipped(url)
    assert local.is_relative_to(cache)
    assert (local / "model.pt").read_bytes() == (Path(ckpt) / "model.pt").read_bytes()
    assert model_fingerprint(url) == model_fingerprint(ckpt)  # what jobs resume by
    assert inference_defaults(url) == inference_defaults(ckpt)
    stamp = (local / "model.pt").stat().st_mtime_ns
    assert checkpoint_or_shipped(url) == local and (local / "model.pt").stat().st_mtime_ns == stamp
    # the remote checkpoint replaced: fetched again (its ETag changed)
    changed = tmp_path / "model.pt"
    changed.write_bytes((Path(ckpt) / "model.pt").read_bytes() + b"\0")
    location.put_file(changed, location.join(url, "model.pt"))
    assert (checkpoint_or_shipped(url) / "model.pt").read_bytes() == changed.read_bytes()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize("case", ["no-key", "no-bucket", "not-a-checkpoint"])
def test_bad_model_urls_name_the_url(s3, cache, case):
    url = {"no-key": s3.url("nothing-here"), "no-bucket": "s3://no-such-bucket-dp/ckpt",
           "not-a-checkpoint": s3.url("other")}[case]
    if case == "not-a-checkpoint":
        location.put_file(__file__, location.join(url, "notes.txt"))
    with pytest.raises(InputError) as err:
        checkpoint_or_shipped(url)
    assert url in str(err.value) and "\n" not in str(err.value)


def test_training_registers_its_generator_and_mlflow_uris_resolve(s3, ckpt, cache, tmp_path, monkeypatch):
    """What a training run on object storage does at its end (`finish_run` with `--register
    NAME`): the checkpoint as artifact `checkpoint/`, the generator alone as `model/`, both in
    the bucket (`<storage>/mlartifacts`), registered as version 1; both URIs serve as --model."""
    from distpaint.models.modelfile import load_generator
    from distpaint.train.tracking import finish_run, start_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # where models:/ and runs:/ are resolved
    artifacts = s3.url("runs", "mlartifacts")
    run_id = start_run(uri, None, "tiny-run", {"seed": "0"}, artifact_root=artifacts)
    registered = finish_run(uri, run_id, "FINISHED", checkpoint_dir=ckpt, register="tiny-test")
    assert registered == "models:/tiny-test/1"
    fs, path = location.fs_path(artifacts)
    assert {k.rsplit("/", 2)[-2] for k in fs.find(path) if k.endswith("model.pt")} == {"checkpoint", "model"}
    original = (Path(ckpt) / "model.pt").read_bytes()
    # a process-global tracking URI left by an earlier caller (Ray Tune's MLflow integration
    # sets one) must not hide the store the environment names now
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    try:
        model = checkpoint_or_shipped(registered)
    finally:
        mlflow.set_tracking_uri(None)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert (model / "model.pt").read_bytes() == original
    assert not (model / "train_state.pt").exists()  # weights only, no training state
    load_generator(model / "model.pt")  # loads with the models package alone
    full = checkpoint_or_shipped(f"runs:/{run_id}/checkpoint")
    assert (full / "model.pt").read_bytes() == original and (full / "train_state.pt").is_file()
    with pytest.raises(InputError, match="models:/no-such-model/1"):
        checkpoint_or_shipped("models:/no-such-model/1")
    assert "mlflow" in sys.modules  # loaded only here, by the MLflow URIs
