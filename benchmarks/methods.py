"""DDPM against flow matching: each dataset trained both ways at equal optimiser steps and at equal training time,
each model scored with its best sampler at 10, 20 and 50 network calls per sample (issue 16).

    python benchmarks/methods.py [--datasets dino,moons,8gaussians,checkerboard] [--epochs N] [--budgets 10,20,50]
        [--num N] [--best-by precision@0.05|w2] [--out DIR] [--markdown FILE] [--figure FILE.png] [--json FILE]
    python benchmarks/methods.py --from-json FILE [--best-by ...] [--markdown FILE] [--figure FILE.png]

For each dataset, in this one process and one after the other:

1. equal steps: a ddpm run and a flow run with the dataset's defaults (``td.settings(dataset=...)``; ``--epochs``
   replaces the number of epochs for both), so both take the same optimiser steps on the same batches;
2. equal time: the method whose training took less time is trained again with its epochs scaled by the ratio of the
   two times, so that its training takes about as long as the slower one's (skipped where the two times are within
   ``--time-tolerance`` of each other: the equal-steps runs are then the equal-time runs too).

"Train s" is the training loop without snapshots (one snapshot only, after the last epoch), wall-clock on this
machine. Each model then draws ``--num`` samples (default: the run's eval_batch_size, as ``evaluate`` scores) from
the same noise with each of its samplers at the step counts whose calls fit each budget (euler, ddim and dpmpp-2m
one call a step, heun and midpoint two, each twice under guidance; the ode sampler at the tolerances 0.1, 0.01,
0.001, where its calls fit; the ddpm sampler, which walks all T steps, is left out). Points are scored as
``evaluate`` scores them, against fresh draws of the data; the best sampler at a budget is the one with the highest
precision@0.05 (``--best-by w2``: the lowest W2 over its floor, which cannot tell a blurred shape from a sharp one).
Images (``mnist5k``, slow: minutes of training per run and per sampler here) are scored by the judge; their best is
the lowest Frechet distance over its floor. ``--json`` keeps every row measured; ``--from-json`` picks and tabulates
them again without training. No bar: a table and a figure for the docs (Measurements, "DDPM against flow matching").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import tiny_diffusion as td
from tiny_diffusion.choices import METHODS, samplers_of
from tiny_diffusion.diffusion import resolve_sampling  # not public: a sampler with its steps, as the run fills it in
from tiny_diffusion.eval.evaluate import evaluate_run_samples  # not public: evaluate's scoring of a set of samples
from tiny_diffusion.eval.nfe import ODE_TOLERANCES, NfeRow, measure_nfe, nfe_settings
from tiny_diffusion.viz.output import plt, save_figure  # not public: Matplotlib without a screen, atomic writes

POINTS = ("dino", "moons", "8gaussians", "checkerboard")
CALLS_PER_STEP = {"heun": 2, "midpoint": 2}  # heun makes 2 steps - 1 calls (its last step Euler's); others 1 a step
LEFT_OUT = ("ddpm",)  # walks all T steps, whatever the budget
# the quality columns of each kind of data: (metric, its floor or None, column title); the first picks the best
COLUMNS = {
    "points": [("w2", "w2_floor", "W2 / floor"), ("precision@0.1", None, "p@0.1"),
               ("precision@0.05", None, "p@0.05"), ("recall@0.05", None, "r@0.05")],
    "images": [("frechet", "frechet_floor", "Frechet / floor"), ("confident", None, "confident")],
}  # fmt: skip
FIGURE_COLUMNS = {"points": (0, 2), "images": (0, 1)}  # W2 and precision@0.05; Frechet distance and confidence


@dataclass
class Trained:
    """One trained model and what it drew at each budget of calls."""

    dataset: str
    method: str
    budget: str  # "equal steps" or "equal time"
    epochs: int
    seconds: float  # the training loop, snapshots left out
    rows: list[NfeRow] = field(default_factory=list)  # every sampler and setting tried
    best: dict[int, NfeRow | None] = field(default_factory=dict)  # calls budget -> the best row within it


def kind(dataset: str) -> str:
    return "images" if td.settings(dataset=dataset).is_images else "points"


def cost(row: NfeRow, dataset: str, best_by: str) -> float:
    """What picks the best sampler, lowest first: a point run's W2 over its floor or its precision@0.05, negated
    (``best_by``); an image run's Frechet distance over its floor."""
    m = row.metrics
    if kind(dataset) == "images":
        return m["frechet"] / m["frechet_floor"]
    return m["w2"] / m["w2_floor"] if best_by == "w2" else -m[best_by]


def pick(run: Trained, budgets: list[int], best_by: str) -> None:
    """The best of ``run.rows`` within each budget of calls (``run.best``; None where no setting fits)."""
    for budget in budgets:
        fits = [row for row in run.rows if row.nfe <= budget]
        run.best[budget] = min(fits, key=lambda row: cost(row, run.dataset, best_by)) if fits else None


def train(dataset: str, method: str, epochs: int | None, out: Path) -> tuple[td.Diffusion, int, float]:
    """Train ``method`` on ``dataset`` with its defaults (and ``epochs``); the model, its epochs and seconds."""
    config = td.settings(dataset=dataset, method=method, device="cpu")
    epochs = config.num_epochs if epochs is None else epochs
    config = td.settings(config, num_epochs=epochs, save_images_step=epochs)  # one snapshot, after the last epoch
    print(f"training {dataset} {method}, {epochs} epochs ...", file=sys.stderr, flush=True)
    summary = td.train_summary(config, out, progress=False)
    return summary.model, epochs, summary.seconds - summary.snapshot_seconds


def score_samplers(run: Trained, model: td.Diffusion, budgets: list[int], num: int | None, seed: int) -> None:
    """Each sampler of the model at the steps that fit each budget, scored (``run.rows``)."""
    config = model.config
    samplers = [s for s in samplers_of(config.method) if s not in LEFT_OUT]
    settings: list[tuple[str, int | None, float | None, float]] = []
    passes = 2 if config.guidance > 0 else 1  # guided (an image run's autoguidance): two network calls a prediction
    for sampler in samplers:
        steps = sorted({max(1, b // (CALLS_PER_STEP.get(sampler, 1) * passes)) for b in budgets})
        settings += [s for s in nfe_settings([sampler], steps, ODE_TOLERANCES) if s not in settings]
    num = config.eval_batch_size if num is None else num

    def draw(
        sampler: str, steps: int | None, tolerance: float | None, eta: float, noise: int
    ) -> tuple[np.ndarray, int]:
        how = resolve_sampling(config, sampler, steps, eta, rtol=tolerance, atol=tolerance)
        drawn = model.draw(num, how, seed=noise)
        return drawn.samples, drawn.nfe

    def score(samples: np.ndarray) -> dict[str, float]:
        return evaluate_run_samples(samples, config, progress=False)

    def tell(row: NfeRow) -> None:
        print(f"  {row.sampler} {row.steps or row.tolerance}: {row.nfe} calls", file=sys.stderr, flush=True)

    run.rows = measure_nfe(draw, score, settings, seeds=[seed], progress=tell)


def measure(dataset: str, args: argparse.Namespace, root: Path) -> list[Trained]:
    """Both methods at equal steps, then the faster one again at the slower one's time."""
    runs = []
    for method in METHODS:
        model, epochs, seconds = train(dataset, method, args.epochs, root / f"{dataset}-{method}-steps")
        runs.append(Trained(dataset, method, "equal steps", epochs, seconds))
        score_samplers(runs[-1], model, args.budgets, args.num, args.seed)
    fast, slow = sorted(runs, key=lambda run: run.seconds)
    if slow.seconds > (1 + args.time_tolerance) * fast.seconds:
        epochs = round(fast.epochs * slow.seconds / fast.seconds)
        model, epochs, seconds = train(dataset, fast.method, epochs, root / f"{dataset}-{fast.method}-time")
        runs.append(Trained(dataset, fast.method, "equal time", epochs, seconds))
        score_samplers(runs[-1], model, args.budgets, args.num, args.seed)
    return runs


def table(runs: list[Trained], what: str) -> str:
    columns = COLUMNS[what]
    head = ["dataset", "method", "budget", "epochs", "train s", "calls", "best sampler", *(c[2] for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        for budget, row in run.best.items():
            if row is None:
                cells = ["(none fits)", *("" for _ in columns)]
            else:
                setting = f"tol {row.tolerance:g}" if row.tolerance is not None else f"{row.steps} steps"
                m = row.metrics
                values = [m[name] / m[floor] if floor else m[name] for name, floor, _ in columns]
                cells = [f"{row.sampler}, {setting} ({row.nfe})", *(f"{v:.3g}" for v in values)]
            lines.append(
                f"| {run.dataset} | {run.method} | {run.budget} | {run.epochs} | {run.seconds:.1f} | <= {budget} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines)


def figure(runs: list[Trained], path: str, best_by: str) -> None:
    """Per dataset (a row): two quality columns (FIGURE_COLUMNS) at each budget, one line per method and budget, the
    best sampler named beside the column that picked it; each column's floor (data against data) dotted."""
    datasets = list(dict.fromkeys(run.dataset for run in runs))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(9, 3 * len(datasets)), layout="constrained", squeeze=False)
    colours = {"ddpm": "tab:blue", "flow": "tab:orange"}
    for axes_row, dataset in zip(axes, datasets):
        columns = [COLUMNS[kind(dataset)][i] for i in FIGURE_COLUMNS[kind(dataset)]]
        for run in (run for run in runs if run.dataset == dataset):
            budgets = [b for b, row in run.best.items() if row is not None]
            rows = [run.best[b] for b in budgets]
            label = f"{run.method}, {run.budget} ({run.epochs} epochs, {run.seconds:.0f} s)"
            style = "-" if run.budget == "equal steps" else "--"
            for ax, (name, floor, _) in zip(axes_row, columns):
                values = [r.metrics[name] / r.metrics[floor] if floor else r.metrics[name] for r in rows if r]
                ax.plot(budgets, values, style, marker="o", color=colours[run.method], label=label)
                if name in (best_by, "frechet"):
                    for b, v, r in zip(budgets, values, rows):
                        ax.annotate(
                            r.sampler if r else "", (b, v), fontsize=7, xytext=(3, 3), textcoords="offset points"
                        )
        first = next(row for run in runs if run.dataset == dataset for row in run.rows)
        for ax, (name, floor, title) in zip(axes_row, columns):
            level = 1.0 if floor else first.metrics.get(f"{name}_floor")
            if level is not None:
                ax.axhline(level, color="gray", linestyle=":", linewidth=1, label="floor (data vs data)")
            if floor:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter("{x:g}")  # 1.5, not 1.5 x 10^0
                ax.yaxis.set_minor_formatter("{x:g}")
            ax.set_xscale("log")
            ax.set_xticks(sorted({b for run in runs for b in run.best}), labels=None)
            ax.xaxis.set_major_formatter("{x:g}")
            ax.xaxis.set_minor_formatter("")
            ax.set_xlabel("network calls per sample (at most)")
            ax.set_ylabel(title)
            ax.set_title(f"{dataset}: {title}", fontsize=10)
            ax.grid(alpha=0.3)
        axes_row[0].legend(fontsize=7)
    save_figure(fig, path)


def save(runs: list[Trained], path: str) -> None:
    """Every row measured, one dict each: the run's fields, the row's, and the budgets it is the best within."""
    found = [
        {
            **{k: v for k, v in vars(run).items() if k not in ("rows", "best")},
            **row.as_dict(),
            "best_within": [budget for budget, best in run.best.items() if best is row],
        }
        for run in runs
        for row in run.rows
    ]
    Path(path).write_text(json.dumps(found, indent=1) + "\n")


def load(path: str) -> list[Trained]:
    """The runs and rows ``save`` wrote, to pick and tabulate again without training."""
    runs: dict[tuple, Trained] = {}
    for item in json.loads(Path(path).read_text()):
        key = tuple(item[k] for k in ("dataset", "method", "budget", "epochs", "seconds"))
        runs.setdefault(key, Trained(*key)).rows.append(
            NfeRow(item["sampler"], item["steps"], item["tolerance"], item["nfe"], item["metrics"])
        )
    return list(runs.values())


def parse_list(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def main() -> int:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=formatter)
    parser.add_argument("--datasets", default=",".join(POINTS), help="comma-separated datasets (mnist5k: slow)")
    parser.add_argument("--epochs", type=int, help="epochs of the equal-steps runs; none: each dataset's own")
    parser.add_argument("--budgets", default="10,20,50", help="comma-separated network calls per sample")
    parser.add_argument("--num", type=int, help="samples scored per sampler; none: the run's eval_batch_size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samplers' initial noise")
    parser.add_argument("--time-tolerance", type=float, default=0.05, help="training times this close count as equal")
    parser.add_argument("--out", help="keep the run directories here; none: a temporary folder")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--figure", help="write quality against calls, per dataset, to this image file")
    parser.add_argument(
        "--best-by",
        choices=("precision@0.05", "w2"),
        default="precision@0.05",
        help="a point run's best sampler: the highest precision@0.05, or the lowest W2 over its floor",
    )
    parser.add_argument("--json", help="also write every row measured (the best at each budget marked) to this file")
    parser.add_argument("--from-json", help="train nothing: pick and tabulate the rows of an earlier --json file")
    args = parser.parse_args()
    datasets = parse_list(args.datasets)
    try:
        args.budgets = sorted({int(b) for b in parse_list(args.budgets)})
    except ValueError:
        parser.error(f"--budgets takes whole numbers, got {args.budgets}")
    if not args.budgets or args.budgets[0] < 1:
        parser.error("--budgets must be positive")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be positive")
    for dataset in datasets:
        try:
            td.settings(dataset=dataset)  # an unknown name fails now, before any training
        except td.UsageError as error:
            parser.error(str(error))
    if args.from_json:
        runs = load(args.from_json)
        where = f"rows of {args.from_json}"
    else:
        root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="methods-"))
        runs = [run for dataset in datasets for run in measure(dataset, args, root)]
        where = f"torch {torch.__version__}, {torch.get_num_threads()} threads; runs in {root}"
    for run in runs:
        pick(run, args.budgets, args.best_by)
    kinds = list(dict.fromkeys(kind(run.dataset) for run in runs))
    text = "\n\n".join(table([run for run in runs if kind(run.dataset) == what], what) for what in kinds)
    text += f"\n\nbest by {args.best_by} (images: Frechet / floor); {where}"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.figure:
        figure(runs, args.figure, args.best_by)
    if args.json:
        save(runs, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
