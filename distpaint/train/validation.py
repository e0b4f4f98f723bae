"""Periodic validation during training: repair benchmark masks with G, score them, draw examples.

A validation set is a mask store of corrupted samples (layers `mask` = the corrupted input,
`truth`, optionally `gaps`), the layout of the benchmark sets (`distpaint benchset make`), or a
directory of such stores (every sample of every store, named `<store>/<sample>`). Without
one, `synthesize_val_store` draws one whole mask per training kind from seeds disjoint from the
training pool's and corrupts it with the config's gaps.

`validate(g, samples)` repairs each sample with the plain generator (whole-image inference,
threshold 0.5, output = input OR fill, as `distpaint infer` does) and evaluates it blind with
`distpaint.metrics.evaluate`: per sample and averaged, the relative component difference
(`rel_component_diff`, 0 = no change, 1 = the truth's component count), clDice and the MSE in
the gaps. `repair_image` draws an example repair as an RGB image: kept input white, added pixels
on the truth green, added pixels off the truth red, missed truth pixels blue.

    samples = load_val_samples("runs/x/val.zarr", max_side=1024)
    metrics, images = validate(g, samples)      # {"rel_component_diff": ..., ...}, {name: RGB}
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distpaint.data import location
from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.store import MaskStore
from distpaint.data.synth import SynthConfig, synth_array
from distpaint.errors import ConfigError, InputError
from distpaint.infer.tiling import whole_apply
from distpaint.metrics.evaluation import EvalConfig, evaluate
from distpaint.train.config import TrainConfig

__all__ = ["ValSample", "VAL_METRICS", "synthesize_val_store", "load_val_samples", "repair", "validate",
           "repair_image"]

VAL_METRICS = ("rel_component_diff", "cldice", "mse_gaps")
"""Metrics of `distpaint.metrics.evaluate` logged per validation."""


@dataclass
class ValSample:
    """One validation mask (cropped to the validation size)."""

    name: str
    """`<sample>` or `<store>/<sample>`."""
    input: np.ndarray
    """(H, W) bool corrupted mask given to G."""
    truth: np.ndarray
    """(H, W) bool complete mask."""


def _write_val(store: MaskStore, cfg: TrainConfig, gaps: GapConfig, size: int,
               skip: set[str] = frozenset()) -> None:
    seeds = np.random.SeedSequence([cfg.seed, 13]).generate_state(len(cfg.data.kinds))
    for i, kind in enumerate(cfg.data.kinds):
        if f"{kind}-val-{i}" in skip:
            continue
        truth = synth_array(kind, (size, size), int(seeds[i]), SynthConfig(**cfg.data.synth))
        corrupted, removed = corrupt(truth, gaps, np.random.default_rng([cfg.seed, 13, i]))
        store.write(f"{kind}-val-{i}", {"mask": corrupted, "truth": truth, "gaps": removed},
                    {"kind": kind, "seed": int(seeds[i]), "source": "distpaint.train.validation"})


def synthesize_val_store(cfg: TrainConfig, path: str | os.PathLike, size: int | None = None) -> Path | str:
    """One corrupted whole mask per kind of `cfg.data` (seeds salted apart from the training
    pool), written atomically at `path`; an existing store is kept. At a URL (object storage, no
    rename) each sample is written atomically and those already there are kept (the samples
    are a pure function of the config: a half-written store is completed)."""
    size = size or max(cfg.data.mask_size, 256)
    try:
        gaps = GapConfig(**cfg.data.gaps)
    except TypeError as exc:
        raise ConfigError(f"data.gaps: {exc}") from None
    if location.is_url(path):
        store = MaskStore.create(os.fspath(path), exist_ok=True)
        _write_val(store, cfg, gaps, size, skip=set(store.names()))
        return os.fspath(path)
    path = Path(path)
    if path.exists():
        MaskStore.open(path)
        return path
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    store = MaskStore.create(tmp)
    try:
        _write_val(store, cfg, gaps, size)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _stores(path: Path | str) -> list[tuple[str, MaskStore]]:
    if isinstance(path, str):  # a URL: a store, or a folder of stores, on object storage
        if location.is_file(location.join(path, "zarr.json")):
            return [("", MaskStore.open(path))]
        # a sweep's validation set in a bucket: the patch level of a benchmark set, one store
        # per kind, named as in a local folder of stores so the scores' names match
        found = [(n, MaskStore.open(location.join(path, n))) for n in location.list_names(path)
                 if location.is_file(location.join(path, n, "zarr.json"))]
        if found:
            return found
        raise InputError(f"{path}: not a validation set (a mask store, or a folder of stores)")
    if (path / "zarr.json").is_file():
        return [("", MaskStore.open(path))]
    if path.is_dir():
        found = [(p.name, MaskStore.open(p)) for p in sorted(path.iterdir()) if (p / "zarr.json").is_file()]
        if found:
            return found
    raise InputError(f"{path}: not a validation set (a mask store, or a directory of stores)")


def load_val_samples(path: str | os.PathLike, max_side: int = 1024, limit: int = 16) -> list[ValSample]:
    """The corrupted samples (with a `truth` layer) of a store or directory of stores, each
    cropped to its top-left `max_side` square, at most `limit` of them."""
    out: list[ValSample] = []
    for prefix, store in _stores(os.fspath(path) if location.is_url(path) else Path(path)):
        for name in store.names():
            if "truth" not in store.layers(name) or len(out) >= limit:
                continue
            h, w = store.shape(name)
            crop = (slice(0, min(h, max_side)), slice(0, min(w, max_side)))
            out.append(ValSample(f"{prefix}/{name}" if prefix else name,
                                 np.asarray(store.array(name, "mask")[crop], dtype=bool),
                                 np.asarray(store.array(name, "truth")[crop], dtype=bool)))
    if not out:
        raise InputError(f"{path}: no corrupted samples (with a truth layer) to validate on")
    return out


@torch.no_grad()
def repair(g: torch.nn.Module, mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Whole-image repair of `mask` (H, W) with generator `g` (eval mode inside): input OR
    (probability > threshold)."""
    was_training = g.training
    g.eval()
    try:
        device = next(g.parameters()).device

        def fn(image: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(image)[None, None].to(device)
            return g.predict_proba(x)[0, 0].float().cpu().numpy()

        prob = whole_apply(mask.astype(np.float32), fn, getattr(g, "size_multiple", 1))
    finally:
        g.train(was_training)
    return mask | (prob > threshold)


def validate(g: torch.nn.Module, samples: list[ValSample]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metrics `val/<metric>` (mean over samples) and `val/<sample>/<metric>`, and one example
    repair image per sample."""
    metrics: dict[str, float] = {}
    images: dict[str, np.ndarray] = {}
    sums: dict[str, list[float]] = {k: [] for k in VAL_METRICS}
    for s in samples:
        pred = repair(g, s.input)
        values = evaluate(pred, s.truth, input=s.input, config=EvalConfig(traits=False, workers=1))
        for k in VAL_METRICS:
            v = float(values[k])
            metrics[f"val/{s.name}/{k}"] = v
            if math.isfinite(v):
                sums[k].append(v)
        images[s.name] = repair_image(s.input, pred, s.truth)
    for k, vs in sums.items():
        metrics[f"val/{k}"] = float(np.mean(vs)) if vs else float("nan")
    return metrics, images


def repair_image(inp: np.ndarray, pred: np.ndarray, truth: np.ndarray, max_side: int = 512) -> np.ndarray:
    """RGB uint8 (h, w, 3) of a repair (top-left `max_side` crop): input white, added on the
    truth green, added off the truth red, truth still missing blue."""
    crop = (slice(0, max_side), slice(0, max_side))
    inp, pred, truth = inp[crop], pred[crop], truth[crop]
    img = np.zeros(inp.shape + (3,), np.uint8)
    img[inp] = 255
    added = pred & ~inp
    img[added & truth] = (0, 200, 0)
    img[added & ~truth] = (230, 0, 0)
    img[truth & ~pred] = (40, 90, 255)
    return img
