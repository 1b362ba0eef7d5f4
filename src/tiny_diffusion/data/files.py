"""The user's own point files (.csv, .tsv, .npy, .npz) as (N, D) arrays and as datasets.

Every problem with a file is a UsageError of one line that names the file (and the line and column where it helps),
never a traceback from csv or numpy. Tables are read with the csv module: no pandas needed.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..errors import UsageError
from .registry import PointDataset

__all__ = ["POINT_FILE_SUFFIXES", "load_point_file", "load_labelled_points", "file_dataset"]

POINT_FILE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".npy", ".npz")
DATASET_COLUMN = "dataset"  # the column that names the sub-datasets of a long table (as in the Datasaurus Dozen)

_Row = tuple[int, list[str]]  # (line number in the file, stripped cells)


def _fail(path: Path, message: str) -> NoReturn:
    raise UsageError(f"point file {path}: {message}".replace("\n", "\\n").replace("\r", "\\r"))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _column_names(path: Path, columns: Sequence[str] | str | None) -> list[str] | None:
    if columns is None:
        return None
    names = columns.split(",") if isinstance(columns, str) else [str(c) for c in columns]
    names = [name.strip() for name in names]
    if not names or not all(names):
        _fail(path, f"empty column name in columns={columns!r}")
    return names


def load_point_file(
    path: str | os.PathLike, *, columns: Sequence[str] | str | None = None, subset: str | None = None
) -> np.ndarray:
    """The points stored in ``path`` as a float64 (N, D) array, N >= 2, all finite.

    .csv / .tsv: a header row is optional (it is one if any cell of the first row is not a number). ``columns``
    picks columns by header name or by 0-based index ("0", "1"; a string "x,y" is split at commas); without it,
    every column holding numbers is used, except a ``dataset`` column. ``subset`` keeps the rows whose ``dataset``
    cell equals it (a long table like the Datasaurus Dozen); a long table of several datasets needs one.
    .npy: a 2-D array of real numbers. .npz: exactly one array, or one named ``points``. ``columns`` are then
    indices.
    """
    return _load(Path(path), columns, subset)[0]


def load_labelled_points(
    path: str | os.PathLike, *, columns: Sequence[str] | str | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A long table's points (N, D) float64 with every row's sub-dataset: labels (N,) int64 indexing the names
    of the ``dataset`` column in order of first appearance (the classes). Checked as ``load_point_file``."""
    p = Path(path)
    points, row_names = _load(p, columns, None, every_subset=True)
    if row_names is None:
        _fail(p, f"has no {DATASET_COLUMN!r} column to take labels from")
    classes = tuple(dict.fromkeys(row_names))
    index = {name: k for k, name in enumerate(classes)}
    return points, np.array([index[name] for name in row_names], dtype=np.int64), classes


def _load(
    path: Path, columns: Sequence[str] | str | None, subset: str | None, *, every_subset: bool = False
) -> tuple[np.ndarray, list[str] | None]:
    """(points, each row's ``dataset`` cell or None) of a point file, checked (see ``load_point_file``)."""
    suffix = path.suffix.lower()
    if suffix not in POINT_FILE_SUFFIXES:
        _fail(path, f"unknown file type {suffix or '(no extension)'!r}; use one of {', '.join(POINT_FILE_SUFFIXES)}")
    if not path.exists():
        _fail(path, "does not exist")
    if not path.is_file():
        _fail(path, "is not a file")
    names = _column_names(path, columns)
    if suffix in (".csv", ".tsv"):
        points, row_names = _read_table(path, "," if suffix == ".csv" else "\t", names, subset, every_subset)
    else:
        points, row_names = _read_array(path, names, subset), None
    _check_row_count(path, len(points))
    return points, row_names


def _check_row_count(path: Path, rows: int) -> None:
    if rows < 2:
        _fail(path, f"has {rows} data row{'' if rows == 1 else 's'}; a point set needs at least 2")


# ---------------------------------------------------------------- tables


def _read_rows(path: Path, delimiter: str) -> list[_Row]:
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                cells = [cell.strip() for cell in row]
                if any(cells):  # blank lines are skipped
                    rows.append((reader.line_num, cells))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        _fail(path, f"cannot be read ({e})")
    if not rows:
        _fail(path, "is empty")
    width = len(rows[0][1])
    for line, cells in rows:
        if len(cells) != width:
            _fail(path, f"line {line} has {len(cells)} cells but line {rows[0][0]} has {width}")
    return rows


def _read_table(
    path: Path, delimiter: str, names: list[str] | None, subset: str | None, every_subset: bool
) -> tuple[np.ndarray, list[str] | None]:
    """The table's points and each kept row's ``dataset`` cell (None without that column). A table of several
    sub-datasets needs ``subset``, unless ``every_subset``."""
    rows = _read_rows(path, delimiter)
    first = rows[0][1]
    header = first if any(cell and not _is_number(cell) for cell in first) else None
    data = rows[1:] if header else rows
    width = len(first)
    label = (lambda j: f"column {header[j]!r}") if header else (lambda j: f"column {j}")  # noqa: E731
    lowered = [name.lower() for name in header] if header else []
    dataset_col = lowered.index(DATASET_COLUMN) if DATASET_COLUMN in lowered else None

    available = list(dict.fromkeys(cells[dataset_col] for _, cells in data)) if dataset_col is not None else []
    if subset is not None:
        if dataset_col is None:
            have = f"its columns are {', '.join(header)}" if header else "it has no header row"
            _fail(path, f"subset {subset!r} needs a column named {DATASET_COLUMN!r}, but {have}")
        if subset not in available:
            _fail(path, f"no subset {subset!r}; available: {', '.join(available)}")
        data = [(line, cells) for line, cells in data if cells[dataset_col] == subset]
    elif len(available) > 1 and not every_subset:
        _fail(
            path,
            f"holds several datasets ({', '.join(available)}); choose one with --subset, or train on all "
            "of them with --conditional",
        )

    _check_row_count(path, len(data))
    if names is None:  # every column holding numbers; one without any number (labels, say) is left out
        chosen = [j for j in range(width) if j != dataset_col and any(_is_number(c[j]) for _, c in data)]
        if not chosen:
            _fail(path, "has no column of numbers")
    else:
        chosen = [_table_column(path, name, header, width) for name in names]

    points = np.empty((len(data), len(chosen)))
    for i, (line, cells) in enumerate(data):
        for k, j in enumerate(chosen):
            cell = cells[j]
            if not _is_number(cell):
                _fail(path, f"line {line}, {label(j)}: {'empty cell' if not cell else repr(cell)} is not a number")
            points[i, k] = float(cell)
            if not math.isfinite(points[i, k]):
                _fail(path, f"line {line}, {label(j)}: {cell!r} is not a finite number")
    return points, [cells[dataset_col] for _, cells in data] if dataset_col is not None else None


def _table_column(path: Path, name: str, header: list[str] | None, width: int) -> int:
    if header and name in header:
        return header.index(name)
    if name.isdecimal() and int(name) < width:
        return int(name)
    if header:
        _fail(path, f"no column {name!r}; its columns are {', '.join(header)} (or indices 0..{width - 1})")
    _fail(path, f"no column {name!r}; it has no header row, so name columns by 0-based index 0..{width - 1}")


# ---------------------------------------------------------------- numpy arrays


def _read_array(path: Path, names: list[str] | None, subset: str | None) -> np.ndarray:
    if subset is not None:
        _fail(path, f"subset {subset!r} needs a table with a {DATASET_COLUMN!r} column; numpy files have none")
    try:
        loaded = np.load(path, allow_pickle=False)  # np.load goes by the file's content, not its name
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                array = _only_array(path, loaded)
        else:
            array = np.asarray(loaded)
    except UsageError:
        raise
    except Exception as e:  # numpy and zipfile raise a dozen types for damaged files; all mean the same here
        _fail(path, f"cannot be read as a numpy file ({type(e).__name__}: {e})")
    if array.ndim != 2 or array.shape[1] == 0:
        _fail(path, f"holds an array of shape {array.shape}; a point set needs a 2-D (N, D) array, D >= 1")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        _fail(path, f"holds values of type {array.dtype}; a point set needs real numbers")
    if names is not None:
        width = array.shape[1]
        for name in names:
            if not (name.isdecimal() and int(name) < width):
                _fail(path, f"no column {name!r}; a numpy array's columns are 0-based indices 0..{width - 1}")
        array = array[:, [int(name) for name in names]]
    points = array.astype(np.float64)
    bad = np.argwhere(~np.isfinite(points))
    if len(bad):
        i, j = bad[0]
        _fail(path, f"row {i}, column {j} (0-based) is {points[i, j]}; every value must be finite")
    return points


def _only_array(path: Path, archive) -> np.ndarray:
    names = list(archive.files)
    if len(names) == 1:
        return archive[names[0]]
    if "points" in names:
        return archive["points"]
    held = f"arrays {', '.join(names)}" if names else "no arrays"
    _fail(path, f"holds {held}; it needs exactly one array, or one named 'points'")


# ---------------------------------------------------------------- as a dataset


def file_dataset(
    path: str | os.PathLike,
    *,
    columns: Sequence[str] | str | None = None,
    subset: str | None = None,
    labelled: bool = False,
) -> PointDataset:
    """A dataset of a point file's rows: ``make(n, seed)`` draws n rows with replacement (no jitter); the support
    is the file's points. With ``labelled``, every sub-dataset of a long table, each row labelled with its own
    (``subset`` does not apply). The file is read and checked once, here."""
    if labelled:
        points, labels, classes = load_labelled_points(path, columns=columns)
    else:
        points, labels, classes = load_point_file(path, columns=columns, subset=subset), None, ()
    name = str(path)

    def draw(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
        rows = np.random.default_rng(seed).integers(0, len(points), n)
        return points[rows], labels[rows]

    def make(n: int, seed: int = 42) -> np.ndarray:
        return points[np.random.default_rng(seed).integers(0, len(points), n)]

    def support() -> np.ndarray:
        return points.copy()

    of = f"{name} (subset {subset!r})" if subset is not None and not labelled else name
    description = f"the {len(points)} {points.shape[1]}-D points of {of}, drawn with replacement, no jitter"
    spread = points.std(axis=0)  # (D,) the metrics' unit: radii in standard deviations, whatever the file's units
    return PointDataset(
        name,
        points.shape[1],
        make,
        description,
        support,
        labelled=draw if labelled else None,
        classes=classes,
        unit=np.where(spread > 0, spread, 1.0),
    )
