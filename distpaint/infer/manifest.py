"""The work folder of an inference job: lock, job identity, manifest of finished shards.

A job writes its masks shard by shard into staging Zarr groups (`staging/<uid>.zarr`) and
appends one JSON line per finished shard to a manifest file of its own (`manifest/<id>.jsonl`;
every process and Ray actor writes its own file, so no two writers share one). A shard's line
is appended only after the shard is on disk, so after a kill every listed shard is complete
and the rest is recomputed: re-running the same command resumes. `job.json` records the job's
identity (model and every setting that changes pixels) and the units it registered (whose
existing outputs it may therefore replace when it resumes). A retry never throws progress
away: a folder left by a job with another identity (another `--model`, `--tile`, ...) is
refused, naming the settings that differ, before anything is touched; only `discard`
(`--overwrite`) deletes it and starts over. One job at a time per folder (an exclusive
`flock`).

    with JobDir(work, key) as job:
        done = job.state()            # {uid: UnitState}
        writer = job.writer()         # ManifestWriter for this process
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from distpaint.errors import InputError
from distpaint.infer.engine import ShardCounts

__all__ = ["JobDir", "ManifestWriter", "UnitState", "JOB_FORMAT"]

JOB_FORMAT = 1
"""Version of the work-folder layout (part of the job identity)."""
_OPTION = {
    "model": "--model", "tile": "--tile", "halo": "--halo", "batch": "--batch",
    "threshold": "--threshold", "sample": "--sample", "seed": "--seed",
    "keep_input": "--keep-input", "skip_empty": "--skip-empty", "shard": "--shard",
    "preview_size": "--preview-size", "input_threshold": "--input-threshold",
    "views": "--views", "passes": "--passes", "drop_islands": "--drop-islands",
    "bridges_only": "--bridges-only", "keep": "--keep", "min_confidence": "--min-confidence",
    "format": "work-folder format",
}
"""The command-line option of each job setting, for messages."""
_OMITTED = {"views": 1, "passes": 1, "drop_islands": False, "bridges_only": False, "keep": "all",
            "min_confidence": 0.0}
"""Settings the job key leaves out at these values (so that older jobs still resume)."""


@dataclass
class UnitState:
    """What the manifest says about one unit (one input fingerprint)."""

    shards: dict[tuple[int, int], ShardCounts] = field(default_factory=dict)
    """Finished shards by origin (y0, x0)."""
    final: dict | None = None
    """The unit's result once its outputs are in place."""


class ManifestWriter:
    """Appends manifest lines to this writer's own file (thread-safe)."""

    def __init__(self, folder: pathlib.Path, name: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{name or uuid.uuid4().hex}.jsonl"
        self._lock = threading.Lock()

    def _append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)  # one write per line: a kill leaves at most a torn last line

    def shard(self, uid: str, origin: tuple[int, int], counts: ShardCounts) -> None:
        """Record that shard `origin` of unit `uid` is written."""
        self._append({"uid": uid, "shard": [int(origin[0]), int(origin[1])],
                      "counts": asdict(counts)})

    def final(self, uid: str, result: dict) -> None:
        """Record that unit `uid`'s outputs are in place."""
        self._append({"uid": uid, "final": result})


class JobDir:
    """The work folder of one job; use as a context manager (takes the lock)."""

    def __init__(self, path: pathlib.Path, key: str, description: dict[str, Any], *,
                 discard: bool = False, labels: dict[str, str] | None = None) -> None:
        """`description`: the settings hashed into `key`; `discard`: delete the progress of a
        job with another key instead of refusing; `labels`: readable names of settings whose
        description is a hash (the model), shown when a retry is refused."""
        self.path, self.key, self.description = path, key, description
        self.discard, self.labels = discard, dict(labels or {})
        self._lock_fh: Any = None

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> JobDir:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fh = open(self.path / "lock", "w")
        except OSError as exc:  # a read-only work folder left behind: the user's to fix
            raise InputError(f"{self.path}: cannot write the job's work folder: "
                             f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise InputError(
                f"{self.path}: another `distpaint infer` is writing this output; wait for it "
                "to finish"
            ) from None
        try:
            job = self._read_job()
            if job is not None and job.get("key") != self.key:
                if not self.discard:  # refuse before touching anything: its progress is kept
                    raise InputError(self._refusal(job))
                self._reset()  # --overwrite: the other job's progress is discarded on request
                job = None
        except BaseException:
            self.__exit__()
            raise
        self.registered: dict[str, str] = dict(job.get("units", {})) if job else {}
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def _read_job(self) -> dict | None:
        """job.json, or None where there is none (a job killed before it registered anything:
        no progress to keep). An unreadable one is refused, not taken for no job, unless
        discarding: the manifest and staging beside it may hold hours of work."""
        path = self.path / "job.json"
        if not path.exists():
            return None
        try:
            job = json.loads(path.read_text())
            if not isinstance(job, dict):
                raise ValueError("not a JSON object")
            return job
        except (OSError, ValueError) as exc:
            if self.discard:
                return {"key": None}
            detail = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            raise InputError(f"{path}: unreadable record of an interrupted job ({detail}); "
                             "pass --overwrite to discard its progress") from None

    def _refusal(self, job: dict) -> str:
        """The message refusing a retry with other settings, naming each difference."""
        old, new = job.get("description") or {}, self.description
        old_labels = job.get("labels") or {}
        diffs = []
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                was = old_labels.get(name, old.get(name, _OMITTED.get(name, "unset")))
                now = self.labels.get(name, new.get(name, _OMITTED.get(name, "unset")))
                if was == now:  # the same name for other contents (a retrained checkpoint)
                    was, now = f"{was} ({old.get(name)})", f"{now} ({new.get(name)})"
                diffs.append(f"{_OPTION.get(name, name)} was {was}, now {now}")
        what = "; ".join(diffs) or "job format"
        return (f"{self.path}: an interrupted job with other settings left its progress here "
                f"({what}); re-run it with its settings to resume, or pass --overwrite to "
                "discard that progress")

    def _reset(self) -> None:
        for child in self.path.iterdir():
            if child.name == "lock":
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()

    def remove(self) -> None:
        """Delete the folder (the job is complete). Call inside the `with` block."""
        shutil.rmtree(self.path, ignore_errors=True)

    # ---- identity and units ----------------------------------------------------------------
    def register(self, units: dict[str, str]) -> None:
        """Record units ({key: fingerprint}) as part of this job, atomically."""
        self.registered.update(units)
        tmp = self.path / f".job.json.{uuid.uuid4().hex[:8]}"
        try:
            tmp.write_text(json.dumps({"format": JOB_FORMAT, "key": self.key,
                                       "description": self.description, "labels": self.labels,
                                       "units": self.registered}, indent=1, sort_keys=True))
            os.replace(tmp, self.path / "job.json")
        except BaseException:  # a full disk: job.json stays the previous, complete one
            tmp.unlink(missing_ok=True)
            raise

    # ---- manifest --------------------------------------------------------------------------
    @property
    def manifest_dir(self) -> pathlib.Path:
        """Folder of the manifest files."""
        return self.path / "manifest"

    @property
    def staging_dir(self) -> pathlib.Path:
        """Folder of the staging Zarr groups."""
        return self.path / "staging"

    def writer(self) -> ManifestWriter:
        """A manifest writer with a file of its own."""
        return ManifestWriter(self.manifest_dir)

    def state(self) -> dict[str, UnitState]:
        """Every unit's finished shards and final result, from all manifest files (a torn
        last line of a killed writer is ignored)."""
        states: dict[str, UnitState] = {}
        if not self.manifest_dir.is_dir():
            return states
        for file in sorted(self.manifest_dir.glob("*.jsonl")):
            for line in file.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                state = states.setdefault(record["uid"], UnitState())
                if "final" in record:
                    state.final = record["final"]
                else:
                    origin = tuple(record["shard"])
                    state.shards[origin] = ShardCounts(**record["counts"])  # type: ignore[index]
        return states
