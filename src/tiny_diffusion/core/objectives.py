"""What the network is trained to predict, and how its output becomes a noise prediction for the samplers.

- ``noise``: the noise that was added (Ho et al. 2020; the default).
- ``x0``: the clean data ("compare to the initial image").
- ``previous``: the mean of x_{t-1} given x_t and x_0 ("compare to the previous image").
- ``v``: sqrt(alpha-bar) noise - sqrt(1 - alpha-bar) x0 (Salimans & Ho 2022, https://arxiv.org/abs/2202.00512).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from ..choices import TARGETS
from ..errors import UsageError
from .schedule import NoiseSchedule, extract

__all__ = ["TARGETS", "training_target", "noise_predictor", "loss_weights"]

Target = Literal["noise", "x0", "previous", "v"]


def _check(target: str) -> None:
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")


def training_target(
    target: Target, schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The tensor the network's output is compared with (mean squared error)."""
    _check(target)
    if target == "noise":
        return noise
    if target == "x0":
        return x0
    if target == "previous":
        return schedule.posterior(x0, x_t, t)[0]
    sqrt_a = extract(schedule.sqrt_alphas_cumprod, t, x0.shape)
    sqrt_1ma = extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0.shape)
    return sqrt_a * noise - sqrt_1ma * x0


def loss_weights(target: Target, schedule: NoiseSchedule, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B,) weights of each sample's squared error for min-SNR-gamma weighting (Hang et al. 2023,
    https://arxiv.org/abs/2303.09556): in x0 terms every step is weighted by min(SNR_t, gamma), SNR_t =
    alpha-bar / (1 - alpha-bar), so the nearly noise-free steps, which are easy, stop dominating the gradient.

    An error e in x0 is an error k e in the target, with k^2 = SNR (noise), 1 (x0), SNR + 1 (v) or the posterior's
    coefficient of x0 squared (previous); dividing by k^2 turns the x0 weight into the target's.
    """
    _check(target)
    alpha_bar = schedule.alphas_cumprod[t]
    snr = alpha_bar / (1 - alpha_bar)
    scale = {"noise": snr, "x0": torch.ones_like(snr), "v": snr + 1, "previous": schedule.posterior_mean_coef1[t] ** 2}[
        target
    ]
    return snr.clamp(max=gamma) / scale


def output_to_noise(
    target: Target, schedule: NoiseSchedule, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Invert ``training_target``: the noise implied by the network's output at (x_t, t)."""
    _check(target)
    if target == "noise":
        return output
    if target == "x0":
        return schedule.predict_noise(x_t, output, t)
    if target == "previous":
        # mean = c1 x0 + c2 x_t, and c1 > 0 at every t
        x0 = (output - extract(schedule.posterior_mean_coef2, t, x_t.shape) * x_t) / extract(
            schedule.posterior_mean_coef1, t, x_t.shape
        )
        return schedule.predict_noise(x_t, x0, t)
    sqrt_a = extract(schedule.sqrt_alphas_cumprod, t, x_t.shape)
    sqrt_1ma = extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t.shape)
    return sqrt_1ma * x_t + sqrt_a * output


def noise_predictor(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule, target: Target = "noise"
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Wrap a network trained on ``target`` as the ``noise_predictor(x_t, t)`` the samplers need."""
    _check(target)
    if target == "noise":
        return model
    return lambda x_t, t: output_to_noise(target, schedule, model(x_t, t), x_t, t)
