"""Flags from settings: one flag per TrainConfig field, in --help sections by kind, hyphen spellings shown and the
original's underscore spellings accepted; numbers refused in one line when they are not numbers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import Any

from ..config import FLAG_GROUPS, TrainConfig

__all__ = ["parse_int", "parse_float", "add_flag", "flag_groups", "add_config_flags"]


def parse_int(text: str) -> int:
    """An integer flag's value; anything else is refused in one line (argparse names the flag)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def parse_float(text: str) -> float:
    """A number flag's value: a finite number (nan and inf are refused here, before any work starts)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **kwargs: Any) -> None:
    """The flag --NAME-WITH-DASHES, as --help shows it; the original's spelling --name_with_underscores is
    accepted too but not shown (a hidden second flag with the same destination)."""
    dest = name.replace("-", "_")
    parser.add_argument(f"--{dest.replace('_', '-')}", dest=dest, **kwargs)
    if "_" in dest:
        parser.add_argument(f"--{dest}", dest=dest, **{**kwargs, "help": argparse.SUPPRESS})


def flag_groups(
    parser: argparse.ArgumentParser, names: Sequence[str] | None = None
) -> dict[str, argparse._ArgumentGroup]:
    """A --help section per kind of setting (FLAG_GROUPS) that a field of ``names`` (default: all) belongs to."""
    wanted = {f.metadata["group"] for f in fields(TrainConfig) if names is None or f.name in names}
    return {key: parser.add_argument_group(f"{title} flags") for key, title in FLAG_GROUPS.items() if key in wanted}


def add_config_flags(
    parser: argparse.ArgumentParser,
    names: Sequence[str] | None = None,
    *,
    groups: dict[str, argparse._ArgumentGroup] | None = None,
) -> None:
    """One flag per TrainConfig field (or per field in ``names``), --help from the field, in the section of its
    kind (``groups``, default: new ones from ``flag_groups``); --num-epochs, and the original's --num_epochs."""
    groups = groups if groups is not None else flag_groups(parser, names)
    for f in fields(TrainConfig):
        if names is not None and f.name not in names:
            continue
        default = f.default if f.default is not MISSING else None
        shown = "" if default is None else f" (default: {default})"
        kwargs = {"default": None, "help": f"{f.metadata['help']}{shown}"}
        base = f.type.removeprefix("Optional[").removesuffix("]")
        if base == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": parse_int, "float": parse_float, "str": str}[base]
            kwargs["metavar"] = base.upper()
        if f.metadata["choices"]:
            kwargs["choices"] = f.metadata["choices"]
            kwargs.pop("metavar")
        add_flag(groups[f.metadata["group"]], f.name, **kwargs)
