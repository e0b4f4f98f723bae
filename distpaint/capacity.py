"""What a Ray cluster can give a request: its resources now and, on an autoscaling cluster, the
most it can have once the autoscaler has added every node it may. The capacity checks of
training, sweeps and `infer --ray` use it to refuse at once a request that can never be placed
(Ray would wait for it forever) and never one that the autoscaler could satisfy.

Where the node types come from (only when this process joined a cluster: `RAY_ADDRESS`,
`--address` or a `ray job submit` job; a private local instance never grows):

1. the cluster config the autoscaler reports to the GCS (autoscaler v2, KubeRay):
   `ray._private.state.state.get_cluster_config()`, the one Ray Train's own check reads;
2. else the cluster config that `ray up` leaves on the head, `~/ray_bootstrap_config.yaml`
   (`available_node_types` with each type's `resources` and `max_workers`, the cluster's
   `max_workers`), or the file `DISTPAINT_AUTOSCALER_CONFIG` names: the drivers of `ray job
   submit` jobs run on the head, where the file is.

Neither there: the resources of the nodes that are up now are all there is (today's checks).
The most a cluster can have is an upper bound (nodes already up are counted among the ones the
autoscaler may add): a check on it refuses only what no scaling can satisfy.

    capacity = cluster_capacity()           # ray.init() done
    capacity.check([{"CPU": 1, "GPU": 1}] * 4, "--num-workers 4")   # ConfigError if never
    capacity.most()["GPU"]                   # for sizing pools
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from distpaint.errors import ConfigError, InputError
from distpaint.ray_connect import cluster_address

__all__ = ["CONFIG_VARIABLE", "BOOTSTRAP_CONFIG", "NodeType", "Capacity", "cluster_capacity",
           "read_node_types"]

CONFIG_VARIABLE = "DISTPAINT_AUTOSCALER_CONFIG"
"""Names the autoscaler's cluster config file, instead of `BOOTSTRAP_CONFIG`."""
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"
"""Where `ray up` puts the cluster config on the head (what its autoscaler runs with)."""
_EPS = 1e-9


@dataclass(frozen=True)
class NodeType:
    """A kind of node the autoscaler can launch."""

    name: str
    """Its name in the cluster config (`available_node_types`)."""
    resources: Mapping[str, float] | None
    """Resources of one node (None: not declared, detected when the node starts)."""
    max_count: int
    """How many of them the cluster may have (-1: no limit)."""


@dataclass(frozen=True)
class Capacity:
    """A cluster's resources now and what its autoscaler can add."""

    now: Mapping[str, float]
    """`ray.cluster_resources()`: totals over the nodes that are up."""
    nodes: Sequence[Mapping[str, float]]
    """Resources of each node that is up."""
    node_types: Sequence[NodeType] = ()
    """Worker node types the autoscaler can add (empty: no autoscaler known)."""
    max_workers: int | None = None
    """The cluster's cap on worker nodes (None: none)."""
    source: str | None = None
    """Where the node types were read (the GCS or a file), for messages."""
    cap: Mapping[str, float] = field(default_factory=dict)
    """Cluster-wide resource caps of the config (`max_resources`)."""

    @property
    def autoscaling(self) -> bool:
        """Can the cluster grow (node types known)?"""
        return bool(self.node_types)

    def _unknown(self) -> bool:
        return any(t.resources is None and t.max_count != 0 for t in self.node_types)

    def most(self) -> dict[str, float]:
        """The most of each resource the cluster can have: now, plus every node the autoscaler
        may add (at most `max_workers` of them, the richest first for each resource); infinite
        where a node type without declared resources or without a limit could add it."""
        total = dict(self.now)
        if not self.autoscaling:
            return total
        keys = {k for t in self.node_types for k in (t.resources or {})} | set(total)
        for key in keys:
            if self._unknown():
                total[key] = float("inf")
                continue
            slots: list[float] = []
            for t in self.node_types:
                amount = float((t.resources or {}).get(key, 0))
                if amount <= 0 or t.max_count == 0:
                    continue
                if t.max_count < 0:
                    slots.append(float("inf"))
                    continue
                slots += [amount] * min(t.max_count, self.max_workers if self.max_workers is not None else t.max_count)
            slots.sort(reverse=True)
            if self.max_workers is not None:
                slots = slots[: self.max_workers]
            total[key] = min(total.get(key, 0.0) + sum(slots), self.cap.get(key, float("inf")))
        return total

    def fits_one_node(self, bundle: Mapping[str, float]) -> bool:
        """Could one node (up now, or of a type the autoscaler can add) hold `bundle`?"""
        wanted = {k: v for k, v in bundle.items() if v > 0}
        hosts = list(self.nodes) + [t.resources for t in self.node_types
                                    if t.max_count != 0 and t.resources is not None]
        if self._unknown():
            return True
        return any(all(host.get(k, 0) + _EPS >= v for k, v in wanted.items()) for host in hosts)

    def describe(self, keys: Sequence[str]) -> str:
        """'this Ray instance has 2 CPU and 0 GPU', or for an autoscaling cluster what it has now
        and the most it can have, with its node types."""
        def amounts(values: Mapping[str, float]) -> str:
            return " and ".join(f"{values.get(k, 0):g} {k}" for k in keys)

        if not self.autoscaling:
            return f"this Ray instance has {amounts(self.now)}"
        types = ", ".join(f"{t.name} x{t.max_count if t.max_count >= 0 else 'any'} "
                          f"{dict(t.resources) if t.resources is not None else '(resources undeclared)'}"
                          for t in self.node_types)
        cap = f", at most {self.max_workers} workers" if self.max_workers is not None else ""
        return (f"this Ray cluster has {amounts(self.now)} now and at most {amounts(self.most())} "
                f"once its autoscaler has added its nodes ({types}{cap}; from {self.source})")

    def check(self, bundles: Sequence[Mapping[str, float]], what: str) -> None:
        """ConfigError (one line, naming what is missing) unless the cluster now, or once its
        autoscaler has added nodes, can hold every bundle (one per worker or actor), each on one
        node. `what` names the request, e.g. '--num-workers 4'."""
        for bundle in bundles:
            if not self.fits_one_node(bundle):
                shown = {k: v for k, v in bundle.items() if v > 0}
                largest = [dict(n) for n in self.nodes][:4]
                kinds = ", ".join(f"{t.name} {dict(t.resources)}" for t in self.node_types
                                  if t.resources is not None)
                where = (f"nor any node type its autoscaler can add ({kinds})" if self.autoscaling
                         else f"(nodes: {_short(largest)})")
                raise ConfigError(f"{what}: one worker needs {_short([shown])} on one node, and no "
                                  f"node of this Ray cluster has that {where}")
        need: dict[str, float] = {}
        for bundle in bundles:
            for key, value in bundle.items():
                need[key] = need.get(key, 0.0) + float(value)
        most = self.most()
        for key, amount in need.items():
            if amount > 0 and most.get(key, 0.0) + _EPS < amount:
                raise ConfigError(f"{what} needs {amount:g} {key} but {self.describe([key])}")


def _short(resources: list[Mapping[str, float]]) -> str:
    return ", ".join("{" + ", ".join(f"{k}: {v:g}" for k, v in r.items()
                                     if not k.startswith(("node:", "memory", "object_store"))) + "}"
                     for r in resources)


def read_node_types(path: str | os.PathLike) -> tuple[list[NodeType], int | None]:
    """(worker node types, cluster-wide max_workers) of a `ray up` cluster config file; the
    head's type is left out (it is up already). InputError naming the file if it is unusable."""
    import yaml  # deferred: only a joined cluster's config is read

    path = Path(path).expanduser()
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: unreadable cluster config ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    types = config.get("available_node_types") if isinstance(config, dict) else None
    if not isinstance(types, dict):
        raise InputError(f"{path}: no available_node_types (not a cluster config of `ray up`)")
    head = config.get("head_node_type")
    found = []
    for name, spec in types.items():
        if name == head or not isinstance(spec, dict):
            continue
        resources = spec.get("resources")
        found.append(NodeType(str(name), {str(k): float(v) for k, v in resources.items()}
                              if isinstance(resources, dict) else None,
                              int(spec.get("max_workers", config.get("max_workers", 0)) or 0)))
    cap = config.get("max_workers")
    return found, int(cap) if cap is not None else None


def _from_gcs() -> tuple[list[NodeType], dict[str, float]] | None:
    """Node groups of the cluster config in the GCS (None when no autoscaler reported one)."""
    try:
        from ray._private.state import state  # deferred: Ray's private state API, may move

        config = state.get_cluster_config()
    except Exception:  # an older or newer Ray without it: fall back to the file
        return None
    if config is None or not config.node_group_configs:
        return None
    groups = [NodeType(g.name, {k: float(v) for k, v in g.resources.items()}, int(g.max_count))
              for g in config.node_group_configs]
    return groups, {k: float(v) for k, v in config.max_resources.items()}


def cluster_capacity() -> Capacity:
    """The capacity of the Ray cluster this process is connected to (ray.init done)."""
    import ray  # deferred: only the commands that run on Ray need it

    now = {k: float(v) for k, v in ray.cluster_resources().items()}
    nodes = [{k: float(v) for k, v in n.get("Resources", {}).items()}
             for n in ray.nodes() if n.get("Alive")]
    if cluster_address() is None:  # a private instance: no autoscaler
        return Capacity(now, nodes)
    gcs = _from_gcs()
    if gcs is not None:
        return Capacity(now, nodes, gcs[0], None, "the GCS's cluster config", gcs[1])
    path = Path(os.environ.get(CONFIG_VARIABLE) or BOOTSTRAP_CONFIG).expanduser()
    if not path.is_file():
        return Capacity(now, nodes)
    types, max_workers = read_node_types(path)
    return Capacity(now, nodes, types, max_workers, str(path))
