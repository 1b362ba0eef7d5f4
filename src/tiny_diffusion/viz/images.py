"""Pictures of images: (N, C, H, W) arrays in [-1, 1] as grids, labelled rows, strips of tiles, the denoising strip
(x_t above the predicted x_0) and animations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..runs.files import atomic_path
from .output import animation_writer, plt, save_figure
from .points import strip_columns

__all__ = [
    "mosaic",
    "plot_images",
    "plot_image_rows",
    "plot_image_strip",
    "plot_image_grid",
    "plot_denoising",
    "animate_images",
]


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
    fig, axes = plt.subplots(
        count, 1, figsize=(max(3.0, 0.45 * n * w / h), 0.5 * count + 0.5), layout="constrained", squeeze=False
    )
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
    cols = strip_columns(len(frames))
    rows = -(-len(frames) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), layout="constrained", squeeze=False)
    for ax in axes.flat[len(frames) :]:
        ax.set_axis_off()
    for ax, frame, label in zip(axes.flat, frames, labels):
        _show(ax, frame, label)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_image_grid(
    grid: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str], path: str | Path, *, title: str = ""
) -> None:
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


def plot_denoising(
    states: np.ndarray, predicted_x0: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = ""
) -> None:
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


def animate_images(
    frames: np.ndarray,
    captions: Sequence[str],
    path: str | Path,
    *,
    fps: float = 20,
    title: str = "",
    hold: int = 0,
    size: float = 4.0,
    dpi: int = 80,
) -> int:
    """Animate (K, N, C, H, W) images, each frame a square grid of the N images with its caption, to .gif or .mp4
    (written under a temporary name and renamed); ``hold`` repeats the last frame. Returns the frames written."""
    path = Path(path)
    if len(frames) != len(captions):
        raise ValueError(f"{len(frames)} frames but {len(captions)} captions")
    writer = animation_writer(path, fps)
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
