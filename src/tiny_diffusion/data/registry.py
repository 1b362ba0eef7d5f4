"""The dataset registry: name -> PointDataset."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UsageError

__all__ = ["DATASETS", "PointDataset", "register", "get_dataset"]


@dataclass(frozen=True)
class PointDataset:
    """A point set: ``make(n, seed)`` draws n points; ``support`` (if known) gives the exact shape's points."""

    name: str
    dim: int
    make: Callable[[int, int], np.ndarray]
    description: str
    support: Callable[[], np.ndarray] | None = None

    def sample(self, n: int, seed: int = 42) -> np.ndarray:
        """n points as a float32 array of shape (n, dim)."""
        if n < 1:
            raise UsageError(f"a dataset needs n >= 1 points, got {n}")
        return np.asarray(self.make(n, seed), dtype=np.float32)


DATASETS: dict[str, PointDataset] = {}


def register(name: str, dim: int, *, support: Callable[[], np.ndarray] | None = None):
    """Decorator: add ``make(n, seed)`` to the registry; its docstring's first line is the description."""

    def wrap(make: Callable[[int, int], np.ndarray]) -> Callable[[int, int], np.ndarray]:
        doc = inspect.getdoc(make) or name
        DATASETS[name] = PointDataset(name, dim, make, doc.splitlines()[0], support)
        return make

    return wrap


def get_dataset(name: str) -> PointDataset:
    """The registered dataset called ``name``; an unknown name fails listing the valid ones."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]
