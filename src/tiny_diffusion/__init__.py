"""Tiny Diffusion: small, readable probabilistic diffusion models (DDPM) for point sets and images.

    import tiny_diffusion as td
    model = td.train(dataset="moons", num_epochs=60, out="runs/moons")
    x = model.sample(1000)
    model = td.Diffusion.load("runs/moons")
    td.evaluate(model)

The names below load on first use, so ``import tiny_diffusion`` (and the command line's ``--help``) stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import SettingWarning, UsageError

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "train": "api",
    "train_summary": "api",
    "evaluate": "api",
    "settings": "api",
    "exact": "api",
    "diagnose": "api",
    "nfe": "api",
    "Diffusion": "diffusion",
    "Trajectory": "diffusion",
    "Sampling": "diffusion",
    "Snapshot": "runs.job",
    "TrainSummary": "runs.job",
    "TrainConfig": "config",
    "NoiseSchedule": "core.schedule",
    "sample": "core.samplers",
}
_MODULES = ("datasets",)

__all__ = [
    "train",
    "train_summary",
    "evaluate",
    "settings",
    "exact",
    "diagnose",
    "nfe",
    "Diffusion",
    "Trajectory",
    "Sampling",
    "Snapshot",
    "TrainSummary",
    "TrainConfig",
    "NoiseSchedule",
    "sample",
    "datasets",
    "UsageError",
    "SettingWarning",
    "__version__",
]

if TYPE_CHECKING:
    from . import datasets
    from .api import diagnose, evaluate, exact, nfe, settings, train, train_summary
    from .config import TrainConfig
    from .core.samplers import sample
    from .core.schedule import NoiseSchedule
    from .diffusion import Diffusion, Sampling, Trajectory
    from .runs.job import Snapshot, TrainSummary


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # look it up once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
