"""A small time-conditioned U-Net denoiser for small images (Ronneberger et al. 2015; as used by Ho et al. 2020).

Shapes: ``x`` is (B, C, H, W) float, ``t`` is (B,) integer timesteps, the output is (B, C, H, W);
H and W must be divisible by 2**levels (28 and 8 with levels 2: 28 -> 14 -> 7, 8 -> 4 -> 2).

Layout: a 3x3 stem; at each of the ``levels + 1`` resolutions ``blocks_per_level`` residual blocks whose output is
kept as a skip, then a stride-2 conv down; a middle block; back up, at each resolution the skip is concatenated and
passed through ``blocks_per_level`` residual blocks, then nearest-neighbour x2 and a 3x3 conv; GroupNorm-SiLU-conv out.
One skip per resolution (not one per block, as in DDPM) keeps it fast on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UsageError
from .cnn import TimeConditioning, check_image_size

__all__ = ["UNet"]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count of at most 8 that divides ``channels``."""
    groups = next(g for g in range(min(8, channels), 0, -1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv, + projection of the conditioning vector, GroupNorm-SiLU-Dropout-conv, plus the input."""

    def __init__(self, channels_in: int, channels_out: int, cond_size: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.cond = nn.Linear(cond_size, channels_out)
        self.norm2 = group_norm(channels_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        # a 1x1 conv matches the channels of the residual path when they change
        self.skip = nn.Identity() if channels_in == channels_out else nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.cond(emb)[:, :, None, None]  # (B, ch, H, W) + (B, ch, 1, 1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv (avoids the checkerboard of transposed convs)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """Time-conditioned U-Net: residual blocks at ``levels + 1`` resolutions, skips concatenated on the way up."""

    def __init__(
        self,
        in_channels: int = 1,
        *,
        channels: int = 32,
        channel_mults: Sequence[int] | None = None,
        levels: int = 2,
        blocks_per_level: int = 1,
        dropout: float = 0.0,
        time_embedding: str = "sinusoidal",
        embedding_size: int = 128,
    ) -> None:
        super().__init__()
        if levels < 1:
            raise UsageError(f"UNet needs levels >= 1, got {levels}")
        if channel_mults is None:
            channel_mults = (1, 2, 4, 8)[: levels + 1]  # (1, 2, 4) at levels 2: width is cheap at low resolution
        if len(channel_mults) != levels + 1:
            raise UsageError(f"UNet with levels={levels} needs {levels + 1} channel_mults, got {tuple(channel_mults)}")
        if channels < 1 or min(channel_mults) < 1 or blocks_per_level < 1:
            raise UsageError("UNet needs channels, channel_mults and blocks_per_level all >= 1")
        if not 0.0 <= dropout < 1.0:
            raise UsageError(f"UNet needs 0 <= dropout < 1, got {dropout}")
        self.in_channels = in_channels
        self.levels = levels
        self.cond_size = embedding_size
        self.time = TimeConditioning(self.cond_size, time_embedding=time_embedding, embedding_size=embedding_size)
        widths = [channels * m for m in channel_mults]  # widths[i]: channels at resolution H / 2**i

        def blocks(channels_in: int, channels_out: int) -> nn.ModuleList:
            """``blocks_per_level`` residual blocks, the first one changing the width."""
            sizes = [channels_in] + [channels_out] * (blocks_per_level - 1)
            return nn.ModuleList(ResidualBlock(c, channels_out, self.cond_size, dropout=dropout) for c in sizes)

        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        # level i starts at the width the level above left it (the downsample keeps the width)
        self.down_blocks = nn.ModuleList(blocks(widths[max(i - 1, 0)], widths[i]) for i in range(levels + 1))
        self.downsample = nn.ModuleList(nn.Conv2d(w, w, 3, stride=2, padding=1) for w in widths[:-1])
        self.middle = ResidualBlock(widths[-1], widths[-1], self.cond_size, dropout=dropout)
        # up_blocks[i] sees the path's widths[i] concatenated with the skip's widths[i]
        self.up_blocks = nn.ModuleList(blocks(2 * widths[i], widths[i]) for i in range(levels + 1))
        self.upsample = nn.ModuleList(Upsample(widths[i + 1], widths[i]) for i in range(levels))
        self.out = nn.Sequential(group_norm(widths[0]), nn.SiLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1))
        # start as the zero function: a noise-predicting model then begins at loss ~1 rather than far above it
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def condition(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) timesteps -> (B, cond_size) conditioning vector."""
        return self.time.vector(t)

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W), t: (B,) timesteps, cond: optional (B, cond_size) added to the time's -> (B, C, H, W)."""
        check_image_size(x, self.levels, "UNet")
        emb = self.time(t, cond)  # (B, cond_size)
        h = self.stem(x)
        skips = []
        for i, level in enumerate(self.down_blocks):
            for block in level:
                h = block(h, emb)
            skips.append(h)  # (B, widths[i], H / 2**i, W / 2**i)
            if i < self.levels:
                h = self.downsample[i](h)
        h = self.middle(h, emb)
        for i in reversed(range(self.levels + 1)):
            h = torch.cat((h, skips.pop()), dim=1)
            for block in self.up_blocks[i]:
                h = block(h, emb)
            if i > 0:
                h = self.upsample[i - 1](h)
        return self.out(h)
