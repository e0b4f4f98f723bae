"""Registry of model variants: named builders of generators and discriminators from typed configs.

Each variant is a model class plus a default config (a `@dataclass`); building a variant with
overrides replaces fields of that default and validates it, so an unknown name or field is a
`ConfigError` naming it. Checkpoints store the variant name and the full config, which is all
`load_generator` needs to rebuild the network for inference.

    >>> from distpaint.models import create_model, list_models
    >>> list_models("generator")
    ['cnn_sasaki', 'cnn_tiny', 'unet_paper', 'unet_small', 'unet_tiny']
    >>> g = create_model("unet_small", norm="instance")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from distpaint.errors import ConfigError

__all__ = [
    "ROLES",
    "ModelEntry",
    "register_model",
    "list_models",
    "get_entry",
    "model_config",
    "create_model",
    "config_to_dict",
]

ROLES = ("generator", "local_disc", "global_disc")


@dataclass(frozen=True)
class ModelEntry:
    """One registered variant."""

    name: str
    """Registry name, e.g. `unet_paper`."""
    role: str
    """`generator`, `local_disc` or `global_disc`."""
    model_cls: type[nn.Module]
    """Class built as `model_cls(config)`."""
    default: Any
    """Default config instance (a dataclass) of the variant."""
    description: str = ""
    """One line for `distpaint models` and the docs."""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, role: str, model_cls: type[nn.Module], default: Any, description: str = ""
) -> ModelEntry:
    """Register variant `name` of `model_cls` with config `default`; returns the entry."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    if not dataclasses.is_dataclass(default):
        raise TypeError("default config must be a dataclass instance")
    entry = ModelEntry(name, role, model_cls, default, description)
    _REGISTRY[name] = entry
    return entry


def list_models(role: str | None = None) -> list[str]:
    """Sorted names of the registered variants, optionally only those of one role."""
    return sorted(n for n, e in _REGISTRY.items() if role is None or e.role == role)


def get_entry(name: str, role: str | None = None) -> ModelEntry:
    """The entry of `name`; `ConfigError` if unknown or of another role."""
    entry = _REGISTRY.get(name)
    if entry is None:
        known = ", ".join(list_models(role))
        raise ConfigError(f"unknown model {name!r}; registered: {known}")
    if role is not None and entry.role != role:
        raise ConfigError(f"model {name!r} is a {entry.role}, not a {role}; choose one of "
                          f"{', '.join(list_models(role))}")
    return entry


def model_config(name: str, role: str | None = None, **overrides: Any) -> Any:
    """The validated config of variant `name` with `overrides` applied to its default."""
    entry = get_entry(name, role)
    valid = {f.name for f in dataclasses.fields(entry.default)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(
            f"model {name!r}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
        )
    try:
        return dataclasses.replace(entry.default, **overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc


def create_model(name: str, role: str | None = None, **overrides: Any) -> nn.Module:
    """Build variant `name` (its default config with `overrides`)."""
    entry = get_entry(name, role)
    return entry.model_cls(model_config(name, role, **overrides))


def config_to_dict(config: Any) -> dict[str, Any]:
    """A model config as plain YAML/JSON-friendly types (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
