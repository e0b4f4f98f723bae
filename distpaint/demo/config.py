"""Options of `distpaint demo` (`DemoConfig`), validated on construction.

The defaults are the embedded demo: four held-out 2048 x 2048 synthetic road masks with `mix`
gaps, repaired by the classical baselines, the shipped roads model and a GAN-GL trained for
150 steps on 2 local Ray workers.
"""

from __future__ import annotations

import pathlib
from dataclasses import asdict, dataclass, field

from distpaint.baselines.closing import ClosingConfig
from distpaint.baselines.linking import LinkingConfig
from distpaint.data.gaps import GAP_KINDS
from distpaint.data.synth import KINDS
from distpaint.errors import ConfigError
from distpaint.weights import shipped_models

__all__ = ["DemoConfig", "DEFAULT_MODEL", "DEFAULT_OUT", "MIN_SIZE"]

DEFAULT_OUT = pathlib.Path("demo_out")
"""Default output folder, relative to the working directory (git-ignored in the repository)."""
DEFAULT_MODEL = "roads"
"""Shipped model the demo compares by default."""
MIN_SIZE = 64
"""Smallest mask side the demo accepts (px): gaps and baselines need some room."""


@dataclass
class DemoConfig:
    """What the demo synthesises, how it damages it and where it writes the report."""

    out: pathlib.Path = DEFAULT_OUT
    """Output folder: stores under `stores/`, the report under `report/`. Replaced on re-runs;
    a non-empty folder the demo did not write is refused."""
    size: int = 2048
    """Side of the square synthetic masks (px)."""
    count: int = 4
    """Number of synthetic masks (samples)."""
    seed: int = 0
    """Base seed of the synthetic masks; the gaps use `seed + 1`."""
    kind: str = "roads"
    """Kind of synthetic structure (`distpaint.data.synth.KINDS`)."""
    gaps: str = "mix"
    """Gap kind (`distpaint.data.gaps.GAP_KINDS`)."""
    gap_density: float = 1.0
    """Multiplier on the gap counts (per 256 x 256 area)."""
    closing: ClosingConfig = field(default_factory=ClosingConfig)
    """Options of the closing baseline."""
    linking: LinkingConfig = field(default_factory=LinkingConfig)
    """Options of the end-point linking baseline."""
    train_steps: int = 150
    """GAN-GL steps of the demo's own training run on local Ray (0: no training run)."""
    workers: int = 2
    """Ray Train workers (DDP ranks) of the training run."""
    train_masks: int = 8
    """Synthetic masks of the training archive (their seeds are disjoint from the held-out
    masks', which are never trained on)."""
    recipe: str = "demo"
    """Shipped training recipe of the run (`distpaint/configs/<recipe>.yaml`)."""
    model: str | None = DEFAULT_MODEL
    """Shipped model to repair the held-out masks with (None: none)."""
    preview_max_side: int = 2048
    """PNG previews of larger masks are reduced by an integer factor (a preview pixel is set
    when any pixel of its block is) so that no side exceeds this."""

    def __post_init__(self) -> None:
        self.out = pathlib.Path(self.out)
        _check_int("--size", self.size, MIN_SIZE)
        _check_int("--count", self.count, 1)
        _check_int("--seed", self.seed, 0)
        _check_int("preview_max_side", self.preview_max_side, 64)
        _check_int("--train-steps", self.train_steps, 0)
        _check_int("--workers", self.workers, 1)
        _check_int("train_masks", self.train_masks, 1)
        if self.model is not None:
            if self.model not in shipped_models():
                shipped = ", ".join(sorted(shipped_models())) or "none"
                raise ConfigError(f"demo --model {self.model!r} is not a shipped model (shipped: "
                                  f"{shipped}); `distpaint models` lists them")
        if self.kind not in KINDS:
            raise ConfigError(f"demo kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.gaps not in GAP_KINDS:
            raise ConfigError(f"demo gaps must be one of {', '.join(GAP_KINDS)}, got {self.gaps!r}")
        if not isinstance(self.gap_density, (int, float)) or not 0 < self.gap_density <= 10:
            raise ConfigError(f"demo gap_density must be in (0, 10], got {self.gap_density!r}")

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for the report)."""
        values = asdict(self)
        values["out"] = str(self.out)
        return values


def _check_int(option: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"demo {option} must be an integer >= {low}, got {value!r}")
