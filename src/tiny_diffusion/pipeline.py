"""The main jobs, end to end: train a run into a directory, sample from one, evaluate samples against a dataset."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import __version__, viz
from .config import TrainConfig
from .data import DATASETS, PointDataset, get_dataset
from .errors import UsageError
from .metrics import point_metrics
from .models import build_model
from .objectives import noise_predictor
from .runs import LoadedRun, save_history, save_json, save_npy, save_weights, staged_run_dir
from .samplers import Trajectory, sample, sampler_timesteps
from .schedule import NoiseSchedule
from .training import resolve_device, train

__all__ = ["TrainSummary", "train_run", "sample_run", "evaluate_points", "dataset_for", "with_absolute_dataset", "REFERENCE_SEEDS",
           "evenly_spaced", "forward_data", "forward_states", "forward_labels", "ReverseStates", "reverse_states",
           "data_box"]

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


def _standardization(points: np.ndarray, enabled: bool) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) per coordinate that take ``points`` to zero mean and unit variance; (0, 1) when not enabled."""
    dim = points.shape[1]
    if not enabled:
        return np.zeros(dim), np.ones(dim)
    scale = points.std(axis=0)
    if not (scale > 0).all():
        raise UsageError("cannot standardize: a coordinate of the data is constant")
    return points.mean(axis=0), scale


def with_absolute_dataset(config: TrainConfig) -> TrainConfig:
    """``config`` with a user's point file named by its absolute path, so a run records where its data is
    wherever it is read from (registry names are kept)."""
    if config.dataset in DATASETS:
        return config
    return replace(config, dataset=str(Path(config.dataset).resolve()))


def dataset_for(config: TrainConfig) -> tuple[PointDataset, dict[str, Any]]:
    """The dataset a config names (a registry name or a point file) and the options it was given."""
    return get_dataset(config.dataset, columns=config.columns, subset=config.subset), config.dataset_options()


def train_run(config: TrainConfig, out: str | Path, *, overwrite: bool = False, progress: bool = True) -> TrainSummary:
    """Train on config.dataset and write a complete run directory to ``out`` (see ``runs``)."""
    config = with_absolute_dataset(config.validate())
    device = resolve_device(config.device)
    dataset, options = dataset_for(config)
    points = dataset.sample(config.num_samples, config.data_seed, **options)  # (N, D)
    shift, scale = _standardization(points, config.standardize)
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
        save_history(stage / "history.csv", result.losses, result.epoch_seconds, frame_epochs)
        limits = viz.axis_limits(points)
        viz.plot_points(samples, stage / "samples.png", limits=limits,
                        title=f"{dataset.name}: {len(samples)} samples after {config.num_epochs} epochs")
        viz.plot_strip(np.stack(frames), [f"epoch {e + 1}" for e in frame_epochs], stage / "frames.png",
                       limits=limits, title="samples during training")
        viz.plot_loss(result.losses, stage / "loss.png", steps_per_epoch=len(result.losses) // config.num_epochs)
    return TrainSummary(Path(out), result.seconds, result.snapshot_seconds, sample_seconds, samples)


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


# --- pictures of the processes -------------------------------------------------------------------------------------
# A "step" s counts noising steps applied to the data: s = 0 is x_0, s = T is x_T. Step s > 0 therefore uses the
# schedule's zero-based index s - 1 (alphas_cumprod[s - 1]); the reverse process walks the same steps back.


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` distinct integers from 0 to ``total`` inclusive, evenly spaced (rounded): which steps to show."""
    if not 2 <= count <= total + 1:
        raise UsageError(f"can show between 2 and {total + 1} states of {total} steps, asked for {count}")
    return [round(i * total / (count - 1)) for i in range(count)]


def forward_data(config: TrainConfig, num: int) -> tuple[PointDataset, np.ndarray]:
    """The dataset a config names and ``num`` (N, D) points of it as training would see them (standardized if set)."""
    dataset, options = dataset_for(config)
    points = dataset.sample(num, config.data_seed, **options)
    shift, scale = _standardization(points, config.standardize)
    return dataset, (points - shift) / scale


def forward_states(points: np.ndarray, schedule: NoiseSchedule, steps: Sequence[int], *, seed: int = 0
                   ) -> np.ndarray:
    """x_s ~ q(x_s | x_0) of (N, D) points after each of ``steps`` noising steps (0: the points), as (K, N, D).

    One noise draw (seeded) serves every step, x_s = sqrt(alpha-bar) x_0 + sqrt(1 - alpha-bar) noise, so each point
    slides along a straight line from its data position towards its own noise sample and the panels evolve smoothly.
    """
    x0 = torch.as_tensor(np.asarray(points), dtype=torch.float32, device=schedule.device)  # (N, D)
    generator = torch.Generator(schedule.device).manual_seed(seed)
    noise = torch.randn(x0.shape, generator=generator, device=schedule.device)
    states = []
    for step in steps:
        if not 0 <= step <= len(schedule):
            raise UsageError(f"a forward step must be between 0 and {len(schedule)}, got {step}")
        t = torch.full((len(x0),), step - 1, device=schedule.device, dtype=torch.long)
        states.append(x0 if step == 0 else schedule.add_noise(x0, noise, t))
    return torch.stack(states).cpu().numpy()


def forward_labels(steps: Sequence[int]) -> list[str]:
    """Panel titles of forward states: "t = 0 (data)", "t = 100", ..."""
    return [f"t = {s} (data)" if s == 0 else f"t = {s}" for s in steps]


@dataclass
class ReverseStates:
    """Evenly spaced states of one reverse-process run, in the data's units."""

    states: np.ndarray  # (K, N, D): the initial noise first, the samples last
    timesteps: list[int]  # the step t of each state: T for the noise, 0 for the samples
    num_timesteps: int  # T

    def labels(self) -> list[str]:
        """Panel titles: "t = 500 (noise)", ..., "t = 0 (samples)"."""
        T = self.num_timesteps
        return [f"t = {t} (noise)" if t == T else f"t = {t} (samples)" if t == 0 else f"t = {t}"
                for t in self.timesteps]

    def captions(self) -> list[str]:
        """Animation captions: "step 500 / 500", ..., "step 0 / 500"."""
        return [f"step {t} / {self.num_timesteps}" for t in self.timesteps]


def reverse_states(loaded: LoadedRun, num: int, count: int, *, sampler: str = "ddpm", steps: int | None = None,
                   eta: float = 0.0, seed: int = 0) -> ReverseStates:
    """Sample ``num`` points and keep ``count`` states evenly spaced over the sampler's steps (noise first)."""
    walked = sampler_timesteps(len(loaded.schedule), sampler, steps)
    total = len(walked)
    chosen = evenly_spaced(total, count)  # sampler steps done at each kept state
    every = math.gcd(*chosen)  # record this often and every chosen state is among the recorded ones
    trajectory = sample_run(loaded, num, sampler=sampler, steps=steps, eta=eta, seed=seed, record_every=every)
    done = [total - left for left in trajectory.steps_left]
    states = trajectory.states[[done.index(c) for c in chosen]].cpu().numpy()
    # after d of the sampler's steps x sits at step walked[d] + 1 (the next step denoises it), or 0 at the end
    timesteps = [walked[d] + 1 if d < total else 0 for d in chosen]
    return ReverseStates(states, timesteps, len(loaded.schedule))


def data_box(loaded: LoadedRun) -> np.ndarray:
    """(2, D): the per-coordinate minimum and maximum of the run's training data, in the data's units."""
    return torch.stack([loaded.to_data_units(loaded.data_min), loaded.to_data_units(loaded.data_max)]).cpu().numpy()
