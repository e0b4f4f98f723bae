"""MLflow tracking of training runs (distpaint.train.tracking) on a real SQLite store.

Run: .venv/bin/python -m pytest tests/test_tracking.py -q
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from distpaint.train.tracking import RunLogger, default_tracking_uri, find_run, finish_run, start_run


def _history(uri, run_id, key):
    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_a_resumed_run_logs_each_step_once(tmp_path):
    uri = default_tracking_uri(tmp_path)
    run_id = start_run(uri, tmp_path, "r1", {"seed": "0"})
    first = RunLogger(uri, run_id)
    for step in range(1, 6):
        first.metrics(step, {"loss": float(step), "nan": float("nan")})
    first.flush()
    # the run died after step 5 and resumes from its checkpoint at step 3: it re-opens the
    # same MLflow run and redoes steps 4 and 5 (their values differ here only to tell them apart)
    assert start_run(uri, tmp_path, "r1", {"seed": "0", "extra": "1"}) == run_id
    resumed = RunLogger(uri, run_id)
    for step in range(4, 9):
        resumed.metrics(step, {"loss": 100.0 + step, "val": 1.0})
    resumed.flush()
    assert _history(uri, run_id, "loss") == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0),
                                              (6, 106.0), (7, 107.0), (8, 108.0)]
    assert _history(uri, run_id, "val") == [(s, 1.0) for s in range(4, 9)]
    assert _history(uri, run_id, "nan") == []
    finish_run(uri, run_id, metrics={"step": 8, "loss": 108.0, "final_score": 0.5})
    assert _history(uri, run_id, "loss")[-1] == (8, 108.0) and len(_history(uri, run_id, "loss")) == 8
    assert _history(uri, run_id, "final_score") == [(8, 0.5)]
    run = find_run(uri, "r1")
    assert run.info.status == "FINISHED" and run.data.params["extra"] == "1"
