"""MNIST quality and time: the default image configuration on the embedded 5,000-image subset, scored by the judge.

    python benchmarks/mnist.py [--out DIR] [--markdown FILE] [--figure FILE.png] [--set key=value ...]

Trains exactly what `tiny-diffusion train --dataset mnist5k` trains (its defaults, plus any --set overrides), timing
the whole job as the command runs it (data, training, snapshots, the final samples and the run's figures), then
scores the samples with the judge against the 500 held-out test images. The judge is trained first if it is not
cached; its time is reported apart, since it is trained once per machine, not per run.

Bar (issue 5): the job under 15 minutes here, Frechet distance at most 3 x its real-vs-real floor, and at least 85%
of samples classified confidently (> 0.9).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import tiny_diffusion as td
from tiny_diffusion.eval.judge import get_judge, judge_path  # not public: the judge's cache, to time its training apart
from tiny_diffusion.viz import figures as viz  # not public: the plotting helpers the run figures are drawn with

BAR_SECONDS, BAR_FRECHET_RATIO, BAR_CONFIDENT = 15 * 60, 3.0, 0.85


def parse_overrides(pairs: list[str]) -> dict:
    """key=value pairs, each value read as JSON where it parses (numbers, true/false), else as a string."""
    values = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="keep the run directory here (default: a temporary folder)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--figure", help="copy the run's 100-sample grid to this image file")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="train settings to change")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    config = td.settings({"dataset": "mnist5k", "device": "cpu", **overrides})
    judge_seconds = 0.0
    if not judge_path("mnist5k").exists():
        start = time.perf_counter()
        get_judge("mnist5k", train_if_missing=True, progress=False)
        judge_seconds = time.perf_counter() - start
    run_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mnist-")) / "run"
    start = time.perf_counter()
    summary = td.train_summary(config, run_dir, progress=True)
    job_seconds = time.perf_counter() - start
    metrics = td.evaluate(summary.model, progress=False)  # the judge's numbers for the run's samples
    ratio = metrics["frechet"] / metrics["frechet_floor"]
    passed = job_seconds <= BAR_SECONDS and ratio <= BAR_FRECHET_RATIO and metrics["confident"] >= BAR_CONFIDENT
    changed = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "none"
    text = "\n".join(
        [
            "| job s | train s | sample s | Frechet | floor | ratio | confident | floor | class entropy (bits) |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {job_seconds:.0f} | {summary.seconds:.0f} | {summary.sample_seconds:.0f} | {metrics['frechet']:.1f} | "
            f"{metrics['frechet_floor']:.1f} | {ratio:.2f} | {metrics['confident']:.3f} | "
            f"{metrics['confident_floor']:.3f} | {metrics['class_entropy_bits']:.2f} |",
            "",
            f"settings changed from the image defaults: {changed}; {len(summary.samples)} samples",
            f"bar: job <= {BAR_SECONDS} s, Frechet <= {BAR_FRECHET_RATIO} x floor, confident >= {BAR_CONFIDENT}: "
            f"{'met' if passed else 'NOT met'}",
            f"judge trained here in {judge_seconds:.0f} s" if judge_seconds else "judge read from the cache",
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; run in {run_dir}",
        ]
    )
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.figure:
        viz.plot_images(
            summary.samples[:100],
            args.figure,
            cols=10,
            title=f"mnist5k: 100 samples (Frechet {metrics['frechet']:.1f}, floor "
            f"{metrics['frechet_floor']:.1f}; {metrics['confident']:.0%} confident)",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
