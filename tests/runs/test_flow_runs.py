"""Flow-matching runs end to end through the command line into tmp_path: points and images, conditional with
guidance, the pictures, likelihood and evaluation, resuming to the same bits, an ablation of the method, and the
settings of one method refused on a run of the other in one line."""

import json
import signal
import threading
import time

import numpy as np
import pytest

import tiny_diffusion as td
from conftest import TINY_IMAGES, TINY_POINTS, flags, single_thread, tiny, without_warnings
from tiny_diffusion.cli.main import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.diffusion import resolve_sampling
from tiny_diffusion.runs.checkpoints import checkpoint_steps
from tiny_diffusion.runs.staging import checkpoints_dir
from tiny_diffusion.studies.ablation import run_study

POINTS = flags(TINY_POINTS, method="flow", train_batch_size=16, num_epochs=6, save_images_step=2, quiet=True)
IMAGES = flags(
    TINY_IMAGES, method="flow", model="seed-cnn", num_epochs=4, save_images_step=2, conditional=True, quiet=True
)
IMAGES += ["--guidance", "1"]
COMPARED = ("model.safetensors", "samples.npy", "loss.npy", "frames.npy")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A flow run of points and a conditional flow run of images, trained uninterrupted in this process."""
    with single_thread():
        out = tmp_path_factory.mktemp("flow")
        assert main(["train", *POINTS, "--out", str(out / "points")]) == 0
        assert main(["train", *IMAGES, "--out", str(out / "images")]) == 0
    return out


def _one_line_error(capsys) -> str:
    err = without_warnings(capsys.readouterr().err)
    assert err.startswith("tiny-diffusion: error: ") and err.count("\n") == 1, err
    return err


def test_a_flow_run_records_its_method_and_draws_with_the_flows_own_sampler(runs):
    for name, shape in (("points", (50, 2)), ("images", (16, 1, 8, 8))):
        meta = json.loads((runs / name / "config.json").read_text())
        assert meta["config"]["method"] == "flow"
        samples = np.load(runs / name / "samples.npy")
        assert samples.shape == shape and np.isfinite(samples).all()
    model = td.Diffusion.load(runs / "points")
    assert model.is_flow and model.sampling == resolve_sampling(model.config, "midpoint", 25)
    assert "method='flow'" in repr(model)


def test_a_run_written_before_the_method_existed_loads_as_ddpm():
    values = TrainConfig(**TINY_POINTS).to_dict()
    del values["method"]
    assert TrainConfig.from_dict(values).method == "ddpm"


@pytest.mark.parametrize("sampler", ["euler", "heun", "midpoint", "ode"])
def test_every_flow_sampler_draws_from_the_command_line(runs, sampler, tmp_path, capsys):
    out = tmp_path / "s.npy"
    argv = ["sample", str(runs / "points"), "--num", "20", "--sampler", sampler, "--sample-steps", "4"]
    assert main([*argv, "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (20, 2) and np.isfinite(samples).all()
    model = td.Diffusion.load(runs / "points")
    again = model.sample(20, sampler=sampler, steps=4, trajectory=True)
    np.testing.assert_array_equal(again.samples, model.sample(20, sampler=sampler, steps=4))
    assert list(again.timesteps) == [1.0, 0.75, 0.5, 0.25, 0.0] and again.num_timesteps == 1
    assert again.nfe == {"euler": 4, "heun": 7, "midpoint": 8}.get(sampler, again.nfe) > 0


def test_a_conditional_flow_run_draws_the_class_it_is_asked_for_under_guidance(runs, tmp_path):
    model = td.Diffusion.load(runs / "images")
    assert model.classes
    plain = model.sample(4, prompt="3", guidance=0.0, seed=1)
    guided = model.sample(4, prompt="3", guidance=2.0, seed=1)
    assert plain.shape == guided.shape == (4, 1, 8, 8) and not np.array_equal(plain, guided)
    out = tmp_path / "sevens.npy"
    assert main(["sample", str(runs / "images"), "--num", "3", "--prompt", "7", "--out", str(out)]) == 0
    assert np.load(out).shape == (3, 1, 8, 8)


# the panels' times: 5 evenly spaced states of the run's sampler's 25 (points) or 5 (images: TINY_IMAGES) steps
@pytest.mark.parametrize("name,times", [("points", "1, 0.76, 0.52, 0.24, 0"), ("images", "1, 0.80, 0.60, 0.20, 0")])
def test_the_pictures_of_a_flow_run(runs, name, times, tmp_path, capsys):
    run = runs / name
    assert main(["plot", "reverse", str(run), "--panels", "5", "--out", str(tmp_path / "reverse.png")]) == 0
    assert f"t = {times})" in capsys.readouterr().out
    assert main(["animate", str(run), "--overwrite"]) == 0
    assert (run / "reverse.gif").read_bytes().startswith(b"GIF")
    dataset = ["--dataset", "moons"] if name == "points" else ["--dataset", "digits8"]
    forward = tmp_path / "forward.png"
    assert main(["plot", "forward", *dataset, "--method", "flow", "--panels", "3", "--out", str(forward)]) == 0
    assert "t = 0, 0.50, 1" in capsys.readouterr().out and forward.read_bytes().startswith(b"\x89PNG")


def test_the_forward_path_of_flow_reaches_the_noise_itself():
    from tiny_diffusion.viz.processes import flow_forward_states

    points = np.random.default_rng(0).normal(size=(30, 2))
    states = flow_forward_states(points, [0.0, 0.5, 1.0], seed=2)
    np.testing.assert_allclose(states[0], points, atol=1e-6)
    np.testing.assert_allclose(states[1], (states[0] + states[2]) / 2, atol=1e-6)  # a straight line


def test_likelihood_and_evaluation_of_a_flow_run(runs, tmp_path, capsys):
    points = tmp_path / "points.npy"
    np.save(points, np.load(runs / "points" / "samples.npy")[:5].astype(np.float64))
    assert main(["likelihood", str(runs / "points"), "--points", str(points), "--out", str(tmp_path / "lp.npy")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert np.isfinite(summary["log_prob"]) and np.isfinite(np.load(tmp_path / "lp.npy")).all()
    assert (
        main(["likelihood", str(runs / "points"), "--points", str(points), "--bound", "--out", str(tmp_path / "b.npy")])
        == 2
    )
    assert "--bound is ddpm's variational bound" in _one_line_error(capsys)
    assert main(["evaluate", str(runs / "points")]) == 0
    assert np.isfinite(json.loads(capsys.readouterr().out)["w2"])
    with pytest.raises(td.UsageError, match="variational bound is ddpm's"):
        td.Diffusion.load(runs / "points").elbo(np.zeros((2, 2)))


def _interrupted(argv, out, step, *, every):
    """Train in this process and stop it with a real SIGINT once a checkpoint of at least ``step`` is written."""
    main_thread = threading.main_thread().ident
    deadline = time.monotonic() + 120

    def watch():
        while not any(s >= step for s in checkpoint_steps(checkpoints_dir(out))) and time.monotonic() < deadline:
            time.sleep(0.001)
        signal.pthread_kill(main_thread, signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    assert main(["train", *argv, "--out", str(out), "--checkpoint-every", str(every)]) == 130


@pytest.mark.parametrize("name,argv,step,every", [("points", POINTS, 40, 7), ("images", IMAGES, 12, 4)])
def test_a_flow_run_interrupted_resumes_to_the_same_bits(runs, name, argv, step, every, tmp_path, capsys):
    out = tmp_path / "run"
    _interrupted(argv, out, step, every=every)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert "from its checkpoint of step" in capsys.readouterr().err
    for file in COMPARED:
        assert (out / file).read_bytes() == (runs / name / file).read_bytes(), file


def test_an_ablation_compares_the_methods_from_a_ddpm_base(tmp_path):
    # cosine betas: T = 20 then reaches noise, so the ddpm run draws no warning
    settings = tiny(TINY_POINTS, num_epochs=1, eval_batch_size=60, sampler="ddim", sample_steps=10)
    base = TrainConfig(**settings, beta_schedule="cosine")
    rows = run_study(base, "method", ["ddpm", "flow"], tmp_path, progress=False)
    assert [r.run_dir.name for r in rows] == ["method=ddpm", "method=flow"]
    flow_config = td.Diffusion.load(rows[1].run_dir).config
    assert flow_config.method == "flow" and flow_config.sampler == "midpoint"  # the flow's own sampler, not ddim
    assert all(np.isfinite(r.metrics["w2"]) for r in rows)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--method", "flow", "--sampler", "ddpm"], "--sampler ddpm is not for flow runs; choose from euler, heun"),
        (["--method", "flow", "--target", "x0"], "--target x0 is for ddpm runs"),
        (["--method", "flow", "--min-snr-gamma", "5"], "--min-snr-gamma weights ddpm's steps"),
        (["--sampler", "midpoint"], "--sampler midpoint is not for ddpm runs; choose from ddpm, ddim"),
    ],
)
def test_the_settings_of_the_other_method_are_refused_in_one_line(argv, message, tmp_path, capsys):
    assert main(["train", *flags(TINY_POINTS, quiet=True), *argv, "--out", str(tmp_path / "r")]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_ddpm_sampler_on_a_flow_run_is_refused_listing_the_flows(runs, sampler, tmp_path, capsys):
    assert main(["sample", str(runs / "points"), "--sampler", sampler, "--out", str(tmp_path / "s.npy")]) == 2
    err = _one_line_error(capsys)
    assert f"the {sampler} sampler of ddpm runs does not apply to this flow run" in err
    assert "choose from euler, heun, midpoint, ode" in err


def test_a_flow_sampler_on_a_ddpm_run_is_refused_listing_the_ddpms():
    with pytest.raises(td.UsageError, match="^the midpoint sampler of flow runs does not apply to this ddpm run; "):
        resolve_sampling(TrainConfig(**TINY_POINTS), "midpoint")


def test_the_api_of_a_flow_run_takes_times_in_zero_to_one(runs):
    model = td.Diffusion.load(runs / "points")
    x0 = np.load(runs / "points" / "samples.npy")[:6]
    np.testing.assert_allclose(model.add_noise(x0, 0.0, seed=1), x0, atol=1e-6)
    noise = model.add_noise(x0, 1.0, seed=1)
    np.testing.assert_allclose(model.add_noise(x0 + 1, 1.0, seed=1), noise, atol=1e-6)  # the data is gone at t = 1
    halfway = model.add_noise(x0, [0.5] * 6, seed=1)
    np.testing.assert_allclose(halfway, (x0 + noise) / 2, atol=1e-5)
    assert model.predict_x0(halfway, 0.5).shape == (6, 2)
    for bad in (1.5, -0.1):
        with pytest.raises(td.UsageError, match="a flow run's t must be a time from 0"):
            model.add_noise(x0, bad)
    with pytest.raises(td.UsageError, match="a flow run predicts velocities"):
        model.noise_predictor(6)
    assert td.diagnose(model, steps=3, per_step=8)["per_step"]["t"] == pytest.approx([1 / 6, 1 / 2, 5 / 6])
    assert td.exact("moons", method="flow", num_samples=100).is_flow  # the ideal velocity of its training set


def test_a_run_records_the_sampler_it_used_and_compares_equal_to_one_that_names_it():
    for method, own in (("ddpm", "ddpm"), ("flow", "midpoint")):
        config = TrainConfig(**TINY_POINTS, method=method)
        assert config.sampler is None and config.resolved().sampler == own
        assert not config.differences(TrainConfig(**TINY_POINTS, method=method, sampler=own))


def test_nfe_of_a_flow_run_walks_its_own_samplers(tmp_path):
    model = td.train(**tiny(TINY_POINTS, method="flow"), out=tmp_path / "flow", progress=False)
    rows = td.nfe(model, steps=[2, 4], tolerances=[1e-2], num=50)
    assert [(r.sampler, r.steps) for r in rows] == [
        ("euler", 2), ("euler", 4), ("heun", 2), ("heun", 4), ("midpoint", 2), ("midpoint", 4), ("ode", None)
    ]  # fmt: skip
    calls = {(r.sampler, r.steps): r.nfe for r in rows}
    assert calls["euler", 4] == 4 and calls["midpoint", 4] == 8 and calls["ode", None] > 0
    with pytest.raises(td.UsageError, match="does not apply to this flow run"):
        td.nfe(model, samplers=["dpmpp-2m"], steps=[2], num=50)


@pytest.mark.parametrize("sampler", ["euler", "heun", "midpoint"])
def test_a_flow_samplers_default_steps_are_flows_own(sampler):
    # euler and heun are also ddpm samplers, whose default is 20 steps; a flow run's default is FLOW_SAMPLE_STEPS
    config = TrainConfig(**tiny(TINY_POINTS, method="flow"))
    assert resolve_sampling(config, sampler).steps == 25
    assert resolve_sampling(TrainConfig(**TINY_POINTS), "heun").steps == 20  # a ddpm run: FAST_STEPS, at most T
