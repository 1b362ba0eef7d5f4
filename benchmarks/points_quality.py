"""Dino quality and training time: the project's default configuration beside the original tiny-diffusion's.

    python benchmarks/points_quality.py [--out DIR] [--markdown FILE] [--figure FILE.png]

Trains, in this one process and one after the other, (a) the default `tiny-diffusion train` configuration and
(b) the original's (T=50 linear, batch 32, 200 epochs, lr 1e-3 constant, hidden 128 x 3, sinusoidal embeddings,
a snapshot every epoch), then compares 1000 samples of each with fresh draws of the dino. Every metric stands
beside its floor (the same metric between two independent draws of the data). Times are wall-clock on this machine:
"optimise" is the training loop without snapshots, "train" adds the snapshots, as the `train` command runs them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import tiny_diffusion as td
from tiny_diffusion.studies.reproduce import ORIGINAL  # not public: the original's settings, as `reproduce` trains them
from tiny_diffusion.viz import figures as viz  # not public: the plotting helpers the run figures are drawn with

BARS = "W2 <= 1.1 x floor, precision@0.1 >= 0.95, precision@0.05 >= 0.75, recall@0.05 >= 0.98"


def measure(name: str, config: td.TrainConfig, out: Path) -> dict[str, float | str]:
    print(f"training {name} ...", file=sys.stderr, flush=True)
    summary = td.train_summary(config, out, progress=False)
    metrics = td.evaluate(summary.model, progress=False)  # the run's samples against fresh draws of its dataset
    return {
        "config": name,
        "optimise_s": summary.seconds - summary.snapshot_seconds,
        "train_s": summary.seconds,
        "samples": summary.samples,
        **metrics,
    }


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
    args = parser.parse_args()
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="points_quality-"))
    default = td.settings(device="cpu")
    original = td.settings(ORIGINAL, save_images_step=1, device="cpu")  # a snapshot per epoch, as there
    rows = [measure("(a) default", default, root / "default"), measure("(b) original", original, root / "original")]
    a, b = rows
    passed = (
        a["w2"] <= 1.1 * a["w2_floor"]
        and a["precision@0.1"] >= 0.95
        and a["precision@0.05"] >= 0.75
        and a["recall@0.05"] >= 0.98
        and a["optimise_s"] <= b["optimise_s"]
    )
    text = "\n".join(
        [
            table(rows),
            "",
            f"time ratio (b)/(a): optimise {b['optimise_s'] / a['optimise_s']:.2f}, "
            f"train {b['train_s'] / a['train_s']:.2f}",
            f"bar for (a): {BARS}, optimise time <= (b)'s: {'met' if passed else 'NOT met'}",
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; runs in {root}",
        ]
    )
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.figure:
        data = td.datasets.sample("dino", 1000, seed=1)
        viz.plot_strip(
            np.stack([data, a["samples"], b["samples"]]),
            ["data (1000 points)", f"(a) default: W2 {a['w2']:.2f}", f"(b) original: W2 {b['w2']:.2f}"],
            args.figure,
            limits=viz.axis_limits(data),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
