"""Capacity checks that know the autoscaler (issue 28 item 5, `distpaint.capacity`), against the
session's real local Ray (2 CPUs, no GPU):

- a private instance has no autoscaler: the checks of training, sweeps and `infer --ray` refuse
  what the instance cannot hold, as before;
- joined as a cluster (RAY_ADDRESS set) whose head holds the cluster config of `ray up`: the file
  the test writes from this repository's cluster.yaml (node types gpu_small x4 {CPU 4, GPU 1} and
  gpu_multi x2 {CPU 48, GPU 4}, at most 6 workers) is read, requests the autoscaler can satisfy
  pass (4 GPU workers, with no GPU up now), pools and sweeps are sized by the most the cluster
  can have, and a request no node type can ever hold is one line saying what is missing.

Run: .venv/bin/python -m pytest tests/test_capacity.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distpaint.capacity import CONFIG_VARIABLE, cluster_capacity, read_node_types
from distpaint.errors import ConfigError, InputError
from distpaint.infer.ray_runner import RayOptions, _pool_size
from distpaint.train.distributed import DistributedConfig, _check_capacity
from distpaint.tune.sweep import SweepConfig, _capacity

ROOT = Path(__file__).resolve().parents[1]


def test_a_private_instance_has_no_autoscaler(ray_local, monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # a config file on this machine is not this private instance's: it never grows
    (tmp_path / "boot.yaml").write_text((ROOT / "cluster.yaml").read_text())
    monkeypatch.setenv(CONFIG_VARIABLE, str(tmp_path / "boot.yaml"))
    capacity = cluster_capacity()
    assert not capacity.autoscaling and capacity.most()["CPU"] == 2
    with pytest.raises(ConfigError, match=r"--num-workers 3 needs 3 CPU but this Ray instance has 2 CPU$"):
        _check_capacity(DistributedConfig(num_workers=3))
    _check_capacity(DistributedConfig(num_workers=2))
    with pytest.raises(ConfigError, match="one worker needs {CPU: 1, GPU: 1} on one node") as bad:
        _check_capacity(DistributedConfig(num_workers=1, use_gpu=True))
    assert "\n" not in str(bad.value)
    with pytest.raises(ConfigError, match="--gpu --ray: the Ray cluster has no GPU now"):
        _pool_size(RayOptions(gpu=True), tasks=8)
    assert _pool_size(RayOptions(cpus_per_worker=1), tasks=8) == 2
    with pytest.raises(ConfigError, match="--cpus-per-worker 3"):
        _pool_size(RayOptions(cpus_per_worker=3), tasks=8)


@pytest.fixture
def joined(ray_local, monkeypatch, tmp_path):
    """This process as a driver on the head of a `ray up` cluster: RAY_ADDRESS set (what `ray
    job submit` gives its jobs) and the head's bootstrap config written from cluster.yaml."""
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    path = tmp_path / "ray_bootstrap_config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("RAY_ADDRESS", ray_local.get_runtime_context().gcs_address)
    monkeypatch.setenv(CONFIG_VARIABLE, str(path))
    return path


def test_the_node_types_of_the_bootstrap_config_are_read(joined):
    types, max_workers = read_node_types(joined)
    assert {t.name: (dict(t.resources), t.max_count) for t in types} == {
        "gpu_small": ({"CPU": 4, "GPU": 1}, 4), "gpu_multi": ({"CPU": 48, "GPU": 4}, 2)}
    assert max_workers == 6
    capacity = cluster_capacity()
    assert capacity.autoscaling and capacity.source == str(joined)
    # at most 6 workers, the richest first: 2 x gpu_multi + 4 x gpu_small, plus what is up now
    assert capacity.most()["GPU"] == 2 * 4 + 4 * 1
    assert capacity.most()["CPU"] == 2 + 2 * 48 + 4 * 4


def test_requests_the_autoscaler_can_satisfy_pass_and_others_say_what_is_missing(joined):
    _check_capacity(DistributedConfig(num_workers=4, use_gpu=True))  # no GPU up now: still fine
    _check_capacity(DistributedConfig(num_workers=8, cpus_per_worker=4, use_gpu=True))
    with pytest.raises(ConfigError) as bad:
        _check_capacity(DistributedConfig(num_workers=16, use_gpu=True))
    message = str(bad.value)
    assert "\n" not in message and message.startswith("--num-workers 16 needs 16 GPU but this Ray "
                                                      "cluster has 0 GPU now and at most 12 GPU")
    assert "gpu_multi x2 {'CPU': 48.0, 'GPU': 4.0}" in message and str(joined) in message
    with pytest.raises(ConfigError, match=r"one worker needs {CPU: 64} on one node, and no node .* "
                                          r"nor any node type its autoscaler can add"):
        _check_capacity(DistributedConfig(num_workers=1, cpus_per_worker=64))
    # sweeps: as many trials at once as the full cluster holds, not one
    assert _capacity(SweepConfig(gpus_per_trial=1), started=False) == 12
    _capacity(SweepConfig(workers_per_trial=8, gpus_per_trial=8), started=False)  # on 2+ nodes
    with pytest.raises(ConfigError, match="a trial needs .* 13 GPU; this Ray cluster has 2 CPU and 0 GPU now "
                                          "and at most 114 CPU and 12 GPU"):
        _capacity(SweepConfig(workers_per_trial=13, gpus_per_trial=13), started=False)
    # infer --ray --gpu: a pool of the GPUs the cluster can have, not "no GPU now"
    assert _pool_size(RayOptions(gpu=True), tasks=100) == 12
    assert _pool_size(RayOptions(gpu=True), tasks=5) == 5
    assert _pool_size(RayOptions(gpu=True, workers=3), tasks=100) == 3


def test_undeclared_resources_and_broken_configs(joined, tmp_path, monkeypatch):
    config = yaml.safe_load(joined.read_text())
    del config["available_node_types"]["gpu_multi"]["resources"]  # detected at launch: unknown
    joined.write_text(yaml.safe_dump(config))
    _check_capacity(DistributedConfig(num_workers=40, use_gpu=True))  # cannot be ruled out
    joined.write_text("cluster_name: x\nprovider: {type: aws}\n")
    with pytest.raises(InputError, match="no available_node_types"):
        cluster_capacity()
