"""The noise levels training visits (core.noise_levels) against scipy's normal distribution, and the uniform draw
unchanged from the original's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import TINY_POINTS
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.noise_levels import draw_flow_times, draw_timesteps, log_normal_probabilities
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs.files import read_config


def _log_sigma(schedule: NoiseSchedule) -> np.ndarray:
    alphas_cumprod = schedule.alphas_cumprod.double().numpy()
    return 0.5 * np.log((1 - alphas_cumprod) / alphas_cumprod)


@pytest.mark.parametrize("beta_schedule", ["linear", "cosine"])
@pytest.mark.parametrize("mean,std", [(-1.0, 1.6), (-1.2, 1.2), (0.5, 0.8)])
def test_each_step_takes_the_normal_mass_of_its_share_of_log_sigma(beta_schedule, mean, std):
    schedule = NoiseSchedule(1000, beta_schedule)
    log_sigma = _log_sigma(schedule)
    p = log_normal_probabilities(schedule, mean, std).numpy()
    assert p.shape == (1000,) and np.isclose(p.sum(), 1.0) and (p >= 0).all()
    # scipy's normal: the mass between the midpoints of ln sigma around each inner step, over the mass inside
    middles = (log_sigma[1:] + log_sigma[:-1]) / 2
    edges = np.concatenate([[2 * log_sigma[0] - middles[0]], middles, [2 * log_sigma[-1] - middles[-1]]])
    mass = np.diff(stats.norm(mean, std).cdf(edges))
    np.testing.assert_allclose(p, mass / mass.sum(), rtol=1e-4, atol=1e-9)
    # the steps' ln sigma, weighted by p, have the normal's mean and spread where the schedule covers the bulk
    assert abs((p * log_sigma).sum() - mean) < 0.05
    assert abs(np.sqrt((p * (log_sigma - mean) ** 2).sum()) - std) < 0.05


def test_drawn_steps_follow_their_probabilities():
    schedule = NoiseSchedule(500, "linear")
    steps = draw_timesteps(
        "log-normal", schedule, 200_000, torch.Generator().manual_seed(0), mean=-1.0, std=1.6
    ).numpy()
    assert steps.min() >= 0 and steps.max() < 500
    # the draw's ln sigma against the discretised normal's distribution (a two-sample test on one side is exact)
    log_sigma = _log_sigma(schedule)
    expected = np.cumsum(log_normal_probabilities(schedule, -1.0, 1.6).numpy())
    observed = np.cumsum(np.bincount(steps, minlength=500)) / len(steps)
    assert np.abs(observed - expected).max() < 0.005  # Kolmogorov-Smirnov distance; 1.36 / sqrt(n) = 0.003
    # most of the draws land where the dino's detail is decided, not in the blur uniform steps spend half on
    between = (log_sigma[steps] > np.log(0.02)) & (log_sigma[steps] < np.log(0.3))
    assert between.mean() > 0.3


def test_uniform_steps_are_the_original_draw_bit_for_bit():
    schedule = NoiseSchedule(50, "linear")
    drawn = draw_timesteps("uniform", schedule, 4096, torch.Generator().manual_seed(3), mean=0.0, std=1.0)
    assert torch.equal(drawn, torch.randint(0, 50, (4096,), generator=torch.Generator().manual_seed(3)))


def test_flow_times_are_logit_normal():
    t = draw_flow_times("log-normal", 100_000, torch.Generator().manual_seed(1), mean=-0.5, std=1.3).numpy()
    assert ((t > 0) & (t < 1)).all()
    assert stats.kstest(np.log(t / (1 - t)), stats.norm(-0.5, 1.3).cdf).statistic < 0.01
    uniform = draw_flow_times("uniform", 1000, torch.Generator().manual_seed(1), mean=0.0, std=1.0)
    assert torch.equal(uniform, torch.rand(1000, generator=torch.Generator().manual_seed(1)))


def test_bad_noise_level_settings_are_refused_in_one_line():
    schedule = NoiseSchedule(500, "linear")
    with pytest.raises(UsageError, match="unknown timestep sampling 'gamma'; choose from uniform, log-normal"):
        draw_timesteps("gamma", schedule, 4, torch.Generator(), mean=0.0, std=1.0)
    with pytest.raises(UsageError, match="puts no mass on this schedule's noise levels"):
        log_normal_probabilities(schedule, 200.0, 0.1)
    with pytest.raises(UsageError, match="log_sigma_std must be positive, got 0.0"):
        TrainConfig.from_dict({"log_sigma_std": 0.0})
    with pytest.raises(UsageError, match="timestep_sampling"):
        TrainConfig.from_dict({"timestep_sampling": "gamma"})


def test_points_default_to_log_normal_and_the_original_images_and_study_to_uniform():
    from tiny_diffusion.studies.reproduce import ORIGINAL

    assert TrainConfig.from_dict({}).timestep_sampling == "log-normal"
    assert TrainConfig.from_dict({"dataset": "mnist5k"}).timestep_sampling == "uniform"
    assert TrainConfig.from_dict({"preset": "study"}).timestep_sampling == "uniform"
    assert TrainConfig.from_dict(ORIGINAL).timestep_sampling == "uniform"


def test_a_run_made_before_the_setting_existed_reads_as_uniform(tmp_path):
    from tiny_diffusion.runs.job import train_run

    run = tmp_path / "run"
    train_run(TrainConfig.from_dict({**TINY_POINTS, "num_epochs": 1}), run, progress=False)
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["timestep_sampling"] == "log-normal"
    del meta["config"]["timestep_sampling"]  # as every run written before it was
    (run / "config.json").write_text(json.dumps(meta))
    (run / "manifest.json").unlink()  # the manifest would (rightly) call the edited file changed
    assert read_config(run).timestep_sampling == "uniform"
