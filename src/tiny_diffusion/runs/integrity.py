"""Integrity: every file's size and sha256 recorded beside it, and checked before the file is trusted.

Two forms of record:

- a *manifest* (``manifest.json``) lists the files of a folder, ``{"files": {name: {"size", "sha256"}}}``;
- a *sealed* JSON document carries the checksum of its own content (a checkpoint's record, a manifest), so a changed
  byte inside the record itself is caught too.

A sealed document is written in one canonical form (sorted keys, one-space indent); reading it back checks that the
text is exactly that form and that the checksum matches, so any changed, added or missing byte is detected, even in
whitespace. Every problem is a ``Corrupt`` error of one line that names the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = [
    "MANIFEST",
    "Corrupt",
    "record",
    "check_bytes",
    "check_file",
    "seal",
    "unseal",
    "manifest",
    "read_manifest",
    "check_manifest",
]

MANIFEST = "manifest.json"
FORMAT = 1  # of manifests and sealed records; a reader refuses other versions rather than guess


class Corrupt(UsageError):
    """A file that does not match its recorded size or hash, or a record that fails its own checksum."""


def record(data: bytes) -> dict[str, Any]:
    """What is recorded of a file: its size in bytes and the sha256 of its content."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def check_bytes(path: Path, data: bytes, expected: dict[str, Any]) -> None:
    """Raise Corrupt unless ``data`` (the content of ``path``) has the recorded size and hash."""
    if len(data) != expected.get("size"):
        raise Corrupt(
            f"{path} is corrupt: {len(data)} bytes where {expected.get('size')} were recorded (truncated or changed)"
        )
    if hashlib.sha256(data).hexdigest() != expected.get("sha256"):
        raise Corrupt(f"{path} is corrupt: its sha256 differs from the one recorded (a changed byte)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise Corrupt(f"{path} is missing") from None
    except OSError as e:
        raise Corrupt(f"{path} cannot be read: {e.strerror or e}") from None


def check_file(path: Path, expected: dict[str, Any]) -> bytes:
    """The bytes of ``path`` once they match the record; Corrupt when missing, unreadable or different."""
    data = _read(path)
    check_bytes(path, data, expected)
    return data


def _canonical(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def seal(value: dict[str, Any]) -> bytes:
    """``value`` as canonical JSON with a ``checksum`` field: the sha256 of the canonical JSON of the rest."""
    body = {**value, "format": FORMAT}
    body.pop("checksum", None)
    return _canonical({**body, "checksum": hashlib.sha256(_canonical(body)).hexdigest()})


def unseal(path: Path) -> dict[str, Any]:
    """The sealed document in ``path`` (without its checksum), once its text and checksum are intact."""
    data = _read(path)
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Corrupt(f"{path} is corrupt: not JSON ({e})") from None
    if not isinstance(value, dict) or not isinstance(value.get("checksum"), str):
        raise Corrupt(f"{path} is corrupt: it has no checksum")
    if value.get("format") != FORMAT:
        raise Corrupt(f"{path} is corrupt or of another version: format {value.get('format')!r}, expected {FORMAT}")
    if _canonical(value) != data or seal(value) != data:
        raise Corrupt(f"{path} is corrupt: its content does not match its checksum")
    del value["checksum"], value["format"]
    return value


def manifest(folder: Path, names: Iterable[str]) -> bytes:
    """The content of a manifest of the named files of ``folder``: each one's size and sha256, sealed."""
    return seal({"files": {name: record((folder / name).read_bytes()) for name in sorted(names)}})


def read_manifest(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The file records of ``folder``'s manifest, checked against its own checksum; None when it has none."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    files = unseal(path).get("files")
    if not isinstance(files, dict) or not all(isinstance(r, dict) for r in files.values()):
        raise Corrupt(f"{path} is corrupt: no file records")
    return files


def check_manifest(folder: Path) -> list[str] | None:
    """Check every file ``folder``'s manifest lists (raises Corrupt at the first problem); return their names, or
    None when the folder has no manifest (a run from before manifests)."""
    files = read_manifest(folder)
    if files is None:
        return None
    for name, expected in files.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise Corrupt(f"{folder / MANIFEST} is corrupt: it names {name!r}, outside the folder")
        check_file(folder / name, expected)
    return list(files)
