"""MLflow for sweeps: a parent run per sweep, one child run per trial, written by the Tune driver.

- Store: default `sqlite:///<sweep dir>/mlflow.db`, experiment `distpaint-tune` with its
  artifacts in `<sweep dir>/mlartifacts` (MLflow's default would be ./mlruns under the working
  directory); pass a server URI (`--mlflow-uri http://host:5000`) on a cluster.
- Parent: tagged `distpaint.sweep=<name>`, so re-running an interrupted sweep re-opens it; its
  parameters are the sweep's options, the searched paths and the base config (`base.*`); at the
  end it gets the summary table (`summary.csv`, `summary.md`), the plot, the best config and
  the metrics `best/<metric>`.
- Children: `SweepLogger`, an `MLflowLoggerCallback` on the Tuner's RunConfig (so only the
  driver writes: an SQLite store never sees concurrent writers). Each trial's run is tagged
  `mlflow.parentRunId` and `distpaint.trial_id` (found again on resume), holds the trial's full
  config as parameters (`loss.lambda_ce`, ...; the searched ones also listed in the tag
  `distpaint.searched`), one point per report of every metric at the training step
  (`val/rel_component_diff`, `val/cldice`, losses, throughput), and at its end the final scores
  `final/<metric>` and `best/<metric>` and the tags `distpaint.checkpoint`, `distpaint.steps`,
  `distpaint.stopped_early`.

Each trial's training run additionally keeps its own per-step MLflow store in its run directory
(`<sweep dir>/runs/<trial run>/mlflow.db`, as `distpaint train` does), named by the child's tag
`distpaint.trial_mlflow`.

Needs mlflow and Ray Tune (the driver imports this module; trials do not).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from ray.air.integrations.mlflow import MLflowLoggerCallback

from distpaint.train.config import config_from_dict, config_to_dict
from distpaint.train.tracking import flatten, tracking_client
from distpaint.tune.space import parse_space
from distpaint.tune.trial import trial_run_name

__all__ = ["EXPERIMENT", "SWEEP_TAG", "TRIAL_TAG", "default_tracking_uri", "ensure_experiment", "start_parent",
           "find_children", "SweepLogger", "numeric_metrics"]

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

EXPERIMENT = "distpaint-tune"
"""MLflow experiment of sweeps (training runs use `distpaint`)."""
SWEEP_TAG = "distpaint.sweep"
"""Tag with the sweep's name (parent and children)."""
TRIAL_TAG = "distpaint.trial_id"
"""Tag with the Tune trial id (children)."""
_PARENT_ROLE = "distpaint.role"
# Tune's bookkeeping in every result; kept out of the children's metrics
_SKIP = {"training_iteration", "timestamp", "pid", "time_this_iter_s", "time_since_restore",
         "iterations_since_restore", "timesteps_since_restore", "done", "step"}


def default_tracking_uri(sweep_dir: str | os.PathLike) -> str:
    """`sqlite:///<sweep dir>/mlflow.db` (absolute)."""
    return f"sqlite:///{Path(sweep_dir).resolve() / 'mlflow.db'}"


def ensure_experiment(uri: str, sweep_dir: str | os.PathLike | None, artifact_root: str | None = None) -> str:
    """The sweeps' experiment id, created with its artifacts under the sweep dir (SQLite stores),
    or at `artifact_root` (a sweep on object storage: `<sweep dir URL>/mlartifacts`)."""
    client = tracking_client(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    location = artifact_root
    if uri.startswith("sqlite:") and sweep_dir is not None:
        location = (Path(sweep_dir).resolve() / "mlartifacts").as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def _log_params(client: Any, run_id: str, params: dict[str, str], logged: dict[str, str]) -> None:
    """Log the parameters `run_id` lacks (MLflow parameters are immutable)."""
    fresh = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in logged]
    for i in range(0, len(fresh), 100):  # log_batch takes at most 100 parameters
        client.log_batch(run_id, params=fresh[i:i + 100])


def start_parent(uri: str, sweep_dir: str | os.PathLike | None, name: str, params: dict[str, str],
                 artifact_root: str | None = None) -> str:
    """Create (or re-open, when the sweep resumes) the sweep's parent run; returns its id.
    `artifact_root`: see `ensure_experiment`."""
    client = tracking_client(uri)
    exp_id = ensure_experiment(uri, sweep_dir, artifact_root)
    found = client.search_runs([exp_id], filter_string=f"tags.`{SWEEP_TAG}` = '{name}' and "
                                                       f"tags.`{_PARENT_ROLE}` = 'sweep'", max_results=1)
    if found:
        run_id, logged = found[0].info.run_id, dict(found[0].data.params)
        client.update_run(run_id, status="RUNNING")
    else:
        run = client.create_run(exp_id, run_name=name, tags={SWEEP_TAG: name, _PARENT_ROLE: "sweep"})
        run_id, logged = run.info.run_id, {}
    _log_params(client, run_id, params, logged)
    return run_id


def find_children(uri: str, parent_id: str) -> dict[str, Any]:
    """{trial id: MLflow run} of a parent's children."""
    client = tracking_client(uri)
    parent = client.get_run(parent_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=10000)
    return {r.data.tags[TRIAL_TAG]: r for r in runs if TRIAL_TAG in r.data.tags}


def numeric_metrics(result: dict) -> dict[str, float]:
    """The finite numeric metrics of a Tune result (flat), without Tune's bookkeeping and
    without the per-sample validation scores `val/<sample>/<metric>` (the trial's own MLflow
    run keeps those; the child run keeps the averages `val/<metric>`)."""
    out = {}
    for key, value in result.items():
        if key in _SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key.startswith("val/") and key.count("/") > 1:
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class SweepLogger(MLflowLoggerCallback):
    """The Tuner's MLflow callback: one child run per trial under the sweep's parent run (see
    the module docstring). Runs in the Tune driver only."""

    def __init__(self, tracking_uri: str, parent_id: str, sweep: str, base: dict, space_data: dict,
                 space_source: str, metric: str, mode: str, max_steps: int, runs_dir: str | None) -> None:
        super().__init__(tracking_uri=tracking_uri, experiment_name=EXPERIMENT,
                         tags={"mlflow.parentRunId": parent_id, SWEEP_TAG: sweep})
        self.parent_id = parent_id
        self.sweep = sweep
        self.base = base
        self.space_data = space_data
        self.space_source = space_source
        self.metric, self.mode = metric, mode
        self.max_steps = max_steps
        self.runs_dir = runs_dir

    def _space(self):
        return parse_space(self.space_data, self.space_source)

    def log_trial_start(self, trial: Any) -> None:
        """Find (resumed trial) or create the trial's child run; log its full config."""
        client = self.mlflow_util._get_client()
        if trial not in self._trial_runs:
            found = client.search_runs([self.mlflow_util.experiment_id],
                                       filter_string=f"tags.`{TRIAL_TAG}` = '{trial.trial_id}' and "
                                                     f"tags.`{SWEEP_TAG}` = '{self.sweep}'", max_results=1)
            if found:
                run_id = found[0].info.run_id
                client.update_run(run_id, status="RUNNING")
            else:
                space = self._space()
                tags = {**self.tags, TRIAL_TAG: trial.trial_id, "trial_name": str(trial),
                        "distpaint.searched": ",".join(space.paths)}
                if self.runs_dir is not None:
                    run_dir = Path(self.runs_dir) / trial_run_name(self.sweep, trial.trial_id)
                    tags["distpaint.run_dir"] = str(run_dir)
                    tags["distpaint.trial_mlflow"] = f"sqlite:///{run_dir / 'mlflow.db'}"
                run_id = client.create_run(self.mlflow_util.experiment_id, run_name=str(trial), tags=tags).info.run_id
            self._trial_runs[trial] = run_id
        run_id = self._trial_runs[trial]
        space = self._space()
        cfg = space.apply(config_from_dict(self.base, "base config"), trial.config)
        params = flatten({**config_to_dict(cfg), "max_steps": self.max_steps})
        _log_params(client, run_id, params, dict(client.get_run(run_id).data.params))

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        """One point per report, at the training step (not Tune's iteration counter, which
        restarts when a resumed trial starts again)."""
        run_id = self._trial_runs[trial]
        step = int(result.get("step", iteration))
        ms = int(result.get("timestamp", 0) * 1000)
        batch = [Metric(k, v, ms, step) for k, v in numeric_metrics(result).items()]
        client = self.mlflow_util._get_client()
        for i in range(0, len(batch), 1000):
            client.log_batch(run_id, metrics=batch[i:i + 1000])

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        """Final and best scores, the checkpoint, whether ASHA stopped it; end the child run."""
        client = self.mlflow_util._get_client()
        run_id = self._trial_runs[trial]
        last = trial.last_result or {}
        step = int(last.get("step", 0))
        finals = []
        analysis = getattr(trial, "metric_analysis", {}) or {}
        for key, value in numeric_metrics(last).items():
            if key.startswith("val/"):  # the averaged validation scores
                finals.append(Metric(f"final/{key}", value, 0, step))
                best = analysis.get(key, {}).get("max" if self.mode == "max" else "min")
                if best is not None and math.isfinite(best):
                    finals.append(Metric(f"best/{key}", float(best), 0, step))
        if finals:
            client.log_batch(run_id, metrics=finals)
        client.set_tag(run_id, "distpaint.steps", str(step))
        client.set_tag(run_id, "distpaint.stopped_early", str(not failed and step < self.max_steps).lower())
        if last.get("checkpoint_path"):
            client.set_tag(run_id, "distpaint.checkpoint", str(last["checkpoint_path"]))
        client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")

