"""What a finished training leaves in its run directory: config.json's record of the settings and the data, the
weights, losses, snapshots, final samples, history and figures (the layout is described in ``files``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..config import TrainConfig
from ..core.training import TrainResult
from ..data.prepare import TrainingData
from ..diffusion import balanced_labels
from ..viz import figures as viz
from .files import GUIDE, WEIGHTS, save_history, save_npy, save_weights

__all__ = ["run_meta", "write_run", "write_run_figures"]


def run_meta(
    config: TrainConfig, train_set: TrainingData, data_min: torch.Tensor, data_max: torch.Tensor
) -> dict[str, Any]:
    """config.json: the settings, and the data's shape, range, classes (in a conditional run) and hash (a resumed
    run checks it is the same)."""
    digest = hashlib.sha256(np.ascontiguousarray(train_set.x).tobytes())
    data = {
        "shape": list(train_set.shape),
        "min": data_min.tolist(),
        "max": data_max.tolist(),
        "shift": train_set.shift.tolist(),
        "scale": train_set.scale.tolist(),
    }
    if train_set.labels is not None:
        digest.update(np.ascontiguousarray(train_set.labels).tobytes())
        data["classes"] = list(train_set.classes)
    return {"config": config.to_dict(), "tiny_diffusion": __version__, "data": {**data, "sha256": digest.hexdigest()}}


def write_run(
    stage: Path,
    config: TrainConfig,
    train_set: TrainingData,
    result: TrainResult,
    samples: np.ndarray,
    frames: list[np.ndarray],
    frame_epochs: list[int],
) -> None:
    """The run's files (``runs.RUN_FILES``) but its config, which is there from the start."""
    save_weights(stage / WEIGHTS, result.model)
    if result.guide is not None:
        save_weights(stage / GUIDE, result.guide)
    save_npy(stage / "loss.npy", result.losses)
    save_npy(stage / "frames.npy", np.stack(frames))
    save_npy(stage / "samples.npy", samples)
    if config.conditional:  # the final samples draw every class in turn
        save_npy(stage / "labels.npy", balanced_labels(len(samples), len(train_set.classes)).numpy())
    save_history(stage / "history.csv", result.losses, result.epoch_seconds, frame_epochs)
    write_run_figures(stage, config, train_set, samples, np.stack(frames), frame_epochs, result.losses)


def write_run_figures(
    stage: Path,
    config: TrainConfig,
    train_set: TrainingData,
    samples: np.ndarray,
    frames: np.ndarray,
    frame_epochs: list[int],
    losses: np.ndarray,
) -> None:
    """samples.png, frames.png (the snapshots) and loss.png."""
    epochs = f"{config.num_epochs} epoch{'s' if config.num_epochs != 1 else ''}"
    title = f"{config.dataset_name}: {len(samples)} samples after {epochs}"
    captions = [f"epoch {e + 1}" for e in frame_epochs]
    data = train_set.in_data_units()
    viz.plot_samples(samples, stage / "samples.png", title=title, reference=data)
    viz.plot_frames(frames, captions, stage / "frames.png", title="samples during training", reference=data)
    viz.plot_loss(losses, stage / "loss.png", steps_per_epoch=len(losses) // config.num_epochs)
