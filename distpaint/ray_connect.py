"""Joining Ray, the same way for every command: a cluster only when told, else a private local
instance that the caller shuts down.

Told means: the command's `--address` (exported as RAY_ADDRESS by `use_address`), or
RAY_ADDRESS itself (what `ray job submit` sets for its jobs). Otherwise `ray.init` gets
`address="local"`: a new instance of our own. Ray's default (`address=None`) would join
"the latest cluster" started on this machine (`<RAY_TMPDIR>/ray/ray_current_cluster`, logged as
"Connecting to latest cluster at ..."): any colleague's or test's `ray start --head`.

    use_address(address)                # a command's --address, before anything joins Ray
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

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator

__all__ = ["connect", "cluster_address", "use_address", "STATE_API_VARIABLE"]

STATE_API_VARIABLE = "RAY_API_SERVER_ADDRESS"
"""Where Ray's state-API clients look first for the dashboard (before RAY_ADDRESS and before
scanning the process table)."""


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster_address() -> str | None:
    """The cluster this process was told to join (RAY_ADDRESS), or None: a private local Ray."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    return address if address and address != "local" else None


def use_address(address: str | None) -> None:
    """Make a command's `--address` the cluster to join (None or empty: leave RAY_ADDRESS as it
    is; "local": a private instance even where RAY_ADDRESS is set).

    Exported as RAY_ADDRESS rather than passed along: that is the variable `ray.init` itself
    gives precedence to, the one Ray Train's and Tune's own processes inherit, and the one the
    code that adapts to a cluster (placement retries, storage checks) reads, so `--address X`
    behaves exactly like `RAY_ADDRESS=X` and like a `ray job submit` job.
    """
    if address is not None and address.strip():
        os.environ["RAY_ADDRESS"] = address.strip()  # "local" included: cluster_address() says None


def connect(*, address: str | None = None, dashboard: bool = True, log_to_driver: bool = True,
            num_cpus: int | None = None, temp_dir: str | None = None) -> bool:
    """Join the cluster of `address` or RAY_ADDRESS, or start a private local Ray; True if this
    call started one.

    Args:
        address: a cluster to join (None or "local": RAY_ADDRESS's, else a new private instance,
            even if another one runs on this machine).
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
    with _callers_sigterm_kept():
        return _connect(ray, address, dashboard, log_to_driver, num_cpus, temp_dir)


@contextlib.contextmanager
def _callers_sigterm_kept() -> Iterator[None]:
    """ray.init replaces the process's SIGTERM handler by its own sys.exit(15); a handler the
    caller installed (the CLI's: stop as on Ctrl-C, `distpaint.commands.stopping`) is put back.
    Without one, Ray's stays: it unwinds the driver too."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if callable(handler):
            signal.signal(signal.SIGTERM, handler)


def _connect(ray, address, dashboard, log_to_driver, num_cpus, temp_dir) -> bool:
    use_address(None if address in (None, "local") else address)
    if cluster_address() is not None:
        ray.init(log_to_driver=True)  # RAY_ADDRESS: ray.init's own first choice
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private instance, no token files
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.pop("RAY_ADDRESS", None)  # "local" or empty: ray.init would read it before `address`
    # "local": never Ray's default lookup, which joins the latest `ray start` on this machine
    options: dict = {"log_to_driver": log_to_driver, "address": "local"}
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
