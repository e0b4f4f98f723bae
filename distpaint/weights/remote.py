"""Models that live elsewhere: checkpoint folders on object storage and MLflow model URIs,
fetched into a local cache so that `--model` takes them like a checkpoint directory.

    --model s3://bucket/runs/r1/checkpoints/step_00001000     # any fsspec URL of a folder
    --model models:/roads/3        --model runs:/<run id>/checkpoint

A folder URL must hold `model.pt` (and may hold `card.json`, `config.yaml`); an MLflow URI
(`models:/NAME/VERSION`, `models:/NAME@ALIAS`, `runs:/ID/PATH`, resolved against
MLFLOW_TRACKING_URI) must download to a folder holding `model.pt` at its top or one level
below (an MLflow model's `data/`). The cache is `$DISTPAINT_MODEL_CACHE` (default
`~/.cache/distpaint/models`), one folder per URI, written under a temporary name and renamed
into place once complete and verified: a killed download is never used.

Verification: every downloaded file's size equals the source's, and `model.pt` is there. A
cached folder URL is re-used only while the remote `model.pt` keeps its ETag and size (one
HEAD request per use), so a replaced checkpoint is fetched again; `runs:/` and numbered
`models:/` versions are immutable and re-used as cached, aliases and `latest` are fetched on
every use. Every failure (bad URL, missing bucket or key, no model.pt, unknown model or run)
is an InputError naming the URI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from distpaint.data import location
from distpaint.errors import InputError

__all__ = ["is_remote_model", "fetch_model", "CACHE_VARIABLE"]

CACHE_VARIABLE = "DISTPAINT_MODEL_CACHE"
"""Folder of the fetched models (default ~/.cache/distpaint/models)."""

_MLFLOW_RE = re.compile(r"^(models|runs):/")
_SOURCE_FILE = ".source.json"  # what the cached copy was fetched from (URI, ETag, size)


def is_remote_model(model: str | os.PathLike) -> bool:
    """True for a `--model` that names a URL or an MLflow model URI."""
    text = os.fspath(model)
    return location.is_url(text) or bool(_MLFLOW_RE.match(text))


def _cache_root() -> Path:
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "distpaint" / "models")


def _slot(uri: str) -> Path:
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", uri.rstrip("/").rsplit("/", 1)[-1])[:40] or "model"
    return _cache_root() / f"{tail}-{digest}"


def _find_model(folder: Path, uri: str) -> Path:
    """The folder under `folder` that holds model.pt (itself or one level down)."""
    if (folder / "model.pt").is_file():
        return folder
    below = sorted(p.parent for p in folder.glob("*/model.pt"))
    if len(below) == 1:
        return below[0]
    raise InputError(f"{uri}: not a distpaint checkpoint (no model.pt"
                     f"{'' if not below else ', or more than one one level down'})")


def _remote_stamp(uri: str) -> dict:
    fs, path = location.fs_path(uri)
    key = f"{path.rstrip('/')}/model.pt"
    try:
        info = fs.info(key)
    except FileNotFoundError:
        location.exists(uri)  # a missing bucket says so; else the key is missing
        raise InputError(f"{uri}: no model.pt there (not a distpaint checkpoint folder)") from None
    except Exception as exc:  # denied, unreachable
        raise location.url_error(uri, exc) from None
    return {"uri": uri, "etag": str(info.get("ETag") or info.get("mtime") or ""),
            "size": info.get("size")}


def _download_folder(uri: str, dest: Path) -> None:
    """Every object below `uri` into `dest`, each checked against the source's size."""
    fs, path = location.fs_path(uri)
    root = path.rstrip("/")
    try:
        found = fs.find(root, detail=True)
    except Exception as exc:
        raise location.url_error(uri, exc, "cannot list") from None
    for key, info in sorted(found.items()):
        rel = key[len(root):].lstrip("/")
        if not rel:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fs.get_file(key, str(target))
        except Exception as exc:
            raise location.url_error(f"{uri.rstrip('/')}/{rel}", exc, "cannot download") from None
        if info.get("size") is not None and target.stat().st_size != info["size"]:
            raise InputError(f"{uri.rstrip('/')}/{rel}: downloaded {target.stat().st_size} bytes, "
                             f"the source has {info['size']}")


def _registered_version_source(uri: str, tracking: str | None, registry: str | None) -> str:
    """A `models:/NAME/VERSION|@ALIAS|/STAGE[/path]` URI as the artifact URI of its version,
    looked up in `registry`: MLflow's own models:/ resolution asks the process-global registry
    whatever registry_uri it is given. Other URIs (runs:/, logged-model ids) pass unchanged."""
    if not uri.startswith("models:"):
        return uri
    # deferred, as in _download_mlflow: MLflow is heavy and only MLflow URIs need it
    from mlflow import MlflowClient
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    if registry is None or ModelsArtifactRepository._is_logged_model_uri(uri):
        return uri
    base, inner = ModelsArtifactRepository.split_models_uri(uri)
    client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
    name, version = get_model_name_and_version(client, base)
    source = client.get_model_version_download_uri(name, version)
    return f"{source.rstrip('/')}/{inner}" if inner else source


def _download_mlflow(uri: str, dest: Path) -> None:
    # deferred: MLflow is heavy (~2 s) and only MLflow URIs need it
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    # the environment's stores, as documented, even where a library caller (Ray Tune's MLflow
    # integration does) set a process-global tracking URI earlier
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or None
    registry = os.environ.get("MLFLOW_REGISTRY_URI") or tracking
    try:
        source = _registered_version_source(uri, tracking, registry)
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dest),
                                            tracking_uri=tracking, registry_uri=registry)
    except MlflowException as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{uri}: cannot fetch from MLflow ({detail})") from None
    except OSError as exc:
        raise InputError(f"{uri}: cannot fetch from MLflow ({exc})") from None


def _immutable(uri: str) -> bool:
    """runs:/ paths and numbered registry versions never change."""
    return uri.startswith("runs:/") or bool(re.match(r"^models:/[^/@]+/\d+(/|$)", uri))


def fetch_model(uri: str) -> Path:
    """The local checkpoint folder (holding model.pt) of the remote model `uri`, fetched into
    the cache unless a valid copy is there (see the module docstring)."""
    uri = os.fspath(uri).rstrip("/")
    slot = _slot(uri)
    mlflow_uri = bool(_MLFLOW_RE.match(uri))
    stamp = {"uri": uri} if mlflow_uri else _remote_stamp(uri)
    if slot.is_dir() and (mlflow_uri and _immutable(uri) or not mlflow_uri):
        try:
            cached = json.loads((slot / _SOURCE_FILE).read_text())
        except (OSError, ValueError):
            cached = None
        if cached == stamp:
            return _find_model(slot, uri)
    slot.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{slot.name}-", dir=slot.parent))
    try:
        (_download_mlflow if mlflow_uri else _download_folder)(uri, tmp)
        _find_model(tmp, uri)  # verified before it can be used
        (tmp / _SOURCE_FILE).write_text(json.dumps(stamp))
        if slot.exists():  # an outdated copy: moved aside, then removed
            old = slot.with_name(f".{slot.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(slot, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, slot)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _find_model(slot, uri)
