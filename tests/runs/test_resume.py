"""Interrupted runs, end to end: a training process killed (SIGKILL) or stopped (SIGINT, SIGTERM) at a random step
and resumed with `train --resume` ends with the same bits as a run that was never interrupted."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import TINY_IMAGES, TINY_POINTS, flags, single_thread, without_warnings
from tiny_diffusion.cli.main import main
from tiny_diffusion.runs.checkpoints import checkpoint_steps, read_checkpoint
from tiny_diffusion.runs.staging import checkpoints_dir, partial_dir

# 16 steps per epoch, 480 in all: about a second of training
POINTS = flags(TINY_POINTS, train_batch_size=16, num_epochs=30, save_images_step=5, quiet=True)
# 8 steps per epoch, 48 in all
IMAGES = flags(TINY_IMAGES, model="seed-cnn", num_epochs=6, save_images_step=2, quiet=True)
# a conditional run also draws which labels to drop: one more use of the generator that must carry on exactly
CONDITIONAL = [*IMAGES, "--conditional", "--guidance", "1"]
# autoguided (as image runs are by default), its guide kept at step 24: a run stopped before then keeps it on resuming
AUTOGUIDED = [*IMAGES, "--guide-at", "0.5"]
COMPARED = ("model.safetensors", "samples.npy", "loss.npy", "frames.npy")


# Every run compared here uses one thread (the subprocesses too): results are bitwise the same only for the same
# thread count, and one thread is also the fastest on a busy 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs, trained in this process, by name."""
    with single_thread():
        out = tmp_path_factory.mktemp("reference")
        assert main(["train", *POINTS, "--out", str(out / "points")]) == 0
        assert main(["train", *IMAGES, "--out", str(out / "images")]) == 0
        assert main(["train", *CONDITIONAL, "--out", str(out / "conditional")]) == 0
        assert main(["train", *AUTOGUIDED, "--out", str(out / "autoguided")]) == 0
    return out


def _start(flags, out, every):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tiny_diffusion", "train", *flags, "--out", str(out), "--checkpoint-every", str(every)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop_after(proc, out, step, signum, *, delay=0.0):
    """Send ``signum`` once a checkpoint of at least ``step`` exists (and ``delay`` seconds more); the stderr."""
    deadline = time.monotonic() + 120
    while not any(s >= step for s in checkpoint_steps(checkpoints_dir(out))):
        assert proc.poll() is None, f"training ended before step {step}: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signum)
    return proc.communicate(timeout=120)[1]


def _interrupted(flags, out, step, *, every=25):
    """Train in this process and stop it with a real SIGINT once a checkpoint of at least ``step`` is written."""
    main_thread = threading.main_thread().ident
    deadline = time.monotonic() + 120

    def watch():
        while not any(s >= step for s in checkpoint_steps(checkpoints_dir(out))) and time.monotonic() < deadline:
            time.sleep(0.001)
        signal.pthread_kill(main_thread, signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    assert main(["train", *flags, "--out", str(out), "--checkpoint-every", str(every)]) == 130


def _resume(out, capsys):
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    return capsys.readouterr().err


def _assert_same_run(a, b):
    for name in COMPARED:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    if (a / "guide.safetensors").exists():  # an autoguided run's guide
        assert (a / "guide.safetensors").read_bytes() == (b / "guide.safetensors").read_bytes()
    assert not partial_dir(b).exists() and not (b / "checkpoints").exists()
    assert sorted(p.name for p in b.parent.iterdir()) == [b.name]  # no partial folder, lock or temporary left


def _killed_and_resumed(seed, reference, tmp_path, capsys):
    rng = random.Random(seed)
    out = tmp_path / "run"
    proc = _start(POINTS, out, every=rng.choice([5, 7, 11]))
    _stop_after(proc, out, rng.randrange(1, 300), signal.SIGKILL, delay=rng.uniform(0, 0.01))
    assert proc.returncode == -signal.SIGKILL
    newest = checkpoint_steps(checkpoints_dir(out))[0]
    err = _resume(out, capsys)
    assert f"resuming {out} from its checkpoint of step {newest} of 480" in err
    _assert_same_run(reference / "points", out)


def test_a_run_killed_at_a_random_step_resumes_to_the_same_bits(reference, tmp_path, capsys):
    _killed_and_resumed(0, reference, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
def test_runs_killed_at_random_steps_resume_to_the_same_bits(seed, reference, tmp_path, capsys):
    _killed_and_resumed(seed, reference, tmp_path, capsys)


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130)], ids=["SIGINT"])
def test_a_signal_saves_a_checkpoint_on_the_way_out_and_says_how_to_resume(signum, code, reference, tmp_path, capsys):
    out = tmp_path / "run"
    proc = _start(POINTS, out, every=50)
    err = without_warnings(_stop_after(proc, out, 100, signum))
    assert proc.returncode == code
    assert err.count("\n") == 1 and f"resume with: tiny-diffusion train --resume {out}" in err
    step = checkpoint_steps(checkpoints_dir(out))[0]
    assert f"at step {step} of 480; saved a checkpoint of that step" in err  # written on the way out
    assert read_checkpoint(checkpoints_dir(out), step)["train"]["step"] == step
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.partial"]  # the resume point, nothing else
    _resume(out, capsys)
    _assert_same_run(reference / "points", out)


def test_an_image_run_interrupted_resumes_to_the_same_bits(reference, tmp_path, capsys):
    out = tmp_path / "run"
    _interrupted(IMAGES, out, 20, every=4)
    assert "from its checkpoint of step" in _resume(out, capsys)
    _assert_same_run(reference / "images", out)


def test_a_conditional_run_interrupted_resumes_to_the_same_bits(reference, tmp_path, capsys):
    out = tmp_path / "run"
    _interrupted(CONDITIONAL, out, 20, every=4)
    assert "from its checkpoint of step" in _resume(out, capsys)
    _assert_same_run(reference / "conditional", out)
    assert (out / "labels.npy").read_bytes() == (reference / "conditional" / "labels.npy").read_bytes()


def test_an_autoguided_run_stopped_before_its_guide_is_kept_resumes_to_the_same_bits(reference, tmp_path, capsys):
    out = tmp_path / "run"
    _interrupted(AUTOGUIDED, out, 4, every=2)
    step = checkpoint_steps(checkpoints_dir(out))[0]
    assert step < 24 and read_checkpoint(checkpoints_dir(out), step)["train"]["guide"] is None
    assert "from its checkpoint of step" in _resume(out, capsys)
    _assert_same_run(reference / "autoguided", out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum,every,step,delay,code",
    [(signal.SIGTERM, 3, 12, 0.0, 143), (signal.SIGKILL, 5, 20, 0.02, -signal.SIGKILL)],
    ids=["SIGTERM", "SIGKILL between checkpoints"],
)
def test_an_image_run_stopped_by_a_signal_resumes_to_the_same_bits(
    reference, tmp_path, capsys, signum, every, step, delay, code
):
    out = tmp_path / "run"
    proc = _start(IMAGES, out, every=every)
    _stop_after(proc, out, step, signum, delay=delay)
    assert proc.returncode == code
    assert "resuming" in _resume(out, capsys)
    _assert_same_run(reference / "images", out)


@pytest.fixture
def unfinished(tmp_path, capsys):
    out = tmp_path / "run"
    _interrupted(POINTS, out, 100)
    capsys.readouterr()
    return out


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tiny-diffusion: error: ")
    return err


def test_resume_takes_the_saved_settings_and_refuses_others_in_one_line(unfinished, reference, tmp_path, capsys):
    out = str(unfinished)
    assert "these differ: learning_rate: 0.006 -> 0.1" in _error(
        capsys, ["train", "--resume", out, "--learning-rate", "0.1"]
    )
    assert "drop --out and --overwrite" in _error(capsys, ["train", "--resume", out, "--out", out])
    assert "has an unfinished run" in _error(capsys, ["train", *POINTS, "--out", out])  # a fresh run would lose it
    assert "nothing to resume" in _error(capsys, ["train", "--resume", str(tmp_path / "other")])
    assert main(["train", "--resume", out, "--num-epochs", "30", "--device", "cpu", "--quiet"]) == 0  # agreeing flags
    assert "resuming" in capsys.readouterr().err
    _assert_same_run(reference / "points", unfinished)
    assert "is a complete run: there is nothing to resume" in _error(capsys, ["train", "--resume", out])


@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_resume_falls_back_from_a_corrupt_checkpoint_and_says_so(unfinished, reference, capsys, suffix, damage):
    steps = checkpoint_steps(checkpoints_dir(unfinished))
    path = checkpoints_dir(unfinished) / f"step-{steps[0]:08d}{suffix}"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else _flipped(data, len(data) // 3))
    err = _error(capsys, ["verify", str(unfinished)])
    assert f"{path} is corrupt" in err and "would fall back" in err
    err = _resume(unfinished, capsys)
    assert f"{path} is corrupt" in err and "fell back" in err
    assert f"from its checkpoint of step {steps[1]} of 480" in err
    _assert_same_run(reference / "points", unfinished)


def _flipped(data: bytes, where: int) -> bytes:
    return data[:where] + bytes([data[where] ^ 0x10]) + data[where + 1 :]


def test_a_corrupt_config_of_an_unfinished_run_is_reported_in_one_line(unfinished, capsys):
    config = partial_dir(unfinished) / "config.json"
    config.write_bytes(_flipped(config.read_bytes(), 50))
    assert f"{config} is corrupt" in _error(capsys, ["train", "--resume", str(unfinished)])


def test_an_interrupted_overwrite_keeps_the_old_run_until_the_new_one_is_complete(reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *IMAGES, "--out", str(out)]) == 0
    _interrupted([*POINTS, "--overwrite"], out, 50)
    assert (out / "model.safetensors").read_bytes() == (reference / "images" / "model.safetensors").read_bytes()
    assert main(["verify", str(out)]) == 0
    assert "an unfinished run" in capsys.readouterr().out
    _resume(out, capsys)
    _assert_same_run(reference / "points", out)


def test_overwrite_discards_an_unfinished_run(unfinished, reference, capsys):
    assert main(["train", *POINTS, "--out", str(unfinished), "--overwrite"]) == 0
    _assert_same_run(reference / "points", unfinished)
