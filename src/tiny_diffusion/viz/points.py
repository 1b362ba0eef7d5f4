"""Pictures of points: scatter plots with fixed, shared axes (3-D sets from fixed viewpoints), strips of panels,
grids of them, and animations. Arrays (N, D) or (K, N, D) in the data's units."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..runs.files import atomic_path
from .output import animation_writer, plt, save_figure

__all__ = [
    "axis_limits",
    "axis_names",
    "strip_columns",
    "plot_points",
    "plot_strip",
    "plot_grid",
    "animate_points",
    "VIEWS_3D",
]


def axis_limits(*point_sets: np.ndarray, margin: float = 0.1) -> list[tuple[float, float]]:
    """Per-coordinate (low, high) covering every set, widened by ``margin`` of the span: fixed axes across panels."""
    stacked = np.concatenate([np.asarray(p).reshape(-1, np.asarray(p).shape[-1]) for p in point_sets])
    stacked = stacked[np.isfinite(stacked).all(axis=1)]
    lo, hi = stacked.min(axis=0), stacked.max(axis=0)
    pad = (hi - lo) * margin + 1e-6
    return [(float(a), float(b)) for a, b in zip(lo - pad, hi + pad)]


# azimuths of the views of a 3-D point set (degrees), for a figure of several fixed views


VIEWS_3D = (-60, 30, 120)


def axis_names(dim: int) -> tuple[str, ...]:
    """What the axes of a scatter plot of D-dimensional points show: x, y (and z); x0, x1, x2 when D > 3, where
    only the first three coordinates are drawn."""
    return ("x", "y", "z")[:dim] if dim <= 3 else ("x0", "x1", "x2")


def _scatter(
    ax: plt.Axes,
    points: np.ndarray,
    limits: Sequence[tuple[float, float]],
    title: str,
    *,
    xlabel: bool = True,
    ylabel: bool = True,
) -> None:
    """Scatter the first two coordinates, or all three on a 3-D axes; fixed limits so panels compare; the axes
    named (a strip names only its outer ones: ``xlabel``, ``ylabel``)."""
    names = axis_names(points.shape[-1])
    if getattr(ax, "name", "") == "3d":
        ax.scatter(points[:, 0], points[:, 1], points[:, 2], s=4, alpha=0.6, linewidths=0, depthshade=True)
        ax.set_zlim(*limits[2])
        ax.set_box_aspect([hi - lo for lo, hi in limits[:3]])
        if xlabel and ylabel:  # a 3-D panel is named whole or not at all
            ax.set_zlabel(names[2], fontsize=8, labelpad=-2)
    else:
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.6, linewidths=0)
        ax.set_aspect("equal")
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    if xlabel:
        ax.set_xlabel(names[0], fontsize=8)
    if ylabel:
        ax.set_ylabel(names[1], fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def strip_columns(count: int, most: int = 6) -> int:
    """Columns of a strip of ``count`` panels: at most ``most``, rows filled evenly (7 panels: 4 + 3, not 6 + 1)."""
    rows = -(-count // most)
    return -(-count // rows)


def _axes_grid(count: int, *, dim: int, cols: int) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure with ``count`` panels in rows of ``cols``: 2-D axes, or 3-D ones for points with 3+ coordinates."""
    rows = -(-count // cols)
    fig = plt.figure(figsize=(2.6 * cols, 2.7 * rows), layout="constrained")
    projection = "3d" if dim >= 3 else None
    return fig, [fig.add_subplot(rows, cols, i + 1, projection=projection) for i in range(count)]


def plot_points(points: np.ndarray, path: str | Path, *, title: str = "", limits=None) -> None:
    """A scatter plot of (N, 2) points; (N, 3) points are shown from three fixed viewpoints side by side."""
    limits = limits or axis_limits(points)
    if points.shape[1] >= 3:
        fig, axes = _axes_grid(len(VIEWS_3D), dim=3, cols=len(VIEWS_3D))
        for ax, azimuth in zip(axes, VIEWS_3D):
            ax.view_init(elev=20, azim=azimuth)
            _scatter(ax, points, limits, f"view from {azimuth} deg")
    else:
        fig, axes = _axes_grid(1, dim=2, cols=1)
        fig.set_size_inches(4.5, 4.5)
        _scatter(axes[0], points, limits, "")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_strip(frames: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = "", limits=None) -> None:
    """One panel per frame of (K, N, D) points, up to six a row, with shared fixed axes, each labelled; the axes
    are named on the outer panels (on the first, for 3-D panels)."""
    limits = limits or axis_limits(*frames)
    count, cols = len(frames), strip_columns(len(frames))
    fig, axes = _axes_grid(count, dim=frames.shape[-1], cols=cols)
    three_d = frames.shape[-1] >= 3
    for i, (ax, frame, label) in enumerate(zip(axes, frames, labels)):
        bottom, left = i + cols >= count, i % cols == 0
        _scatter(ax, frame, limits, label, xlabel=i == 0 if three_d else bottom, ylabel=i == 0 if three_d else left)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_grid(
    grid: np.ndarray,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    limits=None,
) -> None:
    """A grid of panels from (R, C, N, D) points: one row per setting, one column per checkpoint, shared axes."""
    rows, cols = grid.shape[:2]
    limits = limits or axis_limits(*grid[:, -1])  # fit the final samples of every row
    fig, axes = _axes_grid(rows * cols, dim=grid.shape[-1], cols=cols)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r * cols + c]
            _scatter(ax, grid[r, c], limits, column_labels[c] if r == 0 else "", xlabel=False, ylabel=False)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=9)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def animate_points(
    frames: np.ndarray,
    captions: Sequence[str],
    path: str | Path,
    *,
    fps: float = 20,
    limits: Sequence[tuple[float, float]] | None = None,
    title: str = "",
    hold: int = 0,
    spin: float = 90.0,
    size: float = 4.0,
    dpi: int = 80,
) -> int:
    """Animate (K, N, D) points, one frame each with its caption, to a .gif (Pillow) or .mp4 (ffmpeg) file.

    Axes are fixed across frames (``limits``, default: covering every frame). ``hold`` repeats the last frame that
    many more times, so the result rests on it before looping (in a GIF, Pillow merges identical frames into one
    shown longer, so a 2-D GIF's frame count excludes the held copies). 3-D points are seen from one elevation while the
    azimuth turns steadily by ``spin`` degrees over the whole animation (held frames included), which shows depth
    without a second view. The frame is ``size`` inches square at ``dpi``; the file is rendered under a temporary
    name in the same folder and renamed, so it is never half written. Returns the number of frames written.
    """
    path = Path(path)
    if len(frames) != len(captions):
        raise ValueError(f"{len(frames)} frames but {len(captions)} captions")
    writer = animation_writer(path, fps)
    limits = limits or axis_limits(*frames)
    order = list(range(len(frames))) + [len(frames) - 1] * hold  # frame index shown at each tick
    fig = plt.figure(figsize=(size, size), dpi=dpi)
    three_d = frames.shape[-1] >= 3
    # fixed margins rather than constrained layout, so the axes do not shift from frame to frame
    ax = fig.add_axes(
        (0.08, 0.07, 0.88, 0.8) if not three_d else (0.0, 0.0, 1.0, 0.88), projection="3d" if three_d else None
    )
    if title:
        fig.suptitle(title, fontsize=10)
    try:
        with atomic_path(path) as tmp, writer.saving(fig, str(tmp), dpi=dpi):
            for tick, index in enumerate(order):
                ax.clear()
                _scatter(ax, frames[index], limits, captions[index])
                if three_d:  # a smaller box than a strip panel's, so its corners stay inside the frame
                    ax.set_box_aspect([hi - lo for lo, hi in limits[:3]], zoom=0.8)
                    ax.view_init(elev=20, azim=VIEWS_3D[0] + spin * tick / max(1, len(order) - 1))
                writer.grab_frame()
    finally:
        plt.close(fig)
    return len(order)
