"""The original tiny-diffusion MLP, for points of any dimension D."""

from __future__ import annotations

import torch
from torch import nn

from .embeddings import INPUT_EMBEDDINGS, TIME_EMBEDDINGS, make_embedding

__all__ = ["PointMLP"]


class ResidualBlock(nn.Module):
    """x + GELU(Linear(x))."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(size, size)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.linear(x))


class PointMLP(nn.Module):
    """Embed each coordinate and the timestep, concatenate, then residual GELU blocks down to D outputs.

    An optional conditioning vector (a class label's embedding, size ``cond_size`` = hidden_size) is added to the
    first layer's output, which is the same as concatenating it to the features.
    """

    def __init__(
        self,
        dim: int = 2,
        *,
        embedding_size: int = 128,
        hidden_size: int = 128,
        hidden_layers: int = 3,
        time_embedding: str = "sinusoidal",
        input_embedding: str = "sinusoidal",
        input_scale: float = 25.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.time_embedding = make_embedding(TIME_EMBEDDINGS, time_embedding, embedding_size)
        # one embedding per coordinate, as the original's input_mlp1 / input_mlp2
        self.input_embeddings = nn.ModuleList(
            make_embedding(INPUT_EMBEDDINGS, input_embedding, embedding_size, input_scale) for _ in range(dim)
        )
        concat_size = self.time_embedding.size_out + sum(e.size_out for e in self.input_embeddings)
        layers: list[nn.Module] = [nn.Linear(concat_size, hidden_size), nn.GELU()]
        layers += [ResidualBlock(hidden_size) for _ in range(hidden_layers)]
        layers.append(nn.Linear(hidden_size, dim))
        self.joint = nn.Sequential(*layers)
        self.cond_size = hidden_size

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, D) points, t: (N,) integer timesteps, cond: optional (N, cond_size) -> (N, D)."""
        features = [embed(x[:, i]) for i, embed in enumerate(self.input_embeddings)]
        features.append(self.time_embedding(t))
        first, *rest = self.joint
        h = first(torch.cat(features, dim=-1))  # (N, hidden_size)
        if cond is not None:
            h = h + cond
        for layer in rest:
            h = layer(h)
        return h
