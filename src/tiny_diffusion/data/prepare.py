"""The data a run's settings describe: the training set in the model's coordinates (standardized if asked), and
the dataset with its options for drawing references. Points and images alike; the settings are read, not imported."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from .images import ImageDataset, get_image_dataset
from .registry import DATASETS, PointDataset, get_dataset

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["TrainingData", "training_data", "dataset_for", "with_absolute_dataset", "forward_data", "standardization"]


@dataclass
class TrainingData:
    """The training set in the model's coordinates, and how to get back to the data's units."""

    x: np.ndarray  # (N, *shape)
    shift: np.ndarray  # (C,) per channel: data = x * scale + shift
    scale: np.ndarray
    name: str  # for figure titles
    labels: np.ndarray | None = None  # (N,) class of each sample, in a conditional run
    classes: tuple[str, ...] = ()  # their names, in a conditional run

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def in_data_units(self) -> np.ndarray:
        """The training set (N, *shape) back in the data's units."""
        axes = (-1, *[1] * (self.x.ndim - 2))  # (C,) -> broadcast over (N, C[, H, W])
        return self.x * self.scale.reshape(axes) + self.shift.reshape(axes)


def standardization(points: np.ndarray, enabled: bool) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) per coordinate that take ``points`` to zero mean and unit variance; (0, 1) when not enabled.
    A constant coordinate (a file's points on a plane) is shifted to zero and keeps scale 1: it has no spread to
    scale, and a file standardizes by default, so it must not be refused."""
    dim = points.shape[1]
    if not enabled:
        return np.zeros(dim), np.ones(dim)
    spread = points.std(axis=0)
    return points.mean(axis=0), np.where(spread > 0, spread, 1.0)


def with_absolute_dataset(config: TrainConfig) -> TrainConfig:
    """``config`` with a user's point file named by its absolute path, so a run records where its data is
    wherever it is read from (registry names are kept; so is an image set's data_dir, made absolute)."""
    if config.is_images:
        return replace(config, data_dir=str(Path(config.data_dir).resolve())) if config.data_dir else config
    if config.dataset in DATASETS:
        return config
    return replace(config, dataset=str(Path(config.dataset).resolve()))


def dataset_for(config: TrainConfig) -> tuple[PointDataset, dict[str, Any]]:
    """The point dataset a config names (a registry name or a point file) and the options it was given."""
    dataset = get_dataset(config.dataset, columns=config.columns, subset=config.subset, labelled=config.conditional)
    return dataset, config.dataset_options()


def training_data(config: TrainConfig) -> TrainingData:
    """The training set a config describes: drawn points (standardized where ``config.standardizes``) or the
    images of the train split; with their labels in a conditional run."""
    if config.is_images:
        dataset = get_image_dataset(config.dataset)
        images, labels = dataset.images("train", data_dir=config.data_dir)
        if config.num_samples:
            images, labels = images[: config.num_samples], labels[: config.num_samples]
        if config.train_batch_size > len(images):
            raise UsageError(f"train_batch_size ({config.train_batch_size}) exceeds the {len(images)} training images")
        channels = images.shape[1]
        kept = (labels, dataset.classes) if config.conditional else ()
        return TrainingData(images, np.zeros(channels), np.ones(channels), dataset.name, *kept)
    points_set, options = dataset_for(config)
    if config.conditional:
        points, point_labels = points_set.sample_labelled(config.num_samples, config.data_seed)  # (N, D), (N,)
    else:
        points, point_labels = points_set.sample(config.num_samples, config.data_seed, **options), None
    shift, scale = standardization(points, config.standardizes)
    return TrainingData(
        (points - shift) / scale,
        shift,
        scale,
        points_set.name,
        point_labels,
        points_set.classes if config.conditional else (),
    )


def forward_data(config: TrainConfig, num: int) -> tuple[PointDataset | ImageDataset, np.ndarray]:
    """The dataset a config names and ``num`` (N, D) points of it as training would see them (standardized if set);
    for images, ``num`` training images spread evenly over the split (so over the classes too)."""
    if config.is_images:
        dataset = get_image_dataset(config.dataset)
        images, _ = dataset.images("train", data_dir=config.data_dir)
        return dataset, images[np.linspace(0, len(images) - 1, min(num, len(images))).astype(int)]
    points_set, options = dataset_for(config)
    points = points_set.sample(num, config.data_seed, **options)
    shift, scale = standardization(points, config.standardizes)
    return points_set, (points - shift) / scale
