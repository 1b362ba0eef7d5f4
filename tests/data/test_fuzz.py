"""Fuzzed inputs (hypothesis): every point file, IDX file, config mapping, config file and train command line either
loads correctly or fails with UsageError and a readable one-line message; never another exception, a hang or a file
left behind."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import string
import uuid
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_image_data import IDX_CODES, idx_bytes

from tiny_diffusion.cli.config_file import load_config_file
from tiny_diffusion.cli.main import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.data.files import load_point_file
from tiny_diffusion.data.images import read_idx
from tiny_diffusion.errors import UsageError

# bounded so the default suite stays quick; no example database, so nothing is written into the checkout
FUZZ = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, suffix: str, data: bytes | str) -> Path:
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return path


def _refused_in_one_line(error: UsageError, prefix: str = "") -> None:
    message = str(error)
    assert message and "\n" not in message and "\r" not in message and message.startswith(prefix), message


def _load_points(path: Path, **options) -> np.ndarray | None:
    """The points, checked to be a proper point set, or None when refused in one line."""
    try:
        points = load_point_file(path, **options)
    except UsageError as e:
        _refused_in_one_line(e, "point file ")
        return None
    assert points.dtype == np.float64 and points.ndim == 2 and points.shape[0] >= 2 and points.shape[1] >= 1
    assert np.isfinite(points).all()
    return points


def _damaged(data: bytes, draw) -> bytes:
    """``data`` with some bytes flipped, cut short or extended (or left alone)."""
    how = draw(st.sampled_from(["none", "flip", "truncate", "append"]))
    if how == "flip" and data:
        changed = bytearray(data)
        for where in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=4)):
            changed[where] ^= draw(st.integers(1, 255))
        return bytes(changed)
    if how == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "append":
        return data + draw(st.binary(min_size=1, max_size=16))
    return data


# ---------------------------------------------------------------- tables

CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", " ", "x", "dataset", "dino", "nan", "-inf", "1e999", '"', '"1"', "1_0", "٣", "\0", "1,2"]),
    st.text(max_size=6),
)


@st.composite
def tables(draw) -> tuple[str, str]:
    """(suffix, text): rows of cells that are mostly numbers, with some junk; any separators and line endings."""
    suffix = draw(st.sampled_from([".csv", ".tsv"]))
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width + draw(st.integers(0, 1))), max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return suffix, newline.join(delimiter.join(row) for row in rows) + draw(st.sampled_from(["", newline]))


@FUZZ
@given(
    table=tables(),
    columns=st.none() | st.sampled_from(["0", "1,0", "x", "dataset", "", "7", "0,,1"]),
    subset=st.none() | st.sampled_from(["dino", "", "x"]),
)
def test_any_table_loads_or_is_refused_in_one_line(folder, table, columns, subset):
    suffix, text = table
    _load_points(_write(folder, suffix, text), columns=columns, subset=subset)


@FUZZ
@given(suffix=st.sampled_from([".csv", ".tsv"]), data=st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_as_a_table_load_or_are_refused_in_one_line(folder, suffix, data):
    _load_points(_write(folder, suffix, data))


@FUZZ
@given(
    points=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 12), st.integers(1, 4)),
        elements=st.floats(allow_nan=False, allow_infinity=False),
    ),
    suffix=st.sampled_from([".csv", ".tsv"]),
    header=st.booleans(),
)
def test_a_table_of_numbers_loads_exactly(folder, points, suffix, header):
    delimiter = "," if suffix == ".csv" else "\t"
    lines = [delimiter.join(f"c{j}" for j in range(points.shape[1]))] if header else []
    lines += [delimiter.join(repr(float(v)) for v in row) for row in points]
    np.testing.assert_array_equal(_load_points(_write(folder, suffix, "\n".join(lines))), points)


# ---------------------------------------------------------------- numpy files

ARRAYS = hnp.arrays(
    st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex64, "U3", "M8[s]"]),
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
)


@st.composite
def numpy_files(draw) -> tuple[str, bytes, np.ndarray | None]:
    """(suffix, bytes, the array a reader must return when the bytes are undamaged and hold a point set)."""
    buffer = io.BytesIO()
    if draw(st.booleans()):
        array = draw(ARRAYS)
        np.save(buffer, array)
        suffix, arrays = ".npy", [array]
    else:
        names = draw(st.lists(st.sampled_from(["points", "a", "b"]), max_size=3, unique=True))
        arrays = [draw(ARRAYS) for _ in names]
        (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **dict(zip(names, arrays)))
        suffix = ".npz"
        if len(names) > 1:
            arrays = [arrays[names.index("points")]] if "points" in names else []
    data = buffer.getvalue()
    damaged = _damaged(data, draw)
    expected = arrays[0] if len(arrays) == 1 and damaged == data else None
    return suffix, damaged, expected


@FUZZ
@given(file=numpy_files())
def test_any_numpy_file_loads_or_is_refused_in_one_line(folder, file):
    suffix, data, array = file
    points = _load_points(_write(folder, suffix, data))
    if array is not None and points is not None:
        np.testing.assert_array_equal(points, array.astype(np.float64))
    if (
        array is not None
        and array.ndim == 2
        and array.shape[0] >= 2
        and array.shape[1] >= 1
        and array.dtype.kind in "fiu"
        and np.isfinite(array.astype(np.float64)).all()
    ):
        assert points is not None  # a proper point set is never refused


# ---------------------------------------------------------------- IDX files


@st.composite
def idx_files(draw) -> tuple[bytes, np.ndarray | None]:
    """(bytes, the array read_idx must return when they are undamaged): gzip-compressed or not."""
    dtype = draw(st.sampled_from(list(IDX_CODES)))
    array = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)))
    data = idx_bytes(array)
    compress = draw(st.booleans())
    if compress and draw(st.booleans()):  # damage the compressed stream
        original = gzip.compress(data)
        damaged = _damaged(original, draw)
        return damaged, array if damaged == original else None
    damaged = _damaged(data, draw)
    return gzip.compress(damaged) if compress else damaged, array if damaged == data else None


@FUZZ
@given(file=idx_files() | st.binary(max_size=64).map(lambda b: (b, None)), suffix=st.sampled_from(["", ".gz"]))
def test_any_idx_file_loads_or_is_refused_in_one_line(folder, file, suffix):
    data, array = file
    path = _write(folder, suffix, data)
    try:
        got = read_idx(path)
    except UsageError as e:
        _refused_in_one_line(e, "IDX file ")
        assert array is None or (suffix == ".gz" and not data.startswith(b"\x1f\x8b"))
        return
    assert isinstance(got, np.ndarray) and got.dtype.isnative
    if array is not None:
        np.testing.assert_array_equal(got, array)


# ---------------------------------------------------------------- configuration

FIELDS = [f.name for f in fields(TrainConfig)]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["dino", "digits8", "moons", "a.csv", "ddim", "cosine", "unet", "mlp", "v"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
KEYS = st.sampled_from(FIELDS) | st.sampled_from(FIELDS).map(lambda k: k.replace("_", "-")) | st.text(max_size=8)


def _config_or_refused(values: dict) -> TrainConfig | None:
    try:
        return TrainConfig.from_dict(values).validate()
    except UsageError as e:
        _refused_in_one_line(e)
        return None


@FUZZ
@given(values=st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_mapping_is_a_valid_config_or_refused_in_one_line(values):
    config = _config_or_refused(values)
    if config is not None:
        assert TrainConfig.from_dict(config.to_dict()) == config  # what a run records reads back the same


@FUZZ
@given(values=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6), form=st.sampled_from([".json", ".yaml"]))
def test_a_config_file_reads_back_what_was_written(folder, values, form):
    assume(all(v == v for v in values.values()))  # NaN never equals itself
    text = json.dumps(values) if form == ".json" else yaml.safe_dump(values)
    assert load_config_file(_write(folder, form, text)) == values
    _config_or_refused(values)


@FUZZ
@given(
    suffix=st.sampled_from([".toml", ".yaml", ".yml", ".json", ".txt", ""]),
    data=st.binary(max_size=120)
    | st.text(max_size=120)
    | st.sampled_from(
        [
            "a = 1",
            "[x]\ny = 2",
            "!!python/object/apply:os.system ['true']",
            "{a: *b}",
            "- 1",
            "a: 2001-01-01",
            "seed: .inf",
            '{"seed": 1e999}',
            "num_epochs = 1e3",
            "\ufeff{}",
            "learning_rate: .nan",
        ]
    ),
)
def test_any_config_file_is_read_or_refused_in_one_line(folder, suffix, data):
    path = _write(folder, suffix, data)
    try:
        values = load_config_file(path)
    except UsageError as e:
        _refused_in_one_line(e)
        return
    assert isinstance(values, dict)
    _config_or_refused(values)


# ---------------------------------------------------------------- the train command line

TRAIN_FLAGS = (
    [f"--{name}" for name in FIELDS]
    + [f"--{name.replace('_', '-')}" for name in FIELDS]
    + [
        "--quiet",
        "--checkpoint-every",
        "--keep-checkpoints",
        "--resume",
        "--config",
        "--no-clip-sample",
        "--num",
        "-x",
        "--",
    ]
)
TOKENS = st.one_of(
    st.sampled_from(TRAIN_FLAGS),
    st.integers(-5, 10**6).map(str),
    st.floats().map(repr),
    st.sampled_from(["dino", "digits8", "ddim", "cosine", "unet", "seed-cnn", "a.csv", "x.toml", "0"]),
    st.text(alphabet=string.printable, max_size=6),
)


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory) -> Path:
    """A complete run: a valid command line into it stops at "already exists", before any training."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert (
        main(
            [
                "train",
                "--num-samples",
                "64",
                "--train-batch-size",
                "32",
                "--num-epochs",
                "1",
                "--num-timesteps",
                "5",
                "--embedding-size",
                "4",
                "--hidden-size",
                "4",
                "--eval-batch-size",
                "8",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


@FUZZ
@given(argv=st.lists(TOKENS, max_size=8))
def test_any_train_command_line_is_refused_in_one_line_or_reaches_the_run(complete_run, argv):
    before = sorted(p.name for p in complete_run.parent.iterdir())
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["train", *argv, "--out", str(complete_run)])
        except SystemExit as e:  # argparse: the error in one line too, no usage
            code = e.code
            assert code == 2 and err.getvalue().count("\n") == 1, err.getvalue()
            assert err.getvalue().startswith("tiny-diffusion: error: ")
        else:
            assert code == 2 and err.getvalue().count("\n") == 1, err.getvalue()
            assert err.getvalue().startswith("tiny-diffusion: error: ")
    assert sorted(p.name for p in complete_run.parent.iterdir()) == before  # nothing written, no lock left
