"""Networks of distpaint: the generator G (U-Net), the local (PatchGAN) and global (Siamese)
discriminators, and the CNN baseline of Sasaki et al., each a registered variant built from a
typed config. Plain PyTorch: importable with torch and numpy only.

    >>> from distpaint.models import create_model, list_models
    >>> g = create_model("unet_small"); d_l = create_model("patchgan_small")
"""

from distpaint.models.registry import (
    ROLES,
    ModelEntry,
    config_to_dict,
    create_model,
    get_entry,
    list_models,
    model_config,
    register_model,
)
from distpaint.models import unet as _unet  # noqa: F401  (registers the variants)
from distpaint.models import cnn as _cnn  # noqa: F401
from distpaint.models import local_disc as _local_disc  # noqa: F401
from distpaint.models import global_disc as _global_disc  # noqa: F401
from distpaint.models.unet import Generator, UNet, UNetConfig
from distpaint.models.cnn import CNNConfig, SasakiCNN
from distpaint.models.local_disc import LocalDiscConfig, PatchDiscriminator
from distpaint.models.global_disc import GlobalDiscConfig, SiameseDiscriminator

__all__ = [
    "ROLES",
    "ModelEntry",
    "config_to_dict",
    "create_model",
    "get_entry",
    "list_models",
    "model_config",
    "register_model",
    "Generator",
    "UNet",
    "UNetConfig",
    "CNNConfig",
    "SasakiCNN",
    "LocalDiscConfig",
    "PatchDiscriminator",
    "GlobalDiscConfig",
    "SiameseDiscriminator",
]
