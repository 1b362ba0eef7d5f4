"""Autoguidance (``--guide-at``, ``--guidance`` on an unconditional run): the weights kept early in training guide the
final ones, output = model + w (model - guide), as Karras et al. (2024) guide with a weaker model."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import TINY_IMAGES, TINY_POINTS, flags, tiny, without_warnings
from tiny_diffusion import Diffusion, settings, train
from tiny_diffusion.cli.main import main
from tiny_diffusion.errors import UsageError
from tiny_diffusion.models import autoguided
from tiny_diffusion.runs.files import load_run

pytestmark = pytest.mark.usefixtures("one_thread")

# a constant learning rate and no warm-up: the first epoch of a two-epoch run is then a one-epoch run, step for step
STEADY = tiny(TINY_POINTS, lr_schedule="constant", warmup_steps=0)


def test_autoguided_pushes_the_output_away_from_the_guide():
    model, guide = (lambda x, t: 3 * x + t[:, None]), (lambda x, t: x)
    x, t = torch.randn(4, 2), torch.arange(4.0)
    assert autoguided(model, guide, 0.0) is model  # no guidance: the model alone, one pass
    good, bad = model(x, t), guide(x, t)
    torch.testing.assert_close(autoguided(model, guide, 0.5)(x, t), good + 0.5 * (good - bad))
    torch.testing.assert_close(autoguided(model, guide, 2.0)(x, t), 3 * good - 2 * bad)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["weights", "ema"])
def test_the_guide_is_the_sampled_weights_after_its_share_of_training(ema_decay, tmp_path):
    """Two epochs with guide_at 0.5 keep, as the guide, exactly what a one-epoch run ends with (its EMA copy when
    EMA is on)."""
    half = train(tiny(STEADY, num_epochs=1, ema_decay=ema_decay), out=tmp_path / "half", progress=False)
    whole = train(tiny(STEADY, ema_decay=ema_decay, guide_at=0.5), out=tmp_path / "whole", progress=False)
    assert (tmp_path / "whole" / "guide.safetensors").read_bytes() == (
        tmp_path / "half" / "model.safetensors"
    ).read_bytes()
    assert whole.guide is not None and half.guide is None
    assert not (tmp_path / "half" / "guide.safetensors").exists()


@pytest.fixture(scope="module")
def guided_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("autoguided") / "run"
    train(tiny(TINY_IMAGES, model="seed-cnn", num_epochs=3), out=out, progress=False)
    return out


def test_an_image_run_is_autoguided_by_default_and_its_files_give_back_its_samples(guided_run):
    model = Diffusion.load(guided_run)
    assert (model.config.guide_at, model.config.guidance) == (0.1, 0.5)
    assert model.guide is not None
    own = model.sample(16, seed=model.config.seed + 2)  # the seed of the run's own final draw
    np.testing.assert_array_equal(own, np.load(guided_run / "samples.npy"))
    calls = model.sample(4, trajectory=True).nfe
    assert calls == 2 * model.sample(4, guidance=0.0, trajectory=True).nfe  # model and guide, each step


def test_the_guided_prediction_is_the_model_pushed_away_from_its_guide(guided_run):
    model = Diffusion.load(guided_run)
    x = torch.randn(3, *model.shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 7, 19])
    with torch.no_grad():
        good, bad = model.network(x, t), model.guide(x, t)
        for w in (0.5, 2.0):
            torch.testing.assert_close(model._output(3, None, w)(x, t), good + w * (good - bad))
    alone = dataclasses.replace(model, guide=None)
    np.testing.assert_array_equal(model.sample(4, guidance=0.0), alone.sample(4))
    assert not np.array_equal(model.sample(4), alone.sample(4))


def test_sample_takes_the_autoguidance_scale_from_the_command_line(guided_run, tmp_path, capsys):
    out = tmp_path / "plain.npy"
    assert main(["sample", str(guided_run), "--num", "4", "--guidance", "0", "--out", str(out)]) == 0
    alone = dataclasses.replace(Diffusion.load(guided_run), guide=None)
    np.testing.assert_array_equal(np.load(out), alone.sample(4))


def _copied_without_guide(run, to):
    """A copy of ``run`` without its guide weights, and without the manifest that would miss them."""
    to.mkdir()
    for path in run.iterdir():
        if path.name not in ("guide.safetensors", "manifest.json"):
            (to / path.name).write_bytes(path.read_bytes())
    return to


def test_a_missing_guide_is_one_clear_error(guided_run, tmp_path):
    copy = _copied_without_guide(guided_run, tmp_path / "run")
    with pytest.raises(UsageError, match="has no guide.safetensors"):
        load_run(copy)


def test_which_runs_take_the_image_defaults_autoguidance():
    assert (settings(dataset="digits8").guide_at, settings(dataset="digits8").guidance) == (0.1, 0.5)
    for changes in ({"conditional": True}, {"method": "flow"}, {"preset": "study"}):
        config = settings(dataset="digits8", **changes)
        assert (config.guide_at, config.guidance) == (0.0, 0.0), changes
    assert settings(dataset="dino").guide_at == 0.0  # points: none unless asked


@pytest.mark.parametrize("missing", [("guide_at",), ("guide_at", "guidance")], ids=["autoguidance", "guidance"])
def test_an_image_run_written_before_autoguidance_loads_without_a_guide(guided_run, tmp_path, missing):
    """A config.json from before the settings (without guidance too, from before conditional runs) reads as the
    unguided run it was."""
    run = _copied_without_guide(guided_run, tmp_path / "old")
    meta = json.loads((run / "config.json").read_text())
    for name in missing:
        del meta["config"][name]
    if "guidance" not in missing:
        meta["config"]["guidance"] = 0.0  # what every earlier unconditional run recorded
    (run / "config.json").write_text(json.dumps(meta))
    model = load_run(run)
    assert (model.config.guide_at, model.config.guidance, model.guide) == (0.0, 0.0, None)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"guide_at": 1.0}, "--guide-at must be in [0, 1), got 1.0"),
        ({"guide_at": -0.1}, "--guide-at must be in [0, 1), got -0.1"),
        ({"guidance": 1.0}, "guidance of an unconditional run needs a guide: set --guide-at (say 0.1)"),
        ({"conditional": True, "guide_at": 0.1}, "guided by its own unconditional model: leave --guide-at 0"),
        ({"guide_at": 0.1, "guidance": -1.0}, "guidance must be >= 0"),
    ],
)
def test_nonsense_is_refused_in_one_line(changes, message, tmp_path, capsys):
    argv = ["train", *flags(TINY_POINTS, dataset="blobs", **changes), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = without_warnings(capsys.readouterr().err)
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_guidance_on_a_run_with_nothing_to_guide_it_is_refused(tmp_path):
    model = train(TINY_POINTS, out=tmp_path / "run", progress=False)
    with pytest.raises(UsageError, match="nothing to guide it"):
        model.sample(4, guidance=1.0)


def test_an_autoguided_image_run_has_its_page(guided_run, tmp_path):
    """Its reverse process is drawn in Python, guide and all (a point run's page draws with both networks:
    tests/viz/test_page_browser.py)."""
    page = Diffusion.load(guided_run).export_html(tmp_path / "page.html")
    assert page.stat().st_size > 0


def test_plot_guidance_draws_a_row_per_autoguidance_scale(guided_run, tmp_path, capsys):
    out = tmp_path / "guidance.png"
    argv = ["plot", "guidance", str(guided_run), "--per-class", "3", "--scales", "0", "0.5", "1", "--out", str(out)]
    assert main(argv) == 0
    assert f"wrote {out} (3 guidance scales x 3 samples)" in capsys.readouterr().out
    assert out.read_bytes()[:4] == b"\x89PNG"
    plain = train(TINY_POINTS, out=tmp_path / "plain", progress=False)
    assert plain.guide is None
    assert main(["plot", "guidance", str(tmp_path / "plain"), "--out", str(tmp_path / "no.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train one with --conditional or --guide-at (autoguidance)" in err
