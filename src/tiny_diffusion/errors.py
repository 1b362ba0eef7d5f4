"""The project's own error type: what the command line reports in one line with exit code 2."""


class UsageError(ValueError):
    """Bad input from the user (an unknown name, a bad number, a missing or corrupt file). A ``ValueError``, so
    code that catches those catches these too; the command line prints its message in one line (exit code 2)."""
