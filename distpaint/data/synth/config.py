"""Options of the synthetic generators (`SynthConfig`), validated on construction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from distpaint.errors import ConfigError

__all__ = ["KINDS", "SynthConfig", "check_request"]

KINDS = ("roots", "vessels", "roads", "sketch")
"""Kinds of thin structure the generators draw."""

MAX_SIDE = 1 << 20
"""Largest mask side accepted (px); far beyond anything that fits on disk at one bit a pixel."""


@dataclass(frozen=True)
class SynthConfig:
    """Per-kind knobs of the synthetic generators; the defaults give data-like masks."""

    density: float = 1.0
    """Multiplier on the number of structures per unit area (plants, vessel trees, road blocks,
    sketch figures); feature sizes in pixels do not change."""

    width_scale: float = 1.0
    """Multiplier on every stroke width (roots 3-8 px, vessels 12 down to ~1 px, roads 4-16 px,
    sketch 1-6 px at 1.0); widths never drop below 1 px."""

    root_hairs: bool = False
    """roots: draw 1-px root hairs along the roots (the texture of real root masks that the
    paper's synthetic roots lack, footnote 3)."""

    hair_density: float = 0.25
    """roots: root hairs per pixel of root length (both sides together), if `root_hairs`."""

    lateral_order: int = 2
    """roots: branching order, 1 = primary root only, 2 = with laterals, 3 = laterals of laterals."""

    vessel_min_width: float = 1.2
    """vessels: branches are not continued once narrower than this (px)."""

    roundabout_rate: float = 0.06
    """roads: probability that a junction of three or more arterials becomes a roundabout."""

    dead_end_rate: float = 0.3
    """roads: probability that a local street stops short of the block's far side (a dead end)."""

    def __post_init__(self) -> None:
        _check_range("density", self.density, 0.05, 20.0)
        _check_range("width_scale", self.width_scale, 0.25, 4.0)
        _check_range("hair_density", self.hair_density, 0.0, 4.0)
        _check_range("vessel_min_width", self.vessel_min_width, 1.0, 8.0)
        _check_range("roundabout_rate", self.roundabout_rate, 0.0, 1.0)
        _check_range("dead_end_rate", self.dead_end_rate, 0.0, 1.0)
        if not isinstance(self.root_hairs, bool):
            raise ConfigError(f"synth option root_hairs must be true or false, got {self.root_hairs!r}")
        if not isinstance(self.lateral_order, int) or not 1 <= self.lateral_order <= 3:
            raise ConfigError(f"synth option lateral_order must be 1, 2 or 3, got {self.lateral_order!r}")

    def to_dict(self) -> dict:
        """Plain dict of the options (for store attributes and logs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SynthConfig":
        """Build from a dict, naming any unknown option."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown synth option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"synth option {name} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"synth option {name} must be in [{lo}, {hi}], got {value}")


def check_request(kind: str, shape, seed) -> tuple[str, tuple[int, int], int]:
    """Validate (kind, shape, seed) of a synthesis request; returns them normalised."""
    if kind not in KINDS:
        raise ConfigError(f"unknown synth kind {kind!r}; choose one of {', '.join(KINDS)}")
    try:
        h, w = (_integer(s) for s in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"synth shape must be two integers (H, W), got {shape!r}") from None
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ConfigError(f"synth shape must have sides in [1, {MAX_SIDE}], got {(h, w)}")
    if isinstance(seed, bool) or not isinstance(seed, (int,)) and not hasattr(seed, "__index__"):
        raise ConfigError(f"synth seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if seed < 0:
        raise ConfigError(f"synth seed must be a non-negative integer, got {seed}")
    return kind, (h, w), seed


def _integer(value) -> int:
    """`value` as an int if it is integral (10, 10.0, numpy ints); TypeError/ValueError if not,
    so that a size of 10.5 is refused instead of silently truncated."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a size")
    if hasattr(value, "__index__"):
        return int(value.__index__())
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    return int(number)
