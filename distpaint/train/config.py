"""Typed training configuration, loaded from YAML with unknown keys rejected.

`TrainConfig` nests `ModelConfig` (registered model names + overrides), `OptimConfig`,
`LossConfig` and `DataConfig`. Every field has a docstring and is validated in
`__post_init__`; a bad file raises `ConfigError` naming the file and the key. Example recipes
live in `distpaint/configs/` (`cpu_small.yaml`, `paper.yaml`, ...).

A recipe may start from another with `base: NAME` (a file beside it, with or without `.yaml`, or
else a shipped recipe) and give only what differs: mappings merge key by key at every depth,
anything else (numbers, strings, lists) replaces the base's value. The loaded config (and so
every checkpoint's `config.yaml`) is the resolved whole, without `base`.

A recipe may be a chain of stages (`stages:`, a list; `roads.yaml`, `general.yaml`): the
recipe's own config is stage 1, and each later stage is the previous stage's resolved config
with its `set:` mapping merged in the same way; every stage says how many of its last
checkpoints to `average` into its result, which the next stage starts G from (`distpaint
reproduce`, `distpaint.train.reproduce`). `load_config(path)` is stage 1; `load_config(path,
stage)` any stage, by 1-based number or name. A recipe that names a chained one as its `base`
starts from its stage 1, or from the stage named after an `@` (`base: roads@more`).

    from distpaint.train.config import load_config, dump_config
    cfg = load_config("distpaint/configs/cpu_small.yaml")
    print(dump_config(cfg))

Importable with torch, numpy and pyyaml only (no Ray, Zarr, Dask).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distpaint.errors import ConfigError

# Configs are read where torch and Dask are not wanted (the CLI's commands, the sweep driver,
# `distpaint.weights.ship`): the model registry (`distpaint.models`, torch) and the synthetic
# kinds (`distpaint.data.synth`, Dask) are imported inside the checks that need them.

__all__ = [
    "VARIANTS",
    "REAL_VARIANTS",
    "BASELINES",
    "ModelConfig",
    "OptimConfig",
    "LossConfig",
    "DataConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "recipe_data",
    "recipe_stages",
    "find_stage",
    "Stage",
    "dump_config",
    "packaged_config",
    "kinds_of",
]

VARIANTS = ("gan-gl", "gan-l", "gan-g", "unet", "cnn", "gan-gl-m", "unet-m")
"""Training variants of the paper: GAN-GL (eq. 10), single-discriminator ablations, the two
CE-only baselines, and GAN-GL-M (alternating synthetic Algorithm-1 and real masked-CE batches).
`unet-m` is not the paper's: the U-Net baseline with GAN-GL-M's alternating real masked-CE
batches, the ablation that tells how much of GAN-GL-M's gain comes from the discriminators."""

REAL_VARIANTS = ("gan-gl-m", "unet-m")
"""Variants whose odd steps are real batches trained with the masked CE (eq. 11) only."""

BASELINES = ("none", "ema", "self_critical")
"""Reward baselines of the policy gradient: none (paper), moving average, self-critical."""


def _coerce(obj: Any) -> None:
    """Cast YAML values to the annotated field types (PyYAML reads `2e-4` as a string)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        try:
            if hint is float:
                value = float(value)
            elif hint is int:
                if isinstance(value, bool) or float(value) != int(value):
                    raise ValueError
                value = int(value)
            elif hint is bool:
                if not isinstance(value, bool):
                    raise ValueError
            elif typing.get_origin(hint) is tuple:
                inner = typing.get_args(hint)[0]
                value = tuple(inner(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{f.name} must be {getattr(hint, '__name__', hint)}, got {value!r}") from None
        object.__setattr__(obj, f.name, value)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclass
class ModelConfig:
    """Which registered networks to train, with per-model overrides of their configs."""

    generator: str = "unet_paper"
    """Registered generator (see `distpaint models`): unet_paper, unet_small, cnn_sasaki, ..."""
    generator_args: dict = field(default_factory=dict)
    """Overrides of the generator's config, e.g. {norm: instance}."""
    local_disc: str = "patchgan_paper"
    """Registered local discriminator D_L."""
    local_disc_args: dict = field(default_factory=dict)
    """Overrides of D_L's config."""
    global_disc: str = "siamese_paper"
    """Registered global discriminator D_G."""
    global_disc_args: dict = field(default_factory=dict)
    """Overrides of D_G's config."""
    init_generator: str = ""
    """Start G from these weights instead of a random init (fine-tuning): a shipped model's
    name (`roads`, `general`) or a checkpoint directory, holding the same generator
    architecture. Only a fresh run uses it; a resumed run restores its own weights. On a
    cluster a checkpoint path must be readable by every worker (a shipped name always is).
    Discriminators and optimisers start fresh. Empty: random init."""

    def __post_init__(self) -> None:
        from distpaint.models import model_config  # deferred (torch): see the note at the imports

        for role, name, args in (("generator", self.generator, self.generator_args),
                                 ("local_disc", self.local_disc, self.local_disc_args),
                                 ("global_disc", self.global_disc, self.global_disc_args)):
            if not isinstance(args, dict):
                raise ConfigError(f"model.{role}_args must be a mapping")
            try:
                model_config(name, role, **args)  # raises ConfigError naming the bad option
            except ConfigError as exc:  # say which of the three fields it was
                raise ConfigError(f"model.{role}: {exc}") from None
        if not isinstance(self.init_generator, str):
            raise ConfigError("model.init_generator must be a shipped model name or a checkpoint directory")
        # whether it exists is checked when G is built, not here: a saved config stays
        # loadable on machines where the path it started from is gone


@dataclass
class OptimConfig:
    """Adam with two time-scale learning rates (Heusel et al.), as in the paper."""

    lr_g: float = 2e-4
    """Learning rate of G."""
    lr_d: float = 4e-4
    """Learning rate of both discriminators."""
    betas: tuple[float, ...] = (0.5, 0.999)
    """Adam betas."""
    grad_clip: float = 0.0
    """Clip G's gradient norm to this value; 0 disables."""

    def __post_init__(self) -> None:
        _coerce(self)
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ConfigError("optim.lr_g and optim.lr_d must be positive")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        if self.grad_clip < 0:
            raise ConfigError("optim.grad_clip must be >= 0")


@dataclass
class LossConfig:
    """Weights and options of G's objective (eq. 10) and of the discriminators' losses."""

    lambda_ce: float = 1000.0
    """lambda1: weight of the (masked) cross-entropy, eq. 4 / 11."""
    lambda_local: float = 1.0
    """lambda2: weight of the LSGAN term from D_L, eq. 6."""
    lambda_global: float = 1.0
    """lambda3: weight of the policy-gradient term from D_G, eq. 9."""
    local_fake: str = "ste"
    """What D_L sees of G's output: ste (thresholded forward, straight-through gradient into G)
    or probs (the foreground probability). The authors' hard threshold gave G no gradient."""
    threshold: float = 0.5
    """Threshold on the foreground probability for thresholded outputs (D_L/D_G fakes, self-critical)."""
    baseline: str = "ema"
    """Reward baseline b in -(r - b) log pi(a): none (paper), ema (moving average of the
    reward), self_critical (reward of the thresholded output). ema trained best with
    research/reward_baselines.py (roads, 400 steps: relative component difference 0.84 vs 0.64
    self-critical and 0.27 none, whose always-positive reward reinforces every sampled pixel
    and paints: false fill 0.57)."""
    ema_momentum: float = 0.9
    """Momentum of the moving-average baseline."""
    pg_region: str = "candidates"
    """Pixels whose log-probability enters the policy gradient: candidates (input pixel 0,
    where G can change the output; the output is input OR prediction) or all (paper)."""
    pg_reduction: str = "sum"
    """Per patch: sum the log-probabilities over pixels (paper eq. 9; with lambda1 = 1000 on a
    pixel-mean CE the two terms then have comparable per-pixel gradients) or take their mean
    (divides the term by the pixel count: with the paper's lambdas it vanishes next to the CE)."""
    dg_fake: str = "threshold"
    """Fake patches D_G is trained on (eq. 8): threshold (Algorithm 1) or sample (Bernoulli,
    the same distribution as the recomposed mask it scores at reward time)."""
    dg_positive: str = "other"
    """D_G's positive pairs (eq. 8): other ((y1, y2), complete patches of two different masks,
    the paper) or self ((y, y), a complete patch and itself, so that D_G learns how close an
    output is to its own complete version). With other, the only pairs of a patch with its own
    truth D_G ever sees are the negatives, and it learns to score "paired with its own truth"
    low: measured with research/reward_signal.py on the 8000-step GAN-G run, (y, y) (a perfect
    repair) scored 0.10, below the unrepaired input (x, y) at 0.17."""
    reward_scope: str = "view"
    """What D_G scores for the policy gradient: view (the recomposed whole-mask window against
    Y's, one reward per step, the paper) or patch (each sampled patch, in place, against its
    complete patch: the pairs D_G is trained on, one reward and advantage per patch, no
    re-composition). Measured with research/reward_signal.py on the 8000-step GAN-G and GAN-GL
    runs: the view reward was above 0.999 for every view, unrepaired and perfect alike (and in
    96% of logged training steps), so the policy gradient carried no signal there (those runs had
    D_G's weighted head and the ema baseline; with the paper's dot head and no baseline the view
    reward sits near 0.5 instead)."""
    masked_ce_on: str = "region"
    """GAN-GL-M's masked CE (eq. 11) covers the erased region (background and foreground) or
    only the removed foreground pixels (gaps), which would never penalise false positives."""
    lambda_cldice: float = 0.0
    """Weight of a soft-clDice term (Shit et al. 2021; not in the paper, off by default) on G's
    synthetic batches: 1 - soft clDice of the repaired output (input OR G's probability)
    against the complete patch, which charges a missed bridge by its centreline length
    instead of its (small) pixel count."""
    cldice_iterations: int = 10
    """Soft-erosion steps of the soft skeleton: structures up to about twice this width (px)
    thin to centrelines."""
    global_max_size: int = 4096
    """Largest side of the recomposed global view given to D_G."""
    global_margin: int = 256
    """Context kept around the step's patches in the global view (pixels)."""

    def __post_init__(self) -> None:
        _coerce(self)
        if min(self.lambda_ce, self.lambda_local, self.lambda_global, self.lambda_cldice) < 0:
            raise ConfigError("loss.lambda_* must be >= 0")
        if not 1 <= self.cldice_iterations <= 64:  # _coerce has made it an int
            raise ConfigError(f"loss.cldice_iterations must be an integer from 1 to 64, got {self.cldice_iterations!r}")
        _choice("loss.local_fake", self.local_fake, ("ste", "probs"))
        _choice("loss.baseline", self.baseline, BASELINES)
        _choice("loss.pg_region", self.pg_region, ("candidates", "all"))
        _choice("loss.pg_reduction", self.pg_reduction, ("mean", "sum"))
        _choice("loss.dg_fake", self.dg_fake, ("threshold", "sample"))
        _choice("loss.masked_ce_on", self.masked_ce_on, ("region", "gaps"))
        _choice("loss.dg_positive", self.dg_positive, ("other", "self"))
        _choice("loss.reward_scope", self.reward_scope, ("view", "patch"))
        if not 0 < self.threshold < 1 or not 0 <= self.ema_momentum < 1:
            raise ConfigError("loss.threshold must be in (0, 1) and loss.ema_momentum in [0, 1)")
        if self.global_max_size < 16 or self.global_margin < 0:
            raise ConfigError("loss.global_max_size must be >= 16 and loss.global_margin >= 0")


@dataclass
class DataConfig:
    """In-process training data: synthetic masks, patches with gaps (`distpaint.train.data`)."""

    kind: str = "roots"
    """Synthetic structure kind (distpaint.data.synth.KINDS), a comma-separated list of kinds
    (mask i of the pool is of the i-th kind, cyclically), or `all` for every kind."""
    mask_size: int = 1024
    """Side of each synthetic whole mask Y."""
    n_masks: int = 8
    """Number of masks in the training pool (patches of a step come from one of them)."""
    patch_size: int = 256
    """Side P of the training patches."""
    batch_size: int = 8
    """Patches per step m, all from one mask (non-overlapping)."""
    gaps: dict = field(default_factory=lambda: {"kind": "mix"})
    """Options of distpaint.data.gaps.GapConfig for the artificial gaps."""
    min_foreground: float = 0.005
    """Patches are drawn preferring cells with at least this foreground fraction."""
    width_scale: tuple[float, ...] = (1.0, 1.0)
    """(low, high): each synthetic mask draws its SynthConfig.width_scale log-uniformly from
    this range, so one model sees thin and thick structures (real masks vary in resolution)."""
    gap_density: tuple[float, ...] = (1.0, 1.0)
    """(low, high): each patch multiplies the density of `gaps` by a factor drawn uniformly
    from this range, so the model sees lightly and heavily damaged inputs."""
    refresh_every: int = 0
    """Draw a fresh pool of synthetic masks every this many steps (0: one fixed pool). A fresh
    pool is a pure function of (seed, step // refresh_every), so resumed runs match."""
    synth: dict = field(default_factory=dict)
    """Other SynthConfig options of the training masks, e.g. {root_hairs: true}."""
    real_kind: str = "roots"
    """GAN-GL-M and unet-m only: kind of the 'real' masks (which get inherent gaps, see real_gaps)."""
    real_gaps: dict = field(default_factory=lambda: {"kind": "skeleton", "density": 0.5})
    """GAN-GL-M and unet-m only: GapConfig of the inherent gaps of the 'real' masks (kept in the target)."""
    real_band: int = 0
    """GAN-GL-M and unet-m only: also train the real batches' masked CE on the background within
    this many px of the input's strokes, outside the erased region and away from stroke ends
    (`distpaint.train.side_band`): pixels a real mask's inherent gaps cannot hide, which teach
    G to keep thin lines thin. 0 = the paper (region only)."""
    real_band_max_width: int = 0
    """With real_band: the band lies only beside strokes at most this many px wide (0: beside
    every stroke). Beside wide strokes a partial erasure looks like a true side."""
    store: str = ""
    """Mask stores of complete real masks, comma-separated (e.g. `runs/real/train/roads.zarr`,
    written by `distpaint realdata build` or `distpaint rasterize`/`ingest`): on a share `store_share` of
    the (non-'real') steps the batch is cut from one of its masks, with artificial gaps, instead
    of a synthetic mask, so G learns real dead ends, widths and junctions. Masks too small for
    a batch of non-overlapping patches are left out. "" = synthetic masks only. In-process
    (`--local`) runs only: a Ray run takes its training store with --data."""
    store_share: float = 0.5
    """With `store`: the share of steps whose batch comes from the store."""

    def __post_init__(self) -> None:
        _coerce(self)
        from distpaint.data.synth.config import KINDS  # deferred (Dask): see the imports

        for name in ("kind", "real_kind"):
            bad = [k for k in kinds_of(getattr(self, name)) if k not in KINDS]
            if bad or not kinds_of(getattr(self, name)):
                raise ConfigError(f"data.{name} must be `all` or kinds among {', '.join(KINDS)} "
                                  f"(comma-separated), got {getattr(self, name)!r}")
        for name, floor in (("width_scale", "> 0"), ("gap_density", ">= 0")):
            pair = getattr(self, name)
            low_ok = len(pair) == 2 and (pair[0] > 0 if floor == "> 0" else pair[0] >= 0)
            if not low_ok or pair[0] > pair[1]:
                raise ConfigError(f"data.{name} must be a (low, high) pair with low {floor} and low <= high, "
                                  f"got {list(pair)}")
        if not 0.0 <= self.store_share <= 1.0:
            raise ConfigError(f"data.store_share must be in [0, 1], got {self.store_share}")
        if self.refresh_every < 0 or self.real_band < 0 or self.real_band_max_width < 0:
            raise ConfigError("data.refresh_every, data.real_band and data.real_band_max_width "
                              "must be >= 0")
        if not isinstance(self.synth, dict) or "width_scale" in self.synth:
            raise ConfigError("data.synth must be a mapping of SynthConfig options (width_scale "
                              "is set by data.width_scale)")
        if self.patch_size < 16 or self.batch_size < 1 or self.n_masks < 2:
            raise ConfigError("data.patch_size must be >= 16, data.batch_size >= 1, data.n_masks >= 2 "
                              "(D_G compares patches of different masks)")
        cells = (self.mask_size // self.patch_size) ** 2
        if cells < self.batch_size:
            raise ConfigError(f"data.mask_size {self.mask_size} holds {cells} non-overlapping "
                              f"{self.patch_size}-px patches, fewer than data.batch_size {self.batch_size}")
        for name in ("gaps", "real_gaps"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"data.{name} must be a mapping of GapConfig options")

    @property
    def kinds(self) -> tuple[str, ...]:
        """The synthetic kinds of the training pool, in pool order."""
        return kinds_of(self.kind)


def kinds_of(spec: str) -> tuple[str, ...]:
    """Kinds named by a `DataConfig.kind` spec: one kind, a comma-separated list, or `all`."""
    from distpaint.data.synth.config import KINDS  # deferred (Dask): see the imports

    if spec.strip() == "all":
        return KINDS
    return tuple(k.strip() for k in spec.split(",") if k.strip())


@dataclass
class TrainConfig:
    """A whole training run."""

    variant: str = "gan-gl"
    """gan-gl, gan-l, gan-g, unet, cnn, gan-gl-m or unet-m (see VARIANTS)."""
    seed: int = 0
    """Seeds the models, the data and the sampling."""
    max_steps: int = 10000
    """Training steps (the CLI's --max-steps overrides)."""
    checkpoint_every: int = 500
    """Save a checkpoint every this many steps (and at the end)."""
    log_every: int = 10
    """Record metrics every this many steps."""
    keep_checkpoints: int = 2
    """Number of most recent checkpoints kept in the run directory."""
    deterministic: bool = True
    """torch.use_deterministic_algorithms (CPU runs resume bit-exactly)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Networks."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimisers."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Losses."""
    data: DataConfig = field(default_factory=DataConfig)
    """Training data."""

    def __post_init__(self) -> None:
        _coerce_top(self)
        _choice("variant", self.variant, VARIANTS)
        if self.max_steps < 0 or self.checkpoint_every < 1 or self.log_every < 1 or self.keep_checkpoints < 1:
            raise ConfigError("max_steps must be >= 0; checkpoint_every, log_every, keep_checkpoints >= 1")
        self._check_models()

    def _check_models(self) -> None:
        from distpaint.models import get_entry, model_config  # deferred (torch): see the imports

        g = get_entry(self.model.generator, "generator")
        if self.variant == "cnn" and g.model_cls.__name__ != "SasakiCNN":
            raise ConfigError(f"variant cnn needs a cnn_* generator, got {self.model.generator!r}")
        if self.variant in ("unet", "unet-m") and g.model_cls.__name__ != "UNet":
            raise ConfigError(f"variant {self.variant} needs a unet_* generator, got {self.model.generator!r}")
        # the GAN variants train any generator (the paper's is the U-Net): the same losses
        # around another architecture is an experiment worth being able to run
        gen = g.model_cls(model_config(self.model.generator, **self.model.generator_args))
        p = self.data.patch_size
        if p % gen.size_multiple:
            raise ConfigError(f"data.patch_size {p} must be a multiple of {gen.size_multiple} for {g.name}")
        if self.uses_local:
            sub = model_config(self.model.local_disc, **self.model.local_disc_args).sub_size
            if p < sub:
                raise ConfigError(f"data.patch_size {p} is smaller than D_L's sub_size {sub}")

    @property
    def uses_local(self) -> bool:
        """Whether the variant trains D_L and uses the LSGAN term."""
        return self.variant in ("gan-gl", "gan-l", "gan-gl-m")

    @property
    def uses_global(self) -> bool:
        """Whether the variant trains D_G and uses the policy-gradient term."""
        return self.variant in ("gan-gl", "gan-g", "gan-gl-m")

    @property
    def needs_partner(self) -> bool:
        """Whether D_G's positive pairs need complete patches of a second mask (uses_global
        with loss.dg_positive `other`, the paper; with `self` a patch pairs with itself)."""
        return self.uses_global and self.loss.dg_positive == "other"

    @property
    def uses_real(self) -> bool:
        """Whether odd steps are real batches trained with the masked CE only (REAL_VARIANTS)."""
        return self.variant in REAL_VARIANTS


def _coerce_top(cfg: TrainConfig) -> None:
    for name in ("seed", "max_steps", "checkpoint_every", "log_every", "keep_checkpoints"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not isinstance(cfg.deterministic, bool):
        raise ConfigError("deterministic must be true or false")


_NESTED = {"model": ModelConfig, "optim": OptimConfig, "loss": LossConfig, "data": DataConfig}


def config_from_dict(data: dict, source: str = "<dict>") -> TrainConfig:
    """Build a `TrainConfig` from nested mappings; unknown keys and bad values raise
    `ConfigError` naming `source` and the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in top:
            raise ConfigError(f"{source}: unknown key {key!r}; valid: {', '.join(sorted(top))}")
        if key in _NESTED:
            kwargs[key] = _section(_NESTED[key], key, value, source)
        else:
            kwargs[key] = value
    try:
        return TrainConfig(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _section(cls: type, name: str, value: Any, source: str) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {name} must be a mapping")
    valid = {f.name for f in dataclasses.fields(cls)}
    for key in value:
        if key not in valid:
            raise ConfigError(f"{source}: unknown key '{name}.{key}'; valid: {', '.join(sorted(valid))}")
    try:
        return cls(**value)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(f"{source}: {msg if msg.startswith(name) else f'{name}.{msg}'}") from None


def config_to_dict(cfg: TrainConfig) -> dict:
    """Plain nested dict (lists instead of tuples) of `cfg`, suitable for YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


BASE_KEY = "base"
"""Recipe key naming the recipe this one starts from (see the module docstring)."""
STAGES_KEY = "stages"
"""Recipe key listing the stages of a chained recipe (see the module docstring)."""
_STAGE_KEYS = ("name", "average", "set")


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe (a recipe without `stages:` is one stage named after its file)."""

    number: int
    """1-based position in the chain."""
    name: str
    """Name (unique in the recipe, not a number): `--stage NAME`, the stage's run folder."""
    average: int
    """Last checkpoints averaged into the stage's result (the next stage's starting G);
    0: the result is the last checkpoint itself."""
    data: dict
    """The stage's resolved recipe (plain mapping, no `base` or `stages`)."""


def load_config(path: str | Path, stage: int | str | None = None) -> TrainConfig:
    """Read a YAML recipe (its `base:` chain merged), stage 1 of a chained recipe unless `stage`
    (a 1-based number or a name) says which; `ConfigError` for a missing/unparsable file, a bad
    base, stage or key."""
    if stage is None:
        return config_from_dict(recipe_data(path), str(path))
    found = find_stage(path, stage)
    return config_from_dict(found.data, f"{path} (stage {found.name})")


def recipe_data(path: str | Path) -> dict:
    """The recipe at `path` (stage 1 of a chained one) as a plain nested mapping with its
    `base:` chain merged in (the base's values overridden by the recipe's, mappings merged at
    every depth); `ConfigError` naming the file for an unreadable file, a missing base or a
    cycle of bases."""
    data = _resolve(Path(path), ())
    data.pop(STAGES_KEY, None)
    return data


def recipe_stages(path: str | Path) -> list[Stage]:
    """Every stage of the recipe at `path`, each resolved (see the module docstring); one stage
    named after the file for a recipe without `stages:`. Each stage's config is checked."""
    return _stages(Path(path), ())


def _stages(path: Path, seen: tuple[Path, ...]) -> list[Stage]:
    data = _resolve(path, seen)
    entries = data.pop(STAGES_KEY, None)
    if entries is None:
        keep = config_from_dict(data, str(path)).keep_checkpoints
        return [Stage(1, path.stem, keep if keep > 1 else 0, data)]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: {STAGES_KEY} must be a non-empty list of stages")
    stages: list[Stage] = []
    for number, entry in enumerate(entries, 1):
        where = f"{path}: stage {number}"
        if not isinstance(entry, dict) or set(entry) - set(_STAGE_KEYS):
            raise ConfigError(f"{where} must be a mapping of {', '.join(_STAGE_KEYS)}")
        name, average, overlay = entry.get("name"), entry.get("average", 0), entry.get("set")
        if not isinstance(name, str) or not name.strip() or name.isdigit():
            raise ConfigError(f"{where}: name must be a non-numeric string, got {name!r}")
        if name in {s.name for s in stages}:
            raise ConfigError(f"{where}: name {name!r} is used by an earlier stage")
        if number == 1 and overlay is not None:
            raise ConfigError(f"{where}: the first stage is the recipe itself; it takes no `set`")
        if overlay is not None and not isinstance(overlay, dict):
            raise ConfigError(f"{where}: set must be a mapping of config fields")
        resolved = _merge(stages[-1].data, overlay or {}) if stages else data
        cfg = config_from_dict(resolved, f"{path} (stage {name})")
        if isinstance(average, bool) or not isinstance(average, int) or not 0 <= average <= cfg.keep_checkpoints:
            raise ConfigError(f"{where}: average must be an integer from 0 to the stage's keep_checkpoints "
                              f"({cfg.keep_checkpoints}), got {average!r}")
        stages.append(Stage(number, name, average, resolved))
    return stages


def find_stage(path: str | Path, stage: int | str) -> Stage:
    """The stage `stage` (a 1-based number, as an int or a string of digits, or a name) of the
    recipe at `path`; `ConfigError` listing the stages when there is none such."""
    stages = recipe_stages(path)
    key = str(stage)
    for s in stages:
        if key in (s.name, str(s.number)):
            return s
    listing = ", ".join(f"{s.number} {s.name}" for s in stages)
    raise ConfigError(f"{path}: no stage {stage!r}; its stages: {listing}")


def _read_mapping(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _resolve(path: Path, seen: tuple[Path, ...]) -> dict:
    data = _read_mapping(path)
    if BASE_KEY not in data:
        return data
    name = data.pop(BASE_KEY)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{path}: {BASE_KEY} must name a recipe (a file beside this one or a "
                          f"shipped recipe), got {name!r}")
    name, _, stage = name.partition("@")  # `roads@more`: that stage of a chained recipe
    base = _base_path(path, name)
    chain = (*seen, path.resolve())
    if base.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, base.resolve()))
        raise ConfigError(f"{path}: {BASE_KEY} {name!r} makes a cycle of recipes ({cycle})")
    if stage:
        stages = _stages(base, chain)
        found = [s for s in stages if stage in (s.name, str(s.number))]
        if not found:
            raise ConfigError(f"{path}: {BASE_KEY} {name}@{stage}: {base} has no stage {stage!r} "
                              f"(its stages: {', '.join(s.name for s in stages)})")
        return _merge(found[0].data, data)
    inherited = _resolve(base, chain)
    inherited.pop(STAGES_KEY, None)  # a chained base lends its stage 1, not its chain
    return _merge(inherited, data)


def _base_path(recipe: Path, name: str) -> Path:
    """The recipe `name` refers to from `recipe`: a file beside `recipe` (as written, then with
    `.yaml`), else a shipped recipe."""
    for candidate in (recipe.parent / name, recipe.parent / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    try:
        return packaged_config(name)
    except ConfigError as exc:
        raise ConfigError(f"{recipe}: {BASE_KEY} {name!r} is neither a file beside it nor a "
                          f"shipped recipe ({exc})") from None


def _merge(base: dict, override: dict) -> dict:
    """`base` with `override`'s values; mappings present in both merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def dump_config(cfg: TrainConfig) -> str:
    """`cfg` as YAML text (round-trips through `config_from_dict`)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def packaged_config(name: str) -> Path:
    """Path of a recipe shipped in `distpaint/configs/` (`name` with or without `.yaml`)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = Path(__file__).resolve().parent.parent / "configs" / f"{stem}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no shipped config {name!r}; shipped: {', '.join(shipped)}")
    return path
