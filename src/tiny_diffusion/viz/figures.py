"""Figures and animations, points or images alike: the run's pictures (samples, snapshots, loss) pick the kind from
the array's shape, (N, D) points or (N, C, H, W) images; the drawing itself is in ``points`` and ``images``, and
everything is written atomically (``output``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .images import (
    animate_images,
    mosaic,
    plot_denoising,
    plot_image_grid,
    plot_image_rows,
    plot_image_strip,
    plot_images,
)
from .output import mp4_available, plt, save_figure
from .points import animate_points, axis_limits, axis_names, plot_grid, plot_points, plot_strip, strip_columns

__all__ = [
    "plot_samples",
    "plot_frames",
    "plot_rows",
    "plot_table",
    "animate",
    "pictured",
    "plot_loss",
    "plot_diagnosis",
    "plot_nfe",
    "save_figure",
    "plot_points",
    "plot_strip",
    "plot_grid",
    "axis_limits",
    "axis_names",
    "strip_columns",
    "animate_points",
    "mp4_available",
    "mosaic",
    "plot_images",
    "plot_image_rows",
    "plot_image_strip",
    "plot_image_grid",
    "plot_denoising",
    "animate_images",
]

PICTURED_IMAGES = 100  # a picture of image samples shows the first 100 (a 10 x 10 grid)
FRAME_IMAGES = 16  # images in each panel of a strip of snapshots (a 4 x 4 tile)


def pictured(samples: np.ndarray) -> np.ndarray:
    """The part of ``samples`` a picture of them shows: every point, or the first PICTURED_IMAGES images."""
    return samples[:PICTURED_IMAGES] if samples.ndim == 4 else samples


def plot_samples(
    samples: np.ndarray, path: str | Path, *, title: str = "", reference: np.ndarray | None = None
) -> None:
    """A picture of samples: (N, D) points as a scatter plot whose axes fit ``reference`` points (the training data,
    or its box) and the samples; (N, C, H, W) images as an about square grid of the first PICTURED_IMAGES (wide ones,
    a number's digits side by side, in fewer columns)."""
    if samples.ndim == 4:
        shown = pictured(samples)
        wide = samples.shape[-1] / samples.shape[-2]
        plot_images(shown, path, title=title, cols=max(1, round((len(shown) / wide) ** 0.5)))
    else:
        sets = [samples] if reference is None else [reference, samples]
        plot_points(samples, path, title=title, limits=axis_limits(*sets))


def plot_frames(
    frames: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = "", reference: np.ndarray | None = None
) -> None:
    """A strip of states or snapshots, a labelled panel each: (K, N, D) points on shared axes that fit ``reference``
    (default: every frame), or (K, N, C, H, W) images as tiles of their first FRAME_IMAGES."""
    if frames.ndim == 5:
        plot_image_strip(frames[:, :FRAME_IMAGES], labels, path, title=title)
    else:
        plot_strip(frames, labels, path, title=title, limits=None if reference is None else axis_limits(reference))


def plot_rows(
    groups: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = "", reference: np.ndarray | None = None
) -> None:
    """One labelled group of samples each, (K, N, *shape) (a class each, say): a row of images per group, or a
    panel of points per group on shared axes that fit ``reference`` and every group."""
    if groups.ndim == 5:
        plot_image_rows(groups, labels, path, title=title)
    else:
        sets = [*groups] if reference is None else [reference, *groups]
        plot_strip(groups, labels, path, title=title, limits=axis_limits(*sets))


def plot_table(
    grid: np.ndarray,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    reference: np.ndarray | None = None,
) -> None:
    """(R, K, N, *shape): a row per setting (a guidance scale, say), a column per group (a class): for images one row
    of the K groups' images side by side, for points a grid of panels whose axes fit ``reference`` and the first
    row."""
    if grid.ndim == 6:
        plot_image_rows(grid.reshape(len(grid), -1, *grid.shape[3:]), row_labels, path, title=title)
    else:
        sets = [*grid[0]] if reference is None else [reference, *grid[0]]
        plot_grid(grid, row_labels, column_labels, path, title=title, limits=axis_limits(*sets))


def animate(
    frames: np.ndarray,
    captions: Sequence[str],
    path: str | Path,
    *,
    fps: float = 20,
    title: str = "",
    hold: int = 0,
    reference: np.ndarray | None = None,
) -> int:
    """Animate (K, N, *shape) states or snapshots, a captioned frame each, to .gif or .mp4: images as a grid of
    their first FRAME_IMAGES, points on fixed axes that fit ``reference`` and the last frame. Returns the frames
    written."""
    if frames.ndim == 5:
        return animate_images(frames[:, :FRAME_IMAGES], captions, path, fps=fps, title=title, hold=hold)
    sets = [frames[-1]] if reference is None else [reference, frames[-1]]
    return animate_points(frames, captions, path, fps=fps, title=title, hold=hold, limits=axis_limits(*sets))


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


def plot_diagnosis(per_step: dict[str, list[float]], path: str | Path, *, title: str = "", times: bool = False) -> None:
    """Two panels over the steps t (``times``: a flow run's times t in (0, 1)): the trained model's x0 error against
    the ideal denoiser (and the ideal denoiser's own error against the true x0, for scale), and the training loss;
    log scales."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    # steps counted from 1 (t = 1: the first noising step); a flow run's times as they are
    t = np.asarray(per_step["t"]) + (0 if times else 1)
    left.plot(t, per_step["error"], marker="o", label="trained x0 vs ideal denoiser's")
    left.plot(t, per_step["ideal_error"], linestyle="--", color="gray", label="ideal denoiser's vs the true x0")
    left.set_ylabel("mean squared error")
    right.plot(t, per_step["loss"], marker="o", color="tab:orange")
    right.set_ylabel("training loss (fresh x_t)")
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_xlabel("time t (1: noise)" if times else "step t")
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def plot_nfe(rows: Sequence[dict], path: str | Path, *, title: str = "") -> None:
    """Sample quality against network evaluations (log scale), one curve per sampler (ddim per eta): for points W2
    as a multiple of its floor, precision at 0.1 and 0.05, recall at 0.05; for images (the judge's numbers) the
    Frechet distance as a multiple of its floor and the confident share; the floors (data against data) dashed; rows
    drawn from several seeds of the noise shade one standard deviation about their means. ``rows``: the dicts of
    ``eval.nfe.NfeRow``."""
    from ..eval.nfe import label

    images = "frechet" in rows[0]["metrics"]
    ratio = "frechet" if images else "w2"  # the metric drawn as a multiple of its floor, on a log axis
    if images:
        panels = [("frechet", "Frechet distance / its floor"), ("confident", "confident share (judge > 0.9)")]
    else:
        panels = [("w2", "W2 / its floor"), ("precision@0.1", "precision@0.1"), ("precision@0.05", "precision@0.05"),
                  ("recall@0.05", "recall@0.05")]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), layout="constrained")
    for curve in dict.fromkeys(label(row) for row in rows):
        mine = sorted((row for row in rows if label(row) == curve), key=lambda row: row["nfe"])
        calls = [row["nfe"] for row in mine]
        for ax, (name, _) in zip(axes, panels):
            scale = np.array([row["metrics"][f"{ratio}_floor"] if name == ratio else 1.0 for row in mine])
            values = np.array([row["metrics"].get(name, np.nan) for row in mine]) / scale
            (line,) = ax.plot(calls, values, marker="o", label=curve)
            if all(name in row.get("spread", {}) for row in mine):
                sd = np.array([row["spread"][name] for row in mine]) / scale
                ax.fill_between(calls, values - sd, values + sd, color=line.get_color(), alpha=0.15, linewidth=0)
    for ax, (name, label_text) in zip(axes, panels):
        floor = 1.0 if name == ratio else np.mean([row["metrics"].get(f"{name}_floor", np.nan) for row in rows])
        if np.isfinite(floor):
            ax.axhline(floor, color="gray", linestyle="--", linewidth=1, label="floor (data vs data)")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per sample")
        ax.set_ylabel(label_text)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_yscale("log")
    axes[0].yaxis.set_major_formatter("{x:g}")  # 1.5, not 1.5 x 10^0
    axes[0].yaxis.set_minor_formatter("{x:g}")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
