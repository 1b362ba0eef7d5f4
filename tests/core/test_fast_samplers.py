"""The probability-flow samplers (dpmpp-2m, euler, heun, ode): each step against diffusers' schedulers as an oracle,
and every sampler against closed forms: a Gaussian's exact probability-flow solution and an exact mixture."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler

from tiny_diffusion.core import exact, samplers
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.errors import UsageError

DPMPP_2M = dict(algorithm_type="dpmsolver++", solver_order=2)  # solver_type "midpoint": Lu et al.'s Algorithm 2
DIFFUSERS = {  # (sampler, spacing) -> the diffusers scheduler and its settings that walk the same steps
    ("dpmpp-2m", "karras"): (DPMSolverMultistepScheduler, dict(DPMPP_2M, use_karras_sigmas=True)),
    ("dpmpp-2m", "trailing"): (DPMSolverMultistepScheduler, dict(DPMPP_2M, timestep_spacing="trailing")),
    ("euler", "karras"): (EulerDiscreteScheduler, dict(use_karras_sigmas=True)),
    ("euler", "trailing"): (EulerDiscreteScheduler, dict(timestep_spacing="trailing")),
    ("heun", "karras"): (HeunDiscreteScheduler, dict(use_karras_sigmas=True)),
    ("heun", "trailing"): (HeunDiscreteScheduler, dict(timestep_spacing="trailing")),
}  # fmt: skip


def _fake_predictor(schedule: NoiseSchedule):
    """A deterministic noise predictor that is not a true one: a point's exact noise plus a ripple in x and t. It
    rounds t, as our samplers do before calling a network (diffusers' Euler and Heun pass fractional t)."""
    ab = schedule.alphas_cumprod.double()

    def predict(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        step = t.round().long()
        a, x = ab[step][:, None], x_t.double()
        return ((x - a.sqrt() * 0.5) / (1 - a).sqrt() + 0.3 * torch.sin(2 * x + step[:, None] / 37)).float()

    return predict


def _diffusers_states(scheduler, predict, x: torch.Tensor) -> torch.Tensor:
    """Run a diffusers scheduler from our initial noise x (variance-preserving); its states after each of our steps,
    variance-preserving too (Euler and Heun work in x / sqrt(alpha-bar) = x sqrt(1 + sigma^2))."""
    exploding = not isinstance(scheduler, DPMSolverMultistepScheduler)
    sigmas = [float(s) for s in scheduler.sigmas]
    x = x * math.sqrt(1 + sigmas[0] ** 2) if exploding else x
    states = []
    for i, t in enumerate(scheduler.timesteps):
        x = scheduler.step(predict(scheduler.scale_model_input(x, t), t.expand(len(x))), t, x).prev_sample
        states.append(x / math.sqrt(1 + sigmas[i + 1] ** 2) if exploding else x)
    if isinstance(scheduler, HeunDiscreteScheduler):  # an Euler step then its correction per step; the last Euler
        states = states[1:-1:2] + states[-1:]
    return torch.stack(states)


@pytest.mark.parametrize("num_timesteps, steps", [(1000, 20), (100, 10)])
@pytest.mark.parametrize("sampler, spacing", list(DIFFUSERS))
def test_every_step_matches_diffusers(sampler, spacing, num_timesteps, steps):
    schedule = NoiseSchedule(num_timesteps, "linear", beta_end=0.02 * 1000 / num_timesteps)
    kind, settings = DIFFUSERS[sampler, spacing]
    scheduler = kind(num_train_timesteps=num_timesteps, trained_betas=schedule.betas.double().numpy(), **settings)
    scheduler.set_timesteps(steps)
    predict = _fake_predictor(schedule)
    ours = samplers.sample(
        predict,
        schedule,
        (64, 2),
        sampler=sampler,
        steps=steps,
        spacing=spacing,
        generator=torch.Generator().manual_seed(0),
        record_every=1,
    )
    theirs = _diffusers_states(scheduler, predict, ours.states[0])
    assert ours.timesteps == scheduler.timesteps.round().long().unique_consecutive().tolist()
    assert ours.nfe == len(scheduler.timesteps)  # heun: 2 steps - 1
    torch.testing.assert_close(ours.states[1:], theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("clip", [None, (-1.0, 0.6)])
def test_euler_on_trailing_steps_is_ddim_with_eta_0(clip):
    """DDIM with eta = 0 is Euler's method in x / sqrt(alpha-bar) on the same noise levels (Song et al. 2021, eq. 14;
    Karras et al. 2022, Table 1), clipped x0 included: the two samplers must agree to float rounding."""
    schedule = NoiseSchedule(100, "cosine")
    predict = _fake_predictor(schedule)
    draws = [
        samplers.sample(
            predict, schedule, (32, 2), sampler=s, steps=10, spacing="trailing", clip=clip, generator=torch.Generator()
        ).samples
        for s in ("euler", "ddim")
    ]
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=1e-5)


# ---------------------------------------------------------------- a Gaussian: the exact probability-flow solution

MEAN, STD = 0.5, 0.3


def _gaussian(schedule: NoiseSchedule):
    return exact.mixture_noise_predictor(torch.tensor([[MEAN]]), torch.tensor([STD]), torch.ones(1), schedule)


def _exact_flow(x_T: torch.Tensor, schedule: NoiseSchedule, sigma: float = 0.0) -> torch.Tensor:
    """Where the probability-flow ODE of N(MEAN, STD^2) takes x_T (at the last step) at noise level sigma, variance
    preserving: in x / sqrt(alpha-bar) its distance from MEAN scales as sqrt(STD^2 + sigma^2)."""
    sigma_max = float(samplers.schedule_sigmas(schedule)[-1])
    x_ve = MEAN + (x_T.double() * math.sqrt(1 + sigma_max**2) - MEAN) * math.hypot(STD, sigma) / math.hypot(
        STD, sigma_max
    )
    return x_ve / math.sqrt(1 + sigma**2)


def _error(sampler: str, steps: int | None, schedule: NoiseSchedule, **kw) -> float:
    out = samplers.sample(
        _gaussian(schedule), schedule, (500, 1), sampler=sampler, steps=steps, generator=torch.Generator(), **kw
    )
    x_T = torch.randn((500, 1), generator=torch.Generator())
    return float((out.samples.double() - _exact_flow(x_T, schedule)).abs().max())


@pytest.mark.parametrize("sampler, order", [("euler", 1), ("heun", 2), ("dpmpp-2m", 2)])
def test_error_falls_with_the_methods_order(sampler, order):
    """Each doubling of the steps divides the error against the exact solution by about 2^order."""
    schedule = NoiseSchedule(1000, "linear")
    errors = [_error(sampler, steps, schedule) for steps in (20, 40, 80)]
    for coarse, fine in zip(errors, errors[1:]):
        assert 2**order * 0.8 < coarse / fine < 2**order * 1.5, errors


def test_ode_error_falls_with_its_tolerance():
    schedule = NoiseSchedule(1000, "linear")
    loose, tight = (_error("ode", None, schedule, rtol=tol, atol=tol) for tol in (1e-2, 1e-4))
    assert tight < 1e-3 < 0.05 < loose


def test_ode_records_the_exact_path_at_the_grid():
    """odeint reports the states on the timestep grid: each on the exact solution at that step's sigma."""
    schedule = NoiseSchedule(100, "linear", beta_end=0.2)
    out = samplers.sample(
        _gaussian(schedule), schedule, (200, 1), sampler="ode", generator=torch.Generator(), record_every=30, rtol=1e-5
    )
    assert out.steps_left == [100, 70, 40, 10, 0] and out.timesteps == list(range(99, -1, -1))
    sigmas = samplers.schedule_sigmas(schedule)
    for state, left in zip(out.states[1:-1], out.steps_left[1:-1]):  # after d steps x sits at timestep T - 1 - d
        expected = _exact_flow(out.states[0], schedule, float(sigmas[left - 1]))
        torch.testing.assert_close(state.double(), expected, rtol=0, atol=2e-3)
    assert torch.equal(out.states[-1], out.samples)


# ---------------------------------------------------------------- an exact mixture: weights, means and spreads

MEANS = torch.tensor([[-1.0, 0.5], [1.0, -0.25]])
STDS = torch.tensor([0.2, 0.3])
WEIGHTS = torch.tensor([0.3, 0.7])


@pytest.mark.parametrize(
    "sampler, steps, nfe", [("dpmpp-2m", 50, 50), ("heun", 50, 99), ("euler", 200, 200), ("ode", None, None)]
)
def test_exact_mixture_is_drawn_with_its_weights_means_and_spreads(sampler, steps, nfe):
    n, schedule = 4000, NoiseSchedule(1000, "linear")
    predict = exact.mixture_noise_predictor(MEANS, STDS, WEIGHTS, schedule)
    out = samplers.sample(predict, schedule, (n, 2), sampler=sampler, steps=steps, generator=torch.Generator())
    assert nfe is None or out.nfe == nfe
    left = out.samples[:, 0] < 0  # the components sit 10 standard deviations apart
    weight = float(left.double().mean())
    assert abs(weight - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    for k, members in enumerate((out.samples[left], out.samples[~left])):
        se = STDS[k] / math.sqrt(len(members))
        assert ((members.mean(0) - MEANS[k]).abs() < 5 * se).all()
        assert ((members.std(0) / STDS[k] - 1).abs() < 0.06).all()  # sampling error ~2%, the solver's up to ~3%


# ---------------------------------------------------------------- counting, recording and refusing


def test_nfe_counts_the_rows_the_predictor_sees():
    schedule = NoiseSchedule(50, "linear", beta_end=0.3)
    rows = []

    def predict(x_t, t):
        rows.append(len(x_t))
        return _gaussian(schedule)(x_t, t)

    out = samplers.sample(predict, schedule, (8, 1), sampler="ode", generator=torch.Generator())
    assert out.nfe == sum(rows) // 8 and out.nfe > 10  # between integer steps: one call on 2N rows counts two
    assert samplers.sample(predict, schedule, (8, 1), sampler="ddpm").nfe == 50


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "euler", "heun"])
def test_record_every(sampler):
    schedule = NoiseSchedule(100, "linear", beta_end=0.2)
    out = samplers.sample(
        _gaussian(schedule), schedule, (5, 1), sampler=sampler, steps=10, record_every=4, generator=torch.Generator()
    )
    assert out.steps_left == [10, 6, 2, 0] and len(out.states) == 4 and len(out.timesteps) == 10
    assert torch.equal(out.states[0], torch.randn((5, 1), generator=torch.Generator()))
    assert torch.equal(out.states[-1], out.samples)


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "euler", "heun"])
@pytest.mark.parametrize("steps", [0, -3, 101])
def test_steps_out_of_range_are_refused(sampler, steps):
    with pytest.raises(UsageError, match=r"between 1 and num_timesteps \(100\)"):
        samplers.sample(_gaussian(NoiseSchedule(100)), NoiseSchedule(100), (2, 1), sampler=sampler, steps=steps)


def test_ode_refuses_steps_and_bad_tolerances():
    schedule = NoiseSchedule(100)
    with pytest.raises(UsageError, match="chooses its own steps"):
        samplers.sample(_gaussian(schedule), schedule, (2, 1), sampler="ode", steps=10)
    with pytest.raises(UsageError, match="rtol must be a positive number"):
        samplers.sample(_gaussian(schedule), schedule, (2, 1), sampler="ode", rtol=0)


def test_unknown_spacing_and_sampler_list_the_valid_names():
    with pytest.raises(UsageError, match="karras, trailing"):
        samplers.sample(_gaussian(NoiseSchedule(10)), NoiseSchedule(10), (2, 1), sampler="euler", spacing="even")
    with pytest.raises(UsageError, match="ddpm, ddim, dpmpp-2m, euler, heun, ode"):
        samplers.sample(_gaussian(NoiseSchedule(10)), NoiseSchedule(10), (2, 1), sampler="dpm")


def test_a_failing_ode_solver_says_which_tolerance_to_loosen(monkeypatch):
    monkeypatch.setattr(samplers, "ODE_MAX_STEPS", 5)
    schedule = NoiseSchedule(100, "linear", beta_end=0.2)
    for rtol, atol, named in [(1e-8, 1e-3, "loosen atol (now 0.001)"), (1e-3, 1e-12, "loosen rtol (now 0.001)")]:
        with pytest.raises(UsageError) as info:
            samplers.sample(_gaussian(schedule), schedule, (4, 1), sampler="ode", rtol=rtol, atol=atol)
        assert named in str(info.value) and "max_num_steps" in str(info.value) and "\n" not in str(info.value)
