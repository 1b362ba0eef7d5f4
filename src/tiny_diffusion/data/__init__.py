"""Datasets by name: each is a deterministic function of (n, seed) returning an (n, D) float32 array."""

from .registry import DATASETS, PointDataset, get_dataset
from . import points as _points  # noqa: F401  (registers the built-in point sets)

__all__ = ["DATASETS", "PointDataset", "get_dataset"]
