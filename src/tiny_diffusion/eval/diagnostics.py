"""How far a trained model is from the exact answer, and why: the denoiser's error against the ideal denoiser of its
own training set at each step, the loss at each step, whether the forward process reaches noise at all, and how
many samples copy a training point.

- The ideal denoiser E[x_0 | x_t] of the training set (``core.exact``) is what a network that fitted its training
  objective perfectly would predict; ``error`` is the mean squared distance |x0_hat - x0*|^2 (per coordinate, in the
  model's coordinates) of the trained prediction x0_hat from it, over fresh x_t ~ q(x_t | x_0) at each step.
- ``loss`` is the run's own training objective (its target, unweighted) on the same fresh x_t: where the loss is
  high but the error low, the step is simply hard; where the error is high, the network is off.
- The terminal mismatch: x_T = sqrt(alpha-bar_T) x_0 + sqrt(1 - alpha-bar_T) noise keeps sqrt(alpha-bar_T) of the
  signal; sampling starts from N(0, I) instead of q(x_T). With a Gaussian fit N(m, S) of the data, q(x_T) is about
  N(sqrt(ab) m, ab S + (1 - ab) I), whose KL divergence from N(0, I) has a closed form.
- A flow run is measured at times t in (0, 1) instead of steps: its x0 prediction is x_t - t v, its loss the velocity
  regression's, and its ideal denoiser the same softmax-weighted mean, since x_t = (1 - t) x_0 + t noise divided by
  r = sqrt((1 - t)^2 + t^2) is a DDPM state with sqrt(alpha-bar) = (1 - t) / r. Its path ends at the noise itself:
  no terminal mismatch (``FLOW_TERMINAL``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from ..core import flow
from ..core.exact import flow_as_ddpm, ideal_x0
from ..core.objectives import Target, training_target
from ..core.schedule import NoiseSchedule
from .preflight import MAX_TERMINAL_SIGNAL, terminal_signal

if TYPE_CHECKING:
    from ..diffusion import Diffusion

__all__ = ["denoiser_errors", "terminal_mismatch", "flow_times", "FLOW_TERMINAL"]

# a flow path's x_1 is the noise itself: it keeps none of the signal, and sampling starts from its exact law
FLOW_TERMINAL = {"signal_kept": 0.0, "signal_kept_in_data_scale": 0.0, "kl_nats": 0.0, "reaches_noise": True}


def terminal_mismatch(schedule: NoiseSchedule, data: np.ndarray) -> dict[str, float]:
    """How far q(x_T) is from the N(0, I) that sampling starts from, for ``data`` (N, ...) in the model's
    coordinates: the share of the signal x_T keeps, that share times the data's scale (RMS distance from the origin),
    and KL(q(x_T) || N(0, I)) in nats through a Gaussian fit of the data (per coordinate: a diagonal fit, so it works
    for images too)."""
    ab = float(schedule.alphas_cumprod[-1])  # x_T reaches noise when it keeps at most MAX_TERMINAL_SIGNAL of x_0
    x = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
    mean, var = x.mean(axis=0), x.var(axis=0)
    var_t = ab * var + (1 - ab)  # (F,) the variance of each coordinate of x_T
    kl = 0.5 * float(np.sum(var_t + ab * mean**2 - 1 - np.log(var_t)))
    return {
        "signal_kept": math.sqrt(ab),
        "signal_kept_in_data_scale": math.sqrt(ab) * float(np.sqrt(np.mean(np.sum(x**2, axis=1)))),
        "kl_nats": kl,
        "reaches_noise": terminal_signal(schedule) <= MAX_TERMINAL_SIGNAL,
    }


def flow_times(count: int) -> list[float]:
    """The times a flow run is diagnosed at: the midpoints of ``count`` equal intervals of [0, 1] (t = 0 and 1, where
    x_t is the data or the noise itself, have nothing to denoise)."""
    return [(k + 0.5) / count for k in range(count)]


@torch.no_grad()
def denoiser_errors(
    model: Diffusion,
    data: torch.Tensor,
    steps: list[int] | list[float],
    *,
    labels: torch.Tensor | None = None,
    per_step: int = 256,
    seed: int = 0,
) -> dict[str, list[float]]:
    """For each zero-based step t of ``steps`` (a flow run: each time t in (0, 1)): the mean squared error of the
    model's x0 prediction against the ideal denoiser of ``data`` (its training set (N, *shape), in the model's
    coordinates), the same for the ideal denoiser against the true x_0 (what no model can beat), and the run's
    training loss; over ``per_step`` fresh x_t from training points drawn with ``seed``. A conditional model is asked
    for each point's class (``labels`` (N,), no guidance) and compared with the ideal denoiser of that class's
    points."""
    generator = torch.Generator(model.device).manual_seed(seed)
    points = data.to(model.device, torch.float64)
    rows: dict[str, list[float]] = {"t": [], "error": [], "ideal_error": [], "loss": []}
    for where in steps:
        index = torch.randint(0, len(points), (per_step,), generator=generator, device=model.device)
        x0 = points[index].float()
        noise = torch.randn(x0.shape, generator=generator, device=model.device)
        asked = None if labels is None else labels.to(model.device)[index]
        noised = (_flow_at if model.is_flow else _ddpm_at)(model, x0, noise, where, asked)
        x0_ideal = _ideal(noised.x_vp, noised.alpha_bar, points, asked, labels)
        rows["t"].append(where)
        rows["error"].append(float((noised.x0_hat - x0_ideal.float()).pow(2).mean()))
        rows["ideal_error"].append(float((x0_ideal.float() - x0).pow(2).mean()))
        rows["loss"].append(float((noised.predicted - noised.wanted).pow(2).mean()))
    return rows


@dataclass
class _Noised:
    """Fresh x_t at one step or time, as ``denoiser_errors`` reads it: the model's x0 prediction, its output and the
    training target in the run's own terms, and x_t as the ideal denoiser reads it (a DDPM state and its
    alpha-bar)."""

    x0_hat: torch.Tensor
    predicted: torch.Tensor
    wanted: torch.Tensor
    x_vp: torch.Tensor
    alpha_bar: float


def _ddpm_at(
    model: Diffusion, x0: torch.Tensor, noise: torch.Tensor, step: float, asked: torch.Tensor | None
) -> _Noised:
    schedule, target = model.schedule, cast(Target, model.config.target)
    t = torch.full((len(x0),), int(step), device=model.device, dtype=torch.long)
    x_t = schedule.add_noise(x0, noise, t)
    guidance = None if asked is None else 0.0
    predicted_noise = model.noise_predictor(len(x0), labels=asked, guidance=guidance)(x_t, t)
    x0_hat = schedule.predict_x0(x_t, predicted_noise, t)
    return _Noised(
        x0_hat,
        training_target(target, schedule, x0_hat, predicted_noise, x_t, t),  # the output, in its terms
        training_target(target, schedule, x0, noise, x_t, t),
        x_t,
        float(schedule.alphas_cumprod[int(step)]),
    )


def _flow_at(
    model: Diffusion, x0: torch.Tensor, noise: torch.Tensor, time: float, asked: torch.Tensor | None
) -> _Noised:
    t = torch.full((len(x0),), float(time), device=model.device)
    x_t = flow.interpolate(x0, noise, t)
    velocity = model.velocity(len(x0), labels=asked, guidance=None if asked is None else 0.0)(x_t, t)
    x_vp, alpha_bars = flow_as_ddpm(x_t, t)  # x_t / r = sqrt(ab) x0 + sqrt(1 - ab) noise; one time for all rows
    x0_hat = flow.predict_x0(x_t, velocity, t)
    return _Noised(x0_hat, velocity, flow.velocity_target(x0, noise), x_vp, float(alpha_bars[0]))


def _ideal(
    x_t: torch.Tensor,
    alpha_bar: float,
    points: torch.Tensor,
    asked: torch.Tensor | None,
    labels: torch.Tensor | None,
) -> torch.Tensor:
    """E[x_0 | x_t] over the training points, or over those of each row's class."""
    if asked is None or labels is None:
        return ideal_x0(x_t, alpha_bar, points)
    out = torch.empty_like(x_t)
    labels = labels.to(points.device)
    for k in asked.unique():
        rows = asked == k
        out[rows] = ideal_x0(x_t[rows], alpha_bar, points[labels == k])
    return out


def summary(
    errors: dict[str, list[float]], terminal: dict[str, Any], memorized: float | None, *, method: str = "ddpm"
) -> dict[str, Any]:
    """The JSON `tiny-diffusion diagnose` writes: the run's method, the per-step rows (at times, for a flow run), the
    terminal mismatch, the memorised share."""
    return {"method": method, "per_step": errors, "terminal": terminal, "memorized_share": memorized}
