"""What the playground may ask for: a run's name, its data (points drawn with the mouse, or a registered point
dataset) and an allow-list of settings, each within bounds that keep a training on one machine small. The settings
are then checked by ``TrainConfig`` itself; every refusal is a ``UsageError`` of one line."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..data import DATASETS
from ..errors import UsageError
from ..runs.staging import partial_dir

__all__ = [
    "DATASET_NAMES",
    "MIN_POINTS",
    "MAX_POINTS",
    "SETTINGS",
    "DEFAULTS",
    "Taken",
    "TrainingRequest",
    "parse_request",
    "drawing_csv",
    "write_drawing",
]

MIN_POINTS, MAX_POINTS = 10, 20_000  # drawn points
DRAWINGS = ".playground"  # the folder of the runs folder that keeps the drawings runs train on (not a run)
DATASET_NAMES = tuple(name for name, dataset in DATASETS.items() if dataset.dim == 2)  # what a canvas shows
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

# setting -> (lowest, highest) the playground accepts; None: TrainConfig's own check only
SETTINGS: dict[str, tuple[float, float] | None] = {
    "method": None,
    "num_epochs": (1, 5000),
    "learning_rate": (0, 1),
    "num_timesteps": (2, 2000),
    "beta_schedule": None,
    "hidden_size": (1, 512),
    "hidden_layers": (0, 8),
    "embedding_size": (1, 256),
    "num_samples": (1, 100_000),
    "train_batch_size": (1, 4096),
    "eval_batch_size": (1, 5000),
    "save_images_step": (1, 5000),
    "seed": (0, 2**31 - 1),
}
# the form's starting values: a drawing of a few hundred points learns in about a minute on a CPU
DEFAULTS: dict[str, Any] = {
    "method": "ddpm",  # or flow; a flow run leaves num_timesteps and beta_schedule aside
    "num_epochs": 100,
    "learning_rate": 2e-3,
    "num_timesteps": 100,
    "beta_schedule": "linear",
    "hidden_size": 64,
    "hidden_layers": 2,
    "embedding_size": 32,
    "num_samples": 2000,
    "train_batch_size": 128,
    "eval_batch_size": 500,
    "save_images_step": 5,
    "seed": 0,
}


class Taken(UsageError):
    """The name asked for is a run's already (the server answers 409)."""


@dataclass
class TrainingRequest:
    """A checked request to train: the run's name, its settings (the dataset aside) and its data."""

    name: str
    settings: dict[str, Any]  # TrainConfig settings, without the dataset
    dataset: str | None  # a registered point dataset, or None for the drawn points
    points: np.ndarray | None  # (N, 2) drawn points, or None

    def config_values(self, runs_dir: Path) -> dict[str, Any]:
        """The settings with the dataset: the registered one, or the drawing's CSV file (``drawing_csv``)."""
        dataset = self.dataset if self.dataset is not None else str(drawing_csv(runs_dir, self.name).resolve())
        return {**self.settings, "dataset": dataset}


def drawing_csv(runs_dir: Path, name: str) -> Path:
    """Where run ``name``'s drawn points are kept, as a point file (x,y with a header row)."""
    return runs_dir / DRAWINGS / f"{name}.csv"


def write_drawing(path: Path, points: np.ndarray) -> None:
    """The points as a CSV point file: a header row x,y, then one point a line (``data.files`` reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x,y\n" + "".join(f"{x:.6g},{y:.6g}\n" for x, y in points))


def parse_request(body: Any, runs_dir: Path) -> TrainingRequest:
    """A training request from the JSON body {"name", "dataset" or "points", "settings"}, checked."""
    if not isinstance(body, dict):
        raise UsageError("the request must be a JSON object with name, settings and dataset or points")
    unknown = set(body) - {"name", "dataset", "points", "settings"}
    if unknown:
        raise UsageError(f"unknown field {sorted(unknown)[0]!r}; give name, settings and dataset or points")
    settings = _settings(body.get("settings", {}))
    dataset, points = body.get("dataset"), body.get("points")
    if (dataset is None) == (points is None):
        raise UsageError("give either points (drawn) or dataset (a registered name), not both")
    if dataset is not None and (not isinstance(dataset, str) or dataset not in DATASET_NAMES):
        raise UsageError(f"unknown dataset {str(dataset)[:40]!r}; choose from {', '.join(DATASET_NAMES)}")
    drawn = _points(points) if points is not None else None
    name = _name(body.get("name"), dataset or "drawing", runs_dir)
    # TrainConfig checks the settings together (batch <= samples, ...); a drawing's file is not read for that
    try:
        TrainConfig.from_dict({**settings, "dataset": dataset or "drawing.csv"})
    except UsageError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    return TrainingRequest(name, settings, dataset, drawn)


def _settings(given: Any) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise UsageError("settings must be a JSON object of setting names to values")
    settings = {**DEFAULTS}
    for name, value in given.items():
        if name not in SETTINGS:
            raise UsageError(f"the playground does not set {str(name)[:40]!r}; it sets {', '.join(SETTINGS)}")
        bounds = SETTINGS[name]
        if bounds is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"{name} must be a number, got {str(value)[:40]!r}")
            low, high = bounds
            if not low <= value <= high:
                raise UsageError(f"{name} must be between {low:g} and {high:g} here, got {value:g}")
        settings[name] = value
    return settings


def _points(points: Any) -> np.ndarray:
    if not isinstance(points, list):
        raise UsageError("points must be a list of [x, y] pairs")
    if not MIN_POINTS <= len(points) <= MAX_POINTS:
        raise UsageError(f"draw between {MIN_POINTS} and {MAX_POINTS} points, got {len(points)}")
    ok = all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p)
        for p in points
    )
    if not ok:
        raise UsageError("points must be a list of [x, y] pairs of finite numbers")
    array = np.asarray(points, dtype=np.float64)  # (N, 2)
    if np.ptp(array, axis=0).min() == 0:
        raise UsageError("the points lie on one line parallel to an axis: draw in two directions")
    return array


def _name(name: Any, stem: str, runs_dir: Path) -> str:
    """The run's name: the one given (a plain name, not taken), else the first free of STEM, STEM-2, STEM-3 ..."""
    if name is None or name == "":
        candidates = (stem if k == 1 else f"{stem}-{k}" for k in itertools.count(1))
        return next(candidate for candidate in candidates if _free(runs_dir, candidate))
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError("name the run with up to 64 letters, digits, - and _ (starting with a letter or digit)")
    if not _free(runs_dir, name):
        raise Taken(f"a run (or an unfinished run) named {name} is already in {runs_dir}: pick another name")
    return name


def _free(runs_dir: Path, name: str) -> bool:
    run = runs_dir / name
    return not run.exists() and not partial_dir(run).exists() and not drawing_csv(runs_dir, name).exists()
