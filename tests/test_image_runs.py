"""Image runs end to end on the 8x8 digits: both models, every target, the judge's numbers, and image studies."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_IMAGES, tiny
from tiny_diffusion.cli.main import main
from tiny_diffusion.config import IMAGE_DEFAULTS, TrainConfig
from tiny_diffusion.diffusion import Diffusion
from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs.files import training_snapshots
from tiny_diffusion.runs.job import train_run
from tiny_diffusion.studies.ablation import run_study

TINY = tiny(TINY_IMAGES, train_batch_size=64, eval_batch_size=24, channels=8, embedding_size=16, device="cpu")


def tiny(**changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **changes}).validate()


def test_an_image_dataset_starts_from_the_image_defaults_and_flags_still_win():
    config = TrainConfig.from_dict({"dataset": "digits8", "num_epochs": 3})
    assert config.model == IMAGE_DEFAULTS["model"] and config.ema_decay == IMAGE_DEFAULTS["ema_decay"]
    assert config.num_epochs == 3
    assert TrainConfig.from_dict({"dataset": "dino"}).model == "mlp"


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"model": "mlp"}, "image dataset"),
        ({"dataset": "dino", "model": "unet"}, "for image datasets"),
        ({"num_samples": 32}, "exceeds"),
    ],
)
def test_models_and_datasets_must_match(tmp_path, changes, message):
    with pytest.raises(UsageError, match=message):
        train_run(TrainConfig.from_dict({**TINY, **changes}), tmp_path / "run", progress=False)


@pytest.mark.parametrize("model", ["seed-cnn", "unet"])
@pytest.mark.parametrize("target", ["noise", "x0", "previous", "v"])
def test_every_model_trains_and_samples_images_with_every_target(tmp_path, model, target):
    summary = train_run(tiny(model=model, target=target), tmp_path / "run", progress=False)
    assert summary.samples.shape == (24, 1, 8, 8)
    assert np.isfinite(summary.samples).all() and np.abs(summary.samples).max() <= 1  # clipped to the pixel range
    frames, epochs = training_snapshots(tmp_path / "run")
    assert frames.shape == (2, 64, 1, 8, 8) and epochs == [1, 2]
    model = Diffusion.load(tmp_path / "run")
    assert model.shape == (1, 8, 8)
    again = model.sample(3, sampler="ddim", steps=5, seed=0)
    assert again.shape == (3, 1, 8, 8) and np.isfinite(again).all()


def test_image_commands_train_evaluate_and_judge(tmp_path, capsys):
    out = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert main(["train", *flags, "--quiet", "--out", str(out)]) == 0
    assert {"samples.png", "frames.png", "loss.png"} <= {p.name for p in out.iterdir()}
    assert main(["judge", "train", "--dataset", "digits8", "--epochs", "2", "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"confident", "confident_floor", "class_entropy_bits", "frechet", "frechet_floor"} <= set(metrics)
    assert metrics["n"] == 24 and all(np.isfinite(v) for v in metrics.values())
    # pictures: the denoising strip (the run's own ddim sampler) and both animations
    assert main(["plot", "reverse", str(out), "--panels", "4"]) == 0
    assert "t = 20, 12, 8, 0" in capsys.readouterr().out  # 5 trailing ddim steps (t = 20, 16, 12, 8, 4), 4 kept
    assert main(["animate", str(out)]) == 0
    with Image.open(out / "reverse.gif") as gif:
        assert gif.n_frames == 6  # the noise and each of the 5 ddim steps (the held copies merge into the last)
    with Image.open(out / "training.gif") as gif:
        assert gif.n_frames == 2  # one per snapshot
    forward = tmp_path / "forward.png"
    assert main(["plot", "forward", "--dataset", "digits8", "--out", str(forward)]) == 0
    assert Image.open(forward).size[0] > 3 * Image.open(forward).size[1]  # a strip of six panels


def test_evaluate_refuses_points_given_as_images(tmp_path, capsys):
    np.save(tmp_path / "points.npy", np.zeros((10, 2), dtype=np.float32))
    assert main(["evaluate", str(tmp_path / "points.npy"), "--dataset", "digits8"]) == 2
    assert "(N, C, H, W)" in capsys.readouterr().err


def test_an_image_study_writes_an_image_grid_and_the_judges_columns(tmp_path):
    rows = run_study(tiny(), "target", ["noise", "x0"], tmp_path, progress=False)
    assert [row.value for row in rows] == ["noise", "x0"]
    table = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(table) == 2 and all(np.isfinite(float(row[key])) for row in table for key in ("confident", "frechet"))
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_predicted_x0_recovers_the_data_under_a_model_that_knows_the_noise():
    import torch

    from tiny_diffusion.core.schedule import NoiseSchedule
    from tiny_diffusion.viz.processes import ReverseStates, predicted_x0

    schedule = NoiseSchedule(50, "cosine")
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.full((4,), 29)
    x_t = schedule.add_noise(x0, noise, t)
    config = tiny(num_timesteps=50, clip_sample=False, target="noise")  # the stand-in predicts the noise
    ones, zeros = torch.ones(1), torch.zeros(1)
    model = Diffusion(config, lambda x, t: noise, schedule, (1, 8, 8), -ones, ones, zeros, ones)
    states = ReverseStates(np.stack([x_t.numpy(), x0.numpy()]), [30, 0], 50)  # step 30 is schedule index 29
    estimates = predicted_x0(model, states)
    np.testing.assert_allclose(estimates[0], x0.numpy(), atol=1e-4)
    np.testing.assert_array_equal(estimates[1], x0.numpy())  # at t = 0 the state is the estimate


def test_judge_train_refuses_a_cache_it_cannot_write_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["judge", "train", "--dataset", "digits8", "--cache-dir", str(blocker / "cache"), "--quiet"]) == 2
    assert "cannot create the judge cache" in capsys.readouterr().err
