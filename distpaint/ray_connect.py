"""Joining Ray, the same way for every command: the cluster of RAY_ADDRESS (what `ray job
submit` sets for its jobs), or else a private local instance that the caller shuts down.

    started = connect()                 # training, tuning: with the dashboard
    try: ...
    finally:
        if started: ray.shutdown()

A private instance with a dashboard names its state API in RAY_API_SERVER_ADDRESS before it
starts, so that every Ray process it spawns inherits it. Ray Train's detached
PlacementGroupCleaner asks the state API whether a run's controller is still alive and removes
the run's placement group when it is not (a Tune trial stopped early by ASHA kills its
controller). Without a dashboard that API does not exist, and without the variable the cleaner
auto-detects "the" local instance by scanning the process table, which fails as soon as a
second Ray runs on the machine. Either way the group is never removed, its CPUs stay reserved,
and the next trial waits for them forever (measured: one sweep of 3 trials x 4 steps on a
dashboard-less instance left two 0.9-CPU groups behind; with the dashboard and the variable,
none).
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["connect", "STATE_API_VARIABLE"]

STATE_API_VARIABLE = "RAY_API_SERVER_ADDRESS"
"""Where Ray's state-API clients look first for the dashboard (before RAY_ADDRESS and before
scanning the process table)."""


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connect(*, address: str | None = None, dashboard: bool = True, log_to_driver: bool = True,
            num_cpus: int | None = None, temp_dir: str | None = None) -> bool:
    """Join RAY_ADDRESS's cluster, or start a local Ray; True if this call started one.

    Args:
        address: passed to `ray.init` for a local start ("local": always a new instance, even if
            another one runs on this machine; None: Ray's default lookup).
        dashboard: start the dashboard, which serves the state API that Ray Train's controller
            polls and its placement-group cleaner needs (see the module docstring); it listens
            on loopback only.
        log_to_driver: forward the workers' output to this process's console.
        num_cpus: CPUs of a local instance (None: all of this machine's).
        temp_dir: Ray's session directory of a local instance (None: Ray's default).
    """
    import ray  # deferred: Ray runs are optional; infer, train and the demo import this module

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private instance, no token files
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict = {"log_to_driver": log_to_driver}
    if address is not None:
        options["address"] = address
    if num_cpus is not None:
        options["num_cpus"] = num_cpus
    if temp_dir is not None:
        options["_temp_dir"] = temp_dir
    pinned = None
    if dashboard:
        port = _free_loopback_port()
        options.update(include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port)
        pinned = f"http://127.0.0.1:{port}"
    else:
        options["include_dashboard"] = False
    if not log_to_driver:
        options["logging_level"] = logging.WARNING
    # Only for the processes ray.init spawns (the raylet, and through it every worker, copies
    # this environment): left in this process, the variable would also override the address
    # that any job or state client here is given explicitly.
    previous = os.environ.pop(STATE_API_VARIABLE, None)
    if pinned is not None:
        os.environ[STATE_API_VARIABLE] = pinned
    try:
        ray.init(**options)
    finally:
        os.environ.pop(STATE_API_VARIABLE, None)
        if previous is not None:
            os.environ[STATE_API_VARIABLE] = previous
    return True
