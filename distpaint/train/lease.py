"""One driver per training run: a lease file in the run directory.

Two `distpaint train` drivers writing one run (the same `--out`, or `--storage` and `--name`)
corrupt it: duplicated steps in MLflow, checkpoints of both interleaved, one driver's Ray Train
crashing on the other's files. So the driver holds a lease while it runs:

- acquire: create `RUN/driver.lock` atomically (`O_CREAT | O_EXCL`: of two drivers exactly one
  succeeds), holding who owns it (host, pid, a random token, start time);
- heartbeat: a daemon thread touches the file (its mtime) every `heartbeat_s` while it still
  holds our token;
- stale: a lease whose heartbeat is older than `timeout_s`, or whose owner is a process of this
  host that no longer exists (a driver killed with SIGKILL), is broken (renamed aside
  atomically, so of two drivers breaking it one wins) and taken;
- release: on exit, normal or not, the file is removed if it is still ours.

A second driver gets a one-line ConfigError naming the run, the owner and when it last beat;
the first driver is not touched. Run directories on object storage (`--storage s3://...`) hold
no lease yet: that needs a conditional write (S3 `If-None-Match: *`) and is left for later.

    with hold_run(run_dir):            # ConfigError if another live driver holds it
        ...train...
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from distpaint.errors import ConfigError

__all__ = ["LEASE_FILE", "LeaseConfig", "Lease", "hold_run"]

LEASE_FILE = "driver.lock"
"""The lease's file name inside the run directory."""


@dataclass(frozen=True)
class LeaseConfig:
    """How often the holder proves it is alive, and when a silent one is presumed dead."""

    heartbeat_s: float = 15.0
    """Seconds between two touches of the lease file by its holder."""
    timeout_s: float = 120.0
    """A lease not touched for this long is stale (its driver died on another host)."""

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s < self.timeout_s:
            raise ConfigError(f"lease heartbeat ({self.heartbeat_s} s) must be positive and "
                              f"shorter than its timeout ({self.timeout_s} s)")


@dataclass(frozen=True)
class Owner:
    """Who holds a lease (the file's contents)."""

    host: str
    pid: int
    token: str
    started: float

    def alive_here(self) -> bool | None:
        """On this host: whether the process exists; elsewhere: None (unknown)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True


class Lease:
    """The lease of one run directory; use `hold_run`, or `acquire` and `release`."""

    def __init__(self, run_dir: Path, config: LeaseConfig | None = None) -> None:
        self.run_dir, self.config = Path(run_dir), config or LeaseConfig()
        self.path = self.run_dir / LEASE_FILE
        self.owner = Owner(socket.gethostname(), os.getpid(), uuid.uuid4().hex, time.time())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- acquiring -------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease, breaking a stale one; ConfigError if a live driver holds it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lease broken by us or by a rival: try again
            if self._create():
                self._thread = threading.Thread(target=self._beat, daemon=True,
                                                name="distpaint-lease")
                self._thread.start()
                return
            holder, age = self._read()
            if not self.path.exists():
                continue  # released meanwhile
            if not self._stale(holder, age):
                raise ConfigError(self._refusal(holder, age))
            self._break()
        raise ConfigError(f"{self.path}: could not take the run's lease (other drivers keep "
                          "starting on it)")

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:  # a read-only run directory: the user's to fix
            raise ConfigError(f"{self.path}: cannot create the run's lease: "
                              f"{exc.strerror or exc}") from None
        with os.fdopen(fd, "w") as fh:  # the contents follow the atomic create
            json.dump(asdict(self.owner), fh)
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def _read(self) -> tuple[Owner | None, float]:
        """(owner, seconds since its last heartbeat); owner None while the file is being
        written or unreadable (then it is judged by its age alone)."""
        try:
            age = time.time() - self.path.stat().st_mtime
            text = self.path.read_text()
        except FileNotFoundError:
            return None, 0.0  # released meanwhile: the next try creates it
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the run's lease: "
                              f"{exc.strerror or exc}") from None
        try:
            return Owner(**json.loads(text)), age
        except (ValueError, TypeError):
            return None, age

    def _stale(self, holder: Owner | None, age: float) -> bool:
        if age > self.config.timeout_s:
            return True
        return holder is not None and holder.alive_here() is False

    def _break(self) -> None:
        aside = self.path.with_name(f"{LEASE_FILE}.stale-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):  # a rival broke it first
            os.rename(self.path, aside)
            aside.unlink()

    def _refusal(self, holder: Owner | None, age: float) -> str:
        who = (f"pid {holder.pid} on {holder.host}, started "
               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.started))}"
               if holder is not None else "a driver starting")
        return (f"{self.run_dir}: this run is being trained by another driver ({who}; last "
                f"heartbeat {age:.0f} s ago); wait for it to finish or stop it (a lease "
                f"silent for {self.config.timeout_s:.0f} s is taken over)")

    # ---- holding and releasing -------------------------------------------------------------
    def _ours(self) -> bool:
        holder, _ = self._read()
        return holder is not None and holder.token == self.owner.token

    def _beat(self) -> None:
        while not self._stop.wait(self.config.heartbeat_s):
            if not self._ours():
                return  # broken by another driver after a stall: never touch theirs
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._ours():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


@contextlib.contextmanager
def hold_run(run_dir: str | os.PathLike | None,
             config: LeaseConfig | None = None) -> Iterator[Lease | None]:
    """Hold the lease of `run_dir` for the `with` block (None: a run on object storage,
    which holds no lease yet)."""
    if run_dir is None:
        yield None
        return
    lease = Lease(Path(run_dir), config)
    lease.acquire()
    try:
        yield lease
    finally:
        lease.release()
