"""Benchmark sets: byte-for-byte determinism, contents, seeds disjoint from training, resume,
refusals and the CLI (tiny sets, real Zarr stores in tmp_path)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from typer.testing import CliRunner

import distpaint.train.data as train_data
from distpaint.cli import app
from distpaint.data.benchset import (
    MARKER_ATTR,
    SYNTH_SEED_OFFSET,
    BenchsetConfig,
    make_benchset,
    open_benchset,
    verify_benchset,
)
from distpaint.data.synth import sample_seeds
from distpaint.errors import ConfigError, InputError
from distpaint.train.config import DataConfig

TINY = BenchsetConfig.small(seed=5, kinds=("roads", "roots"))


def files(root: pathlib.Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> pathlib.Path:
    return make_benchset(tmp_path_factory.mktemp("bench") / "set", TINY, log=lambda _: None).path


def test_same_seed_gives_the_same_files_byte_for_byte(built, tmp_path):
    again = make_benchset(tmp_path / "elsewhere" / "other-name", TINY, log=lambda _: None).path
    a, b = files(built), files(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    # nothing in the metadata depends on where or when it was built
    text = b"".join(v for k, v in a.items() if k.endswith(".json"))
    assert str(built).encode() not in text and b".tmp-" not in text and b".partial" not in text
    assert not any(name.startswith(".") or "/." in name for name in a)
    other = make_benchset(tmp_path / "seed6", BenchsetConfig.small(seed=6, kinds=("roads", "roots")),
                          log=lambda _: None)
    assert other.digest != open_benchset(built).digest


def test_layout_layers_and_contents(built):
    bench = open_benchset(built)
    assert bench.levels() == ["patch", "whole"] and bench.kinds("patch") == ["roots", "roads"]
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["config"] == TINY.to_dict() and manifest["gap_config"]["kind"] == "mix"
    for level, side in (("patch", 256), ("whole", TINY.whole_size)):
        for kind in ("roads", "roots"):
            store = bench.store(level, kind)
            count = TINY.patches if level == "patch" else TINY.whole_count
            assert store.names() == [f"{kind}-{i:04d}" for i in range(count)]
            assert manifest["sets"][level][kind]["samples"] == count
            for name in store.names():
                assert store.layers(name) == ["gaps", "mask", "truth"]
                inp, gaps, truth = (np.asarray(store.array(name, layer)[...])
                                    for layer in ("mask", "gaps", "truth"))
                assert inp.shape == (side, side)
                np.testing.assert_array_equal(inp, truth & ~gaps)  # M is exactly what was removed
                assert not (gaps & ~truth).any() and gaps.any()
                attrs = store.attrs(name)
                assert attrs["kind"] == kind and attrs["source_seed"] >= SYNTH_SEED_OFFSET
                if level == "patch":
                    assert truth.mean() >= TINY.min_foreground
    marker = json.loads((built / "whole" / "roads.zarr" / "zarr.json").read_text())
    assert marker["attributes"][MARKER_ATTR]["level"] == "whole"
    assert verify_benchset(built) == []


def test_training_synth_seeds_are_below_the_benchmark_offset(monkeypatch):
    """Every mask training synthesises has a synth seed < 2**32; benchmark masks >= 2**32, so
    their geometry generators are seeded differently (see distpaint.data.benchset)."""
    seen: list[int] = []
    real = train_data.synth_array

    def spy(kind, shape, seed, config=None):
        seen.append(int(seed))
        return real(kind, shape, seed, config)

    monkeypatch.setattr(train_data, "synth_array", spy)
    for seed in (0, 2**40 + 3):  # a huge training seed too
        data = train_data.LocalData(DataConfig(kind="all", mask_size=64, patch_size=32, n_masks=4,
                                               batch_size=2, refresh_every=10), seed, "gan-gl-m")
        data.pool_for(0), data.pool_for(25), data.real_pool_for(0)
    assert len(seen) >= 24 and max(seen) < SYNTH_SEED_OFFSET
    assert max(sample_seeds(2**40, 50)) < SYNTH_SEED_OFFSET  # `distpaint synth` stores


def test_interrupted_build_resumes_to_identical_files(built, tmp_path):
    class Stop(Exception):
        pass

    def stop_after_first(line: str) -> None:
        if line.startswith("patch/roots"):
            raise Stop

    out = tmp_path / "set"
    with pytest.raises(Stop):
        make_benchset(out, TINY, log=stop_after_first)
    assert not out.exists() and (tmp_path / ".set.partial" / "patch" / "roots.zarr").is_dir()
    make_benchset(out, TINY, log=lambda _: None)
    assert files(out) == files(built)
    assert not (tmp_path / ".set.partial").exists()
    # a second make with the same options keeps the set
    make_benchset(out, TINY, log=lambda _: None)
    assert files(out) == files(built)


def test_refusals_and_verify(built, tmp_path):
    with pytest.raises(InputError, match="other options .*seed: 5 there, 9 asked"):
        make_benchset(built, BenchsetConfig.small(seed=9, kinds=("roads", "roots")))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(InputError, match="not a benchmark set"):
        make_benchset(tmp_path / "busy", TINY)
    with pytest.raises(InputError, match="no manifest.json"):
        open_benchset(tmp_path / "busy")
    for bad in ({"patches": -1}, {"kinds": ("trees",)}, {"whole_size": 32},
                {"min_foreground": 0.0}, {"patch_size": 2048}, {"patches": 0, "whole_count": 0}):
        with pytest.raises(ConfigError):
            BenchsetConfig(**bad)
    with pytest.raises(ConfigError, match="too few patches"):
        make_benchset(tmp_path / "empty", BenchsetConfig(
            kinds=("roots",), patches=1, patch_source_size=256, min_foreground=0.9,
            whole_count=0), log=lambda _: None)
    copy = tmp_path / "copy"
    make_benchset(copy, TINY, log=lambda _: None)
    chunk = next((copy / "patch" / "roads.zarr" / "roads-0002" / "gaps" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"\0")
    assert verify_benchset(copy) == ["patch/roads"]


def test_cli_make_and_verify(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    made = runner.invoke(app, ["benchset", "make", "--out", str(out), "--seed", "5", "--small",
                               "--kind", "roads", "--kind", "roots"])
    assert made.exit_code == 0, made.output
    assert "patch" in made.output and "roads" in made.output
    assert BenchsetConfig.from_dict(json.loads((out / "manifest.json").read_text())["config"]) == TINY
    checked = runner.invoke(app, ["benchset", "verify", str(out)])
    assert checked.exit_code == 0 and "all stores match" in checked.output
    bad = runner.invoke(app, ["benchset", "make", "--out", str(out), "--seed", "1", "--small"])
    assert bad.exit_code != 0 and isinstance(bad.exception, InputError)
