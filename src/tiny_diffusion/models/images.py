"""Image denoisers by name: (x (B, C, H, W), t (B,)) -> (B, C, H, W)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .cnn import SeedCNN
from .unet import UNet

__all__ = ["IMAGE_MODELS"]

IMAGE_MODELS: dict[str, Callable[..., nn.Module]] = {"seed-cnn": SeedCNN, "unet": UNet}
