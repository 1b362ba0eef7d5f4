"""The judge's numbers for generated images (see ``judge`` for what each means): confidence, class entropy and the
Frechet distance in the judge's features, each beside its floor; and, for a conditional run, how often the judge
sees the class asked for."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UsageError
from .judge import Judge, check_images
from .metrics import frechet_distance, gaussian

__all__ = ["image_metrics", "class_histogram", "class_accuracy"]


def _entropy_bits(predicted: np.ndarray, num_classes: int) -> float:
    shares = np.bincount(predicted, minlength=num_classes) / len(predicted)
    shares = shares[shares > 0]
    return float((shares * np.log2(1 / shares)).sum())  # not -sum(p log p): that gives -0.0 for one class


def class_histogram(judge: Judge, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """(K,) share of the images the judge puts in each class (sums to 1)."""
    predicted = judge.assess(images).predicted
    return np.bincount(predicted, minlength=judge.num_classes) / len(predicted)


def image_metrics(
    judge: Judge,
    samples: np.ndarray | torch.Tensor,
    *,
    real: np.ndarray | torch.Tensor,
    floor_real: np.ndarray | torch.Tensor,
    confidence: float = 0.9,
) -> dict[str, float]:
    """The judge's numbers for generated ``samples`` (N, C, H, W) in [-1, 1] against the ``real`` reference set,
    with their floors from ``floor_real``, a second real set disjoint from ``real`` (see the module docstring).

    ``samples`` and ``floor_real`` are cut to the shorter of the two (``n``), since the Fréchet distance depends on
    the set size: the score and its floor must come from sets of one size.
    """
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must lie in (0, 1), got {confidence}")
    x, x_floor = check_images(judge, samples, "samples"), check_images(judge, floor_real, "floor_real")
    n = min(len(x), len(x_floor))
    ours, reference, floor = judge.assess(x[:n]), judge.assess(real, "real"), judge.assess(x_floor[:n])
    if min(n, len(reference.features)) < 2:
        raise UsageError("samples, real and floor_real must hold at least 2 images each to fit Gaussians")
    mu, sigma = gaussian(reference.features)
    return {
        "n": float(n),
        "confident": ours.confident(confidence),
        "confident_floor": floor.confident(confidence),
        "class_entropy_bits": _entropy_bits(ours.predicted, judge.num_classes),
        "class_entropy_floor_bits": _entropy_bits(reference.predicted, judge.num_classes),
        "frechet": frechet_distance(*gaussian(ours.features), mu, sigma),
        "frechet_floor": frechet_distance(*gaussian(floor.features), mu, sigma),
    }


def class_accuracy(judge: Judge, samples: np.ndarray | torch.Tensor, labels: np.ndarray) -> dict[str, float]:
    """How often the judge sees the class each sample was drawn for: ``conditional_accuracy`` over all samples and
    ``accuracy_K`` for each class K asked for (its floor is the judge's accuracy on real test images)."""
    labels = np.asarray(labels)
    if labels.shape != (len(samples),) or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(
            f"labels must be (N,) integers, one per sample: got {labels.dtype} {labels.shape} for "
            f"{len(samples)} samples"
        )
    hit = judge.assess(samples).predicted == labels
    return {
        "conditional_accuracy": float(hit.mean()),
        "judge_test_accuracy": judge.test_accuracy,
        **{f"accuracy_{k}": float(hit[labels == k].mean()) for k in np.unique(labels)},
    }
