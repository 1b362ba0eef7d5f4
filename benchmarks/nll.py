"""Trained runs' negative log-likelihood beside the exact one, for the point sets whose density is known.

    python benchmarks/nll.py [--datasets dino blobs 8gaussians] [--runs runs/nll] [--figure docs/nll_per_dataset.png]

For each dataset: a run with the dataset's default settings (trained into RUNS/DATASET, or loaded from there if it
exists), then ``td.evaluate`` of it: the NLL of 1,000 fresh points under the run's model (its probability-flow ODE,
the density after the first noising step), the exact NLL of that same density (the mixture noised once, closed
form), the gap with its standard error, and the clean data's NLL; with the run's W2 and precision for context. A
table, and a figure with a bar per number. No bar to meet: the numbers the docs' ground-truth page reports.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import tiny_diffusion as td


def nll_row(dataset: str, run_dir: Path) -> dict[str, float]:
    """The run's evaluate numbers (training it first if ``run_dir`` has no model), with its training seconds."""
    start = time.time()
    model = td.Diffusion.load(run_dir) if (run_dir / "model.safetensors").exists() else None
    if model is None:
        model = td.train(dataset=dataset, out=run_dir, progress=False)
    trained = time.time() - start
    start = time.time()
    metrics = td.evaluate(model, progress=False)
    return {**metrics, "train_s": trained, "evaluate_s": time.time() - start}


def plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    """Grouped bars per dataset: the exact NLL after step 0, the run's, and the clean data's."""
    import matplotlib.pyplot as plt

    bars = [("nll_exact", "exact, after step 0"), ("nll", "trained run"), ("nll_exact_clean", "exact, clean data")]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(rows))
    for i, (key, label) in enumerate(bars):
        ax.bar(x + (i - 1) * 0.27, [row[key] for row in rows.values()], width=0.27, label=label)
    ax.set_xticks(x, list(rows))
    ax.set_ylabel("negative log-likelihood (nats per point)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.legend()
    ax.set_title("NLL of 1,000 fresh points: default runs beside the exact density")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["dino", "blobs", "8gaussians"])
    parser.add_argument("--runs", type=Path, default=Path("runs/nll"), help="where the runs are trained or found")
    parser.add_argument("--figure", type=Path, help="write the bar chart here (PNG)")
    args = parser.parse_args()
    rows = {name: nll_row(name, args.runs / name) for name in args.datasets}
    keys = ("nll", "nll_exact", "nll_gap", "nll_gap_stderr", "nll_exact_clean", "w2", "w2_floor", "precision@0.1")
    print("| dataset | " + " | ".join(keys) + " | train (or load) s | evaluate s |")
    print("|---" * (len(keys) + 3) + "|")
    for name, row in rows.items():
        cells = [f"{row[k]:.3f}" if k in row else "-" for k in keys]
        print(f"| {name} | {' | '.join(cells)} | {row['train_s']:.0f} | {row['evaluate_s']:.0f} |")
    if args.figure is not None:
        plot(rows, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
