"""The store-writing commands that test_object_store.py does not cover, on object storage: each
runs once into a bucket of the real S3-compatible server (the session fixture `s3` of
conftest.py) and once into a local folder, and the two results are equal, array by array
(decoded bytes) and attribute by attribute: `ingest` (files and a bucket store in, a bucket
store out), `rasterize` (an SVG drawing into a bucket store), `benchset make` (the same files,
so the same manifest digests, and `benchset verify` of the bucket), `baseline` (bucket store to
bucket store, both layouts) and the real benchmark's build (`build_real`, the function behind
`realdata build`, on a fake package catalogue). Masks are tiny.

Run: .venv/bin/python -m pytest tests/test_object_store_commands.py -q
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from distpaint.data import location
from distpaint.data.files import write_mask_file
from distpaint.data.store import MaskStore

from test_object_store import _cli, _same_store


def _lines(seed: int, shape=(96, 80)) -> np.ndarray:
    """Thin random strokes with a few gaps: something for every command to work on."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    for _ in range(5):
        y, x = rng.integers(0, shape[0] - 30), rng.integers(0, shape[1] - 3)
        mask[y:y + 30, x:x + 2] = True
    mask[::11] = False
    return mask


def test_ingest_files_and_a_bucket_store_into_a_bucket(s3, tmp_path, monkeypatch, capsys):
    for i in range(2):
        write_mask_file(tmp_path / f"scan{i}.png", _lines(i))
    url = s3.url("masks.zarr")
    for out in (url, str(tmp_path / "masks.zarr")):
        code, _, err = _cli(monkeypatch, capsys, "ingest", str(tmp_path / "scan0.png"),
                            str(tmp_path / "scan1.png"), "--out", out)
        assert code == 0, err
    _same_store(MaskStore.open(url), MaskStore.open(tmp_path / "masks.zarr"))
    assert not [n for n in location.list_names(url) if n.startswith(".")]
    # a store in the bucket as a source: the same samples as from its local twin, with the same
    # checksum of the sample's objects; only the recorded source differs
    again = s3.url("again.zarr")
    for src, out in ((url, again), (str(tmp_path / "masks.zarr"), str(tmp_path / "again.zarr"))):
        code, _, err = _cli(monkeypatch, capsys, "ingest", src, "--out", out)
        assert code == 0, err
    _same_store(MaskStore.open(again), MaskStore.open(tmp_path / "again.zarr"), skip_attrs=("source",))
    assert MaskStore.open(again).attrs("scan0")["source"] == f"{url}/scan0"
    # a bad source into a new bucket store leaves nothing there; a missing bucket is one line
    failed = s3.url("failed.zarr")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    code, _, err = _cli(monkeypatch, capsys, "ingest", str(tmp_path / "bad.png"), "--out", failed)
    assert code == 2 and "bad.png" in err and not location.exists(failed)
    code, _, err = _cli(monkeypatch, capsys, "ingest", str(tmp_path / "scan0.png"), "--out",
                        "s3://no-such-bucket-dp/x.zarr")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no-such-bucket-dp" in err, err


SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30" viewBox="0 0 40 30">
  <path d="M 2 4 C 10 4 12 20 20 20 L 38 20" stroke="black" stroke-width="1.5" fill="none"/>
  <path d="M 30 2 L 30 28" stroke="black" stroke-width="1" fill="none"/>
</svg>
"""


def test_rasterize_into_a_bucket(s3, tmp_path, monkeypatch, capsys):
    (tmp_path / "drawing.svg").write_text(SVG)
    url = s3.url("drawings.zarr")
    for out in (url, str(tmp_path / "drawings.zarr")):
        code, _, err = _cli(monkeypatch, capsys, "rasterize", str(tmp_path / "drawing.svg"),
                            "--out", out, "--px-per-unit", "3", "--chunks", "64")
        assert code == 0, err
    _same_store(MaskStore.open(url), MaskStore.open(tmp_path / "drawings.zarr"))
    assert MaskStore.open(url).array("drawing")[:].any()


def test_benchset_in_a_bucket_is_the_local_set_byte_for_byte(s3, tmp_path, monkeypatch, capsys):
    url = s3.url("bench")
    args = ["--seed", "1", "--small", "--kind", "roads", "--patches", "2", "--whole-size", "128"]
    for out in (url, str(tmp_path / "bench")):
        code, _, err = _cli(monkeypatch, capsys, "benchset", "make", "--out", out, *args)
        assert code == 0, err
    local = json.loads((tmp_path / "bench" / "manifest.json").read_text())
    remote = json.loads(location.read_bytes(location.join(url, "manifest.json")))
    assert remote == local  # digests included: every object is the local file's bytes
    for level in ("patch", "whole"):
        _same_store(MaskStore.open(location.join(url, level, "roads.zarr")),
                    MaskStore.open(tmp_path / "bench" / level / "roads.zarr"))
    assert location.list_names(url) == ["manifest.json", "patch", "whole"]  # no build marker
    code, out, err = _cli(monkeypatch, capsys, "benchset", "verify", url)
    assert code == 0 and "all stores match" in out, err
    # the same command again keeps the set; a changed object is found by verify
    code, out, _ = _cli(monkeypatch, capsys, "benchset", "make", "--out", url, *args)
    assert code == 0 and "already built" in out
    sample = location.join(url, "whole", "roads.zarr", "roads-0000", "zarr.json")
    location.write_bytes(sample, location.read_bytes(sample).replace(b'"whole"', b'"Whole"'))
    code, _, err = _cli(monkeypatch, capsys, "benchset", "verify", url)
    assert code == 2 and "whole/roads" in err


def test_baseline_from_bucket_to_bucket_equals_the_local_run(s3, tmp_path, monkeypatch, capsys):
    src, local_src = s3.url("corrupted.zarr"), MaskStore.create(tmp_path / "corrupted.zarr")
    remote_src = MaskStore.create(src)
    for store in (remote_src, local_src):
        for i in range(2):
            truth = _lines(10 + i)
            gaps = truth & (np.arange(truth.shape[0])[:, None] % 7 == 3)
            store.write(f"m{i}", {"mask": truth & ~gaps, "gaps": gaps, "truth": truth},
                        {"source": f"m{i}"})  # one chunk a layer: few requests
    # one store to a .zarr: the evaluation layout (repair_store)
    out = location.join(src.rsplit("/", 1)[0], "closed.zarr")
    for where, target in ((src, out), (str(tmp_path / "corrupted.zarr"), str(tmp_path / "closed.zarr"))):
        code, _, err = _cli(monkeypatch, capsys, "baseline", "closing", where, "--out", target,
                            "--radius", "2")
        assert code == 0, err
    _same_store(MaskStore.open(out), MaskStore.open(tmp_path / "closed.zarr"),
                skip_attrs=("baseline_source",))
    assert MaskStore.open(out).layers("m0") == ["gaps", "mask", "truth"]
    # into a folder of stores: infer's job layout (repaired mask and added pixels)
    folder = location.join(src.rsplit("/", 1)[0], "linked")
    for where, target in ((src, folder), (str(tmp_path / "corrupted.zarr"), str(tmp_path / "linked"))):
        code, _, err = _cli(monkeypatch, capsys, "baseline", "linking", where, "--out", target)
        assert code == 0, err
    _same_store(MaskStore.open(location.join(folder, "corrupted.zarr")),
                MaskStore.open(tmp_path / "linked" / "corrupted.zarr"), skip_attrs=("inference",))
    # the output must not be the source
    code, _, err = _cli(monkeypatch, capsys, "baseline", "closing", src, "--out", src)
    assert code == 2 and "must differ from the source" in err


def test_real_benchmark_built_into_a_bucket(s3, tmp_path):
    from distpaint.data.real.build import RealConfig, build_real, open_real
    from distpaint.data.real.catalogue import Render, Source

    from test_realdata import GLYPH, _fake_package

    cache = tmp_path / "cache"
    _fake_package(cache, "npm/feather-icons", {f"icons/g{i}.svg": GLYPH for i in range(4)})
    sources = (Source("icons", "drawings", "train", "npm/feather-icons", "glyphs", "icons",
                      renders=(Render("thin", px_per_unit=4.0, width=2.0),), glyphs=(0, 2),
                      sheet=2, options={"all_files": True}),
               Source("more", "drawings", "test", "npm/feather-icons", "glyphs", "icons",
                      renders=(Render("thin", px_per_unit=4.0, width=2.0),), glyphs=(2, 2),
                      sheet=2, options={"all_files": True}))
    url = s3.url("real")
    config = RealConfig(seed=2, crop=256, kinds=("drawings",), splits=("train", "test"))
    remote = build_real(cache, url, config, log=lambda line: None, catalogue=sources)
    local = build_real(cache, tmp_path / "real", config, log=lambda line: None, catalogue=sources)
    assert remote.manifest == local.manifest  # digests included
    assert open_real(url).manifest == local.manifest
    for level in ("test", "test-mix"):
        _same_store(remote.store(level, "drawings"), local.store(level, "drawings"))
    _same_store(MaskStore.open(remote.train_store("drawings")),
                MaskStore.open(local.train_store("drawings")))


def test_a_missing_bucket_or_bad_url_is_one_line_for_every_command(s3, tmp_path, monkeypatch, capsys):
    (tmp_path / "d.svg").write_text(SVG)
    MaskStore.create(tmp_path / "s.zarr").write("a", {"mask": _lines(0)})
    for url in ("s3://no-such-bucket-dp/x.zarr", "nosuch://b/x.zarr"):
        for args in (["benchset", "make", "--out", url, "--small", "--kind", "roads"],
                     ["benchset", "verify", url],
                     ["rasterize", str(tmp_path / "d.svg"), "--out", url],
                     ["baseline", "closing", str(tmp_path / "s.zarr"), "--out", url],
                     ["baseline", "closing", url, "--out", str(tmp_path / "o.zarr")],
                     ["ingest", url, "--out", str(tmp_path / "o.zarr")],
                     ["realdata", "build", "--out", url, "--cache", str(tmp_path), "--split", "train"]):
            code, _, err = _cli(monkeypatch, capsys, *args)
            lines = err.strip().splitlines()
            assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (args, err)
            assert url.split("/")[2] in lines[0] or url in lines[0], (args, err)
    assert not (tmp_path / "o.zarr").exists()
