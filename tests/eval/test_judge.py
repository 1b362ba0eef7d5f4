"""The judge: Fréchet distance against closed forms, a small digits8 judge trained once, its metrics on real
images and noise, save/load with every kind of damage, and the cache."""

import hashlib
import json

import numpy as np
import pytest
import torch

import tiny_diffusion.eval.judge_training as judge_training
from tiny_diffusion.data.images import get_image_dataset
from tiny_diffusion.errors import UsageError
from tiny_diffusion.eval.image_metrics import class_histogram, image_metrics
from tiny_diffusion.eval.judge import CACHE_ENV, Judge, JudgeNet, get_judge, judge_path, load_judge
from tiny_diffusion.eval.judge_training import _random_shift, train_judge
from tiny_diffusion.eval.metrics import frechet_distance


def random_covariance(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d + 2))
    return a @ a.T / a.shape[1]


def frechet_by_eigenvalues(mu1, s1, mu2, s2) -> float:
    """An independent route: tr (s1 s2)^(1/2) = sum of sqrt of the eigenvalues of s1^(1/2) s2 s1^(1/2)."""
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross)


# ---------------------------------------------------------------- Fréchet distance


@pytest.mark.parametrize("d", [1, 3, 16])
def test_frechet_of_diagonal_gaussians_is_the_closed_form(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 2.0, d), rng.uniform(0.1, 2.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("d", [2, 10, 64])
def test_frechet_of_full_covariances_matches_the_eigenvalue_route_and_is_symmetric(d):
    rng = np.random.default_rng(100 + d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_covariance(rng, d), random_covariance(rng, d)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert value == pytest.approx(frechet_by_eigenvalues(mu1, s1, mu2, s2), rel=1e-7)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(value, rel=1e-7)


def test_frechet_is_zero_for_identical_gaussians_even_singular_ones():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=32)
    for sigma in (random_covariance(rng, 32), random_covariance(rng, 32, rank=5)):  # the second is singular
        assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-5)


def test_frechet_of_singular_covariances_is_finite_and_close_to_exact():
    rng = np.random.default_rng(1)  # fewer points than dimensions, as with few samples and many features
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    s1, s2 = random_covariance(rng, 20, rank=6), random_covariance(rng, 20, rank=6)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value) and value == pytest.approx(frechet_by_eigenvalues(mu1, s1, mu2, s2), rel=1e-3)


@pytest.mark.parametrize(
    "args",
    [
        (np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)),
        (np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)),
        (np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3)),
        (np.array([0.0, np.nan, 0.0]), np.eye(3), np.zeros(3), np.eye(3)),
    ],
)
def test_frechet_refuses_mismatched_or_non_finite_statistics(args):
    with pytest.raises(UsageError):
        frechet_distance(*args)


# ---------------------------------------------------------------- the network and its augmentation


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 12, 20)])
def test_judge_net_takes_any_image_size(shape):
    net = JudgeNet(shape[0], num_classes=7, feature_dim=96)
    x = torch.zeros(5, *shape)
    assert net.features(x).shape == (5, 96)
    assert net(x).shape == (5, 7)


def test_random_shift_moves_each_image_by_at_most_the_shift_and_fills_with_background():
    x = torch.full((200, 1, 9, 9), -1.0)
    x[:, 0, 4, 4] = 1.0  # one lit pixel in the middle
    shifted = _random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    lit = (shifted == 1.0).nonzero()[:, 2:]  # (200, 2) row, col of each image's lit pixel
    assert len(lit) == 200 and ((shifted == 1.0) | (shifted == -1.0)).all()
    offsets = lit - 4
    assert offsets.abs().max() == 2 and len(torch.unique(offsets, dim=0)) == 25  # all 5 x 5 shifts occur


# ---------------------------------------------------------------- a trained judge


@pytest.fixture(scope="module")
def digits8():
    ds = get_image_dataset("digits8")
    return ds.images("train"), ds.images("test")


@pytest.fixture(scope="module")
def judge() -> Judge:
    return train_judge("digits8", epochs=3, progress=False)


def test_train_judge_on_digits8_is_accurate(judge):
    assert judge.test_accuracy > 0.85
    assert judge.shape == (1, 8, 8) and judge.dataset == "digits8" and not judge.net.training


def test_train_judge_is_deterministic_given_the_seed_and_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    a, b = (train_judge("digits8", epochs=1, seed=3, progress=False) for _ in range(2))
    c = train_judge("digits8", epochs=1, seed=4, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    for key, value in a.net.state_dict().items():
        assert torch.equal(value, b.net.state_dict()[key]), key
    assert not torch.equal(a.net.head.weight, c.net.head.weight)


def test_train_judge_refuses_bad_settings():
    with pytest.raises(UsageError, match="epochs"):
        train_judge("digits8", epochs=0, progress=False)
    with pytest.raises(UsageError, match="unknown image dataset"):
        train_judge("nope", progress=False)


def test_real_images_score_about_their_floor(judge, digits8):
    (x, _), (x_test, _) = digits8
    n = len(x_test)
    m = image_metrics(judge, x[:n], real=x_test, floor_real=x[n : 2 * n])
    assert m["n"] == n
    assert 0 < m["frechet_floor"] and 0.5 < m["frechet"] / m["frechet_floor"] < 2
    assert m["confident"] > 0.7 and abs(m["confident"] - m["confident_floor"]) < 0.1
    assert m["class_entropy_bits"] > 3.2 and m["class_entropy_floor_bits"] > 3.2  # about log2(10) = 3.32


def test_noise_and_a_single_digit_score_much_worse(judge, digits8):
    (x, labels), (x_test, _) = digits8
    n = len(x_test)
    noise = np.random.default_rng(0).uniform(-1, 1, (n, 1, 8, 8)).astype(np.float32)
    m = image_metrics(judge, noise, real=x_test, floor_real=x[:n])
    assert m["frechet"] > 5 * m["frechet_floor"]
    assert m["confident"] < m["confident_floor"] - 0.3
    sevens = x[labels == 7][:100]  # mode collapse: perfect sevens, nothing else
    m = image_metrics(judge, sevens, real=x_test, floor_real=x[:n])
    assert m["n"] == 100 and m["class_entropy_bits"] < 0.5 and m["frechet"] > 3 * m["frechet_floor"]


def test_class_histogram_is_shares_of_the_predicted_classes(judge, digits8):
    _, (x_test, labels) = digits8
    shares = class_histogram(judge, x_test)
    assert shares.shape == (10,) and shares.sum() == pytest.approx(1.0)
    assert np.abs(shares - np.bincount(labels) / len(labels)).max() < 0.05


def test_image_metrics_takes_tensors_like_arrays(judge, digits8):
    (x, _), (x_test, _) = digits8
    from_arrays = image_metrics(judge, x[:50], real=x_test, floor_real=x[50:100])
    from_tensors = image_metrics(judge, torch.tensor(x[:50]), real=torch.tensor(x_test), floor_real=x[50:100])
    assert from_arrays == from_tensors


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((10, 1, 28, 28), np.float32), "shape"),
        (np.zeros((10, 8, 8), np.float32), "shape"),
        (np.zeros((0, 1, 8, 8), np.float32), "non-empty"),
        (np.full((10, 1, 8, 8), np.nan, np.float32), "non-finite"),
        (np.zeros((1, 1, 8, 8), np.float32), "at least 2"),
    ],
)
def test_image_metrics_refuses_bad_samples(judge, digits8, bad, match):
    (x, _), (x_test, _) = digits8
    with pytest.raises(UsageError, match=match):
        image_metrics(judge, bad, real=x_test, floor_real=x[:50])


def test_image_metrics_refuses_a_confidence_outside_0_1(judge, digits8):
    (x, _), (x_test, _) = digits8
    with pytest.raises(UsageError, match="confidence"):
        image_metrics(judge, x[:10], real=x_test, floor_real=x[10:20], confidence=1.0)


# ---------------------------------------------------------------- save and load


def test_save_and_load_reproduce_the_logits_exactly(judge, digits8, tmp_path):
    _, (x_test, _) = digits8
    path = judge.save(tmp_path / "sub" / "j.safetensors")
    meta = json.loads((tmp_path / "sub" / "j.json").read_text())
    assert meta["dataset"] == "digits8" and meta["shape"] == [1, 8, 8] and len(meta["sha256"]) == 64
    assert (meta["num_classes"], meta["feature_dim"]) == (10, 128)
    loaded = load_judge(path)
    assert (loaded.dataset, loaded.shape, loaded.test_accuracy) == (judge.dataset, judge.shape, judge.test_accuracy)
    assert not loaded.net.training
    x = torch.tensor(x_test)
    with torch.inference_mode():
        assert torch.equal(loaded.net(x), judge.net(x))


def assert_refused(path, match):
    with pytest.raises(UsageError, match=match) as refusal:
        load_judge(path)
    assert "\n" not in str(refusal.value)


def test_load_refuses_corrupt_weights(judge, tmp_path):
    path = judge.save(tmp_path / "j.safetensors")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_refused(path, "sha256")


def test_load_refuses_garbage_whose_hash_the_sidecar_was_made_to_match(judge, tmp_path):
    path = judge.save(tmp_path / "j.safetensors")
    path.write_bytes(b"not a safetensors file")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["sha256"] = hashlib.sha256(b"not a safetensors file").hexdigest()
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert_refused(path, "does not hold the weights")


def test_load_refuses_weights_of_another_judge(judge, tmp_path):
    path = judge.save(tmp_path / "j.safetensors")
    other = JudgeNet()
    Judge(other, "digits8", (1, 8, 8), 0.5).save(tmp_path / "other.safetensors")
    path.write_bytes((tmp_path / "other.safetensors").read_bytes())
    assert_refused(path, "sha256")


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda text: text[: len(text) // 2], "corrupt"),
        (lambda text: "", "corrupt"),
        (lambda text: "[1, 2]", "corrupt"),
        (lambda text: text.replace('"shape": [\n    1,\n    8,\n    8\n  ]', '"shape": [1, 8]'), "corrupt"),
        (lambda text: text.replace('"format": 1', '"format": 99'), "format"),
        (None, "sidecar"),
    ],
)
def test_load_refuses_a_damaged_or_missing_sidecar(judge, tmp_path, damage, match):
    path = judge.save(tmp_path / "j.safetensors")
    sidecar = path.with_suffix(".json")
    if damage is None:
        sidecar.unlink()
    else:
        text = sidecar.read_text()
        assert damage(text) != text
        sidecar.write_text(damage(text))
    assert_refused(path, match)


def test_load_of_nothing_says_so(tmp_path):
    assert_refused(tmp_path / "absent.safetensors", "no judge")


# ---------------------------------------------------------------- the cache


def test_judge_path_honours_the_argument_then_the_environment_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert judge_path("mnist5k") == tmp_path / "home" / ".cache" / "tiny-diffusion" / "judge" / "mnist5k.safetensors"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert judge_path("digits8") == tmp_path / "env" / "judge" / "digits8.safetensors"
    assert judge_path("digits8", tmp_path / "arg") == tmp_path / "arg" / "judge" / "digits8.safetensors"


@pytest.mark.parametrize("name", ["../escape", "", "a/b", ".hidden"])
def test_judge_path_refuses_names_that_are_not_file_names(name):
    with pytest.raises(UsageError):
        judge_path(name, "/tmp")


def test_get_judge_without_a_cached_judge_says_how_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(UsageError, match="tiny-diffusion judge train --dataset digits8"):
        get_judge("digits8")
    assert not (tmp_path / "judge").exists()


def test_get_judge_trains_once_then_loads_from_the_cache(judge, tmp_path, monkeypatch):
    calls = []

    def fake_train(dataset, **kwargs):
        calls.append(dataset)
        return judge

    monkeypatch.setattr(judge_training, "train_judge", fake_train)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    first = get_judge("digits8", train_if_missing=True, progress=False)
    assert calls == ["digits8"] and (tmp_path / "judge" / "digits8.safetensors").is_file()
    again = get_judge("digits8", train_if_missing=True)
    assert calls == ["digits8"] and again is not first
    x = torch.zeros(3, 1, 8, 8)
    with torch.inference_mode():
        assert torch.equal(again.net(x), judge.net(x))


def test_get_judge_refuses_a_cached_judge_of_another_dataset(judge, tmp_path):
    judge.save(judge_path("mnist5k", tmp_path))
    with pytest.raises(UsageError, match="not mnist5k"):
        get_judge("mnist5k", cache_dir=tmp_path)
