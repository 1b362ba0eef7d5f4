"""The command line, end to end into tmp_path: train a tiny run, sample from it, evaluate; and bad input."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY_POINTS, flags
from tiny_diffusion.cli.main import main

TINY = flags(TINY_POINTS, quiet=True)
RUN_FILES = {
    "config.json",
    "model.safetensors",
    "loss.npy",
    "history.csv",
    "frames.npy",
    "samples.npy",
    "samples.png",
    "loss.png",
    "frames.png",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def test_train_writes_a_complete_run_directory(run_dir):
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".")]  # no staging leftovers
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["config"]["num_epochs"] == 2 and meta["data"]["shape"] == [2]
    frames, samples = np.load(run_dir / "frames.npy"), np.load(run_dir / "samples.npy")
    assert frames.shape == (2, 50, 2) and samples.shape == (50, 2)
    assert np.isfinite(samples).all()
    assert np.load(run_dir / "loss.npy").shape == (2 * 256 // 64,)
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,seconds,snapshot" and len(history) == 3


def test_sample_rebuilds_the_model_from_the_run_directory(run_dir, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert (
        main(
            [
                "sample",
                str(run_dir),
                "--num",
                "30",
                "--sampler",
                "ddim",
                "--sample-steps",
                "5",
                "--seed",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    picture = out.with_suffix(".png")
    assert re.fullmatch(
        rf"wrote 30 samples of shape 2 to {re.escape(str(out))} and {re.escape(str(picture))}; "
        r"sampled in [0-9.]+ s \([0-9,]+ points/s\) with 5 network calls\n",
        capsys.readouterr().out,
    )
    assert picture.read_bytes().startswith(b"\x89PNG")
    first = np.load(out)
    assert first.shape == (30, 2) and np.isfinite(first).all()
    assert (
        main(
            [
                "sample",
                str(run_dir),
                "--num",
                "30",
                "--sampler",
                "ddim",
                "--sample-steps",
                "5",
                "--seed",
                "3",
                "--out",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.load(out), first)  # same seed, same samples


def test_sample_takes_the_runs_eta_with_its_sampler(tmp_path):
    run = tmp_path / "eta1"
    assert main(["train", *TINY, "--sampler", "ddim", "--sample-steps", "5", "--eta", "1", "--out", str(run)]) == 0

    def draw(name, *flags):
        assert main(["sample", str(run), "--num", "20", "--seed", "3", "--out", str(tmp_path / name), *flags]) == 0
        return np.load(tmp_path / name)

    own = draw("own.npy")
    np.testing.assert_array_equal(own, draw("one.npy", "--eta", "1"))
    assert not np.allclose(own, draw("zero.npy", "--eta", "0"))


def test_evaluate_prints_metrics_with_floors(run_dir, capsys):
    assert main(["evaluate", str(run_dir)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("w2", "w2_floor", "mmd", "mmd_floor", "precision@0.05", "precision@0.1", "recall@0.05"):
        assert np.isfinite(metrics[key]), key


@pytest.mark.parametrize(
    "suffix,text",
    [
        (".toml", 'dataset = "moons"\nbeta-schedule = "cosine"\nhidden_size = 8\n'),
        (".yaml", "dataset: moons\nbeta_schedule: cosine\nhidden-size: 8\n"),
        (".json", '{"dataset": "moons", "beta_schedule": "cosine", "hidden_size": 8}'),
    ],
)
def test_config_file_sets_flags_and_the_command_line_wins(suffix, text, tmp_path):
    cfg = tmp_path / f"c{suffix}"
    cfg.write_text(text)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--config", str(cfg), "--hidden-size", "12", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["dataset"], config["beta_schedule"], config["hidden_size"]) == ("moons", "cosine", 12)


def test_existing_run_directory_is_kept_unless_overwrite(run_dir, tmp_path, capsys):
    before = (run_dir / "model.safetensors").read_bytes()
    assert main(["train", *TINY, "--out", str(run_dir)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (run_dir / "model.safetensors").read_bytes() == before


def test_overwrite_replaces_a_run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--num-epochs", "1", "--out", str(out)]) == 0
    assert main(["train", *TINY, "--num-epochs", "2", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["num_epochs"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


BAD_TRAIN = [
    (["--dataset", "dinosaur"], "unknown dataset"),
    (["--learning-rate", "0"], "--learning-rate must be positive, got 0.0"),
    (["--learning_rate", "-0.001"], "--learning-rate must be positive"),
    (["--num-epochs", "0"], "--num-epochs must be positive, got 0"),
    (["--num_timesteps", "-5"], "--num-timesteps must be positive"),
    (["--train-batch-size", "0"], "--train-batch-size must be positive"),
    (["--eval-batch-size", "0"], "--eval-batch-size must be positive"),
    (["--beta-schedule", "cubic"], "invalid choice"),
    (["--sampler", "ddim", "--sample-steps", "50"], "--sample-steps must be between 1 and --num-timesteps (20)"),
    (["--beta-start", "0.5", "--beta-end", "0.1"], "need 0 < --beta-start <= --beta-end < 1"),
    (["--precision", "fp16", "--device", "cpu"], "--precision fp16 needs a CUDA GPU (this run is on cpu)"),
    (["--precision", "fp64"], "invalid choice"),
]


@pytest.mark.parametrize("flags,message", BAD_TRAIN)
def test_train_refuses_bad_input_with_exit_code_2(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) if message == "invalid choice" else _returns(2) as outcome:
        code = main(["train", *TINY, *flags, "--out", str(tmp_path / "r")])
        outcome.code = code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("tiny-diffusion: error: ")
    assert not (tmp_path / "r").exists()


class _returns:
    """Context manager twin of pytest.raises(SystemExit) for main()'s returned exit code."""

    def __init__(self, expected):
        self.expected, self.code = expected, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        assert self.code == self.expected
        return False


@pytest.mark.parametrize(
    "content,message",
    [
        ("seed = 'many'\n", "must be of type int"),
        ("colour = 'red'\n", "unknown config key"),
        ("this is not toml", "cannot parse config file"),
    ],
)
def test_bad_config_file(content, message, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    assert main(["train", *TINY, "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def _cli(*args):
    """Run the installed module as a user would; returns (exit code, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "tiny_diffusion", *args], capture_output=True, text=True)
    return proc.returncode, proc.stderr


def test_missing_run_directory_is_one_line_and_exit_2(tmp_path):
    code, err = _cli("sample", str(tmp_path / "nope"))
    assert code == 2 and err.strip().count("\n") == 0 and "does not exist" in err


def test_corrupt_weights_are_one_line_and_exit_2(run_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        (broken / name).write_bytes((run_dir / name).read_bytes())
    data = bytearray((broken / "model.safetensors").read_bytes())
    (broken / "model.safetensors").write_bytes(bytes(data[: len(data) // 2]))
    code, err = _cli("sample", str(broken), "--out", str(tmp_path / "x.npy"))
    assert code == 2 and err.strip().count("\n") == 0 and "corrupt" in err
    assert not (tmp_path / "x.npy").exists()


def test_evaluate_refuses_a_non_array_file(tmp_path):
    bad = tmp_path / "s.npy"
    bad.write_text("not an array")
    code, err = _cli("evaluate", str(bad), "--dataset", "dino")
    assert code == 2 and "cannot read" in err and "Traceback" not in err


def test_evaluate_a_folder_that_is_not_a_run_is_one_line_and_exit_2(tmp_path):
    code, err = _cli("evaluate", str(tmp_path))
    assert code == 2 and err.strip().count("\n") == 0 and "not a run directory" in err


@pytest.mark.slow
def test_a_compiled_run_computes_what_the_plain_one_does(run_dir, tmp_path):
    out = tmp_path / "compiled"
    assert main(["train", *TINY, "--compile", "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out / "loss.npy"), np.load(run_dir / "loss.npy"), rtol=0, atol=1e-5)
    assert "compile" not in json.loads((out / "config.json").read_text())["config"]  # not a setting of the run


@pytest.mark.parametrize(
    "shape, seconds, expected",
    [
        ((1000, 2), 1.25, "800 points/s"),
        ((200, 1, 28, 28), 725.8, "0.28 images/s"),
        ((8, 1, 28, 28), 2.0, "4 images/s"),
    ],
)
def test_sampling_rates_keep_two_digits_when_slow(shape, seconds, expected):
    from tiny_diffusion.cli.main import _rate

    assert _rate(np.zeros(shape), seconds) == expected
