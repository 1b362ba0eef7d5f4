"""The original tiny-diffusion's 2-D point sets, defined exactly as there (seed 42 reproduces its data)."""

from __future__ import annotations

import importlib.resources
from functools import lru_cache

import numpy as np

from .registry import GaussianMixture, register

# scikit-learn takes about a second to import, so it is imported inside the functions that draw from it:
# listing the datasets (and `tiny-diffusion --help`) does not pay for it.


@lru_cache(maxsize=1)
def _datasaurus_dino_raw() -> np.ndarray:
    """The 142 (x, y) points of the Datasaurus dino, in its own units (x 22..98, y 3..100), from dino.csv."""
    with (importlib.resources.files(__package__) / "dino.csv").open() as f:
        xy = np.loadtxt(f, delimiter=",", dtype=np.float64)  # (142, 2); "#" lines are the source note
    xy.flags.writeable = False  # cached: the same array every time
    return xy


_DINO_JITTER = 0.15  # standard deviation of the jitter, in the raw units
_DINO_SCALE = np.array([4 / 54, 4 / 48])  # how _scale_dino stretches each coordinate (so the jitter)


def _scale_dino(xy: np.ndarray) -> np.ndarray:
    # the original's scaling to roughly [-4, 4]
    return np.stack(((xy[:, 0] / 54 - 1) * 4, (xy[:, 1] / 48 - 1) * 4), axis=1)


def dino_support() -> np.ndarray:
    """The 142 dino points, scaled like the dataset (no jitter)."""
    return _scale_dino(_datasaurus_dino_raw())


def dino_mixture() -> GaussianMixture:
    """The dino's exact density: 142 equally likely Gaussians, one on each (scaled) point, with the jitter's
    standard deviation scaled as the points are (0.15 * 4 / 54 = 0.0111 in x, 0.15 * 4 / 48 = 0.0125 in y)."""
    means = dino_support()
    stds = np.tile(_DINO_JITTER * _DINO_SCALE, (len(means), 1))  # (142, 2)
    return GaussianMixture(means, stds, np.full(len(means), 1 / len(means)))


@register("dino", 2, support=dino_support, mixture=dino_mixture)
def dino(n: int, seed: int = 42) -> np.ndarray:
    """The Datasaurus dino: its 142 points resampled with jitter 0.15 (raw units), scaled to about [-4, 4]."""
    raw = _datasaurus_dino_raw()
    rng = np.random.default_rng(seed)
    ix = rng.integers(0, len(raw), n)
    x = raw[ix, 0] + rng.normal(size=n) * _DINO_JITTER
    y = raw[ix, 1] + rng.normal(size=n) * _DINO_JITTER
    return _scale_dino(np.stack((x, y), axis=1))


def _stretch_moons(X: np.ndarray) -> np.ndarray:
    return np.stack(((X[:, 0] + 0.3) * 2 - 1, (X[:, 1] + 0.3) * 3 - 1), axis=1)


def moons_support() -> np.ndarray:
    """The two half circles without noise, 2,000 points each (about 0.005 apart), stretched like the dataset."""
    from sklearn.datasets import make_moons

    X, _ = make_moons(n_samples=4000, shuffle=False, noise=None)
    return _stretch_moons(X)


@register("moons", 2, support=moons_support)
def moons(n: int, seed: int = 42) -> np.ndarray:
    """Two interleaved half circles (scikit-learn, noise 0.03), stretched to about [-2, 2] x [-2.5, 3]."""
    from sklearn.datasets import make_moons

    X, _ = make_moons(n_samples=n, random_state=seed, noise=0.03)
    return _stretch_moons(X)


def line_support() -> np.ndarray:
    """A grid over the band, 0.05 apart: every point of the band lies within 0.036 of a node."""
    x, y = np.meshgrid(np.linspace(-2, 2, 81), np.linspace(-4, 4, 161))
    return np.stack((x.ravel(), y.ravel()), axis=1)


@register("line", 2, support=line_support)
def line(n: int, seed: int = 42) -> np.ndarray:
    """Uniform on the rectangle [-2, 2] x [-4, 4] (the original's "line": a thick vertical band)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, n)
    y = rng.uniform(-1, 1, n)
    return np.stack((x, y), axis=1) * 4


def _circle_directions(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # the original's normalisation; x = y = 0 stays at the centre
    norm = np.sqrt(x**2 + y**2) + 1e-10
    return x / norm, y / norm


def circle_support() -> np.ndarray:
    """The 17 points the rounded angles can reach (16 on the circle, and its centre, which x = y = 0 gives)."""
    grid = np.round(np.linspace(-0.4, 0.4, 5), 1)  # the values np.round(u / 2, 1) * 2 takes for u in [-0.5, 0.5)
    x, y = (a.ravel() for a in np.meshgrid(grid, grid))
    directions = np.stack(_circle_directions(x, y), axis=1).round(6) + 0.0  # + 0.0 turns -0.0 into 0.0
    return np.unique(directions, axis=0) * 3


@register("circle", 2, support=circle_support)
def circle(n: int, seed: int = 42) -> np.ndarray:
    """Points on a circle of radius 3 at grid-rounded angles (and a few at its centre), jittered by up to 0.09."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(-0.5, 0.5, n) / 2, 1) * 2
    y = np.round(rng.uniform(-0.5, 0.5, n) / 2, 1) * 2
    x, y = _circle_directions(x, y)
    theta = 2 * np.pi * rng.uniform(0, 1, n)
    r = rng.uniform(0, 0.03, n)
    x += r * np.cos(theta)
    y += r * np.sin(theta)
    return np.stack((x, y), axis=1) * 3
