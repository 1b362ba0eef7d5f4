"""Run directories: atomic files, unfinished runs beside them that never lose earlier results."""

import numpy as np
import pytest

from conftest import TINY_POINTS
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.diffusion import Diffusion
from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs.files import load_points, save_npy, write_atomic
from tiny_diffusion.runs.job import train_run
from tiny_diffusion.runs.staging import begin, check_fresh, finish
from tiny_diffusion.studies.reproduce import ORIGINAL


def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "f.bin"
    write_atomic(path, b"first")
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def _stage(out, text):
    stage = begin(out, {"config": {}})
    (stage / "a.txt").write_text(text)
    return stage


def test_an_unfinished_run_lives_beside_its_directory_and_replaces_the_old_one_only_when_complete(tmp_path):
    out = tmp_path / "run"
    finish(_stage(out, "old"), out, ["config.json", "a.txt"])
    check_fresh(out, overwrite=True)
    stage = _stage(out, "new")
    assert stage == tmp_path / ".run.partial" and (out / "a.txt").read_text() == "old"  # not yet replaced
    finish(stage, out, ["config.json", "a.txt"])
    assert (out / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "config.json", "manifest.json"]


def test_a_run_that_stopped_keeps_its_unfinished_run_and_blocks_a_new_one_until_resumed_or_overwritten(tmp_path):
    out = tmp_path / "run"
    _stage(out, "unfinished")
    with pytest.raises(UsageError, match=r"unfinished run .*--resume .*--overwrite"):
        check_fresh(out, overwrite=False)
    check_fresh(out, overwrite=True)
    assert (_stage(out, "again") / "a.txt").read_text() == "again"


def test_existing_run_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(UsageError, match="already exists"):
        check_fresh(out, overwrite=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        check_fresh(tmp_path / "file", overwrite=True)


def test_load_points_refuses_non_arrays_and_wrong_shapes(tmp_path):
    good = tmp_path / "good.npy"
    save_npy(good, np.zeros((4, 3)))
    assert load_points(good).shape == (4, 3)
    flat = tmp_path / "flat.npy"
    save_npy(flat, np.zeros(4))
    with pytest.raises(UsageError, match=r"\(N, D\)"):
        load_points(flat)
    with pytest.raises(UsageError, match="does not exist"):
        load_points(tmp_path / "missing.npy")


def test_snapshots_are_drawn_by_the_snapshot_sampler_and_the_final_samples_by_the_runs_own(tmp_path, monkeypatch):
    used, draw = [], Diffusion.draw

    def spy(self, num, how, **kwargs):
        used.append(how.sampler)
        return draw(self, num, how, **kwargs)

    monkeypatch.setattr(Diffusion, "draw", spy)
    train_run(TrainConfig(**TINY_POINTS, device="cpu"), tmp_path / "a", progress=False)
    assert used == ["dpmpp-2m", "dpmpp-2m", "ddpm"]  # a snapshot after each of 2 epochs, then the 50 samples
    used.clear()
    train_run(TrainConfig(**TINY_POINTS, device="cpu", snapshot_sampler="ddim"), tmp_path / "b", progress=False)
    assert used == ["ddim", "ddim", "ddpm"]
    used.clear()
    train_run(TrainConfig(**TINY_POINTS, device="cpu", method="flow"), tmp_path / "c", progress=False)
    assert used == ["midpoint", "midpoint", "midpoint"]  # a flow run's own, which takes few steps already


def test_which_sampler_draws_the_snapshots():
    assert TrainConfig().own_snapshot_sampler == "dpmpp-2m"  # in place of ddpm's T steps
    assert TrainConfig(sampler="ddim").own_snapshot_sampler == "ddim"
    assert TrainConfig.from_dict({"dataset": "digits8"}).own_snapshot_sampler == "ddim"  # images: their own
    assert TrainConfig.from_dict({**ORIGINAL}).own_snapshot_sampler == "ddpm"  # the original drew them so
    with pytest.raises(UsageError, match="snapshot_sampler dpmpp-2m is not for flow runs; choose from euler, heun"):
        TrainConfig(method="flow", snapshot_sampler="dpmpp-2m").validate()
    assert TrainConfig(snapshot_sampler="dpmpp-2m").with_method("flow").snapshot_sampler is None


def test_a_point_run_trains_on_one_cpu_thread_unless_told_otherwise(tmp_path, monkeypatch):
    import torch

    from tiny_diffusion.runs.job import training_threads

    cpu = torch.device("cpu")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert training_threads(TrainConfig(), cpu, None) == 1
    assert training_threads(TrainConfig(), cpu, 3) == 3
    assert training_threads(TrainConfig.from_dict({"dataset": "digits8"}), cpu, None) is None  # torch's own
    with pytest.raises(UsageError, match="--threads must be positive, got 0"):
        training_threads(TrainConfig(), cpu, 0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert training_threads(TrainConfig(), cpu, None) is None  # the user's say
    monkeypatch.delenv("OMP_NUM_THREADS")

    before, seen = torch.get_num_threads(), []
    config = TrainConfig(**TINY_POINTS, device="cpu")
    train_run(config, tmp_path / "run", progress=False, callback=lambda _: seen.append(torch.get_num_threads()))
    assert seen == [1, 1] and torch.get_num_threads() == before  # one thread while training, then as it was
