"""The dataset registry and the original's point sets."""

import numpy as np
import pytest

from tiny_diffusion.data import DATASETS, get_dataset
from tiny_diffusion.errors import UsageError


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_is_deterministic_finite_and_of_its_dimension(name):
    ds = get_dataset(name)
    a, b, c = ds.sample(300, seed=3), ds.sample(300, seed=3), ds.sample(300, seed=4)
    assert a.shape == (300, ds.dim) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert ds.description and ds.description != name


def test_dino_matches_the_original_scaling_and_jitter():
    ds = get_dataset("dino")
    support = ds.support()
    assert support.shape == (142, 2)
    # raw Datasaurus dino: x in [22.3, 98.2], y in [2.9, 99.5]; the original maps x -> (x/54 - 1) * 4
    assert support[:, 0].min() == pytest.approx((22.3077 / 54 - 1) * 4, abs=1e-3)
    assert support[:, 1].max() == pytest.approx((99.4872 / 48 - 1) * 4, abs=1e-3)
    points = ds.sample(8000, seed=42)
    # jitter 0.15 in raw units is about 0.012 after scaling: every point sits next to a support point
    nearest = np.min(np.linalg.norm(points[:, None, :] - support[None, :, :], axis=-1), axis=1)
    assert np.median(nearest) == pytest.approx(0.15 * 4 / 51 * np.sqrt(np.log(4)), rel=0.15)
    assert nearest.max() < 0.08


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(UsageError, match="choose from .*dino"):
        get_dataset("dinosaur")


def test_dataset_refuses_empty_draws():
    with pytest.raises(UsageError):
        get_dataset("moons").sample(0)
