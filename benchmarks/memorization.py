"""How much of what the exact models draw is a copy of a training point (issue 15: the memorising ideal denoiser).

    python benchmarks/memorization.py [--datasets 8gaussians,blobs,dino] [--sizes 200,8000] [--num 500]

For each dataset and training-set size: ``--num`` DDPM samples (the dataset's default settings) of the ideal denoiser
of the training set (``td.exact(..., kind="ideal")``), of the exact mixture (``kind="mixture"``) and a fresh draw of
the data, each with its share within 0.001 of a training point (``memorized_share``). No bar: a table for the docs.
The ideal denoiser of 8,000 points costs about 30 s per 300 samples on one CPU core.
"""

from __future__ import annotations

import argparse
import time

import tiny_diffusion as td
from tiny_diffusion.eval.evaluate import memorized_share


def memorization_row(dataset: str, num_samples: int, num: int, *, seed: int = 1) -> dict[str, float]:
    """The share of copies among ``num`` samples of each exact model of ``dataset`` and of a fresh draw of it."""
    ideal = td.exact(dataset, num_samples=num_samples, kind="ideal")
    row = {"ideal": memorized_share(ideal.sample(num, seed=seed), ideal.config)}
    if td.datasets.get(dataset).mixture() is not None:
        mixture = td.exact(dataset, num_samples=num_samples, kind="mixture")
        row["mixture"] = memorized_share(mixture.sample(num, seed=seed), mixture.config)
    row["fresh data"] = memorized_share(td.datasets.sample(dataset, num, seed=7), ideal.config)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="8gaussians,blobs,dino", help="comma-separated point datasets")
    parser.add_argument("--sizes", default="200,8000", help="comma-separated training-set sizes")
    parser.add_argument("--num", type=int, default=500, help="samples drawn from each model")
    args = parser.parse_args()
    print("| dataset | training points | samples | ideal denoiser | exact mixture | fresh data | s |")
    print("|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        for dataset in args.datasets.split(","):
            start = time.time()
            row = memorization_row(dataset, size, args.num)
            cells = [f"{row[k]:.3f}" if k in row else "-" for k in ("ideal", "mixture", "fresh data")]
            print(
                f"| {dataset} | {size:,} | {args.num} | {' | '.join(cells)} | {time.time() - start:.0f} |", flush=True
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
