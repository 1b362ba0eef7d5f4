"""What a perfect denoiser would predict: the closed forms that a trained network only approximates.

- The ideal denoiser of a finite training set {x_i}: noised to step t, the set is a mixture of N Gaussians
  N(sqrt(ab) x_i, (1 - ab) I), so E[x_0 | x_t] = sum_i w_i x_i with w = softmax_i(-|x_t - sqrt(ab) x_i|^2 /
  (2 (1 - ab))) (Karras et al. 2022, https://arxiv.org/abs/2206.00364, eq. 57, in DDPM's variance-preserving form).
  Sampled, it reproduces training points: it is the model that has memorised its data.
- The exact score of a Gaussian mixture (means mu_k, standard deviations s_k, weights pi_k): noised to step t,
  component k is N(sqrt(ab) mu_k, ab s_k^2 + 1 - ab), so q_t is again a mixture with a closed-form density and score.

- A flow run's exact velocity E[noise - x_0 | x_t] on the straight path x_t = (1 - t) x_0 + t noise: x_t divided by
  r = sqrt((1 - t)^2 + t^2) is a DDPM state with sqrt(ab) = (1 - t) / r, so the same posterior means E[x_0 | x_t]
  apply, and v = (x_t - E[x_0 | x_t]) / t; at t = 0 it is -x_t (the noise is independent of the data).

``ab`` is alpha-bar_t (``schedule.alphas_cumprod[t]``), one per sample (B,) or one for all. The sums are computed in
float64 and returned in the dtype of ``x_t``; shapes are free: x_t (B, ...) with points (N, ...) of the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .flow import TIME_SCALE
from .schedule import NoiseSchedule

__all__ = [
    "ideal_weights",
    "ideal_x0",
    "ideal_noise",
    "mixture_log_prob",
    "mixture_score",
    "mixture_noise",
    "mixture_x0",
    "ideal_noise_predictor",
    "mixture_noise_predictor",
    "flow_as_ddpm",
    "ideal_velocity_network",
    "mixture_velocity_network",
]

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (x_t (B, ...), t (B,)) -> E[x_0 | x_t] of a DDPM state at alpha-bar t: what the exact flow velocities are made of
PosteriorMean = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CHUNK_ELEMENTS = 2**22  # rows of x_t are taken this many (row, training point) pairs at a time: 32 MB of float64


def _rows(x_t: torch.Tensor, alpha_bar: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t flattened to (B, F) float64, and alpha-bar as a (B, 1) float64 column."""
    x = x_t.reshape(len(x_t), -1).double()
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64, device=x.device).reshape(-1, 1).expand(len(x), 1)
    return x, ab


def _chunks(num_rows: int, per_row: int) -> list[slice]:
    size = max(1, CHUNK_ELEMENTS // max(1, per_row))
    return [slice(i, i + size) for i in range(0, num_rows, size)]


def _ideal_logits(x: torch.Tensor, ab: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(B, N) log-weights -|x - sqrt(ab) x_i|^2 / (2 (1 - ab)), up to a constant per row; x (B, F), points (N, F)."""
    # |x - a p|^2 = |x|^2 - 2 a x.p + a^2 |p|^2: no (B, N, F) tensor; in float64 the cancellation is harmless
    d2 = (x * x).sum(1, keepdim=True) - 2 * ab.sqrt() * (x @ points.T) + ab * (points * points).sum(1)
    return -d2.clamp(min=0) / (2 * (1 - ab))


def ideal_weights(x_t: torch.Tensor, alpha_bar: torch.Tensor | float, points: torch.Tensor) -> torch.Tensor:
    """(B, N) posterior probability that x_t (B, ...) was noised from each training point (N, ...) (softmax, so
    computed stably as exp(logit - logsumexp)); float64."""
    x, ab = _rows(x_t, alpha_bar)
    return torch.softmax(_ideal_logits(x, ab, points.reshape(len(points), -1).double()), dim=1)


def ideal_x0(x_t: torch.Tensor, alpha_bar: torch.Tensor | float, points: torch.Tensor) -> torch.Tensor:
    """E[x_0 | x_t] (B, ...) under the training set ``points`` (N, ...): the weights' average of the points,
    computed a chunk of rows at a time so that no (B, N) matrix is larger than ``CHUNK_ELEMENTS``."""
    x, ab = _rows(x_t, alpha_bar)
    p = points.reshape(len(points), -1).double().to(x.device)
    x0 = torch.cat([torch.softmax(_ideal_logits(x[rows], ab[rows], p), dim=1) @ p for rows in _chunks(len(x), len(p))])
    return x0.reshape(x_t.shape).to(x_t.dtype)


def ideal_noise(x_t: torch.Tensor, alpha_bar: torch.Tensor | float, points: torch.Tensor) -> torch.Tensor:
    """The ideal noise prediction (B, ...): eps = (x_t - sqrt(ab) x0_hat) / sqrt(1 - ab) with x0_hat = ``ideal_x0``."""
    x, ab = _rows(x_t, alpha_bar)
    x0 = ideal_x0(x_t, alpha_bar, points).reshape(x.shape).double()
    return ((x - ab.sqrt() * x0) / (1 - ab).sqrt()).reshape(x_t.shape).to(x_t.dtype)


# ---------------------------------------------------------------- Gaussian mixtures


def _components(
    x: torch.Tensor, ab: torch.Tensor, means: torch.Tensor, stds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample and component: x - sqrt(ab) mu_k (b, K, F), the variances ab s_k^2 + 1 - ab (b, K, F), and
    log N(x; sqrt(ab) mu_k, diag(variances)) (b, K)."""
    means = means.double().to(x.device)  # (K, F)
    stds = stds.double().to(x.device).reshape(len(means), -1).expand_as(means)  # (K,) or (K, F) -> (K, F)
    diff = x[:, None, :] - ab.sqrt()[:, :, None] * means  # (b, K, F)
    var = ab[:, :, None] * stds**2 + (1 - ab)[:, :, None]  # (b, K, F)
    log_normal = -0.5 * (diff**2 / var + torch.log(2 * math.pi * var)).sum(-1)  # (b, K)
    return diff, var, log_normal


def _per_chunk(
    x_t: torch.Tensor,
    alpha_bar: torch.Tensor | float,
    means: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    x, ab = _rows(x_t, alpha_bar)
    return torch.cat([fn(x[rows], ab[rows]) for rows in _chunks(len(x), means.numel())])


def mixture_log_prob(
    x_t: torch.Tensor, alpha_bar: torch.Tensor | float, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """log q_t(x_t) (B,) of the mixture (means (K, ...), stds (K,) or like means, weights (K,) summing to 1) noised
    to alpha-bar: log sum_k pi_k N(x_t; sqrt(ab) mu_k, ab s_k^2 + 1 - ab), by logsumexp; differentiable in x_t."""
    means = means.reshape(len(means), -1)
    log_w = weights.double().to(x_t.device).log()

    def log_prob(x: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(log_w + _components(x, ab, means, stds)[2], dim=1)

    return _per_chunk(x_t, alpha_bar, means, log_prob).to(x_t.dtype)


def mixture_score(
    x_t: torch.Tensor, alpha_bar: torch.Tensor | float, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """grad log q_t(x_t) (B, ...) = sum_k r_k (-(x_t - sqrt(ab) mu_k) / (ab s_k^2 + 1 - ab)), with r_k (B, K) the
    responsibilities: the posterior probability of each component given x_t."""
    means = means.reshape(len(means), -1)
    log_w = weights.double().to(x_t.device).log()

    def score(x: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        diff, var, log_normal = _components(x, ab, means, stds)
        r = torch.softmax(log_w + log_normal, dim=1)  # (b, K)
        return -(r[:, :, None] * diff / var).sum(1)  # (b, F)

    return _per_chunk(x_t, alpha_bar, means, score).reshape(x_t.shape).to(x_t.dtype)


def mixture_noise(
    x_t: torch.Tensor, alpha_bar: torch.Tensor | float, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """The exact noise prediction (B, ...): E[noise | x_t] = -sqrt(1 - ab) grad log q_t(x_t) (Tweedie's formula)."""
    _, ab = _rows(x_t, alpha_bar)
    score = mixture_score(x_t, alpha_bar, means, stds, weights).reshape(len(x_t), -1).double()
    return (-(1 - ab).sqrt() * score).reshape(x_t.shape).to(x_t.dtype)


def mixture_x0(
    x_t: torch.Tensor, alpha_bar: torch.Tensor | float, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """E[x_0 | x_t] (B, ...) of the mixture: sum_k r_k (mu_k + sqrt(ab) s_k^2 / (ab s_k^2 + 1 - ab) (x_t - sqrt(ab)
    mu_k)), each component's Gaussian posterior mean weighted by its responsibility; defined at every ab in [0, 1]
    (at 0, the mixture's mean)."""
    means = means.reshape(len(means), -1)
    log_w = weights.double().to(x_t.device).log()
    variances = stds.double().to(x_t.device).reshape(len(means), -1).expand_as(means) ** 2  # (K, F)

    def x0(x: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        diff, var, log_normal = _components(x, ab, means, stds)
        r = torch.softmax(log_w + log_normal, dim=1)  # (b, K)
        gain = ab.sqrt()[:, :, None] * variances / var  # (b, K, F)
        return (r[:, :, None] * (means.double().to(x.device) + gain * diff)).sum(1)  # (b, F)

    return _per_chunk(x_t, alpha_bar, means, x0).reshape(x_t.shape).to(x_t.dtype)


# ---------------------------------------------------------------- as noise predictors for the samplers


def ideal_noise_predictor(points: torch.Tensor, schedule: NoiseSchedule) -> NoisePredictor:
    """noise_predictor(x_t, t) of the ideal denoiser of ``points`` (N, ...); the noise is derived with the schedule's
    own coefficients, so the sampler's ``predict_x0`` gives x0_hat back to float32 rounding."""

    def predict(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return schedule.predict_noise(x_t, ideal_x0(x_t, schedule.alphas_cumprod[t], points), t)

    return predict


def mixture_noise_predictor(
    means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor, schedule: NoiseSchedule
) -> NoisePredictor:
    """noise_predictor(x_t, t) of the exact mixture (see ``mixture_log_prob`` for the parameters' shapes)."""

    def predict(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return mixture_noise(x_t, schedule.alphas_cumprod[t], means, stds, weights)

    return predict


# ---------------------------------------------------------------- as a flow run's network


def flow_as_ddpm(x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A flow state x_t = (1 - t) x_0 + t noise (B, ...) at times t (B,) as a DDPM state: (x_t / r, ab (B,)) with
    r = sqrt((1 - t)^2 + t^2) and ab = ((1 - t) / r)^2, so x_t / r = sqrt(ab) x_0 + sqrt(1 - ab) noise; float64."""
    t = t.double().to(x_t.device)
    r = torch.sqrt((1 - t) ** 2 + t**2)
    return x_t.double() / r.reshape(-1, *[1] * (x_t.dim() - 1)), ((1 - t) / r) ** 2


def _velocity_network(posterior_mean: PosteriorMean) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """network(x_t, t * TIME_SCALE), as a flow run's network is called: v = (x_t - E[x_0 | x_t]) / t, and -x_t at
    t = 0, where E[noise - x_0 | x_0] = -x_0."""

    def network(x_t: torch.Tensor, scaled: torch.Tensor) -> torch.Tensor:
        t = scaled.double() / TIME_SCALE
        v = -x_t.double()
        moving = t > 0
        if bool(moving.any()):
            x, s = x_t[moving], t[moving]
            x_vp, ab = flow_as_ddpm(x, s)
            x0 = posterior_mean(x_vp, ab).double()
            v[moving] = (x.double() - x0) / s.reshape(-1, *[1] * (x.dim() - 1))
        return v.to(x_t.dtype)

    return network


def ideal_velocity_network(points: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A flow run's network made of the ideal denoiser of ``points`` (N, ...): the exact velocity of the training
    set, whose samples are training points."""
    return _velocity_network(lambda x, ab: ideal_x0(x, ab, points))


def mixture_velocity_network(
    means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A flow run's network made of the exact mixture (see ``mixture_log_prob`` for the parameters' shapes)."""
    return _velocity_network(lambda x, ab: mixture_x0(x, ab, means, stds, weights))
