"""Where figures and animations go: files written atomically, the format from the suffix; Matplotlib's Agg backend,
no screen needed, unless the program chose a backend itself."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import matplotlib

# A program that already draws (pyplot imported, or MPLBACKEND set, as Jupyter's kernel sets it) keeps its backend:
# switching it would close its figures and stop a notebook's plots showing after td.train.
if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import animation  # noqa: E402

from ..errors import UsageError  # noqa: E402
from ..runs.files import write_atomic  # noqa: E402

__all__ = ["save_figure", "animation_writer", "mp4_available"]


def save_figure(fig: plt.Figure, path: str | Path, *, dpi: int = 110) -> None:
    """Save ``fig`` to ``path`` (format from the suffix: png, svg, pdf) atomically, then close it."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def animation_writer(path: Path, fps: float) -> animation.AbstractMovieWriter:
    if fps <= 0:
        raise UsageError(f"fps must be positive, got {fps}")
    if path.suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if path.suffix == ".mp4":
        if not mp4_available():
            raise UsageError("writing MP4 needs ffmpeg, which matplotlib cannot find")
        return animation.FFMpegWriter(fps=fps)
    raise UsageError(f"an animation must end in .gif or .mp4, got {path.name}")


def mp4_available() -> bool:
    """Whether matplotlib finds an ffmpeg executable, which MP4 output needs (GIFs need only Pillow)."""
    return animation.writers.is_available("ffmpeg")
