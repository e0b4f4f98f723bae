"""A simulated multi-node cluster (`ray.cluster_utils.Cluster`): two worker nodes with one
training worker each, the re-composer actor on a third node (the head), a short distributed
run that joins the cluster through RAY_ADDRESS (as inside `ray job submit`), checkpoints, and
whose ranks agree bitwise.

The cluster runs in a subprocess (this file's `__main__`), so it never collides with the
session's shared local Ray (`ray_local`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cost(50)  # seconds on 2 idle cores: started first by `make test`

STEPS = 4
MB = 1024 * 1024


def scenario(out: Path) -> dict:
    """Start the cluster, train, return what the test checks."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    import ray
    import yaml
    from ray.cluster_utils import Cluster

    from distpaint.train.config import config_from_dict, packaged_config
    from distpaint.train.distributed import DistributedConfig, train_distributed

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "resources": {"recomposer_node": 1}, "object_store_memory": 100 * MB,
        "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1, resources={"trainer_slot": 1}, object_store_memory=100 * MB)
               for _ in range(2)]
    try:
        cluster.wait_for_nodes()
        os.environ["RAY_ADDRESS"] = cluster.address  # the driver joins it, as inside `ray job submit`
        data = yaml.safe_load(packaged_config("tiny").read_text())
        data.update(checkpoint_every=2, log_every=2)
        summary = train_distributed(config_from_dict(data), out, max_steps=STEPS, options=DistributedConfig(
            num_workers=2, worker_resources={"trainer_slot": 1}, actor_resources={"recomposer_node": 1},
            val_data="none"))
        return {"summary": summary, "head": cluster.head_node.node_id,
                "workers": [n.node_id for n in workers], "joined": ray.is_initialized()}
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_workers_on_two_nodes_actor_on_a_third(tmp_path):
    out = tmp_path / "cluster-run"
    proc = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["joined"]  # joined RAY_ADDRESS's cluster (a private local Ray would be shut down)
    assert found["summary"]["step"] == STEPS
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]
    r0, r1 = (json.loads((out / "workers" / f"rank_{r}.json").read_text()) for r in (0, 1))
    assert {r0["node_id"], r1["node_id"]} == set(found["workers"])  # one worker per worker node
    assert r0["recomposer_node"] == r1["recomposer_node"] == found["head"]  # the actor on the third node
    assert found["head"] not in found["workers"]
    assert r0["digests"] == r1["digests"] and r0["rewards"] == r1["rewards"]
    assert len(r0["rewards"]) == STEPS


if __name__ == "__main__":
    print(json.dumps(scenario(Path(sys.argv[1])), default=str))
