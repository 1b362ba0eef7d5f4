"""The point metrics of a run's samples: a point file's are measured in its standard deviations, so they read the
same whatever its units; a registered set's in its own units, as the docs report them."""

import dataclasses

import numpy as np
import pytest

import tiny_diffusion as td
from conftest import TINY_POINTS
from tiny_diffusion.data import DATASETS
from tiny_diffusion.data.files import file_dataset
from tiny_diffusion.data.prepare import dataset_for
from tiny_diffusion.eval.evaluate import evaluate_points, evaluate_points_by_class, nll_beside_exact


def _write(path, points, labels=None):
    rows = [f"{'' if labels is None else labels[i] + ','}{x},{y}" for i, (x, y) in enumerate(points)]
    header = "x,y" if labels is None else "dataset,x,y"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("factor, offset", [(100.0, 0.0), (0.01, 5.0), (3.0, -1000.0)])
def test_a_files_metrics_are_the_same_in_any_units(tmp_path, factor, offset):
    points = td.datasets.sample("dino", 500, seed=0).astype(np.float64)
    samples = points + np.random.default_rng(1).normal(0, 0.1, points.shape)  # a fair model, a little blurred
    unit = evaluate_points(samples, file_dataset(_write(tmp_path / "unit.csv", points)))
    moved = evaluate_points(
        samples * factor + offset, file_dataset(_write(tmp_path / "moved.csv", points * factor + offset))
    )
    assert moved.keys() == unit.keys() and "recall@0.1" in unit
    for key in unit:
        assert moved[key] == pytest.approx(unit[key], rel=1e-4, abs=1e-6), key


def test_a_files_radius_is_its_standard_deviations(tmp_path):
    points = np.array([[0.0, 0.0], [100.0, 10.0]])  # standard deviations 50 and 5
    dataset = file_dataset(_write(tmp_path / "two.csv", points))
    np.testing.assert_allclose(dataset.unit, [50, 5])
    near = points + [4.9, 0.0]  # 0.098 standard deviations off: within 0.1, not within 0.05
    metrics = evaluate_points(near, dataset)
    assert metrics["precision@0.1"] == 1 and metrics["precision@0.05"] == 0


def test_a_labelled_files_class_precision_is_in_its_standard_deviations(tmp_path):
    points = np.array([[0.0, 0.0], [100.0, 100.0]] * 5)
    labels = ["a", "b"] * 5
    dataset = file_dataset(_write(tmp_path / "table.csv", points, labels), labelled=True)
    samples = np.array([[4.0, 0.0], [100.0, 96.0]] * 20)  # 0.08 standard deviations (50) from their class's point
    metrics = evaluate_points_by_class(samples, np.array([0, 1] * 20), dataset)
    assert metrics["a: precision@0.1"] == 1 and metrics["b: precision@0.1"] == 1


@pytest.mark.parametrize("name", DATASETS)
def test_a_registered_sets_metrics_are_in_its_own_units(name):
    dataset = DATASETS[name]
    assert dataset.unit is None
    x = dataset.sample(10, 0)
    assert dataset.in_metric_units(x) is x


@pytest.mark.parametrize("clean", [False, True])
def test_the_exact_models_nll_is_the_exact_nll(clean):
    model = td.exact("8gaussians", kind="mixture")
    if not clean:  # the ODE then stops at the first step, as it does for a trained network
        model = dataclasses.replace(model, exact_score=None)
    points, options = dataset_for(model.config)
    alpha_bar0 = 1.0 if clean else float(model.schedule.alphas_cumprod[0])
    found = nll_beside_exact(
        model.log_prob, points, options, alpha_bar0=alpha_bar0, shift=np.zeros(2), scale=np.ones(2), num=100
    )
    assert abs(found["nll_gap"]) < 0.03 and found["nll"] == pytest.approx(found["nll_exact"] + found["nll_gap"])
    assert found["nll_gap_stderr"] > 0 and found["nll_exact_clean"] == pytest.approx(found["nll_exact"], abs=0.05)


def test_a_wrong_density_shows_as_a_gap():
    model = td.exact("8gaussians", kind="mixture")
    points, options = dataset_for(model.config)
    found = nll_beside_exact(
        lambda x: model.log_prob(x * 1.2) + 2 * np.log(1.2),  # the density of the data shrunk by 1.2, normalised
        points,
        options,
        alpha_bar0=1.0,
        shift=np.zeros(2),
        scale=np.ones(2),
        num=100,
    )
    assert found["nll_gap"] > 0.3


def test_a_flow_run_s_nll_is_set_beside_the_clean_data_s(tmp_path):
    """A flow run's ODE starts at the data itself (t = 0), not after a first noising step: its exact NLL is the
    clean one, and the exact flow velocity's own NLL matches it."""
    flow = td.evaluate(td.train(**TINY_POINTS, method="flow", out=tmp_path / "flow", progress=False), progress=False)
    assert flow["nll_exact"] == flow["nll_exact_clean"] and np.isfinite(flow["nll_gap"])
    exact = td.exact("8gaussians", method="flow")
    points, options = dataset_for(exact.config)
    found = nll_beside_exact(
        exact.log_prob, points, options, alpha_bar0=1.0, shift=np.zeros(2), scale=np.ones(2), num=100
    )
    assert abs(found["nll_gap"]) < 0.03


def test_evaluate_gives_a_runs_nll_where_the_density_is_known(tmp_path):
    td.train(**TINY_POINTS, out=tmp_path / "dino", progress=False)
    td.train(**TINY_POINTS, dataset="moons", out=tmp_path / "moons", progress=False)
    dino = td.evaluate(tmp_path / "dino", progress=False)
    assert dino["nll"] == pytest.approx(dino["nll_exact"] + dino["nll_gap"]) and np.isfinite(dino["nll"])
    assert "nll" not in td.evaluate(tmp_path / "dino", progress=False, likelihood=False)
    assert "nll" not in td.evaluate(tmp_path / "moons", progress=False)  # its density is not known
    assert "nll" not in td.evaluate(tmp_path / "dino" / "samples.npy", dataset="dino", progress=False)
