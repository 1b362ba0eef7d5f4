"""The project's own error types: what the command line reports in one line with exit code 2."""

from __future__ import annotations

import re
from typing import Any


class UsageError(ValueError):
    """Bad input from the user (an unknown name, a bad number, a missing or corrupt file). A ``ValueError``, so
    code that catches those catches these too; the command line prints its message in one line (exit code 2)."""


class SettingError(UsageError):
    """A bad value of a run setting. The message names the setting as Python does (``num_epochs``); ``flags()``
    names it as the command line does (``--num-epochs``), so each user reads the name they typed."""

    def __init__(self, message: str, *names: str) -> None:
        super().__init__(message)
        self.names = names  # the settings the message names

    def __reduce__(self) -> tuple[Any, ...]:  # picklable with its names (a study's worker process hands it back)
        return type(self), (str(self), *self.names)

    def flags(self) -> str:
        """The message with each setting named by its flag: num_epochs -> --num-epochs."""
        return as_flags(str(self), self.names)


class SettingWarning(UserWarning):
    """Settings that will train, but badly (a forward process that does not reach noise, data far from unit
    scale): issued through ``warnings.warn`` before training starts; the command line prints it in one line on
    stderr. Like ``SettingError``, the message names settings as Python does and ``flags()`` as the command line."""

    def __init__(self, message: str, *names: str) -> None:
        super().__init__(message)
        self.names = names

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), *self.names)

    def flags(self) -> str:
        """The message with each setting named by its flag: num_timesteps -> --num-timesteps."""
        return as_flags(str(self), self.names)


def as_flags(message: str, names: tuple[str, ...]) -> str:
    """``message`` with each setting of ``names`` named by its flag: num_epochs -> --num-epochs."""
    for name in names:
        message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", f"--{name.replace('_', '-')}", message)
    return message
