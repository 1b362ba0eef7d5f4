"""The public Python API: ``td.train``, ``td.Diffusion``, ``td.evaluate``, ``td.datasets``, and the library as the
one owner of a run's sampling defaults."""

import json

import numpy as np
import pytest
import torch

import tiny_diffusion as td
from conftest import TINY_POINTS, tiny
from tiny_diffusion.cli import main
from tiny_diffusion.diffusion import Sampling, resolve_sampling

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = tiny(
    TINY_POINTS,
    num_samples=512,
    train_batch_size=128,
    eval_batch_size=64,
    num_epochs=4,
    num_timesteps=40,
    hidden_size=32,
    embedding_size=16,
    save_images_step=2,
)


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "moons"
    snapshots = []
    model = td.train(dataset="moons", out=out, progress=False, callback=snapshots.append, **SMALL)
    return model, out, snapshots


def test_the_five_lines_work_as_written(moons):
    model, out, _ = moons
    x = model.sample(100)
    assert isinstance(x, np.ndarray) and x.shape == (100, 2) and np.isfinite(x).all()
    traj = model.sample(50, sampler="ddim", steps=10, seed=1, trajectory=True)
    assert traj.samples.shape == (50, 2) and traj.states.shape == (11, 50, 2)
    assert traj.timesteps.tolist() == [40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0]
    np.testing.assert_array_equal(traj.states[-1], traj.samples)
    loaded = td.Diffusion.load(out)
    np.testing.assert_array_equal(loaded.sample(100), x)  # the same model, from its directory alone
    metrics = td.evaluate(loaded)
    assert set(metrics) >= {"w2", "w2_floor", "precision@0.1", "recall@0.1"}


def test_evaluate_gives_the_numbers_the_command_prints(moons, capsys):
    model, out, _ = moons
    assert main(["evaluate", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(td.evaluate(model))


def test_the_callback_sees_every_snapshot_with_the_losses_so_far(moons):
    _, _, snapshots = moons
    steps_per_epoch = SMALL["num_samples"] // SMALL["train_batch_size"]
    assert [s.epoch for s in snapshots] == [1, 3, 4]  # every 2nd epoch from the first, and the last
    for s in snapshots:
        assert s.step == s.epoch * steps_per_epoch and s.losses.shape == (s.step,)
        assert s.samples.shape == (SMALL["eval_batch_size"], 2)


def test_the_model_trained_is_the_model_saved(moons):
    model, out, _ = moons
    saved = np.load(out / "samples.npy")  # drawn with the run's seed + 2
    np.testing.assert_array_equal(model.sample(len(saved), seed=2), saved)


def test_samples_are_in_the_data_units_and_nothing_scales_them_twice(tmp_path):
    model = td.train(dataset="moons", standardize=True, out=tmp_path / "run", progress=False, **SMALL)
    assert not hasattr(model, "to_data_units")  # model coordinates never leave the object
    low, high = model.data_range()
    data = td.datasets.sample("moons", 2000, seed=5)
    np.testing.assert_allclose([low, high], [data.min(axis=0), data.max(axis=0)], atol=0.2)
    x = model.sample(200)
    assert ((x >= low - 1e-4) & (x <= high + 1e-4)).all()  # predicted x0 clipped to the data's range
    # the forward process at its first step barely moves the data, in the data's own units
    np.testing.assert_allclose(model.add_noise(data[:10], 0), data[:10], atol=0.1)


@pytest.mark.parametrize(
    "asked,expected",
    [
        ((None, None, None), Sampling("ddim", 50, 1.0)),  # the run's own
        (("ddim", 10, None), Sampling("ddim", 10, 1.0)),
        (("ddim", None, 0.0), Sampling("ddim", 50, 0.0)),
        (("ddpm", None, None), Sampling("ddpm", None, 0.0)),  # another sampler: all steps, eta 0
        (("dpmpp-2m", None, None), Sampling("dpmpp-2m", 20, 0.0)),  # a probability-flow sampler: 20 steps
        (("ode", None, None), Sampling("ode", None, 0.0, rtol=1e-3, atol=1e-3)),  # its own steps, stated tolerances
    ],
)
def test_the_library_owns_the_sampling_defaults(asked, expected):
    config = td.settings(dataset="digits8", sampler="ddim", sample_steps=50, eta=1.0)
    assert resolve_sampling(config, *asked) == expected


@pytest.mark.parametrize(
    "asked,message",
    [
        (dict(sampler="euler", steps=10, spacing="even"), "unknown step spacing 'even'; choose from karras, trailing"),
        (dict(sampler="ode", rtol=-1.0), "rtol must be a positive number"),
        (dict(sampler="heun", steps=1001), "between 1 and num_timesteps (1000), got 1001"),
    ],
)
def test_resolve_sampling_refuses_in_one_line(asked, message):
    with pytest.raises(td.UsageError) as info:
        resolve_sampling(td.settings(num_timesteps=1000), **asked)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_run_samples_with_its_own_sampler_steps_and_eta(tmp_path):
    """The image defaults walk 50 DDIM steps with eta 1: so does sample() on the loaded run, one call per step.
    (The issue's command, with only the final samples cut from 500 to 4 to save time.)"""
    out = tmp_path / "m"
    assert (
        main(
            [
                "train",
                "--dataset",
                "mnist5k",
                "--num-epochs",
                "1",
                "--eval-batch-size",
                "4",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    model = td.Diffusion.load(out)
    assert model.sampling == Sampling("ddim", 50, 1.0)
    batches = []
    model.network.register_forward_hook(lambda module, args, output: batches.append(len(args[0])))
    x = model.sample(4)
    assert batches == [4] * 50 and x.shape == (4, 1, 28, 28)
    # eta 1 draws fresh noise at every step: a different eta gives other samples from the same seed
    assert not np.allclose(model.sample(4, eta=0.0), x)


def test_a_conditional_model_draws_what_it_is_asked(tmp_path):
    model = td.train(dataset="blobs", conditional=True, out=tmp_path / "run", progress=False, **SMALL)
    assert model.classes and model.sample(6, prompt=model.classes[1], guidance=1.0).shape == (6, 2)
    rows = []  # classifier-free guidance runs the network on 2N rows per prediction: the nfe counts both passes
    model.network.register_forward_hook(lambda module, args, output: rows.append(len(args[0])))
    for guidance, passes in ((1.0, 2), (0.0, 1)):
        rows.clear()
        drawn = model.sample(6, sampler="dpmpp-2m", steps=5, guidance=guidance, trajectory=True)
        assert drawn.nfe == 5 * passes == sum(rows) // 6
        rows.clear()  # the ode sampler, between integer steps too: each call on the batch that holds the labels
        drawn = model.sample(6, sampler="ode", guidance=guidance, trajectory=True)
        assert set(rows) == {6 * passes} and drawn.nfe == sum(rows) // 6 and np.isfinite(drawn.samples).all()
    with pytest.raises(td.UsageError, match="unknown|choose"):
        model.sample(2, prompt="no such class")
    plain = td.train(dataset="moons", out=tmp_path / "plain", progress=False, **SMALL)
    with pytest.raises(td.UsageError, match="conditional"):
        plain.sample(2, prompt="seven")


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: td.settings(dataset="moons", num_epochs=0), "num_epochs must be positive"),
        (lambda: td.settings(no_such_setting=1), "no_such_setting"),
        (lambda: td.evaluate("runs/nope"), "run directory runs/nope does not exist"),
        (lambda: td.evaluate(np.zeros((10, 2))), "which dataset"),
        (lambda: td.evaluate(np.zeros((10, 3)), dataset="moons"), "3-D points"),
        (lambda: td.Diffusion.load("runs/nope"), "does not exist"),
        (lambda: td.datasets.get("nope"), "unknown dataset"),
    ],
)
def test_bad_input_is_a_usage_error_and_a_value_error(call, message):
    with pytest.raises(td.UsageError, match=message) as raised:
        call()
    assert isinstance(raised.value, ValueError)


def test_the_datasets_are_listed_and_drawn():
    assert "dino" in td.datasets.names("points") and "mnist5k" in td.datasets.names("images")
    np.testing.assert_array_equal(td.datasets.sample("dino", 10, seed=3), td.datasets.sample("dino", 10, seed=3))
    assert td.datasets.sample("moons", 7).shape == (7, 2)


def test_the_public_names_and_the_forward_process():
    assert {"train", "Diffusion", "evaluate", "datasets", "NoiseSchedule", "UsageError"} <= set(dir(td))
    assert all(getattr(td, name) is not None for name in td.__all__)  # the lazy table names real things
    schedule = td.NoiseSchedule(100, "cosine")
    x0 = torch.ones(3, 2)
    assert schedule.add_noise(x0, torch.zeros(3, 2), torch.tensor([99, 99, 99])).abs().max() < 0.05
