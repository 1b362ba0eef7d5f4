"""The checks before training: the share of signal x_T keeps, against its closed form, and data far from unit
scale; the project's defaults (every registered set, the dino, the image default) pass them."""

import numpy as np
import pytest

import tiny_diffusion as td
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.data import DATASETS
from tiny_diffusion.data.prepare import training_data
from tiny_diffusion.eval.preflight import MAX_TERMINAL_SIGNAL, setting_warnings, terminal_signal

UNIT = np.random.default_rng(0).normal(size=(500, 2))  # points of unit scale


def _warnings(x=UNIT, **changes):
    config = td.settings(**changes)
    return [str(w) for w in setting_warnings(config, NoiseSchedule.from_settings(config), x)]


@pytest.mark.parametrize("steps", [20, 50, 100, 500, 1000])
def test_the_terminal_signal_is_sqrt_of_the_product_of_alphas(steps):
    betas = np.linspace(1e-4, 0.02, steps, dtype=np.float64)
    schedule = NoiseSchedule(steps, "linear")
    assert terminal_signal(schedule) == pytest.approx(np.sqrt(np.prod(1 - betas)), rel=1e-5)


@pytest.mark.parametrize(
    "changes, signal",
    [(dict(num_timesteps=50), "78%"), (dict(num_timesteps=100), "60%"), (dict(num_timesteps=20), "90%")],
)
def test_a_forward_process_that_does_not_reach_noise_warns_with_its_share(changes, signal):
    (message,) = _warnings(**changes)
    assert message == (
        f"x_T keeps {signal} of the signal: samples will be squashed toward the centre; "
        "raise num_timesteps or use beta_schedule cosine"
    )


@pytest.mark.parametrize(
    "changes",
    [{}, dict(num_timesteps=50, beta_schedule="cosine"), dict(dataset="mnist"), dict(dataset="digits8")],
    ids=["dino default", "cosine T=50", "mnist default", "digits8 default"],
)
def test_the_defaults_reach_noise_and_do_not_warn(changes):
    config = td.settings(**changes)
    assert terminal_signal(NoiseSchedule.from_settings(config)) <= MAX_TERMINAL_SIGNAL
    assert _warnings(np.zeros((4, 1, 8, 8)) if config.is_images else UNIT, **changes) == []


@pytest.mark.parametrize("factor", [100.0, 0.01, 30.0])
def test_points_far_from_unit_scale_without_standardize_warn(factor):
    (message,) = _warnings(UNIT * factor)
    assert message.startswith("the data's coordinates reach ") and "set standardize" in message
    assert _warnings(UNIT * factor, dataset="mine.csv") == []  # a point file standardizes by default
    assert _warnings(UNIT * factor, dataset="mine.csv", standardize=False) == [message]


def test_points_far_from_the_origin_warn_though_their_spread_is_one():
    assert len(_warnings(UNIT + 1000)) == 1


@pytest.mark.parametrize("name", DATASETS)
def test_every_registered_set_trains_with_its_defaults_without_a_warning(name):
    config = td.settings(dataset=name, num_samples=2000)
    assert _warnings(training_data(config).x, dataset=name) == []
