"""The exact models: the ideal denoiser of a training set and the exact score of a Gaussian mixture, checked against
closed forms, scipy and autograd; ``td.exact`` sampled and measured (issue 15, parts 1 and 5); the same as flow
matching's exact velocities (``method="flow"``)."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import tiny_diffusion as td
from tiny_diffusion.cli import main
from tiny_diffusion.core import flow
from tiny_diffusion.core.exact import (
    ideal_noise,
    ideal_velocity_network,
    ideal_weights,
    ideal_x0,
    mixture_log_prob,
    mixture_noise,
    mixture_score,
    mixture_velocity_network,
    mixture_x0,
)
from tiny_diffusion.data import DATASETS, get_dataset
from tiny_diffusion.data.toys import EIGHT_GAUSSIANS_CENTERS, EIGHT_GAUSSIANS_STD
from tiny_diffusion.errors import UsageError
from tiny_diffusion.eval.evaluate import MEMORIZED_RADIUS, memorized_share

pytestmark = pytest.mark.usefixtures("one_thread")

ALPHA_BARS = [0.9999, 0.9, 0.5, 0.01]
SHAPES = [(1,), (2,), (3, 4)]  # one sample's shape: (3, 4) proves the maths rank-independent
MIXTURES = ["dino", "blobs", "8gaussians"]


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_mixture(k: int, shape: tuple[int, ...], *, diagonal: bool, seed: int = 0):
    g = _generator(seed)
    means = torch.randn((k, *shape), generator=g, dtype=torch.float64) * 3
    stds = torch.rand((k, *shape) if diagonal else (k,), generator=g, dtype=torch.float64) + 0.1
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    return means, stds, weights / weights.sum()


# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("alpha_bar", ALPHA_BARS)
@pytest.mark.parametrize("diagonal", [False, True])
def test_the_score_of_one_gaussian_is_its_closed_form(shape, alpha_bar, diagonal):
    means, stds, weights = _random_mixture(1, shape, diagonal=diagonal)
    x = torch.randn((5, *shape), generator=_generator(1), dtype=torch.float64) * 2
    s2 = stds[0] ** 2  # a number, or one variance per coordinate
    expected = -(x - math.sqrt(alpha_bar) * means[0]) / (alpha_bar * s2 + 1 - alpha_bar)
    score = mixture_score(x, alpha_bar, means, stds, weights)
    assert score.shape == x.shape
    torch.testing.assert_close(score, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        mixture_noise(x, alpha_bar, means, stds, weights), -math.sqrt(1 - alpha_bar) * expected, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("alpha_bar", ALPHA_BARS)
def test_the_ideal_denoiser_of_one_point_returns_that_point(shape, alpha_bar):
    point = torch.randn((1, *shape), generator=_generator(0), dtype=torch.float64)
    x_t = torch.randn((7, *shape), generator=_generator(1), dtype=torch.float64) * 3
    x0 = ideal_x0(x_t, alpha_bar, point)
    assert x0.shape == x_t.shape
    torch.testing.assert_close(x0, point.expand_as(x_t), rtol=0, atol=1e-12)
    expected_noise = (x_t - math.sqrt(alpha_bar) * point) / math.sqrt(1 - alpha_bar)
    torch.testing.assert_close(ideal_noise(x_t, alpha_bar, point), expected_noise, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("alpha_bar", [0.9999, 0.9, 0.5])
def test_with_far_apart_training_points_the_weights_pick_the_one_noised(alpha_bar):
    angles = torch.arange(6, dtype=torch.float64) * (2 * math.pi / 6)
    points = 50 * torch.stack((angles.cos(), angles.sin()), dim=1)  # (6, 2), 50 apart
    chosen = torch.tensor([3, 0, 5, 1, 1, 4, 2])
    noise = torch.randn((len(chosen), 2), generator=_generator(2), dtype=torch.float64)
    x_t = math.sqrt(alpha_bar) * points[chosen] + math.sqrt(1 - alpha_bar) * noise
    weights = ideal_weights(x_t, alpha_bar, points)  # (7, 6)
    assert weights.shape == (7, 6)
    torch.testing.assert_close(weights.sum(1), torch.ones(7, dtype=torch.float64))
    assert torch.equal(weights.argmax(1), chosen) and bool((weights.max(1).values > 1 - 1e-9).all())
    torch.testing.assert_close(ideal_x0(x_t, alpha_bar, points), points[chosen], rtol=0, atol=1e-6)


@pytest.mark.parametrize("alpha_bar", ALPHA_BARS)
def test_the_ideal_denoiser_is_the_mixture_of_point_masses(alpha_bar):
    points = torch.randn((40, 3), generator=_generator(3), dtype=torch.float64)
    x_t = torch.randn((25, 3), generator=_generator(4), dtype=torch.float64)
    point_masses = (points, torch.zeros(40, dtype=torch.float64), torch.full((40,), 1 / 40, dtype=torch.float64))
    torch.testing.assert_close(
        ideal_noise(x_t, alpha_bar, points), mixture_noise(x_t, alpha_bar, *point_masses), rtol=1e-9, atol=1e-9
    )


def test_the_ideal_denoiser_gives_the_same_in_chunks(monkeypatch):
    from tiny_diffusion.core import exact

    points = torch.randn((300, 2), generator=_generator(5), dtype=torch.float64)
    x_t = torch.randn((50, 2), generator=_generator(6), dtype=torch.float64)
    alpha_bar = torch.linspace(0.01, 0.999, 50, dtype=torch.float64)  # one per row
    whole = ideal_x0(x_t, alpha_bar, points)
    monkeypatch.setattr(exact, "CHUNK_ELEMENTS", 7 * 300)  # 7 rows at a time, the last chunk shorter
    torch.testing.assert_close(ideal_x0(x_t, alpha_bar, points), whole, rtol=0, atol=1e-13)
    rows = torch.stack([ideal_x0(x_t[i : i + 1], alpha_bar[i], points)[0] for i in range(50)])
    torch.testing.assert_close(rows, whole, rtol=0, atol=1e-13)


@pytest.mark.parametrize("alpha_bar", ALPHA_BARS)
@pytest.mark.parametrize("diagonal", [False, True])
def test_the_mixture_log_density_matches_scipy(alpha_bar, diagonal):
    means, stds, weights = _random_mixture(3, (2,), diagonal=diagonal, seed=7)
    x = torch.randn((20, 2), generator=_generator(8), dtype=torch.float64) * 3
    s2 = (stds if diagonal else stds[:, None].expand(3, 2)).numpy() ** 2
    components = [
        multivariate_normal(math.sqrt(alpha_bar) * means[k].numpy(), np.diag(alpha_bar * s2[k] + 1 - alpha_bar)).logpdf(
            x.numpy()
        )
        for k in range(3)
    ]
    expected = logsumexp(np.stack(components) + np.log(weights.numpy())[:, None], axis=0)
    np.testing.assert_allclose(mixture_log_prob(x, alpha_bar, means, stds, weights).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("name", MIXTURES + ["random 3-D"])
@pytest.mark.parametrize("alpha_bar", ALPHA_BARS)
def test_the_mixture_noise_is_minus_sqrt_one_minus_alpha_bar_times_the_autograd_score(name, alpha_bar):
    if name == "random 3-D":
        means, stds, weights = _random_mixture(4, (3,), diagonal=True, seed=9)
    else:
        mixture = get_dataset(name).mixture()
        means, stds, weights = (torch.tensor(v) for v in (mixture.means, mixture.stds, mixture.weights))
    # points near the data and between its parts, where responsibilities are split
    x = means[torch.randint(len(means), (64,), generator=_generator(10))] * math.sqrt(alpha_bar)
    x = (x + 0.3 * torch.randn(x.shape, generator=_generator(11), dtype=torch.float64)).requires_grad_()
    (score,) = torch.autograd.grad(mixture_log_prob(x, alpha_bar, means, stds, weights).sum(), x)
    torch.testing.assert_close(mixture_score(x.detach(), alpha_bar, means, stds, weights), score, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        mixture_noise(x.detach(), alpha_bar, means, stds, weights), -math.sqrt(1 - alpha_bar) * score, rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("alpha_bar", ALPHA_BARS)
@pytest.mark.parametrize("diagonal", [False, True])
def test_the_mixture_s_posterior_mean_is_tweedie_s_from_its_score(alpha_bar, diagonal):
    """E[x_0 | x_t] = (x_t + (1 - ab) score) / sqrt(ab) (Tweedie); and at ab = 0 (pure noise) the mixture's mean."""
    means, stds, weights = _random_mixture(3, (2,), diagonal=diagonal, seed=12)
    x = torch.randn((20, 2), generator=_generator(13), dtype=torch.float64) * 2
    tweedie = (x + (1 - alpha_bar) * mixture_score(x, alpha_bar, means, stds, weights)) / math.sqrt(alpha_bar)
    torch.testing.assert_close(mixture_x0(x, alpha_bar, means, stds, weights), tweedie, rtol=1e-9, atol=1e-9)
    expected_mean = (weights[:, None] * means).sum(0).expand_as(x)
    torch.testing.assert_close(mixture_x0(x, 0.0, means, stds, weights), expected_mean, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- flow matching's exact velocities


def _velocity_from_the_path(x: torch.Tensor, t: float, points: torch.Tensor) -> torch.Tensor:
    """E[noise - x_0 | x_t] of a point set, written straight from the flow's path: given x_i, x_t is
    N((1 - t) x_i, t^2 I), so x0* = sum_i softmax_i(-|x_t - (1 - t) x_i|^2 / (2 t^2)) x_i, and v = (x_t - x0*) / t."""
    d2 = ((x[:, None, :] - (1 - t) * points[None]) ** 2).sum(-1)
    return (x - torch.softmax(-d2 / (2 * t**2), dim=1) @ points) / t


@pytest.mark.parametrize("t", [0.02, 0.3, 0.7, 1.0])
def test_the_ideal_velocity_is_the_one_written_from_the_flow_s_path(t):
    points = torch.randn((50, 2), generator=_generator(14), dtype=torch.float64)
    x = torch.randn((30, 2), generator=_generator(15), dtype=torch.float64) * 1.5
    network = ideal_velocity_network(points)
    scaled = torch.full((30,), t * flow.TIME_SCALE, dtype=torch.float64)
    torch.testing.assert_close(network(x, scaled), _velocity_from_the_path(x, t, points), rtol=1e-7, atol=1e-7)
    # at t = 0 the noise is independent of x_0 = x_t: E[noise - x_0 | x_0] = -x_0
    torch.testing.assert_close(network(x, torch.zeros(30)), -x)


@pytest.mark.parametrize("name", ["blobs", "8gaussians"])
def test_the_exact_flow_s_likelihood_is_scipy_s_density_of_the_clean_data(name):
    """The flow's own ODE from the data itself at t = 0 to N(0, I) at t = 1, driven by the exact velocity: the
    mixture's clean density, to the solver's tolerance."""
    model = td.exact(name, method="flow")
    assert model.is_flow and model.config.method == "flow"
    mixture = get_dataset(name).mixture()
    points = td.datasets.sample(name, 100, seed=9)
    density = sum(
        w * multivariate_normal(mu, np.diag(np.broadcast_to(s, (2,)) ** 2)).pdf(points)
        for mu, s, w in zip(mixture.means, mixture.stds, mixture.weights)
    )
    np.testing.assert_allclose(model.log_prob(points), np.log(density), atol=5e-3)


@pytest.mark.parametrize("name", ["8gaussians", "blobs"])
def test_the_ideal_velocity_reproduces_training_points_and_the_exact_mixture_s_does_not(name):
    """euler's last step lands on the ideal x0 at t = 1/200, where each sample's posterior sits on one point (the
    field is stiff there: the adaptive ode's steps, chosen for the whole batch, can stop short of the points)."""
    ideal = td.exact(name, num_samples=200, kind="ideal", method="flow")
    assert memorized_share(ideal.sample(500, seed=5, sampler="euler", steps=200), ideal.config) > 0.95
    mixture = td.exact(name, num_samples=200, kind="mixture", method="flow")
    assert memorized_share(mixture.sample(500, seed=5, sampler="euler", steps=200), mixture.config) < 0.01


def test_the_exact_flow_of_a_mixture_draws_each_component_as_often_as_its_weight():
    network = mixture_velocity_network(
        torch.tensor([[-1.0, 0.5], [1.0, -0.25]]), torch.tensor([0.2, 0.3]), torch.tensor([0.3, 0.7])
    )
    n = 4000
    out = flow.sample(flow.velocity_predictor(network), (n, 2), sampler="midpoint", steps=50, generator=_generator(16))
    left = out.samples[:, 0] < 0
    assert abs(float(left.double().mean()) - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    for members, mean, std in ((out.samples[left], [-1.0, 0.5], 0.2), (out.samples[~left], [1.0, -0.25], 0.3)):
        assert ((members.mean(0) - torch.tensor(mean)).abs() < 5 * std / math.sqrt(len(members))).all()
        assert ((members.std(0) / std - 1).abs() < 0.06).all()


def test_the_exact_flow_from_the_command_line_goes_to_its_own_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--exact", "8gaussians", "--exact-method", "flow", "--num", "50", "--sampler", "heun"]) == 0
    assert (tmp_path / "runs" / "exact_8gaussians_flow" / "sampled_heun_seed0.npy").exists()
    capsys.readouterr()
    assert main(["sample", str(tmp_path), "--exact-method", "flow"]) == 2
    assert "--exact-method goes with --exact DATASET" in capsys.readouterr().err


# ---------------------------------------------------------------- the datasets' mixtures


def test_only_the_mixture_datasets_have_a_mixture():
    assert sorted(name for name, d in DATASETS.items() if d.mixture() is not None) == sorted(MIXTURES)


@pytest.mark.parametrize("name", MIXTURES)
def test_a_datasets_mixture_is_the_density_it_draws_from(name):
    """Fresh draws of the dataset score the same mean log-density under the mixture as draws of the mixture itself
    (a wrong mean or std would move one of the two), and have its mean."""
    dataset, n = get_dataset(name), 20_000
    mixture = dataset.mixture()
    rng = np.random.default_rng(0)
    k = rng.choice(len(mixture.weights), n, p=mixture.weights)
    own = mixture.means[k] + rng.normal(size=(n, 2)) * mixture.stds[k]
    params = [torch.tensor(v) for v in (mixture.means, mixture.stds, mixture.weights)]
    data_lp, own_lp = (
        mixture_log_prob(torch.tensor(x, dtype=torch.float64), 1.0, *params).numpy()
        for x in (dataset.sample(n, seed=1), own)
    )
    error = 4 * math.sqrt(data_lp.var() / n + own_lp.var() / n)
    assert abs(data_lp.mean() - own_lp.mean()) < error
    np.testing.assert_allclose(
        dataset.sample(n, seed=1).mean(0),
        mixture.weights @ mixture.means,
        atol=4 * dataset.sample(n, seed=1).std(0).max() / math.sqrt(n),
    )


def test_the_dino_mixture_is_its_points_with_the_scaled_jitter():
    mixture = get_dataset("dino").mixture()
    np.testing.assert_array_equal(mixture.means, get_dataset("dino").support_points())
    np.testing.assert_allclose(mixture.stds, np.tile([0.15 * 4 / 54, 0.15 * 4 / 48], (142, 1)))
    np.testing.assert_allclose(mixture.weights, 1 / 142)


def test_8gaussians_is_ffjords():
    # FFJORD lib/toy_data.py: centres (+-1, 0), (0, +-1), (+-1/sqrt 2, +-1/sqrt 2) times 4, std 0.5, all / 1.414
    radius = np.linalg.norm(EIGHT_GAUSSIANS_CENTERS, axis=1)
    np.testing.assert_allclose(radius, 4 / 1.414)
    angles = np.sort(np.degrees(np.arctan2(EIGHT_GAUSSIANS_CENTERS[:, 1], EIGHT_GAUSSIANS_CENTERS[:, 0])) % 360)
    np.testing.assert_allclose(angles, np.arange(0, 360, 45), atol=1e-9)
    assert EIGHT_GAUSSIANS_STD == 0.5 / 1.414
    points, labels = get_dataset("8gaussians").sample_labelled(4000, seed=3)
    np.testing.assert_array_equal(points, get_dataset("8gaussians").sample(4000, seed=3))
    residual = points - EIGHT_GAUSSIANS_CENTERS[labels]
    assert residual.std() == pytest.approx(EIGHT_GAUSSIANS_STD, rel=0.03)
    support = get_dataset("8gaussians").support_points()
    share = (np.linalg.norm(residual, axis=1) <= 2.5 * EIGHT_GAUSSIANS_STD).mean()
    assert share == pytest.approx(1 - math.exp(-(2.5**2) / 2), abs=0.01)  # the support: 2.5-std discs, 95.6%
    assert np.linalg.norm(support[:, None] - EIGHT_GAUSSIANS_CENTERS[None], axis=-1).min(1).max() <= 0.885


# ---------------------------------------------------------------- td.exact


def test_td_exact_takes_the_run_settings_of_its_dataset():
    model = td.exact("moons", num_samples=100, num_timesteps=50, beta_schedule="cosine", data_seed=3)
    assert "exact" in td.__all__ and isinstance(model, td.Diffusion) and model.run_dir is None
    assert (model.config.num_samples, model.config.data_seed, model.config.target) == (100, 3, "noise")
    assert len(model.schedule) == 50 and model.schedule.beta_schedule == "cosine"
    training = get_dataset("moons").sample(100, seed=3)
    np.testing.assert_allclose(model.data_range(), [training.min(0), training.max(0)], rtol=1e-6)
    samples = model.sample(20, seed=1)
    assert samples.shape == (20, 2) and np.isfinite(samples).all()
    np.testing.assert_array_equal(samples, model.sample(20, seed=1))


@pytest.mark.parametrize("name, standardize", [("blobs", False), ("8gaussians", False), ("8gaussians", True)])
def test_the_exact_mixture_draws_each_component_as_often_as_its_weight(name, standardize):
    model = td.exact(name, standardize=standardize)
    assert bool((model.scale != 1).any()) == standardize
    n, mixture = 2000, get_dataset(name).mixture()
    samples = model.sample(n, seed=4)
    nearest = np.linalg.norm(samples[:, None] - mixture.means[None], axis=-1).argmin(1)
    counts = np.bincount(nearest, minlength=len(mixture.weights))
    expected = n * mixture.weights
    assert (np.abs(counts - expected) < 4 * np.sqrt(expected * (1 - mixture.weights))).all(), counts
    # and each component keeps its spread (within 10%; the sampler's discretisation is not exact)
    spread = (samples - mixture.means[nearest]).std()
    assert spread == pytest.approx(mixture.stds[0, 0], rel=0.1)


def test_the_exact_dino_draws_the_dino():
    samples = td.exact("dino").sample(1000)
    metrics = td.evaluate(samples, dataset="dino", progress=False)
    assert metrics["precision@0.1"] > 0.99 and metrics["recall@0.1"] > 0.99
    assert metrics["w2"] < 1.2 * metrics["w2_floor"]


def _forward_memorized_share(points: torch.Tensor, alpha_bar: float, n: int) -> float:
    """What the ideal denoiser gives back from exact draws of q(x_t) at the last step: the share that lands within
    MEMORIZED_RADIUS of a training point (below 1 where two points sit within a few sqrt(1 - alpha-bar) of each
    other: their posterior weights are split, and x0_hat falls between them)."""
    g = _generator(12)
    x0 = points[torch.randint(len(points), (n,), generator=g)]
    x_t = math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    distances = torch.cdist(ideal_x0(x_t, alpha_bar, points), points).min(1).values
    return float((distances <= MEMORIZED_RADIUS).double().mean())


@pytest.mark.parametrize("name", ["8gaussians", "blobs"])
def test_the_ideal_denoiser_reproduces_training_points_and_the_exact_mixture_does_not(name):
    ideal = td.exact(name, num_samples=200, kind="ideal")
    n = 1000
    share = memorized_share(ideal.sample(n, seed=5), ideal.config)
    points = torch.tensor(get_dataset(name).sample(200, seed=42), dtype=torch.float64)
    expected = _forward_memorized_share(points, float(ideal.schedule.alphas_cumprod[0]), 20_000)
    assert share > 0.85 and abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 0.01
    mixture = td.exact(name, num_samples=200, kind="mixture")
    assert memorized_share(mixture.sample(n, seed=5), mixture.config) < 0.01


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: td.exact("mnist5k"), "needs a point dataset; mnist5k is an image set"),
        (lambda: td.exact("no-such-set"), "unknown dataset 'no-such-set'"),
        (lambda: td.exact("moons", kind="mixture"), "moons is not a Gaussian mixture; use kind='ideal'"),
        (lambda: td.exact("dino", kind="best"), "unknown kind 'best'"),
        (lambda: td.exact("dino", target="x0"), "predicts the noise, unconditionally"),
        (lambda: td.exact("blobs", conditional=True), "predicts the noise, unconditionally"),
        (lambda: td.exact("dino", num_timesteps=0), "num_timesteps must be positive"),
    ],
)
def test_td_exact_refuses_bad_input_in_one_line(call, message):
    with pytest.raises(UsageError, match=message) as error:
        call()
    assert "\n" not in str(error.value)
