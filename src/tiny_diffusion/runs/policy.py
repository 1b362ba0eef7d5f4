"""When training checkpoints: a policy read from --checkpoint-every and --keep-checkpoints. It changes nothing
training computes, so it is an option of ``train``, not a setting of the run; it needs no torch, so the command line
shows its defaults without loading it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError

__all__ = ["CheckpointPolicy", "DEFAULT_EVERY", "DEFAULT_KEEP", "DEFAULT_SECONDS"]

# Every 30 s of training: a kill loses at most that much (about 7,000 dino steps or 150 mnist5k steps with one thread
# on a 2-core CPU), and a checkpoint (25 to 70 ms there) costs well under 1% (README, "Interrupting and resuming").
DEFAULT_SECONDS = 30.0
DEFAULT_EVERY = f"{DEFAULT_SECONDS:g}s"  # as --checkpoint-every takes it
DEFAULT_KEEP = 2


@dataclass(frozen=True)
class CheckpointPolicy:
    """When to checkpoint: every ``steps`` optimiser steps, or every ``seconds`` of training (0 and 0: only when
    stopped by a signal, and at the end). None of it changes what training computes, so it is not a setting of the
    run."""

    steps: int = 0
    seconds: float = DEFAULT_SECONDS
    keep: int = DEFAULT_KEEP  # the newest this many stay on disk

    @classmethod
    def parse(cls, every: str, keep: int = DEFAULT_KEEP) -> CheckpointPolicy:
        """From --checkpoint-every STEPS (``200``) or SECONDS followed by s (``30s``), and --keep-checkpoints."""
        text = every.strip().lower()
        try:
            value = float(text[:-1]) if text.endswith("s") else int(text)
        except ValueError:
            raise UsageError(
                f"--checkpoint-every takes a number of steps (200) or of seconds (30s), got {every!r}"
            ) from None
        policy = cls(0, value, keep) if text.endswith("s") else cls(value, 0.0, keep)
        return policy.validate()

    def validate(self) -> CheckpointPolicy:
        """Refuse a negative or non-finite interval, or keeping none; returns self."""
        if self.steps < 0 or not 0 <= self.seconds < math.inf:
            raise UsageError("--checkpoint-every must be >= 0 (0 = only when interrupted)")
        if self.keep < 1:
            raise UsageError(f"--keep-checkpoints must be at least 1, got {self.keep}")
        return self

    def due(self, step: int, seconds_since: float) -> bool:
        """Whether a checkpoint is due after ``step``, ``seconds_since`` seconds of training after the last one."""
        return bool(self.steps and step % self.steps == 0) or bool(self.seconds and seconds_since >= self.seconds)

    def __str__(self) -> str:
        return f"every {self.steps} steps" if self.steps else f"every {self.seconds:g} s" if self.seconds else "none"
