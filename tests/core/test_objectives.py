"""Training targets and their inversion back to noise, against the closed forms written out here in float64."""

from __future__ import annotations

import pytest
import torch

from tiny_diffusion.core import objectives
from tiny_diffusion.core.schedule import NoiseSchedule, make_betas
from tiny_diffusion.errors import UsageError

SCHEDULES = ["linear", "cosine"]
SHAPES = [(), (2,), (3, 4, 5)]
T = 1000
EPS32 = torch.finfo(torch.float32).eps


def _case(name: str, shape: tuple[int, ...]):
    """schedule, float64 coefficients at t as (N, 1, ..., 1), and float32 x0, noise, x_t, t over the whole chain."""
    g = torch.Generator().manual_seed(0)
    t = torch.cat([torch.tensor([0, 1, 2, T // 2, T - 2, T - 1]), torch.randint(0, T, (4,), generator=g)])
    x0 = torch.randn((len(t), *shape), generator=g)
    noise = torch.randn((len(t), *shape), generator=g)
    betas = make_betas(name, T)
    ab = torch.cumprod(1 - betas, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    view = (-1, *([1] * len(shape)))
    b, ab, ab_prev = betas[t].view(view), ab[t].view(view), ab_prev[t].view(view)
    x_t = (ab.sqrt() * x0.double() + (1 - ab).sqrt() * noise.double()).float()
    coef = dict(
        ab=ab,
        c1=ab_prev.sqrt() * b / (1 - ab),  # Ho et al. eq. 7
        c2=(1 - b).sqrt() * (1 - ab_prev) / (1 - ab),
    )
    return NoiseSchedule(T, name), coef, x0, noise, x_t, t


def _expected_target(target: str, coef: dict, x0, noise, x_t) -> torch.Tensor:
    x0, noise, x_t = x0.double(), noise.double(), x_t.double()
    if target == "noise":
        return noise
    if target == "x0":
        return x0
    if target == "previous":
        return coef["c1"] * x0 + coef["c2"] * x_t
    return coef["ab"].sqrt() * noise - (1 - coef["ab"]).sqrt() * x0  # v (Salimans & Ho 2022, sec. 4)


def _target_tolerance(target: str, coef: dict, x0, noise, x_t) -> torch.Tensor:
    return 4 * EPS32 * (x0.abs() + noise.abs() + x_t.abs())


def _noise_tolerance(target: str, coef: dict, x0, noise, x_t) -> torch.Tensor:
    """How far float32 rounding can move the recovered noise: a few ulps of the terms, times the conditioning.

    x0 -> noise divides by sqrt(1 / ab - 1), which amplifies the rounding of x_t by 1 / sqrt(1 - ab) (100 at t = 0);
    previous -> x0 also divides by c1, which is ~1e-4 for the linear schedule at t = T - 1.
    """
    ab = coef["ab"]
    size = x0.abs() + noise.abs() + x_t.abs()
    if target == "x0":
        return 8 * EPS32 * size / (1 - ab).sqrt()
    if target == "previous":
        return 8 * EPS32 * size * ((1 + 2 * coef["c2"] / coef["c1"]) * ab.sqrt() + 1) / (1 - ab).sqrt()
    return 8 * EPS32 * size


def _assert_within(actual: torch.Tensor, expected: torch.Tensor, tol: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    err = (actual.double() - expected.double()).abs()
    excess = (err - tol).max().item()
    assert excess <= 0, f"max error {err.max().item():.3g} exceeds its tolerance by {excess:.3g}"


def test_targets_are_the_documented_four():
    assert sorted(objectives.TARGETS) == sorted(["noise", "x0", "previous", "v"])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("target", objectives.TARGETS)
def test_training_target_closed_form(target, name, shape):
    schedule, coef, x0, noise, x_t, t = _case(name, shape)
    got = objectives.training_target(target, schedule, x0, noise, x_t, t)
    expected = _expected_target(target, coef, x0, noise, x_t)
    _assert_within(got, expected, _target_tolerance(target, coef, x0, noise, x_t))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("target", objectives.TARGETS)
def test_output_to_noise_inverts_the_target(target, name, shape):
    schedule, coef, x0, noise, x_t, t = _case(name, shape)
    output = _expected_target(target, coef, x0, noise, x_t).float()  # a perfect network's output
    recovered = objectives.output_to_noise(target, schedule, output, x_t, t)
    _assert_within(recovered, noise, _noise_tolerance(target, coef, x0, noise, x_t))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("target", objectives.TARGETS)
def test_noise_predictor_wraps_a_perfect_model(target, shape):
    schedule, coef, x0, noise, x_t, t = _case("cosine", shape)
    calls = []

    def model(x, tt):  # returns the exact target for the (x_t, t) it is asked about
        calls.append(1)
        assert x is x_t and tt is t
        return _expected_target(target, coef, x0, noise, x_t).float()

    noise_predictor = objectives.noise_predictor(model, schedule, target)
    _assert_within(noise_predictor(x_t, t), noise, _noise_tolerance(target, coef, x0, noise, x_t))
    assert len(calls) == 1


def test_v_target_matches_diffusers_get_velocity():
    diffusers = pytest.importorskip("diffusers")
    schedule, _, x0, noise, x_t, t = _case("linear", (1, 4, 4))
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear")
    torch.testing.assert_close(
        objectives.training_target("v", schedule, x0, noise, x_t, t),
        scheduler.get_velocity(x0, noise, t),
        rtol=1e-5,
        atol=2e-6,
    )


@pytest.mark.parametrize("call", ["training_target", "output_to_noise", "noise_predictor"])
def test_unknown_target_lists_valid_names(call):
    schedule, _, x0, noise, x_t, t = _case("linear", (2,))
    args = {
        "training_target": ("eps", schedule, x0, noise, x_t, t),
        "output_to_noise": ("eps", schedule, noise, x_t, t),
        "noise_predictor": (lambda x, tt: x, schedule, "eps"),
    }[call]
    with pytest.raises(UsageError) as info:
        getattr(objectives, call)(*args)
    for name in objectives.TARGETS:
        assert name in str(info.value)


@pytest.mark.parametrize("target", objectives.TARGETS)
@pytest.mark.parametrize("name", SCHEDULES)
def test_min_snr_weights_give_every_target_the_same_loss_in_x0_terms(target, name):
    # an error e in the estimate of x0 (x_t fixed) is some error in the target; weighted, it must cost
    # min(SNR, gamma) |e|^2 whatever the target, as Hang et al. define the weighting
    schedule = NoiseSchedule(T, name)
    g = torch.Generator().manual_seed(1)
    t = torch.tensor([0, 1, 10, T // 4, T // 2, T - 2])
    x0, noise = torch.randn(len(t), 3, generator=g), torch.randn(len(t), 3, generator=g)
    x_t = schedule.add_noise(x0, noise, t)
    wrong_x0 = x0 + 1e-2 * torch.randn(len(t), 3, generator=g)
    wrong_noise = schedule.predict_noise(x_t, wrong_x0, t)
    error = (
        (
            objectives.training_target(target, schedule, wrong_x0, wrong_noise, x_t, t)
            - objectives.training_target(target, schedule, x0, noise, x_t, t)
        )
        .square()
        .sum(dim=1)
    )
    ab = schedule.alphas_cumprod[t].double()
    expected = (ab / (1 - ab)).clamp(max=5.0) * (wrong_x0 - x0).double().square().sum(dim=1)
    weighted = objectives.loss_weights(target, schedule, t, 5.0).double() * error.double()
    torch.testing.assert_close(weighted, expected, rtol=2e-2, atol=1e-7)
