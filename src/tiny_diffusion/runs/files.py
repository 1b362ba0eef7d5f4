"""The run directory: everything a run leaves on disk, written atomically, and read back to rebuild the model.

Layout (other tools rely on these names):

    config.json        {"config": TrainConfig, "data": {"shape", "min", "max", "shift", "scale", "sha256"},
                        "tiny_diffusion": version}
    model.safetensors  weights only (of the EMA copy when EMA is on)
    guide.safetensors  an autoguided run's (guide_at > 0) weights after that share of training, the same way
    loss.npy           (steps,) training loss per optimiser step
    history.csv        epoch, mean loss, seconds since start, whether a snapshot was taken
    frames.npy         (K, N, D) samples drawn at the snapshot epochs ((K, 64, C, H, W) for images)
    samples.npy        (N, D) final samples, N = eval batch size ((N, C, H, W) for images)
    samples.png, loss.png, frames.png
    manifest.json      the size and sha256 of every file above, sealed by a checksum of its own (``integrity``)

Reading a run (``load_run``, ``read_config``) first checks every file against manifest.json, so a truncated file or a
changed byte anywhere is reported in one line; runs from before manifests load as they are. While a run trains it
lives in ``.NAME.partial`` beside its directory, with its checkpoints (see ``staging`` and ``checkpoints``).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from ..config import TrainConfig
from ..core.schedule import NoiseSchedule
from ..diffusion import Diffusion
from ..errors import UsageError
from ..models import build_model
from .integrity import check_manifest

__all__ = [
    "atomic_path",
    "write_atomic",
    "fsync_dir",
    "save_json",
    "save_npy",
    "save_weights",
    "save_history",
    "load_run",
    "read_meta",
    "read_config",
    "verify_run",
    "load_points",
    "HistoryRow",
    "read_history",
    "training_snapshots",
    "RUN_FILES",
    "run_files",
    "load_labels",
]

CONFIG, WEIGHTS, GUIDE = "config.json", "model.safetensors", "guide.safetensors"
RUN_FILES = (
    CONFIG,
    WEIGHTS,
    "loss.npy",
    "history.csv",
    "frames.npy",
    "samples.npy",
    "samples.png",
    "frames.png",
    "loss.png",
)  # what a complete run holds, besides its manifest


def run_files(config: TrainConfig) -> list[str]:
    """What a complete run of ``config`` holds, besides its manifest: RUN_FILES, a conditional run's labels.npy
    (the class each final sample was drawn for) and an autoguided run's guide weights."""
    return [*RUN_FILES, *(["labels.npy"] if config.conditional else []), *([GUIDE] if config.guide_at > 0 else [])]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder (same suffix, for writers that go by it) to write the file to; on
    success it is renamed to ``path``, on failure removed: ``path`` never holds half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual permissions
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        Path(tmp).unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system allows opening a folder: not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename: never half a file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_json(path: str | Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


def save_npy(path: str | Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue())


def save_weights(path: str | Path, model: nn.Module) -> None:
    state = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    write_atomic(path, save_safetensors(state))


def save_history(path: Path, losses: np.ndarray, epoch_seconds: list[float], frame_epochs: list[int]) -> None:
    """history.csv: per epoch the mean loss, seconds since the start, and whether a snapshot was taken (0-based
    ``frame_epochs``; the file counts epochs from 1)."""
    per_epoch = np.array_split(losses, len(epoch_seconds))
    lines = ["epoch,loss,seconds,snapshot"]
    snapshots = set(frame_epochs)
    for epoch, (chunk, seconds) in enumerate(zip(per_epoch, epoch_seconds)):
        lines.append(f"{epoch + 1},{chunk.mean():.6g},{seconds:.3f},{int(epoch in snapshots)}")
    write_atomic(path, ("\n".join(lines) + "\n").encode())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path.parent} is not a run directory (no {path.name})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path} is corrupt: expected a JSON object")
    return value


# settings newer than some run directories, with the value every run made before them was trained with
PREDATED = {"timestep_sampling": "uniform", "guide_at": 0.0, "guidance": 0.0}


def _config_of(meta: dict[str, Any], run_dir: Path) -> TrainConfig:
    try:
        return TrainConfig.from_dict({**PREDATED, **meta["config"]})
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{run_dir / CONFIG} is corrupt: {e!r}") from None


def verify_run(run_dir: str | Path) -> list[str] | None:
    """Check every file of a run (or of an unfinished run's folder) against its manifest.json: one clear line at the
    first that is missing, truncated or changed. Returns the names checked, None for a run without a manifest."""
    return check_manifest(Path(run_dir))


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    """A run's config.json as a mapping, once the run's files match its manifest."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} does not exist")
    if not (run_dir / CONFIG).exists():
        raise UsageError(f"{run_dir} is not a run directory (no {CONFIG})")
    verify_run(run_dir)
    return _read_json(run_dir / CONFIG)


def read_config(run_dir: str | Path) -> TrainConfig:
    """The settings a run directory was made with, validated; one clear error when missing or corrupt."""
    return _config_of(read_meta(run_dir), Path(run_dir))


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> Diffusion:
    """Rebuild the model of a run directory (config, weights, schedule, data units, classes) from its files alone."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    config = _config_of(meta, run_dir)
    try:
        data_min, data_max, shift, scale = (
            torch.tensor(meta["data"][key], dtype=torch.float32) for key in ("min", "max", "shift", "scale")
        )
        shape = tuple(int(n) for n in meta["data"].get("shape", [len(data_min)]))  # runs before images: points
        classes = tuple(str(name) for name in meta["data"].get("classes", []))
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{run_dir / CONFIG} is corrupt: {e!r}") from None
    if not shape or min(shape) < 1 or any(len(v) != shape[0] for v in (data_min, data_max, shift, scale)):
        raise UsageError(f"{run_dir / CONFIG} is corrupt: data shape {shape} does not match its ranges")
    if config.conditional and not classes:
        raise UsageError(f"{run_dir / CONFIG} is corrupt: a conditional run without its classes")
    model = build_model(config, shape=shape, num_classes=len(classes))
    _load_weights(model, run_dir / WEIGHTS)
    guide = None
    if config.guide_at > 0:
        guide = build_model(config, shape=shape, num_classes=len(classes))
        _load_weights(guide, run_dir / GUIDE)
    schedule = NoiseSchedule.from_settings(config, device=device)
    return Diffusion(
        config,
        model.to(device).eval(),
        schedule,
        shape,
        data_min.to(device),
        data_max.to(device),
        shift.to(device),
        scale.to(device),
        classes,
        run_dir=run_dir,
        guide=None if guide is None else guide.to(device).eval(),
    )


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a run's weights file into ``model``; one clear line when it is missing or does not fit."""
    try:
        model.load_state_dict(load_safetensors(path.read_bytes()))
    except FileNotFoundError:
        raise UsageError(f"{path.parent} has no {path.name}") from None
    except (SafetensorError, RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path} is corrupt or does not match config.json: {first}") from None


def _read_npy(path: Path) -> np.ndarray:
    """The array of a .npy file (never a pickle); one clear error for a missing or unreadable file."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except (OSError, ValueError, EOFError) as e:
        raise UsageError(f"cannot read {path} as a .npy array: {e}") from None


def load_samples(path: str | Path, *, shape: str = "(N, D)") -> np.ndarray:
    """Read samples from a .npy file: points (N, D), or images (N, C, H, W) when ``shape`` is "(N, C, H, W)";
    one clear error for anything else."""
    path = Path(path)
    samples = _read_npy(path)
    if samples.ndim != shape.count(",") + 1 or not np.issubdtype(samples.dtype, np.number):
        raise UsageError(f"{path} must hold a numeric {shape} array, got {samples.dtype} {samples.shape}")
    return samples


def load_labels(path: str | Path, *, num: int, num_classes: int) -> np.ndarray:
    """Read the (num,) integer class labels in 0..num_classes-1 of as many samples from a .npy file; one clear error
    for anything else."""
    path = Path(path)
    labels = _read_npy(path)
    if labels.shape != (num,) or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"{path} must hold ({num},) integer labels, one per sample; got {labels.dtype} {labels.shape}")
    if num and not 0 <= labels.min() <= labels.max() < num_classes:
        raise UsageError(
            f"{path} holds labels from {labels.min()} to {labels.max()}; the classes are 0..{num_classes - 1}"
        )
    return labels.astype(np.int64)


def load_points(path: str | Path) -> np.ndarray:
    """Read an (N, D) array of points from a .npy file, with one clear error for anything else."""
    return load_samples(path)


@dataclass
class HistoryRow:
    """One line of history.csv."""

    epoch: int  # 1-based
    loss: float  # mean training loss over the epoch
    seconds: float  # since the start of training, at the end of the epoch
    snapshot: bool  # whether a snapshot was drawn after the epoch


def read_history(run_dir: str | Path) -> list[HistoryRow]:
    """The rows of a run's history.csv (see ``save_history``), with one clear error when missing or corrupt."""
    path = Path(run_dir) / "history.csv"
    try:
        lines = path.read_text().splitlines()[1:]
        rows = [line.split(",") for line in lines if line]
        return [HistoryRow(int(r[0]), float(r[1]), float(r[2]), r[3].strip() == "1") for r in rows]
    except FileNotFoundError:
        raise UsageError(f"{Path(run_dir)} has no history.csv") from None
    except (OSError, ValueError, IndexError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None


def training_snapshots(run_dir: str | Path) -> tuple[np.ndarray, list[int]]:
    """A run's snapshots (K, N, *shape) from frames.npy and their (1-based) epochs from history.csv's snapshot
    column."""
    run_dir = Path(run_dir)
    epochs = [row.epoch for row in read_history(run_dir) if row.snapshot]
    try:
        frames = np.load(run_dir / "frames.npy", allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{run_dir} has no frames.npy") from None
    except (OSError, ValueError, EOFError) as e:
        raise UsageError(f"cannot read the snapshots of {run_dir}: {e}") from None
    if frames.ndim < 3 or len(frames) != len(epochs):
        raise UsageError(f"{run_dir}: frames.npy holds {frames.shape} but history.csv marks {len(epochs)} snapshots")
    return frames, epochs
