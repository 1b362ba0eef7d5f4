"""Likelihoods of points under a noise predictor: the probability-flow ODE's log-density and DDPM's variational bound.

Tensors in, numbers out, in the model's coordinates (``Diffusion.log_prob`` and ``Diffusion.elbo`` add the change of
units). Timesteps are zero-based as in ``core/schedule.py``: step k has alpha-bar_k = ``schedule.alphas_cumprod[k]``.

**Probability-flow ODE** (Song et al. 2021, https://arxiv.org/abs/2011.13456, eqs. 13 and 39). The discrete schedule is
read in continuous time tau in [0, T - 1]: log alpha-bar is a cubic spline through the integer steps, so
beta(tau) = -d log alpha-bar / d tau and the variance-preserving SDE dx = -1/2 beta x dtau + sqrt(beta) dW has exactly
the discrete marginals q(x_k | x_0) at every integer step. Its probability-flow ODE is

    dx/dtau = f(x, tau) = -1/2 beta(tau) [x + score(x, tau)],   score(x, k) = -noise(x, k) / sqrt(1 - alpha-bar_k),

with the score between integer steps interpolated (cubic, Catmull-Rom) from the four nearest steps' (the network is
trained on integer steps only). The interpolation is smooth, so the adaptive solver takes few steps. Along a path
d log p / dtau = -div f, so

    log p_0(x_0) = log p_{T-1}(x_{T-1}) + integral_0^{T-1} div f(x(tau), tau) dtau.

Two approximations, both small and both stated: the end of the process is treated as N(0, I) (alpha-bar_{T-1} is
4e-5 for the default linear schedule, not 0), and the density is that of x at the first step (k = 0: the data scaled
by sqrt(alpha-bar_0) plus N(0, 1 - alpha-bar_0) noise, a standard deviation of 0.01 by default), where the noise
predictor is defined, not of the noiseless data: the ODE's score is singular at alpha-bar = 1, and Song et al. likewise
stop at a small time epsilon. A model that knows its score at every alpha-bar (an exact Gaussian mixture, whose
components have a width of their own) is integrated from alpha-bar = 1 instead, and gives the density of x0 itself.

The divergence is the exact trace of the Jacobian (autograd, one backward pass per coordinate) up to
``EXACT_TRACE_MAX_DIM`` coordinates, else Hutchinson's estimator with K Rademacher probes held fixed along the path
(Grathwohl et al. 2019, FFJORD, https://arxiv.org/abs/1810.01367); each probe's integral is kept apart, so the
standard error of their mean is reported. Integrated by torchdiffeq's dopri5 with rtol and atol.

**Variational bound** (Ho et al. 2020, https://arxiv.org/abs/2006.11239, eq. 5): L = L_T + sum_{t>1} L_{t-1} + L_0,
an upper bound on -log p(x_0) for the reverse process the DDPM sampler walks (variance beta-tilde, no clipping). The
sum over steps is exact, the noise in each term is Monte Carlo (with a standard error over ``samples`` draws). L_0 is
a Gaussian decoder N(x0_hat, sigma^2) for points and Ho et al.'s discretized Gaussian on 256 bins of [-1, 1] for
images, both with sigma^2 = beta-tilde of the second step (beta-tilde of the first is 0), as in Ho et al.'s code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..core.schedule import NoiseSchedule
from ..errors import UsageError

__all__ = ["EXACT_TRACE_MAX_DIM", "Likelihood", "pf_ode_log_prob", "flow_log_prob", "variational_bound", "bits_per_dim"]

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EXACT_TRACE_MAX_DIM = 8  # above this many coordinates the divergence is Hutchinson's estimate unless told otherwise


@dataclass
class Likelihood:
    """Per point (N,): a log-density or a bound in nats, the standard error of its estimate (0 where exact), and how
    it was computed."""

    value: np.ndarray  # (N,) nats
    stderr: np.ndarray  # (N,) nats; zeros for the ODE with the exact trace
    evaluations: int  # noise-predictor evaluations (ODE: function evaluations of the solver; bound: steps x samples)


def bits_per_dim(nats: np.ndarray | float, dim: int) -> np.ndarray | float:
    """A negative log-likelihood (or bound) in nats per point as bits per dimension: nats / (dim ln 2)."""
    return np.asarray(nats) / (dim * math.log(2)) if isinstance(nats, np.ndarray) else nats / (dim * math.log(2))


# ---------------------------------------------------------------- the schedule in continuous time


class _ContinuousSchedule:
    """alpha-bar(tau) and beta(tau) on [start, T - 1]: log alpha-bar a cubic spline through the integer steps
    (float64), so beta is smooth (the adaptive solver need not stop at every step) and the marginals at integer steps
    are exact. ``clean``: the spline starts one step earlier, at tau = -1, where alpha-bar is 1 (the noiseless data)."""

    def __init__(self, schedule: NoiseSchedule, *, clean: bool = False) -> None:
        from scipy.interpolate import CubicSpline

        log_ab = schedule.alphas_cumprod.detach().double().cpu().log().numpy()  # (T,)
        self.last = len(log_ab) - 1
        self.start = -1 if clean else 0
        taus = np.arange(self.start, len(log_ab))
        self.log_ab = CubicSpline(taus, np.concatenate([[0.0], log_ab]) if clean else log_ab)
        self.beta = self.log_ab.derivative()

    def at(self, tau: float) -> tuple[int, float, float]:
        """(k, w, beta) at tau = k + w, 0 <= w <= 1, k < T - 1."""
        k = min(int(math.floor(tau)), self.last - 1)
        return k, tau - k, -float(self.beta(tau))

    def alpha_bar(self, tau: float) -> float:
        return math.exp(min(0.0, float(self.log_ab(tau))))


def _interpolated_score(
    noise_predictor: NoisePredictor, sigmas: torch.Tensor, x: torch.Tensor, k: int, w: float
) -> torch.Tensor:
    """The score at tau = k + w, interpolated (Catmull-Rom: cubic, with a continuous derivative) from the scores
    -noise(x, j) / sigma_j at steps k - 1 ... k + 2 (clamped to the schedule), computed in one call of the predictor.

    The score is interpolated rather than the noise: near the data the noise's scale sigma = sqrt(1 - alpha-bar)
    changes by half from step 0 to step 1, while the score changes smoothly (exactly so for a Gaussian)."""
    n, last = len(x), len(sigmas) - 1
    nodes = [min(max(j, 0), last) for j in range(k - 1, k + 3)]
    steps = torch.cat([torch.full((n,), j) for j in nodes]).to(x.device)
    noise = noise_predictor(torch.cat([x] * 4), steps)
    p = [-noise[i * n : (i + 1) * n] / float(sigmas[j]) for i, j in enumerate(nodes)]
    m1 = (p[2] - p[0]) / (nodes[2] - nodes[0])  # the tangents at k and k + 1 (one-sided at the ends)
    m2 = (p[3] - p[1]) / (nodes[3] - nodes[1])
    h00, h10, h01, h11 = 2 * w**3 - 3 * w**2 + 1, w**3 - 2 * w**2 + w, -2 * w**3 + 3 * w**2, w**3 - w**2
    return h00 * p[1] + h10 * m1 + h01 * p[2] + h11 * m2


# ---------------------------------------------------------------- the probability-flow ODE


def _divergence_exact(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) trace of df/dx per row (f, x: (B, F)), one backward pass per coordinate."""
    trace = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for i in range(x.shape[1]):
        trace = trace + torch.autograd.grad(f[:, i].sum(), x, retain_graph=True)[0][:, i]
    return trace


def _divergence_hutchinson(f: torch.Tensor, x: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """(B, K) v_k^T (df/dx) v_k for the K probes (K, B, F): each is unbiased for the trace."""
    rows = [(torch.autograd.grad(f, x, v, retain_graph=True)[0] * v).sum(1) for v in probes]
    return torch.stack(rows, dim=1)


Field = Callable[[torch.Tensor, float], torch.Tensor]  # (x (N, F) float64, time) -> dx/dtime (N, F)


def _log_density_along(
    field: Field,
    x0: torch.Tensor,
    span: tuple[float, float],
    *,
    rtol: float,
    atol: float,
    hutchinson: int | None,
    seed: int,
    prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Likelihood:
    """log p(x0) (N,) by the instantaneous change of variables (Chen et al. 2018): x follows dx/dtime = ``field``
    over ``span`` from the data, and log p(x0) = log p_end(x_end) + integral div field. The divergence is exact up to
    ``EXACT_TRACE_MAX_DIM`` coordinates, else Hutchinson's with ``hutchinson`` Rademacher probes (16 by default),
    held fixed along the path, each probe's integral kept apart for the standard error. ``prior``: log p_end of the
    end points (N, F) -> (N,), N(0, I) by default. dopri5 (torchdiffeq) with ``rtol`` and ``atol``."""
    from torchdiffeq import odeint  # imported here: only likelihoods need it

    if hutchinson is not None and hutchinson < 1:
        raise UsageError(f"hutchinson must be a positive number of probes, got {hutchinson}")
    num, dim = len(x0), int(np.prod(x0.shape[1:]))
    if hutchinson is None and dim > EXACT_TRACE_MAX_DIM:
        hutchinson = 16
    generator = torch.Generator(x0.device).manual_seed(seed)
    probes = (
        None
        if hutchinson is None
        else torch.randint(0, 2, (hutchinson, num, dim), generator=generator, device=x0.device).double() * 2 - 1
    )
    evaluations = 0

    def augmented(time: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal evaluations
        evaluations += 1
        with torch.enable_grad():
            x = state[0].detach().requires_grad_(True)  # (N, F) float64
            f = field(x, float(time))  # (N, F)
            div = _divergence_exact(f, x)[:, None] if probes is None else _divergence_hutchinson(f, x, probes)
        return f.detach(), div.detach()  # (N, F), (N, 1) or (N, K)

    start = (
        x0.detach().double().reshape(num, dim),
        torch.zeros(num, hutchinson or 1, dtype=torch.float64, device=x0.device),
    )
    times = torch.tensor(span, dtype=torch.float64, device=x0.device)
    try:
        x_end, integral = (s[-1] for s in odeint(augmented, start, times, rtol=rtol, atol=atol, method="dopri5"))
    except (AssertionError, RuntimeError) as error:  # torchdiffeq: "underflow in dt", non-finite values
        raise UsageError(f"the ODE solver failed ({error}); loosen rtol or atol (now {rtol:g}, {atol:g})") from error
    if prior is None:
        log_p_end = -0.5 * (x_end**2).sum(1) - 0.5 * dim * math.log(2 * math.pi)  # log N(x_end; 0, I)
    else:
        log_p_end = prior(x_end).double()
    per_probe = log_p_end[:, None] + integral  # (N, K)
    if not bool(torch.isfinite(per_probe).all()):
        raise UsageError(f"the ODE solver gave non-finite values; loosen rtol or atol (now {rtol:g}, {atol:g})")
    value = per_probe.mean(1)
    k = per_probe.shape[1]
    if hutchinson is None:
        stderr = torch.zeros_like(value)
    else:  # one probe has no spread to measure: not a number rather than a false zero
        stderr = per_probe.std(1) / math.sqrt(k) if k > 1 else torch.full_like(value, math.nan)
    return Likelihood(value.cpu().numpy(), stderr.cpu().numpy(), evaluations)


def pf_ode_log_prob(
    noise_predictor: NoisePredictor,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    hutchinson: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
    score: Callable[[torch.Tensor, float], torch.Tensor] | None = None,
) -> Likelihood:
    """log p(x0) (N,) in nats of points x0 (N, ...) in the model's coordinates under the probability-flow ODE of
    ``noise_predictor`` (see the module's docstring for what it is the density of). ``hutchinson``: the number of
    probes of Hutchinson's trace estimator (None: exact trace up to ``EXACT_TRACE_MAX_DIM`` coordinates, else 16).
    The predictor is called with x_t in ``dtype``; the solver's state is float64. ``prior``: log p_{T-1} of the
    end points (N, F) -> (N,), N(0, I) by default (the exact end marginal, where known, removes that mismatch).
    ``score``: the exact score(x_t, alpha-bar) at any alpha-bar, where known (an exact mixture); the ODE then starts
    at the noiseless data (alpha-bar 1, one step before the first) and the result is the density of x0 itself."""
    if len(schedule) < 2:
        raise UsageError("the probability-flow ODE needs at least 2 timesteps")
    shape = x0.shape
    num, dim = len(x0), int(np.prod(shape[1:]))
    continuous = _ContinuousSchedule(schedule, clean=score is not None)
    sigmas = (1 - schedule.alphas_cumprod.detach().double().cpu()).sqrt()  # (T,)

    def field(x: torch.Tensor, tau: float) -> torch.Tensor:
        k, w, beta = continuous.at(tau)
        if score is None:
            s_x = _interpolated_score(noise_predictor, sigmas, x.to(dtype).reshape(shape), k, w)
        else:
            s_x = score(x.to(dtype).reshape(shape), continuous.alpha_bar(tau))
        return -0.5 * beta * (x + s_x.reshape(num, dim).double())  # (N, F)

    span = (float(continuous.start), float(continuous.last))
    return _log_density_along(field, x0, span, rtol=rtol, atol=atol, hutchinson=hutchinson, seed=seed, prior=prior)


# ---------------------------------------------------------------- a flow run's ODE


def flow_log_prob(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    hutchinson: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Likelihood:
    """log p(x0) (N,) in nats of points x0 (N, ...) in the model's coordinates under a flow run's ODE dx/dt = v(x, t)
    (core/flow.py), integrated from the data at t = 0 to N(0, I) at t = 1 (Chen et al. 2018, instantaneous change
    of variables): log p_0(x0) = log N(x_1; 0, I) + integral_0^1 div v dt. Unlike DDPM's ODE this is the density of
    the noiseless data: the velocity is defined at t = 0. The divergence as for ``pf_ode_log_prob``."""
    shape = x0.shape
    num, dim = len(x0), int(np.prod(shape[1:]))

    def field(x: torch.Tensor, t: float) -> torch.Tensor:
        times = torch.full((num,), t, dtype=dtype, device=x.device)
        return velocity(x.to(dtype).reshape(shape), times).reshape(num, dim).double()  # (N, F)

    return _log_density_along(field, x0, (0.0, 1.0), rtol=rtol, atol=atol, hutchinson=hutchinson, seed=seed)


# ---------------------------------------------------------------- the variational bound


def _discretized_gaussian_log_prob(x0: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log P(x0) per element of x0 in [-1, 1] on 256 bins under N(mean, std^2), the edge bins taking the tails
    (Ho et al. 2020, section 3.3)."""
    half_bin = 1 / 255
    upper = torch.special.log_ndtr((x0 - mean + half_bin) / std)  # log Phi(upper edge)
    lower_tail = torch.special.log_ndtr(-(x0 - mean - half_bin) / std)  # log (1 - Phi(lower edge))
    cdf_upper = torch.special.ndtr((x0 - mean + half_bin) / std)
    cdf_lower = torch.special.ndtr((x0 - mean - half_bin) / std)
    middle = torch.log((cdf_upper - cdf_lower).clamp(min=1e-12))
    return torch.where(x0 < -0.999, upper, torch.where(x0 > 0.999, lower_tail, middle))


def variational_bound(
    noise_predictor: NoisePredictor,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    samples: int = 1,
    seed: int = 0,
    discrete: bool = False,
    dtype: torch.dtype = torch.float32,
    batch_elements: int = 2**20,
) -> Likelihood:
    """The negative ELBO L = L_T + sum_{t>1} L_{t-1} + L_0 (Ho et al. 2020, eq. 5) in nats per point (N,) of x0
    (N, ...) in the model's coordinates: every step's term, each with ``samples`` draws of the noise (the standard
    error is over those draws). ``discrete``: x0 are images in [-1, 1] and L_0 is the discretized decoder on 256 bins;
    else a Gaussian decoder. The predictor is called with x_t in ``dtype``, ``batch_elements`` numbers at a time."""
    if samples < 1:
        raise UsageError(f"samples must be positive, got {samples}")
    num_steps = len(schedule)
    if num_steps < 2:
        raise UsageError("the variational bound needs at least 2 timesteps")
    x = x0.detach().double()
    num, dim = len(x), int(np.prod(x.shape[1:]))
    ab = schedule.alphas_cumprod.double().to(x.device)
    coef1 = schedule.posterior_mean_coef1.double().to(x.device)
    variance = schedule.posterior_variance.double().to(x.device)
    decoder_std = math.sqrt(float(variance[1]))  # beta-tilde of step 1: that of step 0 is 0 (Ho et al.'s code)
    flat = x.reshape(num, dim)
    # L_T: KL(N(sqrt(ab) x0, 1 - ab) || N(0, I)), the same for every draw
    last = float(ab[-1])
    prior_kl = 0.5 * (last * flat**2 + (1 - last) - 1 - math.log(1 - last)).sum(1)  # (N,)
    generator = torch.Generator(x.device).manual_seed(seed)
    per_chunk = max(1, batch_elements // max(1, num * dim))
    totals = torch.zeros(samples, num, dtype=torch.float64, device=x.device)
    for draw in range(samples):
        for start in range(0, num_steps, per_chunk):
            steps = torch.arange(start, min(start + per_chunk, num_steps), device=x.device)  # (c,)
            t = steps.repeat_interleave(num)  # (c N,)
            x0_rep = x.repeat(len(steps), *[1] * (x.dim() - 1))  # (c N, ...)
            noise = torch.randn(x0_rep.shape, generator=generator, dtype=torch.float64, device=x.device)
            shape = (-1, *[1] * (x.dim() - 1))
            x_t = ab[t].sqrt().reshape(shape) * x0_rep + (1 - ab[t]).sqrt().reshape(shape) * noise
            with torch.no_grad():
                predicted = noise_predictor(x_t.to(dtype), t).double()
            x0_hat = (x_t - (1 - ab[t]).sqrt().reshape(shape) * predicted) / ab[t].sqrt().reshape(shape)
            error = ((x0_rep - x0_hat) ** 2).reshape(len(steps), num, dim).sum(2)  # (c, N)
            # L_{t-1} = |mean_q - mean_p|^2 / (2 beta-tilde_t): the means differ by coef1 (x0 - x0_hat)
            kl = coef1[steps][:, None] ** 2 * error / (2 * variance[steps].clamp(min=1e-30)[:, None])
            if start == 0:  # step 0 is L_0, the decoder, not a KL
                kl[0] = -_decoder_log_prob(x, x0_hat[:num], decoder_std, discrete).reshape(num, dim).sum(1)
            totals[draw] += kl.sum(0)
    totals += prior_kl
    value = totals.mean(0)
    stderr = totals.std(0) / math.sqrt(samples) if samples > 1 else torch.full_like(value, math.nan)
    return Likelihood(value.cpu().numpy(), stderr.cpu().numpy(), samples * num_steps)


def _decoder_log_prob(x0: torch.Tensor, x0_hat: torch.Tensor, std: float, discrete: bool) -> torch.Tensor:
    """log p(x0 | x at step 0) per element: N(x0_hat, std^2) for points, its discretized form for images."""
    if discrete:
        return _discretized_gaussian_log_prob(x0, x0_hat, std)
    return -0.5 * ((x0 - x0_hat) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)
