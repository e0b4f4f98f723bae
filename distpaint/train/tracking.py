"""MLflow for distributed training: one MLflow run per training run, written by one process at a
time (the driver before and after `fit`, rank 0 during it), so an SQLite store never sees
concurrent writers.

- Default tracking store: `sqlite:///<run dir>/mlflow.db`, experiment `distpaint` with its
  artifacts in `<run dir>/mlartifacts` (explicit: MLflow's default is ./mlruns under the
  working directory). Pass a server URI (`--mlflow-uri http://host:5000`) on a cluster. With
  the run on object storage (`--storage s3://...`), where an SQLite file cannot live, the
  default store is `driver_tracking_uri(storage)`: a file on the driver's machine, one per
  storage URL, its artifacts in the bucket.
- The run is found again by its tag `distpaint.run` (the training run's name), so re-running
  a training run to resume continues the same MLflow run.
- Parameters: the full config, flattened (`loss.lambda_ce`, ...), and the distributed options.
  MLflow parameters are immutable, so a resumed run logs only parameters it lacks; a changed
  `max_steps` goes to the tag `max_steps`.

    run_id = start_run(uri, run_dir, "run-1", params)            # driver
    log = RunLogger(uri, run_id); log.metrics(step, {...}); log.flush()   # rank 0
    finish_run(uri, run_id, checkpoint_dir, "FINISHED")          # driver

Needs mlflow (about 3 s to import), imported inside the functions that use it: only the
driver and rank 0 need it, and importing this module stays light.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["EXPERIMENT", "RUN_TAG", "MLFLOW_CACHE_VARIABLE", "default_tracking_uri", "driver_tracking_uri", "flatten", "start_run", "RunLogger",
           "finish_run", "find_run", "tracking_client"]

EXPERIMENT = "distpaint"
"""MLflow experiment of training runs."""
RUN_TAG = "distpaint.run"
"""Tag holding the training run's name."""

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def default_tracking_uri(run_dir: str | os.PathLike) -> str:
    """`sqlite:///<run dir>/mlflow.db` (absolute)."""
    return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


MLFLOW_CACHE_VARIABLE = "DISTPAINT_MLFLOW_CACHE"
"""Folder of the driver-side tracking stores of runs and sweeps on object storage (default
~/.cache/distpaint/mlflow)."""


def driver_tracking_uri(storage: str) -> str:
    """`sqlite:///<cache>/<storage slug>-<hash>.db`: the tracking store of runs (or sweeps) kept
    at URL `storage` when no --mlflow-uri is given. It stays on the driver's machine (a
    re-run there resumes the same MLflow run; the artifacts are in the bucket); name a tracking
    server with --mlflow-uri to share it."""
    cache = Path(os.environ.get(MLFLOW_CACHE_VARIABLE) or Path.home() / ".cache" / "distpaint" / "mlflow")
    cache.mkdir(parents=True, exist_ok=True)
    storage = storage.rstrip("/")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", storage)[-80:].strip("_")
    digest = hashlib.sha256(storage.encode()).hexdigest()[:12]
    return f"sqlite:///{cache.resolve() / f'{slug}-{digest}.db'}"


def flatten(data: dict, prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {"a.b": "value"} with values as strings (MLflow parameters)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


def tracking_client(uri: str):
    """An MlflowClient of `uri` (quiet about creating a new SQLite store)."""
    from mlflow.tracking import MlflowClient  # deferred: see the module docstring

    # a new SQLite store announces its table creation and migration at INFO on stderr, which
    # reads like a problem in the middle of a command's output
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def _experiment(client: Any, uri: str, run_dir: Path | None, artifact_root: str | None = None) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    location = artifact_root
    if uri.startswith("sqlite:") and run_dir is not None:
        location = (Path(run_dir).resolve() / "mlartifacts").as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def find_run(uri: str, name: str) -> Any | None:
    """The MLflow run of training run `name`, or None."""
    client = tracking_client(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{name}'",
                              max_results=1)
    return runs[0] if runs else None


def start_run(uri: str, run_dir: str | os.PathLike | None, name: str, params: dict[str, str],
              tags: dict[str, str] | None = None, artifact_root: str | None = None) -> str:
    """Create (or re-open, for a resumed training run) the MLflow run of training run `name`,
    log the parameters it lacks, mark it RUNNING; returns its id. `artifact_root`: where the
    experiment keeps its artifacts if it is created here (a run on object storage passes
    `<storage>/mlartifacts`, so they land in the bucket, not in ./mlruns of the driver)."""
    client = tracking_client(uri)
    exp_id = _experiment(client, uri, Path(run_dir) if run_dir is not None else None, artifact_root)
    found = find_run(uri, name)
    if found is None:
        run = client.create_run(exp_id, run_name=name, tags={RUN_TAG: name, **(tags or {})})
        run_id, logged = run.info.run_id, {}
    else:
        run_id, logged = found.info.run_id, dict(found.data.params)
        client.update_run(run_id, status="RUNNING")
        for key, value in (tags or {}).items():
            client.set_tag(run_id, key, value)
    from mlflow.entities import Param  # deferred: see the module docstring

    fresh = [Param(k, v[:6000]) for k, v in params.items() if k not in logged]
    for i in range(0, len(fresh), 100):  # log_batch takes at most 100 parameters
        client.log_batch(run_id, params=fresh[i:i + 100])
    if "max_steps" in logged and logged["max_steps"] != params.get("max_steps"):
        client.set_tag(run_id, "max_steps", params.get("max_steps"))
    return run_id


class RunLogger:
    """Buffered metric logging into one MLflow run (rank 0), plus images and artifacts.

    A run resumed after a failure redoes the steps since its last checkpoint, some of which
    were logged before the failure: a value at a step the run already holds for that metric is
    dropped, so every metric's history has one point per step."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.client = tracking_client(uri)
        self.run_id = run_id
        self._buffer: list[Any] = []
        self._logged_through = {key: max((m.step for m in self.client.get_metric_history(run_id, key)), default=-1)
                                for key in self.client.get_run(run_id).data.metrics}
        """Last step already in the run, per metric (empty for a new run)."""

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Queue `values` at `step` (non-finite values are dropped: MLflow rejects NaN in some
        stores and they carry no information)."""
        from mlflow.entities import Metric  # deferred: see the module docstring

        now = int(time.time() * 1000)
        for key, value in values.items():
            value = float(value)
            if value == value and abs(value) != float("inf") and step > self._logged_through.get(key, -1):
                self._buffer.append(Metric(key, value, now, int(step)))
        if len(self._buffer) >= 900:
            self.flush()

    def flush(self) -> None:
        """Write the queued metrics (log_batch takes at most 1000 per call)."""
        while self._buffer:
            chunk, self._buffer = self._buffer[:1000], self._buffer[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def image(self, image: Any, path: str) -> None:
        """Log an RGB uint8 array as PNG artifact `path` (e.g. "repairs/step_10/roots.png")."""
        folder, name = os.path.split(path)
        with tempfile.TemporaryDirectory() as tmp:
            file = os.path.join(tmp, name)
            Image.fromarray(image).save(file)
            self.client.log_artifact(self.run_id, file, folder or None)


MODEL_FILES = ("model.pt", "config.yaml", "card.json")
"""What of a checkpoint the artifact `model/` holds: the generator file (its registered name,
config and weights, loadable by `distpaint.models.modelfile` without training code), the recipe
and a card if any; not the training state (discriminators, optimisers)."""


def finish_run(uri: str, run_id: str, status: str = "FINISHED", checkpoint_dir: str | os.PathLike | None = None,
               metrics: dict[str, float] | None = None, register: str | None = None) -> str | None:
    """Log the final checkpoint directory as artifact `checkpoint/` and its generator alone as
    artifact `model/` (`MODEL_FILES`), final metrics, and end the run. With `register`, the
    `model/` artifact becomes a new version of the registered model of that name (created if
    missing): `distpaint infer --model models:/NAME/VERSION` reads it. Returns that model URI."""
    client = tracking_client(uri)
    registered = None
    if checkpoint_dir is not None:
        client.log_artifacts(run_id, str(checkpoint_dir), "checkpoint")
        with tempfile.TemporaryDirectory() as tmp:
            for name in MODEL_FILES:
                if (Path(checkpoint_dir) / name).is_file():
                    shutil.copyfile(Path(checkpoint_dir) / name, Path(tmp) / name)
            client.log_artifacts(run_id, tmp, "model")
        if register:
            registered = _register(client, register, run_id)
    if metrics:
        logger = RunLogger(uri, run_id)
        logger.metrics(int(metrics.get("step", 0)), {k: v for k, v in metrics.items()
                                                     if isinstance(v, (int, float)) and k != "step"})
        logger.flush()
    client.set_terminated(run_id, status=status)
    return registered


def _register(client: Any, name: str, run_id: str) -> str:
    """A new version of registered model `name` from the run's `model/` artifact."""
    from mlflow.exceptions import MlflowException  # deferred: see the module docstring

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(name, source, run_id=run_id).version
    return f"models:/{name}/{version}"
