"""Conditional flow matching on the straight path from data to noise: the path, the training target and the samplers.

The path (Lipman et al. 2023, https://arxiv.org/abs/2210.02747, eq. 20 with sigma_min = 0; Liu et al. 2023,
"rectified flow", https://arxiv.org/abs/2209.03003) joins a data point x0 at t = 0 to a noise draw at t = 1:

    x_t = (1 - t) x0 + t noise,     t in [0, 1] continuous,

and its velocity dx_t/dt = noise - x0 is what the network learns by mean squared error at drawn times t (uniform
or logit-normal: core.noise_levels). The regression's minimiser is the marginal velocity v(x, t) = E[noise - x0 |
x_t = x], whose ODE dx/dt = v carries N(0, I) at t = 1 to the data at t = 0; the samplers integrate it backwards,
from t = 1 to t = 0.

The network sees t scaled by ``TIME_SCALE`` (1000): the timestep embeddings were made for integer steps of a DDPM
(sinusoidal frequencies from 1 to 1/10000 per step), so t * 1000 spans the range of a 1000-step DDPM, the
convention of diffusers' flow-matching scheduler (timesteps = sigmas * 1000). Measured on the dino
(docs/concepts.md#flow-matching): t itself leaves the sinusoids nearly linear and the samples blurred; 100 draws as
well as 1000 with a smoother field (half the ode sampler's calls). Every time embedding takes a continuous input.
Shapes are free: (N, D) points and (N, C, H, W) images alike; ``t`` is (N,) floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..choices import FLOW_SAMPLERS
from ..errors import UsageError
from .samplers import Bounds, Trajectory

__all__ = [
    "FLOW_SAMPLERS",
    "TIME_SCALE",
    "ODE_RTOL",
    "ODE_ATOL",
    "FlowTrajectory",
    "interpolate",
    "velocity_target",
    "predict_x0",
    "velocity_predictor",
    "sample",
]

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # v(x_t (N, ...), t (N,) in [0, 1]) -> (N, ...)
# (velocity, x at times[0], times (K,), kept indices) -> the states at times[k] for each kept k (ascending, > 0)
Integrator = Callable[[Velocity, torch.Tensor, torch.Tensor, list[int]], list[torch.Tensor]]

TIME_SCALE = 1000.0  # the network's time input is t * TIME_SCALE (see the module's docstring)
# the adaptive sampler's tolerances: on tests/core/test_flow.py's Gaussian, 1e-5 lands within 6e-5 of the exact
# map in 38 calls (1e-4: 4e-3 in 26 calls; 1e-3: 5e-2 in 20)
ODE_RTOL = 1e-5
ODE_ATOL = 1e-5
ODE_MAX_STEPS = 10_000  # dopri5 steps before the ode sampler gives up


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N, 1, ...) broadcasting over the rest of x's dimensions."""
    return t.reshape(-1, *[1] * (x.dim() - 1)).to(x.dtype)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise for data x0 (N, ...), noise like it and times t (N,) in [0, 1]."""
    s = _bcast(t, x0)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The path's velocity d x_t / dt = noise - x0: what the network is trained to predict."""
    return noise - x0


def predict_x0(x_t: torch.Tensor, velocity: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x0 = x_t - t v: where the straight line through x_t with velocity v meets t = 0."""
    return x_t - _bcast(t, x_t) * velocity


def velocity_predictor(network: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Velocity:
    """Wrap a network called with the scaled time, ``network(x_t, t * TIME_SCALE)``, as v(x_t, t)."""
    return lambda x_t, t: network(x_t, t * TIME_SCALE)


# ---------------------------------------------------------------- samplers: from t = 1 (noise) to t = 0 (data)


def _clipped(velocity: Velocity, clip: Bounds | None) -> Velocity:
    """The velocity whose implied x0 = x_t - t v is clipped to ``clip`` (as DDPM clips its predicted x0), so a
    last step cannot throw a sample outside the data's range; at t = 0 nothing is implied and v is left alone."""
    if clip is None:
        return velocity
    lo, hi = clip

    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = velocity(x, t)
        s = _bcast(t, x)
        x0 = torch.maximum(
            torch.minimum(x - s * v, torch.as_tensor(hi, device=x.device)), torch.as_tensor(lo, device=x.device)
        )
        return torch.where(s > 0, (x - x0) / s.clamp(min=1e-12), v)

    return field


def _full(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.dtype).expand(x.shape[0])


def _fixed_step(step: Callable[[Velocity, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> Integrator:
    """An integrator taking one ``step(v, x, t, t_next)`` per interval of the time grid."""

    def integrate(velocity: Velocity, x: torch.Tensor, times: torch.Tensor, keep: list[int]) -> list[torch.Tensor]:
        states = []
        for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
            x = step(velocity, x, t, t_next)
            if i + 1 in keep:
                states.append(x)
        return states

    return integrate


def euler_step(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """x + h v(x, t), h = t_next - t < 0: one network call."""
    return x + (t_next - t) * velocity(x, _full(t, x))


def heun_step(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """Heun's method (explicit trapezoid; Karras et al. 2022, https://arxiv.org/abs/2206.00364, Algorithm 1): two
    network calls, second order; the last step, to t = 0, is Euler's, as in Algorithm 1 and diffusers'
    FlowMatchHeunDiscreteScheduler. The field turns sharply just above t = 0 (the exact velocity of a mixture of
    narrow components points at the data until t is about their width, and is -x at t = 0), so a slope taken at t = 0
    spoils the last step: on the dino's exact velocity, 10 steps reach precision@0.05 0.62 this way against 0.37
    (docs/concepts.md, flow matching). 2 steps - 1 calls."""
    if float(t_next) == 0:
        return euler_step(velocity, x, t, t_next)
    h = t_next - t
    d1 = velocity(x, _full(t, x))
    d2 = velocity(x + h * d1, _full(t_next, x))
    return x + h * (d1 + d2) / 2


def midpoint_step(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """The explicit midpoint rule: the velocity half a step on; two network calls, second order."""
    h = t_next - t
    half = x + h / 2 * velocity(x, _full(t, x))
    return x + h * velocity(half, _full(t + h / 2, x))


def _ode(rtol: float, atol: float) -> Integrator:
    """Adaptive dopri5 (torchdiffeq) from times[0] to times[-1] with these tolerances, the kept states interpolated
    by the solver (its steps do not depend on them, so recording changes no sample); a failure to converge is a
    one-line UsageError naming the tolerances to loosen."""

    def integrate(velocity: Velocity, x: torch.Tensor, times: torch.Tensor, keep: list[int]) -> list[torch.Tensor]:
        from torchdiffeq import odeint  # imported here: only this sampler and the likelihoods need it

        span = times[[0, *keep]].to(x.dtype)
        try:
            states = odeint(
                lambda t, y: velocity(y, _full(t, y)),
                x,
                span,
                rtol=rtol,
                atol=atol,
                method="dopri5",
                options={"max_num_steps": ODE_MAX_STEPS},
            )[1:]
        except (AssertionError, RuntimeError) as error:  # torchdiffeq: "underflow in dt", "max_num_steps exceeded"
            raise UsageError(
                f"the ode sampler did not converge ({str(error).splitlines()[0]}); loosen its tolerances "
                f"(rtol {rtol:g}, atol {atol:g})"
            ) from None
        if not bool(states.isfinite().all()):
            raise UsageError(
                f"the ode sampler gave non-finite values; loosen its tolerances (rtol {rtol:g}, atol {atol:g})"
            )
        return list(states)

    return integrate


# name -> integrator over a time grid; the CLI's choices are choices.FLOW_SAMPLERS, the same names
INTEGRATORS: dict[str, Integrator] = {
    "euler": _fixed_step(euler_step),
    "heun": _fixed_step(heun_step),
    "midpoint": _fixed_step(midpoint_step),
    "ode": _ode(ODE_RTOL, ODE_ATOL),
}


def calls_per_step(sampler: str) -> int:
    """Network calls of one step of a fixed-step sampler (the ode sampler's count is only known afterwards)."""
    return {"euler": 1, "heun": 2, "midpoint": 2}.get(sampler, 0)


def time_grid(steps: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """(steps + 1,) times from 1 (noise) down to 0 (data), evenly spaced."""
    if steps < 1:
        raise UsageError(f"a flow sampler needs at least 1 step, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


@dataclass
class FlowTrajectory(Trajectory):
    """A flow sampler's ``Trajectory`` with the number of network calls it made."""

    nfe: int = 0  # network (velocity) evaluations


@torch.inference_mode()
def sample(
    velocity: Velocity,
    shape: tuple[int, ...],
    *,
    sampler: str = "midpoint",
    steps: int = 25,
    clip: Bounds | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    record_every: int = 0,
    rtol: float = ODE_RTOL,
    atol: float = ODE_ATOL,
) -> FlowTrajectory:
    """Draw ``shape`` samples: noise from N(0, I) at t = 1 integrated along dx/dt = v(x, t) to t = 0.

    The fixed-step samplers take ``steps`` even steps of the time grid; ``ode`` steps adaptively (dopri5 with
    ``rtol`` and ``atol``), the grid only saying where states are recorded. ``record_every`` > 0 keeps the state
    every that many steps of the grid (with the initial noise and the final samples), as ``samplers.sample`` does.
    """
    if sampler not in INTEGRATORS:
        raise UsageError(f"unknown flow sampler {sampler!r}; choose from {', '.join(FLOW_SAMPLERS)}")
    integrator = INTEGRATORS[sampler] if sampler != "ode" else _ode(rtol, atol)
    times = time_grid(steps, device=device)
    calls = 0

    def counted(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return velocity(x, t)

    x = torch.randn(shape, generator=generator, device=device)
    # the steps after which states are kept: every record_every steps and the end
    keep = sorted({*range(record_every, steps, record_every), steps}) if record_every else [steps]
    states = integrator(_clipped(counted, clip), x, times, keep)
    if not record_every:
        return FlowTrajectory(states[-1], [], None, nfe=calls)
    return FlowTrajectory(states[-1], [steps, *(steps - k for k in keep)], torch.stack([x, *states]), nfe=calls)
