"""Reverse-process samplers: start from N(0, I) and denoise step by step.

A sampler needs a noise predictor ``noise_predictor(x_t, t) -> noise`` (``objectives.noise_predictor`` makes one from
a network trained on any target) and a schedule. Shapes are free: the same code draws (N, D) points and (N, C, H, W)
images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ..choices import SAMPLERS
from ..errors import UsageError
from .schedule import NoiseSchedule, extract

__all__ = ["SAMPLERS", "Trajectory", "sample", "ddim_timesteps", "sampler_timesteps"]

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Bounds = tuple[torch.Tensor | float, torch.Tensor | float]


@dataclass
class Trajectory:
    """What a sampler returns: the final samples and, if asked, states along the way."""

    samples: torch.Tensor  # (N, ...) the generated x_0
    steps_left: list[int]  # for each recorded state, the denoising steps still to go (x_T first, 0 = final)
    states: torch.Tensor | None  # (K, N, ...) the recorded states, starting with the initial noise; or None


def _clip(x0: torch.Tensor, clip: Bounds | None) -> torch.Tensor:
    if clip is None:
        return x0
    lo, hi = clip
    return torch.maximum(
        torch.minimum(x0, torch.as_tensor(hi, device=x0.device)), torch.as_tensor(lo, device=x0.device)
    )


def ddpm_step(
    schedule: NoiseSchedule,
    predicted_noise: torch.Tensor,
    x_t: torch.Tensor,
    t: int,
    *,
    clip: Bounds | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Algorithm 2)."""
    tt = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
    # 1. predicted x_0 from the predicted noise (eq. 15), optionally clipped to the data's range
    x0 = _clip(schedule.predict_x0(x_t, predicted_noise, tt), clip)
    # 2. mean and variance of q(x_{t-1} | x_t, x_0) (eqs. 6-7)
    mean, variance = schedule.posterior(x0, x_t, tt)
    if t == 0:
        return mean
    # 3. x_{t-1} = mean + sigma_t z, with sigma_t^2 = beta-tilde_t
    z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    return mean + variance.sqrt() * z


def ddim_step(
    schedule: NoiseSchedule,
    predicted_noise: torch.Tensor,
    x_t: torch.Tensor,
    t: int,
    t_prev: int,
    *,
    eta: float = 0.0,
    clip: Bounds | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, https://arxiv.org/abs/2010.02502, eq. 12).

    t_prev = -1 means "to the data": alpha-bar is 1 there.
    """
    tt = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
    a_t = extract(schedule.alphas_cumprod, tt, x_t.shape)
    a_prev = schedule.alphas_cumprod[t_prev] if t_prev >= 0 else torch.ones((), device=x_t.device)
    # 1. predicted x_0 ("predicted x_0" term of eq. 12); if clipped, the noise is re-derived to match it
    x0 = schedule.predict_x0(x_t, predicted_noise, tt)
    if clip is not None:
        x0 = _clip(x0, clip)
        predicted_noise = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
    # 2. sigma_t(eta) (eq. 16): eta = 0 is deterministic DDIM, eta = 1 matches DDPM's variance
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * variance.sqrt()
    # 3. "direction pointing to x_t" plus fresh noise
    x_prev = a_prev.sqrt() * x0 + (1 - a_prev - std**2).clamp(min=0).sqrt() * predicted_noise
    if eta > 0:
        x_prev = x_prev + std * torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    return x_prev


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps from T - 1 down, evenly spaced ("trailing" spacing, Lin et al. 2023, Table 2)."""
    if not 1 <= steps <= num_timesteps:
        raise UsageError(f"sample steps must be between 1 and num_timesteps ({num_timesteps}), got {steps}")
    ratio = num_timesteps / steps
    return [round(num_timesteps - i * ratio) - 1 for i in range(steps)]


SamplerName = Literal["ddpm", "ddim"]


def sampler_timesteps(num_timesteps: int, sampler: str, steps: int | None = None) -> list[int]:
    """The zero-based timesteps a sampler visits, in order: all T for ddpm, ``steps`` of them for ddim."""
    if sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if sampler == "ddim":
        return ddim_timesteps(num_timesteps, steps or num_timesteps)
    if steps not in (None, num_timesteps):
        raise UsageError(f"the ddpm sampler walks all {num_timesteps} steps; use --sampler ddim for fewer")
    return list(range(num_timesteps - 1, -1, -1))


@torch.inference_mode()
def sample(
    noise_predictor: NoisePredictor,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    *,
    sampler: SamplerName = "ddpm",
    steps: int | None = None,
    eta: float = 0.0,
    clip: Bounds | None = None,
    generator: torch.Generator | None = None,
    record_every: int = 0,
) -> Trajectory:
    """Draw ``shape`` samples from N(0, I) through the reverse process.

    ``ddpm`` walks all T steps; ``ddim`` walks ``steps`` of them (default T). ``record_every`` > 0 keeps the state
    after every that many steps (with the initial noise and the final samples), for pictures of the reverse process.
    """
    timesteps = sampler_timesteps(len(schedule), sampler, steps)
    device = schedule.device
    x = torch.randn(shape, generator=generator, device=device)
    kept, states = ([len(timesteps)], [x.clone()]) if record_every else ([], [])
    for i, t in enumerate(timesteps):
        predicted_noise = noise_predictor(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
        if sampler == "ddpm":
            x = ddpm_step(schedule, predicted_noise, x, t, clip=clip, generator=generator)
        else:
            t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            x = ddim_step(schedule, predicted_noise, x, t, t_prev, eta=eta, clip=clip, generator=generator)
        if record_every and (i % record_every == record_every - 1 or i == len(timesteps) - 1):
            kept.append(len(timesteps) - i - 1)
            states.append(x.clone())
    return Trajectory(x, kept, torch.stack(states) if states else None)
