"""Shared pytest fixtures: a real local Ray instance (started once per session, only by the
tests that ask for it) and the GPU skip marker."""

from __future__ import annotations

import os

import pytest

# A private local Ray: no token auth, no telemetry, no usage stats.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """A real local Ray instance with 2 CPUs, shared by every test of the session that uses it,
    started the way the commands start theirs (with the dashboard, whose state API Ray Train's
    placement-group cleaner needs: distpaint.ray_connect)."""
    import ray

    from distpaint.ray_connect import connect

    if ray.is_initialized():
        yield ray
        return
    connect(num_cpus=2, temp_dir=str(tmp_path_factory.mktemp("ray")), log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
