"""Dotted-path overrides of a training config: `loss.lambda_global=3` on top of a recipe.

One syntax for every place that changes a loaded recipe: `distpaint train --set PATH=VALUE`
(and `distpaint tune --set`, on the sweep's base config), and the trial values of a Tune
search space (`distpaint.tune.space`). A path names a field the way a recipe nests it:

    seed, variant, max_steps, ...            a top-level field
    loss.lambda_global, data.store_share     a field of a section (model, optim, loss, data)
    data.gaps.density, data.synth.density    a key inside a mapping field (GapConfig,
    model.generator_args.norm                SynthConfig, a model's options)

The value of `--set` is read by the YAML parser the recipes are read with (`3`, `2e-4`,
`true`, `[0.5, 2]`, `{kind: cut}`, `runs/roads.zarr`), and the whole config is rebuilt by
`config_from_dict`, so a value passes or fails exactly as it would in a recipe file.

    cfg = apply_overrides(load_config("cpu_small"), parse_assignments(["loss.lambda_global=3"]), "--set")

Importable without torch, Ray and Dask (like `distpaint.train.config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable
from typing import Any

import yaml

from distpaint.data.gaps import GapConfig
from distpaint.data.synth.config import SynthConfig
from distpaint.errors import ConfigError
from distpaint.train.config import TrainConfig, config_from_dict, config_to_dict

__all__ = ["SECTIONS", "field_type", "all_paths", "parse_assignments", "apply_overrides", "plain_value"]

SECTIONS = ("model", "optim", "loss", "data")
"""The nested sections of `TrainConfig`."""


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _mapping_fields() -> dict[str, type | None]:
    """Mapping fields whose keys a path may name, with the dataclass their keys belong to
    (None: the model registry checks the keys when the config is built)."""
    return {"data.gaps": GapConfig, "data.real_gaps": GapConfig, "data.synth": SynthConfig,
            "model.generator_args": None, "model.local_disc_args": None, "model.global_disc_args": None}


def all_paths() -> list[str]:
    """Every path a user may name (model option keys aside: the registry knows those)."""
    out = [name for name in _fields(TrainConfig) if name not in SECTIONS]
    for section in SECTIONS:
        out += [f"{section}.{name}" for name in _fields(typing.get_type_hints(TrainConfig)[section])]
    for prefix, cls in _mapping_fields().items():
        if cls is not None:
            out += [f"{prefix}.{name}" for name in _fields(cls)]
    return out


def _unknown(path: str, reason: str = "unknown parameter") -> ConfigError:
    close = difflib.get_close_matches(path, all_paths(), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else (
        "; parameters are dotted config paths such as loss.lambda_ce, optim.lr_g, data.gaps.density")
    return ConfigError(f"{path}: {reason}{hint}")


def field_type(path: str, verb: str = "set") -> Any:
    """The annotated type of the field `path` names (None for a model option key, which the
    model registry checks when the config is built). `ConfigError` "<path>: <reason>", with
    the closest valid paths, for anything else; `verb` words the refusal of a whole section
    ("a whole section cannot be <verb>")."""
    keys = path.split(".")
    top = _fields(TrainConfig)
    if keys[0] not in top:
        raise _unknown(path)
    if keys[0] not in SECTIONS:
        if len(keys) > 1:
            raise _unknown(path, f"{keys[0]} is not a section")
        return top[keys[0]]
    if len(keys) == 1:
        raise ConfigError(f"{path}: a whole section cannot be {verb}; "
                          f"name a field, e.g. {path}.{next(iter(_fields(top[path])))}")
    fields = _fields(top[keys[0]])
    if keys[1] not in fields:
        raise _unknown(path)
    if len(keys) == 2:
        return fields[keys[1]]
    prefix = ".".join(keys[:2])
    mappings = _mapping_fields()
    if prefix not in mappings or len(keys) > 3:
        raise _unknown(path, f"{prefix} has no sub-keys")
    cls = mappings[prefix]
    if cls is None:
        return None
    sub = _fields(cls)
    if keys[2] not in sub:
        raise _unknown(path)
    return sub[keys[2]]


def parse_assignments(items: Iterable[str], option: str = "--set") -> dict[str, Any]:
    """{path: value} of `PATH=VALUE` texts, each value read as YAML (as in a recipe); the path
    is checked with `field_type`. `ConfigError` "<option> <item>: <reason>" for an item without
    `=`, an unknown path, a value that is not YAML, or a path given twice."""
    out: dict[str, Any] = {}
    for item in items:
        path, sep, text = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ConfigError(f"{option} {item!r}: give PATH=VALUE, e.g. {option} loss.lambda_global=3")
        try:
            field_type(path)
        except ConfigError as exc:
            raise ConfigError(f"{option} {exc}") from None
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise ConfigError(f"{option} {path}: {text!r} is not a YAML value ({problem})") from None
        if path in out:
            raise ConfigError(f"{option} {path}: given twice")
        out[path] = value
    for a in out:  # data.gaps and data.gaps.density would overwrite each other
        for b in out:
            if b.startswith(a + "."):
                raise ConfigError(f"{option} {b} overlaps {option} {a}; set one of them")
    return out


def plain_value(value: Any) -> Any:
    """YAML/numpy values as plain Python (numpy scalars from Tune's samplers included)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    return value


def apply_overrides(base: TrainConfig, overrides: dict[str, Any], source: str = "<overrides>") -> TrainConfig:
    """`base` with {dotted path: value} set (mapping fields gain the key), rebuilt and validated
    by `config_from_dict` as a recipe is, all values at once (so two fields that must agree, such
    as data.patch_size and data.mask_size, may change together); `ConfigError` naming `source`
    and the field."""
    data = config_to_dict(base)
    for path, value in overrides.items():
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: {path}: {key} is not a mapping")
        node[keys[-1]] = plain_value(value)
    return config_from_dict(data, source)
