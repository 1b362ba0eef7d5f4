"""Geometric point sets: 2-D (blobs, circles, S curve, parallel lines, a mixture) and 3-D (sphere, helix, torus,
Swiss roll), each scaled to about [-4, 4] per axis like the dino, each a deterministic function of (n, seed)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .points import dino_support
from .registry import Densify, GaussianMixture, register

__all__ = ["parallel_lines", "lines_support", "random_mixture", "fibonacci_sphere"]


def _circle(radius: float, m: int = 400) -> np.ndarray:
    """m evenly spaced points on a circle about the origin, (m, 2)."""
    theta = np.linspace(0, 2 * np.pi, m, endpoint=False)
    return radius * np.stack((np.cos(theta), np.sin(theta)), axis=1)


# ---------------------------------------------------------------- scikit-learn's 2-D sets

_BLOB_CENTERS = _circle(2.5, 5) @ np.array([[0.0, 1.0], [-1.0, 0.0]])  # a pentagon, one corner pointing up
_BLOB_STD = 0.4


def labelled_blobs(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The ``blobs`` dataset with its labels: points (n, 2) and the index (n,) of each one's blob."""
    from sklearn.datasets import make_blobs  # imported here: scikit-learn is slow to import

    return make_blobs(n_samples=n, centers=_BLOB_CENTERS, cluster_std=_BLOB_STD, random_state=seed)


def blobs_mixture() -> GaussianMixture:
    """The blobs' density: five equally likely isotropic Gaussians of std 0.4. (make_blobs draws n // 5 points of
    each, the remainder from the first ones, and shuffles them: a stratified draw of this mixture.)"""
    k = len(_BLOB_CENTERS)
    return GaussianMixture(_BLOB_CENTERS.copy(), np.full((k, 2), _BLOB_STD), np.full(k, 1 / k))


# the blobs by where they sit on the pentagon, counter-clockwise from the top
BLOB_NAMES = ("top", "upper-left", "lower-left", "lower-right", "upper-right")


@register("blobs", 2, labelled=labelled_blobs, classes=BLOB_NAMES, mixture=blobs_mixture)
def blobs(n: int, seed: int = 42) -> np.ndarray:
    """Five Gaussian blobs (std 0.4) on a pentagon of radius 2.5 (scikit-learn make_blobs): about [-4, 4]."""
    return labelled_blobs(n, seed)[0]


_CIRCLES_SCALE = 3.5  # make_circles draws radii 1 and factor 0.5


def concentric_circles_support() -> np.ndarray:
    """The two circles, radii 3.5 and 1.75, 400 points each."""
    return np.concatenate((_circle(_CIRCLES_SCALE), _circle(_CIRCLES_SCALE / 2)))


@register("concentric_circles", 2, support=concentric_circles_support)
def concentric_circles(n: int, seed: int = 42) -> np.ndarray:
    """Two concentric circles of radii 3.5 and 1.75 (scikit-learn make_circles, noise 0.03 before scaling by 3.5)."""
    from sklearn.datasets import make_circles  # imported here: scikit-learn is slow to import

    X, _ = make_circles(n_samples=n, noise=0.03, factor=0.5, random_state=seed)
    return X * _CIRCLES_SCALE


def s_curve_support() -> np.ndarray:
    """The noiseless S, 800 points (scikit-learn's curve: x = sin t, z = sign(t) (cos t - 1), t in ±1.5 pi)."""
    t = np.linspace(-1.5 * np.pi, 1.5 * np.pi, 800)
    return 2 * np.stack((np.sin(t), np.sign(t) * (np.cos(t) - 1)), axis=1)


@register("s_curve", 2, support=s_curve_support)
def s_curve(n: int, seed: int = 42) -> np.ndarray:
    """An S in [-2, 2] x [-4, 4]: scikit-learn make_s_curve's x and z columns (noise 0.03), doubled."""
    from sklearn.datasets import make_s_curve  # imported here: scikit-learn is slow to import

    X, _ = make_s_curve(n_samples=n, noise=0.03, random_state=seed)
    return 2 * X[:, [0, 2]]


# ---------------------------------------------------------------- parallel line segments

LINE_LENGTH = 6.0
PLAIN_POINTS_PER_LINE = 50  # the plain line is this fixed, evenly spaced set, resampled to n
SUPPORT_POINTS_PER_LINE = 400


def _line_frame(lines: int, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors along and across the lines (2,), and each line's offset across (lines,).

    Lines sit 2 apart, closer when needed so that all of them fit in a band of width 6 about the origin."""
    a = np.deg2rad(angle)
    cos, sin = (0.0 if abs(v) < 1e-12 else v for v in (np.cos(a), np.sin(a)))  # 90 degrees: exactly vertical
    along, across = np.array([cos, sin]), np.array([-sin, cos])
    spacing = min(2.0, LINE_LENGTH / (lines - 1)) if lines > 1 else 0.0
    return along, across, (np.arange(lines) - (lines - 1) / 2) * spacing


# Each densify mode: (rng, line index of each point (n,), number of lines) -> (position along (n,), jitter across (n,))
def _plain_positions(rng: np.random.Generator, line_ix: np.ndarray, lines: int) -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(-LINE_LENGTH / 2, LINE_LENGTH / 2, PLAIN_POINTS_PER_LINE)
    return grid[rng.integers(0, PLAIN_POINTS_PER_LINE, len(line_ix))], np.zeros(len(line_ix))


def _uniform_positions(rng: np.random.Generator, line_ix: np.ndarray, lines: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(line_ix)
    return rng.uniform(-LINE_LENGTH / 2, LINE_LENGTH / 2, n), rng.uniform(-0.05, 0.05, n)


def _poisson_positions(rng: np.random.Generator, line_ix: np.ndarray, lines: int) -> tuple[np.ndarray, np.ndarray]:
    # A Poisson process along each line: exponential gaps, normalised so that the m points fill the segment.
    # (Given its count, such a process is distributed like m sorted uniform positions.)
    t = np.empty(len(line_ix))
    for k in range(lines):
        on_line = np.flatnonzero(line_ix == k)
        gaps = rng.exponential(size=len(on_line) + 1)
        positions = np.cumsum(gaps)[:-1] / gaps.sum() * LINE_LENGTH - LINE_LENGTH / 2
        t[on_line] = rng.permutation(positions)
    return t, rng.normal(0, 0.03, len(line_ix))


_DENSIFY: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "none": _plain_positions,
    "uniform": _uniform_positions,
    "poisson": _poisson_positions,
}


def parallel_lines(n: int, seed: int, *, lines: int, angle: float, densify: Densify) -> np.ndarray:
    """n points on ``lines`` parallel segments of length 6 at ``angle`` degrees, filled as ``densify`` says."""
    rng = np.random.default_rng(seed)
    along, across, offsets = _line_frame(lines, angle)
    line_ix = rng.integers(0, lines, n)
    t, jitter = _DENSIFY[densify](rng, line_ix, lines)
    return t[:, None] * along + (offsets[line_ix] + jitter)[:, None] * across  # (n, 2)


def lines_support(lines: int, angle: float) -> np.ndarray:
    """The exact segments, 400 evenly spaced points on each, (400 * lines, 2)."""
    along, across, offsets = _line_frame(lines, angle)
    t = np.linspace(-LINE_LENGTH / 2, LINE_LENGTH / 2, SUPPORT_POINTS_PER_LINE)
    return (t[None, :, None] * along + offsets[:, None, None] * across).reshape(-1, 2)


def _horizontal_support(*, lines: int = 1) -> np.ndarray:
    return lines_support(lines, 0.0)


def _vertical_support(*, lines: int = 1) -> np.ndarray:
    return lines_support(lines, 90.0)


def _inclined_support(*, lines: int = 3, angle: float = 30.0) -> np.ndarray:
    return lines_support(lines, angle)


@register("horizontal_lines", 2, support=_horizontal_support)
def horizontal_lines(n: int, seed: int = 42, *, lines: int = 1, densify: Densify = "none") -> np.ndarray:
    """Horizontal segments x in [-3, 3], up to 2 apart in y within [-3, 3]; plain: 50 even points per line."""
    return parallel_lines(n, seed, lines=lines, angle=0.0, densify=densify)


@register("vertical_lines", 2, support=_vertical_support)
def vertical_lines(n: int, seed: int = 42, *, lines: int = 1, densify: Densify = "none") -> np.ndarray:
    """Vertical segments y in [-3, 3], up to 2 apart in x within [-3, 3]; plain: 50 even points per line."""
    return parallel_lines(n, seed, lines=lines, angle=90.0, densify=densify)


@register("inclined_lines", 2, support=_inclined_support)
def inclined_lines(
    n: int, seed: int = 42, *, lines: int = 3, angle: float = 30.0, densify: Densify = "none"
) -> np.ndarray:
    """Parallel segments of length 6 at ``angle`` degrees, up to 2 apart, within about [-4.2, 4.2]; plain: 50 per line.

    ``densify``: "none" resamples 50 evenly spaced points per line (no jitter); "uniform" draws positions
    uniformly along the line with uniform jitter of ±0.05 across it; "poisson" draws positions from a Poisson
    process along the line (normalised exponential gaps) with Gaussian jitter of std 0.03 across it.
    """
    return parallel_lines(n, seed, lines=lines, angle=angle, densify=densify)


# ---------------------------------------------------------------- a mixture of shapes
# Each component: (m, rng) -> (m, 2) points in about [-1, 1]^2; the mixture places them in the four quadrants.


def _mini_dino(m: int, rng: np.random.Generator) -> np.ndarray:
    support = dino_support() / 4
    return support[rng.integers(0, len(support), m)] + rng.normal(0, 0.01, (m, 2))


def _ring(m: int, rng: np.random.Generator) -> np.ndarray:
    theta = rng.uniform(0, 2 * np.pi, m)
    return (0.9 + rng.normal(0, 0.02, m))[:, None] * np.stack((np.cos(theta), np.sin(theta)), axis=1)


def _diagonal_bar(m: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(-1, 1, m)
    return np.stack((t, t), axis=1) * 0.9 + rng.normal(0, 0.02, (m, 2))


def _blob_pair(m: int, rng: np.random.Generator) -> np.ndarray:
    centers = np.array([[-0.5, 0.0], [0.5, 0.0]])
    return centers[rng.integers(0, 2, m)] + rng.normal(0, 0.15, (m, 2))


_MIXTURE = ((_mini_dino, (-2.0, 2.0)), (_ring, (2.0, 2.0)), (_diagonal_bar, (-2.0, -2.0)), (_blob_pair, (2.0, -2.0)))
_MIXTURE_SCALE = 1.6


def random_mixture(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The ``random`` dataset with its labels: points (n, 2) and the index (n,) of the component each came from."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(_MIXTURE), n)
    points = np.empty((n, 2))
    for k, (component, center) in enumerate(_MIXTURE):
        chosen = labels == k
        points[chosen] = component(int(chosen.sum()), rng) * _MIXTURE_SCALE + center
    return points, labels


@register("random", 2, labelled=random_mixture, classes=("dino", "ring", "bar", "blobs"))
def random_shapes(n: int, seed: int = 42) -> np.ndarray:
    """Four shapes in the quadrants of about [-3.6, 3.6]^2: a small dino, a ring, a diagonal bar, two blobs."""
    return random_mixture(n, seed)[0]


# ---------------------------------------------------------------- 3-D


def fibonacci_sphere(m: int, radius: float) -> np.ndarray:
    """m nearly evenly spread points on a sphere (the Fibonacci lattice), (m, 3)."""
    i = np.arange(m) + 0.5
    z = 1 - 2 * i / m
    phi = np.pi * (1 + 5**0.5) * i  # golden angle steps
    r = np.sqrt(1 - z**2)
    return radius * np.stack((r * np.cos(phi), r * np.sin(phi), z), axis=1)


def sphere_support() -> np.ndarray:
    """2,000 Fibonacci-lattice points on the sphere of radius 3 (about 0.24 apart)."""
    return fibonacci_sphere(2000, 3.0)


@register("sphere", 3, support=sphere_support)
def sphere(n: int, seed: int = 42) -> np.ndarray:
    """Uniform on the sphere of radius 3 (normalised Gaussians), radius jittered uniformly by ±0.03."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n, 3))
    radius = 3.0 + rng.uniform(-0.03, 0.03, n)
    return g / np.linalg.norm(g, axis=1, keepdims=True) * radius[:, None]


_HELIX_TURNS, _HELIX_RADIUS, _HELIX_HALF_HEIGHT = 3, 2.5, 3.5


def _helix_at(t: np.ndarray) -> np.ndarray:
    theta = 2 * np.pi * _HELIX_TURNS * t
    z = (2 * t - 1) * _HELIX_HALF_HEIGHT
    return np.stack((_HELIX_RADIUS * np.cos(theta), _HELIX_RADIUS * np.sin(theta), z), axis=1)


def helix_support() -> np.ndarray:
    """1,500 evenly spaced points along the helix."""
    return _helix_at(np.linspace(0, 1, 1500))


@register("helix", 3, support=helix_support)
def helix(n: int, seed: int = 42) -> np.ndarray:
    """Three turns of radius 2.5 rising over z in [-3.5, 3.5], uniform along the curve, Gaussian jitter 0.05."""
    rng = np.random.default_rng(seed)
    return _helix_at(rng.uniform(0, 1, n)) + rng.normal(0, 0.05, (n, 3))


_TORUS_R, _TORUS_r = 2.5, 1.0  # distance of the tube's centre from the axis, tube radius


def _torus_at(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    ring = _TORUS_R + _TORUS_r * np.cos(v)
    return np.stack((ring * np.cos(u), ring * np.sin(u), _TORUS_r * np.sin(v)), axis=-1)


def torus_support() -> np.ndarray:
    """A 150 x 50 grid of angles on the torus surface (about 0.15 apart)."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 150, endpoint=False), np.linspace(0, 2 * np.pi, 50, endpoint=False))
    return _torus_at(u.ravel(), v.ravel())


@register("torus", 3, support=torus_support)
def torus(n: int, seed: int = 42) -> np.ndarray:
    """Uniform on a torus surface (axis z, radii 2.5 and 1) within [-3.5, 3.5]^2 x [-1, 1], no jitter."""
    rng = np.random.default_rng(seed)
    v = np.empty(0)
    while len(v) < n:  # the surface is denser on the outside: accept v with probability (R + r cos v) / (R + r)
        candidates = rng.uniform(0, 2 * np.pi, 2 * n)
        keep = rng.uniform(0, 1, 2 * n) < (_TORUS_R + _TORUS_r * np.cos(candidates)) / (_TORUS_R + _TORUS_r)
        v = np.concatenate((v, candidates[keep]))
    return _torus_at(rng.uniform(0, 2 * np.pi, n), v[:n])


_ROLL_CENTER, _ROLL_SCALE = np.array([1.5, 10.5, 1.5]), 1 / 3.2  # scikit-learn's roll spans x -9.5..12.6, y 0..21


def swiss_roll_support() -> np.ndarray:
    """A 300 x 30 grid over the roll's two parameters (scikit-learn's t in [1.5 pi, 4.5 pi], height in [0, 21])."""
    t, y = np.meshgrid(np.linspace(1.5 * np.pi, 4.5 * np.pi, 300), np.linspace(0, 21, 30))
    t, y = t.ravel(), y.ravel()
    return (np.stack((t * np.cos(t), y, t * np.sin(t)), axis=1) - _ROLL_CENTER) * _ROLL_SCALE


@register("swiss_roll", 3, support=swiss_roll_support)
def swiss_roll(n: int, seed: int = 42) -> np.ndarray:
    """scikit-learn's Swiss roll (noise 0.15) centred, divided by 3.2: about [-3.5, 3.5] x [-3.3, 3.3] x [-4, 4]."""
    from sklearn.datasets import make_swiss_roll  # imported here: scikit-learn is slow to import

    X, _ = make_swiss_roll(n_samples=n, noise=0.15, random_state=seed)
    return (X - _ROLL_CENTER) * _ROLL_SCALE
