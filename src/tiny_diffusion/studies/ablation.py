"""Ablation studies: one run per value of one setting, a grid figure and a table of metrics.

A study directory holds one run directory per value (``PARAM=VALUE``), ``grid.png`` (rows: values; columns: the
training snapshots, as in the original tiny-diffusion's figures) and ``results.csv`` / ``results.md``. A study
resumes: a run directory that is complete and was made with the same settings is not trained again, and a run that
was interrupted carries on from its last checkpoint.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig, coerce_field
from ..data.prepare import with_absolute_dataset
from ..errors import UsageError
from ..eval.evaluate import evaluate_run_samples
from ..runs.files import read_config, read_history, training_snapshots, write_atomic
from ..runs.job import train_run
from ..runs.staging import partial_dir, unfinished_config
from ..viz import figures as viz

__all__ = ["StudyRow", "parse_values", "run_study", "ensure_runs"]

COMPLETE = ("config.json", "model.safetensors", "samples.npy", "frames.npy", "history.csv")


@dataclass
class StudyRow:
    """One value of the study and what its run measured."""

    value: Any
    run_dir: Path
    trained: bool  # False when an earlier complete run was reused
    seconds: float  # the run's training time, snapshots included (from its history.csv)
    metrics: dict[str, float]


def parse_values(param: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """The TrainConfig field ``param`` names (dashes allowed) and ``values`` parsed as its type."""
    by_name = {f.name: f for f in fields(TrainConfig)}
    name = param.replace("-", "_")
    if name not in by_name:
        raise UsageError(f"unknown setting {param!r} to study; choose from {', '.join(by_name)}")
    if not values:
        raise UsageError("give at least one value to study")
    base = by_name[name].type.removeprefix("Optional[").removesuffix("]")
    parsed = []
    for text in values:
        try:
            value = {"int": int, "float": float, "str": str, "bool": _parse_bool}[base](text)
        except ValueError:
            raise UsageError(f"{name} takes {base} values, got {text!r}") from None
        parsed.append(coerce_field(name, value))
    if len(set(map(str, parsed))) != len(parsed):
        raise UsageError(f"the values of {name} repeat: {', '.join(values)}")
    return name, parsed


def _with(base: TrainConfig, param: str, value: Any) -> TrainConfig:
    """``base`` with ``param`` set to ``value``; a method comes with its own sampling (``TrainConfig.with_method``),
    so ``method ddpm flow`` compares the two from a ddpm base's settings."""
    return base.with_method(value) if param == "method" else replace(base, **{param: value})


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(text)
    return text.lower() in ("true", "1", "yes")


def _same_run(run_dir: Path, config: TrainConfig) -> bool:
    """Whether ``run_dir`` is a complete run made with ``config``'s settings (the device aside)."""
    if not all((run_dir / name).is_file() for name in COMPLETE):
        return False
    try:
        return not read_config(run_dir).differences(config, ignore=("device",))
    except UsageError:
        return False


def _resumable(run_dir: Path, config: TrainConfig) -> bool:
    """Whether ``run_dir`` has an unfinished run of ``config``'s settings (one of other settings is refused)."""
    unfinished = unfinished_config(run_dir)
    if unfinished is not None and unfinished.differences(config, ignore=("device",)):
        raise UsageError(
            f"{partial_dir(run_dir)} holds an unfinished run with other settings; remove it or choose another --out"
        )
    return unfinished is not None


def ensure_runs(runs: Sequence[tuple[TrainConfig, Path]], *, jobs: int = 1, progress: bool = True) -> set[Path]:
    """Train every (config, run_dir) whose directory does not already hold that complete run; return those trained.
    An unfinished run of the same settings (an interrupted study) is resumed from its checkpoint.

    A directory that exists but holds something else is refused before anything trains. With ``jobs`` > 1 the runs
    train in that many processes at once, each with an equal share of the CPU threads: the small point MLP steps
    are too short to keep several threads busy, so separate runs use the cores better.
    """
    if jobs < 1:
        raise UsageError(f"--jobs must be positive, got {jobs}")
    missing: dict[Path, tuple[TrainConfig, bool]] = {}  # run_dir -> (config, whether to resume)
    for config, run_dir in runs:
        if _same_run(run_dir, config):
            continue
        if run_dir.exists():
            raise UsageError(
                f"{run_dir} exists but is incomplete or was made with other settings; remove it or choose another --out"
            )
        missing[run_dir] = (config, _resumable(run_dir, config))
    if jobs == 1 or len(missing) <= 1:
        for run_dir, (config, resume) in missing.items():
            if progress:
                print(f"{'resuming' if resume else 'training'} {run_dir}", flush=True)
            train_run(config, run_dir, resume=resume, progress=progress)
    else:
        _train_in_processes(missing, jobs=jobs, progress=progress)
    return set(missing)


def _train_in_processes(missing: dict[Path, tuple[TrainConfig, bool]], *, jobs: int, progress: bool) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn, not fork: a forked copy of a process that has used torch's thread pool can deadlock
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(threads,)
    )
    try:
        futures = {
            pool.submit(train_run, config, run_dir, resume=resume, progress=False): run_dir
            for run_dir, (config, resume) in missing.items()
        }
        if progress:
            print(f"training {len(futures)} runs, {jobs} at a time", flush=True)
        for done, future in enumerate(as_completed(futures), 1):
            summary = future.result()  # re-raises a run's error here
            if progress:
                print(f"[{done}/{len(futures)}] {futures[future]}: trained in {summary.seconds:.1f} s", flush=True)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # a run that was cut off keeps its checkpoint, to resume
        raise
    pool.shutdown()


def run_study(
    base: TrainConfig,
    param: str,
    values: Sequence[Any],
    out: str | Path,
    *,
    run_dirs: Sequence[Path] | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> list[StudyRow]:
    """Train (or reuse) one run per value, then write grid.png, results.csv and results.md into ``out``.

    Runs live in ``out/PARAM=VALUE`` unless ``run_dirs`` names one directory per value (studies that share runs).
    """
    out = Path(out)
    # refuse bad values before training; name a user's file as train_run records it, so its runs can be reused
    configs = [with_absolute_dataset(_with(base, param, value)) for value in values]
    run_dirs = [Path(d) for d in run_dirs] if run_dirs is not None else [out / f"{param}={v}" for v in values]
    out.mkdir(parents=True, exist_ok=True)
    trained = ensure_runs(list(zip(configs, run_dirs)), jobs=jobs, progress=progress)
    rows = []
    for value, config, run_dir in zip(values, configs, run_dirs):
        samples = np.load(run_dir / "samples.npy", allow_pickle=False)
        metrics = evaluate_run_samples(samples, config, progress=progress)
        rows.append(StudyRow(value, run_dir, run_dir in trained, read_history(run_dir)[-1].seconds, metrics))
    _write_grid(rows, param, out / "grid.png")
    _write_tables(rows, param, out)
    return rows


def _write_grid(rows: list[StudyRow], param: str, path: Path) -> None:
    snapshots = [training_snapshots(row.run_dir) for row in rows]
    counts = {len(frames) for frames, _ in snapshots}
    if len(counts) != 1:  # e.g. a study of num_epochs: show the last snapshots each run has in common
        keep = min(counts)
        snapshots = [(frames[-keep:], epochs[-keep:]) for frames, epochs in snapshots]
    grid = np.stack([frames for frames, _ in snapshots])  # (values, checkpoints, N, *shape)
    column_labels = [f"epoch {e}" for e in snapshots[0][1]]
    row_labels = [f"{param} = {row.value}" for row in rows]
    if grid.ndim == 6:  # images: a 4 x 4 tile of each snapshot
        viz.plot_image_grid(grid[:, :, :16], row_labels, column_labels, path, title=f"ablation: {param}")
    else:
        viz.plot_grid(grid, row_labels, column_labels, path, title=f"ablation: {param}")


METRIC_COLUMNS = (
    "w2",
    "w2_floor",
    "mmd",
    "mmd_floor",
    "precision@0.05",
    "precision@0.1",
    "recall@0.05",
    "recall@0.1",  # points
    "confident",
    "confident_floor",
    "class_entropy_bits",
    "frechet",
    "frechet_floor",
)  # images


def _write_tables(rows: list[StudyRow], param: str, out: Path) -> None:
    columns = [c for c in METRIC_COLUMNS if all(c in row.metrics for row in rows)]
    header = [param, *columns, "train_s"]
    table = [[str(row.value), *(f"{row.metrics[c]:.4g}" for c in columns), f"{row.seconds:.1f}"] for row in rows]
    csv = "\n".join(",".join(line) for line in [header, *table]) + "\n"
    markdown = (
        "\n".join(
            ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(line) + " |" for line in table]
        )
        + "\n"
    )
    write_atomic(out / "results.csv", csv.encode())
    write_atomic(out / "results.md", markdown.encode())
