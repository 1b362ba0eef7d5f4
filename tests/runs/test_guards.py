"""Guarded training: one trainer per run directory (a lock the OS releases when its holder dies), and a run that
diverges stops at once, naming the step, keeping only checkpoints of finite states."""

import re

import pytest
import torch

from conftest import TINY_POINTS, flags, without_warnings
from tiny_diffusion.cli.main import main
from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs.checkpoints import checkpoint_steps, read_checkpoint
from tiny_diffusion.runs.locking import lock_path, run_lock
from tiny_diffusion.runs.staging import checkpoints_dir, partial_dir

pytestmark = pytest.mark.usefixtures("one_thread")  # fast on a busy machine

TINY = flags(
    TINY_POINTS,
    num_samples=128,
    train_batch_size=32,
    eval_batch_size=20,
    num_epochs=3,
    num_timesteps=10,
    hidden_size=8,
    quiet=True,
    save_images_step=100,
)


def test_a_second_trainer_on_the_same_run_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    with run_lock(out):  # another open file description: the same as another process to flock
        assert main(["train", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another training process (pid " in err
    assert not out.exists() and not partial_dir(out).exists()
    assert main(["train", *TINY, "--out", str(out)]) == 0  # free again, and the lock file is gone
    assert not lock_path(out).exists()


def test_a_lock_file_left_behind_does_not_block(tmp_path):
    out = tmp_path / "run"
    lock_path(out).write_text("12345\n")  # what a process killed with SIGKILL leaves: the file, but no lock
    with run_lock(out):
        with pytest.raises(UsageError, match="another training process"):
            with run_lock(out):
                pass
    assert not lock_path(out).exists()


def test_a_diverging_run_stops_naming_the_step_and_keeps_only_finite_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    flags = [*TINY, "--learning-rate", "1e30", "--warmup-steps", "0", "--checkpoint-every", "1", "--out", str(out)]
    assert main(["train", *flags]) == 2
    err = without_warnings(capsys.readouterr().err)
    assert err.count("\n") == 1
    found = re.search(
        r"training diverged at step (\d+) of 12 \(epoch (\d)\): loss .*a lower --learning-rate than "
        r"1e\+30 \(and --overwrite to start again; the last good checkpoint, of step (\d+), is kept",
        err,
    )
    assert found, err
    step, epoch, kept = map(int, found.groups())
    assert epoch == (step - 1) // 4 + 1 and kept < step
    assert checkpoint_steps(checkpoints_dir(out))[0] == kept
    for saved in checkpoint_steps(checkpoints_dir(out)):
        state = read_checkpoint(checkpoints_dir(out), saved)["train"]
        assert torch.isfinite(state["losses"]).all() and all(v.isfinite().all() for v in state["model"].values())
    assert not out.exists()
    assert main(["train", *flags, "--learning-rate", "1e-3", "--overwrite"]) == 0  # a lower rate, from the start
