"""Run directories: atomic files, staged directories that never lose earlier results."""

import numpy as np
import pytest

from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs import load_points, save_npy, staged_run_dir, write_atomic


def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "f.bin"
    write_atomic(path, b"first")
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_failed_run_leaves_the_earlier_run_untouched(tmp_path):
    out = tmp_path / "run"
    with staged_run_dir(out) as stage:
        (stage / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_run_dir(out, overwrite=True) as stage:
            (stage / "a.txt").write_text("new")
            raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_existing_run_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(UsageError, match="already exists"):
        with staged_run_dir(out):
            pass


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
