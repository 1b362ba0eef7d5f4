"""Point-set metrics: arrays in, numbers out.

- ``wasserstein2``: exact 2-Wasserstein distance between two equal-size sets (optimal assignment).
- ``mmd``: RBF-kernel maximum mean discrepancy, the kernel a sum over several bandwidths.
- ``precision`` / ``recall``: closeness to the known support points of a shape, at radius r.
- ``frechet_distance`` between two Gaussians, and ``gaussian``, the one fitted to a set of feature vectors (the
  judge of image samples uses them as FID does).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.linalg import LinAlgWarning, sqrtm
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from ..errors import UsageError

__all__ = [
    "wasserstein2",
    "mmd",
    "precision",
    "recall",
    "point_metrics",
    "frechet_distance",
    "gaussian",
    "DEFAULT_BANDWIDTHS",
]

DEFAULT_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def _check(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or len(a) == 0:
        raise UsageError(f"{name} must be a non-empty (N, D) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise UsageError(f"{name} holds non-finite values (NaN or inf)")
    return a


def wasserstein2(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W2 between two point sets of the same size: sqrt(min over matchings of the mean squared distance)."""
    a, b = _check(a, "a"), _check(b, "b")
    if a.shape != b.shape:
        raise UsageError(f"wasserstein2 needs equal-size sets of equal dimension, got {a.shape} and {b.shape}")
    cost = cdist(a, b, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def mmd(a: np.ndarray, b: np.ndarray, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS) -> float:
    """sqrt of the (biased, V-statistic) squared MMD with kernel sum_s exp(-|x - y|^2 / (2 s^2)) / len(bandwidths)."""
    a, b = _check(a, "a"), _check(b, "b")

    def kernel_mean(x: np.ndarray, y: np.ndarray) -> float:
        d2 = cdist(x, y, "sqeuclidean")
        return float(np.mean([np.exp(-d2 / (2 * s * s)).mean() for s in bandwidths]))

    squared = kernel_mean(a, a) + kernel_mean(b, b) - 2 * kernel_mean(a, b)
    return float(np.sqrt(max(squared, 0.0)))


def precision(samples: np.ndarray, support: np.ndarray, r: float) -> float:
    """Share of samples within distance r of their nearest support point."""
    distances, _ = cKDTree(_check(support, "support")).query(_check(samples, "samples"))
    return float(np.mean(distances <= r))


def recall(samples: np.ndarray, support: np.ndarray, r: float) -> float:
    """Share of support points that have a sample within distance r."""
    distances, _ = cKDTree(_check(samples, "samples")).query(_check(support, "support"))
    return float(np.mean(distances <= r))


def point_metrics(
    samples: np.ndarray,
    reference: np.ndarray,
    *,
    floor_reference: np.ndarray | None = None,
    support: np.ndarray | None = None,
    radii: Sequence[float] = (0.05, 0.1),
) -> dict[str, float]:
    """W2 and MMD of samples against a reference draw; with ``floor_reference`` (a second, independent draw of the
    data) also their floors, the same metrics between the two draws; with ``support``, precision and recall at radii."""
    samples, reference = _check(samples, "samples"), _check(reference, "reference")
    if samples.shape[1] != reference.shape[1]:
        raise UsageError(f"samples have dimension {samples.shape[1]}, the dataset {reference.shape[1]}")
    n = min(len(samples), len(reference))
    samples, reference = samples[:n], reference[:n]
    out = {"n": float(n), "w2": wasserstein2(samples, reference), "mmd": mmd(samples, reference)}
    if floor_reference is not None:
        out["w2_floor"] = wasserstein2(floor_reference[:n], reference)
        out["mmd_floor"] = mmd(floor_reference[:n], reference)
    if support is not None:
        for r in radii:
            out[f"precision@{r:g}"] = precision(samples, support, r)
        for r in radii:
            out[f"recall@{r:g}"] = recall(samples, support, r)
        if floor_reference is not None:  # a filled shape's recall stays below 1 even for data: n points cover it
            for r in radii:
                out[f"precision@{r:g}_floor"] = precision(floor_reference[:n], support, r)
            for r in radii:
                out[f"recall@{r:g}_floor"] = recall(floor_reference[:n], support, r)
    return out


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), computed in float64."""
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise UsageError(
            f"frechet_distance needs means (D,) and covariances (D, D) of one D, got {mu1.shape}, "
            f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}"
        )
    if not all(np.isfinite(a).all() for a in (mu1, mu2, sigma1, sigma2)):
        raise UsageError("frechet_distance got non-finite means or covariances")
    with warnings.catch_warnings():  # features that never fire make sigma singular: sqrtm warns, yet copes
        warnings.simplefilter("ignore", LinAlgWarning)
        covmean = sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():  # should sqrtm fail: nudge both diagonals, as FID's reference code does
            offset = np.eye(d) * 1e-6
            covmean = sqrtm((sigma1 + offset) @ (sigma2 + offset))
    # sigma1 sigma2 has real non-negative eigenvalues, so any imaginary part is round-off
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real)
    return float(max(value, 0.0))  # round-off can leave -1e-12 for identical Gaussians


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) -> mean (F,) and covariance (F, F)."""
    return features.mean(axis=0), np.cov(features, rowvar=False)
