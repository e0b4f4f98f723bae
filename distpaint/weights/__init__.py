"""The trained models shipped with distpaint: one checkpoint directory per model name.

Each `distpaint/weights/<name>/` holds what inference needs (`model.pt`: the generator's
registered name, config and weights; see `distpaint.models.modelfile`), the training recipe
(`config.yaml`) and a model card, `card.json`: what the model is for, the exact command,
config and seed that produced it, its speed and its benchmark scores. Nothing here imports
torch, so listing models is instant.

    from distpaint.weights import shipped_models, model_card
    for name in shipped_models():
        print(name, model_card(name)["description"])

From the shell: `distpaint models`; inference picks one with `--model NAME` (or a checkpoint
folder, a folder URL, an MLflow model URI: `checkpoint_or_shipped`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distpaint.errors import InputError
from distpaint.weights.remote import fetch_model, is_remote_model

__all__ = ["WEIGHTS_DIR", "shipped_models", "model_dir", "model_card", "checkpoint_or_shipped",
           "inference_defaults", "DEFAULT_THRESHOLD", "DEFAULT_KEEP", "DEFAULT_UPSAMPLE",
           "DEFAULT_MIN_CONFIDENCE"]

DEFAULT_THRESHOLD = 0.5
"""Foreground probability threshold of a model whose card names none."""
DEFAULT_KEEP = "bridges"
"""Keep policy (`distpaint.infer.keep`) of a model whose card names none."""
DEFAULT_UPSAMPLE: int | str = 1
"""The up-sampling factor (`distpaint infer --upsample`) of a model whose card names none: the
model's own resolution. A card may say `auto` (`distpaint.infer.upsample`)."""

DEFAULT_MIN_CONFIDENCE = 0.0
"""The confidence floor on added pieces (`distpaint infer --min-confidence`) of a model whose
card names none: no floor."""

WEIGHTS_DIR = Path(__file__).resolve().parent
"""Where the shipped checkpoint directories live."""


def shipped_models() -> list[str]:
    """Sorted names of the shipped models (directories holding a `model.pt`)."""
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "model.pt").is_file())


def model_dir(name: str) -> Path:
    """Checkpoint directory of shipped model `name`; InputError listing the shipped ones."""
    path = WEIGHTS_DIR / name
    if name not in shipped_models():
        have = ", ".join(shipped_models()) or "none"
        raise InputError(f"no shipped model {name!r}; shipped: {have}")
    return path


def model_card(name: str) -> dict[str, Any]:
    """The model card (`card.json`) of shipped model `name` ({} if it has none)."""
    card = model_dir(name) / "card.json"
    return json.loads(card.read_text()) if card.is_file() else {}


def checkpoint_or_shipped(name_or_path: str | Path) -> Path:
    """Checkpoint directory of `name_or_path`: a checkpoint directory (or its model.pt), a
    folder URL (s3://...) or an MLflow model URI (models:/NAME/VERSION, runs:/ID/PATH), fetched
    into a local cache (`distpaint.weights.remote`), else the name of a shipped model;
    InputError naming it and the shipped models otherwise."""
    if isinstance(name_or_path, str) and is_remote_model(name_or_path):
        return fetch_model(name_or_path)
    path = Path(name_or_path)
    if path.is_file() and path.name == "model.pt":
        return path.parent
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise InputError(f"{path}: not a distpaint checkpoint (no model.pt)")
        return path
    if str(name_or_path) in shipped_models():
        return WEIGHTS_DIR / str(name_or_path)
    have = ", ".join(shipped_models()) or "none shipped; pass a checkpoint directory"
    raise InputError(f"model {str(name_or_path)!r} does not exist; available: {have}")


def inference_defaults(name_or_path: str | Path) -> dict[str, Any]:
    """{"threshold", "keep", "upsample", "min_confidence"}: the inference defaults a model was chosen
    with on the real validation masks, from its card's `inference` entry (shipped models and checkpoint
    directories holding a card.json), else the DEFAULT_* values. Anything that
    is not a model (a factory, a missing path) gets the defaults; loading it reports the error."""
    try:
        card_file = checkpoint_or_shipped(name_or_path) / "card.json"
    except (InputError, TypeError):
        card_file = None
    card = json.loads(card_file.read_text()) if card_file is not None and card_file.is_file() else {}
    chosen = card.get("inference", {})
    return {"threshold": float(chosen.get("threshold", card.get("threshold", DEFAULT_THRESHOLD))),
            "keep": str(chosen.get("keep", DEFAULT_KEEP)),
            "upsample": chosen.get("upsample", DEFAULT_UPSAMPLE),
            "min_confidence": _floor(chosen.get("min_confidence", DEFAULT_MIN_CONFIDENCE))}


def _floor(value: Any) -> float | str:
    """A card's confidence floor: a number, or "auto" (chosen per mask by
    `distpaint.infer.self_check`)."""
    return value if value == "auto" else float(value)
