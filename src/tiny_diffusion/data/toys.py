"""The toy densities of the normalizing-flow and flow-matching papers, defined as in FFJORD (Grathwohl et al. 2019,
https://github.com/rtqichen/ffjord, ``lib/toy_data.py``), drawn with NumPy's ``default_rng(seed)``: 8gaussians (a
Gaussian mixture), checkerboard (uniform on eight squares: a known density), 2spirals and pinwheel (with their
spirals and arms as classes)."""

from __future__ import annotations

import numpy as np

from .registry import GaussianMixture, register

__all__ = ["EIGHT_GAUSSIANS_CENTERS", "eight_gaussians_mixture", "checkerboard_log_prob", "CHECKERBOARD_DENSITY"]

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


# --- checkerboard: uniform on the eight dark squares of a 4 x 4 board on [-4, 4]^2 ------------------------------
# FFJORD: x1 = 4 u - 2, x2 = v - 2 b + (floor(x1) mod 2) with u, v uniform and b a fair bit, both times 2; so the
# squares [2i, 2i + 2] x [2j, 2j + 2] (i, j from -2 to 1) with i + j even, each drawn with probability 1/8, and the
# density is 1/32 on them (0 elsewhere).
CHECKERBOARD_DENSITY = 1 / 32


def checkerboard_squares() -> np.ndarray:
    """(8, 2) lower-left corners of the checkerboard's squares (side 2)."""
    return np.array([(2 * i, 2 * j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0], dtype=float)


def checkerboard_support(spacing: float = 0.05) -> np.ndarray:
    """Grid nodes ``spacing`` apart filling the eight squares: where the density is 1/32."""
    axis = np.arange(spacing / 2, 2, spacing)
    cell = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    return (checkerboard_squares()[:, None, :] + cell[None]).reshape(-1, 2)


def checkerboard_log_prob(x: np.ndarray) -> np.ndarray:
    """(N,) natural-log density of points (N, 2) under the checkerboard: log(1/32) on its squares, -inf off them."""
    cell = np.floor(np.asarray(x) / 2)
    inside = (np.abs(x) <= 4).all(axis=1) & ((cell.sum(axis=1) % 2) == 0)
    return np.where(inside, np.log(CHECKERBOARD_DENSITY), -np.inf)


@register("checkerboard", 2, support=checkerboard_support)
def checkerboard(n: int, seed: int = 42) -> np.ndarray:
    """FFJORD's checkerboard: uniform on 8 squares of side 2 of a 4 x 4 board on [-4, 4]^2 (density 1/32)."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return 2 * np.stack([x1, x2], axis=1)


# --- 2spirals: two interleaved spirals, each a class ------------------------------------------------------------
# FFJORD: n = sqrt(u) 540 degrees (in radians), (x, y) = (-cos(n) n, sin(n) n) + uniform [0, 0.5)^2 jitter, the
# second spiral the first turned by 180 degrees, everything divided by 3 and then N(0, 0.1^2) noise added.
SPIRAL_TURN = 540 * 2 * np.pi / 360
SPIRAL_NAMES = ("first", "second")


def _spiral(n: np.ndarray) -> np.ndarray:
    return np.stack([-np.cos(n) * n, np.sin(n) * n], axis=1)


def two_spirals_support(count: int = 4000) -> np.ndarray:
    """Both spirals' centre lines (the curve shifted by the jitter's mean 0.25, divided by 3), ``count`` points each,
    evenly spaced along the angle: the shape precision and recall measure against."""
    first = (_spiral(np.linspace(0, SPIRAL_TURN, count)) + 0.25) / 3
    return np.concatenate([first, -first])


def labelled_two_spirals(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """``2spirals`` with its labels: points (n, 2) and which spiral (n,) each is on (each spiral half the points)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    points = _spiral(np.sqrt(rng.uniform(0, 1, n)) * SPIRAL_TURN) + rng.uniform(0, 0.5, (n, 2))
    points = np.where(labels[:, None] == 0, points, -points) / 3
    return points + rng.normal(0, 0.1, (n, 2)), labels


@register("2spirals", 2, support=two_spirals_support, labelled=labelled_two_spirals, classes=SPIRAL_NAMES)
def two_spirals(n: int, seed: int = 42) -> np.ndarray:
    """FFJORD's two interleaved spirals (one and a half turns each, about [-4, 4]^2); each spiral a class."""
    return labelled_two_spirals(n, seed)[0]


# --- pinwheel: five curved arms, each a class ----------------------------------------------------------------------
# FFJORD (after Johnson et al. 2016): f = (1 + N(0, 0.3^2), N(0, 0.1^2)) rotated by the arm's angle 2 pi k / 5 plus
# 0.25 exp(f_1), then times 2.
PINWHEEL_ARMS = 5
PINWHEEL_STDS = (0.3, 0.1)  # radial, tangential
PINWHEEL_RATE = 0.25
PINWHEEL_NAMES = tuple(f"arm{k}" for k in range(PINWHEEL_ARMS))


def _pinwheel(features: np.ndarray, arms: np.ndarray) -> np.ndarray:
    angles = 2 * np.pi * arms / PINWHEEL_ARMS + PINWHEEL_RATE * np.exp(features[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    return 2 * np.stack([c * features[:, 0] - s * features[:, 1], s * features[:, 0] + c * features[:, 1]], axis=1)


def pinwheel_support(count: int = 400) -> np.ndarray:
    """Each arm's band: its features within 2.5 standard deviations in both directions (1 +- 2.5 * 0.3 radially,
    +- 0.25 tangentially; 98.8% of each), a ``count`` x 9 grid of them an arm, mapped as the data are: the shape
    precision and recall measure against."""
    radial, tangential = np.meshgrid(1 + np.linspace(-2.5, 2.5, count) * PINWHEEL_STDS[0],
                                     np.linspace(-2.5, 2.5, 9) * PINWHEEL_STDS[1])  # fmt: skip
    features = np.stack([radial.ravel(), tangential.ravel()], axis=1)
    return np.concatenate([_pinwheel(features, np.full(len(features), k)) for k in range(PINWHEEL_ARMS)])


def labelled_pinwheel(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """``pinwheel`` with its labels: points (n, 2) and the arm (n,) each lies on."""
    rng = np.random.default_rng(seed)
    arms = rng.integers(0, PINWHEEL_ARMS, n)
    features = rng.normal(0, 1, (n, 2)) * PINWHEEL_STDS + (1, 0)
    return _pinwheel(features, arms), arms


@register("pinwheel", 2, support=pinwheel_support, labelled=labelled_pinwheel, classes=PINWHEEL_NAMES)
def pinwheel(n: int, seed: int = 42) -> np.ndarray:
    """FFJORD's pinwheel: five curved arms (Johnson et al. 2016), about [-4, 4]^2; each arm a class."""
    return labelled_pinwheel(n, seed)[0]
