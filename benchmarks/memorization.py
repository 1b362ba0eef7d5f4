"""How much of what the exact models draw is a copy of a training point (issue 15: the memorising ideal denoiser).

    python benchmarks/memorization.py [--datasets 8gaussians,blobs,dino] [--sizes 200,8000] [--num 500]

For each dataset and training-set size: ``--num`` DDPM samples (the dataset's default settings) of the ideal denoiser
of the training set (``td.exact(..., kind="ideal")``), of the exact mixture (``kind="mixture"``), of a network trained
on that training set with the dataset's defaults (``--trained``), and a fresh draw of the data, each with its share
within 0.001 of a training point (``memorized_share``). No bar: a table for the docs, and with ``--figure PATH`` the
samples of the first dataset and size beside its training points. The ideal denoiser of 8,000 points costs about
30 s per 300 samples on one CPU core; training, about a minute per 8,000-point run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import tiny_diffusion as td
from tiny_diffusion.data.prepare import training_data  # the exact training set, to draw it
from tiny_diffusion.eval.evaluate import memorized_share


def memorization_row(
    dataset: str, num_samples: int, num: int, *, seed: int = 1, trained: Path | None = None
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The share of copies among ``num`` samples of each exact model of ``dataset``, of a model trained into
    ``trained`` (if given) and of a fresh draw of it; and the samples, with the training points."""
    ideal = td.exact(dataset, num_samples=num_samples, kind="ideal")
    drawn = {"ideal": ideal.sample(num, seed=seed)}
    if td.datasets.get(dataset).mixture() is not None:
        drawn["mixture"] = td.exact(dataset, num_samples=num_samples, kind="mixture").sample(num, seed=seed)
    if trained is not None:
        batch = min(num_samples, td.settings(dataset=dataset).train_batch_size)
        model = td.train(dataset=dataset, num_samples=num_samples, train_batch_size=batch, out=trained, progress=False)
        drawn["trained"] = model.sample(num, seed=seed)
    drawn["fresh data"] = td.datasets.sample(dataset, num, seed=7)
    row = {name: memorized_share(samples, ideal.config) for name, samples in drawn.items()}
    train_set = training_data(ideal.config)
    drawn["training points"] = train_set.x * train_set.scale + train_set.shift  # in the data's units
    return row, drawn


def plot_samples(drawn: dict[str, np.ndarray], title: str, path: Path) -> None:
    """One panel per model: its samples (red) over the training points (black)."""
    import matplotlib.pyplot as plt

    names = [n for n in ("ideal", "trained", "mixture") if n in drawn]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), sharex=True, sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names):
        ax.scatter(*drawn["training points"].T, s=12, c="black", label="training points")
        ax.scatter(*drawn[name].T, s=3, c="tab:red", alpha=0.6, label="samples")
        ax.set_title({"ideal": "ideal denoiser", "trained": "trained network", "mixture": "exact mixture"}[name])
        ax.set_xlabel("x")
        ax.set_aspect("equal")
    np.atleast_1d(axes)[0].set_ylabel("y")
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="8gaussians,blobs,dino", help="comma-separated point datasets")
    parser.add_argument("--sizes", default="200,8000", help="comma-separated training-set sizes")
    parser.add_argument("--num", type=int, default=500, help="samples drawn from each model")
    parser.add_argument("--trained", action="store_true", help="also train a network on each training set")
    parser.add_argument("--figure", type=Path, help="a PNG of the first dataset and size's samples")
    args = parser.parse_args()
    columns = ("ideal", "mixture", "trained", "fresh data")
    print("| dataset | training points | samples | ideal denoiser | exact mixture | trained | fresh data | s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as runs:
        for size in (int(s) for s in args.sizes.split(",")):
            for dataset in args.datasets.split(","):
                start = time.time()
                trained = Path(runs) / f"{dataset}_{size}" if args.trained else None
                row, drawn = memorization_row(dataset, size, args.num, trained=trained)
                cells = [f"{row[k]:.3f}" if k in row else "-" for k in columns]
                print(f"| {dataset} | {size:,} | {args.num} | {' | '.join(cells)} | {time.time() - start:.0f} |")
                if args.figure is not None:
                    plot_samples(drawn, f"{dataset}: {args.num} samples, {size:,} training points", args.figure)
                    args.figure = None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
