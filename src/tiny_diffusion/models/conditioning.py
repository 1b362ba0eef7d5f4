"""Class-conditional denoisers, classifier-free guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598) and
autoguidance (Karras et al. 2024, https://arxiv.org/abs/2406.02507).

``LabelConditioned`` wraps any denoiser of this package (its ``forward(x, t, *, cond=None)`` takes a (B, cond_size)
vector): a learned embedding per class, plus one more, index ``num_classes``, for "no label". Training drops the
label (replaces it by "no label") with a small probability, so one network learns both p(x | class) and p(x).

``guided`` then mixes the two predictions at sampling time: output = cond + w (cond - uncond). w = 0 is the plain
conditional model; larger w pushes samples towards what makes the class recognisable, at some cost in variety.
Every training target (noise, x0, previous, v) is affine in the network's output for a fixed (x_t, t), so mixing
outputs is the same as mixing the noise predictions the samplers use.

``autoguided`` does the same for an unconditional model, with a weaker version of itself in place of the
unconditional prediction: output = model + w (model - guide). Karras et al. guide with a smaller, shorter-trained
model; here the guide is the same network's weights early in its own training (``guide_at``), so it costs no
training time. Where the guide errs the model errs the same way, more so, and the difference points away from it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["LabelConditioned", "autoguided", "guided"]


class LabelConditioned(nn.Module):
    """A denoiser told which class to draw: ``forward(x, t, labels)``, labels (B,) in 0..num_classes, where
    ``num_classes`` (also what ``labels=None`` means) is "no label"."""

    def __init__(self, denoiser: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.num_classes = num_classes
        self.labels = nn.Embedding(num_classes + 1, denoiser.cond_size)
        nn.init.normal_(self.labels.weight, std=0.02)  # small next to the timestep's vector at the start

    @property
    def null_label(self) -> int:
        """The index that means "no label"."""
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, ...), t: (B,), labels: (B,) or None (unconditional) -> (B, ...)."""
        if labels is None:
            labels = torch.full((x.shape[0],), self.null_label, device=x.device, dtype=torch.long)
        return self.denoiser(x, t, cond=self.labels(labels))


def guided(
    model: LabelConditioned, labels: torch.Tensor, scale: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x_t, t) -> the network's output for ``labels`` (B,) under guidance ``scale`` (0: plain conditional).
    With guidance the conditional and unconditional predictions come from one batch of 2B."""

    def output(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if scale == 0:
            return model(x_t, t, labels)
        null = torch.full_like(labels, model.null_label)
        cond, uncond = model(torch.cat((x_t, x_t)), torch.cat((t, t)), torch.cat((labels, null))).chunk(2)
        return cond + scale * (cond - uncond)

    return output


def autoguided(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    guide: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scale: float,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x_t, t) -> model + ``scale`` (model - guide): autoguidance (0: the model alone, one pass)."""
    if scale == 0:
        return model

    def output(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        good = model(x_t, t)
        return good + scale * (good - guide(x_t, t))

    return output
