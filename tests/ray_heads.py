"""Ray instances a test starts itself: stopping a head started with `ray start --head` in a
session of its own (`ray stop` would stop every Ray on the machine and has no --address to pick
one, so the test stops the session's processes instead), and a temp folder short enough for
Ray's socket paths."""

from __future__ import annotations

import os
import signal
import tempfile

import psutil


def session_processes(session: int) -> list[psutil.Process]:
    """The processes of `session` and all their descendants (Ray workers lead process groups
    of their own within the session; job entrypoints run in sessions of their own below a
    Ray worker)."""
    found = {}
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == session:
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (psutil.Error, OSError):  # gone, or not ours to inspect
            continue
    return list(found.values())


def stop_session(session: int) -> None:
    """SIGTERM to every process of `session`, SIGKILL to those still alive after 3 s."""
    procs = session_processes(session)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=3)
    for proc in alive:  # the GCS and raylet can sit on SIGTERM for longer than a test should
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def short_temp_dir(prefix: str) -> str:
    """A fresh folder directly under /tmp for a Ray session: Ray's socket paths inside it must
    fit 107 bytes, which pytest's tmp_path under xdist (.../popen-gwN/...) leaves no room for.
    The caller removes it."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")
