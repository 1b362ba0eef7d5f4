"""`--exact DATASET` in place of a run directory: `sample`, `plot reverse`, `animate` and `nfe` draw the exact model
of a point dataset, and write into runs/exact_DATASET (runs/exact_DATASET_flow for `--exact-method flow`)."""

import json

import numpy as np
import pytest

from tiny_diffusion.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_sample_draws_the_exact_mixture_into_runs_exact_dataset(here, capsys):
    assert main(["sample", "--exact", "8gaussians", "--num", "400", "--sampler", "ddim", "--sample-steps", "50"]) == 0
    folder = here / "runs" / "exact_8gaussians"
    samples = np.load(folder / "sampled_ddim_seed0.npy")
    assert samples.shape == (400, 2) and (folder / "sampled_ddim_seed0.png").is_file()
    radius = np.linalg.norm(samples, axis=1)  # the eight centres lie on a circle of radius 2.83 (FFJORD's set)
    assert abs(np.median(radius) - 2.83) < 0.2
    assert "runs/exact_8gaussians/sampled_ddim_seed0.npy" in capsys.readouterr().out


def test_plot_reverse_and_animate_take_an_exact_model(here):
    assert main(["plot", "reverse", "--exact", "8gaussians", "--num", "200", "--sampler", "ddim",
                 "--sample-steps", "20"]) == 0  # fmt: skip
    assert main(["animate", "--exact", "8gaussians", "--num", "100", "--sampler", "ddim", "--sample-steps", "10"]) == 0
    folder = here / "runs" / "exact_8gaussians"
    assert (folder / "reverse.png").is_file() and (folder / "reverse.gif").is_file()
    assert not (folder / "training.gif").exists()  # an exact model has no training to show


@pytest.mark.parametrize("method,samplers", [("ddpm", ["dpmpp-2m", "euler"]), ("flow", ["midpoint", "heun"])])
def test_nfe_measures_the_samplers_on_the_exact_model(here, capsys, method, samplers):
    """What the samplers alone lose: each sampler's samples of the exact model are closer to the data in W2 at 20
    steps than at 2; a flow model's samplers are asked for by name, and the other method's refused."""
    argv = ["nfe", "--exact", "blobs", "--exact-method", method, "--samplers", *samplers, "--steps", "2", "20"]
    assert main([*argv, "--num-samples", "300"]) == 0
    folder = here / "runs" / ("exact_blobs" + ("_flow" if method == "flow" else ""))
    rows = json.loads((folder / "nfe.json").read_text())["rows"]
    assert [(r["sampler"], r["steps"]) for r in rows] == [(s, n) for s in samplers for n in (2, 20)]
    for few, many in zip(rows[::2], rows[1::2]):
        assert many["metrics"]["w2"] < few["metrics"]["w2"]
    assert (folder / "nfe.png").is_file() and "wrote" in capsys.readouterr().out
    other = "dpmpp-2m" if method == "flow" else "midpoint"  # a sampler of the other method: refused in one line
    assert main(["nfe", "--exact", "blobs", "--exact-method", method, "--samplers", other, "--overwrite"]) == 2
    assert "does not apply to this" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["sample"], "give a run directory or --exact DATASET"),
        (["sample", "runs/x", "--exact", "dino"], "give a run directory or --exact DATASET"),
        (["sample", "--exact", "mnist5k"], "needs a point dataset"),
        (["plot", "reverse", "--exact", "nope"], "unknown dataset"),
        (["animate", "--exact", "digits8"], "needs a point dataset"),
    ],
)
def test_bad_exact_models_are_refused_in_one_line(here, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (here / "runs").exists() or not any((here / "runs").iterdir())
