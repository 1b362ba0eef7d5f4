"""Denoisers: networks that take (x_t, t) and predict the training target. Models never import the schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from ..choices import MODELS
from .cnn import parameter_count
from .conditioning import LabelConditioned, autoguided, guided
from .images import IMAGE_MODELS
from .mlp import PointMLP

__all__ = [
    "PointMLP",
    "IMAGE_MODELS",
    "MODELS",
    "ModelSettings",
    "LabelConditioned",
    "build_model",
    "autoguided",
    "guided",
    "parameter_count",
]


class ModelSettings(Protocol):
    """The settings a denoiser is built from (a run's TrainConfig has them, among others)."""

    model: str  # mlp, seed-cnn or unet
    conditional: bool  # takes class labels too
    embedding_size: int
    time_embedding: str
    hidden_size: int  # mlp
    hidden_layers: int  # mlp
    input_embedding: str  # mlp
    input_scale: float  # mlp
    channels: int  # seed-cnn and unet


def build_model(config: ModelSettings, *, shape: Sequence[int], num_classes: int = 0) -> nn.Module:
    """The denoiser a config describes, for samples of ``shape``: (D,) points or (C, H, W) images; a conditional
    run's is wrapped to take labels of ``num_classes`` classes."""
    model = _denoiser(config, shape)
    return LabelConditioned(model, num_classes) if config.conditional else model


def _denoiser(config: ModelSettings, shape: Sequence[int]) -> nn.Module:
    if config.model in IMAGE_MODELS:
        model = IMAGE_MODELS[config.model](
            shape[0],
            channels=config.channels,
            time_embedding=config.time_embedding,
            embedding_size=config.embedding_size,
        )
        # convolutions run about 10% faster on a CPU with the channels last in memory (oneDNN's preferred layout);
        # the values are the same, and so are the weights saved (contiguous) and loaded (copied into this layout)
        return model.to(memory_format=torch.channels_last)
    return PointMLP(
        shape[0],
        embedding_size=config.embedding_size,
        hidden_size=config.hidden_size,
        hidden_layers=config.hidden_layers,
        time_embedding=config.time_embedding,
        input_embedding=config.input_embedding,
        input_scale=config.input_scale,
    )
