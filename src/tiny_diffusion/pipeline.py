"""The main jobs, end to end: train a run into a directory, sample from one, evaluate samples against a dataset."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, viz
from .config import TrainConfig
from .data import DATASETS, PointDataset, get_dataset
from .errors import UsageError
from .metrics import point_metrics
from .models import build_model
from .objectives import noise_predictor
from .runs import LoadedRun, save_json, save_npy, save_weights, staged_run_dir, write_atomic
from .samplers import Trajectory, sample
from .schedule import NoiseSchedule
from .training import resolve_device, train

__all__ = ["TrainSummary", "train_run", "sample_run", "evaluate_points", "dataset_for", "REFERENCE_SEEDS"]

# Seeds of the two independent data draws that samples are compared with (the training draw uses config.data_seed).
REFERENCE_SEEDS = (1, 2)


@dataclass
class TrainSummary:
    """What ``train_run`` reports."""

    run_dir: Path
    seconds: float  # training loop, snapshots included
    snapshot_seconds: float  # of which spent drawing snapshots
    sample_seconds: float  # drawing the final samples
    samples: np.ndarray  # (N, D)


def _draw(loaded: LoadedRun, num: int, *, sampler: str, steps: int | None, eta: float, seed: int,
          record_every: int = 0) -> Trajectory:
    """Sample in the model's coordinates, return samples and states in the data's units."""
    config = loaded.config
    generator = torch.Generator(loaded.schedule.device).manual_seed(seed)
    clip = (loaded.data_min, loaded.data_max) if config.clip_sample else None
    eps_fn = noise_predictor(loaded.model, loaded.schedule, config.target)
    trajectory = sample(eps_fn, loaded.schedule, (num, loaded.dim), sampler=sampler, steps=steps, eta=eta, clip=clip,
                        generator=generator, record_every=record_every)
    trajectory.samples = loaded.to_data_units(trajectory.samples)
    if trajectory.states is not None:
        trajectory.states = loaded.to_data_units(trajectory.states)
    return trajectory


def dataset_for(config: TrainConfig) -> tuple[PointDataset, dict[str, Any]]:
    """The dataset a config names (a registry name or a point file) and the options it was given."""
    return get_dataset(config.dataset, columns=config.columns, subset=config.subset), config.dataset_options()


def train_run(config: TrainConfig, out: str | Path, *, overwrite: bool = False, progress: bool = True) -> TrainSummary:
    """Train on config.dataset and write a complete run directory to ``out`` (see ``runs``)."""
    config.validate()
    device = resolve_device(config.device)
    dataset, options = dataset_for(config)
    if dataset.name not in DATASETS:  # a user's file: record where it is, wherever the run is read from
        config.dataset = str(Path(config.dataset).resolve())
    points = dataset.sample(config.num_samples, config.data_seed, **options)  # (N, D)
    shift, scale = np.zeros(dataset.dim), np.ones(dataset.dim)
    if config.standardize:
        shift, scale = points.mean(axis=0), points.std(axis=0)
        if not (scale > 0).all():
            raise UsageError("cannot standardize: a coordinate of the data is constant")
    data = torch.from_numpy((points - shift) / scale).float().to(device)  # (N, D), the model's coordinates
    torch.manual_seed(config.seed)  # model initialisation
    model = build_model(config, dim=dataset.dim).to(device)
    schedule = NoiseSchedule(config.num_timesteps, config.beta_schedule, beta_start=config.beta_start,
                             beta_end=config.beta_end, device=device)
    generator = torch.Generator(device).manual_seed(config.seed)
    data_min, data_max = data.min(dim=0).values, data.max(dim=0).values
    frames: list[np.ndarray] = []
    frame_epochs: list[int] = []

    def loaded(model: torch.nn.Module) -> LoadedRun:
        return LoadedRun(config, model, schedule, data_min, data_max, torch.tensor(shift, dtype=torch.float32,
                         device=device), torch.tensor(scale, dtype=torch.float32, device=device))

    def snapshot(current: torch.nn.Module, epoch: int) -> None:
        frames.append(_draw(loaded(current), config.eval_batch_size, sampler=config.sampler, steps=config.sample_steps,
                            eta=config.eta, seed=config.seed + 1).samples.cpu().numpy())
        frame_epochs.append(epoch)

    with staged_run_dir(out, overwrite=overwrite) as stage:
        meta = {"config": config.to_dict(), "tiny_diffusion": __version__,
                "data": {"dim": dataset.dim, "min": data_min.tolist(), "max": data_max.tolist(),
                         "shift": shift.tolist(), "scale": scale.tolist()}}
        save_json(stage / "config.json", meta)
        result = train(model, schedule, data, config, generator=generator, snapshot=snapshot, progress=progress)
        start = time.perf_counter()
        samples = _draw(loaded(result.model), config.eval_batch_size, sampler=config.sampler,
                        steps=config.sample_steps, eta=config.eta, seed=config.seed + 2).samples.cpu().numpy()
        sample_seconds = time.perf_counter() - start
        save_weights(stage / "model.safetensors", result.model)
        save_npy(stage / "loss.npy", result.losses)
        save_npy(stage / "frames.npy", np.stack(frames))
        save_npy(stage / "samples.npy", samples)
        _write_history(stage / "history.csv", result.losses, result.epoch_seconds, frame_epochs)
        limits = viz.axis_limits(points)
        viz.plot_points(samples, stage / "samples.png", limits=limits,
                        title=f"{dataset.name}: {len(samples)} samples after {config.num_epochs} epochs")
        viz.plot_strip(np.stack(frames), [f"epoch {e + 1}" for e in frame_epochs], stage / "frames.png",
                       limits=limits, title="samples during training")
        viz.plot_loss(result.losses, stage / "loss.png", steps_per_epoch=len(result.losses) // config.num_epochs)
    return TrainSummary(Path(out), result.seconds, result.snapshot_seconds, sample_seconds, samples)


def _write_history(path: Path, losses: np.ndarray, epoch_seconds: list[float], frame_epochs: list[int]) -> None:
    per_epoch = np.array_split(losses, len(epoch_seconds))
    lines = ["epoch,loss,seconds,snapshot"]
    snapshots = set(frame_epochs)
    for epoch, (chunk, seconds) in enumerate(zip(per_epoch, epoch_seconds)):
        lines.append(f"{epoch + 1},{chunk.mean():.6g},{seconds:.3f},{int(epoch in snapshots)}")
    write_atomic(path, ("\n".join(lines) + "\n").encode())


def sample_run(loaded: LoadedRun, num: int, *, sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0,
               seed: int = 0, record_every: int = 0) -> Trajectory:
    """Draw ``num`` samples from a loaded run (arrays stay on the run's device)."""
    return _draw(loaded, num, sampler=sampler, steps=steps, eta=eta, seed=seed, record_every=record_every)


def evaluate_points(samples: np.ndarray, dataset: PointDataset, options: dict[str, Any] | None = None
                    ) -> dict[str, float]:
    """Metrics of ``samples`` against a fresh draw of the dataset, each beside its data-vs-data floor."""
    options = options or {}
    n = len(samples)
    reference, second = (dataset.sample(n, seed, **options) for seed in REFERENCE_SEEDS)
    return point_metrics(samples, reference, floor_reference=second, support=dataset.support_points(**options))
