"""The follow-up study's line finding, measured: plain lines, densified lines, and more diffusion steps.

    python benchmarks/line_study.py [--quick] [--out DIR] [--figure FILE.png]

Trains one run per variant, one after the other in this process, and compares 1000 samples of each with fresh draws
of its own data. Variants: the original configuration (T=50 linear, batch 32, 200 epochs, lr 1e-3) on a plain line
(50 evenly spaced points), on the same line densified with uniform and with Poisson jitter, and on the original's
`line` (a filled band); then the project's default configuration (T=500, batch 512, 1000 epochs) on the plain line
(with and without its clipping of predicted x0 to the data's range) and on the band. Printed per variant: W2 and
MMD with their floors (the same metrics between two draws of the data), precision and recall at 0.1 against the
exact segment (where the shape has one), and the extent of the samples along the shape's long side (1st to 99th
percentile) beside the data's: a model that "misses the ends" has a shorter one.
`--quick` divides the epochs by 5, for a look in a few minutes; the README reports the full run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import tiny_diffusion as td
from tiny_diffusion.viz import figures as viz  # not public: the plotting helpers the run figures are drawn with

ORIGINAL = dict(
    train_batch_size=32,
    num_epochs=200,
    learning_rate=1e-3,
    lr_schedule="constant",
    warmup_steps=0,
    num_timesteps=50,
    clip_sample=False,
)
VARIANTS = [  # label, dataset options, configuration
    ("plain line, original", dict(dataset="horizontal_lines", densify="none"), ORIGINAL),
    ("uniform-densified, original", dict(dataset="horizontal_lines", densify="uniform"), ORIGINAL),
    ("Poisson-densified, original", dict(dataset="horizontal_lines", densify="poisson"), ORIGINAL),
    ("band `line`, original", dict(dataset="line"), ORIGINAL),
    ("plain line, default", dict(dataset="horizontal_lines", densify="none"), {}),
    # the default clips predicted x0 to the data's range, which pins a flat line's y; without it, the steps alone
    ("plain line, default, no clip", dict(dataset="horizontal_lines", densify="none"), dict(clip_sample=False)),
    ("band `line`, default", dict(dataset="line"), {}),
]


def extent(points: np.ndarray, axis: int) -> str:
    """1st to 99th percentile of one coordinate."""
    lo, hi = np.percentile(points[:, axis], [1, 99])
    return f"{'xyz'[axis]} {lo:.2f} to {hi:.2f}"


def run(label: str, data: dict, base: dict, out: Path, quick: bool) -> dict:
    config = td.settings({**base, **data}, device="cpu", save_images_step=10_000)
    if quick:
        config = td.settings(config, num_epochs=max(1, config.num_epochs // 5))
    print(f"training {label} ({config.num_epochs} epochs) ...", file=sys.stderr, flush=True)
    summary = td.train_summary(config, out, progress=False)
    metrics = td.evaluate(summary.model, progress=False)  # against its own dataset, with its options
    data = td.datasets.sample(config.dataset, 1000, seed=1, **config.dataset_options())
    return {"label": label, "samples": summary.samples, "data": data, "seconds": summary.seconds, **metrics}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the epochs")
    parser.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    parser.add_argument("--figure", help="write every variant's samples side by side to this image file")
    args = parser.parse_args()
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="line_study-"))
    rows = [run(label, data, base, root / f"variant{i}", args.quick) for i, (label, data, base) in enumerate(VARIANTS)]
    print("| variant | W2 | W2 floor | MMD | MMD floor | precision@0.1 | recall@0.1 | extent (data) | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        axis = int(np.argmax(np.ptp(r["data"], axis=0)))  # along the shape's long side
        support = f"{r['precision@0.1']:.3f} | {r['recall@0.1']:.3f}" if "precision@0.1" in r else "- | -"
        print(
            f"| {r['label']} | {r['w2']:.3f} | {r['w2_floor']:.3f} | {r['mmd']:.4f} | {r['mmd_floor']:.4f} | "
            f"{support} | {extent(r['samples'], axis)} ({extent(r['data'], axis)}) | {r['seconds']:.0f} |"
        )
    print(f"runs in {root}")
    if args.figure:
        frames = np.stack([r["samples"] for r in rows])
        limits = viz.axis_limits(*[r["data"] for r in rows], margin=0.15)
        viz.plot_strip(
            frames,
            [f"{r['label']}\nW2 {r['w2']:.2f} (floor {r['w2_floor']:.2f})" for r in rows],
            args.figure,
            limits=limits,
            title="line study: 1000 samples per variant",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
