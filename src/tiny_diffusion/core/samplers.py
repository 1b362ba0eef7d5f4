"""Reverse-process samplers: start from N(0, I) and denoise step by step.

A sampler needs a noise predictor ``noise_predictor(x_t, t) -> noise`` (``objectives.noise_predictor`` makes one from
a network trained on any target) and a schedule. Shapes are free: the same code draws (N, D) points and (N, C, H, W)
images. Each sampler is a function in the ``SAMPLERS`` registry that walks its steps and yields the state after them.

- ``ddpm``: ancestral sampling through all T steps (Ho et al. 2020).
- ``ddim``: DDIM on ``steps`` evenly spaced ("trailing") timesteps, with noise ``eta`` (Song et al. 2021).
- ``dpmpp-2m``, ``euler``, ``heun``: solvers of the probability-flow ODE on ``steps`` noise levels, Karras sigmas by
  default (see ``sigma_steps``): DPM-Solver++(2M) (Lu et al. 2022) and Karras et al.'s Euler and Heun (2022).
- ``ode``: the probability-flow ODE solved by adaptive dopri5 (torchdiffeq) to ``rtol`` and ``atol``.

The probability-flow samplers read the schedule as diffusers does: noise level sigma_t = sqrt((1 - ab_t) / ab_t) (ab
is alpha-bar), so x_t / sqrt(ab_t) = x_0 + sigma_t noise ("variance-exploding" coordinates, Karras et al. 2022, eq. 4);
the network is called at integer timesteps only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..errors import UsageError
from .schedule import NoiseSchedule, extract

__all__ = [
    "SAMPLERS",
    "SIGMA_SAMPLERS",
    "STEP_SPACINGS",
    "ODE_RTOL",
    "ODE_ATOL",
    "Trajectory",
    "sample",
    "ddim_timesteps",
    "sampler_steps",
    "sampler_timesteps",
    "sigma_steps",
    "schedule_sigmas",
    "sigma_to_t",
    "karras_sigmas",
]

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Bounds = tuple[torch.Tensor | float, torch.Tensor | float]
SamplerName = Literal["ddpm", "ddim", "dpmpp-2m", "euler", "heun", "ode"]
Spacing = Literal["karras", "trailing"]

STEP_SPACINGS = ("karras", "trailing")  # where the probability-flow samplers put their noise levels
KARRAS_RHO = 7.0  # Karras et al. 2022, eq. 5: the paper's value, diffusers' too
ODE_RTOL = 1e-3  # the ode sampler's default tolerances (dopri5's local error per step: atol + rtol |x|)
ODE_ATOL = 1e-3
ODE_MAX_STEPS = 2000  # dopri5 steps before the ode sampler gives up


@dataclass
class Trajectory:
    """What a sampler returns: the final samples and, if asked, states along the way."""

    samples: torch.Tensor  # (N, ...) the generated x_0
    steps_left: list[int]  # for each recorded state, the denoising steps still to go (x_T first, 0 = final)
    states: torch.Tensor | None  # (K, N, ...) the recorded states, starting with the initial noise; or None
    timesteps: list[int] = field(default_factory=list)  # the sampler's steps: after d steps x sits at timesteps[d]
    nfe: int = 0  # noise-predictor evaluations per sample (a batch of N rows counts one)


@dataclass(frozen=True)
class Walk:
    """Everything a sampler function needs besides the predictor, the schedule and the initial noise."""

    timesteps: list[int]  # the zero-based timestep of each step, in order
    sigmas: torch.Tensor  # (steps + 1,) float64 noise levels, the last 0 (probability-flow samplers; else empty)
    record: frozenset[int]  # the step counts after which the state is wanted (the last always is)
    eta: float = 0.0
    clip: Bounds | None = None
    generator: torch.Generator | None = None
    rtol: float = ODE_RTOL
    atol: float = ODE_ATOL


Steps = Iterator[tuple[int, torch.Tensor]]  # (steps done, the state after them), as a sampler walks
SamplerFn = Callable[[NoisePredictor, NoiseSchedule, torch.Tensor, Walk], Steps]


def _clip(x0: torch.Tensor, clip: Bounds | None) -> torch.Tensor:
    if clip is None:
        return x0
    lo, hi = clip
    return torch.maximum(
        torch.minimum(x0, torch.as_tensor(hi, device=x0.device)), torch.as_tensor(lo, device=x0.device)
    )


def _at(t: int, x: torch.Tensor) -> torch.Tensor:
    """(N,) timesteps t for a batch like x."""
    return torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)


# ---------------------------------------------------------------- ddpm and ddim


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
    tt = _at(t, x_t)
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
    tt = _at(t, x_t)
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


def _ddpm(predict: NoisePredictor, schedule: NoiseSchedule, x: torch.Tensor, walk: Walk) -> Steps:
    for d, t in enumerate(walk.timesteps, 1):
        x = ddpm_step(schedule, predict(x, _at(t, x)), x, t, clip=walk.clip, generator=walk.generator)
        yield d, x


def _ddim(predict: NoisePredictor, schedule: NoiseSchedule, x: torch.Tensor, walk: Walk) -> Steps:
    for d, t in enumerate(walk.timesteps, 1):
        t_prev = walk.timesteps[d] if d < len(walk.timesteps) else -1
        x = ddim_step(
            schedule, predict(x, _at(t, x)), x, t, t_prev, eta=walk.eta, clip=walk.clip, generator=walk.generator
        )
        yield d, x


# ---------------------------------------------------------------- noise levels of the probability-flow samplers


def schedule_sigmas(schedule: NoiseSchedule) -> torch.Tensor:
    """(T,) float64 sigma_t = sqrt((1 - ab_t) / ab_t): the noise level of x_t / sqrt(ab_t), increasing with t."""
    ab = schedule.alphas_cumprod.double().cpu()
    return ((1 - ab) / ab).sqrt()


def sigma_to_t(sigma: float, log_sigmas: torch.Tensor) -> float:
    """The fractional timestep of noise level ``sigma``: log sigma interpolated linearly between the integer steps
    (diffusers' ``_sigma_to_t``), clamped to [0, T - 1]."""
    if len(log_sigmas) == 1:
        return 0.0
    log_sigma = math.log(max(sigma, 1e-10))
    low = int(torch.searchsorted(log_sigmas, torch.tensor(log_sigma, dtype=log_sigmas.dtype), right=True)) - 1
    low = min(max(low, 0), len(log_sigmas) - 2)
    w = (log_sigma - float(log_sigmas[low])) / float(log_sigmas[low + 1] - log_sigmas[low])
    return low + min(max(w, 0.0), 1.0)


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = KARRAS_RHO) -> torch.Tensor:
    """(steps,) noise levels from sigma_max down to sigma_min, evenly spaced in sigma^(1/rho) (Karras et al. 2022,
    https://arxiv.org/abs/2206.00364, eq. 5): dense near the data, where the trajectories bend most."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def sigma_steps(schedule: NoiseSchedule, steps: int, spacing: Spacing = "karras") -> tuple[torch.Tensor, list[int]]:
    """The ``steps`` noise levels a probability-flow sampler visits, (steps + 1,) float64 ending with 0 (the data),
    and the integer timestep at which the network is called at each: as diffusers' schedulers place them.

    ``karras``: Karras sigmas between the schedule's sigma_0 and sigma_{T-1}, each called at its fractional timestep
    rounded (diffusers' ``use_karras_sigmas=True``); ``trailing``: the sigmas of DDIM's timesteps.
    """
    if spacing not in STEP_SPACINGS:
        raise UsageError(f"unknown step spacing {spacing!r}; choose from {', '.join(STEP_SPACINGS)}")
    _check_steps(len(schedule), steps)
    sigmas = schedule_sigmas(schedule)
    if spacing == "trailing":
        timesteps = ddim_timesteps(len(schedule), steps)
        chosen = sigmas[timesteps]
    else:
        chosen = karras_sigmas(float(sigmas[0]), float(sigmas[-1]), steps)
        timesteps = [round(sigma_to_t(float(s), sigmas.log())) for s in chosen]
    return torch.cat([chosen, torch.zeros(1, dtype=torch.float64)]), timesteps


def _denoised(
    predict: NoisePredictor, x_ve: torch.Tensor, sigma: float, t: int, clip: Bounds | None, dtype: torch.dtype
) -> torch.Tensor:
    """D(x; sigma): the predicted x_0 from x in variance-exploding coordinates at noise level sigma, the network
    called at timestep t on x / sqrt(1 + sigma^2) (diffusers' ``scale_model_input``), clipped if asked."""
    noise = predict((x_ve / math.sqrt(1 + sigma**2)).to(dtype), _at(t, x_ve))
    return _clip(x_ve - sigma * noise, clip)


def _dpmpp_2m(predict: NoisePredictor, schedule: NoiseSchedule, x: torch.Tensor, walk: Walk) -> Steps:
    """DPM-Solver++(2M) (Lu et al. 2022, https://arxiv.org/abs/2211.01095, Algorithm 2): exponential integration of
    the data prediction, with the previous step's prediction as a second-order correction; the first step and the
    last (to sigma = 0, diffusers' ``lower_order_final``) are first order."""
    s, dtype = [float(v) for v in walk.sigmas], x.dtype
    previous: torch.Tensor | None = None
    for d, t in enumerate(walk.timesteps, 1):
        sigma, sigma_next = s[d - 1], s[d]
        # 1. the data prediction D_i (diffusers' convert_model_output) at x_t = alpha x_0 + sigma_vp noise, VP form
        x0 = _denoised(predict, x * math.sqrt(1 + sigma**2), sigma, t, walk.clip, dtype)
        # 2. lambda = log(alpha / sigma_vp) = -log sigma, so h = log(sigma / sigma_next) (infinite at the data)
        coefficient = x0
        if previous is not None and sigma_next > 0:
            r = math.log(s[d - 2] / sigma) / math.log(sigma / sigma_next)  # h_{i-1} / h_i
            coefficient = x0 + (x0 - previous) / (2 * r)  # (1 + 1/2r) D_i - 1/2r D_{i-1}
        # 3. x_next = (sigma_vp' / sigma_vp) x - alpha' (e^{-h} - 1) D, with e^{-h} = sigma_next / sigma
        alpha_next = 1 / math.sqrt(1 + sigma_next**2)
        ratio = sigma_next * alpha_next / (sigma / math.sqrt(1 + sigma**2))
        x = (ratio * x + alpha_next * (1 - sigma_next / sigma) * coefficient).to(dtype)
        previous = x0
        yield d, x


def _euler(predict: NoisePredictor, schedule: NoiseSchedule, x: torch.Tensor, walk: Walk) -> Steps:
    """Euler's method on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, eq. 3)."""
    s, dtype = [float(v) for v in walk.sigmas], x.dtype
    for d, t in enumerate(walk.timesteps, 1):
        sigma, sigma_next = s[d - 1], s[d]
        x_ve = x * math.sqrt(1 + sigma**2)
        slope = (x_ve - _denoised(predict, x_ve, sigma, t, walk.clip, dtype)) / sigma
        x = ((x_ve + (sigma_next - sigma) * slope) / math.sqrt(1 + sigma_next**2)).to(dtype)
        yield d, x


def _heun(predict: NoisePredictor, schedule: NoiseSchedule, x: torch.Tensor, walk: Walk) -> Steps:
    """Heun's method (Karras et al. 2022, Algorithm 1 without churn): an Euler step, then the average of the slopes
    at both ends; the last step, to sigma = 0 where the slope is undefined, stays Euler. 2 steps - 1 evaluations."""
    s, dtype = [float(v) for v in walk.sigmas], x.dtype
    for d, t in enumerate(walk.timesteps, 1):
        sigma, sigma_next = s[d - 1], s[d]
        x_ve = x * math.sqrt(1 + sigma**2)
        slope = (x_ve - _denoised(predict, x_ve, sigma, t, walk.clip, dtype)) / sigma  # eq. 3, at sigma_i
        x_next = x_ve + (sigma_next - sigma) * slope
        if sigma_next > 0:  # the correction, at sigma_{i+1} and the next step's timestep
            t_next = walk.timesteps[d]
            slope_next = (x_next - _denoised(predict, x_next, sigma_next, t_next, walk.clip, dtype)) / sigma_next
            x_next = x_ve + (sigma_next - sigma) * (slope + slope_next) / 2
        x = (x_next / math.sqrt(1 + sigma_next**2)).to(dtype)
        yield d, x


# ---------------------------------------------------------------- the adaptive ODE sampler


def _noise_between(predict: NoisePredictor, x: torch.Tensor, t: float) -> torch.Tensor:
    """The noise prediction at fractional timestep t, linear between the two nearest integer steps (two calls, one
    where t is an integer). The network only knows integer steps. Each call is on the batch itself, not one call on
    2N rows: a conditional predictor holds the labels of its N rows."""
    low = math.floor(t)
    w = t - low
    if w == 0:
        return predict(x, _at(low, x))
    return (1 - w) * predict(x, _at(low, x)) + w * predict(x, _at(low + 1, x))


def _ode(predict: NoisePredictor, schedule: NoiseSchedule, x: torch.Tensor, walk: Walk) -> Steps:
    """The probability-flow ODE in u = log sigma: dx/du = x - D(x; sigma) for x in variance-exploding coordinates,
    from sigma_{T-1} to sigma_0 by dopri5 (Dormand-Prince 5(4), adaptive), then x_0 = D(x; sigma_0) as DDPM's last
    step. The states after d of T steps are the solution at sigma of timestep T - 1 - d (odeint's output times)."""
    from torchdiffeq import odeint  # imported here: only this sampler needs it

    sigmas = schedule_sigmas(schedule)
    log_sigmas, dtype, last = sigmas.log(), x.dtype, len(sigmas) - 1

    def slope(u: torch.Tensor, x_ve: torch.Tensor) -> torch.Tensor:
        sigma = math.exp(float(u))
        noise = _noise_between(predict, (x_ve / math.sqrt(1 + sigma**2)).to(dtype), sigma_to_t(sigma, log_sigmas))
        return x_ve - _clip(x_ve - sigma * noise.double(), walk.clip)

    inner = sorted(d for d in walk.record if 0 < d < last)  # recorded on the way (after d = last, sigma_0)
    times = torch.tensor([float(log_sigmas[last - d]) for d in [0, *inner, last]], dtype=torch.float64)
    x_ve = x.double() * math.sqrt(1 + float(sigmas[-1]) ** 2)
    if last > 0:
        try:
            path = odeint(
                slope,
                x_ve,
                times.to(x.device),
                rtol=walk.rtol,
                atol=walk.atol,
                method="dopri5",
                options={"max_num_steps": ODE_MAX_STEPS},
            )
        except AssertionError as error:  # torchdiffeq's "underflow in dt" and "max_num_steps exceeded"
            raise UsageError(_ode_failure(error, walk, float(x.abs().max()))) from None
        for d, state in zip([*inner, last], path[1:]):
            if d in walk.record:
                yield d, (state / math.sqrt(1 + float(sigmas[last - d]) ** 2)).to(dtype)
        x_ve = path[-1]
    sigma_0 = float(sigmas[0])
    yield len(walk.timesteps), _denoised(predict, x_ve, sigma_0, 0, walk.clip, dtype).to(dtype)


def _ode_failure(error: AssertionError, walk: Walk, scale: float) -> str:
    """Which tolerance to loosen: the one that sets dopri5's error bound atol + rtol |x| near the data, where the
    steps are hardest (there x / sqrt(alpha-bar) is about x, so the scale of the initial noise stands for it)."""
    name, value = ("rtol", walk.rtol) if walk.rtol * scale >= walk.atol else ("atol", walk.atol)
    reason = str(error).splitlines()[0] if str(error) else "the step size underflowed"
    return f"the ode sampler gave up ({reason}); loosen {name} (now {value:g})"


SAMPLERS: dict[str, SamplerFn] = {
    "ddpm": _ddpm,
    "ddim": _ddim,
    "dpmpp-2m": _dpmpp_2m,
    "euler": _euler,
    "heun": _heun,
    "ode": _ode,
}
SIGMA_SAMPLERS = ("dpmpp-2m", "euler", "heun")  # the samplers that walk ``sigma_steps``


# ---------------------------------------------------------------- which steps, and the loop


def _check_steps(num_timesteps: int, steps: int) -> None:
    if not 1 <= steps <= num_timesteps:
        raise UsageError(f"sample steps must be between 1 and num_timesteps ({num_timesteps}), got {steps}")


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps from T - 1 down, evenly spaced ("trailing" spacing, Lin et al. 2023, Table 2)."""
    _check_steps(num_timesteps, steps)
    ratio = num_timesteps / steps
    return [round(num_timesteps - i * ratio) - 1 for i in range(steps)]


def sampler_steps(num_timesteps: int, sampler: str, steps: int | None = None) -> int:
    """How many steps the sampler walks (``steps``, or all T when None), refusing an unknown sampler or a step count
    it cannot take, in one line. ``ode`` picks its own steps; its states are reported on all T timesteps."""
    if sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if sampler in ("ddpm", "ode") and steps not in (None, num_timesteps):
        if sampler == "ode":
            raise UsageError("the ode sampler chooses its own steps; set its tolerances (rtol, atol) instead")
        raise UsageError(f"the ddpm sampler walks all {num_timesteps} steps; use --sampler ddim for fewer")
    count = num_timesteps if steps is None else steps
    _check_steps(num_timesteps, count)
    return count


def sampler_timesteps(
    schedule: NoiseSchedule, sampler: str, steps: int | None = None, *, spacing: Spacing = "karras"
) -> list[int]:
    """The zero-based timesteps a sampler visits, in order: all T for ddpm and ode, ``steps`` of them for ddim
    (trailing) and the probability-flow samplers (``sigma_steps``, where the network is called)."""
    count = sampler_steps(len(schedule), sampler, steps)
    if sampler in SIGMA_SAMPLERS:
        return sigma_steps(schedule, count, spacing)[1]
    if sampler == "ddim":
        return ddim_timesteps(len(schedule), count)
    return list(range(len(schedule) - 1, -1, -1))


class _Counted:
    """A noise predictor that counts the rows it is asked about."""

    def __init__(self, predict: NoisePredictor) -> None:
        self.predict, self.rows = predict, 0

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.rows += x_t.shape[0]
        return self.predict(x_t, t)


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
    spacing: Spacing = "karras",
    rtol: float = ODE_RTOL,
    atol: float = ODE_ATOL,
) -> Trajectory:
    """Draw ``shape`` samples from N(0, I) through the reverse process.

    ``ddpm`` walks all T steps; ``ddim`` and the probability-flow samplers ``steps`` of them (default T), these on
    noise levels placed by ``spacing``; ``ode`` solves to ``rtol`` and ``atol``. ``record_every`` > 0 keeps the state
    after every that many steps (with the initial noise and the final samples), for pictures of the reverse process.
    """
    timesteps = sampler_timesteps(schedule, sampler, steps, spacing=spacing)
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{name} must be a positive number, got {value}")
    total = len(timesteps)
    record = frozenset(d for d in range(1, total + 1) if d % record_every == 0) if record_every else frozenset()
    sigmas = sigma_steps(schedule, total, spacing)[0] if sampler in SIGMA_SAMPLERS else torch.zeros(0)
    walk = Walk(timesteps, sigmas, record | {total}, eta, clip, generator, rtol, atol)
    noise = torch.randn(shape, generator=generator, device=schedule.device)
    kept, states = ([total], [noise.clone()]) if record_every else ([], [])
    x = noise
    predict = _Counted(noise_predictor)
    for d, x in SAMPLERS[sampler](predict, schedule, noise, walk):
        if record_every and d in walk.record:
            kept.append(total - d)
            states.append(x.clone())
    return Trajectory(x, kept, torch.stack(states) if states else None, timesteps, predict.rows // shape[0])
