"""Which noise levels training visits: the distribution each example's timestep is drawn from.

- ``uniform``: every step t of the T equally often (Ho et al. 2020, the original tiny-diffusion); a flow run's time
  t uniform in [0, 1) (Lipman et al. 2023).
- ``log-normal``: the log of the noise-to-signal ratio sigma is normal, ln sigma ~ N(mean, std^2) (Karras et al.
  2022, https://arxiv.org/abs/2206.00364, section 5, "P_mean" and "P_std"). A DDPM's x_t = sqrt(ab) x0 +
  sqrt(1 - ab) noise has sigma_t = sqrt((1 - ab_t) / ab_t); the draw is discretised on the schedule's steps, each
  step t taking the normal's mass over its share of ln sigma (from the midpoint with the step below to the midpoint
  with the step above), renormalised over the T steps. A flow run's x_t = (1 - t) x0 + t noise has sigma = t / (1 - t),
  so ln sigma normal is t = sigmoid(mean + std z), the logit-normal of Esser et al. 2024
  (https://arxiv.org/abs/2403.03206).

Uniform steps spend half of training above sigma = 1.6 on the dino's default schedule (T = 500, linear), where the
data is a blur; the dino's fine detail (points 0.22 apart) is decided between sigma 0.02 and 0.3, which uniform steps
visit one time in eight and the default log-normal (-0.7, 1.6) 37 times in a hundred. Measured in docs/concepts.md
("Which noise levels training visits").
"""

from __future__ import annotations

import functools
import math

import torch

from ..choices import TIMESTEP_SAMPLINGS as NAMES
from ..errors import UsageError
from .schedule import NoiseSchedule

__all__ = ["TIMESTEP_SAMPLINGS", "log_normal_probabilities", "draw_timesteps", "draw_flow_times"]

TIMESTEP_SAMPLINGS = ("uniform", "log-normal")  # choices.TIMESTEP_SAMPLINGS holds the same names


def _check(name: str) -> None:
    if name not in TIMESTEP_SAMPLINGS:
        raise UsageError(f"unknown timestep sampling {name!r}; choose from {', '.join(NAMES)}")


def log_normal_probabilities(schedule: NoiseSchedule, mean: float, std: float) -> torch.Tensor:
    """(T,) float64 probability of each step t when ln sigma ~ N(mean, std^2), discretised on the schedule's
    ln sigma_t: step t takes the normal's mass between the midpoints of ln sigma with its neighbours (the first and
    last steps' outer edges mirrored), renormalised so the T steps sum to 1."""
    if not std > 0:
        raise UsageError(f"the log-normal's standard deviation must be positive, got {std}")
    alphas_cumprod = schedule.alphas_cumprod.double()
    log_sigma = 0.5 * (torch.log1p(-alphas_cumprod) - torch.log(alphas_cumprod))  # (T,) increasing with t
    middles = (log_sigma[1:] + log_sigma[:-1]) / 2
    first, last = 2 * log_sigma[0] - middles[0], 2 * log_sigma[-1] - middles[-1]
    edges = torch.cat([first.view(1), middles, last.view(1)])  # (T + 1,)
    cdf = 0.5 * (1 + torch.erf((edges - mean) / (std * math.sqrt(2))))
    mass = cdf[1:] - cdf[:-1]
    if not mass.sum() > 0:
        raise UsageError(
            f"a log-normal of mean {mean} puts no mass on this schedule's noise levels "
            f"(ln sigma from {float(log_sigma[0]):.2f} to {float(log_sigma[-1]):.2f})"
        )
    return mass / mass.sum()


def draw_timesteps(
    name: str,
    schedule: NoiseSchedule,
    num: int,
    generator: torch.Generator,
    *,
    mean: float,
    std: float,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(num,) integer steps in [0, T) on ``device`` drawn with ``generator`` (on the same device) as the sampling
    ``name`` says (``mean`` and ``std`` of ln sigma for log-normal)."""
    _check(name)
    if name == "uniform":
        return torch.randint(0, len(schedule), (num,), generator=generator, device=device)
    # by the inverse of the cumulative distribution: step t where cdf[t - 1] <= u < cdf[t]
    cdf = _cumulative(schedule, mean, std).to(device)
    u = torch.rand(num, generator=generator, device=device, dtype=torch.float64)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(schedule) - 1)


@functools.lru_cache(maxsize=16)
def _cumulative(schedule: NoiseSchedule, mean: float, std: float) -> torch.Tensor:
    """(T,) float64 cumulative sums of log_normal_probabilities, once per schedule and distribution (training
    draws from it at every step)."""
    return torch.cumsum(log_normal_probabilities(schedule, mean, std), dim=0)


def draw_flow_times(
    name: str, num: int, generator: torch.Generator, *, mean: float, std: float, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(num,) flow times in [0, 1) drawn with ``generator``: uniform, or t = sigmoid(mean + std z) for
    log-normal (ln(t / (1 - t)) = ln sigma normal)."""
    _check(name)
    if name == "uniform":
        return torch.rand(num, generator=generator, device=device)
    return torch.sigmoid(mean + std * torch.randn(num, generator=generator, device=device))
