"""The training job: train on a run's settings and write a complete run directory (fresh or resumed), checkpointing
as it goes; under torchrun, every process trains and rank 0 writes."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..core.devices import resolve_device
from ..core.distributed import Cluster, joined, resume_command, world_size
from ..core.precision import check_precision
from ..core.schedule import NoiseSchedule
from ..core.training import Diverged, TrainState, train
from ..data.prepare import TrainingData, training_data, with_absolute_dataset
from ..diffusion import Diffusion, resolve_sampling
from ..errors import UsageError
from ..eval.preflight import setting_warnings
from ..models import build_model, parameter_count
from .checkpoints import Checkpointer, CheckpointPolicy, resume_state
from .files import run_files
from .interrupts import Interrupted, Signals, caught_signals
from .locking import run_lock
from .results import run_meta, write_run
from .staging import (
    CHECKPOINTS,
    begin,
    check_fresh,
    checkpoints_dir,
    finish,
    partial_dir,
    resumable_config,
    unfinished_meta,
)

__all__ = ["TrainSummary", "Snapshot", "train_run"]


@dataclass
class TrainSummary:
    """What ``train_run`` reports."""

    run_dir: Path
    seconds: float  # training loop, snapshots included
    snapshot_seconds: float  # of which spent drawing snapshots
    sample_seconds: float  # drawing the final samples
    samples: np.ndarray  # (N, *shape)
    model: Diffusion  # the trained model, as Diffusion.load(run_dir) rebuilds it


@dataclass
class Snapshot:
    """What a training callback receives at each snapshot: where training stands and what the model draws."""

    epoch: int  # 1-based: the epochs done
    step: int  # optimiser steps done
    losses: np.ndarray  # (step,) the loss of every step so far
    samples: np.ndarray  # (N, *shape) drawn now, in the data's units


# torch's CPU threads for a point run when none are asked for: the MLP's small matrix products gain little from a
# second thread on a quiet machine and stall, dozens of times slower, when another job holds a core (measured in
# docs/concepts.md#why-the-defaults-changed); images keep torch's own count
POINT_THREADS = 1


@contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``count`` inside the block and restored after it; None leaves them alone."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def training_threads(config: TrainConfig, device: torch.device, threads: int | None) -> int | None:
    """The CPU threads a run trains with: ``threads`` where given; POINT_THREADS for a point run on the CPU unless
    OMP_NUM_THREADS says otherwise; else None (torch's own)."""
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be positive, got {threads}")
        return threads
    if device.type == "cpu" and not config.is_images and "OMP_NUM_THREADS" not in os.environ:
        return POINT_THREADS
    return None


def train_run(
    config: TrainConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    checkpoints: CheckpointPolicy | None = None,
    compile: bool = False,
    threads: int | None = None,
    callback: Callable[[Snapshot], None] | None = None,
) -> TrainSummary | None:
    """Train on config.dataset and write a complete run directory to ``out`` (see ``runs``).

    Training goes on in the unfinished run beside ``out`` and checkpoints there (see ``staging``); SIGINT and SIGTERM
    save a checkpoint and stop with ``Interrupted``. ``resume`` carries on the unfinished run of ``out`` from its
    newest intact checkpoint, with the settings it was started with: ``config`` must have them (the device aside).
    ``compile`` trains a ``torch.compile``d network (the same results up to float rounding). ``threads``: torch's
    CPU threads while it trains (default: one for a point run on the CPU, see ``training_threads``). ``callback`` is
    handed a ``Snapshot`` at every snapshot (every config.save_images_step epochs, and after the last).

    Under torchrun every process calls this and they train one model together (see ``distributed``): rank 0 alone
    writes ``out`` and returns the summary; the others return None.
    """
    out = Path(out)
    config = with_absolute_dataset(config).resolved()  # as config.json records it: what was used
    checkpoints = (checkpoints or CheckpointPolicy()).validate()
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    if config.train_batch_size % world_size():
        raise UsageError(
            f"--train-batch-size is the global batch, shared evenly by the {world_size()} processes: "
            f"{config.train_batch_size} does not divide by {world_size()}"
        )
    train_set = training_data(config)  # a missing or unreadable data file is reported before the run directory
    threads = training_threads(config, device, threads)
    with joined(device) as cluster, ExitStack() as held, caught_signals() as signals, cpu_threads(threads):

        def claim() -> None:  # one trainer per run directory, and a run to start there (or to resume)
            held.enter_context(run_lock(out))
            if resume:
                _check_resumable(out, config)
            else:
                check_fresh(out, overwrite=overwrite)

        cluster.on_main(claim)
        for warning in setting_warnings(config, NoiseSchedule.from_settings(config), train_set.x):
            warnings.warn(warning, stacklevel=_callers_level())  # the run will start: say what will train badly
        try:
            return _train_into(
                out,
                config,
                train_set,
                cluster,
                resume=resume,
                progress=progress,
                policy=checkpoints,
                signals=signals,
                compile=compile,
                callback=callback,
            )
        except Interrupted as e:
            if not partial_dir(out).exists():
                raise Interrupted(f"{e} before training started; earlier results are untouched", e.signum) from None
            raise Interrupted(f"{e}; resume with: {resume_command(out)}", e.signum) from None


def _callers_level() -> int:
    """The ``stacklevel`` at which a warning issued by the calling function names the first line outside this
    package: the user's ``td.train(...)``, not the library's own frames."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("tiny_diffusion"):
        frame, level = frame.f_back, level + 1
    return level


def _check_resumable(out: Path, config: TrainConfig) -> None:
    """A resumed run carries on with the settings it was started with (where it runs may change): the one place
    they are compared."""
    differing = resumable_config(out).differences(config, ignore=("device",))
    if differing:
        raise UsageError(
            f"--resume carries on {out} with the settings it was started with; these differ: {'; '.join(differing)}"
        )


def _train_into(
    out: Path,
    config: TrainConfig,
    train_set: TrainingData,
    cluster: Cluster,
    *,
    resume: bool,
    progress: bool,
    policy: CheckpointPolicy,
    signals: Signals,
    compile: bool,
    callback: Callable[[Snapshot], None] | None,
) -> TrainSummary | None:
    device, main = cluster.device, cluster.is_main
    data = torch.tensor(train_set.x, dtype=torch.float32, device=device)  # (N, *shape), the model's coordinates
    torch.manual_seed(config.seed)  # model initialisation
    model = cluster.prepare(build_model(config, shape=train_set.shape, num_classes=len(train_set.classes)).to(device))
    if main and (progress or cluster.distributed):
        print(
            f"{config.model}: {parameter_count(model):,} parameters; {len(data):,} training samples of shape "
            f"{tuple(train_set.shape)}; {_batch_line(config, cluster)}",
            flush=True,
        )
    schedule = NoiseSchedule.from_settings(config, device=device)
    channel_axes = [0, *range(2, data.ndim)]  # every axis but the channel's
    data_min, data_max = data.amin(dim=channel_axes), data.amax(dim=channel_axes)  # (C,)
    shift, scale = (torch.tensor(v, dtype=torch.float32, device=device) for v in (train_set.shift, train_set.scale))
    stage = partial_dir(out)
    cluster.on_main(lambda: _stage(out, run_meta(config, train_set, data_min, data_max), resume=resume))
    state = TrainState.start(
        model,
        config,
        generator=torch.Generator(device).manual_seed(config.seed),
        num_samples=len(data),
        cluster=cluster,
    )
    frames: list[np.ndarray] = []
    frame_epochs: list[int] = []
    saved = _restore(out, state, frames, frame_epochs) if resume else 0
    state.network = cluster.wrap(model)  # under torchrun, DistributedDataParallel averages the gradients
    if compile:
        state.network = torch.compile(state.network)

    labels = None if train_set.labels is None else torch.tensor(train_set.labels, device=device)  # (N,)

    def diffusion(network: torch.nn.Module, guide: torch.nn.Module | None = None) -> Diffusion:
        return Diffusion(
            config, network, schedule, train_set.shape, data_min, data_max, shift, scale, train_set.classes, guide=guide
        )

    own = resolve_sampling(config)  # the run's own sampler, steps and eta: the final samples
    quick = resolve_sampling(config, config.own_snapshot_sampler)  # the snapshots', at its steps

    def snapshot(current: torch.nn.Module, epoch: int) -> None:
        frames.append(diffusion(current).draw(config.snapshot_size, quick, seed=config.seed + 1).samples)
        frame_epochs.append(epoch)
        if callback is not None:
            callback(Snapshot(epoch + 1, state.step, state.losses[: state.step].cpu().numpy(), frames[-1]))

    def extra() -> dict[str, Any]:  # what a checkpoint holds besides the training state
        return {"frames": torch.from_numpy(np.stack(frames)) if frames else None, "frame_epochs": frame_epochs}

    checkpointer = Checkpointer(
        stage / CHECKPOINTS,
        policy,
        signals=signals,
        extra=extra,
        saved_step=saved,
        saved_seconds=state.seconds,
        cluster=cluster,
    )
    try:
        with signals.deferred():
            result = train(
                state,
                schedule,
                data,
                config,
                labels=labels,
                snapshot=snapshot if main else None,
                checkpoint=checkpointer,
                progress=progress and main,
            )
            checkpointer.save(state)  # the end of training: an interruption from here on only redoes the sampling
    except Diverged as e:
        kept = (
            f"the last good checkpoint, of step {checkpointer.saved_step}, is kept in {stage}"
            if checkpointer.saved_step
            else "no checkpoint was written"
        )
        raise UsageError(f"{e} (and --overwrite to start again; {kept})") from None
    digest = cluster.check_replicas(state.replicated_tensors())
    if not main:
        cluster.barrier()  # while rank 0 draws the samples and writes the run directory
        return None
    if cluster.distributed:
        _report(f"all {cluster.world_size} processes end with the same training state (sha256 {digest[:16]})")
    start = time.perf_counter()
    model = diffusion(result.model, result.guide)
    samples = model.draw(config.eval_batch_size, own, seed=config.seed + 2).samples
    sample_seconds = time.perf_counter() - start
    write_run(stage, config, train_set, result, samples, frames, frame_epochs)
    finish(stage, out, run_files(config))
    cluster.barrier()
    model.run_dir = out
    return TrainSummary(out, result.seconds, result.snapshot_seconds, sample_seconds, samples, model)


def _batch_line(config: TrainConfig, cluster: Cluster) -> str:
    """The batch (under torchrun the global one, split evenly), peak learning rate, precision and device."""
    batch, processes = config.train_batch_size, cluster.world_size
    split = (
        f"global batch {batch} = {processes} processes x {batch // processes}" if processes > 1 else f"batch {batch}"
    )
    return f"{split}, peak learning rate {config.learning_rate:g}, {config.precision} on {cluster.device}"


def _report(line: str) -> None:
    """A line about the run on stderr, beside the progress bar."""
    print(f"tiny-diffusion: {line}", file=sys.stderr, flush=True)


def _stage(out: Path, meta: dict[str, Any], *, resume: bool) -> Path:
    """The unfinished run to train in: a fresh one, or the one to resume (if its training data are the same)."""
    if not resume:
        return begin(out, meta)
    if unfinished_meta(out)["data"].get("sha256") != meta["data"]["sha256"]:
        raise UsageError(
            f"the training data of {out} differ from when it started ({meta['config']['dataset']} "
            "changed?), so it cannot carry on exactly; pass --overwrite to start again"
        )
    return partial_dir(out)


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
