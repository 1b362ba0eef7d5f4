"""Denoisers: networks that take (x_t, t) and predict the training target. Models never import the schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mlp import PointMLP

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["PointMLP", "build_model"]


def build_model(config: "TrainConfig", *, dim: int) -> PointMLP:
    """The denoiser a config describes, for data of dimension ``dim``."""
    return PointMLP(
        dim,
        embedding_size=config.embedding_size,
        hidden_size=config.hidden_size,
        hidden_layers=config.hidden_layers,
        time_embedding=config.time_embedding,
        input_embedding=config.input_embedding,
        input_scale=config.input_scale,
    )
