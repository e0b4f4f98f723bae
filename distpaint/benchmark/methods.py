"""Repair methods for benchmarking: a registry of named functions mask -> mask.

A `Method` repairs a corrupted mask: `repair` on an in-memory (H, W) bool array (patches),
optionally `repair_batch` on a (B, H, W) stack (models run patches in batches) and
`repair_whole` on a lazy Dask mask of any size (tiled, bounded memory). The benchmark
(`distpaint.benchmark.quality`, `bench/quality.py`) only ever calls these, so a new kind of
method plugs in by registering a factory, with no change to the benchmark:

- built in: `identity` (the unrepaired input: relative improvements 0 by definition),
  `closing` and `linking` (the classical baselines, `distpaint.baselines`), with options as
  `closing:radius=5` or `linking:max_distance=30,max_angle=40`;
- learned models: `model_method("runs/x/checkpoints/step_00000500")`, a shipped model name
  (`model_method("roads")`) or `LABEL=NAME_OR_CHECKPOINT`, through `distpaint.infer`
  (`resolve_model`): patches are predicted whole (zero-padded to the model's alignment, as
  `whole_apply` does), whole masks by the streaming tiled engine (`run_inference`), which
  equals whole-image inference exactly; output = input OR (probability > threshold). The
  test-time refinements of `distpaint infer` (`--views`, `--passes`) and the model's own
  threshold, `bridges_only` and `drop_islands` are options after a colon:
  `refined=roads:views=4,passes=2,threshold=0.6,drop_islands=1`.

    from distpaint.benchmark.methods import get_method, model_method, register_method
    closing = get_method("closing:radius=4")
    repaired = closing.repair(mask)
    register_method("mine", lambda **opts: Method("mine", "my repair", my_fn))

(The demo's `distpaint.demo.repairs.StoreRepair` is another thing: a repair of a whole mask
store on disk through the CLI's code paths, one row of the demo's report.)
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import yaml
import zarr
from zarr.storage import LocalStore

from distpaint.baselines.closing import ClosingConfig, closing, closing_dask
from distpaint.baselines.linking import LinkingConfig, linking, linking_dask
from distpaint.data.store import compressors
from distpaint.errors import ConfigError
from distpaint.infer.engine import InferConfig, decide, output_layout, run_inference
from distpaint.infer.keep import keep_added
from distpaint.infer.predictor import resolve_model
from distpaint.infer.model import PredictorsByFactor
from distpaint.infer.self_check import choose_min_confidence, parse_min_confidence
from distpaint.infer.tiling import round_up
from distpaint.infer.upsample import choose_upsample, parse_upsample
from distpaint.weights import inference_defaults

__all__ = [
    "Method",
    "get_method",
    "method_names",
    "model_method",
    "parse_spec",
    "register_method",
    "resolve_methods",
]


@dataclass(frozen=True)
class Method:
    """One way of repairing corrupted masks (see the module docstring)."""

    name: str
    """Row label in tables and key in result files."""
    description: str
    """One line for reports."""
    repair: Callable[[np.ndarray], np.ndarray]
    """(H, W) bool -> (H, W) bool repaired mask, in memory."""
    repair_whole: Callable[[Any, pathlib.Path], Any] | None = None
    """Whole masks: (lazy (H, W) Dask bool mask, scratch folder) -> the repaired mask as a
    Dask, Zarr or NumPy array, in bounded memory (temporaries go under the scratch folder,
    which lives until the mask is scored). None: the mask is loaded and `repair` applied."""
    repair_batch: Callable[[np.ndarray], np.ndarray] | None = None
    """(B, H, W) bool -> (B, H, W) bool; None: `repair` one mask at a time."""

    def repair_many(self, masks: np.ndarray) -> np.ndarray:
        """Repair a (B, H, W) stack (batched when the method can)."""
        if self.repair_batch is not None:
            return np.asarray(self.repair_batch(masks), dtype=bool)
        return np.stack([np.asarray(self.repair(m), dtype=bool) for m in masks])


# ---- the registry --------------------------------------------------------------------------
_FACTORIES: dict[str, Callable[..., Method]] = {}


def register_method(name: str, factory: Callable[..., Method], *, replace: bool = False) -> None:
    """Register `factory(**options) -> Method` under `name` (ConfigError if taken)."""
    if not name or ":" in name or "=" in name:
        raise ConfigError(f"method name {name!r} must be non-empty without ':' or '='")
    if name in _FACTORIES and not replace:
        raise ConfigError(f"method {name!r} is already registered")
    _FACTORIES[name] = factory


def method_names() -> list[str]:
    """Registered method names, in registration order."""
    return list(_FACTORIES)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """`NAME[:key=value,...]` -> (NAME, {key: value}), values parsed as YAML scalars."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"method {spec!r}: options are key=value pairs separated by ','")
        options[key.strip()] = yaml.safe_load(value)
    return name, options


def get_method(spec: str) -> Method:
    """The method of a registered `NAME[:key=value,...]` spec; ConfigError listing the names."""
    name, options = parse_spec(spec)
    if name not in _FACTORIES:
        raise ConfigError(f"unknown method {name!r}; registered: {', '.join(_FACTORIES)} "
                          "(learned models: --models NAME_OR_CHECKPOINT)")
    return _FACTORIES[name](**options)


def resolve_methods(specs: Sequence[str] = (), models: Sequence[str] = (),
                    **model_options: Any) -> list[Method]:
    """Methods of registered `specs` and `models` (names or checkpoints, `model_method`),
    in that order; ConfigError on duplicate names."""
    methods = [get_method(s) for s in specs] + [model_method(m, **model_options) for m in models]
    names = [m.name for m in methods]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"methods named twice: {', '.join(duplicated)} (label models as "
                          "LABEL=CHECKPOINT)")
    if not methods:
        raise ConfigError("no methods to evaluate")
    return methods


def _config(cls: type, options: dict[str, Any], method: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"method {method}: unknown option(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(known))}")
    return cls(**options)


def _spec_name(name: str, options: dict[str, Any]) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")


# ---- built-in methods ----------------------------------------------------------------------
def _identity(**options: Any) -> Method:
    if options:
        raise ConfigError(f"method identity takes no options, got {', '.join(options)}")
    return Method("identity", "the corrupted input, unrepaired (relative improvements 0)",
                  repair=lambda mask: np.asarray(mask, dtype=bool),
                  repair_whole=lambda mask, scratch: mask)


def _closing(**options: Any) -> Method:
    config = _config(ClosingConfig, options, "closing")
    return Method(_spec_name("closing", options),
                  f"morphological closing, disk of radius {config.radius} px (input OR closed)",
                  repair=lambda mask: closing(mask, config),
                  repair_whole=lambda mask, scratch: closing_dask(mask, config))


def _linking(**options: Any) -> Method:
    config = _config(LinkingConfig, options, "linking")
    return Method(_spec_name("linking", options),
                  f"bridges between facing skeleton end points up to {config.max_distance:g} px "
                  f"apart, within {config.max_angle:g} degrees",
                  repair=lambda mask: linking(mask, config),
                  repair_whole=lambda mask, scratch: linking_dask(mask, config))


register_method("identity", _identity)
register_method("closing", _closing)
register_method("linking", _linking)


# ---- learned models ------------------------------------------------------------------------
def _model_label(target: str) -> str:
    path = pathlib.Path(target)
    if not path.exists():
        return target  # a shipped model's name
    parts = path.resolve().parts
    return "/".join(parts[-3:] if parts[-2:-1] == ("checkpoints",) else parts[-1:])


_REFINEMENTS = ("views", "passes")
_SWITCHES = ("drop_islands", "bridges_only")
_MODEL_OPTIONS = (*_REFINEMENTS, "threshold", "min_confidence", "keep", "upsample", *_SWITCHES)


def _model_options(spec: str, target: str) -> tuple[str, dict[str, Any]]:
    """(target, {views, passes, threshold, drop_islands, bridges_only}) of
    `TARGET[:views=V,passes=P,threshold=T,drop_islands=1,bridges_only=1]` (a path that exists is never split,
    even if it holds a colon)."""
    base, colon, options = target.rpartition(":")
    if not colon or pathlib.Path(target).exists():
        return target, {}
    parsed: dict[str, Any] = {}
    for item in options.split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if key == "keep" and eq:  # a policy name; InferConfig checks it
            parsed[key] = value
            continue
        if key in ("upsample", "min_confidence") and value == "auto":
            parsed[key] = value
            continue
        try:
            number = float(value) if key in ("threshold", "min_confidence") else int(value)
        except ValueError:
            number = None
        if key not in _MODEL_OPTIONS or not eq or number is None \
                or (key == "threshold" and not 0 < number < 1) \
                or (key == "min_confidence" and not 0 <= number <= 1) \
                or (key in _SWITCHES and number not in (0, 1)):  # views, passes: InferConfig checks
            raise ConfigError(f"--models {spec!r}: options after ':' must be views=INTEGER, "
                              f"passes=INTEGER, threshold=NUMBER in (0, 1), keep=POLICY, "
                              f"min_confidence=auto|NUMBER in [0, 1], "
                              f"upsample=auto|FACTOR, "
                              f"drop_islands=0/1 or bridges_only=0/1, got {item!r}")
        parsed[key] = bool(number) if key in _SWITCHES else number
    return base, parsed


def model_method(spec: str, *, threshold: float | None = None, gpu: bool = False,
                 threads: int | None = None, tile: int = 1024, batch: int = 8) -> Method:
    """A trained generator as a `Method`: `spec` is a checkpoint directory, a shipped model
    name, or `LABEL=either`, optionally followed by `:views=V,passes=P` (the test-time
    refinements of `distpaint.infer.refine`), `threshold=T` (this model's own threshold,
    overriding `threshold`), `keep=POLICY` and `min_confidence=F|auto` (`distpaint.infer.keep`,
    `distpaint.infer.self_check`), `drop_islands=1`
    (`distpaint.infer.islands`) and
    `bridges_only=1` (with passes >= 2: `distpaint.infer.bridges`) and `upsample=auto|1|2|3|4`
    (`distpaint.infer.upsample`; default the card's, as for `distpaint infer`).
    Output = input OR (probability > `threshold`); `threshold` None and no `keep=` take the
    model card's inference defaults (`distpaint.weights.inference_defaults`);
    whole masks go through the tiled engine with `tile`-px tiles, `batch` tiles per forward."""
    label, eq, body = spec.partition("=")
    if not eq or ":" in label:  # no label: "roads" or "roads:views=2"
        label, body = "", spec
    target, options = _model_options(spec, body)
    chosen = inference_defaults(target) if target else {}
    threshold = options.pop("threshold", threshold if threshold is not None
                            else chosen.get("threshold", 0.5))
    if options.pop("drop_islands", False) and "keep" not in options:
        options["keep"] = "attached"  # drop_islands=1 is keep=attached
    options.setdefault("keep", chosen.get("keep", "bridges"))
    label = label or _model_label(target) + body[len(target):]
    if not label or not target:
        raise ConfigError(f"--models {spec!r}: expected NAME_OR_CHECKPOINT or LABEL=NAME_OR_CHECKPOINT")
    upsample = parse_upsample(options.pop("upsample", chosen.get("upsample", 1)))  # None: auto
    # None: auto, chosen per mask by the self-check
    floor = parse_min_confidence(options.pop("min_confidence", chosen.get("min_confidence", 0.0)))
    base = resolve_model(target, gpu=gpu, threads=threads)
    align = int(base.align)
    config = InferConfig(tile=round_up(tile, align), batch=batch, threshold=threshold,
                         upsample=upsample or 1, min_confidence=floor or 0.0, **options)
    predictors = PredictorsByFactor(base, config)

    def factor_of(mask: Any) -> int:
        return choose_upsample(mask) if upsample is None else config.upsample

    def config_of(mask: Any, factor: int) -> InferConfig:
        """The InferConfig of `mask` at `factor`, with its own floor under `min_confidence=auto`."""
        infer = predictors.infer_for(factor)
        if floor is None:
            check = choose_min_confidence(mask, predictors[factor], infer)
            infer = replace(infer, min_confidence=check.floor)
        return infer

    def repair_batch(masks: np.ndarray) -> np.ndarray:
        masks = masks.astype(bool)
        b, h, w = masks.shape
        factors = np.array([factor_of(m) for m in masks])
        probs = np.zeros((b, h, w), np.float32)
        for factor in np.unique(factors):  # one forward per factor: the masks of a batch agree
            rows = np.flatnonzero(factors == factor)
            x = np.zeros((rows.size, 1, round_up(h, align), round_up(w, align)), np.float32)
            x[:, 0, :h, :w] = masks[rows]
            probs[rows] = np.asarray(predictors[int(factor)](x))[:, 0, :h, :w]
        out = []
        for p, m, factor in zip(probs, masks, factors, strict=True):
            infer = config_of(m, int(factor))
            o = decide(p, m, (0, h, 0, w), infer)
            if infer.judges_pieces:  # the whole image: no open edges
                o = keep_added(o, m, infer.pieces, probs=p, min_confidence=infer.min_confidence)
            out.append(o)
        return np.stack(out)

    def repair_whole(mask: Any, scratch: pathlib.Path) -> Any:
        shape = tuple(int(n) for n in mask.shape)
        chunks, shards = output_layout(shape, config.tile)
        out = zarr.create_array(LocalStore(scratch / "model-output.zarr"), shape=shape,
                                chunks=chunks, shards=shards, dtype=bool, fill_value=False,
                                compressors=compressors())
        factor = factor_of(mask)
        run_inference(mask, predictors[factor], {"mask": out}, config_of(mask, factor))
        return out

    refined = (f", views {config.views}, passes {config.passes}"
               if (config.views, config.passes) != (1, 1) else "")
    refined += ", bridges only" if config.bridges_only else ""
    refined += ", islands dropped" if config.pieces == "attached" else ""
    refined += ", bridging pieces only" if config.pieces == "bridges" else ""
    refined += ", bridges closing dead ends only" if config.pieces == "ends" else ""
    refined += (", confidence floor chosen per mask by a self-check" if floor is None
                else f", pieces of mean probability >= {config.min_confidence:g} only"
                if config.min_confidence > 0 else "")
    refined += (", up-sampled x2 where lines are thin" if upsample is None
                else f", up-sampled x{config.upsample}" if config.upsample > 1 else "")
    return Method(label, f"trained generator {target} (input OR p > {threshold:g}, "
                         f"tiles of {config.tile} px{refined})",
                  repair=lambda mask: repair_batch(np.asarray(mask, bool)[None])[0],
                  repair_whole=repair_whole, repair_batch=repair_batch)
