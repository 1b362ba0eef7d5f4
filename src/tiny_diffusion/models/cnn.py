"""A plain time-aware CNN denoiser for small images, and the pieces every image denoiser shares.

Shapes: ``x`` is (B, C, H, W) float, ``t`` is (B,) integer timesteps, the output is (B, C, H, W).
H and W must be divisible by 2**levels (28 and 8 with levels 2: 28 -> 14 -> 7, 8 -> 4 -> 2).

The timestep reaches the network as a conditioning vector ``emb`` of size ``cond_size``: a named timestep embedding
then Linear-SiLU-Linear (``TimeConditioning``); every block adds a per-channel projection of ``emb`` to its features.
A caller may add its own (B, cond_size) vector (a class-label embedding, say) through ``forward(..., cond=...)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UsageError
from .embeddings import TIME_EMBEDDINGS, make_embedding

__all__ = ["SeedCNN", "TimeConditioning", "check_image_size", "parameter_count"]


def parameter_count(model: nn.Module) -> int:
    """How many numbers the model learns."""
    return sum(p.numel() for p in model.parameters())


def check_image_size(x: torch.Tensor, levels: int, model: str) -> None:
    """Fail unless x is (B, C, H, W) with H and W divisible by 2**levels (each level halves them, then doubles back)."""
    if x.ndim != 4:
        raise UsageError(f"{model} takes images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    factor = 2**levels
    height, width = x.shape[-2:]
    if height % factor or width % factor:
        raise UsageError(
            f"{model} with levels={levels} needs height and width divisible by {factor}, got {height}x{width}"
        )


class TimeConditioning(nn.Module):
    """(B,) timesteps -> (B, cond_size): a named timestep embedding, then Linear-SiLU-Linear (Ho et al. 2020)."""

    def __init__(self, cond_size: int, *, time_embedding: str = "sinusoidal", embedding_size: int = 128) -> None:
        super().__init__()
        self.embedding = make_embedding(TIME_EMBEDDINGS, time_embedding, embedding_size)
        self.mlp = nn.Sequential(
            nn.Linear(self.embedding.size_out, cond_size), nn.SiLU(), nn.Linear(cond_size, cond_size)
        )
        self.size_out = cond_size

    def vector(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) timesteps -> (B, cond_size), before the activation."""
        return self.mlp(self.embedding(t))

    def forward(self, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The blocks' input: SiLU(vector(t) + cond). The MLP ends in a Linear; the nonlinearity keeps the blocks'
        projections from folding into it."""
        emb = self.vector(t)
        return F.silu(emb if cond is None else emb + cond)


class ConvBlock(nn.Module):
    """conv -> BatchNorm -> ReLU, then + a per-channel projection of the conditioning vector."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, cond_size: int) -> None:
        super().__init__()
        self.conv = conv
        self.norm = nn.BatchNorm2d(conv.out_channels)
        self.act = nn.ReLU()
        self.cond = nn.Linear(cond_size, conv.out_channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x))) + self.cond(emb)[:, :, None, None]  # (B, ch, H, W) + (B, ch, 1, 1)


class SeedCNN(nn.Module):
    """The follow-up study's simple CNN made time-aware: stride-2 convs down, transposed convs up, no skips.

    Widths are ``channels`` at full resolution and ``2 * channels`` below it; each of the ``levels`` halves H and W.
    """

    def __init__(
        self,
        in_channels: int = 1,
        *,
        channels: int = 32,
        levels: int = 2,
        time_embedding: str = "sinusoidal",
        embedding_size: int = 128,
    ) -> None:
        super().__init__()
        if levels < 1:
            raise UsageError(f"SeedCNN needs levels >= 1, got {levels}")
        if channels < 1:
            raise UsageError(f"SeedCNN needs channels >= 1, got {channels}")
        self.in_channels = in_channels
        self.levels = levels
        self.cond_size = embedding_size
        self.time = TimeConditioning(self.cond_size, time_embedding=time_embedding, embedding_size=embedding_size)
        widths = [channels] + [2 * channels] * levels  # widths[i]: channels at resolution H / 2**i
        self.stem = ConvBlock(nn.Conv2d(in_channels, channels, 3, padding=1), self.cond_size)
        self.down = nn.ModuleList(
            ConvBlock(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), self.cond_size)
            for i in range(levels)
        )
        # kernel 4, stride 2, padding 1 exactly doubles H and W
        self.up = nn.ModuleList(
            ConvBlock(nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1), self.cond_size)
            for i in reversed(range(levels))
        )
        self.out = nn.Conv2d(channels, in_channels, 3, padding=1)

    def condition(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) timesteps -> (B, cond_size) conditioning vector."""
        return self.time.vector(t)

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W), t: (B,) timesteps, cond: optional (B, cond_size) added to the time's -> (B, C, H, W)."""
        check_image_size(x, self.levels, "SeedCNN")
        emb = self.time(t, cond)  # (B, cond_size)
        h = self.stem(x, emb)
        for block in self.down:
            h = block(h, emb)
        for block in self.up:
            h = block(h, emb)
        return self.out(h)
