"""Flow matching's path, target and samplers (core/flow.py) against closed forms, and the Euler and Heun steps
against diffusers' FlowMatchEulerDiscreteScheduler and FlowMatchHeunDiscreteScheduler."""

import math

import pytest
import torch

from tiny_diffusion import UsageError
from tiny_diffusion.choices import FLOW_SAMPLERS
from tiny_diffusion.core import flow
from tiny_diffusion.eval.likelihood import flow_log_prob

SHAPES = [(1,), (2,), (3, 4, 5)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_path_runs_straight_from_data_to_noise_at_the_target_velocity(shape):
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, *shape, generator=g, dtype=torch.float64), torch.randn(6, *shape, generator=g)
    noise = noise.double()
    t = torch.rand(6, generator=g, dtype=torch.float64)
    zeros, ones = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    assert torch.equal(flow.interpolate(x0, noise, zeros), x0)
    assert torch.equal(flow.interpolate(x0, noise, ones), noise)
    h = 1e-6  # d x_t / dt by a central difference is the target
    slope = (flow.interpolate(x0, noise, t + h) - flow.interpolate(x0, noise, t - h)) / (2 * h)
    torch.testing.assert_close(slope, flow.velocity_target(x0, noise), rtol=1e-6, atol=1e-6)
    # x0 = x_t - t v recovers the data from any point of the path
    x_t = flow.interpolate(x0, noise, t)
    torch.testing.assert_close(flow.predict_x0(x_t, flow.velocity_target(x0, noise), t), x0)


def _gaussian_velocity(mu: float, s: float):
    """The exact marginal velocity E[noise - x0 | x_t = x] for data N(mu, s^2) per coordinate: x_t is Gaussian with
    mean (1 - t) mu and variance (1 - t)^2 s^2 + t^2, and Cov(noise - x0, x_t) = t - (1 - t) s^2, so
    v(x, t) = -mu + (t - (1 - t) s^2) / var_t (x - (1 - t) mu). Its ODE carries x_1 = z to x_0 = mu + s z."""

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, *[1] * (x.dim() - 1)).to(x.dtype)
        a = 1 - t
        var = a**2 * s**2 + t**2
        return -mu + (t - a * s**2) / var * (x - a * mu)

    return velocity


# (sampler, steps, tolerance): first order needs many steps, second order few, the adaptive one its tolerance. Heun's
# last step is Euler's: one first-order step adds O(h^2), so it stays second order (its error 1.3e-3 at 40 steps,
# 3.2e-4 at 80), with a larger constant than the midpoint rule's on this smooth field
ACCURACY = [("euler", 2000, 2e-3), ("heun", 80, 1e-3), ("midpoint", 40, 1e-3), ("ode", 1, 2e-4)]


@pytest.mark.parametrize("sampler,steps,tol", ACCURACY, ids=[a[0] for a in ACCURACY])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_each_sampler_with_the_exact_velocity_maps_noise_to_the_gaussian_data(sampler, steps, tol, shape):
    mu, s = 0.7, 0.5
    generator = torch.Generator().manual_seed(3)
    drawn = flow.sample(_gaussian_velocity(mu, s), (64, *shape), sampler=sampler, steps=steps, generator=generator)
    z = torch.randn(64, *shape, generator=torch.Generator().manual_seed(3))  # the sampler's initial noise
    torch.testing.assert_close(drawn.samples, mu + s * z, rtol=0, atol=tol)
    calls = {"euler": steps, "heun": 2 * steps - 1, "midpoint": 2 * steps}  # heun's last step is Euler's
    assert drawn.nfe == calls.get(sampler, drawn.nfe) and drawn.nfe > 0


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_the_euler_step_is_diffusers_flow_match_euler_step(steps):
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    times = flow.time_grid(steps)  # (steps + 1,) from 1 to 0
    scheduler.set_timesteps(sigmas=times[:-1].tolist())  # diffusers appends the final sigma 0
    torch.testing.assert_close(scheduler.sigmas, times)
    # the network's time input: diffusers' timesteps are sigma * num_train_timesteps, ours t * TIME_SCALE
    torch.testing.assert_close(scheduler.timesteps, times[:-1] * flow.TIME_SCALE)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, generator=g)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(3 * x) + t[:, None]

    ours = x.clone()
    for i, timestep in enumerate(scheduler.timesteps):
        t = times[i].expand(len(x))
        x = scheduler.step(velocity(x, t), timestep, x).prev_sample
        ours = flow.euler_step(velocity, ours, times[i], times[i + 1])
        torch.testing.assert_close(ours, x, rtol=0, atol=1e-6)
    # and the path: diffusers' scale_noise is our interpolate with sigma = t
    x0, noise = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    last = len(scheduler.timesteps) - 1
    sigma = scheduler.sigmas[last]
    torch.testing.assert_close(
        scheduler.scale_noise(x0, scheduler.timesteps[last:], noise), flow.interpolate(x0, noise, sigma.expand(4))
    )


@pytest.mark.parametrize("steps", [2, 3, 10])
def test_the_heun_step_is_diffusers_flow_match_heun_step(steps):
    """diffusers walks a Heun step as two calls of ``step`` (the Euler predictor, then the trapezoid) and the last
    step, to sigma 0, as one: 2 steps - 1 calls; ours on its sigmas lands on its states after each whole step."""
    from diffusers import FlowMatchHeunDiscreteScheduler

    scheduler = FlowMatchHeunDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(steps)
    times = torch.cat([scheduler.sigmas[:1], scheduler.sigmas[1::2]])  # (steps + 1,): its sigmas, each once
    assert len(scheduler.timesteps) == 2 * steps - 1 and times[-1] == 0

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(3 * x) + t[:, None]

    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    theirs, states = x.clone(), []
    for timestep in scheduler.timesteps:
        t = (timestep / flow.TIME_SCALE).expand(len(x))
        theirs = scheduler.step(velocity(theirs, t), timestep, theirs).prev_sample
        states.append(theirs)
    whole = [states[2 * k + 1] for k in range(steps - 1)] + [states[-1]]  # after each whole step
    calls = []
    ours = x.clone()
    for i in range(steps):
        ours = flow.heun_step(lambda x, t: calls.append(1) or velocity(x, t), ours, times[i], times[i + 1])
        # diffusers recovers the slope as (x - (x - v sigma)) / sigma: float32 rounding grows as sigma reaches 0.001
        torch.testing.assert_close(ours, whole[i], rtol=0, atol=1e-4)
    assert len(calls) == len(scheduler.timesteps)


@pytest.mark.parametrize("sampler", FLOW_SAMPLERS)
@pytest.mark.parametrize("steps,every", [(10, 3), (6, 2), (4, 4)])
def test_recorded_states_start_from_the_noise_and_end_at_the_samples(sampler, steps, every):
    drawn = flow.sample(
        lambda x, t: torch.full_like(x, 2.0),  # a constant velocity: x_t = noise - 2 (1 - t) at every time
        (5, 2),
        sampler=sampler,
        steps=steps,
        generator=torch.Generator().manual_seed(0),
        record_every=every,
    )
    expected = sorted({*range(0, steps, every), steps})
    assert drawn.steps_left == [steps - d for d in expected]
    assert drawn.states is not None and len(drawn.states) == len(expected)
    noise = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(drawn.states[0], noise) and torch.equal(drawn.states[-1], drawn.samples)
    for state, left in zip(drawn.states, drawn.steps_left):  # each state sits at time t = left / steps
        torch.testing.assert_close(state, noise - 2 * (1 - left / steps), rtol=0, atol=1e-5)


def test_clipping_keeps_each_implied_x0_and_the_samples_in_range():
    drawn = flow.sample(_gaussian_velocity(3.0, 0.1), (200, 2), sampler="euler", steps=20, clip=(-1.0, 1.0))
    assert float(drawn.samples.abs().max()) <= 1 + 1e-6


def test_the_time_the_network_sees_is_scaled_to_a_ddpm_range():
    seen = []
    velocity = flow.velocity_predictor(lambda x, t: seen.append(t) or torch.zeros_like(x))
    velocity(torch.zeros(3, 2), torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(seen[0], torch.tensor([0.0, 500.0, 1000.0]))


@pytest.mark.parametrize(
    "velocity,message",
    [
        (lambda x, t: x * math.nan, r"loosen its tolerances \(rtol 1e-05, atol 1e-05\)"),
        (lambda x, t: 1e4 * torch.sin(1e4 * t)[:, None] * x, "loosen its tolerances"),
    ],
    ids=["nan", "stiff"],
)
def test_the_ode_sampler_that_cannot_converge_says_which_tolerances_to_loosen(velocity, message):
    with pytest.raises(UsageError, match=message) as error:
        flow.sample(velocity, (4, 2), sampler="ode")
    assert "\n" not in str(error.value)


def test_unknown_sampler_and_zero_steps_are_refused():
    with pytest.raises(UsageError, match="choose from euler, heun, midpoint, ode"):
        flow.sample(_gaussian_velocity(0, 1), (2, 2), sampler="ddim")
    with pytest.raises(UsageError, match="at least 1 step"):
        flow.sample(_gaussian_velocity(0, 1), (2, 2), steps=0)


@pytest.mark.parametrize("hutchinson", [None, 64])
def test_the_flow_log_likelihood_of_gaussian_data_is_the_gaussian_density(hutchinson):
    mu, s = 0.7, 0.5
    x = torch.tensor([[0.0, 1.0], [0.7, 0.2], [1.5, -0.3]], dtype=torch.float64)
    found = flow_log_prob(_gaussian_velocity(mu, s), x, hutchinson=hutchinson, rtol=1e-7, atol=1e-7)
    exact = (-0.5 * ((x - mu) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).sum(1)
    # the field is linear in x, so each Rademacher probe gives the trace exactly
    torch.testing.assert_close(torch.as_tensor(found.value), exact, rtol=0, atol=1e-5)
