"""The noise schedule against closed forms (Ho et al. 2020, eqs. 4, 6-7) and against diffusers' schedulers.

Every expected value is computed here, in float64, from the formulas or by diffusers; never by the code under test.
Shapes: x is (N, *shape) with shape in SHAPES, so the same checks cover scalars, points and images.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tiny_diffusion.core import samplers
from tiny_diffusion.core.schedule import BETA_SCHEDULES, NoiseSchedule, extract, make_betas
from tiny_diffusion.errors import UsageError

SCHEDULES = ["linear", "quadratic", "cosine", "sigmoid"]
SHAPES = [(), (1,), (2,), (3, 4, 5)]
EPS32 = torch.finfo(torch.float32).eps
T_TEST = 200  # long enough for every schedule to reach alpha-bar << 1, short enough to be instant


def _batch(shape: tuple[int, ...], T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x0, noise (N, *shape) float32 and t (N,) covering both ends of the chain."""
    g = torch.Generator().manual_seed(seed)
    t = torch.cat([torch.tensor([0, 1, T // 2, T - 2, T - 1]), torch.randint(0, T, (3,), generator=g)])
    x0 = torch.randn((len(t), *shape), generator=g)
    noise = torch.randn((len(t), *shape), generator=g)
    return x0, noise, t


def _per_example(a: torch.Tensor, t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """a[t] as (N, 1, ..., 1), written independently of ``extract``."""
    return a[t].view(-1, *([1] * len(shape)))


def _assert_within(actual: torch.Tensor, expected: torch.Tensor, tol: torch.Tensor) -> None:
    """|actual - expected| <= tol element by element (tol broadcasts), compared in float64."""
    assert actual.shape == expected.shape
    err = (actual.double() - expected.double()).abs()
    excess = (err - tol).max().item()
    assert excess <= 0, f"max error {err.max().item():.3g} exceeds its tolerance by {excess:.3g}"


# --- betas: closed forms, independent of diffusers ---------------------------------------------------------------


def _expected_betas(name: str, T: int, start: float, end: float) -> np.ndarray:
    if name != "cosine":
        s = np.arange(T) / (T - 1)  # 0 .. 1
    if name == "linear":
        return start + (end - start) * s
    if name == "quadratic":
        return (math.sqrt(start) + (math.sqrt(end) - math.sqrt(start)) * s) ** 2
    if name == "sigmoid":
        return start + (end - start) / (1 + np.exp(-(12 * s - 6)))
    # cosine: alpha-bar(u) = cos^2((u + 0.008) / 1.008 * pi / 2), betas from consecutive ratios, capped at 0.999
    f = np.cos((np.arange(T + 1) / T + 0.008) / 1.008 * np.pi / 2) ** 2
    return np.minimum(1 - f[1:] / f[:-1], 0.999)


def test_registry_holds_the_tested_schedules():
    assert sorted(BETA_SCHEDULES) == sorted(SCHEDULES)


@pytest.mark.parametrize("T", [1, 2, 50, 1000])
@pytest.mark.parametrize("name", SCHEDULES)
def test_betas_closed_form(name, T):
    betas = make_betas(name, T, 1e-4, 0.02)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    if T == 1 and name != "cosine":  # the closed forms above divide by T - 1; a one-point linspace is its start
        expected = 1e-4 if name != "sigmoid" else 1e-4 + (0.02 - 1e-4) / (1 + math.exp(6))  # sigmoid(-6)
        assert betas.tolist() == pytest.approx([expected], rel=1e-12)
        return
    np.testing.assert_allclose(betas.numpy(), _expected_betas(name, T, 1e-4, 0.02), rtol=1e-12, atol=1e-15)


def test_cosine_alphas_cumprod_follows_cos_squared():
    """Nichol & Dhariwal eq. 17: alpha-bar_t = f(t) / f(0), wherever the 0.999 cap did not bite."""
    T = 1000
    ab = torch.cumprod(1 - make_betas("cosine", T), 0).numpy()
    f = np.cos((np.arange(1, T + 1) / T + 0.008) / 1.008 * np.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    np.testing.assert_allclose(ab[:-1], f[:-1], rtol=1e-9)


# --- NoiseSchedule: closed forms ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEDULES)
def test_alphas_cumprod_is_cumprod_of_one_minus_betas(name):
    schedule = NoiseSchedule(T_TEST, name)
    betas = make_betas(name, T_TEST)
    expected = torch.cumprod(1 - betas, 0)
    assert schedule.alphas_cumprod.dtype == torch.float32
    torch.testing.assert_close(schedule.betas.double(), betas, rtol=1e-6, atol=0)
    torch.testing.assert_close(schedule.alphas.double(), 1 - betas, rtol=1e-6, atol=0)
    torch.testing.assert_close(schedule.alphas_cumprod.double(), expected, rtol=1e-6, atol=0)
    expected_prev = torch.cat([torch.ones(1, dtype=torch.float64), expected[:-1]])  # alpha-bar_{-1} = 1
    torch.testing.assert_close(schedule.alphas_cumprod_prev.double(), expected_prev, rtol=1e-6, atol=0)
    assert len(schedule) == T_TEST


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SCHEDULES)
def test_add_noise_closed_form(name, shape):
    schedule = NoiseSchedule(T_TEST, name)
    x0, noise, t = _batch(shape, T_TEST)
    ab = _per_example(torch.cumprod(1 - make_betas(name, T_TEST), 0), t, shape)
    x_t = schedule.add_noise(x0, noise, t)
    expected = ab.sqrt() * x0.double() + (1 - ab).sqrt() * noise.double()
    _assert_within(x_t, expected, 4 * EPS32 * (ab.sqrt() * x0.abs() + (1 - ab).sqrt() * noise.abs()))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SCHEDULES)
def test_predict_x0_inverts_add_noise(name, shape):
    schedule = NoiseSchedule(T_TEST, name)
    x0, noise, t = _batch(shape, T_TEST)
    ab = _per_example(torch.cumprod(1 - make_betas(name, T_TEST), 0), t, shape)
    recovered = schedule.predict_x0(schedule.add_noise(x0, noise, t), noise, t)
    # float32 rounding of x_t is amplified by 1 / sqrt(alpha-bar_t) (about 4e3 at the cosine schedule's last step)
    _assert_within(recovered, x0, 8 * EPS32 * (x0.abs() + noise.abs()) / ab.sqrt())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SCHEDULES)
def test_predict_noise_inverts_predict_x0(name, shape):
    schedule = NoiseSchedule(T_TEST, name)
    x_t, noise, t = _batch(shape, T_TEST)
    ab = _per_example(torch.cumprod(1 - make_betas(name, T_TEST), 0), t, shape)
    x0 = schedule.predict_x0(x_t, noise, t)
    expected = (x_t.double() - (1 - ab).sqrt() * noise.double()) / ab.sqrt()
    _assert_within(x0, expected, 4 * EPS32 * (x_t.abs() + noise.abs()) / ab.sqrt())
    # dividing by sqrt(1 / alpha-bar - 1) amplifies rounding by 1 / sqrt(1 - alpha-bar_t) (100 at t = 0)
    _assert_within(schedule.predict_noise(x_t, x0, t), noise, 8 * EPS32 * (x_t.abs() + noise.abs()) / (1 - ab).sqrt())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SCHEDULES)
def test_posterior_matches_ho_eqs_6_7(name, shape):
    schedule = NoiseSchedule(T_TEST, name)
    x0, x_t, t = _batch(shape, T_TEST)
    betas = make_betas(name, T_TEST)
    ab = torch.cumprod(1 - betas, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])  # alpha-bar_{-1} = 1
    b, a, ab, ab_prev = (_per_example(v, t, shape) for v in (betas, 1 - betas, ab, ab_prev))
    c1 = ab_prev.sqrt() * b / (1 - ab)
    c2 = a.sqrt() * (1 - ab_prev) / (1 - ab)
    mean, variance = schedule.posterior(x0, x_t, t)
    _assert_within(mean, c1 * x0.double() + c2 * x_t.double(), 4 * EPS32 * (c1 * x0.abs() + c2 * x_t.abs()))
    assert variance.shape == (len(t),) + (1,) * len(shape)
    torch.testing.assert_close(variance.double(), (1 - ab_prev) / (1 - ab) * b, rtol=1e-6, atol=0)
    assert (variance[t == 0] == 0).all()  # no noise on the last step


def test_linear_schedule_with_50_steps_leaves_signal():
    """The original tiny-diffusion's flaw: T = 50 with betas 1e-4..0.02 never reaches noise (alpha-bar_T ~ 0.60)."""
    assert abs(NoiseSchedule(50, "linear").alphas_cumprod[-1].item() - 0.60) < 0.01
    assert NoiseSchedule(1000, "linear").alphas_cumprod[-1].item() < 1e-4


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(UsageError) as info:
        NoiseSchedule(10, "cosin")
    for name in SCHEDULES:
        assert name in str(info.value)
    with pytest.raises(UsageError):
        make_betas("nope", 10)


@pytest.mark.parametrize("T", [0, -3])
def test_nonpositive_num_timesteps_is_a_usage_error(T):
    with pytest.raises(UsageError):
        NoiseSchedule(T, "linear")


@pytest.mark.parametrize("shape", SHAPES)
def test_extract_broadcasts(shape):
    a = torch.arange(10.0) * 1.5
    t = torch.tensor([3, 7, 0])
    out = extract(a, t, torch.Size((3, *shape)))
    assert out.shape == (3,) + (1,) * len(shape)
    full = out * torch.ones(3, *shape)
    for i, ti in enumerate(t.tolist()):
        assert (full[i] == 1.5 * ti).all()


# --- diffusers as an oracle ---------------------------------------------------------------------------------------

DIFFUSERS_NAMES = {  # ours -> diffusers' beta_schedule
    "linear": "linear",
    "quadratic": "scaled_linear",
    "cosine": "squaredcos_cap_v2",
    "sigmoid": "sigmoid",
}


def _ddpm_scheduler(name: str, T: int):
    diffusers = pytest.importorskip("diffusers")
    return diffusers.DDPMScheduler(
        num_train_timesteps=T, beta_schedule=DIFFUSERS_NAMES[name], clip_sample=False, variance_type="fixed_small"
    )


def _ddim_scheduler(name: str, T: int, steps: int):
    diffusers = pytest.importorskip("diffusers")
    # DDIMScheduler has no "sigmoid"; hand it diffusers' own sigmoid betas (from DDPMScheduler) instead
    extra = (
        {"trained_betas": _ddpm_scheduler(name, T).betas.numpy()}
        if name == "sigmoid"
        else {"beta_schedule": DIFFUSERS_NAMES[name]}
    )
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=T, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing", **extra
    )
    scheduler.set_timesteps(steps)
    return scheduler


def _in_float64(scheduler):
    """Recompute diffusers' coefficients in float64 from its own (float32) betas.

    diffusers forms beta_t = 1 - alpha-bar_t / alpha-bar_{t-1} in float32 inside ``step``; at small t that cancellation
    loses 3-4 digits (its posterior variance at t = 1 is off by up to ~1e-3 relative, ours by ~1e-7), so a float32
    comparison could only be loose. In float64 the step formulas can be compared tightly.
    """
    scheduler.betas = scheduler.betas.double()
    scheduler.alphas = 1.0 - scheduler.betas
    scheduler.alphas_cumprod = torch.cumprod(scheduler.alphas, 0)
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    return scheduler


@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("name", SCHEDULES)
def test_betas_match_diffusers(name, T):
    ours, theirs = NoiseSchedule(T, name), _ddpm_scheduler(name, T)
    torch.testing.assert_close(ours.betas, theirs.betas, rtol=1e-6, atol=0)
    # diffusers multiplies float32 alphas; for cosine its float32 1 - 0.999 (the capped last beta) is 1.3e-5 off
    torch.testing.assert_close(ours.alphas_cumprod, theirs.alphas_cumprod, rtol=2e-5, atol=0)


@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)])
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("name", SCHEDULES)
def test_add_noise_matches_diffusers(name, T, shape):
    ours, theirs = NoiseSchedule(T, name), _in_float64(_ddpm_scheduler(name, T))
    x0, noise, t = (v.double() if v.is_floating_point() else v for v in _batch(shape, T, seed=1))
    # float64 data: diffusers then computes sqrt(1 - alpha-bar) in float64 too (in float32 it loses digits at small t)
    torch.testing.assert_close(ours.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t), rtol=1e-6, atol=1e-7)


def _step_times(T: int) -> list[int]:
    return [0, 1, T // 2, T - 1]


@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)])
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("name", SCHEDULES)
def test_ddpm_step_matches_diffusers(name, T, shape):
    """Full ancestral steps, noise included: both draw torch.randn(x_t.shape) from the generator they are given."""
    ours, theirs = NoiseSchedule(T, name), _in_float64(_ddpm_scheduler(name, T))
    g = torch.Generator().manual_seed(2)
    x_t = torch.randn((5, *shape), generator=g, dtype=torch.float64)
    predicted_noise = torch.randn((5, *shape), generator=g, dtype=torch.float64)
    for t in _step_times(T):
        got = samplers.ddpm_step(ours, predicted_noise, x_t, t, generator=torch.Generator().manual_seed(t))
        want = theirs.step(predicted_noise, t, x_t, generator=torch.Generator().manual_seed(t)).prev_sample
        # relative to the step's largest value: at the cosine schedule's last step x0 is predicted as ~1e4-sized terms
        # that cancel, and diffusers' float32 beta = 0.999 there puts alpha-bar 1.3e-5 off
        atol = 2e-5 * want.abs().max().item()
        torch.testing.assert_close(got, want, rtol=2e-5, atol=atol, msg=lambda m, t=t: f"t={t}: {m}")
        if t > 0:
            torch.testing.assert_close(ours.posterior_variance[t].double(), theirs._get_variance(t), rtol=1e-6, atol=0)


@pytest.mark.parametrize("T, steps", [(1000, 50), (50, 10), (50, 50), (1000, 7), (1000, 3), (1000, 300), (50, 49)])
def test_ddim_timesteps_match_diffusers_trailing(T, steps):
    assert samplers.ddim_timesteps(T, steps) == _ddim_scheduler("linear", T, steps).timesteps.tolist()


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("T, steps", [(1000, 50), (50, 10)])
@pytest.mark.parametrize("name", SCHEDULES)
def test_ddim_step_matches_diffusers(name, T, steps, eta):
    """Every step of a DDIM schedule, in float32; eta = 1 draws its noise as diffusers does (same generator, shape)."""
    ours, theirs = NoiseSchedule(T, name), _ddim_scheduler(name, T, steps)
    timesteps = samplers.ddim_timesteps(T, steps)
    assert timesteps == theirs.timesteps.tolist()
    g = torch.Generator().manual_seed(3)
    x_t, predicted_noise = torch.randn(6, 1, 4, 4, generator=g), torch.randn(6, 1, 4, 4, generator=g)
    for t, t_prev in zip(timesteps, timesteps[1:] + [-1]):
        got = samplers.ddim_step(
            ours, predicted_noise, x_t, t, t_prev, eta=eta, generator=torch.Generator().manual_seed(t)
        )
        want = theirs.step(predicted_noise, t, x_t, eta=eta, generator=torch.Generator().manual_seed(t)).prev_sample
        # values reach ~1e3 leaving the cosine schedule's last step, hence the relative tolerance
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5, msg=lambda m, t=t: f"t={t}: {m}")


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_clipped_steps_match_diffusers(name):
    """clip=(-r, r) clips the predicted x0 as diffusers' clip_sample does; DDIM then re-derives the noise from the
    clipped x0, which is diffusers' use_clipped_model_output=True."""
    T, steps, r = 1000, 50, 0.5
    g = torch.Generator().manual_seed(4)
    x_t, predicted_noise = (
        2 * torch.randn(6, 3, generator=g, dtype=torch.float64),
        torch.randn(6, 3, generator=g).double(),
    )
    ours, ddpm = NoiseSchedule(T, name), _in_float64(_ddpm_scheduler(name, T))
    ddpm.register_to_config(clip_sample=True, clip_sample_range=r)
    for t in _step_times(T):
        got = samplers.ddpm_step(
            ours, predicted_noise, x_t, t, clip=(-r, r), generator=torch.Generator().manual_seed(t)
        )
        want = ddpm.step(predicted_noise, t, x_t, generator=torch.Generator().manual_seed(t)).prev_sample
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-6, msg=lambda m, t=t: f"ddpm t={t}: {m}")
    ddim = _ddim_scheduler(name, T, steps)
    ddim.register_to_config(clip_sample=True, clip_sample_range=r)
    x_t, predicted_noise = x_t.float(), predicted_noise.float()
    timesteps = samplers.ddim_timesteps(T, steps)
    for t, t_prev in zip(timesteps, timesteps[1:] + [-1]):
        got = samplers.ddim_step(ours, predicted_noise, x_t, t, t_prev, clip=(-r, r))
        want = ddim.step(predicted_noise, t, x_t, use_clipped_model_output=True).prev_sample
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5, msg=lambda m, t=t: f"ddim t={t}: {m}")
