"""The samplers on the command line: `tiny-diffusion nfe` (sample quality against the network evaluations each
sampler makes) on a tiny point run and a tiny image run, and `sample` / `plot reverse` with the probability-flow
samplers on the point run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import tiny_diffusion as td
from conftest import TINY_IMAGES, TINY_POINTS, flags, without_warnings
from tiny_diffusion.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", *flags(TINY_POINTS, quiet=True), "--out", str(out)]) == 0
    return out


def test_nfe_writes_a_table_json_and_figure(run_dir, capsys):
    argv = ["nfe", str(run_dir), "--samplers", "ddpm", "dpmpp-2m", "heun", "ode", "--steps", "2", "5"]
    assert main([*argv, "--tolerances", "0.01", "--num-samples", "40"]) == 0
    out = capsys.readouterr().out
    rows = json.loads((run_dir / "nfe.json").read_text())["rows"]
    # ddpm walks all T = 20; heun calls the network 2 steps - 1 times; the ode as often as its error control needs
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in rows[:5]] == [
        ("ddpm", None, 20),
        ("dpmpp-2m", 2, 2),
        ("dpmpp-2m", 5, 5),
        ("heun", 2, 3),
        ("heun", 5, 9),
    ]
    assert rows[5]["sampler"] == "ode" and rows[5]["tolerance"] == 0.01 and rows[5]["nfe"] > 5
    assert all(r["metrics"]["n"] == 40 and np.isfinite(r["metrics"]["w2"]) for r in rows)
    assert (run_dir / "nfe.png").read_bytes()[:4] == b"\x89PNG"
    assert out.count("dpmpp-2m") == 2 and "x)" in out and "wrote" in out
    # the same noise and sampler give the same samples as `sample` would draw
    model = td.Diffusion.load(run_dir)
    again = td.evaluate(model.sample(40, sampler="dpmpp-2m", steps=5, seed=0), dataset="dino")
    assert again["w2"] == pytest.approx(rows[2]["metrics"]["w2"])
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err  # refused before any work


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--steps", "21"], "between 1 and num_timesteps (20), got 21"),
        (["--steps", "0"], "between 1 and num_timesteps (20), got 0"),
        (["--tolerances", "0"], "tolerances must be positive"),
        (["--num-samples", "1"], "at least 2"),
        (["--etas", "-1"], "eta must be a finite number >= 0"),
        (["--seeds", "0"], "seeds counts the draws of each setting: at least 1, got 0"),
    ],
)
def test_nfe_refuses_bad_input_in_one_line(run_dir, argv, message, capsys):
    assert main(["nfe", str(run_dir), "--samplers", "euler", "ode", *argv, "--overwrite"]) == 2
    out, err = capsys.readouterr()
    err = without_warnings(err)
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert out == ""  # refused before the table's header


def test_nfe_over_several_seeds_reports_the_means_and_their_spread(run_dir, capsys):
    settings = dict(samplers=["dpmpp-2m", "ode"], steps=[3], tolerances=[1e-3], num=40)
    rows = td.nfe(run_dir, seed=2, seeds=3, **settings)
    alone = [td.nfe(run_dir, seed=k, **settings) for k in (2, 3, 4)]  # each seed's own draw
    for i, row in enumerate(rows):
        each = [draws[i] for draws in alone]
        assert row.seeds == 3 and all(one.seeds == 1 and one.spread == {} for one in each)
        assert row.nfe == pytest.approx(np.mean([one.nfe for one in each]))  # the ode's calls vary with the noise
        for name in ("w2", "precision@0.1", "recall@0.05"):
            values = [one.metrics[name] for one in each]
            assert row.metrics[name] == pytest.approx(np.mean(values))
            assert row.spread[name] == pytest.approx(np.std(values, ddof=1))
        assert row.metrics["w2_floor"] == each[0].metrics["w2_floor"]  # the data's own draws do not change
    assert len({one[1].nfe for one in alone}) > 1  # so the mean above is not a single draw's count
    argv = ["nfe", str(run_dir), "--samplers", "euler", "--steps", "2", "--num-samples", "30", "--seeds", "2"]
    assert main([*argv, "--overwrite"]) == 0
    header, line = capsys.readouterr().out.splitlines()[:2]
    assert header.endswith("W2 sd") and re.search(r"\+-[0-9.]+x$", line)
    assert json.loads((run_dir / "nfe.json").read_text())["seeds"] == 2


def test_nfe_unknown_sampler_lists_the_valid_ones(run_dir, capsys):
    with pytest.raises(SystemExit) as info:
        main(["nfe", str(run_dir), "--samplers", "dpm"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid choice: 'dpm'" in err and "dpmpp-2m" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny-images"
    assert main(["train", *flags(TINY_IMAGES, quiet=True), "--out", str(out)]) == 0
    return out


def test_nfe_scores_an_image_run_with_the_judge(image_run, capsys):
    argv = ["nfe", str(image_run), "--samplers", "ddpm", "ddim", "euler", "--steps", "2", "5", "--etas", "0", "1"]
    assert main([*argv, "--num-samples", "16"]) == 0
    out = capsys.readouterr().out
    rows = json.loads((image_run / "nfe.json").read_text())["rows"]
    # ddpm once (all T = 20), ddim at each step count for each eta, euler at each step count; an image run is
    # autoguided by default, so each step calls the network and its guide
    assert [(r["sampler"], r["steps"], r["eta"], r["nfe"]) for r in rows] == [
        ("ddpm", None, 0.0, 40),
        ("ddim", 2, 0.0, 4),
        ("ddim", 5, 0.0, 10),
        ("ddim", 2, 1.0, 4),
        ("ddim", 5, 1.0, 10),
        ("euler", 2, 0.0, 4),
        ("euler", 5, 0.0, 10),
    ]
    for r in rows:  # the judge's numbers, each beside its floor
        m = r["metrics"]
        assert m["n"] == 16 and m["frechet"] > 0 and m["frechet_floor"] > 0 and 0 <= m["confident"] <= 1
        assert 0 <= m["confident_floor"] <= 1
    assert "Frechet" in out and "W2" not in out and out.count("ddim eta 1") == 2 and "wrote" in out
    assert (image_run / "nfe.png").read_bytes()[:4] == b"\x89PNG"
    # the same noise, sampler and eta give the same images as `sample` would draw
    model = td.Diffusion.load(image_run)
    images = model.sample(16, sampler="ddim", steps=5, eta=1.0, seed=0)
    again = td.evaluate(images, dataset="digits8")
    assert again["frechet"] == pytest.approx(rows[4]["metrics"]["frechet"])
    assert not np.allclose(images, model.sample(16, sampler="ddim", steps=5, eta=0.0, seed=0))  # eta 0: others


def test_nfe_on_images_leaves_out_the_ode_and_steps_past_t(image_run):
    rows = td.nfe(image_run)  # num: the run's eval_batch_size, 16
    # the image ladder is 10, 20, 50 (50 > T = 20 is dropped); ddpm once; no ode (its error control is too costly)
    assert [(r.sampler, r.steps) for r in rows] == [("ddpm", None)] + [
        (sampler, n) for sampler in ("ddim", "dpmpp-2m", "euler", "heun") for n in (10, 20)
    ]
    assert all("frechet" in r.metrics and r.eta == 0 for r in rows)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["sample", "RUN", "--sampler", "ode", "--sample-steps", "5"], "the ode sampler chooses its own steps"),
        (["sample", "RUN", "--sampler", "heun", "--sample-steps", "21"], "between 1 and num_timesteps (20), got 21"),
        (["plot", "reverse", "RUN", "--sampler", "euler", "--sample-steps", "0"], "got 0"),
    ],
)
def test_sampler_steps_out_of_range_are_one_line(run_dir, argv, message, capsys):
    assert main([str(run_dir) if a == "RUN" else a for a in argv]) == 2
    err = without_warnings(capsys.readouterr().err)
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "ode"])
def test_plot_reverse_with_a_probability_flow_sampler(run_dir, sampler, tmp_path, capsys):
    out = tmp_path / f"reverse_{sampler}.png"
    assert main(["plot", "reverse", str(run_dir), "--sampler", sampler, "--panels", "3", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and "3 panels" in capsys.readouterr().out


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny-flow"
    assert main(["train", *flags(TINY_POINTS, quiet=True, method="flow"), "--out", str(out)]) == 0
    return out


def _sampled(argv: list[str], out, capsys) -> tuple[np.ndarray, int]:
    """Run `sample` with ``argv`` into ``out``: the samples and the network calls it says it made."""
    assert main(["sample", *argv, "--num", "30", "--seed", "4", "--out", str(out), "--overwrite"]) == 0
    said = re.search(r"with (\d+) network calls\n$", capsys.readouterr().out)
    assert said is not None
    return np.load(out), int(said.group(1))


@pytest.mark.parametrize("method", ["ddpm", "flow"])
def test_sample_takes_the_ode_tolerances_and_says_how_many_calls_it_made(method, run_dir, flow_run, tmp_path, capsys):
    run = run_dir if method == "ddpm" else flow_run
    model = td.Diffusion.load(run)
    drawn = {}
    for tolerance in (None, 0.1):
        given = [] if tolerance is None else ["--rtol", str(tolerance), "--atol", str(tolerance)]
        samples, calls = _sampled([str(run), "--sampler", "ode", *given], tmp_path / "x.npy", capsys)
        expected = model.sample(30, sampler="ode", rtol=tolerance, atol=tolerance, seed=4, trajectory=True)
        assert calls == expected.nfe  # the count the adaptive solver made, what `nfe` and the API report
        np.testing.assert_array_equal(samples, expected.samples)  # reporting the count changes no sample
        drawn[tolerance] = calls
    assert drawn[0.1] < drawn[None]  # a looser tolerance: fewer calls


def test_sample_counts_the_calls_of_a_fixed_step_sampler(run_dir, tmp_path, capsys):
    samples, calls = _sampled([str(run_dir), "--sampler", "heun", "--sample-steps", "5"], tmp_path / "x.npy", capsys)
    assert calls == 9  # 2 steps - 1
    np.testing.assert_array_equal(samples, td.Diffusion.load(run_dir).sample(30, sampler="heun", steps=5, seed=4))


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["sample", "RUN", "--sampler", "dpmpp-2m", "--rtol", "0.1"],
            "rtol is the ode sampler's tolerance; the dpmpp-2m sampler takes none",
        ),  # fmt: skip
        (["plot", "reverse", "RUN", "--atol", "0.1"], "atol is the ode sampler's tolerance; the ddpm sampler"),
        (["animate", "RUN", "--rtol", "0.1"], "rtol is the ode sampler's tolerance"),
        (["plot", "reverse", "RUN", "--sampler", "ode", "--rtol", "0"], "rtol must be a positive number, got 0"),
        (["sample", "RUN", "--sampler", "ode", "--atol", "-1"], "atol must be a positive number, got -1"),
    ],
)
def test_tolerances_that_do_not_apply_are_refused_in_one_line(run_dir, argv, message, capsys):
    assert main([str(run_dir) if a == "RUN" else a for a in argv]) == 2
    err = without_warnings(capsys.readouterr().err)
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_reverse_process_of_the_ode_sampler_follows_its_tolerances(run_dir):
    from tiny_diffusion.viz.processes import reverse_states

    model = td.Diffusion.load(run_dir)
    loose = reverse_states(model, 20, 3, sampler="ode", rtol=0.1, atol=0.1, seed=1)
    np.testing.assert_array_equal(loose.states[-1], model.sample(20, sampler="ode", rtol=0.1, atol=0.1, seed=1))
    assert not np.array_equal(loose.states[-1], reverse_states(model, 20, 3, sampler="ode", seed=1).states[-1])
