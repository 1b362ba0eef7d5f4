"""What checkpoints cost: trains as `tiny-diffusion train` does and times every checkpoint written.

    python benchmarks/checkpoint_overhead.py                                   # the default dino run
    python benchmarks/checkpoint_overhead.py --dataset mnist5k --num-epochs 3  # mnist5k, 3 of its 45 epochs

Prints the optimiser steps and the training time, the checkpoints written and what each took (safetensors + JSON,
fsynced), the share of training time they cost, and the most training a kill between two checkpoints loses. Any
train flag may follow (e.g. --checkpoint-every 200).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

import tiny_diffusion as td
from tiny_diffusion.cli.config_file import load_config_file  # not public: the --config file, as the command reads it
from tiny_diffusion.cli.main import build_parser  # not public: takes every flag of `train`, as the command does
from tiny_diffusion.runs import checkpoints  # not public: the checkpointer is what this benchmark times
from tiny_diffusion.runs.checkpoints import CheckpointPolicy


def main(argv: list[str]) -> None:
    args = build_parser().parse_args(["train", "--quiet", *argv])
    given = {f.name: getattr(args, f.name) for f in fields(td.TrainConfig) if getattr(args, f.name) is not None}
    config = td.settings(load_config_file(args.config) if args.config else None, **given)  # the flags win
    policy = CheckpointPolicy.parse(args.checkpoint_every, args.keep_checkpoints)  # printed as the command says it
    costs: list[float] = []  # seconds each checkpoint took
    at: list[float] = [0.0]  # training seconds at each checkpoint
    save = checkpoints.Checkpointer.save

    def timed_save(self, state) -> None:
        start, before = time.perf_counter(), self.saved_step
        save(self, state)
        if self.saved_step != before:
            costs.append(time.perf_counter() - start)
            at.append(state.seconds)

    checkpoints.Checkpointer.save = timed_save  # instrumented here only
    with tempfile.TemporaryDirectory() as work:
        summary = td.train_summary(
            config,
            Path(work) / "run",
            progress=False,
            checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints,
        )
        steps = len(np.load(Path(work) / "run" / "loss.npy"))
    print(
        f"{config.dataset}: {steps} steps, trained in {summary.seconds:.1f} s "
        f"({(summary.seconds - summary.snapshot_seconds) / steps * 1e3:.1f} ms per step without snapshots)"
    )
    print(
        f"checkpoints ({policy} and at the end): {len(costs)}, {statistics.median(costs) * 1e3:.1f} ms median, "
        f"{max(costs) * 1e3:.1f} ms at most, {sum(costs):.2f} s in all = {100 * sum(costs) / summary.seconds:.2f}% "
        "of training"
    )
    print(f"a kill loses at most {max(np.diff(at)):.1f} s of training (the longest time between two checkpoints)")


if __name__ == "__main__":
    main(sys.argv[1:])
