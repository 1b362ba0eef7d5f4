"""The playground's training: one run at a time, in its own process (spawned: a fresh interpreter, whatever the
server's threads), through the public API ``train``. The process sends events through a queue; the server keeps
them in order, so every page that follows the training (late or early) sees all of them.

Events are dicts with a ``kind``: "started" (the settings and the training data), "warning", "snapshot" (epoch,
step, the loss curve so far, the samples drawn now), then one final "done", "error" or "interrupted".
SIGINT or SIGTERM to the process stops the training as ``train`` does: it saves a checkpoint and the unfinished run
stays in .NAME.partial, to be carried on with ``tiny-diffusion train --resume``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np

from ..errors import SettingWarning, UsageError
from .playground import TrainingRequest, drawing_csv, write_drawing

__all__ = ["Busy", "Job", "Trainer", "FINAL", "run_training", "snapshot_event"]

FINAL = ("done", "error", "interrupted")
LOSS_POINTS = 400  # the loss curve sent with a snapshot: at most this many means of consecutive steps
SHOWN_DATA = 2000  # training points sent with "started", to draw under the snapshots


class Busy(Exception):
    """A training is running already."""


def _one_line(message: str) -> str:
    return " ".join(message.split()) or "no message"


def snapshot_event(epoch: int, step: int, losses: np.ndarray, samples: np.ndarray) -> dict[str, Any]:
    """A snapshot as an event's data: the loss curve as means of at most LOSS_POINTS runs of consecutive steps
    (with the last step of each), the samples' first two coordinates rounded to 4 decimals."""
    bins = np.array_split(np.arange(len(losses)), min(len(losses), LOSS_POINTS)) if len(losses) else []
    return {
        "epoch": epoch,
        "step": step,
        "loss": {
            "step": [int(b[-1]) + 1 for b in bins],
            "value": [float(np.mean(losses[b])) for b in bins],
        },
        "samples": np.round(samples[:, :2].astype(np.float64), 4).tolist(),
    }


Send = Callable[..., None]  # send(kind, **data): put an event on the queue to the server


def run_training(values: dict[str, Any], out: str, send: Send) -> None:
    """Train on ``values`` into ``out`` with ``td.train``, sending "started", "warning" and "snapshot" events."""
    from ..api import settings, train
    from ..data.prepare import training_data

    def show(message: Any, category: Any, *args: Any, **kw: Any) -> None:
        if isinstance(message, SettingWarning):
            send("warning", message=_one_line(str(message)))

    with warnings.catch_warnings():
        warnings.showwarning = show
        warnings.simplefilter("always", SettingWarning)
        config = settings(values)
        data = training_data(config).in_data_units()[:SHOWN_DATA]  # (N, 2)
        send("started", name=Path(out).name, num_epochs=config.num_epochs, data=np.round(data, 4).tolist())
        train(
            config,
            out=out,
            progress=False,
            callback=lambda s: send("snapshot", **snapshot_event(s.epoch, s.step, s.losses, s.samples)),
        )


def _process_main(target: Callable[[dict[str, Any], str, Send], None], values: dict[str, Any], out: str,
                  events: Any) -> None:  # fmt: skip
    """The training process: ``target`` (``run_training``), then one final event: done, error or interrupted."""
    from ..runs.interrupts import Interrupted

    def send(kind: str, **data: Any) -> None:
        events.put({"kind": kind, **data})

    try:
        target(values, out, send)
    except Interrupted as e:
        send("interrupted", message=_one_line(str(e)))
    except KeyboardInterrupt:  # before training caught the signals
        send("interrupted", message="interrupted before training started")
    except UsageError as e:
        send("error", message=_one_line(str(e)))
    except Exception as e:  # shown in the page in one line; the traceback goes to the server's terminal
        traceback.print_exc()
        send("error", message=_one_line(f"{type(e).__name__}: {e}"))
    else:
        send("done", run=Path(out).name)


@dataclass
class Job:
    """One training: its process and the events it has sent so far."""

    name: str
    process: BaseProcess
    events: list[dict[str, Any]] = field(default_factory=list)
    pump: threading.Thread | None = None  # moves the process's events here (``_pump``)

    @property
    def state(self) -> str:
        """running, or the kind of the final event: done, error or interrupted."""
        last = self.events[-1]["kind"] if self.events else None
        return last if last in FINAL else "running"

    @property
    def finished(self) -> bool:
        return self.state != "running"


class Trainer:
    """Starts the playground's trainings, one at a time, and keeps the events of the latest."""

    def __init__(self, runs_dir: Path, *, target: Callable[[dict[str, Any], str, Send], None] = run_training) -> None:
        self.runs_dir = runs_dir
        self.target = target  # what the process runs, target(values, out, send): run_training
        self.job: Job | None = None
        self._lock = threading.Lock()
        self._context = multiprocessing.get_context("spawn")

    def start(self, request: TrainingRequest) -> Job:
        """Start training ``request`` in a new process; Busy while another one runs."""
        with self._lock:
            if self.job is not None and not self.job.finished:
                raise Busy(f"a training is running already ({self.job.name}): wait for it or stop it")
            if request.points is not None:
                write_drawing(drawing_csv(self.runs_dir, request.name), request.points)
            queue = self._context.Queue()
            values = request.config_values(self.runs_dir)
            out = str(self.runs_dir / request.name)
            process = self._context.Process(target=_process_main, args=(self.target, values, out, queue), daemon=True)
            process.start()
            self.job = Job(request.name, process)
            self.job.pump = threading.Thread(target=_pump, args=(self.job, queue), daemon=True)
            self.job.pump.start()
            return self.job

    def stop(self, signum: int = signal.SIGINT) -> bool:
        """Ask the running training to stop (it checkpoints first); False when none runs."""
        job = self.job
        if job is None or job.finished or not job.process.is_alive() or job.process.pid is None:
            return False
        try:
            os.kill(job.process.pid, signum)
        except ProcessLookupError:  # it ended meanwhile
            return False
        return True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the running training (SIGTERM: it saves a checkpoint) and wait for it; kill it past ``timeout``."""
        job = self.job
        if job is None:
            return
        self.stop(signal.SIGTERM)
        job.process.join(timeout)
        if job.process.is_alive():
            job.process.kill()
            job.process.join()
        if job.pump is not None:
            job.pump.join(5)  # its last event read, the queue is closed and let go


def _pump(job: Job, queue: Any) -> None:
    """Move the process's events to ``job`` until its final one; a process that dies without one (killed, out of
    memory) ends with an "error" event saying so."""
    try:
        _move_events(job, queue)
    finally:
        queue.close()


def _move_events(job: Job, queue: Any) -> None:
    while True:
        try:
            event = queue.get(timeout=0.2)
        except Empty:
            if job.process.is_alive():
                continue
            try:  # the process is gone: what it put before dying is there now, or never will be
                event = queue.get(timeout=1.0)
            except Empty:
                code = job.process.exitcode
                job.events.append({"kind": "error", "message": f"the training process stopped (exit code {code})"})
                return
        if event["kind"] in FINAL:
            job.process.join(30)  # "done" is said once the process has ended: a next training may start
            job.events.append(event)
            return
        job.events.append(event)
