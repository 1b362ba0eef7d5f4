"""Figures and animations: arrays in, image files out (written atomically). Matplotlib's Agg backend, no screen,
unless the program chose a backend itself."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

# A program that already draws (pyplot imported, or MPLBACKEND set, as Jupyter's kernel sets it) keeps its backend:
# switching it would close its figures and stop a notebook's plots showing after td.train.
if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation  # noqa: E402

from ..errors import UsageError  # noqa: E402
from ..runs.files import atomic_path, write_atomic  # noqa: E402

__all__ = ["save_figure", "plot_points", "plot_strip", "plot_grid", "plot_loss", "axis_limits", "animate_points",
           "mp4_available", "mosaic", "plot_images", "plot_image_rows", "plot_image_strip", "plot_image_grid", "plot_denoising",
           "animate_images"]


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


# azimuths of the views of a 3-D point set (degrees), for a figure of several fixed views
VIEWS_3D = (-60, 30, 120)


def _scatter(ax: plt.Axes, points: np.ndarray, limits: Sequence[tuple[float, float]], title: str) -> None:
    """Scatter the first two coordinates, or all three on a 3-D axes; fixed limits so panels compare."""
    if getattr(ax, "name", "") == "3d":
        ax.scatter(points[:, 0], points[:, 1], points[:, 2], s=4, alpha=0.6, linewidths=0, depthshade=True)
        ax.set_zlim(*limits[2])
        ax.set_box_aspect([hi - lo for lo, hi in limits[:3]])
    else:
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.6, linewidths=0)
        ax.set_aspect("equal")
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


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
    """One panel per frame of (K, N, D) points, up to six a row, with shared fixed axes, each labelled."""
    limits = limits or axis_limits(*frames)
    fig, axes = _axes_grid(len(frames), dim=frames.shape[-1], cols=min(len(frames), 6))
    for ax, frame, label in zip(axes, frames, labels):
        _scatter(ax, frame, limits, label)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_grid(grid: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str], path: str | Path, *,
              title: str = "", limits=None) -> None:
    """A grid of panels from (R, C, N, D) points: one row per setting, one column per checkpoint, shared axes."""
    rows, cols = grid.shape[:2]
    limits = limits or axis_limits(*grid[:, -1])  # fit the final samples of every row
    fig, axes = _axes_grid(rows * cols, dim=grid.shape[-1], cols=cols)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r * cols + c]
            _scatter(ax, grid[r, c], limits, column_labels[c] if r == 0 else "")
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=9)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


# --- images -------------------------------------------------------------------------------------------------------


def mosaic(images: np.ndarray, *, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] -> one (rows * (H + pad), cols * (W + pad)[, 3]) array in [0, 1] to imshow."""
    images = np.clip((np.asarray(images, dtype=np.float32) + 1) / 2, 0, 1)
    n, c, h, w = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    canvas = np.ones((c, rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=np.float32)  # white gutters
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        canvas[:, r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = image
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def _show(ax: plt.Axes, images: np.ndarray, title: str, *, cols: int | None = None) -> None:
    ax.imshow(mosaic(images, cols=cols), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def plot_images(images: np.ndarray, path: str | Path, *, title: str = "", cols: int | None = None) -> None:
    """A grid of (N, C, H, W) images in [-1, 1], about 0.5 inch each."""
    cols = cols or int(np.ceil(np.sqrt(len(images))))
    rows = -(-len(images) // cols)
    fig, ax = plt.subplots(figsize=(max(3.0, 0.5 * cols), max(3.0, 0.5 * rows) + 0.4), layout="constrained")
    _show(ax, images, "", cols=cols)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def plot_image_rows(rows: np.ndarray, row_labels: Sequence[str], path: str | Path, *, title: str = "") -> None:
    """(R, N, C, H, W): one labelled row of N images per entry (a row per digit, or per guidance scale)."""
    count, n, _, h, w = rows.shape
    fig, axes = plt.subplots(count, 1, figsize=(max(3.0, 0.45 * n * w / h), 0.5 * count + 0.5),
                             layout="constrained", squeeze=False)
    for ax, row, label in zip(axes[:, 0], rows, row_labels):
        _show(ax, row, "", cols=n)
        ax.set_axis_on()  # keep the row label, hide the rest of the frame
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def plot_image_strip(frames: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = "") -> None:
    """One panel per frame of (K, N, C, H, W) images (each a small square grid), up to six a row, labelled."""
    cols = min(len(frames), 6)
    rows = -(-len(frames) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), layout="constrained", squeeze=False)
    for ax in axes.flat[len(frames):]:
        ax.set_axis_off()
    for ax, frame, label in zip(axes.flat, frames, labels):
        _show(ax, frame, label)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_image_grid(grid: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str], path: str | Path, *,
                    title: str = "") -> None:
    """(R, K, N, C, H, W): one row of image tiles per setting, one column per checkpoint (an ablation figure)."""
    rows, cols = grid.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.0 * rows), layout="constrained", squeeze=False)
    for r in range(rows):
        for c in range(cols):
            _show(axes[r, c], grid[r, c], column_labels[c] if r == 0 else "")
        axes[r, 0].set_axis_on()  # keep the row label, hide the rest of the frame
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_denoising(states: np.ndarray, predicted_x0: np.ndarray, labels: Sequence[str], path: str | Path, *,
                   title: str = "") -> None:
    """Two rows over K steps of (K, N, C, H, W) images: x_t above, the model's prediction of x_0 from it below."""
    cols = len(states)
    fig, axes = plt.subplots(2, cols, figsize=(1.9 * cols, 4.2), layout="constrained", squeeze=False)
    for k in range(cols):
        _show(axes[0, k], states[k], labels[k])
        _show(axes[1, k], predicted_x0[k], "")
    for ax, name in zip(axes[:, 0], ("x_t", "predicted x_0")):
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, fontsize=10)
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


def _animation_writer(path: Path, fps: float) -> animation.AbstractMovieWriter:
    if fps <= 0:
        raise UsageError(f"fps must be positive, got {fps}")
    if path.suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if path.suffix == ".mp4":
        if not mp4_available():
            raise UsageError("writing MP4 needs ffmpeg, which matplotlib cannot find")
        return animation.FFMpegWriter(fps=fps)
    raise UsageError(f"an animation must end in .gif or .mp4, got {path.name}")


def animate_images(frames: np.ndarray, captions: Sequence[str], path: str | Path, *, fps: float = 20,
                   title: str = "", hold: int = 0, size: float = 4.0, dpi: int = 80) -> int:
    """Animate (K, N, C, H, W) images, each frame a square grid of the N images with its caption, to .gif or .mp4
    (written under a temporary name and renamed); ``hold`` repeats the last frame. Returns the frames written."""
    path = Path(path)
    if len(frames) != len(captions):
        raise ValueError(f"{len(frames)} frames but {len(captions)} captions")
    writer = _animation_writer(path, fps)
    order = list(range(len(frames))) + [len(frames) - 1] * hold
    fig = plt.figure(figsize=(size, size), dpi=dpi)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.86))
    if title:
        fig.suptitle(title, fontsize=10)
    try:
        with atomic_path(path) as tmp, writer.saving(fig, str(tmp), dpi=dpi):
            for index in order:
                ax.clear()
                _show(ax, frames[index], captions[index])
                writer.grab_frame()
    finally:
        plt.close(fig)
    return len(order)


def mp4_available() -> bool:
    """Whether matplotlib finds an ffmpeg executable, which MP4 output needs (GIFs need only Pillow)."""
    return animation.writers.is_available("ffmpeg")


def animate_points(frames: np.ndarray, captions: Sequence[str], path: str | Path, *, fps: float = 20,
                   limits: Sequence[tuple[float, float]] | None = None, title: str = "", hold: int = 0,
                   spin: float = 90.0, size: float = 4.0, dpi: int = 80) -> int:
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
    writer = _animation_writer(path, fps)
    limits = limits or axis_limits(*frames)
    order = list(range(len(frames))) + [len(frames) - 1] * hold  # frame index shown at each tick
    fig = plt.figure(figsize=(size, size), dpi=dpi)
    three_d = frames.shape[-1] >= 3
    # fixed margins rather than constrained layout, so the axes do not shift from frame to frame
    ax = fig.add_axes((0.08, 0.07, 0.88, 0.8) if not three_d else (0.0, 0.0, 1.0, 0.88),
                      projection="3d" if three_d else None)
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
