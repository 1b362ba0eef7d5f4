"""MNIST quality and time: the default image configuration on the embedded 5,000-image subset, scored by the judge.

    python benchmarks/mnist.py [--configs default previous ...] [--jobs N] [--out DIR] [--markdown FILE]
        [--figure FILE.png] [--set key=value ...]

Trains exactly what `tiny-diffusion train --dataset mnist5k` trains (its defaults, plus any --set overrides), timing
the whole job as the command runs it (data, training, snapshots, the final samples and the run's figures), then
scores the samples with the judge against the 500 held-out test images. The judge is trained first if it is not
cached; its time is reported apart, since it is trained once per machine, not per run.

``--configs`` trains several named configurations side by side in one run (``--jobs`` of them at a time, each in its
own process on one thread), a row each: ``default`` is today's, ``previous`` the default before autoguidance
(issue 16). Times are comparable only within one run.

Bars: issue 5, the job under 15 minutes here, Frechet distance at most 3 x its real-vs-real floor and at least 85%
of samples classified confidently (> 0.9); issue 16, Frechet at most 1.3 x its floor and at least 90% confident in
no more training time than ``previous``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

import tiny_diffusion as td
from tiny_diffusion.eval.judge import get_judge, judge_path  # not public: the judge's cache, to time its training apart
from tiny_diffusion.viz import figures as viz  # not public: the plotting helpers the run figures are drawn with

BAR_SECONDS, BAR_FRECHET_RATIO, BAR_CONFIDENT = 15 * 60, 3.0, 0.85
NEW_FRECHET_RATIO, NEW_CONFIDENT = 1.3, 0.90  # issue 16's bar for a new default
# named configurations: changes from today's image defaults
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "previous": {"guide_at": 0.0, "guidance": 0.0},  # the default from issue 5 to issue 16: no autoguidance
}


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


def measure(name: str, overrides: dict[str, Any], run_dir: Path, threads: int | None) -> dict[str, Any]:
    """Train one configuration as `train` does and score its samples: the row of the table, and its samples."""
    if threads is not None:
        torch.set_num_threads(threads)
    config = td.settings({"dataset": "mnist5k", "device": "cpu", **overrides})
    start = time.perf_counter()
    summary = td.train_summary(config, run_dir, progress=threads is None)
    job_seconds = time.perf_counter() - start
    metrics = td.evaluate(summary.model, progress=False)  # the judge's numbers for the run's samples
    return {
        "name": name,
        "changed": ", ".join(f"{k}={v}" for k, v in overrides.items()) or "none",
        "job": job_seconds,
        "train": summary.seconds,
        "sample": summary.sample_seconds,
        "num": len(summary.samples),
        "samples": summary.samples[:100],
        **metrics,
    }


def row(m: dict[str, Any]) -> str:
    ratio = m["frechet"] / m["frechet_floor"]
    return (
        f"| {m['name']} | {m['job']:.0f} | {m['train']:.0f} | {m['sample']:.0f} | {m['frechet']:.1f} | "
        f"{m['frechet_floor']:.1f} | {ratio:.2f} | {m['confident']:.3f} | {m['confident_floor']:.3f} | "
        f"{m['class_entropy_bits']:.2f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["default"], choices=list(CONFIGS), help="what to train")
    parser.add_argument("--jobs", type=int, default=1, help="configurations trained at once, one thread each")
    parser.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--figure", help="copy the first configuration's 100-sample grid to this image file")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="train settings to change")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be positive, got {args.jobs}")
    judge_seconds = 0.0
    if not judge_path("mnist5k").exists():
        start = time.perf_counter()
        get_judge("mnist5k", train_if_missing=True, progress=False)
        judge_seconds = time.perf_counter() - start
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mnist-"))
    single = len(args.configs) == 1 and args.out is not None
    tasks = [
        (name, {**CONFIGS[name], **parse_overrides(args.set)}, root if single else root / name) for name in args.configs
    ]
    if args.jobs == 1:
        rows = [measure(*task, threads=None) for task in tasks]
    else:  # each process on one thread: two threads beside another job are far slower than one (docs/concepts.md)
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            rows = list(pool.map(measure, *zip(*tasks), [1] * len(tasks)))
    lines = [
        "| configuration | job s | train s | sample s | Frechet | floor | ratio | confident | floor | "
        "class entropy (bits) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(row(m) for m in rows),
        "",
    ]
    for m in rows:
        ratio = m["frechet"] / m["frechet_floor"]
        old_bar = m["job"] <= BAR_SECONDS and ratio <= BAR_FRECHET_RATIO and m["confident"] >= BAR_CONFIDENT
        new_bar = ratio <= NEW_FRECHET_RATIO and m["confident"] >= NEW_CONFIDENT
        lines.append(
            f"{m['name']}: settings changed from the image defaults: {m['changed']}; {m['num']} samples; "
            f"issue 5's bar {'met' if old_bar else 'NOT met'}; issue 16's quality bar "
            f"(Frechet <= {NEW_FRECHET_RATIO} x floor, confident >= {NEW_CONFIDENT}) {'met' if new_bar else 'NOT met'}"
        )
    by_name = {m["name"]: m for m in rows}
    if "previous" in by_name and "default" in by_name:
        lines.append(
            f"training time, default / previous: {by_name['default']['train'] / by_name['previous']['train']:.2f}"
        )
    threads = "1 thread each" if args.jobs > 1 else f"{torch.get_num_threads()} threads"
    lines += [
        f"judge trained here in {judge_seconds:.0f} s" if judge_seconds else "judge read from the cache",
        f"torch {torch.__version__}, {threads}, {args.jobs} at a time, {os.cpu_count()} CPUs; runs in {root}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.figure:
        first = rows[0]
        viz.plot_images(
            first["samples"],
            args.figure,
            cols=10,
            title=f"mnist5k, {first['name']}: 100 samples (Frechet {first['frechet']:.1f}, floor "
            f"{first['frechet_floor']:.1f}; {first['confident']:.0%} confident)",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
