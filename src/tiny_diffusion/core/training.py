"""The training loop, on one screen: batches from an in-memory tensor, MSE on the method's target, snapshots and
checkpoints by callback. ``TrainState`` holds everything the loop changes, so a run can stop after any step and
carry on from a checkpoint with the same bits."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import UsageError
from . import flow
from .distributed import SINGLE, Cluster
from .noise_levels import draw_flow_times, draw_timesteps
from .objectives import loss_weights, training_target
from .precision import autocast, grad_scaler
from .schedule import NoiseSchedule

__all__ = ["METHODS", "TrainingSettings", "TrainResult", "TrainState", "Diverged", "train", "train_step"]


class TrainingSettings(Protocol):
    """The settings the loop reads (a run's TrainingSettings has them, among others)."""

    train_batch_size: int  # the global batch
    num_epochs: int
    learning_rate: float  # peak, after warm-up
    lr_schedule: str  # constant or cosine
    warmup_steps: int
    ema_decay: float  # 0: no EMA copy
    grad_clip: float  # 0: no clipping
    min_snr_gamma: float  # 0: plain MSE
    timestep_sampling: str  # which noise levels each batch visits (a noise_levels.TIMESTEP_SAMPLINGS key)
    log_sigma_mean: float  # of ln sigma, for log-normal timestep sampling
    log_sigma_std: float
    method: str  # ddpm or flow (a METHODS key)
    target: str  # what a ddpm network predicts
    precision: str  # fp32, bf16, fp16
    cond_drop: float  # share of label drops in a conditional run
    guide_at: float  # share of training after which the weights are kept as the guide (0: none)
    save_images_step: int  # epochs between snapshots


@dataclass
class Regression:
    """What one batch of a method regresses: the network's inputs, the target of its output and per-sample weights."""

    x_t: torch.Tensor  # (B, ...) the noised batch
    t: torch.Tensor  # (B,) the network's time input
    target: torch.Tensor  # (B, ...) what the output is compared with
    weights: torch.Tensor | None  # (B,) weights of each sample's error, or None for the plain mean


def _ddpm(
    schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor, t_rows: Rows, config: TrainingSettings
) -> Regression:
    """DDPM (Ho et al. 2020): an integer step t drawn as ``timestep_sampling`` says (uniform, as there, or
    log-normal in sigma), x_t = sqrt(alpha-bar) x0 + sqrt(1 - alpha-bar) noise, the configured target; min-SNR
    weights if asked."""
    levels = dict(mean=config.log_sigma_mean, std=config.log_sigma_std, device=x0.device)
    t = t_rows(lambda n, g: draw_timesteps(config.timestep_sampling, schedule, n, g, **levels))
    x_t = schedule.add_noise(x0, noise, t)
    weights = loss_weights(config.target, schedule, t, config.min_snr_gamma) if config.min_snr_gamma > 0 else None
    return Regression(x_t, t, training_target(config.target, schedule, x0, noise, x_t, t), weights)


def _flow(
    schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor, t_rows: Rows, config: TrainingSettings
) -> Regression:
    """Conditional flow matching (Lipman et al. 2023): a time t in [0, 1) drawn as ``timestep_sampling`` says
    (uniform, as there, or logit-normal), x_t = (1 - t) x0 + t noise, the velocity noise - x0 as target; the network
    sees t * flow.TIME_SCALE."""
    levels = dict(mean=config.log_sigma_mean, std=config.log_sigma_std, device=x0.device)
    t = t_rows(lambda n, g: draw_flow_times(config.timestep_sampling, n, g, **levels))
    return Regression(flow.interpolate(x0, noise, t), t * flow.TIME_SCALE, flow.velocity_target(x0, noise), None)


# draws the global batch's (B,) times with the run's generator, returns this process's rows of them
Rows = Callable[[Callable[[int, torch.Generator], torch.Tensor]], torch.Tensor]
# name -> what a batch regresses (choices.METHODS holds the same names)
METHODS: dict[str, Callable[[NoiseSchedule, torch.Tensor, torch.Tensor, Rows, TrainingSettings], Regression]] = {
    "ddpm": _ddpm,
    "flow": _flow,
}


Snapshot = Callable[[nn.Module, int], None]
Checkpoint = Callable[["TrainState"], None]


@dataclass
class TrainResult:
    """What training produced besides the weights."""

    model: nn.Module  # the network to sample with (the EMA copy when EMA is on)
    guide: nn.Module | None  # the same weights after guide_at of training (autoguidance), or None
    losses: np.ndarray  # (steps,) training loss per optimiser step
    seconds: float  # wall time of the loop, snapshots included
    snapshot_seconds: float  # of which spent drawing snapshots
    epoch_seconds: list[float] = field(default_factory=list)  # training time at the end of each epoch


def _lr_lambda(config: TrainingSettings, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at each step: linear warm-up, then constant or cosine decay."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_schedule == "constant":
            return 1.0
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


@dataclass
class TrainState:
    """Everything the loop changes. Saved in a checkpoint and restored, it lets a stopped run carry on with the same
    bits: the same permutation, noise and timesteps (one generator draws them all) and the same optimiser moments.
    Under torchrun every process holds the same state (``distributed``): each computes its share of every batch."""

    model: nn.Module
    ema: nn.Module | None  # moving average of the weights (None when config.ema_decay is 0)
    guide: nn.Module | None  # the sampled weights (EMA's) as they were after guide_step steps, once there
    guide_step: int  # 0: no guide kept
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator  # draws every permutation, noise and timestep of training
    steps_per_epoch: int
    losses: torch.Tensor  # (total_steps,) loss of each optimiser step, filled up to ``step``
    grad_norms: torch.Tensor  # (total_steps,) gradient norm of each step before clipping (for the guard)
    step: int = 0  # optimiser steps done
    epoch: int = 0  # the epoch under way
    index: int = 0  # batches of it done
    order: torch.Tensor | None = None  # (N,) the epoch's permutation of the training set, once drawn
    epoch_seconds: list[float] = field(default_factory=list)  # training time at the end of each epoch
    snapshot_seconds: float = 0.0  # of which spent drawing snapshots
    seconds: float = 0.0  # training time so far, earlier sessions of a resumed run included
    checked: int = 0  # steps whose loss and gradient norm are known to be finite
    network: nn.Module | None = None  # what a step calls, if not the model: its DDP replica, or a compiled one
    # fp16's loss scaler (disabled for the other precisions: every call then passes straight through)
    scaler: torch.amp.GradScaler = field(default_factory=lambda: grad_scaler("fp32", torch.device("cpu")))
    cluster: Cluster = SINGLE  # the processes training together (one, unless started by torchrun)

    @classmethod
    def start(
        cls,
        model: nn.Module,
        config: TrainingSettings,
        *,
        generator: torch.Generator,
        num_samples: int,
        cluster: Cluster = SINGLE,
    ) -> TrainState:
        """A fresh state: AdamW with warm-up and decay, an EMA copy if configured, nothing trained yet."""
        steps_per_epoch = num_samples // config.train_batch_size  # the last incomplete batch is dropped
        total_steps = steps_per_epoch * config.num_epochs
        device = next(model.parameters()).device
        # the fused kernel saves about a third of a small model's step time on CPU
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, fused=device.type in ("cpu", "cuda"))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, total_steps))
        ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay > 0 else None
        guide_step = max(1, round(config.guide_at * total_steps)) if config.guide_at > 0 else 0
        # on the model's device: a GPU then never waits for a step's loss to be copied out
        losses, grad_norms = torch.empty(total_steps, device=device), torch.empty(total_steps, device=device)
        return cls(
            model,
            ema,
            None,
            guide_step,
            optimizer,
            scheduler,
            generator,
            steps_per_epoch,
            losses,
            grad_norms,
            scaler=grad_scaler(config.precision, device),
            cluster=cluster,
        )

    @property
    def total_steps(self) -> int:
        return len(self.losses)

    def replicated_tensors(self) -> dict[str, torch.Tensor]:
        """What every process of a torchrun job holds alike, by name: weights, EMA copy, optimiser moments and the
        generator's state."""
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema/{k}": v for k, v in self.ema.state_dict().items()})
        if self.guide is not None:
            tensors.update({f"guide/{k}": v for k, v in self.guide.state_dict().items()})
        params = [param for group in self.optimizer.param_groups for param in group["params"]]
        for i, param in enumerate(params):
            tensors.update(
                {f"optimizer/{i}/{k}": v for k, v in self.optimizer.state[param].items() if isinstance(v, torch.Tensor)}
            )
        return {**tensors, "generator": self.generator.get_state()}

    def state_dict(self) -> dict[str, Any]:
        """The state as nested dicts of numbers, strings and tensors (``checkpoints`` writes it)."""
        return {
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "guide": None if self.guide is None else self.guide.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "device": self.generator.device.type,
            "step": self.step,
            "epoch": self.epoch,
            "index": self.index,
            "order": self.order,
            "losses": self.losses[: self.step],
            "scaler": self.scaler.state_dict(),  # {} unless fp16
            "epoch_seconds": torch.tensor(self.epoch_seconds, dtype=torch.float64),  # a tensor: exact and short
            "snapshot_seconds": self.snapshot_seconds,
            "seconds": self.seconds,
        }

    def load_state_dict(self, values: dict[str, Any]) -> None:
        """Take up the state ``state_dict`` gave (of a run with the same settings)."""
        if values["device"] != self.generator.device.type:
            raise UsageError(
                f"the checkpoint was written on {values['device']}, this run is on "
                f"{self.generator.device.type}; resume with --device {values['device']}"
            )
        guide = values.get("guide")  # checkpoints from before autoguidance have none
        kept = self.guide_step > 0 and values["step"] >= self.guide_step  # whether the guide should be there
        if (
            (values["ema"] is None) != (self.ema is None)
            or values["step"] > self.total_steps
            or kept != (guide is not None)
        ):
            raise UsageError("the checkpoint does not match the run's settings")
        self.model.load_state_dict(values["model"])
        if self.ema is not None:
            self.ema.load_state_dict(values["ema"])
        self.guide = None
        if guide is not None:
            self.guide = self.sampled_copy()
            self.guide.load_state_dict(guide)
        self.optimizer.load_state_dict(values["optimizer"])
        for param, moments in self.optimizer.state.items():  # saved contiguous: back into each parameter's layout
            for name, value in moments.items():  # (channels last for image models), as the fused kernel had them
                if value.shape == param.shape:
                    moments[name] = torch.empty_like(param).copy_(value)
        self.scheduler.load_state_dict(values["scheduler"])
        if self.scaler.is_enabled():
            self.scaler.load_state_dict(values["scaler"])
        self.generator.set_state(values["generator"])
        self.step, self.epoch, self.index = values["step"], values["epoch"], values["index"]
        order = values["order"]
        self.order = None if order is None else order.to(self.generator.device)
        self.losses[: self.step] = values["losses"]
        self.epoch_seconds = values["epoch_seconds"].tolist()
        self.snapshot_seconds, self.seconds = values["snapshot_seconds"], values["seconds"]
        self.checked = self.step  # a checkpoint is only ever written of finite steps

    def sampled_copy(self) -> nn.Module:
        """A frozen copy of the weights that are sampled with: the EMA copy when EMA is on, else the model."""
        source = self.ema if self.ema is not None else self.model
        copied = copy.deepcopy(source).requires_grad_(False).eval()
        for param in copied.parameters():
            param.grad = None  # a copy of the live model carries its last gradients
        return copied

    def check_finite(self) -> None:
        """Raise Diverged at the first step since the last check whose loss or gradient norm is not finite."""
        losses, norms = self.losses[self.checked : self.step], self.grad_norms[self.checked : self.step]
        bad = (~(losses.isfinite() & norms.isfinite())).nonzero()
        if len(bad):
            i = int(bad[0])
            step = self.checked + i  # 0-based
            raise Diverged(
                f"training diverged at step {step + 1} of {self.total_steps} (epoch "
                f"{step // self.steps_per_epoch + 1}): loss {losses[i].item():.4g}, gradient norm "
                f"{norms[i].item():.4g}; try a lower --learning-rate than {self.scheduler.base_lrs[0]:g}"
            )
        self.checked = self.step


class Diverged(UsageError):
    """The loss or the gradient norm of a step is not finite: the weights are lost to NaN or infinity."""


def train_step(
    state: TrainState,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    config: TrainingSettings,
    labels: torch.Tensor | None = None,
) -> None:
    """One optimiser step on the batch ``x0`` (B, ...) (of classes ``labels`` (B,) in a conditional run), its loss
    and gradient norm recorded in ``state``. Under torchrun ``x0`` is this process's share of the global batch."""
    model, generator, device = state.model, state.generator, x0.device
    network = model if state.network is None else state.network
    # the noise, timesteps and label drops of the whole global batch (the same on every process): this one's rows
    batch, rows = (config.train_batch_size, *x0.shape[1:]), state.cluster.shard(config.train_batch_size)
    noise = torch.randn(batch, generator=generator, device=device)[rows]
    if config.method not in METHODS:
        raise UsageError(f"unknown method {config.method!r}; choose from {', '.join(METHODS)}")
    regression = METHODS[config.method](schedule, x0, noise, lambda draw: draw(batch[0], generator)[rows], config)
    x_t, t = regression.x_t, regression.t
    with autocast(config.precision, device):
        if labels is None:
            output = network(x_t, t)
        else:  # classifier-free guidance: a share cond_drop of the batch learns the unconditional model
            dropped = (torch.rand(batch[:1], generator=generator, device=device) < config.cond_drop)[rows]
            output = network(x_t, t, labels.masked_fill(dropped, model.null_label))
        error = F.mse_loss(output, regression.target, reduction="none").flatten(1).mean(dim=1)  # (B,)
        if regression.weights is not None:
            error = error * regression.weights
        loss = error.mean()
    scaler = state.scaler
    state.optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(state.optimizer)  # clip the true gradients, not fp16's scaled ones
    # with no clipping the norm is still measured (an infinite limit scales the gradients by exactly 1)
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
    if scaler.is_enabled():  # fp16: the scaler skips a step whose gradients overflow and lowers its scale
        grad_norm = torch.where(grad_norm.isfinite(), grad_norm, 0.0)  # not a divergence
    scaler.step(state.optimizer)
    scaler.update()
    state.scheduler.step()
    state.cluster.average_buffers(model)  # BatchNorm statistics: the same on every process
    if state.ema is not None:
        # warm-up: early on the average forgets fast, so the initial weights do not linger in it
        decay = min(config.ema_decay, (1 + state.step) / (10 + state.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(state.ema.parameters()), list(model.parameters()), 1 - decay)
            for kept, live in zip(state.ema.buffers(), model.buffers()):  # BatchNorm statistics: the latest
                kept.copy_(live)
    state.losses[state.step] = state.cluster.mean(loss.detach())  # of the global batch
    state.grad_norms[state.step] = grad_norm.detach()
    state.step += 1
    if state.step == state.guide_step:  # autoguidance: the weights as they are now will guide the final ones
        state.guide = state.sampled_copy()


def train(
    state: TrainState,
    schedule: NoiseSchedule,
    data: torch.Tensor,
    config: TrainingSettings,
    *,
    labels: torch.Tensor | None = None,
    snapshot: Snapshot | None = None,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``state.model`` on ``data`` (N, ...) from where ``state`` stands to the end of config.num_epochs; a
    conditional model also on the class ``labels`` (N,) of the data.

    ``snapshot(model, epoch)`` is called as configured; ``checkpoint(state)`` after every optimiser step and every
    epoch, where training could stop and carry on later (it decides whether to save, and may stop training).
    """
    batch, n, model = config.train_batch_size, data.shape[0], state.model
    start = time.perf_counter() - state.seconds  # a resumed run's clock carries on
    bar = tqdm(
        range(state.epoch, config.num_epochs),
        initial=state.epoch,
        total=config.num_epochs,
        desc="train",
        unit="epoch",
        disable=not progress,
        dynamic_ncols=True,
    )
    shard = state.cluster.shard(batch)  # this process's rows of each batch (all of them with one process)
    for epoch in bar:
        model.train()
        if state.order is None:
            state.order = torch.randperm(n, generator=state.generator, device=data.device)  # (N,)
        while state.index < state.steps_per_epoch:
            rows = state.order[state.index * batch : (state.index + 1) * batch][shard]  # (B / processes,)
            train_step(state, schedule, data[rows], config, None if labels is None else labels[rows])
            state.index += 1
            state.seconds = time.perf_counter() - start
            if checkpoint is not None:
                checkpoint(state)
        state.epoch_seconds.append(time.perf_counter() - start)
        state.check_finite()
        recent = state.losses[max(0, state.step - state.steps_per_epoch) : state.step].mean().item()
        bar.set_postfix(loss=f"{recent:.4f}", samples_per_s=f"{state.step * batch / state.epoch_seconds[-1]:.0f}")
        if snapshot is not None and (epoch % config.save_images_step == 0 or epoch == config.num_epochs - 1):
            snapshot_start = time.perf_counter()
            sampling_model = state.ema if state.ema is not None else model
            sampling_model.eval()
            snapshot(sampling_model, epoch)
            state.snapshot_seconds += time.perf_counter() - snapshot_start
        state.epoch, state.index, state.order = epoch + 1, 0, None
        state.seconds = time.perf_counter() - start
        if checkpoint is not None:
            checkpoint(state)
    bar.close()
    final = state.ema if state.ema is not None else model
    final.eval()
    return TrainResult(
        final, state.guide, state.losses.cpu().numpy(), state.seconds, state.snapshot_seconds, state.epoch_seconds
    )
