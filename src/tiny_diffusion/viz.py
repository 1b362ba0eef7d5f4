"""Figures: arrays in, image files out (written atomically). Matplotlib's Agg backend, so no screen is needed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runs import write_atomic  # noqa: E402

__all__ = ["save_figure", "plot_points", "plot_strip", "plot_loss", "axis_limits"]


def save_figure(fig: plt.Figure, path: str | Path, *, dpi: int = 110) -> None:
    """Save ``fig`` to ``path`` (format from the suffix: png, svg, pdf) atomically, then close it."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def axis_limits(*point_sets: np.ndarray, margin: float = 0.1) -> list[tuple[float, float]]:
    """Per-coordinate (low, high) covering every set, widened by ``margin`` of the span: fixed axes across panels."""
    stacked = np.concatenate([np.asarray(p).reshape(-1, np.asarray(p).shape[-1]) for p in point_sets])
    stacked = stacked[np.isfinite(stacked).all(axis=1)]
    lo, hi = stacked.min(axis=0), stacked.max(axis=0)
    pad = (hi - lo) * margin + 1e-6
    return [(float(a), float(b)) for a, b in zip(lo - pad, hi + pad)]


def _scatter(ax: plt.Axes, points: np.ndarray, limits: Sequence[tuple[float, float]], title: str) -> None:
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.6, linewidths=0)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def plot_points(points: np.ndarray, path: str | Path, *, title: str = "", limits=None) -> None:
    """A scatter plot of (N, 2) points (the first two coordinates of higher-dimensional ones)."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    _scatter(ax, points, limits or axis_limits(points), title)
    save_figure(fig, path)


def plot_strip(frames: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = "", limits=None) -> None:
    """One panel per frame of (K, N, 2) points, side by side with shared fixed axes, each labelled."""
    k = len(frames)
    cols = min(k, 6)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.5 * rows), squeeze=False, layout="constrained")
    limits = limits or axis_limits(*frames)
    for ax, frame, label in zip(axes.flat, frames, labels):
        _scatter(ax, frame, limits, label)
    for ax in axes.flat[k:]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_loss(losses: np.ndarray, path: str | Path, *, steps_per_epoch: int | None = None) -> None:
    """The training loss per step (faint) and its running mean over an epoch (bold), log scale."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.5, label="per step")
    window = max(1, steps_per_epoch or len(losses) // 100)
    if len(losses) >= window:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue", linewidth=1.5, label=f"mean of {window} steps")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("MSE loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
