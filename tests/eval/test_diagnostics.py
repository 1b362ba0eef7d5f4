"""`diagnose`: the trained denoiser against the ideal one, the terminal mismatch, copies of training points."""

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import tiny_diffusion as td
from conftest import TINY_IMAGES, TINY_POINTS, flags
from tiny_diffusion.cli import main
from tiny_diffusion.core import flow
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.data.prepare import training_data
from tiny_diffusion.eval.diagnostics import terminal_mismatch
from tiny_diffusion.eval.evaluate import memorized_share

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("T,reaches", [(50, False), (500, True)])
def test_the_terminal_mismatch_of_the_original_and_the_default_schedule(T, reaches):
    schedule = NoiseSchedule(T, "linear")
    data = np.random.default_rng(0).normal([1.0, -2.0], [2.0, 0.5], size=(20_000, 2))
    found = terminal_mismatch(schedule, data)
    ab = float(schedule.alphas_cumprod[-1])
    assert found["signal_kept"] == pytest.approx(math.sqrt(ab)) and found["reaches_noise"] is reaches
    # KL(N(m, S) || N(0, I)) with S diagonal: 1/2 sum(S + m^2 - 1 - log S), the data's moments noised to step T
    m, s = math.sqrt(ab) * data.mean(0), ab * data.var(0) + 1 - ab
    assert found["kl_nats"] == pytest.approx(0.5 * float(np.sum(s + m**2 - 1 - np.log(s))), rel=1e-9)
    if T == 50:
        assert found["signal_kept"] == pytest.approx(0.78, abs=0.01) and found["kl_nats"] > 0.1


def test_the_ideal_denoiser_has_no_error_against_itself():
    model = td.exact("moons", kind="ideal", num_samples=200, num_timesteps=50)
    diagnosis = td.diagnose(model, steps=5, per_step=64)
    rows = diagnosis["per_step"]
    assert rows["t"] == [0, 12, 24, 37, 49] and max(rows["error"]) < 1e-8
    assert all(e > 0 for e in rows["ideal_error"][1:])  # what no model can beat: x_t does not determine x_0
    assert diagnosis["memorized_share"] is None  # no run directory, so no final samples to count


def test_diagnose_writes_its_json_and_figure_and_warns_when_noise_is_not_reached(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *flags(TINY_POINTS, quiet=True), "--out", str(run)]) == 0  # T = 20 linear
    capsys.readouterr()
    assert main(["diagnose", str(run), "--steps", "4", "--per-step", "32"]) == 0
    out, err = capsys.readouterr()
    diagnosis = json.loads((run / "diagnose.json").read_text())
    assert (run / "diagnose.png").stat().st_size > 0 and "wrote" in out
    assert diagnosis["per_step"]["t"] == [0, 6, 13, 19] and diagnosis["terminal"]["reaches_noise"] is False
    assert 0 <= diagnosis["memorized_share"] <= 1
    assert err.startswith("tiny-diffusion: warning: x_T keeps 90% of the signal") and err.count("\n") == 1
    assert "--num-timesteps" in err  # the same warning as train's, the flags named
    assert main(["diagnose", str(run)]) == 2  # an earlier diagnosis is kept
    assert "--overwrite" in capsys.readouterr().err


def test_diagnose_on_an_image_run_says_nothing_but_its_result(tmp_path):
    run = tmp_path / "images"
    assert main(["train", *flags(TINY_IMAGES, quiet=True), "--out", str(run)]) == 0
    # a fresh process: torch warns once per process of a tensor made on a read-only array (the cached images)
    argv = [sys.executable, "-W", "error::UserWarning", "-m", "tiny_diffusion", "diagnose", str(run), "--steps", "3"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr.count("\n") <= 1, done.stderr  # at most the schedule's warning
    assert "Traceback" not in done.stderr and "wrote" in done.stdout
    errors = json.loads((run / "diagnose.json").read_text())["per_step"]["error"]
    assert len(errors) == 3 and all(math.isfinite(e) and e > 0 for e in errors)


class IdealVelocity(torch.nn.Module):
    """The exact velocity E[noise - x0 | x_t] of a flow on a finite point set, written straight from its path: given
    x_i, x_t is N((1 - t) x_i, t^2 I), so x0* = sum_i softmax_i(-|x_t - (1 - t) x_i|^2 / (2 t^2)) x_i, and
    v = (x_t - x0*) / t. Called as a flow run's network is, with t * TIME_SCALE."""

    def __init__(self, points: np.ndarray):
        super().__init__()
        self.points = torch.as_tensor(points, dtype=torch.float64)

    def forward(self, x: torch.Tensor, scaled: torch.Tensor) -> torch.Tensor:
        t = (scaled.double() / flow.TIME_SCALE)[:, None]  # (B, 1)
        x = x.double()
        d2 = ((x[:, None, :] - (1 - t)[:, :, None] * self.points[None]) ** 2).sum(-1)  # (B, N)
        x0 = torch.softmax(-d2 / (2 * t**2), dim=1) @ self.points
        return ((x - x0) / t).float()


def test_a_flow_run_s_diagnosis_finds_no_error_in_the_exact_velocity(tmp_path):
    """The flow's ideal denoiser is the DDPM one at sqrt(alpha-bar) = (1 - t) / r, r = sqrt((1 - t)^2 + t^2): a
    network that is the exact velocity of the training set, written from the flow's own path, has no error there."""
    run = td.train(
        dict(TINY_POINTS, dataset="moons", method="flow", num_samples=200), out=tmp_path / "run", progress=False
    )
    exact = dataclasses.replace(run, network=IdealVelocity(training_data(run.config).x))
    diagnosis = td.diagnose(exact, steps=4, per_step=64)
    rows = diagnosis["per_step"]
    assert diagnosis["method"] == "flow" and rows["t"] == [0.125, 0.375, 0.625, 0.875]
    assert max(rows["error"]) < 1e-9 and min(rows["ideal_error"]) > 1e-4
    # its loss is the velocity regression's, noise - x0 against v: at least the part no network can explain
    assert all(loss > 0.1 for loss in rows["loss"])
    assert min(td.diagnose(run, steps=4, per_step=64)["per_step"]["error"]) > 1e-6  # a trained network is off


def test_a_conditional_flow_run_is_compared_with_the_ideal_denoiser_of_each_class(tmp_path):
    """Each row's class picks its ideal denoiser (one time for all rows): knowing the class, it is closer to the true
    x0 at the noisiest time than the ideal denoiser of all the points is."""
    settings = dict(TINY_POINTS, dataset="blobs", method="flow", conditional=True)
    run = td.train(settings, out=tmp_path / "run", progress=False)
    rows = td.diagnose(run, steps=3, per_step=64)["per_step"]
    assert rows["t"] == pytest.approx([1 / 6, 1 / 2, 5 / 6]) and all(np.isfinite(rows["error"]))
    blind = td.diagnose(td.train({**settings, "conditional": False}, out=tmp_path / "blind", progress=False), steps=3,
                        per_step=64)["per_step"]  # fmt: skip
    assert rows["ideal_error"][-1] < blind["ideal_error"][-1]


def test_diagnose_on_a_flow_run_writes_its_times_and_no_terminal_mismatch(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *flags(TINY_POINTS, quiet=True, method="flow"), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(run), "--steps", "5", "--per-step", "32"]) == 0
    out, err = capsys.readouterr()
    diagnosis = json.loads((run / "diagnose.json").read_text())
    assert diagnosis["per_step"]["t"] == [0.1, 0.3, 0.5, 0.7, 0.9] and diagnosis["terminal"]["kl_nats"] == 0.0
    assert (run / "diagnose.png").stat().st_size > 0 and "x_1 is the noise itself" in out and err == ""
    assert main(["diagnose", str(run), "--steps", "1", "--overwrite"]) == 2
    assert "steps must be between 2 and 1000" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [(["diagnose", "runs/nope"], "does not exist"), (["diagnose", "RUN", "--steps", "1"], "steps must be between")],
)
def test_diagnose_refuses_bad_input_in_one_line(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    if "RUN" in argv:
        assert main(["train", *flags(TINY_POINTS, quiet=True), "--out", str(run)]) == 0
        capsys.readouterr()
    assert main([str(run) if a == "RUN" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_memorized_share_of_a_file_means_the_same_in_any_units(tmp_path):
    base = td.datasets.sample("moons", 400, seed=3).astype(np.float64)
    shares = {}
    for units in (1.0, 250.0):
        path = tmp_path / f"moons{units:g}.csv"
        np.savetxt(path, base * units + units, delimiter=",", header="x,y", comments="")
        config = td.settings(dataset=str(path), num_samples=400, train_batch_size=100)
        train_set = training_data(config)
        train = train_set.x * train_set.scale + train_set.shift  # in the file's units
        rng = np.random.default_rng(4)
        copies, fresh = (train + rng.normal(0, spread * units, train.shape) for spread in (1e-5, 0.05))
        shares[units] = (memorized_share(copies, config), memorized_share(fresh, config))
    assert shares[1.0] == pytest.approx(shares[250.0])
    assert shares[250.0][0] == 1.0 and shares[250.0][1] < 0.05
