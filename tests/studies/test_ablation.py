"""Ablation studies: one run per value, a grid and a table, resuming without retraining."""

import csv
import signal

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_POINTS, tiny
from tiny_diffusion.cli.main import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs import checkpoints
from tiny_diffusion.runs.interrupts import Interrupted
from tiny_diffusion.studies.ablation import parse_values, run_study

TINY = tiny(TINY_POINTS, eval_batch_size=60, num_epochs=3, device="cpu")


def test_a_study_writes_one_run_per_value_a_grid_and_a_table(tmp_path):
    rows = run_study(TrainConfig(**TINY), "learning_rate", [1e-2, 1e-3], tmp_path, progress=False)
    assert [r.trained for r in rows] == [True, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "grid.png",
        "learning_rate=0.001",
        "learning_rate=0.01",
        "results.csv",
        "results.md",
    ]
    table = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [row["learning_rate"] for row in table] == ["0.01", "0.001"]
    for row in table:
        assert all(np.isfinite(float(row[key])) for key in ("w2", "w2_floor", "mmd", "precision@0.05", "train_s"))
    width, height = Image.open(tmp_path / "grid.png").size
    assert width > height  # 2 rows of 3 checkpoints


def test_a_study_resumes_without_training_complete_runs_again(tmp_path):
    run_study(TrainConfig(**TINY), "num_timesteps", [10, 20], tmp_path, progress=False)
    weights = (tmp_path / "num_timesteps=10" / "model.safetensors").stat().st_mtime_ns
    rows = run_study(TrainConfig(**TINY), "num_timesteps", [10, 20, 30], tmp_path, progress=False)
    assert [r.trained for r in rows] == [False, False, True]
    assert (tmp_path / "num_timesteps=10" / "model.safetensors").stat().st_mtime_ns == weights
    assert len(list(csv.DictReader((tmp_path / "results.csv").open()))) == 3


def test_a_run_made_with_other_settings_is_not_silently_reused(tmp_path):
    run_study(TrainConfig(**TINY), "hidden_size", [8], tmp_path, progress=False)
    with pytest.raises(UsageError, match="other settings"):
        run_study(TrainConfig(**{**TINY, "num_epochs": 2}), "hidden_size", [8], tmp_path, progress=False)


def test_values_are_parsed_as_the_settings_type():
    assert parse_values("learning-rate", ["1e-3", "2"]) == ("learning_rate", [1e-3, 2.0])
    assert parse_values("beta_schedule", ["linear", "cosine"]) == ("beta_schedule", ["linear", "cosine"])
    assert parse_values("clip_sample", ["true", "no"]) == ("clip_sample", [True, False])


@pytest.mark.parametrize(
    "param,values,message",
    [
        ("colour", ["red"], "unknown setting"),
        ("num_timesteps", ["ten"], "takes int values"),
        ("hidden_size", ["8", "8"], "repeat"),
    ],
)
def test_bad_studies_are_refused(param, values, message):
    with pytest.raises(UsageError, match=message):
        parse_values(param, values)


def test_ablate_command_refuses_a_bad_value_with_exit_2(tmp_path, capsys):
    assert main(["ablate", "learning_rate", "0", "--out", str(tmp_path / "s"), "--quiet"]) == 2
    assert "--learning-rate must be positive" in capsys.readouterr().err  # named as the command line spells it
    assert not (tmp_path / "s").exists()


def test_a_study_on_a_users_file_resumes_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the file is named by a relative path, as a user would type it
    rng = np.random.default_rng(0)
    (tmp_path / "pts.csv").write_text("".join(f"{x},{y}\n" for x, y in rng.normal(size=(300, 2))))
    base = TrainConfig(**{**TINY, "dataset": "pts.csv"})
    run_study(base, "hidden_size", [8], tmp_path / "study", progress=False)
    rows = run_study(base, "hidden_size", [8], tmp_path / "study", progress=False)
    assert [r.trained for r in rows] == [False]


def test_a_study_of_sample_steps_varies_only_the_sampler(tmp_path):
    base = TrainConfig(**{**TINY, "sampler": "ddim"})
    rows = run_study(base, "sample_steps", [5, 20], tmp_path, progress=False)
    assert [row.value for row in rows] == [5, 20]
    table = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [row["sample_steps"] for row in table] == ["5", "20"]
    assert all(np.isfinite(float(row["w2"])) for row in table)


def _interrupted_study(monkeypatch, config, param, values, out):
    """Run a study that is interrupted (as if by Ctrl-C) right after its first checkpoint."""
    save = checkpoints.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        save(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "save_checkpoint", save_then_interrupt)
        with pytest.raises(Interrupted, match="resume with"):
            run_study(config, param, values, out, progress=False)


def test_an_interrupted_study_resumes_its_unfinished_run(tmp_path, monkeypatch):
    _interrupted_study(monkeypatch, TrainConfig(**TINY), "hidden_size", [8], tmp_path / "study")
    assert (tmp_path / "study" / ".hidden_size=8.partial").is_dir()
    rows = run_study(TrainConfig(**TINY), "hidden_size", [8], tmp_path / "study", progress=False)
    assert [r.trained for r in rows] == [True] and not (tmp_path / "study" / ".hidden_size=8.partial").exists()
    run_study(TrainConfig(**TINY), "hidden_size", [8], tmp_path / "fresh", progress=False)
    for name in ("model.safetensors", "samples.npy", "loss.npy"):
        assert (tmp_path / "study" / "hidden_size=8" / name).read_bytes() == (
            tmp_path / "fresh" / "hidden_size=8" / name
        ).read_bytes()


def test_an_unfinished_run_with_other_settings_is_not_resumed(tmp_path, monkeypatch):
    _interrupted_study(monkeypatch, TrainConfig(**TINY), "hidden_size", [4], tmp_path)
    with pytest.raises(UsageError, match="unfinished run with other settings"):
        run_study(TrainConfig(**{**TINY, "num_epochs": 2}), "hidden_size", [4], tmp_path, progress=False)
