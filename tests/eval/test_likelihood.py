"""Likelihoods against closed forms: the probability-flow ODE's log-density of Gaussians and a mixture (scipy), and
Hutchinson's trace estimate against the exact trace."""

from functools import partial

import numpy as np
import pytest
import torch
from scipy import stats

from tiny_diffusion.core.exact import mixture_log_prob, mixture_noise_predictor, mixture_score
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.eval.likelihood import pf_ode_log_prob, variational_bound

SCHEDULE = NoiseSchedule(1000)
AB0 = float(SCHEDULE.alphas_cumprod[0].double())  # the ODE's density is that of x at step 0


def _exact(means, stds, weights):
    """The exact noise predictor of a mixture, and its exact end marginal (to leave out the N(0, I) mismatch)."""
    means, stds, weights = (torch.tensor(np.asarray(v), dtype=torch.float64) for v in (means, stds, weights))
    predictor = mixture_noise_predictor(means, stds, weights, SCHEDULE)
    return predictor, lambda x: mixture_log_prob(x, SCHEDULE.alphas_cumprod[-1], means, stds, weights)


def _draw(num, dim, seed=0):
    return torch.randn(num, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("mu", "s"), [([0.5], 0.7), ([0.3, -0.4], 0.2)])
def test_pf_ode_log_density_of_a_gaussian_matches_scipy(mu, s):
    mu = np.array(mu)
    predictor, prior = _exact([mu], [s], [1.0])
    x = _draw(40, len(mu)) * s + torch.tensor(mu)
    got = pf_ode_log_prob(predictor, SCHEDULE, x, prior=prior, rtol=1e-6, atol=1e-6)
    # x at step 0 is the data scaled by sqrt(ab0) plus N(0, 1 - ab0) noise: again a Gaussian
    cov = (AB0 * s**2 + 1 - AB0) * np.eye(len(mu))
    expected = stats.multivariate_normal(np.sqrt(AB0) * mu, cov).logpdf(x.numpy()).reshape(-1)
    np.testing.assert_allclose(got.value, expected, atol=1e-3)
    assert np.all(got.stderr == 0)


def test_pf_ode_log_density_of_a_two_component_mixture_matches_scipy():
    means, stds, weights = np.array([[-1.0, 0.5], [1.0, -0.5]]), np.array([0.3, 0.5]), np.array([0.3, 0.7])
    predictor, prior = _exact(means, stds, weights)
    x = _draw(40, 2, seed=1) * 0.8
    got = pf_ode_log_prob(predictor, SCHEDULE, x, prior=prior, rtol=1e-6, atol=1e-6)
    density = sum(
        w * stats.multivariate_normal(np.sqrt(AB0) * m, (AB0 * s**2 + 1 - AB0) * np.eye(2)).pdf(x.numpy())
        for m, s, w in zip(means, stds, weights)
    )
    np.testing.assert_allclose(got.value, np.log(density), atol=1e-3)


def test_with_the_exact_score_the_ode_starts_at_the_clean_data():
    # components as narrow as the first step's noise (std 0.01): the density after step 0 differs by tenths of a nat
    means, stds, weights = np.array([[-0.5, 0.2], [0.4, -0.3]]), np.array([0.012, 0.02]), np.array([0.4, 0.6])
    predictor, prior = _exact(means, stds, weights)
    m, s, w = (torch.tensor(v, dtype=torch.float64) for v in (means, stds, weights))
    score = partial(mixture_score, means=m, stds=s, weights=w)
    x = torch.cat([m[0] + 0.012 * _draw(10, 2, seed=5), m[1] + 0.02 * _draw(10, 2, seed=6)])
    got = pf_ode_log_prob(predictor, SCHEDULE, x, prior=prior, score=score, rtol=1e-6, atol=1e-6)
    clean = sum(
        wk * stats.multivariate_normal(mk, sk**2 * np.eye(2)).pdf(x.numpy()) for mk, sk, wk in zip(means, stds, weights)
    )
    np.testing.assert_allclose(got.value, np.log(clean), atol=1e-3)
    after_step0 = pf_ode_log_prob(predictor, SCHEDULE, x, prior=prior, rtol=1e-6, atol=1e-6).value
    assert np.abs(after_step0 - np.log(clean)).mean() > 0.1  # without the score it is another density


def test_the_default_n01_prior_costs_little_for_a_centred_gaussian():
    predictor, _ = _exact([[0.0]], [0.5], [1.0])
    x = _draw(20, 1) * 0.5
    got = pf_ode_log_prob(predictor, SCHEDULE, x)
    expected = stats.norm(0, np.sqrt(AB0 * 0.25 + 1 - AB0)).logpdf(x.numpy()[:, 0])
    np.testing.assert_allclose(got.value, expected, atol=2e-3)


def test_hutchinson_is_unbiased_within_its_standard_error():
    # a mixture: its Jacobian has off-diagonal terms (Rademacher probes are exact for a diagonal one)
    predictor, prior = _exact([[-1.0, 0.5], [1.0, -0.5]], [0.3, 0.5], [0.3, 0.7])
    x = _draw(5, 2, seed=2) * 0.8
    exact = pf_ode_log_prob(predictor, SCHEDULE, x, prior=prior)
    estimate = pf_ode_log_prob(predictor, SCHEDULE, x, prior=prior, hutchinson=64, seed=3)
    assert np.all(estimate.stderr > 0)
    z = (estimate.value - exact.value) / estimate.stderr
    assert np.all(np.abs(z) < 4), z
    # one probe's spread cannot be measured: no false zero
    assert np.isnan(pf_ode_log_prob(predictor, SCHEDULE, x[:1], prior=prior, hutchinson=1).stderr).all()


@pytest.mark.parametrize(("mu", "s"), [([0.5], 0.7), ([0.3, -0.4], 0.5)])
def test_variational_bound_of_the_exact_model_matches_its_expectation_and_exceeds_the_nll(mu, s):
    mu, dim = np.array(mu), len(mu)
    predictor, _ = _exact([mu], [s], [1.0])
    x = _draw(400, dim, seed=4) * s + torch.tensor(mu)
    bound = variational_bound(predictor, SCHEDULE, x, samples=2, dtype=torch.float64)
    # in expectation over x0 and the noise each KL term is coef1^2 Var(x0 | x_t) / (2 beta-tilde) per coordinate,
    # Var(x0 | x_t) = s^2 (1 - ab) / (ab s^2 + 1 - ab) for a Gaussian; L_0 is 0.5 Var / sigma^2 + log(sigma sqrt(2 pi))
    ab = SCHEDULE.alphas_cumprod.double().numpy()
    var = s**2 * (1 - ab) / (ab * s**2 + 1 - ab)
    c1, tilde = SCHEDULE.posterior_mean_coef1.double().numpy(), SCHEDULE.posterior_variance.double().numpy()
    steps = dim * (c1[1:] ** 2 * var[1:] / (2 * tilde[1:])).sum()
    decoder = dim * (0.5 * var[0] / tilde[1] + 0.5 * np.log(2 * np.pi * tilde[1]))
    x2 = (x.numpy() ** 2).sum(1).mean()
    prior = 0.5 * (ab[-1] * x2 + dim * (1 - ab[-1] - 1 - np.log(1 - ab[-1])))
    spread = bound.value.std() / np.sqrt(len(x))
    assert bound.value.mean() == pytest.approx(prior + steps + decoder, abs=4 * spread)
    # an upper bound on the exact NLL; not tight with fixed variances beta-tilde (the first steps cost most)
    nll = -stats.multivariate_normal(mu, s**2 * np.eye(dim)).logpdf(x.numpy()).reshape(-1)
    assert 0 < (bound.value - nll).mean() < 0.8 * dim


def test_diffusion_log_prob_and_elbo_are_in_the_data_units_and_refuse_bad_points():
    import tiny_diffusion as td
    from tiny_diffusion.errors import UsageError

    model = td.exact("blobs", kind="mixture", num_samples=200, standardize=True)
    x = model.sample(4, seed=0)
    log_prob = model.log_prob(x, rtol=1e-4, atol=1e-4)
    bound = model.elbo(x, samples=2)
    assert log_prob.shape == bound.shape == (4,)
    assert np.all(bound > -log_prob - 0.1)  # the bound is above the NLL (up to its Monte Carlo noise)
    assert model.bits_per_dim(bound).shape == (4,)
    with pytest.raises(UsageError, match="shape"):
        model.log_prob(np.zeros((3, 5)))
    with pytest.raises(UsageError, match="non-finite"):
        model.log_prob(np.full((2, 2), np.nan))
