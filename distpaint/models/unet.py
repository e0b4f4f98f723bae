"""The inpainting generator G: a U-Net with stride-2 down-sampling and nearest up-sampling.

Architecture (paper supplement, fig. 1): 3x3 conv + norm + ReLU blocks; the encoder halves the
resolution 4 times with stride-2 convolutions; the decoder doubles it with nearest-neighbour
up-sampling followed by a conv (fewer checkerboard artefacts than transposed convs), and
concatenates the encoder features of the same resolution (skip connections); a 3x3 conv
produces 2 channels (background, foreground) whose softmax is the probability map.

`widths = (w0, w1, ..., w_{L+1})` with `L = len(widths) - 2` down-samplings: w0 is the stem,
w1 the full-resolution features, w_{i+1} the features at 1/2**i. The paper preset
(16, 32, 64, 128, 256, 512) has about 5.5 M parameters.

Generators return *logits* `(B, 2, H, W)`; `predict_proba` gives the foreground probability
`(B, 1, H, W)`. Inputs are `(B, 1, H, W)` float in {0, 1} with H and W multiples of 2**L.

    python -c "from distpaint.models import create_model; print(create_model('unet_small'))"
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from distpaint.errors import ConfigError
from distpaint.models.layers import ACTS, NORMS, ActLayer, ConvNormAct, NormLayer, act_factory, norm_factory
from distpaint.models.registry import register_model

__all__ = ["Generator", "UNetConfig", "ContextBlock", "UNet"]


class Generator(nn.Module):
    """Base of the generators: logits out, helpers for probabilities and input checks."""

    size_multiple: int = 1
    """H and W of the input must be multiples of this."""
    min_size: int = 1
    """Smallest H and W accepted."""

    def check_input(self, x: torch.Tensor) -> None:
        """Raise `ValueError` unless `x` is `(B, 1, H, W)` with H, W multiples of `size_multiple`."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (B, 1, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m or h < self.min_size or w < self.min_size:
            raise ValueError(f"input size {h}x{w} must be multiples of {m} (pad the input)")

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground probability `(B, 1, H, W)` of input `x` `(B, 1, H, W)`."""
        return torch.softmax(self(x), dim=1)[:, 1:2]


def _check_common(name: str, widths: tuple[int, ...], norm: str, act: str, min_len: int) -> None:
    if len(widths) < min_len or any(int(w) < 1 for w in widths):
        raise ConfigError(f"{name}.widths must be at least {min_len} positive integers, got {widths}")
    if norm not in NORMS:
        raise ConfigError(f"{name}.norm must be one of {NORMS}, got {norm!r}")
    if act not in ACTS:
        raise ConfigError(f"{name}.act must be one of {ACTS}, got {act!r}")


@dataclass(frozen=True)
class UNetConfig:
    """Configuration of the U-Net generator."""

    widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    """Channels: stem, full resolution, then one per down-sampling (len - 2 down-samplings)."""
    norm: str = "batch"
    """Normalisation after each conv: batch (paper), instance, group or none."""
    act: str = "relu"
    """Activation after each norm (paper: relu)."""
    padding_mode: str = "zeros"
    """Conv padding: zeros (paper text) or reflect (the authors' code)."""
    context_dilations: tuple[int, ...] = ()
    """Dilations of residual 3x3 conv blocks at the bottleneck (not in the paper; none by
    default). Each widens the receptive radius by `d * 2**L` px at 1/4**L of the pixels'
    compute; their last conv starts at zero, so a U-Net trained without them, or with the
    first of them (`--init`), starts as the same function (see `ContextBlock`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "context_dilations", tuple(int(d) for d in self.context_dilations))
        _check_common("unet", self.widths, self.norm, self.act, min_len=3)
        if self.padding_mode not in ("zeros", "reflect"):
            raise ConfigError(f"unet.padding_mode must be zeros or reflect, got {self.padding_mode!r}")
        if any(d < 1 for d in self.context_dilations):
            raise ConfigError(f"unet.context_dilations must be positive integers, got {self.context_dilations}")


class ContextBlock(nn.Module):
    """`x + conv1x1(act(norm(conv3x3_dilated(x))))`, the 1x1 conv initialised to zero.

    Why residual and zero-initialised: the block is the identity at first, so a trained U-Net
    grown by these blocks computes the same function and fine-tuning only has to learn what
    the wider view adds (function-preserving growth, as in Net2Net). Zero padding always:
    at the bottleneck a dilation can exceed the feature map, where reflect padding is undefined.
    """

    def __init__(self, channels: int, dilation: int, *, norm_layer: NormLayer, act_layer: ActLayer) -> None:
        super().__init__()
        out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.branch = nn.Sequential(
            ConvNormAct(channels, channels, dilation=dilation, norm_layer=norm_layer, act_layer=act_layer),
            out,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class UNet(Generator):
    """U-Net generator G (see the module docstring)."""

    def __init__(
        self,
        config: UNetConfig = UNetConfig(),
        *,
        norm_layer: NormLayer | None = None,
        act_layer: ActLayer | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        norm_layer = norm_layer or norm_factory(config.norm)
        act_layer = act_layer or act_factory(config.act)
        w = config.widths
        levels = len(w) - 2
        self.size_multiple = 2**levels
        self.min_size = 2**levels

        def block(cin: int, cout: int, stride: int = 1) -> ConvNormAct:
            return ConvNormAct(cin, cout, stride=stride, padding_mode=config.padding_mode,
                               norm_layer=norm_layer, act_layer=act_layer)

        self.stem = nn.Sequential(block(1, w[0]), block(w[0], w[1]))
        # encoder level i (1..L): (B, w[i+1], H/2**i, W/2**i); a stride-2 conv then a conv,
        # except at the bottleneck, whose widest conv alone would hold 40 % of the weights
        # (this keeps the paper preset at ~5.5 M parameters, the paper's "about 6 M")
        self.down = nn.ModuleList(
            nn.Sequential(block(w[i], w[i + 1], stride=2),
                          *([block(w[i + 1], w[i + 1])] if i < levels else []))
            for i in range(1, levels + 1)
        )
        self.context = nn.Sequential(*(ContextBlock(w[-1], d, norm_layer=norm_layer, act_layer=act_layer)
                                       for d in config.context_dilations))
        # decoder, deepest first: up-sample + conv to w[i], concat skip (w[i]), fuse to w[i]
        self.up_conv = nn.ModuleList(block(w[i + 1], w[i]) for i in range(levels, 0, -1))
        self.fuse = nn.ModuleList(block(2 * w[i], w[i]) for i in range(levels, 0, -1))
        self.head = nn.Sequential(
            block(w[1], w[0]),
            nn.Conv2d(w[0], 2, 3, padding=1, padding_mode=config.padding_mode),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `(B, 2, H, W)` of input `(B, 1, H, W)`."""
        self.check_input(x)
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = self.context(skips.pop())
        for up_conv, fuse in zip(self.up_conv, self.fuse):
            h = up_conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = fuse(torch.cat([h, skips.pop()], dim=1))
        return self.head(h)


register_model("unet_paper", "generator", UNet, UNetConfig(),
               "U-Net G of the paper, widths 16..512 (~5.5 M parameters)")
register_model("unet_small", "generator", UNet, UNetConfig(widths=(8, 16, 32, 64, 128, 256)),
               "U-Net G at half width (~1.4 M parameters), fast enough for CPU inference")
register_model("unet_cpu", "generator", UNet, UNetConfig(widths=(8, 8, 16, 32, 64, 128)),
               "U-Net G with ~1/8 of the paper's compute per pixel, for CPU-only inference")
register_model("unet_cpu_wide", "generator", UNet, UNetConfig(widths=(8, 8, 16, 32, 64, 128, 128)),
               "unet_cpu with a 5th down-sampling: receptive radius 127 px instead of 63 (bridges "
               "gaps twice as long) at ~0.85x its speed")
register_model("unet_cpu_context", "generator", UNet,
               UNetConfig(widths=(8, 8, 16, 32, 64, 128), context_dilations=(2, 4)),
               "unet_cpu with two dilated residual blocks at the bottleneck: receptive radius "
               "~160 px instead of 63; grows from unet_cpu weights (--init)")
register_model("unet_tiny", "generator", UNet, UNetConfig(widths=(4, 8, 8, 16, 16, 32)),
               "U-Net G for tests and smoke runs")
