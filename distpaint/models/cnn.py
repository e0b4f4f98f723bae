"""The fully convolutional baseline of Sasaki et al. (CVPR 2017), "CNN" in the paper's tables.

A Simo-Serra-style encoder-decoder without skip connections: a 5x5 stem, stride-2 3x3 convs
that shrink the input 2**L times with a flat 3x3 conv after each, two flat convs at the
bottleneck, then 4x4 transposed convolutions (stride 2, "up-convolutions") each followed by a
flat conv, and a 3x3 head with 2 output channels. Trained here with cross-entropy like G so
that the comparison isolates the architecture (Sasaki et al. used a weighted MSE).

Returns logits `(B, 2, H, W)`; H and W must be multiples of 2**L.

    python -c "from distpaint.models import create_model; print(create_model('cnn_sasaki'))"
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from distpaint.errors import ConfigError
from distpaint.models.layers import ACTS, NORMS, ActLayer, ConvNormAct, NormLayer, act_factory, norm_factory
from distpaint.models.registry import register_model
from distpaint.models.unet import Generator, _check_common

__all__ = ["CNNConfig", "SasakiCNN"]


@dataclass(frozen=True)
class CNNConfig:
    """Configuration of the Sasaki et al. CNN."""

    widths: tuple[int, ...] = (48, 128, 256, 512)
    """Channels of the stem, then one per down-sampling (len - 1 down-samplings)."""
    norm: str = "batch"
    """Normalisation after each conv (batch, instance, group, none)."""
    act: str = "relu"
    """Activation after each norm."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        _check_common("cnn", self.widths, self.norm, self.act, min_len=2)


class SasakiCNN(Generator):
    """Encoder-decoder CNN of Sasaki et al. (see the module docstring)."""

    def __init__(
        self,
        config: CNNConfig = CNNConfig(),
        *,
        norm_layer: NormLayer | None = None,
        act_layer: ActLayer | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        norm_layer = norm_layer or norm_factory(config.norm)
        act_layer = act_layer or act_factory(config.act)
        w = config.widths
        levels = len(w) - 1
        self.size_multiple = self.min_size = 2**levels

        def block(cin: int, cout: int, **kw) -> ConvNormAct:
            return ConvNormAct(cin, cout, norm_layer=norm_layer, act_layer=act_layer, **kw)

        layers: list[nn.Module] = [block(1, w[0], kernel_size=5)]
        for i in range(levels):
            layers += [block(w[i], w[i + 1], stride=2), block(w[i + 1], w[i + 1])]
        layers += [block(w[-1], w[-1]), block(w[-1], w[-1])]
        for i in range(levels, 0, -1):
            layers += [
                nn.ConvTranspose2d(w[i], w[i - 1], 4, stride=2, padding=1, bias=False),
                norm_layer(w[i - 1]),
                act_layer(),
                block(w[i - 1], w[i - 1]),
            ]
        layers.append(nn.Conv2d(w[0], 2, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `(B, 2, H, W)` of input `(B, 1, H, W)`."""
        self.check_input(x)
        return self.body(x)


register_model("cnn_sasaki", "generator", SasakiCNN, CNNConfig(),
               "Fully convolutional CNN of Sasaki et al. 2017 (baseline 'CNN')")
register_model("cnn_cpu", "generator", SasakiCNN, CNNConfig(widths=(8, 32, 64, 128)),
               "Sasaki CNN scaled to unet_cpu's training cost, for same-budget comparisons")
register_model("cnn_tiny", "generator", SasakiCNN, CNNConfig(widths=(8, 16, 16, 32)),
               "Sasaki CNN for tests and smoke runs")
