"""A user's point file trains in standardized coordinates unless told not to; a run records what it used, and runs
that recorded either (older runs said false for files) load and resume as they were made."""

import json
import warnings

import numpy as np
import pytest

import tiny_diffusion as td
from conftest import TINY_POINTS, tiny
from tiny_diffusion.cli.main import main
from tiny_diffusion.data.prepare import training_data
from tiny_diffusion.runs.files import read_config
from tiny_diffusion.runs.staging import partial_dir

SMALL = tiny(TINY_POINTS, beta_schedule="cosine")  # reaches noise in 20 steps: no warning about the schedule


@pytest.fixture
def csv(tmp_path):
    """The dino's points moved into [0, 100]."""
    points = td.datasets.sample("dino", 400, seed=0)
    low, high = points.min(axis=0), points.max(axis=0)
    path = tmp_path / "dino100.csv"
    np.savetxt(path, (points - low) / (high - low) * 100, delimiter=",", header="x,y", comments="")
    return path


def _recorded(run):
    return json.loads((run / "config.json").read_text())


@pytest.mark.parametrize(
    "dataset, standardize, recorded",
    [("csv", None, True), ("csv", True, True), ("moons", None, False), ("moons", True, True), ("moons", False, False)],
)
def test_a_run_records_whether_it_standardized(csv, tmp_path, dataset, standardize, recorded):
    name = str(csv) if dataset == "csv" else dataset
    given = {} if standardize is None else {"standardize": standardize}
    with warnings.catch_warnings():
        warnings.simplefilter("error", td.SettingWarning)  # standardized, or unit scale: nothing to warn about
        td.train(dataset=name, out=tmp_path / "run", progress=False, **SMALL, **given)
    meta = _recorded(tmp_path / "run")
    assert meta["config"]["standardize"] is recorded
    assert (np.asarray(meta["data"]["scale"]) != 1).all() == recorded
    # the same settings, automatic or not, are the recorded ones (as resuming and studies compare them)
    assert read_config(tmp_path / "run").differences(td.settings(dataset=name, **SMALL, **given)) == []


def test_a_file_trained_without_standardize_warns_and_its_samples_are_in_its_units(csv, tmp_path):
    with pytest.warns(td.SettingWarning, match=r"coordinates reach 100 .* set standardize") as caught:
        model = td.train(dataset=str(csv), standardize=False, out=tmp_path / "run", progress=False, **SMALL)
    assert caught[0].filename == __file__  # the warning names the caller's line, not the library's
    assert _recorded(tmp_path / "run")["config"]["standardize"] is False
    again = td.Diffusion.load(tmp_path / "run")
    assert not again.config.standardizes and (again.scale == 1).all()
    np.testing.assert_array_equal(again.sample(20, seed=3), model.sample(20, seed=3))


@pytest.mark.parametrize("standardize", [None, False])
def test_an_interrupted_file_run_resumes_with_the_standardization_it_started_with(csv, tmp_path, standardize):
    run = tmp_path / "run"

    def stop(snapshot):
        if snapshot.epoch == 2:
            raise KeyboardInterrupt

    given = {} if standardize is None else {"standardize": standardize}
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore", td.SettingWarning)
        td.train(dataset=str(csv), out=run, progress=False, checkpoint_every=4, callback=stop, **SMALL, **given)
    assert partial_dir(run).exists()
    if standardize is False:  # as a run of a file made before files standardized by default: the API's default
        # settings now differ from the recorded ones, and resuming with them is refused in one line
        with pytest.raises(td.UsageError, match="these differ: standardize: False -> True"):
            td.train_summary(td.settings(dataset=str(csv), **SMALL), run, resume=True, progress=False)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # the command line takes the recorded settings
    assert _recorded(run)["config"]["standardize"] is (standardize is None)


def test_a_file_with_a_constant_coordinate_standardizes_the_others(tmp_path):
    path = tmp_path / "plane.csv"
    rng = np.random.default_rng(0)
    path.write_text("x,y,z\n" + "".join(f"{x},{y},7\n" for x, y in rng.uniform(0, 100, (300, 2))))
    train_set = training_data(td.settings(dataset=str(path), **SMALL))
    np.testing.assert_allclose(train_set.scale[2], 1.0)
    np.testing.assert_allclose(train_set.x.std(axis=0), [1, 1, 0], atol=1e-6)
    np.testing.assert_allclose(train_set.in_data_units()[:, 2], 7, atol=1e-6)
