"""`distpaint infer --ray`: Ray Data spreads whole-shard descriptors over an actor pool that reads
and writes Zarr directly. The Ray path equals the function on the whole image (trivial models,
MONAI style), each shard is written once, by one actor; a bad file is reported and skipped; and a
real SIGKILL of `distpaint infer --ray` followed by the same command gives the bytes of an
uninterrupted run.

Run: .venv/bin/python -m pytest tests/test_infer_ray.py -q
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import ray.cloudpickle

import infer_models
from distpaint.data.files import read_raw, write_mask_file
from distpaint.data.store import MaskStore
from distpaint.data.synth import synth_array
from distpaint.infer.engine import InferConfig
from distpaint.infer.job import JobConfig, run_job
from infer_models import FnFactory, whole_reference

pytestmark = pytest.mark.cost(75)  # seconds on 2 idle cores: started first by `make test`

ROOT = Path(__file__).resolve().parents[1]
DISTPAINT = str(ROOT / ".venv" / "bin" / "distpaint")

# the actors build the trivial models: ship their module by value (workers do not see tests/)
ray.cloudpickle.register_pickle_by_value(infer_models)


def _mask(shape, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < 0.15
    mask[:, int(shape[1] * 0.6):] = False
    return mask


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_ray_actor_pool_equals_the_function_on_whole_images(tmp_path, ray_local):
    store = MaskStore.create(tmp_path / "arch.zarr")
    masks = {"s1": _mask((200, 150), 1), "s2": _mask((90, 260), 2)}
    for name, m in masks.items():
        store.write(name, {"mask": m})
    (tmp_path / "files").mkdir()
    masks["f.png"] = _mask((130, 170), 3)
    write_mask_file(tmp_path / "files" / "f.png", masks["f.png"])
    np.save(tmp_path / "files" / "grey.npy", np.random.default_rng(0).random((40, 40)))
    # with test-time refinements: the actors build the refined predictor from the settings
    infer = InferConfig(keep="all", tile=32, threshold=0.2, batch=2, views=2, passes=2)
    report = run_job([tmp_path / "arch.zarr", tmp_path / "files"], FnFactory("fires_on_empty"),
                     tmp_path / "out", infer, JobConfig(ray=True, shard=64, workers=2))
    assert len(report.done) == 3
    ((bad, message),) = report.failed
    assert bad.endswith("grey.npy") and "not a binary mask" in message
    out = MaskStore.open(tmp_path / "out" / "arch.zarr")
    for name in ("s1", "s2"):
        want = whole_reference(masks[name], "fires_on_empty", threshold=0.2, views=2, passes=2)
        np.testing.assert_array_equal(out.array(name)[:], want)
        np.testing.assert_array_equal(out.array(name, "added")[:], want & ~masks[name])
    got = np.asarray(read_raw(tmp_path / "out" / "f.png")[0].compute()) != 0
    np.testing.assert_array_equal(got, whole_reference(masks["f.png"], "fires_on_empty", 0.2,
                                                       views=2, passes=2))
    # the work folder is kept (one mask failed): its manifest shows every shard written once,
    # by actors (one manifest file each), none by the driver
    records = [json.loads(line) for f in (Path(report.work_dir) / "manifest").glob("*.jsonl")
               for line in f.read_text().splitlines()]
    shards = [(r["uid"], tuple(r["shard"])) for r in records if "shard" in r]
    assert len(shards) == len(set(shards)) == 12 + 10 + 9  # 64-px shards of 200x150, 90x260, 130x170
    writers = {f.name for f in (Path(report.work_dir) / "manifest").glob("*.jsonl")
               if any("shard" in json.loads(x) for x in f.read_text().splitlines())}
    assert len(writers) == 2


def _manifest_shards(manifest: Path) -> int:
    if not manifest.is_dir():
        return 0
    return sum('"shard"' in line for f in manifest.glob("*.jsonl")
               for line in f.read_text().splitlines())


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return infer_models.tiny_checkpoint_dir(tmp_path_factory.getbasetemp())


def test_sigkill_of_a_ray_job_then_rerun_gives_the_uninterrupted_bytes(tmp_path, ckpt):
    (tmp_path / "in").mkdir()
    for i in range(4):
        write_mask_file(tmp_path / "in" / f"m{i}.png", synth_array("roads", (512, 384), 20 + i))
    args = ["infer", "in", "--model", ckpt, "--out", "run", "--tile", "128", "--shard", "128",
            "--threshold", "0.4878", "--ray", "--json"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([DISTPAINT, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    manifest = tmp_path / "run" / ".distpaint-infer" / "manifest"
    deadline = time.monotonic() + 240
    while _manifest_shards(manifest) < 6:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shards written in 240 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, its local Ray and the actors
    proc.wait()
    killed_at = _manifest_shards(manifest)
    assert killed_at < 4 * 12  # 12 shards per mask: killed part-way
    again = subprocess.run([DISTPAINT, *args], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert len(report["done"]) == 4 and sum(r["resumed_shards"] for r in report["done"]) >= 6
    run_job([tmp_path / "in"], ckpt, tmp_path / "ref",
            InferConfig(tile=128, batch=1, threshold=0.4878), JobConfig(shard=128))
    ref = _files(tmp_path / "ref")
    assert len(ref) == 12 and _files(tmp_path / "run") == ref
    # the Ray path (actors with one torch thread each) wrote what the local path writes
