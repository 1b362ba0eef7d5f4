"""The toy densities of the flow papers (FFJORD's definitions): checkerboard, 2spirals, pinwheel; their classes,
their known density where there is one, and a conditional run prompted for a class."""

import numpy as np
import pytest

from conftest import TINY_POINTS, flags
from tiny_diffusion.cli import main
from tiny_diffusion.data import get_dataset
from tiny_diffusion.data.toys import (
    CHECKERBOARD_DENSITY,
    checkerboard_log_prob,
    checkerboard_squares,
    labelled_pinwheel,
    labelled_two_spirals,
)

N = 40_000


def _binomial_ok(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) < 5 * np.sqrt(n * p * (1 - p))


def test_the_checkerboard_is_uniform_on_its_eight_squares():
    x = get_dataset("checkerboard").sample(N, seed=0)
    assert np.isfinite(checkerboard_log_prob(x)).all()  # every point on a dark square
    corners = checkerboard_squares()
    square = np.argmin(np.abs(np.floor(x / 2)[:, None, :] * 2 - corners[None]).sum(axis=2), axis=1)
    assert all(_binomial_ok(int((square == k).sum()), N, 1 / 8) for k in range(8))
    offsets = x - corners[square]  # uniform on [0, 2]^2 within its square: mean 1, variance 1/3
    np.testing.assert_allclose(offsets.mean(axis=0), 1, atol=0.02)
    np.testing.assert_allclose(offsets.var(axis=0), 1 / 3, atol=0.01)
    # the density integrates to one: 8 squares of area 4 at 1/32; off the board and on light squares it is 0
    assert 8 * 4 * CHECKERBOARD_DENSITY == 1
    assert np.isneginf(checkerboard_log_prob(np.array([[1.0, 3.0], [5.0, 0.5]]))).all()


def test_the_two_spirals_are_each_others_half_turn_and_halve_the_points():
    points, labels = labelled_two_spirals(N, seed=1)
    assert _binomial_ok(int((labels == 1).sum()), N, 0.5)
    first, second = points[labels == 0], points[labels == 1]
    # the second spiral is the first turned by 180 degrees: the same distribution of -x
    for q in (0.1, 0.5, 0.9):
        np.testing.assert_allclose(np.quantile(-second, q, axis=0), np.quantile(first, q, axis=0), atol=0.05)
    assert abs(np.linalg.norm(points, axis=1).max() - 3.6) < 0.4  # one and a half turns reach radius 9.4 / 3


def test_each_pinwheel_arm_starts_at_its_own_angle():
    points, arms = labelled_pinwheel(N, seed=2)
    assert all(_binomial_ok(int((arms == k).sum()), N, 1 / 5) for k in range(5))
    for k in range(5):
        inner = points[(arms == k) & (np.linalg.norm(points, axis=1) < 1.2)]  # near the centre: least curved
        angle = np.angle(np.mean(inner[:, 0] + 1j * inner[:, 1]))
        expected = 2 * np.pi * k / 5 + 0.25 * np.exp(0.5)  # the arm's base angle, turned by the curl at radius ~1
        assert abs(np.angle(np.exp(1j * (angle - expected)))) < 0.35


@pytest.mark.usefixtures("one_thread")
def test_a_conditional_pinwheel_run_draws_the_arm_it_is_asked_for(tmp_path, capsys):
    run = tmp_path / "run"
    settings = flags(TINY_POINTS, dataset="pinwheel", conditional=True, num_samples=2048, train_batch_size=256,
                     num_epochs=40, num_timesteps=50, hidden_size=64, embedding_size=32, quiet=True)  # fmt: skip
    assert main(["train", *settings, "--out", str(run)]) == 0
    assert main(["sample", str(run), "--prompt", "arm3", "--num", "300", "--guidance", "2"]) == 0
    drawn = np.load(next(run.glob("prompt_arm3_*.npy")))
    angles = np.angle(drawn[:, 0] + 1j * drawn[:, 1])
    reference, arms = labelled_pinwheel(4000, seed=3)
    centres = [np.angle(np.mean(np.exp(1j * np.angle(reference[arms == k, 0] + 1j * reference[arms == k, 1]))))
               for k in range(5)]  # fmt: skip
    nearest = np.argmin(np.abs(np.angle(np.exp(1j * (angles[:, None] - np.array(centres)[None])))), axis=1)
    assert (nearest == 3).mean() > 0.6  # most samples on the arm asked for (chance: 0.2)
