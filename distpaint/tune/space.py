"""Search spaces for `distpaint tune`: a small YAML schema, validated before any trial starts.

A space file names training-config parameters (dotted paths into `TrainConfig`) and a
distribution for each:

    description: loss weights around the paper's 1000 / 1 / 1      # optional
    parameters:
      loss.lambda_ce:     {loguniform: [100, 10000]}    # log-uniform float in [low, high]
      loss.lambda_local:  {uniform: [0.1, 3]}           # uniform float in [low, high]
      loss.baseline:      {choice: [none, ema, self_critical]}   # one of the values
      data.batch_size:    {randint: [4, 12]}            # integer, low..high INCLUSIVE
      seed:               {grid: [0, 1, 2]}             # every value (x --num-samples)
      data.gaps.mix_kinds: {choice: [[square, brush, blob], [square, brush, blob, skeleton]]}

Paths: `section.field` for the config's sections (`model`, `optim`, `loss`, `data`), a
top-level field (`seed`, `variant`, `deterministic`), or a key inside a mapping field
(`data.gaps.density`, `data.synth.density`, `model.generator_args.norm`). `max_steps`,
`checkpoint_every`, `log_every` and `keep_checkpoints` are set by the sweep, not searched.

`load_space(path, base)` refuses, with a `ConfigError` naming the file and the key: unreadable
or non-YAML files, duplicate or unknown top-level keys, unknown parameters (with the closest
valid name), a distribution that does not fit the field (a float range on an integer or a
string field), malformed or empty ranges (low >= high, loguniform low <= 0, randint bounds
that are not integers), duplicate choices, and any value the base config would reject: every
range endpoint and every choice is applied to the base config and built (including the gap,
synthesis and model configs it implies), so a trial never fails on a value the file allows.

    space = load_space("tune_spaces/lambdas.yaml", base_cfg)
    param_space = space.to_tune()                       # Ray Tune domains (imports ray)
    cfg = space.apply(base_cfg, trial_config)           # the trial's full TrainConfig

Importable without Ray (Ray Tune is imported by `to_tune` only).
"""

from __future__ import annotations

import difflib
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from distpaint.errors import ConfigError
from distpaint.train.config import TrainConfig
from distpaint.train.overrides import apply_overrides, field_type
from distpaint.train.overrides import plain_value as _plain

__all__ = ["DISTRIBUTIONS", "FIXED", "Param", "SearchSpace", "load_space", "parse_space", "apply_overrides"]

DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint", "grid")
"""The schema's distributions."""
FIXED = ("max_steps", "checkpoint_every", "log_every", "keep_checkpoints")
"""Config fields the sweep sets itself (--max-steps, --report-every), never searched."""
_TOP_KEYS = ("description", "parameters")


# ---- YAML with duplicate keys refused --------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


# ---- parameters -------------------------------------------------------------------------------
def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


@dataclass(frozen=True)
class Param:
    """One searched parameter."""

    path: str
    """Dotted path into the training config, e.g. `loss.lambda_ce`."""
    kind: str
    """One of DISTRIBUTIONS."""
    args: tuple
    """(low, high) for uniform / loguniform / randint (randint inclusive), else the values."""

    @property
    def log(self) -> bool:
        """Whether the parameter is searched on a log scale (plots use a log axis)."""
        return self.kind == "loguniform"

    @property
    def categorical(self) -> bool:
        """Whether the parameter takes listed values (choice, grid)."""
        return self.kind in ("choice", "grid")

    def encode(self, value: Any) -> Any:
        """Value as Tune sees it: non-scalar choices (lists, mappings) as JSON text, because
        Optuna's categorical distributions hold scalars only."""
        return value if _scalar(value) else json.dumps(value, sort_keys=True)

    def decode(self, value: Any) -> Any:
        """Inverse of `encode`, plus numpy scalars to Python ones."""
        value = _plain(value)
        if self.categorical and isinstance(value, str) and value[:1] in "[{":
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def label(self, value: Any) -> str:
        """Short text of a value (tables, plot axes)."""
        value = self.decode(value)
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)

    def check_values(self) -> list[Any]:
        """The values validated against the base config: range endpoints, every listed value."""
        return list(self.args)

    def domain(self) -> Any:
        """The Ray Tune search domain."""
        from ray import tune  # deferred: spaces are parsed and checked before Ray is needed

        low_high = self.args
        if self.kind == "uniform":
            return tune.uniform(*low_high)
        if self.kind == "loguniform":
            return tune.loguniform(*low_high)
        if self.kind == "randint":
            return tune.randint(low_high[0], low_high[1] + 1)  # Tune's upper bound is exclusive
        values = [self.encode(v) for v in self.args]
        return tune.choice(values) if self.kind == "choice" else tune.grid_search(values)


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated space file."""

    source: str
    """The file it came from (named in every error)."""
    params: tuple[Param, ...]
    """The searched parameters, in file order."""
    description: str = ""
    """The file's description."""

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.params]

    def param(self, path: str) -> Param:
        return next(p for p in self.params if p.path == path)

    @property
    def has_grid(self) -> bool:
        return any(p.kind == "grid" for p in self.params)

    def to_tune(self) -> dict[str, Any]:
        """`param_space` of the Tuner: {dotted path: Tune domain} (flat, so MLflow parameters
        and the summary table carry the config's own names)."""
        return {p.path: p.domain() for p in self.params}

    def overrides(self, trial_config: dict) -> dict[str, Any]:
        """The trial's values {path: plain Python value} from a Tune trial config."""
        missing = [p.path for p in self.params if p.path not in trial_config]
        if missing:
            raise ConfigError(f"{self.source}: the trial config lacks {', '.join(missing)}")
        return {p.path: p.decode(trial_config[p.path]) for p in self.params}

    def apply(self, base: TrainConfig, trial_config: dict) -> TrainConfig:
        """The full training config of a trial: `base` with the trial's values."""
        return apply_overrides(base, self.overrides(trial_config), f"{self.source} (trial)")


def _resolve(source: str, path: str) -> Any:
    """The annotated type of the field `path` names (None where unknown: model option keys);
    the path rules are those of `--set` (`distpaint.train.overrides`), less the fields the
    sweep sets itself."""
    if not isinstance(path, str) or not path or path != path.strip():
        raise ConfigError(f"{source}: parameters: {path!r} is not a parameter path")
    if path.split(".")[0] in FIXED:
        raise ConfigError(f"{source}: parameters.{path}: set by the sweep (--max-steps, --report-every), "
                          "not searched")
    try:
        return field_type(path, verb="searched")
    except ConfigError as exc:
        raise ConfigError(f"{source}: parameters.{exc}") from None


# ---- distributions ---------------------------------------------------------------------------
def _number(source: str, path: str, kind: str, value: Any, integer: bool) -> float | int:
    """A bound from YAML (PyYAML reads `1e-4` as text, so numeric text is accepted)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        if integer:
            if number != int(number) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError):
        what = "an integer" if integer else "a finite number"
        raise ConfigError(f"{source}: parameters.{path}: {kind} bounds must be {what}, got {value!r}") from None


def _type_name(hint: Any) -> str:
    if hint in (float, int, bool, str):
        return hint.__name__
    return "list" if typing.get_origin(hint) is tuple or str(hint).startswith("Range") else "mapping"


def _parse_param(source: str, path: Any, spec: Any) -> Param:
    hint = _resolve(source, path)
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{source}: parameters.{path}: give exactly one distribution as a mapping, "
                          f"e.g. {{loguniform: [1e-5, 1e-3]}}; one of {', '.join(DISTRIBUTIONS)}")
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(kind), DISTRIBUTIONS, n=1)
        hint_text = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{source}: parameters.{path}: unknown distribution {kind!r}{hint_text}; "
                          f"one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{source}: parameters.{path}.{kind}: give a non-empty list "
                          f"({'[low, high]' if kind in ('uniform', 'loguniform', 'randint') else '[value, ...]'})")
    type_name = None if hint is None else _type_name(hint)
    if kind in ("uniform", "loguniform", "randint"):
        if type_name not in (None, "float", "int"):
            raise ConfigError(f"{source}: parameters.{path}: a {type_name} field takes choice or grid, not {kind}")
        if type_name == "int" and kind != "randint":
            raise ConfigError(f"{source}: parameters.{path}: an integer field takes randint, choice or grid, not {kind}")
        if len(args) != 2:
            raise ConfigError(f"{source}: parameters.{path}.{kind}: give [low, high], got {args!r}")
        low, high = (_number(source, path, kind, v, kind == "randint") for v in args)
        if kind == "randint" and low > high:
            raise ConfigError(f"{source}: parameters.{path}.randint: low {low} > high {high} (bounds are inclusive)")
        if kind != "randint" and not low < high:
            raise ConfigError(f"{source}: parameters.{path}.{kind}: low {low:g} must be < high {high:g}")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"{source}: parameters.{path}.loguniform: bounds must be > 0, got [{low:g}, {high:g}]")
        return Param(path, kind, (low, high))
    values = [_plain(v) for v in args]
    seen = []
    for v in values:
        if v in seen:
            raise ConfigError(f"{source}: parameters.{path}.{kind}: value {v!r} is listed twice")
        seen.append(v)
    return Param(path, kind, tuple(values))


def _check_values(space: SearchSpace, base: TrainConfig) -> None:
    """Build the base config with each endpoint / listed value (one parameter at a time)."""
    from distpaint.train.data import LocalData  # deferred (torch): `distpaint tune` imports this

    for p in space.params:
        for value in p.check_values():
            where = f"{space.source}: parameters.{p.path} = {value!r}"
            cfg = apply_overrides(base, {p.path: value}, where)
            try:  # the gap, synthesis (and GAN-GL-M real-gap) configs the data would build
                LocalData(cfg.data, cfg.seed, cfg.variant)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None


def parse_space(data: Any, source: str, base: TrainConfig | None = None) -> SearchSpace:
    """A `SearchSpace` from the parsed YAML `data` of file `source`; with `base`, every value
    is also checked against that config (see the module docstring)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'parameters' key")
    for key in data:
        if key not in _TOP_KEYS:
            close = difflib.get_close_matches(str(key), _TOP_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown top-level key {key!r}{hint}; valid: {', '.join(_TOP_KEYS)}")
    params = data.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{source}: 'parameters' must be a non-empty mapping of config paths to distributions")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description must be text")
    parsed = tuple(_parse_param(source, path, spec) for path, spec in params.items())
    paths = [p.path for p in parsed]
    for a in paths:  # data.gaps and data.gaps.density would overwrite each other
        for b in paths:
            if b.startswith(a + "."):
                raise ConfigError(f"{source}: parameters.{b} overlaps parameters.{a}; search one of them")
    space = SearchSpace(source, parsed, description.strip())
    if base is not None:
        _check_values(space, base)
    return space


def load_space(path: str | Path, base: TrainConfig | None = None) -> SearchSpace:
    """Read and validate a space file (see the module docstring); `ConfigError` naming the file
    and the key on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read search space ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_space(data, str(path), base)
