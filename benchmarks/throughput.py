"""Throughput: training and sampling samples per second of the dino MLP and the MNIST U-Net, beside the hardware.

    python benchmarks/throughput.py [--device cpu|cuda|auto] [--threads N] [--steps S] [--markdown FILE]

For each model in its default configuration (the dino's; ``config.IMAGE_DEFAULTS`` on mnist5k), on the CPU and, when
there is one, on the GPU:

- training: optimiser steps as ``train`` takes them (noise, forward, loss, backward, clipping, AdamW, EMA), timed
  after a few warm-up steps, in each precision the device supports and compiled (``--compile``; its first steps,
  the compilation, are timed apart);
- sampling: the run's own sampler over its eval batch (1000 points, 500 DDPM steps; 500 images, 50 DDIM steps),
  in inference mode, as ``train`` and ``sample`` draw them.

Each row sets the model's arithmetic rate beside the device's measured matmul peak: FLOPs per step come from
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions; elementwise work is not counted) and
the peak is the best rate of a large fp32 matrix product. The gap between the two is how far the model is from what
the hardware could do.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import tiny_diffusion as td
from tiny_diffusion.core.devices import resolve_device

# not public: this benchmark times the training step and the network alone, without a run around them
from tiny_diffusion.core.samplers import sampler_timesteps
from tiny_diffusion.core.training import TrainState, train_step
from tiny_diffusion.data.prepare import training_data
from tiny_diffusion.models import build_model

MODELS = {"dino MLP": {}, "MNIST U-Net": {"dataset": "mnist5k"}}
HEADER = (
    "| device | model | work | precision | batch | samples/s | model GFLOP/s | fp32 matmul peak GFLOP/s | "
    "share of peak | note |"
)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, size: int, repeats: int = 5) -> float:
    """FLOP/s of the fastest of ``repeats`` fp32 (size x size) @ (size x size) products on ``device``."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b  # warm-up: kernels chosen, memory allocated
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def counted_flops(work) -> int:
    """The matmul and convolution FLOPs of calling ``work()`` once."""
    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops()


def setup(config: td.TrainConfig, device: torch.device):
    """The model, schedule and training data (N, *shape) of ``config``, on ``device``."""
    train_set = training_data(config)
    data = torch.tensor(train_set.x, dtype=torch.float32, device=device)
    torch.manual_seed(config.seed)
    model = build_model(config, shape=train_set.shape).to(device)
    schedule = td.NoiseSchedule.from_settings(config, device=device)
    return model, schedule, data


def time_training(
    config: td.TrainConfig, device: torch.device, *, steps: int, compile: bool
) -> tuple[float, float, int]:
    """(samples/s of training, seconds of the warm-up steps (the compilation, if any), FLOPs of one step)."""
    model, schedule, data = setup(config, device)
    state = TrainState.start(model, config, generator=torch.Generator(device).manual_seed(0), num_samples=len(data))
    if compile:
        state.network = torch.compile(model)
    order = torch.randperm(len(data), device=device)
    batches = [order[i : i + config.train_batch_size] for i in range(0, len(data), config.train_batch_size)]
    batches = [rows for rows in batches if len(rows) == config.train_batch_size]

    def run(count: int, offset: int) -> float:
        synchronize(device)
        start = time.perf_counter()
        for i in range(count):
            train_step(state, schedule, data[batches[(offset + i) % len(batches)]], config)
        synchronize(device)
        return time.perf_counter() - start

    warmup = run(3, 0)
    seconds = run(steps, 3)
    state.network = None  # counted on the plain model: compiling changes how, not what, it computes
    flops = counted_flops(lambda: train_step(state, schedule, data[batches[0]], config))
    return steps * config.train_batch_size / seconds, warmup, flops


def time_sampling(config: td.TrainConfig, device: torch.device) -> tuple[float, int, int]:
    """(samples/s of the run's sampler over its eval batch, FLOPs of the whole draw, denoising steps)."""
    model, schedule, data = setup(config, device)
    model.eval()
    shape = (config.eval_batch_size, *data.shape[1:])
    clip = (data.min().item(), data.max().item()) if config.clip_sample else None

    def draw() -> None:
        td.sample(
            model,
            schedule,
            shape,
            sampler=config.sampler,
            steps=config.sample_steps,
            eta=config.eta,
            clip=clip,
            generator=torch.Generator(device).manual_seed(0),
        )

    steps = len(sampler_timesteps(config.num_timesteps, config.sampler, config.sample_steps))
    with torch.inference_mode():
        x, t = torch.randn(shape, device=device), torch.zeros(shape[0], dtype=torch.long, device=device)
        flops = counted_flops(lambda: model(x, t)) * steps
    draw()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    draw()
    synchronize(device)
    return config.eval_batch_size / (time.perf_counter() - start), flops, steps


def rows_for(device: torch.device, *, steps: int, image_steps: int) -> list[str]:
    peak = matmul_peak(device, 8192 if device.type == "cuda" else 2048)
    threads = torch.get_num_threads()
    cpu = f"CPU, {threads} thread{'s' * (threads > 1)}"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    rows = []

    def row(model: str, work: str, precision: str, batch: int, rate: float, flops_per_s: float, note: str = "") -> None:
        rows.append(
            f"| {name} | {model} | {work} | {precision} | {batch} | {rate:,.0f} | {flops_per_s / 1e9:,.1f} | "
            f"{peak / 1e9:,.0f} | {100 * flops_per_s / peak:.1f}% | {note} |"
        )
        print(rows[-1], flush=True)

    precisions = ["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32", "bf16"]
    for model, changes in MODELS.items():
        base = td.settings(changes, device=device.type)
        count = image_steps if base.is_images else steps
        for precision, compile in [*((p, False) for p in precisions), ("fp32", True)]:
            config = replace(base, precision=precision)
            rate, warmup, flops = time_training(config, device, steps=count, compile=compile)
            note = f"compiled: the first 3 steps took {warmup:.0f} s" if compile else ""
            row(
                model,
                "train" + (" --compile" if compile else ""),
                precision,
                config.train_batch_size,
                rate,
                flops * rate / config.train_batch_size,
                note,
            )
        rate, flops, denoising_steps = time_sampling(base, device)
        row(
            model,
            f"sample ({base.sampler}, {denoising_steps} steps)",
            "fp32",
            base.eval_batch_size,
            rate,
            flops * rate / base.eval_batch_size,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        default="all",
        choices=("all", "cpu", "cuda", "auto"),
        help="all: the CPU, and the GPU when there is one (default: %(default)s)",
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="CPU threads (default: %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=100, help="dino training steps timed (default: %(default)s)")
    parser.add_argument("--image-steps", type=int, default=20, help="MNIST training steps timed (default: %(default)s)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # a cold compilation, as a user's first `train --compile` meets it, not one served by inductor's on-disk cache
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="throughput-inductor-")
    if args.device == "all":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    else:
        devices = [resolve_device(args.device)]
    rule = "|" + "---|" * (HEADER.count("|") - 1)
    print(HEADER, rule, sep="\n", flush=True)
    rows = [row for device in devices for row in rows_for(device, steps=args.steps, image_steps=args.image_steps)]
    if args.markdown:
        args.markdown.write_text("\n".join([HEADER, rule, *rows]) + "\n")


if __name__ == "__main__":
    main()
