"""Building blocks shared by the generators and discriminators.

Norm and activation layers are *injected* (timm style): every block takes a `norm_layer`
factory `(num_channels) -> nn.Module` and an `act_layer` factory `() -> nn.Module`, so swapping
BatchNorm for InstanceNorm, GroupNorm or no normalisation needs no change in the models.
Configs name them by string; `norm_factory` / `act_factory` turn the names into factories.

    >>> block = ConvNormAct(1, 16, norm_layer=norm_factory("instance"), act_layer=act_factory("relu"))
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = [
    "NORMS",
    "ACTS",
    "NormLayer",
    "ActLayer",
    "norm_factory",
    "act_factory",
    "ConvNormAct",
    "count_parameters",
]

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[[], nn.Module]

NORMS = ("batch", "instance", "group", "none")
ACTS = ("relu", "leaky_relu", "elu", "gelu", "silu")


def _group_norm(num_channels: int) -> nn.Module:
    # 8 groups where possible; fall back to fewer for narrow layers (GroupNorm needs divisibility).
    groups = next(g for g in (8, 4, 2, 1) if num_channels % g == 0)
    return nn.GroupNorm(groups, num_channels)


def norm_factory(name: str) -> NormLayer:
    """Factory for the normalisation called `name` (one of `NORMS`)."""
    factories: dict[str, NormLayer] = {
        "batch": nn.BatchNorm2d,
        # affine=True so InstanceNorm has the same learnable scale/shift as the others;
        # no running stats, so train and eval (and both Siamese branches) normalise alike.
        "instance": partial(nn.InstanceNorm2d, affine=True),
        "group": _group_norm,
        "none": lambda num_channels: nn.Identity(),
    }
    if name not in factories:
        raise ValueError(f"unknown norm {name!r}; choose one of {NORMS}")
    return factories[name]


def act_factory(name: str) -> ActLayer:
    """Factory for the activation called `name` (one of `ACTS`); leaky ReLU uses slope 0.2."""
    factories: dict[str, ActLayer] = {
        "relu": partial(nn.ReLU, inplace=True),
        "leaky_relu": partial(nn.LeakyReLU, 0.2, inplace=True),
        "elu": partial(nn.ELU, inplace=True),
        "gelu": nn.GELU,
        "silu": partial(nn.SiLU, inplace=True),
    }
    if name not in factories:
        raise ValueError(f"unknown activation {name!r}; choose one of {ACTS}")
    return factories[name]


class ConvNormAct(nn.Sequential):
    """conv -> (spectral norm on the conv) -> norm -> activation.

    `padding=None` keeps the spatial size for odd kernels ("same" for stride 1, halving for
    stride 2), dilated or not. The conv has no bias when a norm with its own shift follows.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        padding_mode: str = "zeros",
        norm_layer: NormLayer | None = None,
        act_layer: ActLayer | None = None,
        spectral: bool = False,
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size // 2)
        norm = norm_layer(out_channels) if norm_layer is not None else nn.Identity()
        has_shift = not isinstance(norm, nn.Identity)
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            padding_mode=padding_mode,
            bias=not has_shift,
        )
        if spectral:
            conv = spectral_norm(conv)
        act = act_layer() if act_layer is not None else nn.Identity()
        super().__init__(conv, norm, act)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

