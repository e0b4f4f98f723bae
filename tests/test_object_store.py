"""Mask stores on object storage, against a real S3-compatible HTTP server (moto's standalone
server, the session fixture `s3` of conftest.py): `distpaint synth` into a bucket, `distpaint
infer s3://.../in.zarr --out s3://.../out.zarr` byte-equal to the same job on local stores, and
bad URLs as one-line errors (exit 2). Commands run in this process through the console entry
point (`distpaint.cli.main`), masks are tiny and the model is the session's 4-step `tiny`
checkpoint: the pixels of a job do not depend on where its stores live, whatever the model.

Run: .venv/bin/python -m pytest tests/test_object_store.py -q
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from distpaint.cli import main
from distpaint.data import location
from distpaint.data.store import MaskStore
from distpaint.infer.engine import InferConfig
from distpaint.infer.job import JobConfig, run_job

import infer_models


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `distpaint ARGS`, run by the console entry point."""
    monkeypatch.setattr(sys, "argv", ["distpaint", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main()
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def _same_store(a: MaskStore, b: MaskStore, skip_attrs: tuple[str, ...] = ()) -> None:
    assert a.names() == b.names() and a.names()
    for name in a.names():
        assert a.layers(name) == b.layers(name)
        for layer in a.layers(name):
            x, y = a.array(name, layer)[:], b.array(name, layer)[:]
            assert x.dtype == y.dtype == bool and x.tobytes() == y.tobytes(), (name, layer)
        strip = lambda attrs: {k: v for k, v in attrs.items() if k not in skip_attrs}  # noqa: E731
        assert strip(a.attrs(name)) == strip(b.attrs(name))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return infer_models.tiny_checkpoint_dir(tmp_path_factory.getbasetemp())


def test_synth_into_a_bucket_writes_what_it_writes_locally(s3, tmp_path, monkeypatch, capsys):
    url = s3.url("synth.zarr")
    for out in (url, str(tmp_path / "synth.zarr")):
        code, _, err = _cli(monkeypatch, capsys, "synth", "roads", "--size", "192", "160",
                            "--count", "2", "--chunks", "64", "--out", out)
        assert code == 0, err
    _same_store(MaskStore.open(url), MaskStore.open(tmp_path / "synth.zarr"))
    # each sample was published whole: no temporary groups left in the bucket
    assert not [n for n in location.list_names(url) if n.startswith(".")]


def test_infer_from_bucket_to_bucket_equals_the_local_job(s3, tmp_path, monkeypatch, capsys, ckpt):
    local_in = MaskStore.create(tmp_path / "in.zarr")
    remote_in = MaskStore.create(s3.url("in.zarr"))
    rng = np.random.default_rng(5)
    mask = np.zeros((160, 128), bool)  # thin random lines with gaps: something to fill
    for _ in range(6):
        y, x = rng.integers(0, 120, 2)
        mask[y:y + 40, x:x + 2] = True
    mask[::9] = False
    for store in (local_in, remote_in):  # one sample, 3x2 shards of 64 (the last rows cut)
        store.write("m0", {"mask": mask}, {"source": "m0"})
    out = location.join(remote_in.path.rsplit("/", 1)[0], "out.zarr")
    code, _, err = _cli(monkeypatch, capsys, "infer", remote_in.path, "--model", ckpt, "--out", out,
                        "--tile", "64", "--shard", "64", "--threshold", "0.4878", "--json")
    assert code == 0, err
    run_job([tmp_path / "in.zarr"], ckpt, tmp_path / "out.zarr",
            InferConfig(tile=64, batch=1, threshold=0.4878), JobConfig(shard=64))
    # the same bytes; attrs differ only in where the input came from
    _same_store(MaskStore.open(out), MaskStore.open(tmp_path / "out.zarr"), skip_attrs=("inference",))
    previews = out[: -len(".zarr")] + ".previews"
    assert location.list_names(previews) == ["m0.png"]
    assert not list((tmp_path / "work-cache").glob("*/*"))  # the local work folder is gone
    # the output's objects are whole shards (one per 64 x 64 shard) and metadata
    fs, path = location.fs_path(out)
    assert len([k for k in fs.find(path) if "/mask/c/" in k]) == 3 * 2


@pytest.mark.parametrize("case", ["no-bucket", "no-store", "bad-scheme"])
def test_bad_urls_are_one_line_errors(s3, monkeypatch, capsys, ckpt, case):
    missing_bucket = "s3://no-such-bucket-dp/x.zarr"
    args = {
        "no-bucket": ["synth", "roads", "--size", "64", "64", "--out", missing_bucket],
        "no-store": ["infer", s3.url("missing.zarr"), "--model", ckpt, "--out", s3.url("o.zarr")],
        "bad-scheme": ["synth", "roads", "--size", "64", "64", "--out", "nosuch://b/x.zarr"],
    }[case]
    url = {"no-bucket": missing_bucket, "no-store": args[1], "bad-scheme": "nosuch://b/x.zarr"}[case]
    code, _, err = _cli(monkeypatch, capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and url in lines[0], err


def test_corrupt_evaluate_and_training_data_on_bucket_stores(s3, tmp_path, monkeypatch, capsys):
    from distpaint.train import distributed
    from distpaint.train.config import load_config, packaged_config

    src = s3.url("truth.zarr")
    code, _, err = _cli(monkeypatch, capsys, "synth", "roads", "--size", "256", "256", "--count", "2",
                        "--out", src)
    assert code == 0, err
    corrupted = location.join(src.rsplit("/", 1)[0], "corrupted.zarr")
    for where, out in ((src, corrupted), (str(tmp_path / "local.zarr"), None)):
        if out is None:  # the same masks corrupted locally: the gaps depend only on the seed
            local_src = MaskStore.create(where)
            for name in MaskStore.open(src).names():
                local_src.write(name, {"mask": MaskStore.open(src).array(name)[:]},
                                MaskStore.open(src).attrs(name))
            out = str(tmp_path / "corrupted.zarr")
        code, _, err = _cli(monkeypatch, capsys, "corrupt", where, "--seed", "3", "--out", out)
        assert code == 0, err
    _same_store(MaskStore.open(corrupted), MaskStore.open(tmp_path / "corrupted.zarr"),
                skip_attrs=("source_store",))
    code, _, err = _cli(monkeypatch, capsys, "evaluate", "--pred-store", corrupted, "--truth-store",
                        corrupted, "--json", str(tmp_path / "scores.json"))
    assert code == 0, err
    assert (tmp_path / "scores.json").is_file()
    # training on Ray: --data and --val-data URLs are checked here and passed to the workers as
    # they are (each worker opens them with MaskStore.open, as this check does)
    cfg = load_config(packaged_config("tiny"))
    paths = distributed.resolve_run(tmp_path / "run", distributed.DistributedConfig())
    options = distributed.DistributedConfig(num_workers=1, data=src, val_data=corrupted)
    assert distributed._prepare_data(cfg, paths, options) == (src, corrupted)


def test_training_with_bucket_storage_synthesises_its_data_there(s3):
    from distpaint.train import distributed
    from distpaint.train.config import load_config, packaged_config

    cfg = load_config(packaged_config("tiny"))
    storage = s3.url("runs")
    options = distributed.DistributedConfig(num_workers=1, storage=storage, name="r1")
    paths = distributed.resolve_run(None, options)
    store, val = distributed._prepare_data(cfg, paths, options)  # no --data, no --val-data
    assert (store, val) == (f"{storage}/r1/train.zarr", f"{storage}/r1/val.zarr")
    names = MaskStore.open(store).names()
    assert names and "truth" in MaskStore.open(val).layers(MaskStore.open(val).names()[0])
    # a re-run (a resumed driver) finds them complete and keeps them as they are
    stamp = location.metadata_stamp(location.join(store, names[0]))
    assert distributed._prepare_data(cfg, paths, options) == (store, val)
    assert location.metadata_stamp(location.join(store, names[0])) == stamp


def test_training_on_a_bucket_tracks_on_the_driver_with_artifacts_in_the_bucket(s3, tmp_path, monkeypatch):
    """No --mlflow-uri with --storage s3://: the run's MLflow store is an SQLite file on the
    driver's machine (driver_tracking_uri), its experiment's artifacts under the bucket."""
    import mlflow

    from distpaint.train import distributed
    from distpaint.train.config import load_config, packaged_config
    from distpaint.train.tracking import driver_tracking_uri

    monkeypatch.setenv("DISTPAINT_MLFLOW_CACHE", str(tmp_path / "mlflow"))
    cfg = load_config(packaged_config("tiny"))
    storage = s3.url("runs")
    options = distributed.DistributedConfig(num_workers=1, storage=storage, name="r2")
    paths = distributed.resolve_run(None, options)
    uri, run_id = distributed._start_tracking(cfg, paths, options, 4)
    assert uri == driver_tracking_uri(storage) and uri.startswith(f"sqlite:///{tmp_path / 'mlflow'}")
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.info.artifact_uri.startswith(f"{storage}/mlartifacts")
