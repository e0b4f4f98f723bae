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


def test_mlflow_run_and_registered_model_uris(ckpt, cache, tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("models", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_artifacts(ckpt, artifact_path="checkpoint")
    # a registered version whose source is the logged checkpoint folder (register_model would
    # look for an MLflow "logged model" there, which a plain checkpoint folder is not)
    client = mlflow.MlflowClient()
    client.create_registered_model("tiny-test")
    version = client.create_model_version("tiny-test", f"{run.info.artifact_uri}/checkpoint",
                                          run_id=run.info.run_id).version
    original = (Path(ckpt) / "model.pt").read_bytes()
    for model in (f"runs:/{run.info.run_id}/checkpoint", f"models:/tiny-test/{version}"):
        assert (checkpoint_or_shipped(model) / "model.pt").read_bytes() == original
    with pytest.raises(InputError, match="models:/no-such-model/1"):
        checkpoint_or_shipped("models:/no-such-model/1")
    assert "mlflow" in sys.modules  # loaded only here, by the MLflow URIs
