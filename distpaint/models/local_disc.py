"""The local discriminator D_L: a PatchGAN scoring fixed-size sub-patches, with spectral norm.

The paper (section IV-C) divides each 256x256 patch into 128x128 sub-patches, scores each and
averages the decisions. We do exactly that: the input is cut into `sub_size` windows at
`sub_stride` (the last window is aligned to the border so that every pixel is covered), the
windows go through one conv net as a batch, and `forward` returns one score per window
`(B, n_windows)`; the LSGAN losses average the squared errors over windows (eq. 5, 6).

Per window: `len(widths)` blocks of 4x4 stride-2 spectrally normalised conv + norm + leaky
ReLU (channels 32-64-128-256-256 in the paper), a 4x4 stride-1 block of the same width, then
a spectrally normalised conv whose kernel covers the remaining map (3x3 for 128: 128 / 2**5 = 4,
minus 1) giving a scalar; ~2.8 M parameters for the paper preset, as in the authors' code.

Normalisation defaults to none (spectral norm only): BatchNorm in a discriminator that sees
real and fake in separate forwards normalises them with different statistics and breaks DDP's
buffer broadcast; the training step also feeds real and fake in one forward. `norm="batch"`
reproduces the paper. The paper ends with a sigmoid; LSGAN (Mao et al.) uses a linear output,
which does not saturate: `output="linear"` is the default, `output="sigmoid"` the paper's.

    python -c "from distpaint.models import create_model; print(create_model('patchgan_paper'))"
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from distpaint.errors import ConfigError
from distpaint.models.layers import ActLayer, ConvNormAct, NormLayer, act_factory, norm_factory
from distpaint.models.registry import register_model
from distpaint.models.unet import _check_common

__all__ = ["LocalDiscConfig", "PatchDiscriminator", "window_starts"]


@dataclass(frozen=True)
class LocalDiscConfig:
    """Configuration of the PatchGAN local discriminator."""

    widths: tuple[int, ...] = (32, 64, 128, 256, 256)
    """Channels of the stride-2 blocks (one block per entry)."""
    sub_size: int = 128
    """Side of the scored sub-patches (paper: 128); a multiple of 2**len(widths)."""
    sub_stride: int = 64
    """Step between sub-patches; equal to sub_size for non-overlapping windows."""
    norm: str = "none"
    """Normalisation after the convs (not the first): none (default, DDP-safe), batch (paper), instance, group."""
    act: str = "leaky_relu"
    """Activation (leaky ReLU, slope 0.2)."""
    spectral: bool = True
    """Spectral normalisation on every conv (paper: yes)."""
    output: str = "linear"
    """Score activation: linear (LSGAN) or sigmoid (paper)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        _check_common("local_disc", self.widths, self.norm, self.act, min_len=1)
        n = 2 ** len(self.widths)
        if self.sub_size < 2 * n or self.sub_size % n:
            raise ConfigError(f"local_disc.sub_size ({self.sub_size}) must be a multiple of "
                              f"2**{len(self.widths)} = {n} and at least {2 * n}")
        if not 0 < self.sub_stride <= self.sub_size:
            raise ConfigError(f"local_disc.sub_stride must be in 1..sub_size, got {self.sub_stride}")
        if self.output not in ("linear", "sigmoid"):
            raise ConfigError(f"local_disc.output must be linear or sigmoid, got {self.output!r}")


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows of `size` every `stride` covering `0..length` (last one flush)."""
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


class PatchDiscriminator(nn.Module):
    """PatchGAN D_L: `(B, 1, H, W)` -> one score per sub-patch window `(B, n_windows)`."""

    def __init__(
        self,
        config: LocalDiscConfig = LocalDiscConfig(),
        *,
        norm_layer: NormLayer | None = None,
        act_layer: ActLayer | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        norm_layer = norm_layer or norm_factory(config.norm)
        act_layer = act_layer or act_factory(config.act)
        self.min_size = config.sub_size
        self.size_multiple = 1
        blocks = []
        cin = 1
        for i, cout in enumerate(config.widths):
            # no norm on the first block (pix2pix): normalising the raw binary input loses scale
            blocks.append(ConvNormAct(cin, cout, kernel_size=4, stride=2, padding=1,
                                      norm_layer=norm_layer if i else None, act_layer=act_layer,
                                      spectral=config.spectral))
            cin = cout
        blocks.append(ConvNormAct(cin, cin, kernel_size=4, stride=1, padding=1,
                                  norm_layer=norm_layer, act_layer=act_layer,
                                  spectral=config.spectral))
        last = config.sub_size // 2 ** len(config.widths) - 1  # a k4 s1 p1 conv shrinks by 1
        head = nn.Conv2d(cin, 1, last)  # covers the whole remaining map -> (N, 1, 1, 1)
        self.body = nn.Sequential(*blocks, spectral_norm(head) if config.spectral else head)

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        """Sub-patches of `x` `(B, 1, H, W)` -> `(B * n, 1, s, s)`, n windows per image."""
        s, stride = self.config.sub_size, self.config.sub_stride
        h, w = x.shape[-2:]
        if h < s or w < s:
            raise ValueError(f"D_L needs inputs of at least {s}x{s}, got {h}x{w}")
        crops = [x[:, :, i:i + s, j:j + s] for i in window_starts(h, s, stride)
                 for j in window_starts(w, s, stride)]
        return torch.stack(crops, dim=1).reshape(-1, 1, s, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores `(B, n_windows)` of input `(B, 1, H, W)` (probabilities or binary masks)."""
        b = x.shape[0]
        scores = self.body(self.windows(x)).reshape(b, -1)
        return torch.sigmoid(scores) if self.config.output == "sigmoid" else scores


register_model("patchgan_paper", "local_disc", PatchDiscriminator, LocalDiscConfig(),
               "PatchGAN D_L of the paper: 128x128 sub-patches, spectral norm (~2.8 M parameters)")
register_model("patchgan_small", "local_disc", PatchDiscriminator,
               LocalDiscConfig(widths=(16, 32, 64, 128), sub_size=64, sub_stride=32),
               "PatchGAN D_L on 64x64 sub-patches for CPU training")
register_model("patchgan_tiny", "local_disc", PatchDiscriminator,
               LocalDiscConfig(widths=(8, 16, 16), sub_size=32, sub_stride=16),
               "PatchGAN D_L for tests and smoke runs")
