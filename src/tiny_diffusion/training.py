"""The training loop, on one screen: batches from an in-memory tensor, MSE on the chosen target, snapshots by callback."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import TrainConfig
from .errors import UsageError
from .objectives import loss_weights, training_target
from .schedule import NoiseSchedule

__all__ = ["TrainResult", "train", "resolve_device"]

Snapshot = Callable[[nn.Module, int], None]


@dataclass
class TrainResult:
    """What training produced besides the weights."""

    model: nn.Module  # the network to sample with (the EMA copy when EMA is on)
    losses: np.ndarray  # (steps,) training loss per optimiser step
    seconds: float  # wall time of the loop, snapshots included
    snapshot_seconds: float  # of which spent drawing snapshots
    epoch_seconds: list[float] = field(default_factory=list)  # time since start at the end of each epoch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit device that is not present is refused."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {name!r}; choose from auto, cpu, cuda, mps")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps asked for, but MPS is not available")
    return torch.device(name)


def _lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at each step: linear warm-up, then constant or cosine decay."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_schedule == "constant":
            return 1.0
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def train(
    model: nn.Module,
    schedule: NoiseSchedule,
    data: torch.Tensor,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    snapshot: Snapshot | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``data`` (N, ...) for config.num_epochs; call ``snapshot(model, epoch)`` as configured."""
    batch, n = config.train_batch_size, data.shape[0]
    steps_per_epoch = n // batch  # the last incomplete batch is dropped, as in the original
    total_steps = steps_per_epoch * config.num_epochs
    # the fused kernel saves about a third of a small model's step time on CPU
    fused = data.device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, total_steps))
    ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay > 0 else None
    losses = torch.empty(total_steps)
    device = data.device
    start, epoch_seconds, step, snapshot_seconds = time.perf_counter(), [], 0, 0.0
    bar = tqdm(range(config.num_epochs), desc="train", unit="epoch", disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        for i in range(steps_per_epoch):
            x0 = data[order[i * batch : (i + 1) * batch]]  # (B, ...)
            noise = torch.randn(x0.shape, generator=generator, device=device)
            t = torch.randint(0, len(schedule), (batch,), generator=generator, device=device)
            x_t = schedule.add_noise(x0, noise, t)
            error = F.mse_loss(model(x_t, t), training_target(config.target, schedule, x0, noise, x_t, t),
                               reduction="none").flatten(1).mean(dim=1)  # (B,)
            if config.min_snr_gamma > 0:
                error = error * loss_weights(config.target, schedule, t, config.min_snr_gamma)
            loss = error.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                # warm-up: early on the average forgets fast, so the initial weights do not linger in it
                decay = min(config.ema_decay, (1 + step) / (10 + step))
                with torch.no_grad():
                    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
                    for kept, live in zip(ema.buffers(), model.buffers()):  # BatchNorm statistics: the latest
                        kept.copy_(live)
            losses[step] = loss.detach()
            step += 1
        epoch_seconds.append(time.perf_counter() - start)
        recent = losses[max(0, step - steps_per_epoch) : step].mean().item()
        if not math.isfinite(recent):
            raise UsageError(f"training diverged at epoch {epoch} (loss {recent}); try a lower --learning-rate")
        bar.set_postfix(loss=f"{recent:.4f}", samples_per_s=f"{step * batch / epoch_seconds[-1]:.0f}")
        if snapshot is not None and (epoch % config.save_images_step == 0 or epoch == config.num_epochs - 1):
            snapshot_start = time.perf_counter()
            sampling_model = ema if ema is not None else model
            sampling_model.eval()
            snapshot(sampling_model, epoch)
            snapshot_seconds += time.perf_counter() - snapshot_start
    bar.close()
    final = ema if ema is not None else model
    final.eval()
    return TrainResult(final, losses.numpy(), time.perf_counter() - start, snapshot_seconds, epoch_seconds)
