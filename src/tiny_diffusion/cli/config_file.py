"""``--config FILE``: the settings of a run read from a TOML, YAML or JSON file whose keys are the flags' names."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["load_config_file"]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON mapping of flag names to values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"config file {path} is not UTF-8 text: {e.reason} at byte {e.start}") from None
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            raise UsageError(f"config file {path} must end in .toml, .yaml, .yml or .json")
    except UsageError:
        raise
    except Exception as e:  # each parser has its own error type; all mean the same to the user
        raise UsageError(f"cannot parse config file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UsageError(f"config file {path} must hold a mapping of option names to values")
    return values
