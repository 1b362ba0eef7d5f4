"""Run directories: atomic files, unfinished runs beside them that never lose earlier results."""

import numpy as np
import pytest

from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs.files import load_points, save_npy, write_atomic
from tiny_diffusion.runs.staging import begin, check_fresh, finish


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
