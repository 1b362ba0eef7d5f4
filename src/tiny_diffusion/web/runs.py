"""The runs a server lists and the files it serves from them: only run directories directly inside the runs folder,
only files of the kinds below, and nothing whose real path (symbolic links followed) leaves that folder."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs.files import CONFIG, WEIGHTS, HistoryRow, read_history

__all__ = ["SERVED", "METRICS", "RunInfo", "list_runs", "find_run", "run_file", "is_run_dir", "self_contained"]

# The files a browser may fetch from a run, by name, with their media type: its figures and its small text files.
# Weights, arrays and checkpoints are not served.
SERVED = {
    "samples.png": "image/png",
    "frames.png": "image/png",
    "loss.png": "image/png",
    "diagnose.png": "image/png",
    "nfe.png": "image/png",
    "config.json": "application/json",
    "history.csv": "text/csv",
    "metrics.json": "application/json",
    "diagnose.json": "application/json",
    "nfe.json": "application/json",
}
# the figures a run's card shows, those present: training's, then what `diagnose` and `nfe` wrote into the run
FIGURES = ("samples.png", "frames.png", "loss.png", "diagnose.png", "nfe.png")
METRICS = "metrics.json"  # evaluate's JSON, where saved: tiny-diffusion evaluate RUN_DIR > RUN_DIR/metrics.json
_MAX_METRICS_BYTES = 64_000  # a metrics file larger than this is not evaluate's: left out


@dataclass
class RunInfo:
    """What the list of runs shows of one run."""

    name: str  # the folder's name inside the runs folder
    dataset: str
    epochs: int | None  # epochs trained (history.csv), None where unreadable
    final_loss: float | None  # mean loss of the last epoch
    seconds: float | None  # training time
    modified: float  # the folder's modification time (newest runs first)
    figures: list[str] = field(default_factory=list)  # of FIGURES, those present
    metrics: dict[str, float] = field(default_factory=dict)  # evaluate's numbers, if saved
    page: bool = True  # whether its interactive page is served (not for a run with links to files elsewhere)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "epochs": self.epochs,
            "final_loss": self.final_loss,
            "seconds": self.seconds,
            "figures": self.figures,
            "metrics": self.metrics,
            "page": self.page,
        }


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path``'s real location (links followed) is inside the real ``root``."""
    try:
        return path.resolve(strict=True).is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, or a loop of links
        return False


def is_run_dir(path: Path) -> bool:
    """A complete run directory: config.json and the weights (an unfinished run lives in .NAME.partial)."""
    return not path.name.startswith(".") and (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


def _run_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and is_run_dir(p) and _inside(p, root)]


def find_run(root: Path, name: str) -> Path | None:
    """The run directory called ``name`` among those listed in ``root``, or None: a name is looked up in the
    listing, never joined onto a path, so ``..``, separators and links that leave ``root`` find nothing."""
    return next((p for p in _run_dirs(root) if p.name == name), None)


def run_file(root: Path, name: str, filename: str) -> Path | None:
    """The file ``filename`` (one of SERVED) of run ``name``, if present and really inside that run; else None."""
    run = find_run(root, name)
    return None if run is None else _member(run, filename)


def _member(run: Path, filename: str) -> Path | None:
    """The file ``filename`` (one of SERVED) of the run directory ``run``, if present and really inside it."""
    path = run / filename
    return path if filename in SERVED and path.is_file() and _inside(path, run) else None


def self_contained(run: Path) -> bool:
    """Whether every entry of the run directory really lies inside it (no link to a file elsewhere): what must hold
    before the server reads the whole run (its interactive page loads the model)."""
    return all(_inside(entry, run) for entry in run.iterdir())


def list_runs(root: Path) -> list[RunInfo]:
    """Every run directory in ``root``, newest first."""
    runs = [_info(p) for p in _run_dirs(root)]
    return sorted(runs, key=lambda run: (-run.modified, run.name))


def _info(run: Path) -> RunInfo:
    try:
        dataset = str(json.loads((run / CONFIG).read_text())["config"]["dataset"])
    except (OSError, ValueError, KeyError, TypeError):
        dataset = "?"
    history = _history(run)
    last = history[-1] if history else None
    return RunInfo(
        name=run.name,
        dataset=Path(dataset).stem if dataset.lower().endswith((".csv", ".tsv", ".npy", ".npz")) else dataset,
        epochs=last.epoch if last else None,
        final_loss=last.loss if last else None,
        seconds=last.seconds if last else None,
        modified=run.stat().st_mtime,
        figures=[name for name in FIGURES if _member(run, name) is not None],
        metrics=_metrics(run),
        page=self_contained(run),
    )


def _history(run: Path) -> list[HistoryRow]:
    if _member(run, "history.csv") is None:
        return []
    try:
        return read_history(run)
    except ValueError:  # UsageError: an unreadable history leaves those columns empty
        return []


def _metrics(run: Path) -> dict[str, float]:
    """The numbers of a run's metrics.json (a flat JSON object of numbers, as evaluate prints), or none."""
    path = _member(run, METRICS)
    if path is None or path.stat().st_size > _MAX_METRICS_BYTES:
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in value.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
