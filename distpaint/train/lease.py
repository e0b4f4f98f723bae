"""One driver per training run: a lease in the run's storage, on a local disk or object storage.

Two `distpaint train` drivers writing one run (the same `--out`, or `--storage` and `--name`)
corrupt it: duplicated steps in MLflow, checkpoints of both interleaved, one driver's Ray Train
crashing on the other's files. So the driver holds a lease, `RUN/driver.lock`, while it runs:

- acquire: create the lease atomically, so that of two drivers exactly one succeeds, holding who
  owns it (host, pid, a random token, start time). On a local disk: `O_CREAT | O_EXCL`. On
  object storage (`s3://`): a conditional write, S3 `PutObject` with `If-None-Match: *`;
- heartbeat: a daemon thread renews the lease every `heartbeat_s` while it still holds our
  token: a local file's mtime is touched; an object is rewritten with `If-Match: <its ETag>`, so
  a driver whose lease was taken over (the rival's write changed the ETag) notices;
- stale: a lease not renewed for `timeout_s` (its age by the storage's own clock: the file's
  mtime, or the object's Last-Modified against the server's Date), or whose owner is a process
  of this host that no longer exists (a driver killed with SIGKILL), is taken over: a local file
  is renamed aside atomically and created again; an object is overwritten with `If-Match: <the
  stale ETag>`; of two drivers taking over, one wins;
- release: on exit, normal or not, the lease is removed if it is still ours (an object: delete
  with `If-Match: <our ETag>`).

A second driver gets a one-line ConfigError naming the run, the owner and when it last beat;
the first driver is not touched. A driver that finds its lease taken over (it was silent for
longer than the timeout: a stopped process, a partitioned network) logs an error and interrupts
its main thread: `hold_run` raises a ConfigError saying so, rather than train on beside the new
holder.

Object storage needs conditional writes: AWS S3 has them since 2024 (If-Match since November),
as do recent MinIO and Ceph RGW, and moto 5.2's server (the tests'). A 409
ConditionalRequestConflict (two conditional writes at once) counts as a failed condition: the
lease is read again. Before trusting a bucket the lease checks that a second `If-None-Match: *`
create of one object is refused; a server that ignores the header, or answers it with an error, is refused in
one line (naming the URL), as are other URL schemes (gs://, az://, ...), for which no
conditional write is implemented here. `DISTPAINT_LEASE=off` trains without a lease (on any
storage), knowingly: nothing then keeps a second driver out.

    with hold_run(run_dir):                    # ConfigError if another live driver holds it
        ...train...
    with hold_run("s3://bucket/runs/name"):    # the same, on object storage
        ...train...
"""

from __future__ import annotations

import _thread
import contextlib
import email.utils
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distpaint.data import location
from distpaint.errors import ConfigError

__all__ = ["LEASE_FILE", "LEASE_ENV", "LeaseConfig", "Lease", "ObjectLease", "hold_run"]

log = logging.getLogger(__name__)

LEASE_FILE = "driver.lock"
"""The lease's file (or object) name inside the run directory."""
LEASE_ENV = "DISTPAINT_LEASE"
"""Environment variable: `off` trains without a lease where the storage cannot hold one."""


@dataclass(frozen=True)
class LeaseConfig:
    """How often the holder proves it is alive, and when a silent one is presumed dead."""

    heartbeat_s: float = 15.0
    """Seconds between two renewals of the lease by its holder."""
    timeout_s: float = 120.0
    """A lease not renewed for this long is stale (its driver died on another host)."""

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


@dataclass(frozen=True)
class Seen:
    """A lease as read from storage."""

    owner: Owner | None
    """Its holder; None while it is being written or when unreadable (judged by age alone)."""
    age: float
    """Seconds since its last renewal, by the storage's clock."""
    version: Any = None
    """What a conditional write must match to replace it (an object's ETag)."""


def _owner(text: str | bytes) -> Owner | None:
    try:
        data = json.loads(text)
        return Owner(**{k: data[k] for k in ("host", "pid", "token", "started")})
    except (ValueError, TypeError, KeyError):
        return None


class Lease:
    """The lease of one local run directory; use `hold_run`, or `acquire` and `release`."""

    def __init__(self, run_dir: str | os.PathLike, config: LeaseConfig | None = None) -> None:
        self.run_dir, self.config = Path(run_dir), config or LeaseConfig()
        self.path: Any = self.run_dir / LEASE_FILE
        self.owner = Owner(socket.gethostname(), os.getpid(), uuid.uuid4().hex, time.time())
        self.lost = threading.Event()
        """Set when the heartbeat found the lease taken over by another driver."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- acquiring -------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease, taking over a stale one; ConfigError if a live driver holds it."""
        for _ in range(3):  # a stale lease taken over by a rival, or released meanwhile: again
            if self._create():
                return self._start()
            seen = self._read()
            if seen is None:
                continue  # released meanwhile
            if not self._stale(seen):
                raise ConfigError(self._refusal(seen))
            if self._take_over(seen):
                return self._start()
        raise ConfigError(f"{self.path}: could not take the run's lease (other drivers keep "
                          "starting on it)")

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._beat, daemon=True, name="distpaint-lease")
        self._thread.start()

    def _body(self) -> bytes:
        return json.dumps(asdict(self.owner)).encode()

    def _create(self) -> bool:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:  # a read-only run directory: the user's to fix
            raise ConfigError(f"{self.path}: cannot create the run's lease: "
                              f"{exc.strerror or exc}") from None
        with os.fdopen(fd, "wb") as fh:  # the contents follow the atomic create
            fh.write(self._body())
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def _read(self) -> Seen | None:
        """The lease as it is now, None if there is none."""
        try:
            age = time.time() - self.path.stat().st_mtime
            text = self.path.read_text()
        except FileNotFoundError:
            return None  # released meanwhile: the next try creates it
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the run's lease: "
                              f"{exc.strerror or exc}") from None
        return Seen(_owner(text), age)

    def _stale(self, seen: Seen) -> bool:
        if seen.age > self.config.timeout_s:
            return True
        return seen.owner is not None and seen.owner.alive_here() is False

    def _take_over(self, seen: Seen) -> bool:
        """Replace the stale lease `seen` by ours; False if a rival changed it first."""
        aside = self.path.with_name(f"{LEASE_FILE}.stale-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):  # a rival broke it first
            os.rename(self.path, aside)
            aside.unlink()
        return self._create()

    def _refusal(self, seen: Seen) -> str:
        holder = seen.owner
        who = (f"pid {holder.pid} on {holder.host}, started "
               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.started))}"
               if holder is not None else "a driver starting")
        return (f"{self.run_dir}: this run is being trained by another driver ({who}; last "
                f"heartbeat {seen.age:.0f} s ago); wait for it to finish or stop it (a lease "
                f"silent for {self.config.timeout_s:.0f} s is taken over)")

    # ---- holding and releasing -------------------------------------------------------------
    def _ours(self) -> bool:
        seen = self._read()
        return seen is not None and seen.owner is not None and seen.owner.token == self.owner.token

    def _renew(self) -> bool | None:
        """Renew the lease: True done, False lost to another driver, None not now (storage
        unreachable for a moment: tried again at the next beat)."""
        if not self._ours():
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            return False
        except OSError:
            return None
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.config.heartbeat_s):
            try:
                renewed = self._renew()
            except Exception as exc:  # the storage, not the lease: keep beating
                log.warning("%s: could not renew the run's lease (%s); trying again", self.path, exc)
                continue
            if renewed is False:
                return self._on_lost()

    def _on_lost(self) -> None:
        """Another driver took the lease over: never touch theirs, stop our driver."""
        if self._stop.is_set():
            return  # releasing anyway
        self.lost.set()
        log.error("%s: another driver took this run's lease over (this one was silent for more "
                  "than %.0f s); stopping", self.path, self.config.timeout_s)
        _thread.interrupt_main()  # KeyboardInterrupt in the driver: hold_run turns it to a ConfigError

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if not self.lost.is_set():
            self._remove()

    def _remove(self) -> None:
        if self._ours():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class ObjectLease(Lease):
    """The lease of a run on S3-compatible object storage (`s3://bucket/runs/name`), by
    conditional writes; see the module docstring."""

    def __init__(self, run_url: str, config: LeaseConfig | None = None) -> None:
        super().__init__(Path("."), config)
        self.run_dir = run_url.rstrip("/")  # type: ignore[assignment]  # a URL, in messages
        self.path = location.join(self.run_dir, LEASE_FILE)
        self.fs, path = location.fs_path(self.path)
        self.bucket, self.key = path.split("/", 1)
        self.etag: str | None = None
        self._beats = 0

    # ---- S3 calls (through s3fs's client: the endpoint and credentials of the environment) --
    def _call(self, method: str, **kwargs: Any) -> dict:
        return self.fs.call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)

    def _put(self, **condition: str) -> bool:
        """Write our lease if `condition` holds; False if it does not (another driver's write)."""
        self._beats += 1  # a new body, so a new ETag, at every renewal
        body = json.dumps({**asdict(self.owner), "beats": self._beats}).encode()
        try:
            self.etag = self._call("put_object", Body=body, **condition)["ETag"]
        except (FileExistsError, FileNotFoundError):  # If-None-Match failed; the object is gone
            return False
        except OSError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    def _get(self) -> tuple[dict, bytes] | None:
        async def get() -> tuple[dict, bytes]:
            response = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            async with response["Body"] as stream:
                return response, await stream.read()

        from fsspec.asyn import sync  # deferred: s3fs brings fsspec

        try:
            return sync(self.fs.loop, get)
        except FileNotFoundError:
            return None

    # ---- the lease's operations --------------------------------------------------------------
    def acquire(self) -> None:
        location.exists(self.run_dir)  # InputError naming a missing or unreachable bucket
        self._check_conditional_writes()
        super().acquire()

    def _create(self) -> bool:
        try:
            return self._put(IfNoneMatch="*") or self._wrote_it()
        except OSError as exc:
            raise self._error("cannot create the run's lease", exc) from None

    def _wrote_it(self) -> bool:
        """After a failed condition: is the lease there ours after all? A write that reached
        the server but whose answer was lost is retried by the client, and the retry's
        condition then fails on our own write."""
        seen = self._read()
        if seen is None or seen.owner is None or seen.owner.token != self.owner.token:
            return False
        self.etag = seen.version
        return True

    def _read(self) -> Seen | None:
        try:
            got = self._get()
        except OSError as exc:
            raise self._error("cannot read the run's lease", exc) from None
        if got is None:
            return None
        response, body = got
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        now = email.utils.parsedate_to_datetime(headers["date"]) if "date" in headers else None
        modified = response["LastModified"]
        # the server's clock on both sides: no skew between hosts (1 s resolution)
        age = (now - modified).total_seconds() if now is not None else time.time() - modified.timestamp()
        return Seen(_owner(body), max(0.0, age), response["ETag"])

    def _take_over(self, seen: Seen) -> bool:
        try:
            return self._put(IfMatch=seen.version)
        except OSError as exc:
            raise self._error("cannot take over the run's lease", exc) from None

    def _renew(self) -> bool | None:
        try:
            return self._put(IfMatch=self.etag) or self._wrote_it()
        except OSError:
            return None  # unreachable for a moment (a rival's write is a failed condition)

    def _remove(self) -> None:
        try:
            self._call("delete_object", IfMatch=self.etag)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if not _failed_condition(exc):  # someone else's lease now: theirs to remove
                log.warning("%s: could not remove the run's lease (%s)", self.path, exc)

    def _ours(self) -> bool:
        seen = self._read()
        return seen is not None and seen.version == self.etag

    def _check_conditional_writes(self) -> None:
        """Refuse a server that would let two drivers both create the lease: a second
        `If-None-Match: *` create of one probe object must be refused."""
        probe = f"{self.key}.probe-{self.owner.token}"
        call = self.fs.call_s3
        try:
            call("put_object", Bucket=self.bucket, Key=probe, Body=b"", IfNoneMatch="*")
            try:
                call("put_object", Bucket=self.bucket, Key=probe, Body=b"", IfNoneMatch="*")
                honoured = False
            except FileExistsError:
                honoured = True
            except OSError as exc:
                honoured = _failed_condition(exc)
                if not honoured:
                    raise
        except OSError as exc:
            raise self._error("cannot create the run's lease", exc) from None
        finally:
            with contextlib.suppress(Exception):
                call("delete_object", Bucket=self.bucket, Key=probe)
        if not honoured:
            raise ConfigError(f"{self.path}: this storage ignores conditional writes (S3 "
                              f"If-None-Match), so it cannot hold the run's lease that keeps a "
                              f"second driver out; set {LEASE_ENV}=off to train without one")

    def _error(self, doing: str, exc: BaseException) -> ConfigError:
        response = getattr(exc.__cause__, "response", None) or {}
        unsupported = (response.get("Error", {}).get("Code") == "NotImplemented"
                       or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 501)
        hint = (f"; this server has no conditional writes (If-None-Match), which the run's lease "
                f"needs: set {LEASE_ENV}=off to train without one") if unsupported else ""
        return ConfigError(f"{location.url_error(self.path, exc, doing)}{hint}")


def _failed_condition(exc: BaseException) -> bool:
    """Was this s3fs error a failed If-Match/If-None-Match (412), or a conflicting concurrent
    conditional write (409)?"""
    response = getattr(exc.__cause__, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def _off() -> bool:
    return os.environ.get(LEASE_ENV, "").strip().lower() in ("off", "0", "false", "no")


def _lease_of(run: str | os.PathLike, config: LeaseConfig | None) -> Lease:
    """The lease for run directory or URL `run`."""
    if not location.is_url(run):
        return Lease(Path(os.fspath(run).removeprefix("file://")), config)
    url = os.fspath(run)
    if url.startswith(("s3://", "s3a://")):
        return ObjectLease(url, config)
    raise ConfigError(f"{url}: no lease for this storage (conditional writes are implemented for "
                      f"s3:// only), so a second driver could not be kept out of the run; set "
                      f"{LEASE_ENV}=off to train without one")


@contextlib.contextmanager
def hold_run(run: str | os.PathLike | None, config: LeaseConfig | None = None) -> Iterator[Lease | None]:
    """Hold the lease of run directory or URL `run` for the `with` block; yields None (no
    lease) for `run=None` or with `DISTPAINT_LEASE=off`. A lease lost to another driver
    meanwhile ends the block with a ConfigError."""
    if run is not None and _off():
        log.warning("%s=off: training %s without a lease; nothing keeps a second driver out",
                    LEASE_ENV, run)
        run = None
    lease = None if run is None else _lease_of(run, config)
    if lease is None:
        yield None
        return
    lease.acquire()
    try:
        yield lease
    except KeyboardInterrupt:
        if lease.lost.is_set():
            raise ConfigError(f"{lease.path}: another driver took this run's lease over (this "
                              f"driver was silent for more than {lease.config.timeout_s:.0f} s); "
                              "stopped") from None
        raise
    finally:
        lease.release()
