"""The main jobs, end to end: train a run into a directory (fresh or resumed), sample from one, evaluate samples
against a dataset. The pictures of the processes are in ``processes``."""

from __future__ import annotations

import hashlib
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import __version__, viz
from .checkpoints import CheckpointPolicy, Checkpointer, resume_state
from .config import TrainConfig
from .data import DATASETS, PointDataset, get_dataset
from .data.images import ImageDataset, get_image_dataset
from .distributed import Cluster, joined, resume_command, world_size
from .errors import UsageError
from .interrupts import Interrupted, Signals, caught_signals
from .locking import run_lock
from .metrics import point_metrics, precision
from .models import build_model, guided, parameter_count
from .objectives import noise_predictor
from .precision import check_precision
from .runs import LoadedRun, run_files, save_history, save_npy, save_weights
from .samplers import Trajectory, sample
from .schedule import NoiseSchedule
from .staging import (CHECKPOINTS, begin, check_fresh, checkpoints_dir, finish, partial_dir, resumable_config,
                      unfinished_meta)
from .training import Diverged, TrainResult, TrainState, resolve_device, train

__all__ = ["TrainSummary", "TrainingData", "training_data", "train_run", "sample_run", "evaluate_points",
           "evaluate_images", "evaluate_run_samples", "dataset_for", "with_absolute_dataset", "REFERENCE_SEEDS",
           "forward_data", "noise_fn", "balanced_labels", "evaluate_points_by_class"]

# Seeds of the two independent data draws that samples are compared with (the training draw uses config.data_seed).
REFERENCE_SEEDS = (1, 2)


@dataclass
class TrainSummary:
    """What ``train_run`` reports."""

    run_dir: Path
    seconds: float  # training loop, snapshots included
    snapshot_seconds: float  # of which spent drawing snapshots
    sample_seconds: float  # drawing the final samples
    samples: np.ndarray  # (N, *shape)


def balanced_labels(num: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(num,) labels 0, 1, ..., K - 1, 0, 1, ...: what a conditional run draws when no class is asked for."""
    return torch.arange(num, device=device) % num_classes


def noise_fn(loaded: LoadedRun, num: int, *, labels: torch.Tensor | None = None, guidance: float | None = None
             ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The noise prediction eps(x_t, t) the samplers need, for a batch of ``num``: a conditional run's for the classes
    ``labels`` (num,) (default: each in turn) under classifier-free guidance ``guidance`` (default: the run's)."""
    model = loaded.model
    if loaded.classes:
        device = loaded.schedule.device
        labels = balanced_labels(num, len(loaded.classes), device) if labels is None else labels.to(device)
        model = guided(loaded.model, labels, loaded.config.guidance if guidance is None else guidance)
    elif labels is not None or guidance is not None:
        raise UsageError("this run is not conditional, so it cannot be asked for a class; train one with "
                         "--conditional")
    return noise_predictor(model, loaded.schedule, loaded.config.target)


def _draw(loaded: LoadedRun, num: int, *, sampler: str, steps: int | None, eta: float, seed: int,
          record_every: int = 0, labels: torch.Tensor | None = None, guidance: float | None = None) -> Trajectory:
    """Sample in the model's coordinates, return samples and states in the data's units. A conditional run draws
    the classes ``labels`` (num,) (default: every class in turn) with guidance ``guidance`` (default: the run's)."""
    config = loaded.config
    generator = torch.Generator(loaded.schedule.device).manual_seed(seed)
    clip = (loaded.per_channel(loaded.data_min), loaded.per_channel(loaded.data_max)) if config.clip_sample else None
    eps_fn = noise_fn(loaded, num, labels=labels, guidance=guidance)
    trajectory = sample(eps_fn, loaded.schedule, (num, *loaded.shape), sampler=sampler, steps=steps, eta=eta, clip=clip,
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
    wherever it is read from (registry names are kept; so is an image set's data_dir, made absolute)."""
    if config.is_images:
        return replace(config, data_dir=str(Path(config.data_dir).resolve())) if config.data_dir else config
    if config.dataset in DATASETS:
        return config
    return replace(config, dataset=str(Path(config.dataset).resolve()))


def dataset_for(config: TrainConfig) -> tuple[PointDataset, dict[str, Any]]:
    """The dataset a config names (a registry name or a point file) and the options it was given."""
    dataset = get_dataset(config.dataset, columns=config.columns, subset=config.subset, labelled=config.conditional)
    return dataset, config.dataset_options()


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
        return self.x.shape[1:]


def training_data(config: TrainConfig) -> TrainingData:
    """The training set a config describes: drawn points (standardized if asked) or the images of the train split;
    with their labels in a conditional run."""
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
    dataset, options = dataset_for(config)
    if config.conditional:
        points, labels = dataset.sample_labelled(config.num_samples, config.data_seed)  # (N, D), (N,)
    else:
        points, labels = dataset.sample(config.num_samples, config.data_seed, **options), None
    shift, scale = _standardization(points, config.standardize)
    return TrainingData((points - shift) / scale, shift, scale, dataset.name, labels, dataset.classes if
                        config.conditional else ())


SNAPSHOT_IMAGES = 64  # images per training snapshot (an 8 x 8 grid); points snapshots hold eval_batch_size points


def train_run(config: TrainConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False,
              progress: bool = True, checkpoints: CheckpointPolicy = CheckpointPolicy(), compile: bool = False
              ) -> TrainSummary | None:
    """Train on config.dataset and write a complete run directory to ``out`` (see ``runs``).

    Training goes on in the unfinished run beside ``out`` and checkpoints there (see ``staging``); SIGINT and SIGTERM
    save a checkpoint and stop with ``Interrupted``. ``resume`` carries on the unfinished run of ``out`` from its
    newest intact checkpoint, with the settings it was started with: ``config`` must have them (the device aside).
    ``compile`` trains a ``torch.compile``d network (the same results up to float rounding).

    Under torchrun every process calls this and they train one model together (see ``distributed``): rank 0 alone
    writes ``out`` and returns the summary; the others return None.
    """
    out = Path(out)
    config = with_absolute_dataset(config.validate())
    checkpoints.validate()
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    if config.train_batch_size % world_size():
        raise UsageError(f"--train-batch-size is the global batch, shared evenly by the {world_size()} processes: "
                         f"{config.train_batch_size} does not divide by {world_size()}")
    with joined(device) as cluster, ExitStack() as held, caught_signals() as signals:
        def claim() -> None:  # one trainer per run directory, and a run to start there (or to resume)
            held.enter_context(run_lock(out))
            if resume:
                _check_resumable(out, config)
            else:
                check_fresh(out, overwrite=overwrite)

        cluster.on_main(claim)
        try:
            return _train_into(out, config, cluster, resume=resume, progress=progress, policy=checkpoints,
                               signals=signals, compile=compile)
        except Interrupted as e:
            if not partial_dir(out).exists():
                raise Interrupted(f"{e} before training started; earlier results are untouched", e.signum) from None
            raise Interrupted(f"{e}; resume with: {resume_command(out)}", e.signum) from None


def _check_resumable(out: Path, config: TrainConfig) -> None:
    differing = resumable_config(out).differences(config, ignore=("device",))
    if differing:
        raise UsageError(f"the unfinished run of {out} was started with other settings ({', '.join(differing)}); "
                         "resume it with its own settings, or pass --overwrite to start again")


def _train_into(out: Path, config: TrainConfig, cluster: Cluster, *, resume: bool, progress: bool,
                policy: CheckpointPolicy, signals: Signals, compile: bool) -> TrainSummary | None:
    device, main = cluster.device, cluster.is_main
    train_set = training_data(config)
    data = torch.tensor(train_set.x, dtype=torch.float32, device=device)  # (N, *shape), the model's coordinates
    torch.manual_seed(config.seed)  # model initialisation
    model = cluster.prepare(build_model(config, shape=train_set.shape, num_classes=len(train_set.classes)).to(device))
    if main and (progress or cluster.distributed):
        print(f"{config.model}: {parameter_count(model):,} parameters; {len(data):,} training samples of shape "
              f"{tuple(train_set.shape)}; {_batch_line(config, cluster)}", flush=True)
    schedule = NoiseSchedule(config.num_timesteps, config.beta_schedule, beta_start=config.beta_start,
                             beta_end=config.beta_end, device=device)
    channel_axes = [0, *range(2, data.ndim)]  # every axis but the channel's
    data_min, data_max = data.amin(dim=channel_axes), data.amax(dim=channel_axes)  # (C,)
    shift, scale = (torch.tensor(v, dtype=torch.float32, device=device) for v in (train_set.shift, train_set.scale))
    stage = partial_dir(out)
    cluster.on_main(lambda: _stage(out, _run_meta(config, train_set, data_min, data_max), resume=resume))
    state = TrainState.start(model, config, generator=torch.Generator(device).manual_seed(config.seed),
                             num_samples=len(data), cluster=cluster)
    frames: list[np.ndarray] = []
    frame_epochs: list[int] = []
    saved = _restore(out, state, frames, frame_epochs) if resume else 0
    state.network = cluster.wrap(model)  # under torchrun, DistributedDataParallel averages the gradients
    if compile:
        state.network = torch.compile(state.network)

    labels = None if train_set.labels is None else torch.tensor(train_set.labels, device=device)  # (N,)

    def loaded(model: torch.nn.Module) -> LoadedRun:
        return LoadedRun(config, model, schedule, train_set.shape, data_min, data_max, shift, scale,
                         train_set.classes)

    def snapshot(current: torch.nn.Module, epoch: int) -> None:
        frames.append(_draw(loaded(current), SNAPSHOT_IMAGES if config.is_images else config.eval_batch_size,
                            sampler=config.sampler, steps=config.sample_steps, eta=config.eta,
                            seed=config.seed + 1).samples.cpu().numpy())
        frame_epochs.append(epoch)

    def extra() -> dict[str, Any]:  # what a checkpoint holds besides the training state
        return {"frames": torch.from_numpy(np.stack(frames)) if frames else None, "frame_epochs": frame_epochs}

    checkpointer = Checkpointer(stage / CHECKPOINTS, policy, signals=signals, extra=extra, saved_step=saved,
                                saved_seconds=state.seconds, cluster=cluster)
    try:
        with signals.deferred():
            result = train(state, schedule, data, config, labels=labels, snapshot=snapshot if main else None,
                           checkpoint=checkpointer, progress=progress and main)
            checkpointer.save(state)  # the end of training: an interruption from here on only redoes the sampling
    except Diverged as e:
        kept = (f"the last good checkpoint, of step {checkpointer.saved_step}, is kept in {stage}"
                if checkpointer.saved_step else "no checkpoint was written")
        raise UsageError(f"{e} (and --overwrite to start again; {kept})") from None
    digest = cluster.check_replicas(state.replicated_tensors())
    if not main:
        cluster.barrier()  # while rank 0 draws the samples and writes the run directory
        return None
    if cluster.distributed:
        _report(f"all {cluster.world_size} processes end with the same training state (sha256 {digest[:16]})")
    start = time.perf_counter()
    samples = _draw(loaded(result.model), config.eval_batch_size, sampler=config.sampler, steps=config.sample_steps,
                    eta=config.eta, seed=config.seed + 2).samples.cpu().numpy()
    sample_seconds = time.perf_counter() - start
    _write_run(stage, config, train_set, result, samples, frames, frame_epochs)
    finish(stage, out, run_files(config))
    cluster.barrier()
    return TrainSummary(out, result.seconds, result.snapshot_seconds, sample_seconds, samples)


def _batch_line(config: TrainConfig, cluster: Cluster) -> str:
    """The batch (under torchrun the global one, split evenly), peak learning rate, precision and device."""
    batch, processes = config.train_batch_size, cluster.world_size
    split = f"global batch {batch} = {processes} processes x {batch // processes}" if processes > 1 else f"batch {batch}"
    return f"{split}, peak learning rate {config.learning_rate:g}, {config.precision} on {cluster.device}"


def _report(line: str) -> None:
    """A line about the run on stderr, beside the progress bar."""
    print(f"tiny-diffusion: {line}", file=sys.stderr, flush=True)


def _run_meta(config: TrainConfig, train_set: TrainingData, data_min: torch.Tensor, data_max: torch.Tensor
              ) -> dict[str, Any]:
    """config.json: the settings, and the data's shape, range, classes (in a conditional run) and hash (a resumed
    run checks it is the same)."""
    digest = hashlib.sha256(np.ascontiguousarray(train_set.x).tobytes())
    data = {"shape": list(train_set.shape), "min": data_min.tolist(), "max": data_max.tolist(),
            "shift": train_set.shift.tolist(), "scale": train_set.scale.tolist()}
    if train_set.labels is not None:
        digest.update(np.ascontiguousarray(train_set.labels).tobytes())
        data["classes"] = list(train_set.classes)
    return {"config": config.to_dict(), "tiny_diffusion": __version__, "data": {**data, "sha256": digest.hexdigest()}}


def _stage(out: Path, meta: dict[str, Any], *, resume: bool) -> Path:
    """The unfinished run to train in: a fresh one, or the one to resume (if its training data are the same)."""
    if not resume:
        return begin(out, meta)
    if unfinished_meta(out)["data"].get("sha256") != meta["data"]["sha256"]:
        raise UsageError(f"the training data of {out} differ from when it started ({meta['config']['dataset']} "
                         "changed?), so it cannot carry on exactly; pass --overwrite to start again")
    return partial_dir(out)


def _write_run(stage: Path, config: TrainConfig, train_set: TrainingData, result: TrainResult, samples: np.ndarray,
               frames: list[np.ndarray], frame_epochs: list[int]) -> None:
    """The run's files (``runs.RUN_FILES``) but its config, which is there from the start."""
    save_weights(stage / "model.safetensors", result.model)
    save_npy(stage / "loss.npy", result.losses)
    save_npy(stage / "frames.npy", np.stack(frames))
    save_npy(stage / "samples.npy", samples)
    if config.conditional:  # the final samples draw every class in turn
        save_npy(stage / "labels.npy", balanced_labels(len(samples), len(train_set.classes)).numpy())
    save_history(stage / "history.csv", result.losses, result.epoch_seconds, frame_epochs)
    _write_run_figures(stage, config, train_set, samples, np.stack(frames), frame_epochs, result.losses)


def _restore(out: Path, state: TrainState, frames: list[np.ndarray], frame_epochs: list[int]) -> int:
    """Load the newest intact checkpoint of ``out``'s unfinished run into ``state`` and the snapshot lists, saying on
    stderr what is resumed; returns its step (0: none, so training starts from the beginning again)."""
    def report(line: str) -> None:
        if state.cluster.is_main:
            _report(line)

    step, run = resume_state(checkpoints_dir(out), state, report=report, cluster=state.cluster)
    if not step:
        report(f"resuming {out} from the start: it stopped before its first checkpoint")
        return 0
    frames.extend(run["frames"].numpy() if run["frames"] is not None else [])
    frame_epochs.extend(run["frame_epochs"])
    epoch = min(state.epoch + 1, state.total_steps // state.steps_per_epoch)
    report(f"resuming {out} from its checkpoint of step {step} of {state.total_steps} (epoch {epoch})")
    return step


def _write_run_figures(stage: Path, config: TrainConfig, train_set: TrainingData, samples: np.ndarray,
                       frames: np.ndarray, frame_epochs: list[int], losses: np.ndarray) -> None:
    """samples.png, frames.png (the snapshots) and loss.png."""
    title = f"{train_set.name}: {len(samples)} samples after {config.num_epochs} epochs"
    captions = [f"epoch {e + 1}" for e in frame_epochs]
    if config.is_images:
        viz.plot_images(samples[:100], stage / "samples.png", title=title)
        viz.plot_image_strip(frames[:, :16], captions, stage / "frames.png", title="samples during training")
    else:
        limits = viz.axis_limits(train_set.x * train_set.scale + train_set.shift)
        viz.plot_points(samples, stage / "samples.png", limits=limits, title=title)
        viz.plot_strip(frames, captions, stage / "frames.png", limits=limits, title="samples during training")
    viz.plot_loss(losses, stage / "loss.png", steps_per_epoch=len(losses) // config.num_epochs)


def sample_run(loaded: LoadedRun, num: int, *, sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0,
               seed: int = 0, record_every: int = 0, labels: torch.Tensor | None = None,
               guidance: float | None = None) -> Trajectory:
    """Draw ``num`` samples from a loaded run (arrays stay on the run's device); a conditional run draws the classes
    ``labels`` (num,) (default: each in turn) with classifier-free guidance ``guidance`` (default: the run's)."""
    return _draw(loaded, num, sampler=sampler, steps=steps, eta=eta, seed=seed, record_every=record_every,
                 labels=labels, guidance=guidance)


def evaluate_points(samples: np.ndarray, dataset: PointDataset, options: dict[str, Any] | None = None
                    ) -> dict[str, float]:
    """Metrics of ``samples`` against a fresh draw of the dataset, each beside its data-vs-data floor."""
    options = options or {}
    n = len(samples)
    reference, second = (dataset.sample(n, seed, **options) for seed in REFERENCE_SEEDS)
    return point_metrics(samples, reference, floor_reference=second, support=dataset.support_points(**options))


CLASS_REFERENCE = 20_000  # points of a labelled set drawn to stand for each class's shape (precision's support)


def evaluate_points_by_class(samples: np.ndarray, labels: np.ndarray, dataset: PointDataset, *, radius: float = 0.1
                             ) -> dict[str, float]:
    """For each class (by name) of a labelled point set: ``precision@r`` of the samples drawn for it, the share
    within ``radius`` of its own points (a dense draw of them), beside its floor: the same for a fresh draw."""
    support, support_labels = dataset.sample_labelled(CLASS_REFERENCE, REFERENCE_SEEDS[0])
    fresh, fresh_labels = dataset.sample_labelled(len(samples), REFERENCE_SEEDS[1])
    metrics = {}
    for k, name in enumerate(dataset.classes):
        if not (labels == k).any():
            continue
        own = support[support_labels == k]
        metrics[f"{name}: precision@{radius:g}"] = precision(samples[labels == k], own, radius)
        metrics[f"{name}: precision@{radius:g}_floor"] = precision(fresh[fresh_labels == k], own, radius)
    return metrics


def evaluate_images(samples: np.ndarray, config: TrainConfig, *, labels: np.ndarray | None = None,
                    progress: bool = True) -> dict[str, float]:
    """The judge's numbers for (N, C, H, W) samples of an image run: against the test split, each beside its floor
    (a random subset of as many training images); with the class each sample was drawn for (``labels`` (N,)),
    how often the judge agrees. Trains and caches the judge first if there is none yet."""
    from .judge import class_accuracy, get_judge, image_metrics  # the judge is needed for images only

    dataset = get_image_dataset(config.dataset)
    judge = get_judge(config.dataset, data_dir=config.data_dir, train_if_missing=True, progress=progress)
    real, _ = dataset.images("test", data_dir=config.data_dir)
    train_images, _ = dataset.images("train", data_dir=config.data_dir)
    n = min(len(samples), len(real))
    floor = train_images[np.random.default_rng(0).choice(len(train_images), n, replace=False)]
    metrics = image_metrics(judge, samples[:n], real=real, floor_real=floor)
    return metrics if labels is None else {**metrics, **class_accuracy(judge, samples, labels)}


def evaluate_run_samples(samples: np.ndarray, config: TrainConfig, *, labels: np.ndarray | None = None,
                         progress: bool = True) -> dict[str, float]:
    """The metrics of a run's samples: the judge's for images, point metrics (with floors) for points; for the
    samples of a conditional run (the class of each in ``labels``), how well each class is drawn too."""
    if config.is_images:
        return evaluate_images(samples, config, labels=labels, progress=progress)
    dataset, options = dataset_for(config)
    metrics = evaluate_points(samples, dataset, options)
    return metrics if labels is None else {**metrics, **evaluate_points_by_class(samples, labels, dataset)}


def forward_data(config: TrainConfig, num: int) -> tuple[PointDataset | ImageDataset, np.ndarray]:
    """The dataset a config names and ``num`` (N, D) points of it as training would see them (standardized if set);
    for images, ``num`` training images spread evenly over the split (so over the classes too)."""
    if config.is_images:
        dataset = get_image_dataset(config.dataset)
        images, _ = dataset.images("train", data_dir=config.data_dir)
        return dataset, images[np.linspace(0, len(images) - 1, min(num, len(images))).astype(int)]
    dataset, options = dataset_for(config)
    points = dataset.sample(num, config.data_seed, **options)
    shift, scale = _standardization(points, config.standardize)
    return dataset, (points - shift) / scale
