"""Noise schedules and the closed-form maths of the forward process (no weights).

Notation follows Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (https://arxiv.org/abs/2006.11239):
``betas[t]`` is the variance added at step t, ``alphas = 1 - betas`` and ``alphas_cumprod[t]`` (alpha-bar) is their
product up to and including t. Timesteps are zero-based: t = 0 is the first noising step, t = T - 1 the last.

Every method works for any tensor rank: ``x`` may be (N, D) points or (N, C, H, W) images; ``t`` is (N,) integers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch

from ..errors import UsageError

__all__ = ["BETA_SCHEDULES", "NoiseSchedule", "ScheduleSettings", "make_betas", "extract"]

BetaFn = Callable[[int, float, float], torch.Tensor]


def linear_betas(num_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Betas evenly spaced from beta_start to beta_end (Ho et al. 2020)."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def quadratic_betas(num_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Square roots of the betas evenly spaced (diffusers' ``scaled_linear``; the original's ``quadratic``)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2


def cosine_betas(num_timesteps: int, beta_start: float = 0.0, beta_end: float = 0.0) -> torch.Tensor:
    """alpha-bar follows cos^2 (Nichol & Dhariwal 2021, https://arxiv.org/abs/2102.09672, eq. 17), betas capped at
    0.999.

    The beta range does not apply; this is diffusers' ``squaredcos_cap_v2``.
    """

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), 0.999) for i in range(num_timesteps)
    ]
    return torch.tensor(betas, dtype=torch.float64)


def sigmoid_betas(num_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Betas follow a sigmoid over [-6, 6], scaled to [beta_start, beta_end] (as in diffusers' ``sigmoid``)."""
    s = torch.sigmoid(torch.linspace(-6, 6, num_timesteps, dtype=torch.float64))
    return s * (beta_end - beta_start) + beta_start


BETA_SCHEDULES: dict[str, BetaFn] = {
    "linear": linear_betas,
    "quadratic": quadratic_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
}


def make_betas(name: str, num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The float64 betas of the named schedule; an unknown name fails listing the valid ones."""
    if name not in BETA_SCHEDULES:
        raise UsageError(f"unknown beta schedule {name!r}; choose from {', '.join(BETA_SCHEDULES)}")
    if num_timesteps < 1:
        raise UsageError(f"num_timesteps must be positive, got {num_timesteps}")
    return BETA_SCHEDULES[name](num_timesteps, beta_start, beta_end)


def extract(a: torch.Tensor, t: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
    """a[t] reshaped to (N, 1, ..., 1) so that it broadcasts against a tensor of shape x_shape."""
    return a[t].reshape(t.shape[0], *([1] * (len(x_shape) - 1)))


class ScheduleSettings(Protocol):
    """The settings a schedule is built from (a run's TrainConfig has them, among others)."""

    num_timesteps: int
    beta_schedule: str
    beta_start: float
    beta_end: float


class NoiseSchedule:
    """The coefficients of a beta schedule, precomputed in float64 and stored as float32 tensors."""

    def __init__(
        self,
        num_timesteps: int = 1000,
        beta_schedule: str = "linear",
        *,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        device: torch.device | str = "cpu",
    ) -> None:
        betas = make_betas(beta_schedule, num_timesteps, beta_start, beta_end)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.num_timesteps = num_timesteps
        self.beta_schedule = beta_schedule

        def f32(x: torch.Tensor) -> torch.Tensor:
            return x.to(device=device, dtype=torch.float32)

        self.betas = f32(betas)
        self.alphas = f32(alphas)
        self.alphas_cumprod = f32(alphas_cumprod)
        self.alphas_cumprod_prev = f32(alphas_cumprod_prev)
        # required for add_noise (q(x_t | x_0), eq. 4)
        self.sqrt_alphas_cumprod = f32(alphas_cumprod.sqrt())
        self.sqrt_one_minus_alphas_cumprod = f32((1 - alphas_cumprod).sqrt())
        # required for predict_x0 (eq. 4 solved for x_0)
        self.sqrt_recip_alphas_cumprod = f32((1 / alphas_cumprod).sqrt())
        self.sqrt_recipm1_alphas_cumprod = f32((1 / alphas_cumprod - 1).sqrt())
        # required for the posterior q(x_{t-1} | x_t, x_0) (eqs. 6-7)
        self.posterior_mean_coef1 = f32(betas * alphas_cumprod_prev.sqrt() / (1 - alphas_cumprod))
        self.posterior_mean_coef2 = f32((1 - alphas_cumprod_prev) * alphas.sqrt() / (1 - alphas_cumprod))
        # beta-tilde; zero at t = 0, where the sampler adds no noise
        self.posterior_variance = f32(betas * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod))

    @classmethod
    def from_settings(cls, settings: ScheduleSettings, *, device: torch.device | str = "cpu") -> NoiseSchedule:
        """The schedule of a run's settings: the one place a schedule is built from them."""
        return cls(
            settings.num_timesteps,
            settings.beta_schedule,
            beta_start=settings.beta_start,
            beta_end=settings.beta_end,
            device=device,
        )

    def __len__(self) -> int:
        return self.num_timesteps

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str) -> NoiseSchedule:
        """Move every coefficient to ``device`` (in place) and return self."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x_0) = N(sqrt(alpha-bar_t) x_0, (1 - alpha-bar_t) I) with the given noise."""
        return (
            extract(self.sqrt_alphas_cumprod, t, x0.shape) * x0
            + extract(self.sqrt_one_minus_alphas_cumprod, t, x0.shape) * noise
        )

    def predict_x0(self, x_t: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The x_0 that, noised with ``noise`` to step t, gives x_t."""
        return (
            extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
            - extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * noise
        )

    def predict_noise(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise that takes x0 to x_t at step t (the inverse of ``predict_x0``)."""
        return (extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t - x0) / extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t.shape
        )

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0) (eqs. 6-7); the variance broadcasts against x_t."""
        mean = (
            extract(self.posterior_mean_coef1, t, x_t.shape) * x0
            + extract(self.posterior_mean_coef2, t, x_t.shape) * x_t
        )
        return mean, extract(self.posterior_variance, t, x_t.shape)
