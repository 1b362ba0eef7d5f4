"""The numbers of a run's samples: point metrics against fresh draws of the dataset, each beside its data-vs-data
floor, or the judge's numbers for images; for a conditional run, how well each class is drawn."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.images import get_image_dataset
from ..data.prepare import dataset_for, training_data
from ..data.registry import PointDataset
from .metrics import point_metrics, precision

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = [
    "REFERENCE_SEEDS",
    "evaluate_points",
    "evaluate_points_by_class",
    "evaluate_images",
    "evaluate_run_samples",
    "MEMORIZED_RADIUS",
    "memorized_share",
    "NLL_POINTS",
    "nll_beside_exact",
]

# Seeds of the two independent data draws that samples are compared with (the training draw uses config.data_seed).
REFERENCE_SEEDS = (1, 2)
MEMORIZED_RADIUS = 1e-3  # a sample this close to a training point is a copy of it
NLL_POINTS = 1000  # fresh points whose likelihood evaluate measures where the data's density is known
CLASS_REFERENCE = 20_000  # points of a labelled set drawn to stand for each class's shape (precision's support)


def evaluate_points(
    samples: np.ndarray, dataset: PointDataset, options: dict[str, Any] | None = None
) -> dict[str, float]:
    """Metrics of ``samples`` against a fresh draw of the dataset, each beside its data-vs-data floor; in the
    dataset's metric units (a point file's standard deviations, see ``PointDataset.unit``)."""
    options = options or {}
    n = len(samples)
    reference, second = (dataset.sample(n, seed, **options) for seed in REFERENCE_SEEDS)
    support = dataset.support_points(**options)
    samples, reference, second = (dataset.in_metric_units(a) for a in (samples, reference, second))
    support = None if support is None else dataset.in_metric_units(support)
    return point_metrics(samples, reference, floor_reference=second, support=support)


def evaluate_points_by_class(
    samples: np.ndarray, labels: np.ndarray, dataset: PointDataset, *, radius: float = 0.1
) -> dict[str, float]:
    """For each class (by name) of a labelled point set: ``precision@r`` of the samples drawn for it, the share
    within ``radius`` (in the dataset's metric units) of its own points (a dense draw of them), beside its floor:
    the same for a fresh draw."""
    support, support_labels = dataset.sample_labelled(CLASS_REFERENCE, REFERENCE_SEEDS[0])
    fresh, fresh_labels = dataset.sample_labelled(len(samples), REFERENCE_SEEDS[1])
    samples, support, fresh = (dataset.in_metric_units(a) for a in (samples, support, fresh))
    metrics = {}
    for k, name in enumerate(dataset.classes):
        if not (labels == k).any():
            continue
        own = support[support_labels == k]
        metrics[f"{name}: precision@{radius:g}"] = precision(samples[labels == k], own, radius)
        metrics[f"{name}: precision@{radius:g}_floor"] = precision(fresh[fresh_labels == k], own, radius)
    return metrics


def evaluate_images(
    samples: np.ndarray, config: TrainConfig, *, labels: np.ndarray | None = None, progress: bool = True
) -> dict[str, float]:
    """The judge's numbers for (N, C, H, W) samples of an image run: against the test split, each beside its floor
    (a random subset of as many training images); with the class each sample was drawn for (``labels`` (N,)),
    how often the judge agrees. Trains and caches the judge first if there is none yet."""
    from .image_metrics import class_accuracy, image_metrics  # the judge is needed for images only
    from .judge import get_judge

    dataset = get_image_dataset(config.dataset)
    judge = get_judge(config.dataset, data_dir=config.data_dir, train_if_missing=True, progress=progress)
    real, _ = dataset.images("test", data_dir=config.data_dir)
    train_images, _ = dataset.images("train", data_dir=config.data_dir)
    n = min(len(samples), len(real))
    floor = train_images[np.random.default_rng(0).choice(len(train_images), n, replace=False)]
    metrics = image_metrics(judge, samples[:n], real=real, floor_real=floor)
    return metrics if labels is None else {**metrics, **class_accuracy(judge, samples, labels)}


def evaluate_run_samples(
    samples: np.ndarray, config: TrainConfig, *, labels: np.ndarray | None = None, progress: bool = True
) -> dict[str, float]:
    """The metrics of a run's samples: the judge's for images, point metrics (with floors) for points; for the
    samples of a conditional run (the class of each in ``labels``), how well each class is drawn too."""
    if config.is_images:
        return evaluate_images(samples, config, labels=labels, progress=progress)
    dataset, options = dataset_for(config)
    metrics = evaluate_points(samples, dataset, options)
    return metrics if labels is None else {**metrics, **evaluate_points_by_class(samples, labels, dataset)}


def memorized_share(samples: np.ndarray, config: TrainConfig, *, radius: float = MEMORIZED_RADIUS) -> float:
    """Share of ``samples`` (N, D), in the data's units, within ``radius`` of a point of the training set the
    settings describe (``config.num_samples`` points drawn with ``config.data_seed``): copies rather than new points.
    The radius is in the dataset's metric units, as every other radius (a point file's standard deviations), so the
    share means the same on a file in any units. The ideal denoiser of a training set draws nothing else (Karras et
    al. 2022, eq. 57); a model of the density draws almost none."""
    train_set = training_data(config)
    dataset = dataset_for(config)[0]
    train_points = train_set.x * train_set.scale + train_set.shift
    return precision(dataset.in_metric_units(samples), dataset.in_metric_units(train_points), radius)


def nll_beside_exact(
    log_prob: Callable[[np.ndarray], np.ndarray],
    dataset: PointDataset,
    options: dict[str, Any],
    *,
    alpha_bar0: float,
    shift: np.ndarray,
    scale: np.ndarray,
    num: int = NLL_POINTS,
) -> dict[str, float] | None:
    """A model's negative log-likelihood (nats per point, by ``log_prob``: points (N, D) in the data's units ->
    (N,)) of ``num`` fresh points of a dataset whose density is known (a Gaussian mixture), beside the exact one;
    None where the density is not known. A trained model's probability-flow ODE gives the density of the data after
    the first noising step (``eval/likelihood.py``), so the exact NLL it is compared with is that of the same
    noised data, in closed form: the mixture in the model's coordinates (data = x * scale + shift) noised to
    ``alpha_bar0``. The noiseless data's own NLL is given beside, as is the standard error of the mean gap."""
    import torch

    from ..core.exact import mixture_log_prob

    mixture = dataset.mixture()
    if mixture is None:
        return None
    x = dataset.sample(num, REFERENCE_SEEDS[0], **options).astype(np.float64)
    means, stds, weights, xt, shift_t, scale_t = (
        torch.as_tensor(np.asarray(v, dtype=np.float64))
        for v in (mixture.means, mixture.stds, mixture.weights, x, shift, scale)
    )
    exact = mixture_log_prob((xt - shift_t) / scale_t, alpha_bar0, (means - shift_t) / scale_t, stds / scale_t, weights)
    exact = exact.numpy() - float(scale_t.log().sum())
    clean = mixture_log_prob(xt, 1.0, means, stds, weights).numpy()
    model = np.asarray(log_prob(x), dtype=np.float64)
    gap = exact - model  # per point: the model's NLL minus the exact one
    return {
        "nll": float(-model.mean()),
        "nll_exact": float(-exact.mean()),
        "nll_gap": float(gap.mean()),
        "nll_gap_stderr": float(gap.std(ddof=1) / np.sqrt(len(gap))),
        "nll_exact_clean": float(-clean.mean()),
    }
