"""Integrity of mask stores (distpaint.data.integrity): every array distpaint writes carries a
crc32c per chunk inside its shards and a record of the shards written; corrupt bytes and lost
shard files are InputErrors naming the sample and the shard file, whether read by slicing or
through Dask; shards never written (all background) are not lost ones; inference outputs carry
the same; stores written without checksums or records (older ones) still read.

Real Zarr stores in tmp_path, no mocks. Run: .venv/bin/python -m pytest tests/test_integrity.py -q
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import LocalStore

from distpaint.data.integrity import RECORD_ATTR, written_shards
from distpaint.data.store import FORMAT_ATTR, STORE_FORMAT, MaskStore
from distpaint.errors import InputError


def _mask() -> np.ndarray:
    """9000 x 200: three shards of 4096 rows (the store's default shard side); the last one
    stays background."""
    m = np.zeros((9000, 200), bool)
    m[:8000, 40:43] = True
    m[5000:5003, :] = True
    return m


def _store(tmp_path: pathlib.Path) -> MaskStore:
    store = MaskStore.create(tmp_path / "s.zarr")
    store.write("a", {"mask": _mask()})
    return store


def _shard(tmp_path, y, x) -> pathlib.Path:
    return tmp_path / "s.zarr" / "a" / "mask" / "c" / str(y) / str(x)


def test_written_arrays_carry_crc32c_in_the_shards_and_a_record(tmp_path):
    store = _store(tmp_path)
    meta = json.loads((tmp_path / "s.zarr" / "a" / "mask" / "zarr.json").read_text())
    (sharding,) = meta["codecs"]
    inner = [c["name"] for c in sharding["configuration"]["codecs"]]
    assert inner == ["bytes", "blosc", "crc32c"]
    assert [c["name"] for c in sharding["configuration"]["index_codecs"]][-1] == "crc32c"
    array = store.array("a")
    assert array.shards == (4096, 200) and RECORD_ATTR in meta["attributes"]
    assert written_shards(array.array) == {(0, 0), (1, 0)}
    assert not _shard(tmp_path, 2, 0).exists()  # all background: never written, not lost
    np.testing.assert_array_equal(store.dask("a").compute(), _mask())


def test_flipped_bytes_name_the_sample_and_shard_file(tmp_path):
    store = _store(tmp_path)
    path = _shard(tmp_path, 1, 0)
    data = bytearray(path.read_bytes())
    data[10:74] = bytes(b ^ 0xFF for b in data[10:74])  # 64 bytes of the first chunk
    path.write_bytes(bytes(data))
    line = r"s\.zarr/a/mask/c/1/0: corrupt shard of sample 'a' \(checksum mismatch"
    with pytest.raises(InputError, match=line):
        store.array("a")[4096:5100, 0:100]
    with pytest.raises(InputError, match=line):
        store.dask("a").sum().compute()
    np.testing.assert_array_equal(store.array("a")[:4096], _mask()[:4096])  # others still read


def test_a_truncated_shard_is_named(tmp_path):
    store = _store(tmp_path)
    path = _shard(tmp_path, 0, 0)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(InputError, match=r"s\.zarr/a/mask/c/0/0: corrupt shard of sample 'a'"):
        store.array("a")[0:50, 0:50]


def test_a_lost_shard_is_named_when_opened(tmp_path):
    store = _store(tmp_path)
    _shard(tmp_path, 1, 0).unlink()
    with pytest.raises(InputError, match=r"s\.zarr/a/mask/c/1/0: missing shard of sample 'a': "
                                         r"the store recorded it as written"):
        store.array("a")
    with pytest.raises(InputError, match=r"c/1/0: missing shard"):
        store.dask("a")


def test_inference_outputs_carry_checksums_and_a_record(tmp_path):
    from infer_models import FnFactory

    from distpaint.infer.engine import InferConfig
    from distpaint.infer.job import JobConfig, run_job

    store = MaskStore.create(tmp_path / "in.zarr")
    store.write("a", {"mask": _mask()[4900:5300]})
    run_job([tmp_path / "in.zarr"], FnFactory("dilate3"), tmp_path / "o.zarr",
            InferConfig(keep="all", tile=64, batch=8), JobConfig(shard=128, preview_size=64))
    out = MaskStore.open(tmp_path / "o.zarr")
    for layer in ("mask", "added"):
        meta = json.loads((tmp_path / "o.zarr" / "a" / layer / "zarr.json").read_text())
        assert "crc32c" in json.dumps(meta["codecs"]) and RECORD_ATTR in meta["attributes"]
        out.array("a", layer)
    lost = sorted(p for p in (tmp_path / "o.zarr" / "a" / "mask" / "c").rglob("*") if p.is_file())
    lost[0].unlink()
    with pytest.raises(InputError, match=r"o\.zarr/a/mask/c/\d+/\d+: missing shard of sample"):
        out.array("a")


def test_stores_without_checksums_or_record_still_read(tmp_path):
    """A store as distpaint wrote it before checksums: Blosc only, no record."""
    root = zarr.open_group(LocalStore(tmp_path / "old.zarr"), mode="w", zarr_format=3,
                           attributes={FORMAT_ATTR: STORE_FORMAT})
    sample = root.create_group("a", attributes={"shape": [9000, 200]})
    array = sample.create_array("mask", shape=(9000, 200), chunks=(1024, 200), shards=(4096, 200),
                                dtype=bool, fill_value=False,
                                compressors=[BloscCodec(cname="zstd", clevel=5,
                                                        shuffle="bitshuffle")])
    array[:] = _mask()
    store = MaskStore.open(tmp_path / "old.zarr")
    np.testing.assert_array_equal(store.array("a")[...], _mask())
    np.testing.assert_array_equal(store.dask("a").compute(), _mask())
    # without a record a lost shard cannot be told from an empty one: it reads as background
    (tmp_path / "old.zarr" / "a" / "mask" / "c" / "1" / "0").unlink()
    assert not store.array("a")[4096:8192].any()
