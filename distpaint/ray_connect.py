"""Joining Ray, the same way for every command: the cluster of RAY_ADDRESS (what `ray job
submit` sets for its jobs), or else a private local instance that the caller shuts down.

    started = connect()                 # training, tuning: with the dashboard
    try: ...
    finally:
        if started: ray.shutdown()
"""

from __future__ import annotations

import logging
import os

__all__ = ["connect"]


def connect(*, address: str | None = None, dashboard: bool = True, log_to_driver: bool = True) -> bool:
    """Join RAY_ADDRESS's cluster, or start a local Ray; True if this call started one.

    Args:
        address: passed to `ray.init` for a local start ("local": always a new instance, even if
            another one runs on this machine; None: Ray's default lookup).
        dashboard: start the dashboard, which serves the state API that Ray Train's controller
            polls (without it, it logs a warning every second).
        log_to_driver: forward the workers' output to this process's console.
    """
    import ray

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
    if not dashboard:
        options["include_dashboard"] = False
    if not log_to_driver:
        options["logging_level"] = logging.WARNING
    ray.init(**options)
    return True
