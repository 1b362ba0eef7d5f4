"""The point metrics of a run's samples: a point file's are measured in its standard deviations, so they read the
same whatever its units; a registered set's in its own units, as the docs report them."""

import numpy as np
import pytest

import tiny_diffusion as td
from tiny_diffusion.data import DATASETS
from tiny_diffusion.data.files import file_dataset
from tiny_diffusion.eval.evaluate import evaluate_points, evaluate_points_by_class


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
