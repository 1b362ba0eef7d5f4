"""Dino quality and training time: the project's default configuration beside the original tiny-diffusion's.

    python benchmarks/points_quality.py [--out DIR] [--markdown FILE] [--figure FILE.png] [--threads N]

Trains, in this one process and one after the other, (a) the default `tiny-diffusion train` configuration and
(b) the original's (T=50 linear, batch 32, 200 epochs, lr 1e-3 constant, hidden 128 x 3, sinusoidal embeddings,
uniform timesteps, a snapshot every epoch drawn by DDPM's 50 steps), then compares 1000 samples of each with fresh
draws of the dino; (a)'s model also draws 1000 samples by DPM-Solver++ 2M in 20 steps, as
`tiny-diffusion sample RUN --sampler dpmpp-2m --sample-steps 20` draws them. Every metric stands beside its floor
(the same metric between two independent draws of the data). Times are wall-clock on this machine: "optimise" is
the training loop without snapshots, "train" adds the snapshots, as the `train` command runs them. The bar (issue
16): (a)'s samples by both samplers meet the quality bar below, and (a) trains in at most a quarter of (b)'s time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tiny_diffusion as td
from tiny_diffusion.studies.reproduce import ORIGINAL  # not public: the original's settings, as `reproduce` trains them
from tiny_diffusion.viz import figures as viz  # not public: the plotting helpers the run figures are drawn with

BARS = "W2 <= 1.1 x floor, precision@0.1 >= 0.95, precision@0.05 >= 0.75, recall@0.05 >= 0.98"


def measure(name: str, config: td.TrainConfig, out: Path, threads: int | None) -> dict[str, Any]:
    print(f"training {name} ...", file=sys.stderr, flush=True)
    summary = td.train_summary(config, out, progress=False, threads=threads)
    metrics = td.evaluate(summary.model, progress=False, likelihood=False)  # against fresh draws of the dataset
    return {
        "config": name,
        "optimise_s": summary.seconds - summary.snapshot_seconds,
        "train_s": summary.seconds,
        "samples": summary.samples,
        "model": summary.model,
        **metrics,
    }


def resampled(row: dict[str, Any], sampler: str, steps: int) -> dict[str, Any]:
    """The same model's samples drawn again by ``sampler`` in ``steps`` steps (seed 0, as `sample` draws them)."""
    samples = row["model"].sample(len(row["samples"]), sampler=sampler, steps=steps)
    metrics = td.evaluate(samples, dataset=row["model"].config.dataset, progress=False)
    name = f"{row['config']}, {sampler} {steps} steps"
    return {**row, "config": name, "samples": samples, **metrics}


def meets(row: dict[str, Any]) -> bool:
    return (
        row["w2"] <= 1.1 * row["w2_floor"]
        and row["precision@0.1"] >= 0.95
        and row["precision@0.05"] >= 0.75
        and row["recall@0.05"] >= 0.98
    )


def table(rows: list[dict]) -> str:
    columns = [
        ("config", "configuration"),
        ("optimise_s", "optimise s"),
        ("train_s", "train s"),
        ("w2", "W2"),
        ("w2_floor", "W2 floor"),
        ("mmd", "MMD"),
        ("mmd_floor", "MMD floor"),
        ("precision@0.05", "prec@0.05"),
        ("precision@0.1", "prec@0.1"),
        ("recall@0.05", "recall@0.05"),
    ]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [row[key] if isinstance(row[key], str) else f"{row[key]:.3g}" for key, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="keep the two run directories here (default: a temporary folder)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--figure", help="write the two sets of samples side by side to this image file")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads for both runs' training (default: the library's, one for points)"
    )
    args = parser.parse_args()
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be positive")
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="points_quality-"))
    default = td.settings(device="cpu")
    original = td.settings(ORIGINAL, save_images_step=1, device="cpu")  # a snapshot per epoch, as there
    a = measure("(a) default", default, root / "default", args.threads)
    b = measure("(b) original", original, root / "original", args.threads)
    fast = resampled(a, "dpmpp-2m", 20)
    rows = [a, fast, b]
    quality = meets(a) and meets(fast)
    ratio = a["train_s"] / b["train_s"]
    text = "\n".join(
        [
            table(rows),
            "",
            f"time ratio (a)/(b): optimise {a['optimise_s'] / b['optimise_s']:.2f}, train {ratio:.2f}",
            f"bar for (a), by both samplers: {BARS}: {'met' if quality else 'NOT met'}; "
            f"train time <= 0.25 x (b)'s: {'met' if ratio <= 0.25 else 'NOT met'}",
            f"torch {torch.__version__}, training threads: {args.threads or 'the library default, 1'}; runs in {root}",
        ]
    )
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.figure:
        data = td.datasets.sample("dino", 1000, seed=1)
        viz.plot_strip(
            np.stack([data, a["samples"], fast["samples"], b["samples"]]),
            [
                "data (1000 points)",
                f"(a) default: W2 {a['w2']:.2f}",
                f"(a), dpmpp-2m 20 steps: W2 {fast['w2']:.2f}",
                f"(b) original: W2 {b['w2']:.2f}",
            ],
            args.figure,
            limits=viz.axis_limits(data),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
