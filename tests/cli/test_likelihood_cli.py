"""`tiny-diffusion likelihood`: the log-density of points by the probability-flow ODE, from the command line."""

import json

import numpy as np
import pytest
import torch

import tiny_diffusion as td
from conftest import TINY_IMAGES
from tiny_diffusion.cli import main
from tiny_diffusion.core.exact import mixture_log_prob

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_log_density_of_8gaussians_points_under_its_exact_model(here, capsys):
    points = td.datasets.sample("8gaussians", 12, seed=5)
    np.save(here / "points.npy", points)
    assert main(["likelihood", "--exact", "8gaussians", "--points", "points.npy"]) == 0
    summary = json.loads(capsys.readouterr().out)
    log_prob = np.load(here / "runs" / "exact_8gaussians" / "log_prob_points.npy")
    assert log_prob.shape == (12,) and summary["count"] == 12
    assert summary["log_prob"] == pytest.approx(log_prob.mean())
    # against the mixture's own density (the ODE's is of the data after the first step's small noise: 0.02 nats)
    mixture = td.datasets.get("8gaussians").mixture()
    means, stds, weights = (torch.as_tensor(v, dtype=torch.float64) for v in (mixture.means, mixture.stds,
                                                                               mixture.weights))  # fmt: skip
    exact = mixture_log_prob(torch.tensor(points, dtype=torch.float64), 1.0, means, stds, weights).numpy()
    assert np.abs(log_prob - exact).mean() < 0.05


@pytest.mark.parametrize(
    "array,message",
    [(np.zeros((5, 3)), "holds points of shape (3,)"), (np.array([[0.0, np.nan]]), "non-finite")],
)
def test_bad_points_are_refused_in_one_line(here, capsys, array, message):
    np.save(here / "points.npy", array)
    assert main(["likelihood", "--exact", "8gaussians", "--points", "points.npy"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (here / "runs" / "exact_8gaussians" / "log_prob_points.npy").exists()


def test_likelihood_needs_its_points(here, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["likelihood", "--exact", "8gaussians"])
    assert stopped.value.code == 2 and "--points" in capsys.readouterr().err


def test_the_bound_of_an_image_runs_test_images(here, capsys):
    td.train(**TINY_IMAGES, out=here / "digits", progress=False)
    assert main(["likelihood", "digits", "--test", "3", "--bound-only"]) == 0
    summary = json.loads(capsys.readouterr().out)
    bound = np.load(here / "digits" / "bound_test.npy")
    assert bound.shape == (3,) and summary["count"] == 3 and "log_prob" not in summary
    assert summary["bound_nats"] == pytest.approx(bound.mean())
    assert 0 < summary["bound_bits_per_dim"] == pytest.approx(bound.mean() / (64 * np.log(2)))  # 8x8 pixels


def test_test_points_are_fresh_points_of_the_dataset(here, capsys):
    assert main(["likelihood", "--exact", "8gaussians", "--test", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 5
    assert np.load(here / "runs" / "exact_8gaussians" / "log_prob_test.npy").shape == (5,)


def test_points_come_from_one_place(here, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["likelihood", "--exact", "8gaussians", "--points", "p.npy", "--test", "3"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "not allowed with" in err and err.count("\n") == 1
    assert main(["likelihood", "--exact", "8gaussians", "--test", "0"]) == 2
    err = capsys.readouterr().err
    assert "--test must be a positive" in err and err.count("\n") == 1
