"""The datasets by name, for a notebook: ``names()``, ``get(name)`` and ``sample(name, n)``.

Point sets draw (n, D) float32 arrays; image sets (``mnist5k``, ``digits8``, ``mnist``) give their train and test
splits as (N, C, H, W) arrays in [-1, 1]. A path to a .csv, .tsv, .npy or .npz file of points is a dataset too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .data import DATASETS, IMAGE_DATASETS, ImageDataset, PointDataset, get_dataset, get_image_dataset
from .errors import UsageError

__all__ = ["names", "get", "sample", "PointDataset", "ImageDataset"]


def names(kind: str = "all") -> list[str]:
    """The registered dataset names: ``kind`` "points", "images" or "all"."""
    if kind not in ("points", "images", "all"):
        raise UsageError(f"kind must be points, images or all, got {kind!r}")
    return [*(DATASETS if kind != "images" else ()), *(IMAGE_DATASETS if kind != "points" else ())]


def get(name: str) -> PointDataset | ImageDataset:
    """The dataset called ``name`` (or the point file at that path); an unknown name lists the valid ones."""
    return get_image_dataset(name) if name in IMAGE_DATASETS else get_dataset(name)


def sample(name: str, n: int, *, seed: int = 0, **options: Any) -> np.ndarray:
    """``n`` points (n, D) of a point set (options such as ``lines=3`` where it takes them), or the first ``n``
    training images (n, C, H, W) of an image set."""
    dataset = get(name)
    if isinstance(dataset, ImageDataset):
        images, _ = dataset.images("train", data_dir=options.get("data_dir"))
        return images[:n]
    return dataset.sample(n, seed, **options)
