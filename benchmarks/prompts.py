"""Prompts: how often a conditional run draws the class it is asked for, as the guidance scale grows.

    python benchmarks/prompts.py [--only mnist study shapes] [--scales 0 1 3 5] [--out DIR] [--markdown FILE]
                                 [--figures DIR]

Trains, one after the other in this process, each job exactly as `tiny-diffusion train` runs it (timed whole):

- mnist: `train --dataset mnist5k --conditional` (the image defaults), then draws 50 samples of every digit at each
  guidance scale, all scales from the same noise, and scores them with the judge: the share the judge assigns to
  the digit asked for (overall and per digit; floor: the judge's accuracy on real test digits), the Fréchet
  distance to the test digits and the share of confident samples, each beside its floor.
- study: the same with `--preset study` (the follow-up study's final settings).
- shapes: `train --dataset random --conditional` (the point defaults): one model of four shapes; 500 samples of
  each shape per scale, each scored by precision@0.1 against its own shape (floor: a fresh draw of the shape).

Bars (issue 6): the mnist run trains in under 20 minutes and reaches a conditional accuracy of at least 0.95 at
its own guidance scale; every shape's precision@0.1 is at least 0.9.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tiny_diffusion as td
from tiny_diffusion.viz import figures as viz  # not public: the plotting helpers the run figures are drawn with

BAR_SECONDS, BAR_ACCURACY, BAR_PRECISION = 20 * 60, 0.95, 0.9
JOBS = {
    "mnist": {"dataset": "mnist5k", "conditional": True},
    "study": {"dataset": "mnist5k", "conditional": True, "preset": "study"},
    "shapes": {"dataset": "random", "conditional": True},
}
PER_CLASS = {"images": 50, "points": 500}


def run_job(name: str, out: Path, scales: list[float], figures: Path | None) -> list[dict]:
    """Train job ``name`` into ``out / name`` and score it at each guidance scale: a row per scale."""
    config = td.settings(JOBS[name], device="cpu")
    print(f"training {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    model = td.train(config, out=out / name, progress=False)
    job_seconds = time.perf_counter() - start
    per_class = PER_CLASS["images" if config.is_images else "points"]
    labels = np.repeat(np.arange(len(model.classes)), per_class)  # (K * per_class,): class 0 first
    rows, sweep = [], []
    for scale in scales:
        print(f"  sampling {name} at guidance {scale:g} ...", file=sys.stderr, flush=True)
        # the run's own sampler, steps and eta; the same seed starts every scale from the same noise
        flat = model.sample(len(labels), labels=labels, guidance=scale, seed=config.seed + 3)
        sweep.append(flat.reshape(len(model.classes), per_class, *model.shape))  # (K, per_class, *shape)
        # images: the judge's numbers; points: each class's precision against its own shape (and W2, MMD: unused)
        metrics = td.evaluate(flat, dataset=config.dataset, labels=labels, progress=False)
        rows.append(
            {
                "job": name,
                "guidance": scale,
                "job_s": job_seconds,
                "run_guidance": config.guidance,
                "classes": model.classes,
                **metrics,
            }
        )
    if figures is not None:
        _draw(name, model, np.stack(sweep), scales, figures)
    return rows


def _draw(name: str, model: td.Diffusion, sweep: np.ndarray, scales: list[float], figures: Path) -> None:
    """figures/prompts_NAME_guidance.png from (S, K, per_class, *shape): a row per scale (images: two of each
    class; points: a panel per class)."""
    figures.mkdir(parents=True, exist_ok=True)
    labels = [f"w = {scale:g}" for scale in scales]
    path = figures / f"prompts_{name}_guidance.png"
    title = f"{name}: samples of each class, one row per guidance scale (same noise in every row)"
    if model.config.is_images:
        viz.plot_image_rows(sweep[:, :, :2].reshape(len(scales), -1, *model.shape), labels, path, title=title)
    else:
        viz.plot_grid(sweep, labels, model.classes, path, limits=viz.axis_limits(model.data_range()), title=title)


def image_table(rows: list[dict]) -> str:
    digits = [str(d) for d in range(10)]
    lines = [
        "| job | job s | guidance | accuracy | " + " | ".join(digits) + " | Frechet | floor | confident | floor |",
        "|---" * (9 + len(digits)) + "|",
    ]
    for r in rows:
        mark = " (run's)" if r["guidance"] == r["run_guidance"] else ""
        per_digit = " | ".join(f"{r[f'accuracy_{d}']:.2f}" for d in digits)
        lines.append(
            f"| {r['job']} | {r['job_s']:.0f} | {r['guidance']:g}{mark} | {r['conditional_accuracy']:.3f} | "
            f"{per_digit} | {r['frechet']:.1f} | {r['frechet_floor']:.1f} | {r['confident']:.3f} | "
            f"{r['confident_floor']:.3f} |"
        )
    judge = rows[0]["judge_test_accuracy"]
    lines.append(f"\naccuracy floor: the judge's accuracy on the 500 real test digits, {judge:.3f}")
    return "\n".join(lines)


def shape_table(rows: list[dict]) -> str:
    classes = rows[0]["classes"]
    lines = [
        "| job | job s | guidance | " + " | ".join(f"{c} precision@0.1 (floor)" for c in classes) + " |",
        "|---" * (3 + len(classes)) + "|",
    ]
    for r in rows:
        mark = " (run's)" if r["guidance"] == r["run_guidance"] else ""
        cells = " | ".join(f"{r[f'{c}: precision@0.1']:.3f} ({r[f'{c}: precision@0.1_floor']:.3f})" for c in classes)
        lines.append(f"| {r['job']} | {r['job_s']:.0f} | {r['guidance']:g}{mark} | {cells} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if r["guidance"] != r["run_guidance"] or r["job"] == "study":
            continue
        if "conditional_accuracy" in r:
            ok = r["job_s"] <= BAR_SECONDS and r["conditional_accuracy"] >= BAR_ACCURACY
            lines.append(
                f"bar ({r['job']}): job <= {BAR_SECONDS} s and accuracy >= {BAR_ACCURACY} at guidance "
                f"{r['guidance']:g}: {'met' if ok else 'NOT met'}"
            )
        else:
            worst = min(r[f"{c}: precision@0.1"] for c in r["classes"])
            lines.append(
                f"bar ({r['job']}): every shape's precision@0.1 >= {BAR_PRECISION} at guidance "
                f"{r['guidance']:g}: {'met' if worst >= BAR_PRECISION else 'NOT met'} (worst {worst:.3f})"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=tuple(JOBS), default=list(JOBS), help="jobs to run")
    parser.add_argument("--scales", nargs="+", type=float, default=[0.0, 1.0, 3.0, 5.0], help="guidance scales")
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--figures", help="write a guidance sweep figure per job into this folder")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="prompts-"))
    figures = Path(args.figures) if args.figures else None
    rows = [row for name in args.only for row in run_job(name, out, args.scales, figures)]
    images = [r for r in rows if "conditional_accuracy" in r]
    shapes = [r for r in rows if "conditional_accuracy" not in r]
    parts = ([image_table(images)] if images else []) + ([shape_table(shapes)] if shapes else [])
    text = "\n\n".join(parts + ["\n".join(verdicts(rows)), f"runs in {out}"])
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
