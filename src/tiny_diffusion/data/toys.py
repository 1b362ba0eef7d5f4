"""The toy densities of the normalizing-flow and flow-matching papers, defined as in FFJORD (Grathwohl et al. 2019,
https://github.com/rtqichen/ffjord, ``lib/toy_data.py``), drawn with NumPy's ``default_rng(seed)``."""

from __future__ import annotations

import numpy as np

from .registry import GaussianMixture, register

__all__ = ["EIGHT_GAUSSIANS_CENTERS", "eight_gaussians_mixture"]

# FFJORD's 8gaussians: centres (+-1, 0), (0, +-1), (+-1/sqrt 2, +-1/sqrt 2) times 4, noise N(0, 0.5^2), and every
# point then divided by 1.414 (their constant, not sqrt 2): centres on a circle of radius 2.829, std 0.354.
_FFJORD_DIVISOR = 1.414
_S = 1 / np.sqrt(2)
EIGHT_GAUSSIANS_CENTERS = (
    4 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (_S, _S), (_S, -_S), (-_S, _S), (-_S, -_S)]) / _FFJORD_DIVISOR
)  # (8, 2), in FFJORD's order
EIGHT_GAUSSIANS_STD = 0.5 / _FFJORD_DIVISOR
EIGHT_GAUSSIANS_NAMES = ("east", "west", "north", "south", "north-east", "south-east", "north-west", "south-west")


def eight_gaussians_mixture() -> GaussianMixture:
    """8gaussians' density: eight equally likely isotropic Gaussians of std 0.5 / 1.414 = 0.354."""
    return GaussianMixture(EIGHT_GAUSSIANS_CENTERS.copy(), np.full((8, 2), EIGHT_GAUSSIANS_STD), np.full(8, 1 / 8))


SUPPORT_STDS = 2.5  # the support: discs of this many standard deviations, holding 1 - exp(-2.5^2 / 2) = 95.6%


def eight_gaussians_support(spacing: float = 0.05) -> np.ndarray:
    """Grid nodes ``spacing`` apart within 2.5 standard deviations (0.884) of each centre, where 95.6% of each
    Gaussian's mass lies: the shape precision and recall measure against."""
    radius = SUPPORT_STDS * EIGHT_GAUSSIANS_STD
    axis = np.arange(-radius, radius + spacing / 2, spacing)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    disc = grid[np.linalg.norm(grid, axis=1) <= radius]
    return (EIGHT_GAUSSIANS_CENTERS[:, None, :] + disc[None]).reshape(-1, 2)


def labelled_eight_gaussians(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The ``8gaussians`` dataset with its labels: points (n, 2) and the index (n,) of each one's Gaussian."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 8, n)
    return EIGHT_GAUSSIANS_CENTERS[labels] + rng.normal(0, EIGHT_GAUSSIANS_STD, (n, 2)), labels


@register(
    "8gaussians",
    2,
    support=eight_gaussians_support,
    labelled=labelled_eight_gaussians,
    classes=EIGHT_GAUSSIANS_NAMES,
    mixture=eight_gaussians_mixture,
)
def eight_gaussians(n: int, seed: int = 42) -> np.ndarray:
    """FFJORD's eight Gaussians (std 0.354) on a circle of radius 2.83, equally likely: about [-3.9, 3.9]."""
    return labelled_eight_gaussians(n, seed)[0]
