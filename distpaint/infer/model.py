"""The model of an inference job: what `--model` names, its predictor and its identity.

`ModelSpec` is what `run_job` and the Ray actors take: a shipped model's name, a checkpoint
directory, or (from Python) a picklable factory returning a `Predictor`. `load_predictor`
builds the predictor with the test-time refinements of an `InferConfig` (views, passes), so
the engine's empty-window probe and halo see the refinement; `model_fingerprint` names the
weights (a hash of `model.pt`) in a job's key, so a resumed job never mixes models.
`distpaint.infer.job` (local runs) and `distpaint.infer.ray_runner` (one predictor per actor)
both load models through here.

    predictor = load_predictor("roads", threads=2, infer=InferConfig(views=4))
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Callable
from dataclasses import replace

from distpaint.infer.engine import InferConfig
from distpaint.infer.predictor import Predictor, resolve_model
from distpaint.infer.refine import refine
from distpaint.infer.upsample import upsampled
from distpaint.weights import checkpoint_or_shipped

__all__ = ["ModelSpec", "PredictorsByFactor", "load_predictor", "model_fingerprint", "with_options"]

ModelSpec = str | os.PathLike | Callable[[], Predictor]
"""`--model`: a shipped model's name, a checkpoint directory, or (from Python) a picklable
factory returning a `Predictor` (give it a `fingerprint` attribute so that jobs resume)."""


def load_predictor(model: ModelSpec, *, gpu: bool = False, threads: int | None = None,
                   infer: InferConfig | None = None) -> Predictor:
    """The predictor of `model` (a name, a checkpoint, or a factory), with the up-sampling
    and the test-time refinements (views, passes) of `infer`."""
    if callable(model) and not isinstance(model, (str, os.PathLike)):
        predictor = model()
    else:
        predictor = resolve_model(model, gpu=gpu, threads=threads)
    return predictor if infer is None else with_options(predictor, infer)


def with_options(base: Predictor, infer: InferConfig) -> Predictor:
    """`base` (a bare model's predictor) up-sampled and refined as `infer` says."""
    predictor = upsampled(base, infer.upsample)  # under the refinements: they see its halo
    return refine(predictor, views=infer.views, passes=infer.passes, threshold=infer.threshold,
                  bridges_only=infer.bridges_only)


class PredictorsByFactor:
    """One bare model, its predictors for each up-sampling factor a job's masks ask for
    (built on first use; the model's weights are loaded once)."""

    def __init__(self, base: Predictor, infer: InferConfig) -> None:
        self.base, self.infer = base, infer
        self._made: dict[int, Predictor] = {}

    def infer_for(self, factor: int) -> InferConfig:
        """The job's InferConfig with `factor`."""
        return replace(self.infer, upsample=factor)

    def __getitem__(self, factor: int) -> Predictor:
        if factor not in self._made:
            self._made[factor] = with_options(self.base, self.infer_for(factor))
        return self._made[factor]


def _model_file(model: str | os.PathLike) -> pathlib.Path:
    return checkpoint_or_shipped(model) / "model.pt"


def model_fingerprint(model: ModelSpec) -> str:
    """Identity of the model's weights (a hash of model.pt), or a factory's `fingerprint`."""
    if callable(model) and not isinstance(model, (str, os.PathLike)):
        fp = getattr(model, "fingerprint", None)
        return str(fp) if fp is not None else f"{type(model).__module__}.{type(model).__qualname__}"
    digest = hashlib.sha256()
    with open(_model_file(model), "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
