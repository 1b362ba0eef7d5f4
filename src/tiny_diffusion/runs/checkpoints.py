"""Checkpoints: the whole training state at one step, written so that a stopped run carries on with the same bits.

The checkpoint of step S is two files in the unfinished run's ``checkpoints/`` folder (see ``staging``):

    step-0000000S.safetensors  every tensor: weights, EMA, optimizer moments, the state vectors of the generators
                               (training's, and torch's, numpy's and python's own), this epoch's permutation, the
                               losses and per-epoch seconds so far, the snapshots drawn so far
    step-0000000S.json         everything else (step, epoch and batch counters, the learning-rate scheduler, the
                               optimizer's settings), the size and sha256 of the tensors file, and a checksum of its
                               own (``integrity.seal``)

Each is written atomically (temporary file, fsync, rename, fsync of the folder), the tensors first and the JSON
last, so a checkpoint without its JSON is unfinished and never used. The newest ``keep`` are kept. Reading one
checks every record; resuming falls back to the checkpoint before one that fails and says so.

Under torchrun rank 0 alone writes and reads checkpoints; a checkpoint it reads reaches the other processes in the
same two forms, JSON and safetensors bytes (``shared``), so every process resumes from the same state.

Nothing is unpickled: tensors come from safetensors, the rest from JSON. Nested state (an optimizer's state dict) is
flattened: each tensor becomes ``{"__tensor__": key}`` and is stored under that key; tuples and dicts whose keys are
not strings (an optimizer's parameter numbers) are tagged, so they come back as they were.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..core.distributed import SINGLE, Cluster
from ..core.training import TrainState
from ..errors import UsageError
from .files import write_atomic
from .integrity import Corrupt, check_file, record, seal, unseal
from .interrupts import Interrupted, Signals, signal_name
from .policy import DEFAULT_EVERY, DEFAULT_KEEP, CheckpointPolicy

__all__ = [
    "CheckpointPolicy",
    "DEFAULT_EVERY",
    "DEFAULT_KEEP",
    "Checkpointer",
    "flatten",
    "unflatten",
    "rng_states",
    "set_rng_states",
    "save_checkpoint",
    "read_checkpoint",
    "checkpoint_steps",
    "load_latest_checkpoint",
    "resume_state",
]

TENSOR, TUPLE, ITEMS = "__tensor__", "__tuple__", "__items__"
_NAME = re.compile(r"step-(\d+)\.json")


def flatten(value: Any, tensors: dict[str, torch.Tensor], key: str = "") -> Any:
    """``value`` as JSON-ready data, each tensor moved into ``tensors`` under its path (``/optimizer/state/0/...``)."""
    if isinstance(value, torch.Tensor):
        if key in tensors:
            raise ValueError(f"two tensors at {key!r}")
        tensors[key] = value.detach().cpu().contiguous()
        return {TENSOR: key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: flatten(v, tensors, f"{key}/{k}") for k, v in value.items()}
        return {ITEMS: [[k, flatten(v, tensors, f"{key}/{k}")] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [flatten(v, tensors, f"{key}/{i}") for i, v in enumerate(value)]
        return {TUPLE: items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} (at {key!r})")


def unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of ``flatten``."""
    if isinstance(value, dict):
        if set(value) == {TENSOR}:
            return tensors[value[TENSOR]]
        if set(value) == {TUPLE}:
            return tuple(unflatten(v, tensors) for v in value[TUPLE])
        if set(value) == {ITEMS}:
            return {k: unflatten(v, tensors) for k, v in value[ITEMS]}
        return {k: unflatten(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [unflatten(v, tensors) for v in value]
    return value


def rng_states() -> dict[str, Any]:
    """The process-wide generators: torch's default one, numpy's legacy one and python's ``random`` (their long
    state vectors as tensors, which keeps the JSON record short)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    version, words, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": position,
            "has_gauss": has_gauss,
            "cached": cached,
        },
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["words"].tolist()), python_state["gauss"]))


def _stem(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_steps(folder: Path) -> list[int]:
    """The steps of the checkpoints in ``folder`` that have their JSON record, newest first (not yet verified)."""
    if not folder.is_dir():
        return []
    return sorted((int(m[1]) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))), reverse=True)


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], *, keep: int) -> None:
    """Write the checkpoint of ``step`` (tensors first, its sealed JSON record last), then keep the newest ``keep``."""
    tensors: dict[str, torch.Tensor] = {}
    flat = flatten(state, tensors)
    data = save_safetensors(tensors)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{_stem(step)}.safetensors", data)
    write_atomic(folder / f"{_stem(step)}.json", seal({"step": step, "tensors": record(data), "state": flat}))
    kept = {f"{_stem(s)}{suffix}" for s in checkpoint_steps(folder)[:keep] for suffix in (".json", ".safetensors")}
    for path in folder.iterdir():  # older checkpoints, and any half-written leftovers of a killed process
        if path.name not in kept:
            path.unlink(missing_ok=True)


def read_checkpoint(folder: Path, step: int) -> dict[str, Any]:
    """The state saved at ``step``, once both files match their records; Corrupt (one line) otherwise."""
    path = folder / f"{_stem(step)}.json"
    doc = unseal(path)
    if doc.get("step") != step or not isinstance(doc.get("tensors"), dict) or not isinstance(doc.get("state"), dict):
        raise Corrupt(f"{path} is corrupt: it is not the record of step {step}")
    tensors_path = folder / f"{_stem(step)}.safetensors"
    data = check_file(tensors_path, doc["tensors"])
    try:
        return unflatten(doc["state"], load_safetensors(data))
    except (SafetensorError, KeyError, TypeError, ValueError) as e:
        raise Corrupt(f"{tensors_path} cannot be read: {e}") from None


def load_latest_checkpoint(folder: Path, *, report: Callable[[str], None]) -> tuple[int, dict[str, Any]] | None:
    """(step, state) of the newest checkpoint that is intact, or None when there is none. Each one that fails its
    records is reported and removed, so that it neither crowds out good ones nor is tried again."""
    for step in checkpoint_steps(folder):
        try:
            return step, read_checkpoint(folder, step)
        except Corrupt as e:
            report(f"{e}; removed the checkpoint of step {step} and fell back to the one before")
            for suffix in (".json", ".safetensors"):
                (folder / f"{_stem(step)}{suffix}").unlink(missing_ok=True)
    return None


def shared(found: tuple[int, dict[str, Any]] | None, cluster: Cluster) -> tuple[int, dict[str, Any]] | None:
    """Rank 0's (step, state) of a checkpoint (or its None), on every process: sent as JSON and safetensors bytes,
    as a checkpoint is stored (never pickled)."""
    if not cluster.distributed:
        return found
    doc, data = b"", b""
    if cluster.is_main and found is not None:
        tensors: dict[str, torch.Tensor] = {}
        doc = json.dumps({"step": found[0], "state": flatten(found[1], tensors)}).encode()
        data = save_safetensors(tensors)
    doc, data = cluster.broadcast_bytes(doc), cluster.broadcast_bytes(data)
    if not doc:
        return None
    value = json.loads(doc)
    return value["step"], unflatten(value["state"], load_safetensors(data))


def resume_state(
    folder: Path, state: TrainState, *, report: Callable[[str], None], cluster: Cluster = SINGLE
) -> tuple[int, dict[str, Any]]:
    """Load the newest intact checkpoint in ``folder`` into ``state`` and the process's generators; return its step
    and what the caller added to it (``Checkpointer``'s ``extra``), or (0, {}) when there is none. Under torchrun
    rank 0 reads (and reports) and every process takes up what it read."""
    found = shared(cluster.on_main(lambda: load_latest_checkpoint(folder, report=report)), cluster)
    if found is None:
        return 0, {}
    step, saved = found
    try:
        state.load_state_dict(saved["train"])
        set_rng_states(saved["rng"])
        return step, saved["run"]
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # intact, but not of this run or this version
        raise UsageError(f"cannot restore the checkpoint of step {step} in {folder}: {e!r}") from None


class Checkpointer:
    """The training loop's ``checkpoint`` hook: saves as ``policy`` says, and when a signal arrived (then stops
    training with ``Interrupted``). ``extra()`` adds what the caller accumulates (snapshots) to each one.

    Under torchrun the processes decide together after every step: all stop at the step where any of them has seen
    a signal, and all check the state whenever any of them finds a checkpoint due; rank 0 writes it."""

    def __init__(
        self,
        folder: Path,
        policy: CheckpointPolicy,
        *,
        signals: Signals | None,
        extra: Callable[[], dict[str, Any]],
        saved_step: int = 0,
        saved_seconds: float = 0.0,
        cluster: Cluster = SINGLE,
    ) -> None:
        self.folder, self.policy, self.signals, self.extra = folder, policy, signals, extra
        self.saved_step, self.saved_seconds = saved_step, saved_seconds  # of the newest saved (or resumed from)
        self.cluster = cluster

    def __call__(self, state: TrainState) -> None:
        received = self.signals.received if self.signals is not None else None
        due = self.policy.due(state.step, state.seconds - self.saved_seconds)
        stop, due = self.cluster.any(received or 0, int(due))  # 0: no signal
        if stop or due:
            self.save(state)
        if stop:
            if self.signals is not None:
                self.signals.received = None  # acted on here
            raise Interrupted(
                f"interrupted by {signal_name(stop)} at step {state.step} of {state.total_steps}; "
                f"saved a checkpoint of that step",
                stop,
            )

    def save(self, state: TrainState) -> None:
        """Checkpoint ``state`` unless this step is saved already; a state that is not finite is never saved."""
        if state.step == self.saved_step:
            return
        state.check_finite()
        if self.cluster.is_main:
            save_checkpoint(
                self.folder,
                state.step,
                {"train": state.state_dict(), "rng": rng_states(), "run": self.extra()},
                keep=self.policy.keep,
            )
        self.saved_step, self.saved_seconds = state.step, state.seconds
