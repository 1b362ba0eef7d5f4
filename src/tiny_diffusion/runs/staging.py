"""Where a run lives while it trains, and how it becomes a run directory.

``train --out runs/base`` writes into ``runs/.base.partial``: config.json and its manifest first, then
``checkpoints/`` as training goes (see ``checkpoints``), then the run's files and their manifest. Only then is the
folder renamed to ``runs/base``; an existing ``runs/base`` is replaced at that moment and only with ``--overwrite``,
so an interrupted run never loses earlier results. An interrupted or crashed run stays in ``.base.partial``, where
``train --resume runs/base`` finds it; a new run into the same directory is refused until it is resumed or
``--overwrite`` discards it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..config import TrainConfig
from ..errors import UsageError
from .checkpoints import checkpoint_steps, read_checkpoint
from .files import CONFIG, fsync_dir, read_config, read_meta, save_json, verify_run, write_atomic
from .integrity import MANIFEST, Corrupt, manifest

__all__ = [
    "CHECKPOINTS",
    "partial_dir",
    "checkpoints_dir",
    "check_fresh",
    "begin",
    "unfinished_meta",
    "resumable_config",
    "unfinished_config",
    "finish",
    "verify_report",
]

CHECKPOINTS = "checkpoints"


def partial_dir(run_dir: Path) -> Path:
    """``runs/.base.partial`` for ``runs/base``: the unfinished run."""
    return run_dir.parent / f".{run_dir.name}.partial"


def checkpoints_dir(run_dir: Path) -> Path:
    return partial_dir(run_dir) / CHECKPOINTS


def _progress(run_dir: Path) -> str:
    steps = checkpoint_steps(checkpoints_dir(run_dir))
    return f"its newest checkpoint is of step {steps[0]}" if steps else "stopped before its first checkpoint"


def check_fresh(run_dir: Path, *, overwrite: bool) -> None:
    """Refuse to start a new run into ``run_dir`` where a run or an unfinished run is, unless ``overwrite``."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir} exists and is not a directory")
    if overwrite:
        return
    if partial_dir(run_dir).exists():
        raise UsageError(
            f"{run_dir} has an unfinished run in {partial_dir(run_dir)} ({_progress(run_dir)}); resume "
            f"it with `tiny-diffusion train --resume {run_dir}`, or pass --overwrite to start again"
        )
    if run_dir.exists():
        raise UsageError(
            f"run directory {run_dir} already exists; pass --overwrite to replace it or choose another --out"
        )


def begin(run_dir: Path, meta: dict) -> Path:
    """A fresh unfinished run for ``run_dir`` (an old one is discarded) holding config.json and its manifest."""
    stage = partial_dir(run_dir)
    if stage.exists():
        shutil.rmtree(stage)
    stage.parent.mkdir(parents=True, exist_ok=True)
    stage.mkdir()
    save_json(stage / CONFIG, meta)
    write_atomic(stage / MANIFEST, manifest(stage, [CONFIG]))
    return stage


def unfinished_meta(run_dir: Path) -> dict:
    """The config.json of ``run_dir``'s unfinished run, checked against its manifest; one clear line when there is
    nothing to resume."""
    stage = partial_dir(run_dir)
    if not stage.is_dir():
        if (run_dir / CONFIG).exists():
            raise UsageError(f"{run_dir} is a complete run: there is nothing to resume")
        raise UsageError(f"nothing to resume at {run_dir}: there is no unfinished run ({stage} does not exist)")
    return read_meta(stage)


def resumable_config(run_dir: Path) -> TrainConfig:
    """The settings of ``run_dir``'s unfinished run, checked; one clear line when there is nothing to resume."""
    unfinished_meta(run_dir)
    return read_config(partial_dir(run_dir))


def unfinished_config(run_dir: Path) -> TrainConfig | None:
    """The settings of ``run_dir``'s unfinished run, or None when it has none."""
    return read_config(partial_dir(run_dir)) if partial_dir(run_dir).is_dir() else None


def finish(stage: Path, run_dir: Path, names: list[str]) -> None:
    """Record the run's files in its manifest and make ``stage`` the run directory ``run_dir``, replacing an old one
    only now; the checkpoints go with the unfinished run."""
    write_atomic(stage / MANIFEST, manifest(stage, names))
    for leftover in stage.glob(".*"):  # temporary files of a process killed while writing
        leftover.unlink()
    if run_dir.exists():
        old = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.old-"))
        os.replace(run_dir, old / run_dir.name)
        os.replace(stage, run_dir)
        shutil.rmtree(old)
    else:
        os.replace(stage, run_dir)
    fsync_dir(run_dir.parent)
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)


def verify_report(run_dir: Path) -> str:
    """Check every file of ``run_dir`` against its manifest, and the config and every checkpoint of its unfinished
    run; a line per folder checked. The first file that fails is a ``Corrupt`` error of one line."""
    stage, lines = partial_dir(run_dir), []
    if not run_dir.is_dir() and not stage.is_dir():
        raise UsageError(f"nothing to verify at {run_dir}: it is neither a run directory nor has an unfinished run")
    if run_dir.is_dir():
        if not (run_dir / CONFIG).exists():
            raise UsageError(f"{run_dir} is not a run directory (no {CONFIG})")
        names = verify_run(run_dir)
        lines.append(
            f"{run_dir}: no {MANIFEST} (a run from before manifests), so its files cannot be checked"
            if names is None
            else f"{run_dir}: all {len(names)} files match {MANIFEST}"
        )
    if stage.is_dir():
        if verify_run(stage) is None:
            raise Corrupt(f"{stage} has no {MANIFEST}: its config cannot be checked")
        steps = checkpoint_steps(stage / CHECKPOINTS)
        for step in steps:
            try:
                read_checkpoint(stage / CHECKPOINTS, step)
            except Corrupt as e:
                raise Corrupt(f"{e}; `train --resume` would fall back to the checkpoint before it") from None
        held = (
            f"the checkpoint{'s' if len(steps) > 1 else ''} of step{'s' if len(steps) > 1 else ''} "
            f"{', '.join(map(str, steps))}"
            if steps
            else "no checkpoint yet"
        )
        lines.append(
            f"{stage}: an unfinished run; {CONFIG} and {held} intact; resume it with "
            f"`tiny-diffusion train --resume {run_dir}`"
        )
    return "\n".join(lines)
