"""Point-set metrics against closed forms and hand-made cases."""

import numpy as np
import pytest

from tiny_diffusion.errors import UsageError
from tiny_diffusion.eval.metrics import mmd, point_metrics, precision, recall, wasserstein2


def test_w2_of_a_shifted_set_is_the_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3))
    shift = np.array([0.3, -0.4, 0.0])
    # translating every point is an optimal matching (for W2) with cost |shift|
    assert wasserstein2(a, a + shift) == pytest.approx(0.5, rel=1e-9)


def test_w2_finds_the_optimal_matching_not_the_given_order():
    a = np.array([[0.0, 0.0], [10.0, 0.0]])
    b = np.array([[10.0, 1.0], [0.0, 1.0]])
    assert wasserstein2(a, b) == pytest.approx(1.0)


def test_w2_refuses_unequal_sets():
    with pytest.raises(UsageError, match="equal-size"):
        wasserstein2(np.zeros((3, 2)), np.zeros((4, 2)))


def test_mmd_is_zero_for_identical_sets_and_grows_with_distance():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 2))
    assert mmd(a, a) == pytest.approx(0.0, abs=1e-7)
    near, far = mmd(a, a + 0.1), mmd(a, a + 1.0)
    assert 0 < near < far


def test_mmd_single_bandwidth_closed_form():
    # two single points at distance d: MMD^2 = 2 - 2 exp(-d^2 / (2 s^2))
    d, s = 0.7, 0.5
    expected = np.sqrt(2 - 2 * np.exp(-(d**2) / (2 * s**2)))
    assert mmd(np.zeros((1, 2)), np.array([[d, 0.0]]), bandwidths=[s]) == pytest.approx(expected)


def test_precision_and_recall_count_by_radius():
    support = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    samples = np.array([[0.04, 0.0], [1.0, 0.08], [3.0, 3.0], [0.0, 0.03]])
    assert precision(samples, support, 0.05) == pytest.approx(2 / 4)
    assert precision(samples, support, 0.1) == pytest.approx(3 / 4)
    assert recall(samples, support, 0.05) == pytest.approx(1 / 3)
    assert recall(samples, support, 0.1) == pytest.approx(2 / 3)


def test_point_metrics_reports_floors_and_support_scores():
    rng = np.random.default_rng(2)
    support = rng.uniform(-1, 1, size=(20, 2))
    draw = lambda: support[rng.integers(0, 20, 500)] + rng.normal(scale=0.01, size=(500, 2))  # noqa: E731
    m = point_metrics(draw(), draw(), floor_reference=draw(), support=support)
    assert {"w2", "w2_floor", "mmd", "mmd_floor", "precision@0.05", "recall@0.05", "precision@0.1"} <= set(m)
    assert m["precision@0.05"] > 0.99 and m["recall@0.05"] == 1.0
    assert m["w2"] == pytest.approx(m["w2_floor"], rel=0.5)


def test_recall_floor_shows_how_much_of_a_filled_shape_n_points_can_cover():
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 51), np.linspace(0, 1, 51)), axis=-1).reshape(-1, 2)
    draw = lambda: rng.uniform(0, 1, size=(100, 2))  # noqa: E731
    m = point_metrics(draw(), draw(), floor_reference=draw(), support=grid)
    # 100 disks of radius 0.05 cover at most 100 * pi * 0.05^2 = 0.79 of the unit square
    assert m["precision@0.05_floor"] == 1.0 and m["recall@0.05_floor"] < 0.79
    assert m["recall@0.05"] == pytest.approx(m["recall@0.05_floor"], abs=0.1)


@pytest.mark.parametrize("bad", [np.zeros((0, 2)), np.zeros(5), np.array([[0.0, np.nan]])])
def test_metrics_refuse_malformed_arrays(bad):
    with pytest.raises(UsageError):
        mmd(bad, np.zeros((3, 2)))
