"""The project's own error type: what the command line reports in one line with exit code 2."""


class UsageError(Exception):
    """Bad input from the user (an unknown name, a bad number, a missing or corrupt file)."""
