"""Samplers driven by exact "oracle" noise predictors, whose right answers are known in closed form.

For data that is a single point x0*, the true noise is eps(x_t, t) = (x_t - sqrt(ab_t) x0*) / sqrt(1 - ab_t), with ab
the cumulative product alpha-bar; for two equally likely points the optimal predictor follows from the exact posterior
E[x0 | x_t]. The oracles use alpha-bar computed here in float64, not the schedule's own tensors.
"""

from __future__ import annotations

import math

import pytest
import torch

from tiny_diffusion.core import samplers
from tiny_diffusion.core.schedule import NoiseSchedule, make_betas
from tiny_diffusion.errors import UsageError

SCHEDULES = ["linear", "quadratic", "cosine", "sigmoid"]
SHAPES = [(2,), (3,), (1, 4, 4)]
# 100 steps with betas up to 0.2 end about as noised as T = 1000 with betas up to 0.02 (alpha-bar_T < 1e-3 for all
# four schedules), in a tenth of the steps
T = 100
FAST = dict(num_timesteps=T, beta_start=1e-3, beta_end=0.2)


def _schedule(name: str) -> NoiseSchedule:
    return NoiseSchedule(beta_schedule=name, **FAST)


def _alphas_cumprod(name: str, num_timesteps: int = T, **kw) -> torch.Tensor:
    kw = kw or dict(beta_start=FAST["beta_start"], beta_end=FAST["beta_end"])
    return torch.cumprod(1 - make_betas(name, num_timesteps, **kw), 0)


def _at(ab: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return ab[t].view(-1, *([1] * (x.dim() - 1)))  # (N, 1, ..., 1)


def _point_oracle(x0_star: torch.Tensor, ab: torch.Tensor):
    """The exact noise for data that is the single point x0_star."""

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = _at(ab, t, x_t)
        return ((x_t.double() - a.sqrt() * x0_star.double()) / (1 - a).sqrt()).to(x_t.dtype)

    return eps


def _two_point_oracle(a_pt: torch.Tensor, b_pt: torch.Tensor, ab: torch.Tensor):
    """E[noise | x_t] for data equally likely a_pt or b_pt: the posterior-mean denoiser, written as noise."""
    a_pt, b_pt = a_pt.double().flatten(), b_pt.double().flatten()  # (D,)

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = x_t.double().flatten(1)  # (N, D)
        a = ab[t].unsqueeze(1)  # (N, 1)
        # log N(x_t; sqrt(a) c, (1 - a) I) for c = a_pt, b_pt, up to a shared constant: (N,) each
        log_a = -((x - a.sqrt() * a_pt) ** 2).sum(1) / (2 * (1 - a[:, 0]))
        log_b = -((x - a.sqrt() * b_pt) ** 2).sum(1) / (2 * (1 - a[:, 0]))
        # the softmax of two log-likelihoods is a sigmoid of their difference (and avoids threaded kernels)
        w_b = torch.sigmoid(log_b - log_a).unsqueeze(1)  # (N, 1) = P(x0 = b_pt | x_t)
        x0 = a_pt + w_b * (b_pt - a_pt)  # (N, D) = E[x0 | x_t]
        return ((x - a.sqrt() * x0) / (1 - a).sqrt()).view_as(x_t).to(x_t.dtype)

    return eps


def _point(shape: tuple[int, ...]) -> torch.Tensor:
    n = math.prod(shape)
    return torch.linspace(-0.9, 0.7, n).view(shape)


SAMPLER_CASES = [  # (sampler, steps, eta)
    ("ddpm", None, 0.0),
    ("ddim", None, 0.0),
    ("ddim", 10, 0.0),
    ("ddim", T, 1.0),
    ("ddim", 10, 1.0),
    ("dpmpp-2m", 10, 0.0),  # the probability-flow samplers end with D(x; sigma_0) at t = 0: the point itself
    ("euler", 10, 0.0),
    ("heun", 10, 0.0),
    ("ode", None, 0.0),
]


@pytest.mark.parametrize("sampler, steps, eta", SAMPLER_CASES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SCHEDULES)
def test_single_point_oracle_recovers_the_point(name, shape, sampler, steps, eta):
    x0_star = _point(shape)
    out = samplers.sample(
        _point_oracle(x0_star, _alphas_cumprod(name)),
        _schedule(name),
        (8, *shape),
        sampler=sampler,
        steps=steps,
        eta=eta,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.samples.shape == (8, *shape) and out.states is None and out.steps_left == []
    # the last step lands on the predicted x0 (no noise at t = 0 / alpha-bar = 1); float32 rounding only
    torch.testing.assert_close(out.samples, x0_star.expand(8, *shape), rtol=0, atol=1e-5)


def _levels(sampler: str, steps: int | None) -> list[int]:
    """The noise level (timestep, or -1 for data) of each recorded state when record_every = 1."""
    timesteps = list(range(T - 1, -1, -1)) if sampler == "ddpm" else samplers.ddim_timesteps(T, steps or T)
    return timesteps + [-1]


@pytest.mark.parametrize("sampler, steps, eta", [("ddpm", None, 0.0), ("ddim", 10, 1.0), ("ddim", 10, 0.0)])
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_single_point_marginals_match_the_forward_process(name, sampler, steps, eta):
    """With the exact x0, every state x_t must be distributed as q(x_t | x0*) = N(sqrt(ab) x0*, (1 - ab) I).

    This checks the noise the samplers add: e.g. DDPM with beta_t instead of beta-tilde_t as variance is ~50% off
    at t = 0, and a DDIM sigma that ignores eta changes the spread at every step.
    """
    # coordinates are independent, so 8 examples of 500 coordinates give 4000 standardised draws per state
    # (a batch of thousands would make every per-example gather a threaded kernel: slow on a busy machine)
    m = 8 * 500
    x0_star = torch.linspace(-1, 1, 500)
    ab = _alphas_cumprod(name)
    out = samplers.sample(
        _point_oracle(x0_star, ab),
        _schedule(name),
        (8, 500),
        sampler=sampler,
        steps=steps,
        eta=eta,
        generator=torch.Generator().manual_seed(1),
        record_every=1,
    )
    levels = _levels(sampler, steps)
    assert out.states.shape == (len(levels), 8, 500)
    # the first state is N(0, I) rather than q(x_T | x0*); the last is x0* itself (checked above)
    for state, level in zip(out.states[1:-1], levels[1:-1]):
        a = ab[level].item()
        z = (state.double() - math.sqrt(a) * x0_star) / math.sqrt(1 - a)  # should be N(0, 1) draws
        # five standard errors of the mean and of the variance of m standard normal draws
        assert abs(z.mean().item()) <= 5 / math.sqrt(m), level
        assert abs(z.var().item() - 1) <= 5 * math.sqrt(2 / m), level


@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)])
@pytest.mark.parametrize("name", SCHEDULES)
def test_two_point_oracle_hits_both_modes(name, shape):
    """Ancestral sampling with the exact denoiser of two equally likely points lands on one of them, half each."""
    n = 400
    a_pt, b_pt = -torch.ones(shape), torch.ones(shape)
    out = samplers.sample(
        _two_point_oracle(a_pt, b_pt, _alphas_cumprod(name)),
        _schedule(name),
        (n, *shape),
        sampler="ddpm",
        generator=torch.Generator().manual_seed(2),
    )
    flat = out.samples.flatten(1)
    dist_a = (flat - a_pt.flatten()).abs().amax(1)
    dist_b = (flat - b_pt.flatten()).abs().amax(1)
    assert (torch.minimum(dist_a, dist_b) < 1e-2).all()
    assert 0.3 * n <= (dist_a < dist_b).sum().item() <= 0.7 * n


@pytest.mark.parametrize(
    "sampler, steps, record_every, expected",
    [
        ("ddim", 10, 3, [10, 7, 4, 1, 0]),
        ("ddim", 10, 1, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
        ("ddim", 10, 10, [10, 0]),
        ("ddim", 10, 25, [10, 0]),
        ("ddpm", None, 40, [100, 60, 20, 0]),
    ],
)
def test_record_every(sampler, steps, record_every, expected):
    shape = (5, 1, 2, 3)
    ab = _alphas_cumprod("linear")
    out = samplers.sample(
        _point_oracle(_point(shape[1:]), ab),
        _schedule("linear"),
        shape,
        sampler=sampler,
        steps=steps,
        eta=1.0,
        generator=torch.Generator().manual_seed(3),
        record_every=record_every,
    )
    assert out.steps_left == expected
    assert out.states.shape == (len(expected), *shape)
    assert torch.equal(out.states[0], torch.randn(shape, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(out.states[-1], out.samples)


@pytest.mark.parametrize("sampler, steps", [("ddpm", None), ("ddim", 50)])
def test_clip_keeps_a_slightly_wrong_predictor_in_range(sampler, steps):
    """Why clip matters: x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab) multiplies any error in eps by 1 / sqrt(ab), about
    2e4 at t = T - 1 of the cosine schedule (T = 1000), so a slightly wrong predictor puts the predicted x0 far outside
    the data's range; clipping the predicted x0 to the data's bounds keeps every step, and the samples, inside them.
    """
    shape = (16, 2)
    x0_star = torch.tensor([0.3, -0.2])
    schedule = NoiseSchedule(1000, "cosine")
    exact = _point_oracle(x0_star, _alphas_cumprod("cosine", 1000, beta_start=1e-4, beta_end=0.02))
    bias = 0.05 * torch.randn(shape, generator=torch.Generator().manual_seed(4))

    def wrong(x_t, t):
        return exact(x_t, t) + bias

    x_T, t_last = torch.randn(shape), torch.full((16,), 999)
    assert (schedule.predict_x0(x_T, wrong(x_T, t_last), t_last) - x0_star).abs().max() > 100

    def run(clip):
        return samplers.sample(
            wrong, schedule, shape, sampler=sampler, steps=steps, clip=clip, generator=torch.Generator().manual_seed(5)
        ).samples

    lo, hi = torch.tensor([-1.0, -0.5]), torch.tensor([1.0, 0.5])
    clipped = run((lo, hi))
    assert torch.isfinite(clipped).all()
    assert ((clipped >= lo) & (clipped <= hi)).all()
    assert ((clipped - x0_star).abs() < 0.05).all()  # and still close to the data
    # float bounds that exclude x0*[0] = 0.3: the samples must sit at the bound, which proves the clip is applied
    tight = run((-0.25, 0.25))
    assert ((tight >= -0.25) & (tight <= 0.25)).all()
    torch.testing.assert_close(tight[:, 0], torch.full((16,), 0.25), rtol=0, atol=1e-3)


@pytest.mark.parametrize("T_, steps", [(1000, 50), (1000, 1000), (1000, 7), (50, 1), (50, 3), (50, 49), (1, 1)])
def test_ddim_timesteps(T_, steps):
    ts = samplers.ddim_timesteps(T_, steps)
    assert len(ts) == steps and len(set(ts)) == steps
    assert ts[0] == T_ - 1 and ts[-1] >= 0
    assert all(a > b for a, b in zip(ts, ts[1:]))
    assert all(isinstance(t, int) for t in ts)


@pytest.mark.parametrize("steps", [0, -1, 51])
def test_ddim_timesteps_out_of_range(steps):
    with pytest.raises(UsageError):
        samplers.ddim_timesteps(50, steps)


def _zero_eps(x_t, t):
    return torch.zeros_like(x_t)


def test_ddpm_walks_all_steps():
    schedule = NoiseSchedule(20, "linear")
    with pytest.raises(UsageError):
        samplers.sample(_zero_eps, schedule, (2, 2), sampler="ddpm", steps=10)
    assert samplers.sample(_zero_eps, schedule, (2, 2), sampler="ddpm", steps=20).samples.shape == (2, 2)


def test_ddim_steps_out_of_range_in_sample():
    with pytest.raises(UsageError):
        samplers.sample(_zero_eps, NoiseSchedule(20, "linear"), (2, 2), sampler="ddim", steps=21)


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(UsageError) as info:
        samplers.sample(_zero_eps, NoiseSchedule(20, "linear"), (2, 2), sampler="ddpn")
    for name in ("ddpm", "ddim"):
        assert name in str(info.value)


@pytest.mark.parametrize("sampler, eta", [("ddpm", 0.0), ("ddim", 1.0)])
def test_same_seed_same_samples(sampler, eta):
    schedule = _schedule("sigmoid")
    eps = _two_point_oracle(-torch.ones(3), torch.ones(3), _alphas_cumprod("sigmoid"))

    def draw(seed):
        return samplers.sample(
            eps, schedule, (6, 3), sampler=sampler, eta=eta, generator=torch.Generator().manual_seed(seed)
        ).samples

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))
