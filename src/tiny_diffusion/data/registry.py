"""The dataset registry: name -> PointDataset, plus the options some datasets take.

A dataset is a function ``make(n, seed, *, <options>)``; its keyword-only parameters are its options, and they
must be among ``OPTION_NAMES``. The CLI passes every option to every dataset, so ``PointDataset.sample`` validates
the values it is given and hands on only the options the dataset accepts.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import UsageError

__all__ = [
    "DATASETS",
    "OPTION_NAMES",
    "Densify",
    "GaussianMixture",
    "PointDataset",
    "register",
    "get_dataset",
    "check_options",
]

Densify = Literal["none", "uniform", "poisson"]
DENSIFY: tuple[str, ...] = ("none", "uniform", "poisson")


def _check_densify(value: Any) -> str:
    if value not in DENSIFY:
        raise UsageError(f"densify must be one of {', '.join(DENSIFY)}; got {value!r}")
    return value


def _check_int(name: str, low: int, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        ok = ok and value >= low and (high is None or value <= high)
        if not ok:
            wanted = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
            raise UsageError(f"{name} must be {wanted}; got {value!r}")
        return int(value)

    return check


def _check_angle(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise UsageError(f"angle must be a finite number of degrees; got {value!r}")
    return float(value)


# option name -> validator returning the normalised value (or raising UsageError)
_OPTION_CHECKS: dict[str, Callable[[Any], Any]] = {
    "densify": _check_densify,  # how points fill a line: evenly spaced / uniform / Poisson process
    "lines": _check_int("lines", 1),  # number of parallel line segments
    "angle": _check_angle,  # direction of the lines, degrees counter-clockwise from the x axis
    "digit": _check_int("digit", 0, 9),  # which MNIST digit
    "image_index": _check_int("image_index", 0),  # which image of that digit
}
OPTION_NAMES: tuple[str, ...] = tuple(_OPTION_CHECKS)


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validated copies of known options; ``None`` means "not given" and is dropped; an unknown name fails."""
    out = {}
    for key, value in options.items():
        if key not in _OPTION_CHECKS:
            raise UsageError(f"unknown dataset option {key!r}; known options: {', '.join(OPTION_NAMES)}")
        if value is not None:
            out[key] = _OPTION_CHECKS[key](value)
    return out


def _keyword_defaults(fn: Callable) -> dict[str, Any]:
    """The keyword-only parameters of ``fn`` and their defaults (``inspect.Parameter.empty`` if none)."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


@dataclass(frozen=True)
class GaussianMixture:
    """A mixture of Gaussians with diagonal covariances, in the data's units: the exact density of a dataset drawn
    as one (pick component k with probability weights[k], then add N(0, diag(stds[k]^2)) to means[k])."""

    means: np.ndarray  # (K, D)
    stds: np.ndarray  # (K, D): each component's standard deviation along each coordinate
    weights: np.ndarray  # (K,), summing to 1

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.stds.shape != (k, d) or self.weights.shape != (k,) or not np.isclose(self.weights.sum(), 1):
            raise ValueError(
                f"a mixture needs means (K, D), stds (K, D) and weights (K,) summing to 1; got "
                f"{self.means.shape}, {self.stds.shape}, {self.weights.shape}"
            )


@dataclass(frozen=True)
class PointDataset:
    """A point set: ``make(n, seed, **options)`` draws n points; ``support(**options)`` (if known) gives the
    exact shape's points, for precision and recall. ``options`` names the keyword options ``make`` takes.

    A set made of named parts (the shapes of ``random``, the blobs, the sub-datasets of a long table) also has
    ``labelled(n, seed)``: the same draw as ``make`` with the index (n,) of each point's part, named by ``classes``.
    A set drawn from a Gaussian mixture (dino, blobs, 8gaussians) has ``mixture()``, its exact density.

    ``unit`` (dim,) is the length per coordinate that metrics measure in (``in_metric_units``): None for the
    registered sets, made near unit scale, whose radii are in their own units; a point file's is its points'
    standard deviation, so a radius means the same on a file in any units.
    """

    name: str
    dim: int
    make: Callable[..., np.ndarray]
    description: str
    support: Callable[..., np.ndarray] | None = None
    options: tuple[str, ...] = ()
    labelled: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
    classes: tuple[str, ...] = ()
    gaussian_mixture: Callable[[], GaussianMixture] | None = None
    unit: np.ndarray | None = None

    def mixture(self) -> GaussianMixture | None:
        """The Gaussian mixture ``make`` draws from (its exact density), or None where the set is not one."""
        return None if self.gaussian_mixture is None else self.gaussian_mixture()

    def accepted(self, options: dict[str, Any]) -> dict[str, Any]:
        """The validated options this dataset takes; the others (all still validated) are dropped."""
        return {k: v for k, v in check_options(options).items() if k in self.options}

    def sample(self, n: int, seed: int = 42, **options: Any) -> np.ndarray:
        """n points as a float32 array of shape (n, dim); options this dataset does not take are ignored."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise UsageError(f"a dataset needs n >= 1 points, got {n!r}")
        return np.asarray(self.make(int(n), seed, **self.accepted(options)), dtype=np.float32)

    def sample_labelled(self, n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
        """n points (n, dim) float32 and their labels (n,) int64, indices into ``classes``."""
        if self.labelled is None:
            labelled = ", ".join(name for name, d in DATASETS.items() if d.labelled is not None)
            raise UsageError(
                f"dataset {self.name} has no labels; labelled point sets: {labelled}, or a table "
                "with a `dataset` column naming each row's shape"
            )
        self.sample(n, seed)  # validates n
        points, labels = self.labelled(int(n), seed)
        return np.asarray(points, dtype=np.float32), np.asarray(labels, dtype=np.int64)

    def in_metric_units(self, points: np.ndarray) -> np.ndarray:
        """``points`` (N, dim) in the units that metrics measure in: each coordinate divided by ``unit``, if any."""
        return points if self.unit is None else points / self.unit

    def support_points(self, **options: Any) -> np.ndarray | None:
        """The exact shape for these options as a float64 (M, dim) array, or None where it is not known.

        Options left out take ``make``'s defaults, so the support always matches ``sample`` with the same options.
        """
        if self.support is None:
            return None
        chosen = {**_keyword_defaults(self.make), **self.accepted(options)}
        wanted = _keyword_defaults(self.support)
        return np.asarray(self.support(**{k: v for k, v in chosen.items() if k in wanted}), dtype=np.float64)


DATASETS: dict[str, PointDataset] = {}


def register(
    name: str,
    dim: int,
    *,
    support: Callable[..., np.ndarray] | None = None,
    labelled: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None,
    classes: Sequence[str] = (),
    mixture: Callable[[], GaussianMixture] | None = None,
):
    """Decorator: add ``make(n, seed, *, options)`` to the registry; its docstring's first line is the description.

    ``make``'s keyword-only parameters become the dataset's options; ``support`` may take a subset of them, and
    where it does its defaults must be ``make``'s (so ``support()`` alone describes ``sample(n)`` alone).
    ``labelled(n, seed)`` and ``classes`` are for sets of named parts (see ``PointDataset``); ``mixture()`` gives
    the Gaussian mixture of a set drawn from one (a set with options cannot have one: it would depend on them).
    """
    if (labelled is None) != (not classes):
        raise TypeError(f"dataset {name!r}: labelled and classes go together")

    def wrap(make: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        options = _keyword_defaults(make)
        unknown = set(options) - set(OPTION_NAMES)
        if unknown:
            raise TypeError(f"dataset {name!r}: options {sorted(unknown)} are not among {OPTION_NAMES}")
        if mixture is not None and options:
            raise TypeError(f"dataset {name!r}: a mixture is for datasets without options")
        for key, default in (_keyword_defaults(support) if support else {}).items():
            if key not in options or options[key] != default:
                raise TypeError(f"dataset {name!r}: support option {key!r} must be an option of make, same default")
        doc = inspect.getdoc(make) or name
        DATASETS[name] = PointDataset(
            name, dim, make, doc.splitlines()[0], support, tuple(options), labelled, tuple(classes), mixture
        )
        return make

    return wrap


def _looks_like_path(name: str) -> bool:
    from .files import POINT_FILE_SUFFIXES

    return Path(name).suffix.lower() in POINT_FILE_SUFFIXES or "/" in name or "\\" in name


def get_dataset(
    name: str, *, columns: Sequence[str] | str | None = None, subset: str | None = None, labelled: bool = False
) -> PointDataset:
    """The registered dataset called ``name``, or, if ``name`` is a path to a point file, that file's points.

    ``columns``, ``subset`` and ``labelled`` apply to point files only (see ``files.file_dataset``) and are ignored
    for registered names. An unknown name that is not a path fails listing the valid names.
    """
    if name in DATASETS:
        return DATASETS[name]
    if _looks_like_path(name):
        from .files import file_dataset

        return file_dataset(name, columns=columns, subset=subset, labelled=labelled)
    names = ", ".join(DATASETS)
    raise UsageError(f"unknown dataset {name!r}; choose from {names} (or give a .csv, .tsv, .npy or .npz path)")
