"""The 3-D sphere with the default settings: do samples lie on the surface, and are they spread like the data?

    python benchmarks/sphere.py [--out DIR] [--seed K]

Trains `tiny-diffusion train --dataset sphere` with every other setting at its default, then reports, for 1000
samples: the median distance to the sphere's surface as a share of the radius (bar: <= 5%), and W2 beside its
floor, the same metric between two independent draws of the data (bar: W2 <= 1.25 x floor).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import tiny_diffusion as td

RADIUS = 3.0  # the sphere dataset's radius (see its description)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="run directory (default: in a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="the run's --seed (model, batches, sampling)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="sphere-")) / "run"
    config = td.settings(dataset="sphere", device="cpu", seed=args.seed)
    print("training on the sphere ...", file=sys.stderr, flush=True)
    summary = td.train_summary(config, out, progress=False)
    surface = np.median(np.abs(np.linalg.norm(summary.samples, axis=1) - RADIUS)) / RADIUS
    m = td.evaluate(summary.model, progress=False)
    ok = surface <= 0.05 and m["w2"] <= 1.25 * m["w2_floor"]
    print("| samples | median distance to surface / radius | W2 | W2 floor | W2 / floor | MMD | MMD floor | train s |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {len(summary.samples)} | {surface:.4f} | {m['w2']:.3f} | {m['w2_floor']:.3f} | "
        f"{m['w2'] / m['w2_floor']:.2f} | {m['mmd']:.4f} | {m['mmd_floor']:.4f} | {summary.seconds:.0f} |"
    )
    print(f"bar (surface <= 5% of the radius, W2 <= 1.25 x floor): {'met' if ok else 'NOT met'}; run in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
