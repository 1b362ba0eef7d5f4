"""Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM (``kill``, a cluster's time limit).

Inside ``caught_signals()`` either signal raises ``Interrupted``, whose exit code is the shell's 128 + the signal's
number (130 for SIGINT, 143 for SIGTERM). Inside ``signals.deferred()`` (the training loop) a signal is only noted:
the loop finishes its step, saves a checkpoint and then stops, so nothing done so far is lost.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Interrupted", "Signals", "caught_signals"]

CAUGHT = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Stopped by a signal; the message says what was kept and how to carry on."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message, signum)
        self.message, self.signum = message, signum

    def __str__(self) -> str:
        return self.message

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    """SIGINT, SIGTERM, ..."""
    return signal.Signals(signum).name


@dataclass
class Signals:
    """The signal received while deferring, if any."""

    received: int | None = None
    deferring: bool = False

    @contextmanager
    def deferred(self) -> Iterator[Signals]:
        """Note a signal instead of stopping; one that arrived after the last look stops on the way out."""
        self.deferring = True
        try:
            yield self
        finally:
            self.deferring = False
        if self.received is not None:
            raise Interrupted(f"interrupted by {signal_name(self.received)}", self.received)


@contextmanager
def caught_signals() -> Iterator[Signals]:
    """SIGINT and SIGTERM raise ``Interrupted`` (or are noted, while deferring) until the block ends. Handlers can
    only be installed in the main thread; elsewhere the signals keep their usual effect."""
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return

    def handle(signum: int, frame: object) -> None:
        if signals.deferring:
            signals.received = signum
        else:
            raise Interrupted(f"interrupted by {signal_name(signum)}", signum)

    previous = {signum: signal.signal(signum, handle) for signum in CAUGHT}
    try:
        yield signals
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
