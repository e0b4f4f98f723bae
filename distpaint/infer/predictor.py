"""The model side of inference: a minimal predictor interface and its torch adapter.

The engine needs only a callable `predict(batch) -> probabilities` on NumPy arrays
`(B, 1, h, w) float32` plus two attributes: `align` (the down-sampling factor; window origins
and sizes are multiples of it) and `receptive_halo` (context each tile needs so that the tiled
result equals whole-image inference). `TorchPredictor` wraps a generator (eval mode,
`torch.inference_mode`, channels-last memory layout, optional GPU with bf16 autocast);
`receptive_radius` measures a torch
module's receptive field; `resolve_model` turns `--model NAME|CKPT` into a predictor.

    predictor = resolve_model("runs/x/checkpoints/step_00000500", gpu=False, threads=2)
    probs = predictor(batch)              # (B, 1, h, w) float32 in [0, 1]
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pathlib
import tempfile
import warnings
from typing import Any, Protocol, runtime_checkable

import numpy as np

from distpaint.errors import ConfigError
from distpaint.infer.tiling import round_up
from distpaint.weights import WEIGHTS_DIR, checkpoint_or_shipped, shipped_models

# torch (and the model file, which needs it) is imported inside the functions that use it:
# the engine and the job import this module, and neither a baseline run (`distpaint baseline`
# runs as a Predictor without torch) nor the CLI's start-up should pay for loading torch.

__all__ = [
    "Predictor",
    "TorchPredictor",
    "receptive_radius",
    "cached_receptive_radius",
    "RADIUS_CACHE_VARIABLE",
    "shipped_models",
    "resolve_model",
    "WEIGHTS_DIR",
]

# Norms that mix statistics over the whole spatial extent: a tile's statistics differ from
# the whole image's, so no halo makes tiled inference exact with them.
_GLOBAL_NORMS = ("InstanceNorm", "GroupNorm", "LayerNorm")


@runtime_checkable
class Predictor(Protocol):
    """What the engine calls: `predict(batch (B, 1, h, w) float32) -> (B, 1, h, w) float32`
    foreground probabilities, for h and w multiples of `align`."""

    align: int
    receptive_halo: int

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def receptive_radius(module: Any, align: int = 1, size: int = 128, in_channels: int = 1) -> int:
    """The structural receptive-field radius of `module`, in pixels, measured empirically.

    A copy of the module gets positive weights (1/fan-in, so activations stay O(1)),
    unit 1-D parameters, zero BatchNorm means and a positive input, so no ReLU is inactive and
    every structural path carries gradient; the gradient of the outputs of an `align` x
    `align` block at the centre (all phases of the stride grids) w.r.t. the input is then
    non-zero exactly on the receptive field. All terms are positive, so nothing cancels and
    float32 is as exact as float64 here. The probe grows until the field fits inside.
    """
    import torch  # deferred: see the note at the imports

    probe = copy.deepcopy(module).float().eval()
    with torch.no_grad():
        for param in probe.parameters():
            param.fill_(1.0 / param[0].numel() if param.dim() > 1 else 1.0)
            param.requires_grad_(False)
        for name, buf in probe.named_buffers():
            if name.endswith("running_mean"):
                buf.zero_()
            elif name.endswith("running_var"):
                buf.fill_(1.0)
    size = round_up(max(size, 4 * align), 2 * align)
    while True:
        x = torch.ones(1, in_channels, size, size, dtype=torch.float32, requires_grad=True)
        c = size // 2
        probe(x)[..., c : c + align, c : c + align].sum().backward()
        rows = np.flatnonzero(x.grad[0].abs().sum(dim=(0, 2)).numpy() > 0)
        cols = np.flatnonzero(x.grad[0].abs().sum(dim=(0, 1)).numpy() > 0)
        lo, hi = min(rows[0], cols[0]), max(rows[-1], cols[-1])
        if lo > 0 and hi < size - 1:
            return int(max(c - lo, hi - (c + align - 1)))
        if size >= 8192:
            raise ConfigError(f"receptive field of {type(module).__name__} exceeds 4096 px")
        size = round_up(size * 3 // 2, 2 * align)


RADIUS_CACHE_VARIABLE = "DISTPAINT_RADIUS_CACHE"
"""File of the receptive radii measured so far (default ~/.cache/distpaint/receptive_radius.json);
"off" measures every time."""


def _radius_cache_file() -> pathlib.Path | None:
    value = os.environ.get(RADIUS_CACHE_VARIABLE, "~/.cache/distpaint/receptive_radius.json")
    return None if value == "off" else pathlib.Path(value).expanduser()


def cached_receptive_radius(module: Any, align: int = 1) -> int:
    """`receptive_radius(module, align)`, remembered on disk by the module's structure.

    The radius depends on the layers only (kernel sizes, strides, dilations, paddings, the
    order they are applied in), never on the weights, and measuring it costs several forward
    and backward passes at up to ~650 px (9 s of a 15 s `distpaint infer` of a 256-px mask on
    2 cores). The key is a digest of the module's class, its printed structure (every layer with
    those settings) and the plain attributes of each submodule; a cache that cannot be read or written is ignored (measured
    again), so a read-only home never stops a repair."""
    structure = f"{type(module).__module__}.{type(module).__qualname__}\n{module}\nalign={align}"
    # plain settings a forward() may read besides its layers (e.g. an upsampling mode)
    for name, sub in module.named_modules():
        settings = {k: v for k, v in vars(sub).items() if not k.startswith("_") and k != "training"
                    and isinstance(v, (bool, int, float, str, tuple))}
        structure += f"\n{name}: {sorted(settings.items())}"
    key = hashlib.sha256(structure.encode()).hexdigest()
    path = _radius_cache_file()
    known: dict[str, int] = {}
    if path is not None:
        try:
            known = json.loads(path.read_text())
            if isinstance(known.get(key), int):
                return known[key]
        except (OSError, ValueError, AttributeError):
            known = {}
    radius = receptive_radius(module, align)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # written whole under a temporary name and renamed: concurrent repairs never read
            # half a file
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
                json.dump({**known, key: radius}, tmp)
            os.replace(tmp.name, path)
        except OSError:
            pass
    return radius


class TorchPredictor:
    """Adapter from a torch generator to the `Predictor` interface."""

    def __init__(
        self,
        module: Any,
        *,
        align: int | None = None,
        receptive_halo: int | None = None,
        gpu: bool = False,
        bf16: bool = True,
        threads: int | None = None,
        dtype: str = "float32",
        channels_last: bool = True,
    ) -> None:
        """`module` maps (B, 1, h, w) to logits (B, 2, h, w) (a distpaint Generator, which
        has `predict_proba`) or to probabilities (B, 1, h, w). `align` defaults to the
        module's `size_multiple`; `receptive_halo` to its measured receptive radius rounded up
        to `align`. `gpu` runs on CUDA (with bf16 autocast unless `bf16=False`); `threads`
        sets torch's CPU threads; `dtype="float64"` runs in double precision (tests);
        `channels_last` runs convolutions in NHWC layout (2x faster on these CPUs with oneDNN,
        measured with unet_tiny and unet_cpu at 1152 px; the layout GPUs' tensor cores want)."""
        import torch  # deferred: see the note at the imports

        if gpu and not torch.cuda.is_available():
            raise ConfigError("--gpu: no CUDA device is available on this machine")
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(int(threads))
        self._check_norms(module)
        self.device = torch.device("cuda" if gpu else "cpu")
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.align = int(align or getattr(module, "size_multiple", 1))
        # measured where the module is (the CPU, as loaded): its probe is a CPU tensor, and
        # `.to` below moves the module in place
        radius = cached_receptive_radius(module.eval(), self.align) if receptive_halo is None else receptive_halo
        self.module = module.eval().to(self.device, self.dtype).to(memory_format=self.memory_format)
        self.receptive_halo = round_up(radius, self.align)
        self.autocast = bool(gpu and bf16)

    @staticmethod
    def _check_norms(module: Any) -> None:
        found = sorted({type(m).__name__ for m in module.modules()
                        if type(m).__name__.startswith(_GLOBAL_NORMS)})
        if found:
            warnings.warn(
                f"the model uses {', '.join(found)}, which normalise over the whole input: "
                "tiled inference cannot equal whole-image inference exactly", stacklevel=3,
            )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Foreground probabilities (B, 1, h, w) float32 of `batch` (B, 1, h, w)."""
        import torch  # deferred: see the note at the imports

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, self.dtype,
                                                            non_blocking=True)
        x = x.contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), torch.autocast(
            "cuda", dtype=torch.bfloat16, enabled=self.autocast
        ):
            if hasattr(self.module, "predict_proba"):
                p = self.module.predict_proba(x)
            else:
                p = self.module(x)
        return p.float().cpu().numpy()


def resolve_model(
    name_or_path: str | pathlib.Path, *, gpu: bool = False, threads: int | None = None
) -> TorchPredictor:
    """A predictor for `--model`: a checkpoint directory (or its model.pt) or the name of a
    shipped model. InputError naming the model and the available ones otherwise."""
    path = checkpoint_or_shipped(name_or_path)
    from distpaint.models.modelfile import load_generator  # deferred (torch): see the imports

    return TorchPredictor(load_generator(path), gpu=gpu, threads=threads)
