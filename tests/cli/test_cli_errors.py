"""What a new user ran into (issue 14): errors in one line that name the flag as typed, the data checked before the
run directory, runs named after their dataset, a --help grouped by kind, and pictures where they are expected."""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import tiny_diffusion as td
from conftest import TINY_POINTS, flags
from tiny_diffusion.api import default_out
from tiny_diffusion.cli.main import build_parser, main
from tiny_diffusion.config import FLAG_GROUPS
from tiny_diffusion.errors import SettingError, UsageError
from tiny_diffusion.viz import figures as viz
from tiny_diffusion.viz import images as viz_images
from tiny_diffusion.viz import points as viz_points

TINY = flags(
    TINY_POINTS,
    num_epochs=1,
    num_samples=64,
    train_batch_size=32,
    num_timesteps=10,
    eval_batch_size=16,
    quiet=True,
    hidden_layers=3,
    save_images_step=100,
)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("tiny-diffusion: error: ") and err.count("\n") == 1, err
    assert "usage:" not in err and "Traceback" not in err
    return err.strip()


# --- 1. the data is checked before the run directory ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("bad.csv", "x,y\n1,2\n3,abc\n5,6\n", "line 3, column 'y': 'abc' is not a number"),
        ("missing.csv", None, "does not exist"),
    ],
)
@pytest.mark.parametrize("out", [None, "runs/base"])
def test_a_bad_data_file_is_reported_before_an_existing_run_directory(
    name, content, message, out, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        Path(name).write_text(content)
    run_dir = Path(out or f"runs/{Path(name).stem}")
    run_dir.mkdir(parents=True)
    assert main(["train", "--dataset", name, *TINY, *(["--out", out] if out else [])]) == 2
    err = _one_line_error(capsys)
    assert message in err and "already exists" not in err
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [run_dir.name]  # nothing staged, no lock left


def test_a_good_file_into_an_existing_run_directory_is_still_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("pts.csv").write_text("x,y\n" + "".join(f"{i},{i % 5}\n" for i in range(30)))
    Path("runs/pts").mkdir(parents=True)
    assert main(["train", "--dataset", "pts.csv", *TINY]) == 2
    assert "run directory runs/pts already exists" in _one_line_error(capsys)


# --- 1. the default run directory ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values,expected",
    [
        ({}, "runs/dino"),
        ({"dataset": "moons"}, "runs/moons"),
        ({"dataset": "digits8"}, "runs/digits8"),
        ({"dataset": "/data/points/mine.v2.csv"}, "runs/mine.v2"),
        ({"dataset": "moons", "experiment_name": "first"}, "runs/first"),  # --experiment-name wins
        ({"dataset": "..csv"}, "runs/run"),  # a file whose stem cannot name a folder
    ],
)
def test_the_default_run_directory_is_named_after_the_dataset(values, expected):
    assert default_out(td.settings(values)) == Path(expected)


def test_a_run_on_a_file_goes_to_runs_stem_and_its_figures_are_titled_with_the_files_name(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data" / "mine.csv"
    data.parent.mkdir()
    data.write_text("x,y\n" + "".join(f"{i},{i % 5}\n" for i in range(30)))
    titles = []
    plot_points = viz.plot_points
    monkeypatch.setattr(viz, "plot_points", lambda *a, **k: (titles.append(k["title"]), plot_points(*a, **k)))
    assert main(["train", "--dataset", str(data), *TINY]) == 0
    assert (tmp_path / "runs" / "mine" / "samples.png").exists()
    assert "wrote runs/mine/" in capsys.readouterr().out
    assert titles == ["mine: 16 samples after 1 epoch"]  # not the file's whole path


# --- 2. evaluate a missing run -------------------------------------------------------------------------------------


def test_evaluating_a_missing_run_directory_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "runs/nope"]) == 2
    assert _one_line_error(capsys) == "tiny-diffusion: error: run directory runs/nope does not exist"


# --- 3. one-line errors that name the flag ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--learning-rate", "abc"], "--learning-rate: expected a number, got 'abc'"),
        (["train", "--num-epochs", "nan"], "--num-epochs: expected an integer, got 'nan'"),
        (["train", "--num_epochs", "1.5"], "--num_epochs: expected an integer, got '1.5'"),  # the spelling typed
        (["train", "--learning-rate", "nan"], "--learning-rate: expected a finite number, got 'nan'"),
        (["train", "--beta-end", "inf"], "--beta-end: expected a finite number, got 'inf'"),
        (["train", "--eta=-inf"], "--eta: expected a finite number, got '-inf'"),
        (["sample", "RUN", "--num", "ten"], "--num: expected an integer, got 'ten'"),
        (["sample", "RUN", "--guidance", "nan"], "--guidance: expected a finite number, got 'nan'"),
        (["plot", "forward", "--num-timesteps", "1e3"], "--num-timesteps: expected an integer, got '1e3'"),
        (["animate", "RUN", "--fps", "inf"], "--fps: expected a finite number, got 'inf'"),
        (["train", "--beta-schedule", "cubic"], "--beta-schedule: invalid choice: 'cubic'"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_a_flag_that_does_not_parse_is_one_line_without_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in _one_line_error(capsys)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--num-epochs", "0"], "--num-epochs must be positive, got 0"),
        (["--num_epochs", "0"], "--num-epochs must be positive, got 0"),
        (["--hidden-layers", "-1"], "--hidden-layers must be >= 0, got -1"),
        (["--ema-decay", "1"], "--ema-decay must be in [0, 1), got 1.0"),
        (["--experiment-name", "a/b"], "--experiment-name names the folder runs/NAME: give a plain name"),
        (["--train-batch-size", "128"], "--train-batch-size (128) exceeds --num-samples (64)"),
        (["--dataset", "horizontal_lines", "--lines", "0"], "--lines must be an integer >= 1"),
        (
            ["--conditional", "--dataset", "random", "--guidance", "1", "--cond-drop", "0"],
            "--guidance needs the unconditional model too: set --cond-drop > 0",
        ),
    ],
)
def test_a_bad_setting_is_named_by_its_flag(flags, message, tmp_path, capsys):
    assert main(["train", *TINY, *flags, "--out", str(tmp_path / "r")]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "r").exists()


def test_a_notebook_user_reads_the_field_names_they_typed():
    with pytest.raises(UsageError, match=r"^num_epochs must be positive, got 0$"):
        td.settings(num_epochs=0)
    with pytest.raises(UsageError, match=r"^sample_steps must be between 1 and num_timesteps \(10\), got 50$"):
        td.settings(num_timesteps=10, sampler="ddim", sample_steps=50)


def test_a_setting_error_keeps_its_names_through_pickling():  # a study's worker process hands errors back
    error = pickle.loads(pickle.dumps(SettingError("beta_start (0.5) > beta_end", "beta_start", "beta_end")))
    assert str(error) == "beta_start (0.5) > beta_end" and error.flags() == "--beta-start (0.5) > --beta-end"
    assert SettingError("eta must be >= 0; beta_eta stays", "eta").flags() == "--eta must be >= 0; beta_eta stays"


# --- 4. --help ------------------------------------------------------------------------------------------------


def _help(*argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])


def test_train_help_groups_the_flags_and_shows_only_the_hyphen_spellings(capsys):
    _help("train")
    text = capsys.readouterr().out
    headings = [line[:-1] for line in text.splitlines() if line.endswith(" flags:")]
    assert headings == [f"{title} flags" for title in FLAG_GROUPS.values()]
    flag_lines = [line for line in text.splitlines() if line.lstrip().startswith("--")]
    assert flag_lines and not [line for line in flag_lines if re.search(r"--[\w-]*_", line.split("  ")[1])]
    assert "--clip-sample, --no-clip-sample" in text and "--clip_sample" not in text
    assert text.startswith("usage: tiny-diffusion train [-h] [--config FILE]") and len(text.splitlines()[0]) <= 120


def test_the_original_underscore_spellings_are_still_accepted():
    args = build_parser().parse_args(
        ["train", "--num_epochs", "3", "--no-clip_sample", "--learning-rate", "0.1", "--sample_steps", "4"]
    )
    assert (args.num_epochs, args.clip_sample, args.learning_rate, args.sample_steps) == (3, False, 0.1, 4)
    args = build_parser().parse_args(["animate", "R", "--training_fps", "3"])
    assert args.training_fps == 3.0


@pytest.mark.parametrize("argv", [["ablate"], ["plot", "forward"], ["plot", "classes"], ["animate"]])
def test_no_help_shows_an_underscore_spelling(argv, capsys):
    _help(*argv)
    flag_lines = [line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith("--")]
    assert flag_lines and not [line for line in flag_lines if re.search(r"--[\w-]*_", line.split("  ")[1])]


# --- 5. pictures where they are expected ------------------------------------------------------------------


def test_plot_forward_goes_into_runs_not_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "forward", "--dataset", "moons", "--num", "100", "--num-timesteps", "10"]) == 0
    assert capsys.readouterr().out.startswith("wrote runs/forward_moons.png (6 panels")
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert (tmp_path / "runs" / "forward_moons.png").read_bytes().startswith(b"\x89PNG")


def test_sample_of_an_unconditional_image_run_draws_a_grid_beside_the_npy(tmp_path, capsys):
    run = tmp_path / "digits"
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits8",
                "--num-epochs",
                "1",
                "--num-samples",
                "64",
                "--train-batch-size",
                "32",
                "--num-timesteps",
                "10",
                "--channels",
                "8",
                "--eval-batch-size",
                "16",
                "--sample-steps",
                "5",
                "--quiet",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["sample", str(run), "--num", "12"]) == 0
    npy, png = run / "sampled_ddim_seed0.npy", run / "sampled_ddim_seed0.png"
    assert f"wrote 12 samples of shape 1x8x8 to {npy} and {png}; " in capsys.readouterr().out
    assert np.load(npy).shape == (12, 1, 8, 8) and png.read_bytes().startswith(b"\x89PNG")
    assert main(["sample", str(run), "--num", "12"]) == 2  # the picture is guarded like the .npy
    assert "already exists; pass --overwrite" in _one_line_error(capsys)


# --- 6. figures -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count,cols", [(1, 1), (6, 6), (7, 4), (8, 4), (11, 6), (12, 6), (13, 5)])
def test_a_strip_fills_its_rows_evenly(count, cols):
    assert viz.strip_columns(count) == cols


@pytest.fixture
def figures(monkeypatch):
    """The figures the viz functions would save, kept open to look at."""
    saved = []
    for module in (viz_points, viz_images):  # where the drawing functions find save_figure
        monkeypatch.setattr(module, "save_figure", lambda fig, path, **_: saved.append(fig))
    yield saved
    for fig in saved:
        viz.plt.close(fig)


@pytest.mark.parametrize("dim,names", [(2, ("x", "y")), (3, ("x", "y", "z")), (5, ("x0", "x1", "x2"))])
def test_scatter_plots_name_their_axes(dim, names, figures):
    viz.plot_points(np.random.default_rng(0).normal(size=(50, dim)), "unused.png")
    axes = figures[0].axes
    assert (axes[0].get_xlabel(), axes[0].get_ylabel()) == names[:2]
    if dim >= 3:
        assert axes[0].get_zlabel() == names[2]


def test_a_strip_has_one_panel_per_frame_named_on_its_outer_edges(figures):
    frames = np.random.default_rng(0).normal(size=(7, 30, 2))
    viz.plot_strip(frames, [f"epoch {k}" for k in range(7)], "unused.png")
    axes = figures[0].axes
    assert len(axes) == 7 and all(ax.get_visible() for ax in axes)  # no empty panel
    assert [ax.get_ylabel() for ax in axes] == ["y", "", "", "", "y", "", ""]  # first column of 4 + 3
    assert [ax.get_xlabel() for ax in axes] == ["", "", "", "x", "x", "x", "x"]  # bottom of each column
