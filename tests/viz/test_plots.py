"""Pictures of the processes: `plot forward`, `plot reverse`, `animate`; the pipeline functions behind them."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_POINTS, flags
from tiny_diffusion.cli import pictures as cli_pictures
from tiny_diffusion.cli.main import main
from tiny_diffusion.core.schedule import BETA_SCHEDULES, NoiseSchedule, make_betas
from tiny_diffusion.diffusion import Diffusion
from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs.files import training_snapshots
from tiny_diffusion.viz import figures as viz
from tiny_diffusion.viz.processes import evenly_spaced, forward_labels, forward_states, reverse_states

TINY = flags(TINY_POINTS, num_epochs=3, quiet=True)
T = 20  # the tiny run's num_timesteps
SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF"}
FAST_FORWARD = ["--num", "200", "--num-timesteps", "50"]


def _has_signature(path, fmt):
    head = path.read_bytes()[:200]
    if fmt == "svg":
        return head.lstrip().startswith((b"<?xml", b"<svg")) and b"<svg" in path.read_bytes()
    return head.startswith(SIGNATURES[fmt])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def own_run(run_dir, tmp_path):
    """A private copy of the tiny run, for commands that write into the run directory."""
    return shutil.copytree(run_dir, tmp_path / "run")


# --- forward ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
@pytest.mark.parametrize("dataset", ["dino", "helix"])  # 2-D and 3-D
def test_plot_forward_writes_the_format_asked_for(dataset, fmt, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "forward", "--dataset", dataset, *FAST_FORWARD, "--format", fmt]) == 0
    out = tmp_path / "runs" / f"forward_{dataset}.{fmt}"  # beside the runs, not loose in the working directory
    assert _has_signature(out, fmt)
    printed = capsys.readouterr().out
    assert f"wrote runs/forward_{dataset}.{fmt} " in printed and "t = 0, 10, 20, 30, 40, 50" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # nothing else, no temporary leftovers


def test_plot_forward_takes_the_format_from_out_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "sub" / "f.pdf"
    assert main(["plot", "forward", *FAST_FORWARD, "--out", str(out)]) == 0
    assert _has_signature(out, "pdf")
    before = out.read_bytes()
    assert main(["plot", "forward", *FAST_FORWARD, "--out", str(out), "--seed", "1"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["plot", "forward", *FAST_FORWARD, "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert out.read_bytes() != before


def test_plot_forward_of_a_point_file_is_named_after_the_file(tmp_path, monkeypatch):
    csv = tmp_path / "mine.csv"
    csv.write_text("x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(40)))
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "forward", "--dataset", str(csv), "--standardize", *FAST_FORWARD, "--panels", "3"]) == 0
    assert _has_signature(tmp_path / "runs" / "forward_mine.png", "png")


@pytest.mark.parametrize("beta_schedule", sorted(BETA_SCHEDULES))
def test_forward_states_follow_the_closed_form_with_one_noise_draw(beta_schedule):
    schedule = NoiseSchedule(40, beta_schedule)
    x0 = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32) * 2 + 1
    steps = [0, 1, 13, 27, 40]
    states = forward_states(x0, schedule, steps, seed=5)
    assert states.shape == (5, 300, 3)
    np.testing.assert_array_equal(states[0], x0)  # step 0 is the data itself
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5)).double().numpy()
    alphas_cumprod = torch.cumprod(1 - make_betas(beta_schedule, 40), 0).numpy()  # float64, zero-based
    for state, step in zip(states[1:], steps[1:]):
        a = alphas_cumprod[step - 1]  # step s has had s noising steps: index s - 1
        np.testing.assert_allclose(state, np.sqrt(a) * x0 + np.sqrt(1 - a) * noise, rtol=1e-5, atol=1e-5)
        # and the noise behind every step is the same draw
        np.testing.assert_allclose((state - np.sqrt(a) * x0) / np.sqrt(1 - a), noise, atol=2e-4)


def test_forward_states_are_reproducible_and_depend_on_the_seed():
    schedule, x0 = NoiseSchedule(10), np.ones((50, 2), dtype=np.float32)
    first = forward_states(x0, schedule, [5, 10], seed=0)
    np.testing.assert_array_equal(first, forward_states(x0, schedule, [5, 10], seed=0))
    assert not np.allclose(first, forward_states(x0, schedule, [5, 10], seed=1))
    with pytest.raises(UsageError, match="between 0 and 10"):
        forward_states(x0, schedule, [11])


@pytest.mark.parametrize(
    "total,count,expected",
    [
        (500, 6, [0, 100, 200, 300, 400, 500]),
        (20, 21, list(range(21))),
        (50, 8, [0, 7, 14, 21, 29, 36, 43, 50]),
        (5, 2, [0, 5]),
    ],
)
def test_evenly_spaced(total, count, expected):
    assert evenly_spaced(total, count) == expected


@pytest.mark.parametrize("total,count", [(10, 1), (10, 12), (0, 2)])
def test_evenly_spaced_refuses_too_few_or_too_many(total, count):
    with pytest.raises(UsageError):
        evenly_spaced(total, count)


def test_forward_labels():
    assert forward_labels([0, 100, 500]) == ["t = 0 (data)", "t = 100", "t = 500"]


# --- reverse ----------------------------------------------------------------------------------------------------


# 4 Karras noise levels of the tiny runs' T = 20 fall on steps 19, 7, 2 and 0: t = 20, 8, 3, 1 before each step
KARRAS_4 = [20, 8, 3, 1, 0]


@pytest.mark.parametrize(
    "sampler,steps,count,timesteps",
    [
        ("ddpm", None, 6, [20, 16, 12, 8, 4, 0]),
        ("ddpm", None, 21, list(range(20, -1, -1))),
        ("ddpm", None, 4, [20, 13, 7, 0]),  # 20 / 3 is not whole: every step is recorded and 4 chosen
        ("ddim", 5, 6, [20, 16, 12, 8, 4, 0]),
        ("ddim", 10, 3, [20, 10, 0]),
        ("ode", None, 5, [20, 15, 10, 5, 0]),  # the ode reports on every step's noise level
        ("dpmpp-2m", 4, 5, KARRAS_4),
        ("heun", 4, 3, KARRAS_4[::2]),
    ],
)
def test_reverse_states_keep_evenly_spaced_labelled_states(run_dir, sampler, steps, count, timesteps):
    model = Diffusion.load(run_dir)
    result = reverse_states(model, 30, count, sampler=sampler, steps=steps, seed=4)
    assert result.states.shape == (count, 30, 2) and result.timesteps == timesteps
    labels = result.labels()
    assert len(labels) == count and labels[0] == "t = 20 (noise)" and labels[-1] == "t = 0 (samples)"
    assert labels[1:-1] == [f"t = {t}" for t in timesteps[1:-1]]
    assert result.captions()[0] == "step 20 / 20" and result.captions()[-1] == "step 0 / 20"
    # the first state is the sampler's initial noise (in the data's units), the last its samples
    noise = torch.randn((30, 2), generator=torch.Generator().manual_seed(4))
    scale, shift = model.scale.numpy(), model.shift.numpy()  # the model's coordinates -> the data's units
    np.testing.assert_allclose(result.states[0], noise.numpy() * scale + shift, atol=1e-6)
    samples = model.sample(30, sampler=sampler, steps=steps, seed=4)
    np.testing.assert_allclose(result.states[-1], samples, atol=1e-6)


def test_reverse_states_refuse_more_states_than_steps(run_dir):
    with pytest.raises(UsageError, match="between 2 and 6"):
        reverse_states(Diffusion.load(run_dir), 10, 7, sampler="ddim", steps=5)


def test_plot_reverse_writes_into_the_run_directory(own_run, capsys):
    assert main(["plot", "reverse", str(own_run), "--num", "40", "--panels", "3"]) == 0
    assert _has_signature(own_run / "reverse.png", "png")
    assert "t = 20, 10, 0" in capsys.readouterr().out
    assert (
        main(
            [
                "plot",
                "reverse",
                str(own_run),
                "--num",
                "40",
                "--format",
                "svg",
                "--sampler",
                "ddim",
                "--sample-steps",
                "4",
                "--panels",
                "5",
            ]
        )
        == 0
    )
    assert _has_signature(own_run / "reverse.svg", "svg")
    assert "t = 20, 15, 10, 5, 0" in capsys.readouterr().out
    assert main(["plot", "reverse", str(own_run), "--num", "40"]) == 2  # reverse.png exists
    assert "--overwrite" in capsys.readouterr().err


# --- animations -------------------------------------------------------------------------------------------------


def _gif(path):
    """(number of frames, size, duration of each frame in ms) of a GIF."""
    with Image.open(path) as im:
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
        return im.n_frames, im.size, durations


def test_animate_writes_the_reverse_process_and_the_training_snapshots(own_run, capsys):
    assert main(["animate", str(own_run), "--num", "40", "--fps", "10", "--training-fps", "4"]) == 0
    frames, size, durations = _gif(own_run / "reverse.gif")
    # T + 1 = 21 states, then HOLD_FRAMES copies of the last; Pillow merges identical frames into one longer one
    assert frames == T + 1 and size == (320, 320)
    assert durations[:-1] == [100] * T and durations[-1] == 100 * (1 + 10) == 100 * (1 + cli_pictures.HOLD_FRAMES)
    snapshots, epochs = training_snapshots(own_run)
    assert epochs == [1, 2, 3] and snapshots.shape == (3, 50, 2)
    frames, size, durations = _gif(own_run / "training.gif")
    assert frames == 3 and size == (320, 320) and durations == [250] * 3  # one frame per snapshot
    assert not [p for p in own_run.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert "21 reverse states, 3 snapshots" in capsys.readouterr().out
    before = (own_run / "reverse.gif").read_bytes()
    assert main(["animate", str(own_run), "--num", "40"]) == 2  # refuses to overwrite
    assert (own_run / "reverse.gif").read_bytes() == before


def test_training_snapshots_take_their_epochs_from_the_history(tmp_path):
    np.save(tmp_path / "frames.npy", np.zeros((3, 5, 2)))
    rows = [f"{epoch},0.5,1.0,{int(epoch in (1, 3, 5))}" for epoch in range(1, 6)]
    (tmp_path / "history.csv").write_text("epoch,loss,seconds,snapshot\n" + "\n".join(rows) + "\n")
    frames, epochs = training_snapshots(tmp_path)
    assert frames.shape == (3, 5, 2) and epochs == [1, 3, 5]
    np.save(tmp_path / "frames.npy", np.zeros((2, 5, 2)))
    with pytest.raises(UsageError, match="marks 3 snapshots"):
        training_snapshots(tmp_path)
    (tmp_path / "history.csv").unlink()
    with pytest.raises(UsageError, match="has no history.csv"):
        training_snapshots(tmp_path)


def test_animate_with_ddim_shows_each_of_its_steps(own_run):
    assert main(["animate", str(own_run), "--num", "40", "--sampler", "ddim", "--sample-steps", "4"]) == 0
    assert _gif(own_run / "reverse.gif")[0] == 5


def test_animate_mp4_without_ffmpeg_is_a_note_not_an_error(own_run, capsys, monkeypatch):
    monkeypatch.setattr(viz, "mp4_available", lambda: False)
    assert main(["animate", str(own_run), "--num", "20", "--mp4"]) == 0
    out = capsys.readouterr().out
    assert "ffmpeg" in out and "no MP4" in out
    assert (own_run / "reverse.gif").exists() and not list(own_run.glob("*.mp4"))


@pytest.mark.skipif(not viz.mp4_available(), reason="ffmpeg is not installed")
def test_animate_mp4_with_ffmpeg(own_run):
    assert main(["animate", str(own_run), "--num", "20", "--mp4"]) == 0
    for name in ("reverse.mp4", "training.mp4"):
        assert (own_run / name).read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize(
    "dim,hold,expected",
    [
        (2, 3, 4),  # 2-D held frames are identical, so Pillow shows the last frame longer instead
        (3, 3, 7),  # 3-D frames turn with the azimuth, so every held frame is a frame of its own
    ],
)
def test_animate_points_frames_and_size(dim, hold, expected, tmp_path):
    frames = np.random.default_rng(0).normal(size=(4, 100, dim))
    count = viz.animate_points(
        frames, [f"frame {i}" for i in range(4)], tmp_path / "a.gif", fps=5, hold=hold, size=3, dpi=50
    )
    assert count == 4 + hold
    n, size, durations = _gif(tmp_path / "a.gif")
    assert n == expected and size == (150, 150) and sum(durations) == 200 * (4 + hold)
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]


# --- bad input --------------------------------------------------------------------------------------------------


BAD = [
    (["plot", "forward", "--dataset", "dinosaur"], "unknown dataset"),
    (["plot", "forward", "--panels", "1"], "--panels must be at least 2"),
    (["plot", "forward", "--num", "0"], "--num must be positive"),
    (["plot", "forward", "--num-timesteps", "4", "--panels", "6"], "between 2 and 5"),
    (["plot", "forward", "--lines", "0"], "lines must be"),
    (["plot", "forward", "--out", "f.jpg"], "--out must end in"),
    (["plot", "forward", "--out", "f.svg", "--format", "pdf"], "does not match --format"),
    (["plot", "reverse", "RUN", "--panels", "0"], "--panels must be at least 2"),
    (["plot", "reverse", "RUN", "--panels", "22"], "between 2 and 21"),
    (["plot", "reverse", "RUN", "--sampler", "ddim", "--sample-steps", "30"], "between 1 and num_timesteps"),
    (["plot", "reverse", "RUN", "--sample-steps", "5"], "use --sampler ddim"),
    (["plot", "reverse", "MISSING"], "does not exist"),
    (["animate", "MISSING"], "does not exist"),
    (["animate", "RUN", "--fps", "0"], "--fps must be positive"),
    (["animate", "RUN", "--fps", "-2"], "--fps must be positive"),
    (["animate", "RUN", "--training-fps", "0"], "--training-fps must be positive"),
    (["animate", "RUN", "--num", "0"], "--num must be positive"),
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_is_one_line_and_exit_2(argv, message, own_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in own_run.iterdir())
    argv = [str(own_run) if a == "RUN" else str(tmp_path / "nope") if a == "MISSING" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in own_run.iterdir()) == before  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["plot", "forward", "--format", "jpg"], "invalid choice: 'jpg'"),
        (["plot", "reverse", "R", "--format", "gif"], "invalid choice: 'gif'"),
        (["animate", "R", "--sampler", "lms"], "invalid choice: 'lms'"),
        (["plot", "sideways"], "invalid choice: 'sideways'"),
        (["plot"], "required: KIND"),
    ],
)
def test_unknown_format_or_kind_is_an_argparse_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1 and "usage" not in err


def test_missing_run_directory_from_the_shell(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tiny_diffusion", "animate", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
