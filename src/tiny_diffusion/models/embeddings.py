"""Embeddings of a scalar (a timestep or one input coordinate) into a vector, by name.

Each module maps a tensor of shape (N,) to (N, size_out); ``size_out`` says how wide the result is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..errors import UsageError

__all__ = ["TIME_EMBEDDINGS", "INPUT_EMBEDDINGS", "make_embedding"]


class SinusoidalEmbedding(nn.Module):
    """sin/cos of ``scale * x`` at geometrically spaced frequencies (Vaswani et al. 2017; Tancik et al. 2020).

    A large scale (25 for coordinates, as in the original tiny-diffusion) lets the MLP resolve fine spatial detail.
    """

    def __init__(self, size: int, scale: float = 1.0) -> None:
        super().__init__()
        half = size // 2
        if half < 2:
            raise UsageError(f"a sinusoidal embedding needs size >= 4, got {size}")
        freqs = torch.exp(-math.log(10000.0) / (half - 1) * torch.arange(half, dtype=torch.float32))
        self.register_buffer("freqs", freqs * scale, persistent=False)
        self.size_out = 2 * half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = x.float().unsqueeze(-1) * self.freqs  # (N, half)
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class LearnableEmbedding(nn.Module):
    """A learned linear map of x / size (the original's normalisation)."""

    def __init__(self, size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.size = size
        self.linear = nn.Linear(1, size)
        self.size_out = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.float().unsqueeze(-1) / self.size)


class LinearEmbedding(nn.Module):
    """x * scale / size as a single feature."""

    def __init__(self, size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.factor = scale / size
        self.size_out = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().unsqueeze(-1) * self.factor


class IdentityEmbedding(nn.Module):
    """x itself as a single feature."""

    def __init__(self, size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.size_out = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().unsqueeze(-1)


class ZeroEmbedding(nn.Module):
    """A constant zero feature: the model is not told the timestep (an ablation)."""

    def __init__(self, size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.size_out = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 1, device=x.device)


EmbeddingFactory = Callable[[int, float], nn.Module]

TIME_EMBEDDINGS: dict[str, EmbeddingFactory] = {
    "sinusoidal": SinusoidalEmbedding,
    "learnable": LearnableEmbedding,
    "linear": LinearEmbedding,
    "zero": ZeroEmbedding,
}
INPUT_EMBEDDINGS: dict[str, EmbeddingFactory] = {
    "sinusoidal": SinusoidalEmbedding,
    "learnable": LearnableEmbedding,
    "linear": LinearEmbedding,
    "identity": IdentityEmbedding,
}


def make_embedding(registry: dict[str, EmbeddingFactory], name: str, size: int, scale: float = 1.0) -> nn.Module:
    """Build the named embedding from ``registry``; an unknown name fails listing the valid ones."""
    if name not in registry:
        raise UsageError(f"unknown embedding {name!r}; choose from {', '.join(registry)}")
    return registry[name](size, scale)
