"""Sample quality against the number of network evaluations: each sampler at a ladder of step counts (the ode
sampler at a ladder of tolerances, ddim at each eta asked for), its samples scored as ``evaluate`` scores them: a
point run's by W2, precision and recall, an image run's by the judge (Frechet distance, confident share), each
beside its floor.

The x axis is what the sampler actually spent (``Trajectory.nfe``), not the steps asked for: heun calls the network
2 steps - 1 times, the ode sampler as often as its error control needs, twice per call between integer steps.

One draw's W2 is noisy (about 0.1 of its floor from one seed of the noise to the next on the dino), so each setting
may be drawn from several seeds: its row holds the means, and the spread (standard deviation) across them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import UsageError

__all__ = [
    "NFE_SAMPLERS",
    "NFE_STEPS",
    "IMAGE_NFE_SAMPLERS",
    "IMAGE_NFE_STEPS",
    "ODE_TOLERANCES",
    "HEADLINE",
    "TABLE_HEADER",
    "IMAGE_TABLE_HEADER",
    "NfeRow",
    "nfe_settings",
    "measure_nfe",
    "table_header",
    "format_row",
    "label",
]

NFE_SAMPLERS = ("ddpm", "ddim", "dpmpp-2m", "euler", "heun", "ode")  # ddpm: the run's baseline, all T steps
NFE_STEPS = (5, 10, 20, 50)
# images: a U-Net call on a batch of digits costs far more than an MLP call on points (a 50-step draw of 500 mnist5k
# images: about half a minute on one thread), and the ode sampler makes a hundred or more of them on a ddpm run, so
# fewer settings by default (ddpm still walks all T once: the baseline)
IMAGE_NFE_SAMPLERS = ("ddpm", "ddim", "dpmpp-2m", "euler", "heun")
IMAGE_NFE_STEPS = (10, 20, 50)
ODE_TOLERANCES = (1e-1, 1e-2, 1e-3)  # the ode sampler's rtol = atol ladder
HEADLINE = ("w2", "precision@0.1", "precision@0.05", "recall@0.05")  # the columns printed and plotted

# (sampler, steps, tolerance, eta, seed of the noise) -> (samples in the data's units, network evaluations per sample)
Draw = Callable[[str, "int | None", "float | None", float, int], tuple[np.ndarray, int]]
Setting = tuple[str, "int | None", "float | None", float]  # (sampler, steps, tolerance, eta)


@dataclass
class NfeRow:
    """One sampler at one setting: what it cost and what it drew."""

    sampler: str
    steps: int | None  # asked for (None: ddpm's all T, or the ode sampler's own)
    tolerance: float | None  # the ode sampler's rtol = atol, else None
    nfe: float  # network evaluations per sample, as made (the mean over the seeds: the ode's vary)
    metrics: dict[str, float]  # evaluate's metrics (points or the judge's), floors included; the means over the seeds
    eta: float = 0.0  # ddim's noise (0 for every other sampler)
    seeds: int = 1  # draws from this many seeds of the noise
    spread: dict[str, float] = field(default_factory=dict)  # each metric's standard deviation over them (seeds > 1)

    def as_dict(self) -> dict:
        return asdict(self)


def nfe_settings(
    samplers: Sequence[str], steps: Sequence[int], tolerances: Sequence[float], *, etas: Sequence[float] = (0.0,)
) -> list[Setting]:
    """The (sampler, steps, tolerance, eta) to try: ddpm once (all T), the ode sampler at each tolerance, ddim at
    each step count for each eta, the others at each step count; in the order given, without repeats."""
    if not samplers or not steps or not tolerances or not etas:
        raise UsageError("give at least one sampler, one step count, one tolerance and one eta")
    if any(not (tol > 0 and np.isfinite(tol)) for tol in tolerances):
        raise UsageError(f"tolerances must be positive numbers, got {', '.join(map(str, tolerances))}")
    if any(not (eta >= 0 and np.isfinite(eta)) for eta in etas):
        raise UsageError(f"eta must be a finite number >= 0, got {', '.join(map(str, etas))}")
    chosen: list[Setting] = []
    for sampler in dict.fromkeys(samplers):
        if sampler == "ddpm":
            chosen.append((sampler, None, None, 0.0))
        elif sampler == "ode":
            chosen += [(sampler, None, float(tol), 0.0) for tol in sorted(set(tolerances), reverse=True)]
        elif sampler == "ddim":
            chosen += [(sampler, int(n), None, float(eta)) for eta in dict.fromkeys(etas) for n in sorted(set(steps))]
        else:
            chosen += [(sampler, int(n), None, 0.0) for n in sorted(set(steps))]
    return chosen


def measure_nfe(
    draw: Draw,
    score: Callable[[np.ndarray], dict[str, float]],
    settings: Sequence[Setting],
    *,
    seeds: Sequence[int] = (0,),
    progress: Callable[[NfeRow], None] | None = None,
) -> list[NfeRow]:
    """Draw and score each setting in turn, from each of ``seeds``; ``progress`` is told of each row as it is
    measured."""
    if not seeds:
        raise UsageError("give at least one seed of the noise")
    rows = []
    for sampler, steps, tolerance, eta in settings:
        calls, scores = [], []
        for seed in seeds:
            samples, nfe = draw(sampler, steps, tolerance, eta, seed)
            calls.append(nfe)
            scores.append(score(samples))
        mean = {k: float(np.mean([m[k] for m in scores])) for k in scores[0]}
        spread = {k: float(np.std([m[k] for m in scores], ddof=1)) for k in scores[0]} if len(seeds) > 1 else {}
        nfe = calls[0] if len(set(calls)) == 1 else float(np.mean(calls))
        rows.append(NfeRow(sampler, steps, tolerance, nfe, mean, eta, len(seeds), spread))
        if progress is not None:
            progress(rows[-1])
    return rows


SHORT = {"precision@0.1": "p@0.1", "precision@0.05": "p@0.05", "recall@0.05": "r@0.05"}
TABLE_HEADER = f"{'sampler':<11} {'steps':>10} {'nfe':>5}  {'W2 (x floor)':>16}  " + "  ".join(
    f"{SHORT[name]:>6}" for name in HEADLINE[1:]
)
IMAGE_TABLE_HEADER = f"{'sampler':<11} {'steps':>10} {'nfe':>5}  {'Frechet (x floor)':>17}  {'confident (floor)':>17}"


def table_header(images: bool, *, spread: bool = False) -> str:
    """The table's first line: the judge's columns for an image run, else the point metrics' (with ``spread``, W2's
    standard deviation over the seeds last)."""
    return IMAGE_TABLE_HEADER if images else TABLE_HEADER + ("  W2 sd" if spread else "")


def label(row: NfeRow | dict) -> str:
    """The sampler's name, with ddim's eta where it is not 0: what one curve of the figure is."""
    sampler, eta = (row["sampler"], row.get("eta", 0.0)) if isinstance(row, dict) else (row.sampler, row.eta)
    return f"{sampler} eta {eta:g}" if eta else sampler


def format_row(row: NfeRow) -> str:
    """One line of the table: sampler, setting, evaluations, then the metrics: for images the Frechet distance (and
    as a multiple of its floor) and the confident share beside its floor; for points W2 (and as a multiple of its
    floor), precision and recall."""
    setting = f"tol {row.tolerance:g}" if row.tolerance is not None else "all" if row.steps is None else row.steps
    m = row.metrics
    start = f"{label(row):<11} {setting!s:>10} {round(row.nfe, 1):>5g}"
    if "frechet" in m:  # the judge's numbers: an image run
        frechet = f"{m['frechet']:.2f} ({m['frechet'] / m['frechet_floor']:.2f}x)"
        return f"{start}  {frechet:>17}  {m['confident']:>8.3f} ({m['confident_floor']:.3f})"
    w2 = f"{m['w2']:.4f} ({m['w2'] / m['w2_floor']:.2f}x)" if "w2_floor" in m else f"{m['w2']:.4f}"
    rest = "  ".join(f"{m.get(name, float('nan')):>6.3f}" for name in HEADLINE[1:])
    spread = f"  +-{row.spread['w2'] / m['w2_floor']:.2f}x" if row.spread and "w2_floor" in m else ""
    return f"{start}  {w2:>16}  {rest}{spread}"
