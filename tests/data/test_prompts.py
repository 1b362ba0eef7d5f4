"""Conditional runs end to end: train with labels, ask for a class by prompt, draw every class and a guidance sweep,
and measure how well each class is drawn."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY_IMAGES, TINY_POINTS, flags, without_warnings
from tiny_diffusion.cli.main import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.core.training import TrainState, train
from tiny_diffusion.data.prompts import side_by_side
from tiny_diffusion.diffusion import balanced_labels
from tiny_diffusion.runs.job import train_run

POINTS = flags(
    TINY_POINTS, dataset="random", conditional=True, guidance=1, num_samples=512, eval_batch_size=40, quiet=True
)
IMAGES = flags(
    TINY_IMAGES,
    conditional=True,
    guidance=2,
    model="seed-cnn",
    num_epochs=1,
    sample_steps=4,
    num_samples=128,
    eval_batch_size=20,
    quiet=True,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", *POINTS, "--out", str(out / "points")]) == 0
    assert main(["train", *IMAGES, "--out", str(out / "images")]) == 0
    return out


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = without_warnings(capsys.readouterr().err)
    assert err.count("\n") == 1 and err.startswith("tiny-diffusion: error: ")
    return err


@pytest.mark.parametrize(
    "kind, classes", [("points", ["dino", "ring", "bar", "blobs"]), ("images", [str(d) for d in range(10)])]
)
def test_a_conditional_run_records_its_classes_and_the_label_of_each_sample(runs, kind, classes):
    run = runs / kind
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["conditional"] and meta["data"]["classes"] == classes
    labels = np.load(run / "labels.npy")
    np.testing.assert_array_equal(labels, np.arange(len(labels)) % len(classes))  # every class in turn
    assert "labels.npy" in json.loads((run / "manifest.json").read_text())["files"]
    assert main(["verify", str(run)]) == 0


def test_a_shape_prompt_writes_samples_and_their_picture(runs, capsys):
    assert main(["sample", str(runs / "points"), "--prompt", "Ring", "--num", "30"]) == 0
    out = runs / "points" / "prompt_ring_ddpm_seed0.npy"
    assert f"wrote 30 samples of shape 2 to {out} and {out.with_suffix('.png')}" in capsys.readouterr().out
    assert np.load(out).shape == (30, 2) and out.with_suffix(".png").stat().st_size > 0


@pytest.mark.parametrize("prompt, width", [("7", 8), ("seven", 8), ("2024", 32)])
def test_digit_prompts_draw_one_image_per_sample_a_number_digit_by_digit(runs, tmp_path, prompt, width):
    out = tmp_path / "digits.npy"
    assert (
        main(["sample", str(runs / "images"), "--prompt", prompt, "--num", "3", "--guidance", "0", "--out", str(out)])
        == 0
    )
    assert np.load(out).shape == (3, 1, 8, width)
    assert out.with_suffix(".png").exists()


def test_a_number_is_its_digits_drawn_from_the_same_noise_side_by_side(runs, tmp_path):
    """ "77" draws two sevens per sample; the first of each pair comes from the same noise as a lone "7" drawn
    with twice as many samples (sample k of "77" is samples 2k and 2k + 1 of the batch)."""
    pair, single = tmp_path / "77.npy", tmp_path / "7.npy"
    assert main(["sample", str(runs / "images"), "--prompt", "77", "--num", "2", "--out", str(pair)]) == 0
    assert main(["sample", str(runs / "images"), "--prompt", "7", "--num", "4", "--out", str(single)]) == 0
    sevens = np.load(single)  # (4, 1, 8, 8)
    np.testing.assert_array_equal(np.load(pair), side_by_side(sevens.reshape(2, 2, 1, 8, 8)))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--prompt", "star"], "unknown prompt 'star'; this run knows dino, ring, bar, blobs"),
        (["--prompt", "7"], "unknown prompt '7'; this run knows dino"),
        (["--guidance", "-1"], "--guidance must be >= 0"),
    ],
)
def test_bad_prompts_fail_in_one_line(runs, capsys, argv, message):
    assert message in _error(capsys, ["sample", str(runs / "points"), *argv])


def test_a_run_without_classes_refuses_prompts_and_class_pictures(tmp_path, capsys):
    run = tmp_path / "plain"
    assert main(["train", *POINTS, "--no-conditional", "--guidance", "0", "--out", str(run)]) == 0
    assert "needs a conditional run" in _error(capsys, ["sample", str(run), "--prompt", "dino"])
    assert "not a conditional run" in _error(capsys, ["plot", "classes", str(run)])
    assert "nothing to guide it" in _error(capsys, ["sample", str(run), "--guidance", "2"])


@pytest.mark.parametrize("kind", ["points", "images"])
def test_plot_classes_and_a_guidance_sweep(runs, tmp_path, capsys, kind):
    classes, sweep = tmp_path / f"{kind}_classes.png", tmp_path / f"{kind}_guidance.svg"
    assert main(["plot", "classes", str(runs / kind), "--per-class", "3", "--out", str(classes)]) == 0
    assert (
        main(["plot", "guidance", str(runs / kind), "--per-class", "2", "--scales", "0", "2", "--out", str(sweep)]) == 0
    )
    assert classes.stat().st_size > 0 and sweep.read_text().startswith("<?xml")
    assert "guidance scale must be >= 0" in _error(capsys, ["plot", "guidance", str(runs / kind), "--scales", "-1"])


def test_evaluate_scores_each_class_of_a_conditional_run(runs, capsys):
    assert main(["evaluate", str(runs / "points")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for name in ("dino", "ring", "bar", "blobs"):
        assert 0 <= metrics[f"{name}: precision@0.1"] <= 1
        assert metrics[f"{name}: precision@0.1_floor"] > 0.9  # a fresh draw of the shape lies on it
    assert main(["evaluate", str(runs / "images"), "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0 <= metrics["conditional_accuracy"] <= 1 and metrics["judge_test_accuracy"] > 0.8
    assert {f"accuracy_{k}" for k in range(10)} <= set(metrics)


def test_evaluate_refuses_labels_that_do_not_fit(runs, tmp_path, capsys):
    bad = tmp_path / "labels.npy"
    np.save(bad, np.full(40, 4))
    assert "labels from 4 to 4; the classes are 0..3" in _error(
        capsys, ["evaluate", str(runs / "points"), "--labels", str(bad)]
    )
    np.save(bad, np.zeros(3, dtype=int))
    assert "must hold (40,) integer labels" in _error(capsys, ["evaluate", str(runs / "points"), "--labels", str(bad)])


# ---------------------------------------------------------------- training


class _Recorder(torch.nn.Module):
    """A stand-in conditional model that records the labels it is given."""

    null_label = 3

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x, t, labels=None):
        self.seen.append(labels.clone())
        return x * self.weight


@pytest.mark.parametrize("cond_drop", [0.0, 0.25])
def test_training_drops_the_label_at_the_asked_rate(cond_drop):
    config = TrainConfig.from_dict(
        {
            "conditional": True,
            "cond_drop": cond_drop,
            "num_epochs": 20,
            "train_batch_size": 100,
            "num_samples": 400,
            "warmup_steps": 0,
        }
    ).validate()
    model, labels = _Recorder(), torch.arange(400) % 3
    state = TrainState.start(model, config, generator=torch.Generator().manual_seed(0), num_samples=400)
    train(state, NoiseSchedule(10), torch.randn(400, 2), config, labels=labels, progress=False)
    seen = torch.cat(model.seen)  # (80 steps * 100,)
    dropped = (seen == 3).float().mean().item()
    assert dropped == pytest.approx(cond_drop, abs=0.02)
    assert set(seen[seen != 3].tolist()) == {0, 1, 2}


def test_a_conditional_model_learns_which_blob_each_label_asks_for(tmp_path):
    config = TrainConfig.from_dict(
        {
            "dataset": "blobs",
            "conditional": True,
            "num_samples": 2000,
            "train_batch_size": 250,
            "num_epochs": 60,
            "num_timesteps": 50,
            "eval_batch_size": 500,
            "save_images_step": 60,
            "hidden_size": 64,
            "embedding_size": 32,
            "learning_rate": 2e-3,  # the settings this was measured with: T = 50 squashes the blobs a little
            "timestep_sampling": "uniform",
            "guidance": 1.0,
            "device": "cpu",
        }
    ).validate()
    summary = train_run(config, tmp_path / "blobs", progress=False)
    labels = balanced_labels(500, 5).numpy()
    centres = np.stack([summary.samples[labels == k].mean(axis=0) for k in range(5)])
    from tiny_diffusion.data.shapes import _BLOB_CENTERS

    assert np.linalg.norm(centres - _BLOB_CENTERS, axis=1).max() < 0.5  # each label's samples sit on its own blob
