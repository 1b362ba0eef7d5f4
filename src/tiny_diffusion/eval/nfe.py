"""Sample quality against the number of network evaluations: each sampler at a ladder of step counts (the ode
sampler at a ladder of tolerances), its samples scored as ``evaluate`` scores a point run's, beside the floors.

The x axis is what the sampler actually spent (``Trajectory.nfe``), not the steps asked for: heun calls the network
2 steps - 1 times, the ode sampler as often as its error control needs, twice per call between integer steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UsageError

__all__ = [
    "NFE_SAMPLERS",
    "NFE_STEPS",
    "ODE_TOLERANCES",
    "HEADLINE",
    "TABLE_HEADER",
    "NfeRow",
    "nfe_settings",
    "measure_nfe",
    "format_row",
]

NFE_SAMPLERS = ("ddpm", "ddim", "dpmpp-2m", "euler", "heun", "ode")  # ddpm: the run's baseline, all T steps
NFE_STEPS = (5, 10, 20, 50)
ODE_TOLERANCES = (1e-1, 1e-2, 1e-3)  # the ode sampler's rtol = atol ladder
HEADLINE = ("w2", "precision@0.1", "precision@0.05", "recall@0.05")  # the columns printed and plotted

# (sampler, steps, tolerance) -> (samples (N, D) in the data's units, network evaluations per sample)
Draw = Callable[[str, "int | None", "float | None"], tuple[np.ndarray, int]]


@dataclass
class NfeRow:
    """One sampler at one setting: what it cost and what it drew."""

    sampler: str
    steps: int | None  # asked for (None: ddpm's all T, or the ode sampler's own)
    tolerance: float | None  # the ode sampler's rtol = atol, else None
    nfe: int  # network evaluations per sample, as made
    metrics: dict[str, float]  # evaluate's point metrics, floors included

    def as_dict(self) -> dict:
        return asdict(self)


def nfe_settings(
    samplers: Sequence[str], steps: Sequence[int], tolerances: Sequence[float]
) -> list[tuple[str, int | None, float | None]]:
    """The (sampler, steps, tolerance) to try: ddpm once (all T), the ode sampler at each tolerance, the others at
    each step count; in the order given, without repeats."""
    if not samplers or not steps or not tolerances:
        raise UsageError("give at least one sampler, one step count and one tolerance")
    if any(not (tol > 0 and np.isfinite(tol)) for tol in tolerances):
        raise UsageError(f"tolerances must be positive numbers, got {', '.join(map(str, tolerances))}")
    chosen: list[tuple[str, int | None, float | None]] = []
    for sampler in dict.fromkeys(samplers):
        if sampler == "ddpm":
            chosen.append((sampler, None, None))
        elif sampler == "ode":
            chosen += [(sampler, None, float(tol)) for tol in sorted(set(tolerances), reverse=True)]
        else:
            chosen += [(sampler, int(n), None) for n in sorted(set(steps))]
    return chosen


def measure_nfe(
    draw: Draw,
    score: Callable[[np.ndarray], dict[str, float]],
    settings: Sequence[tuple[str, int | None, float | None]],
    *,
    progress: Callable[[NfeRow], None] | None = None,
) -> list[NfeRow]:
    """Draw and score each setting in turn; ``progress`` is told of each row as it is measured."""
    rows = []
    for sampler, steps, tolerance in settings:
        samples, nfe = draw(sampler, steps, tolerance)
        rows.append(NfeRow(sampler, steps, tolerance, nfe, score(samples)))
        if progress is not None:
            progress(rows[-1])
    return rows


SHORT = {"precision@0.1": "p@0.1", "precision@0.05": "p@0.05", "recall@0.05": "r@0.05"}
TABLE_HEADER = f"{'sampler':<9} {'steps':>10} {'nfe':>5}  {'W2 (x floor)':>16}  " + "  ".join(
    f"{SHORT[name]:>6}" for name in HEADLINE[1:]
)


def format_row(row: NfeRow) -> str:
    """One line of the table: sampler, setting, evaluations, then W2 (and as a multiple of its floor) and the rest."""
    setting = f"tol {row.tolerance:g}" if row.tolerance is not None else "all" if row.steps is None else row.steps
    m = row.metrics
    w2 = f"{m['w2']:.4f} ({m['w2'] / m['w2_floor']:.2f}x)" if "w2_floor" in m else f"{m['w2']:.4f}"
    rest = "  ".join(f"{m.get(name, float('nan')):>6.3f}" for name in HEADLINE[1:])
    return f"{row.sampler:<9} {setting!s:>10} {row.nfe:>5}  {w2:>16}  {rest}"
