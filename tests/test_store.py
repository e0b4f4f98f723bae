"""Tests of the Zarr v3 mask store: layout, round trips, laziness, atomic writes, memory.

Run: .venv/bin/python -m pytest tests/test_store.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from distpaint.data.store import FORMAT_ATTR, STORE_FORMAT, MaskStore, layout, shard_blocks
from distpaint.errors import ConfigError, InputError


def _lines(shape, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    mask[rng.integers(0, shape[0], 12), :] = True
    mask[:, rng.integers(0, shape[1], 12)] = True
    return mask


@pytest.fixture
def store(tmp_path):
    return MaskStore.create(tmp_path / "masks.zarr")


def test_create_records_format_and_open_reads_it(tmp_path):
    MaskStore.create(tmp_path / "s.zarr")
    meta = json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["node_type"] == "group"
    assert meta["attributes"][FORMAT_ATTR] == STORE_FORMAT
    opened = MaskStore.open(tmp_path / "s.zarr")
    assert opened.names() == [] and opened.mode == "r"


def test_open_rejects_what_is_not_a_store(tmp_path):
    with pytest.raises(InputError, match="missing.zarr"):
        MaskStore.open(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="plain.*not a distpaint mask store"):
        MaskStore.open(tmp_path / "plain")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=3)
    with pytest.raises(InputError, match="other.zarr.*no 'distpaint_store'"):
        MaskStore.open(tmp_path / "other.zarr")
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.zarr"):
        MaskStore.open(tmp_path / "bad.zarr")


def test_create_existing(tmp_path):
    MaskStore.create(tmp_path / "s.zarr")
    with pytest.raises(InputError, match="already exists"):
        MaskStore.create(tmp_path / "s.zarr")
    assert MaskStore.create(tmp_path / "s.zarr", exist_ok=True).mode == "a"
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="file.txt"):
        MaskStore.create(tmp_path / "file.txt", exist_ok=True)


@pytest.mark.parametrize(
    ("shape", "chunks", "expected"),
    [
        ((20000, 3000), 1024, ((1024, 1024), (4096, 3072))),
        ((300, 5000), 1024, ((300, 1024), (300, 4096))),
        ((256, 256), 1024, ((256, 256), (256, 256))),
        ((9000, 9000), 8192, ((8192, 8192), (8192, 8192))),
        ((9000, 9000), 1000, ((1000, 1000), (4000, 4000))),
    ],
)
def test_layout_shards_are_chunk_multiples_clipped_to_array(shape, chunks, expected):
    chunk, shard = layout(shape, chunks)
    assert (chunk, shard) == expected
    assert all(s % c == 0 for s, c in zip(shard, chunk))
    covered = np.zeros(shape, np.uint8)
    for block in shard_blocks(shape, shard):
        covered[block] += 1
    assert (covered == 1).all()


def test_round_trip_numpy_and_layout_on_disk(store):
    mask = _lines((2500, 1800))
    store.write("a", {"mask": mask, "truth": mask | _lines((2500, 1800), 1)}, {"kind": "roads"})
    assert store.names() == ["a"] and "a" in store
    assert store.layers("a") == ["mask", "truth"]
    assert store.shape("a") == (2500, 1800)
    assert store.attrs("a") == {"kind": "roads", "shape": [2500, 1800]}
    arr = store.array("a")
    assert arr.dtype == bool and arr.chunks == (1024, 1024) and arr.shards == (3072, 2048)
    # sharding keeps files few: one shard file for this whole layer
    assert len(list((store.path / "a" / "mask").rglob("c/*/*"))) == 1
    np.testing.assert_array_equal(arr[:], mask)
    np.testing.assert_array_equal(arr[100:356, 700:956], mask[100:356, 700:956])
    codec, checksum = arr.compressors  # every chunk's crc32c last (distpaint.data.integrity)
    assert (codec.cname.value, codec.shuffle.value) == ("zstd", "bitshuffle")
    assert type(checksum).__name__ == "Crc32cCodec"
    reopened = MaskStore.open(store.path)
    truth = store.array("a", "truth")[:]
    np.testing.assert_array_equal(reopened.dask("a", "truth").compute(), truth)


def test_array_is_read_only(store):
    store.write("a", {"mask": _lines((300, 300))})
    with pytest.raises(ValueError, match="read-only"):
        store.array("a")[0, 0] = True
    reader = MaskStore.open(store.path)
    with pytest.raises(InputError, match="read-only"):
        reader.write("b", {"mask": _lines((300, 300))})


def test_dask_input_streams_to_same_pixels_and_non_bool_is_binarised(store):
    mask = _lines((5000, 4500))
    lazy = da.from_array(mask.astype(np.uint8) * 255, chunks=700)  # chunks not shard-aligned
    store.write("d", {"mask": lazy, "gaps": ~da.from_array(mask, chunks=1000)}, chunks=512)
    assert store.array("d").chunks == (512, 512)
    np.testing.assert_array_equal(store.array("d")[:], mask)
    np.testing.assert_array_equal(store.array("d", "gaps")[:], ~mask)


def test_dask_view_is_lazy(store):
    store.write("a", {"mask": _lines((3000, 2100))})
    lazy = store.dask("a")
    assert lazy.shape == (3000, 2100) and lazy.dtype == bool
    assert lazy.chunks == ((1024, 1024, 952), (1024, 1024, 52))
    patch = lazy[10:20, 1030:1040]
    (optimised,) = dask.optimize(patch)
    # a small slice touches one zarr chunk: the graph reads nothing else
    assert len(dict(optimised.__dask_graph__())) <= 2
    np.testing.assert_array_equal(patch.compute(), _lines((3000, 2100))[10:20, 1030:1040])


def test_bad_layers(store):
    with pytest.raises(ConfigError, match="'mask'"):
        store.write("a", {"truth": _lines((300, 300))})
    with pytest.raises(InputError, match="differ in shape"):
        store.write("a", {"mask": _lines((300, 300)), "gaps": _lines((300, 301))})
    with pytest.raises(InputError, match="2-D"):
        store.write("a", {"mask": np.zeros((3, 300, 300), bool)})
    with pytest.raises(InputError, match="non-empty"):
        store.write("a", {"mask": np.zeros((0, 300), bool)})
    for bad in (".hidden", "a/b", "__x", ""):
        with pytest.raises(ConfigError, match="invalid sample name"):
            store.write(bad, {"mask": _lines((300, 300))})
    with pytest.raises(InputError, match="no sample 'zz'"):
        store.array("zz")
    assert store.names() == []


def _failing(mask, bad_block):
    def fn(block, block_id=None):
        if block_id == bad_block:
            raise RuntimeError("disk on fire")
        return block

    return da.from_array(mask, chunks=1024).map_blocks(fn, dtype=bool)


def test_failed_write_leaves_nothing(store):
    mask = _lines((5000, 5000))
    # the failing block is in the last shard: earlier shards were already written
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.write("a", {"mask": da.from_array(mask, chunks=1024), "gaps": _failing(mask, (4, 4))})
    assert store.names() == []
    assert sorted(os.listdir(store.path)) == ["zarr.json"]


def test_a_killed_write_leaves_only_hidden_leftovers_that_the_next_write_removes(store):
    # SIGKILL in the middle of streaming: no cleanup code runs, as when a machine dies
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        import distpaint.data.store as st
        def die(layers, targets):
            next(iter(targets.values()))[0:8, 0:8] = True   # some pixels are on disk
            os.kill(os.getpid(), signal.SIGKILL)
        st.stream_to_zarr = die
        st.MaskStore.open({str(store.path)!r}, mode="a").write("a", {{"mask": np.ones((64, 64), bool)}})
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -9
    leftovers = [n for n in os.listdir(store.path) if n != "zarr.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-a-")
    assert store.names() == []                      # readers never see it
    store.write("ab", {"mask": _lines((64, 64))})   # another sample's write leaves it alone
    assert leftovers[0] in os.listdir(store.path)
    store.write("a", {"mask": _lines((64, 64))})    # re-running the killed write cleans up
    assert sorted(os.listdir(store.path)) == ["a", "ab", "zarr.json"]


def test_overwrite(store):
    old, new = _lines((400, 400), 0), _lines((600, 300), 1)
    store.write("a", {"mask": old}, {"v": 1})
    with pytest.raises(InputError, match="already exists"):
        store.write("a", {"mask": new})
    with pytest.raises(RuntimeError):  # a failed overwrite keeps the old sample intact
        store.write("a", {"mask": _failing(new, (0, 0))}, overwrite=True)
    np.testing.assert_array_equal(store.array("a")[:], old)
    store.write("a", {"mask": new}, {"v": 2}, overwrite=True)
    np.testing.assert_array_equal(store.array("a")[:], new)
    assert store.attrs("a")["v"] == 2 and store.shape("a") == (600, 300)
    assert sorted(os.listdir(store.path)) == ["a", "zarr.json"]
    store.delete("a")
    assert store.names() == [] and sorted(os.listdir(store.path)) == ["zarr.json"]


def test_attrs_must_be_json(store):
    store.write("a", {"mask": _lines((300, 300))}, {"seed": np.int64(3), "shape_in": (1, 2)})
    assert store.attrs("a")["seed"] == 3 and store.attrs("a")["shape_in"] == [1, 2]
    with pytest.raises(ConfigError, match="JSON"):
        store.write("b", {"mask": _lines((300, 300))}, {"bad": object()})
    assert store.names() == ["a"]


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import dask.array as da, numpy as np
    from distpaint.data.store import MaskStore

    def lines(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        out = np.zeros((y1 - y0, x1 - x0), bool)
        out[np.arange(y0, y1) % 97 == 0, :] = True
        out[:, np.arange(x0, x1) % 131 == 0] = True
        return out

    def synthetic(n):
        return da.map_blocks(lines, chunks=((1024,) * (n // 1024),) * 2, dtype=bool)

    store = MaskStore.create(sys.argv[1])
    store.write("warm", {"mask": synthetic(4096)})  # imports, thread pools, allocator warm
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    big = synthetic(16384)
    store.write("big", {"mask": big, "gaps": ~big})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ok = bool(store.array("big")[9700, ::131].all()) and not store.array("big", "gaps")[97].any()
    print(peak - base, ok)  # KiB
    """
)


def test_write_of_16k_dask_mask_streams_in_bounded_memory(tmp_path):
    """Two 16384x16384 bool layers are 512 MiB in memory; streaming shard by shard must
    stay far below one layer (256 MiB)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path / "big.zarr")],
        capture_output=True, text=True, timeout=120, check=True,
    )
    grew_kib, ok = out.stdout.split()
    assert ok == "True"
    assert int(grew_kib) < 200 * 1024, f"peak RSS grew by {int(grew_kib) // 1024} MiB"
