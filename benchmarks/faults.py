"""A fault campaign against `tiny-diffusion train`: kills, signals, damaged files, a diverging learning rate and a
second trainer, each tried several times; prints a markdown table of what was tried and what survived.

    python benchmarks/faults.py                       # about 5 minutes on a 2-core CPU
    python benchmarks/faults.py --kills 3 --flips 1   # a quick pass

"Survived" means, for an interruption, that `train --resume` ended with the same bits as an uninterrupted run
(weights, samples, losses, snapshots); for a damaged file, that every command reading it refused it in one line with
exit code 2 (and, for a checkpoint, that --resume fell back to the one before and still ended with the same bits).
Training runs in subprocesses with one thread each (results are bitwise the same only for the same thread count);
the checks run in this process, also with one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# not public: this campaign drives the command line in-process and damages the run directory's own files, so it
# needs the command's entry point and the names of those files (checkpoints, the unfinished run, the manifest)
from tiny_diffusion.cli.main import main as tiny_diffusion
from tiny_diffusion.runs.checkpoints import checkpoint_steps, read_checkpoint
from tiny_diffusion.runs.files import RUN_FILES
from tiny_diffusion.runs.integrity import MANIFEST
from tiny_diffusion.runs.staging import checkpoints_dir, partial_dir

POINTS = [
    "--num-samples",
    "256",
    "--train-batch-size",
    "16",
    "--eval-batch-size",
    "50",
    "--num-epochs",
    "30",
    "--num-timesteps",
    "20",
    "--embedding-size",
    "8",
    "--hidden-size",
    "16",
    "--hidden-layers",
    "1",
    "--save-images-step",
    "5",
    "--quiet",
]  # 480 steps
IMAGES = [
    "--dataset",
    "digits8",
    "--model",
    "seed-cnn",
    "--channels",
    "4",
    "--num-timesteps",
    "20",
    "--num-epochs",
    "6",
    "--sample-steps",
    "5",
    "--num-samples",
    "256",
    "--train-batch-size",
    "32",
    "--eval-batch-size",
    "16",
    "--save-images-step",
    "2",
    "--quiet",
]  # 48 steps
COMPARED = ("model.safetensors", "samples.npy", "loss.npy", "frames.npy")
EXIT_CODES = {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130, signal.SIGTERM: 143}


def cli(*argv: str) -> tuple[int, str]:
    """Run the command in this process; (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = tiny_diffusion(list(argv))
    return code, err.getvalue()


def refused_in_one_line(code: int, err: str) -> bool:
    return code == 2 and err.count("\n") == 1 and err.startswith("tiny-diffusion: error: ")


def same_run(a: Path, b: Path) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in COMPARED)


def start(flags: list[str], out: Path, every: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tiny_diffusion", "train", *flags, "--out", str(out), "--checkpoint-every", str(every)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_checkpoint(proc: subprocess.Popen, out: Path, step: int) -> bool:
    """Wait until a checkpoint of at least ``step`` exists; False if training ended first."""
    while not any(s >= step for s in checkpoint_steps(checkpoints_dir(out))):
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return True


def interrupted(
    flags: list[str], total: int, out: Path, reference: Path, signum: int, rng: random.Random
) -> tuple[bool, str]:
    """Train, send ``signum`` at a random point (after a random checkpoint, or at a random time: even before the
    first checkpoint or during start-up), resume. Whether the result has the same bits as the ``reference`` run,
    and where the signal landed."""
    proc = start(flags, out, every=rng.choice([3, 5, 7, 11]))
    chance = rng.random()
    if chance < 0.1:  # while it starts up
        time.sleep(rng.uniform(0.2, 3.0))
    elif chance < 0.3:  # soon after training begins: often before the first checkpoint
        while not partial_dir(out).exists() and proc.poll() is None:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.3))
    elif not wait_for_checkpoint(proc, out, rng.randrange(1, total * 4 // 5)):
        return same_run(reference, out), "after training"
    time.sleep(rng.uniform(0, 0.01))
    proc.send_signal(signum)
    proc.communicate(timeout=300)
    if proc.returncode == 0:  # it finished before the signal: nothing to resume, the run must still be right
        return same_run(reference, out), "after training"
    if not partial_dir(out).exists():  # stopped while starting up, before there was anything to lose
        return not out.exists(), "during start-up"
    steps = checkpoint_steps(checkpoints_dir(out))
    where = f"at step {steps[0]}" if steps else "before the first checkpoint"
    code, _ = cli("train", "--resume", str(out), "--quiet")
    return proc.returncode == EXIT_CODES[signum] and code == 0 and same_run(reference, out), where


def flip(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def truncate(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(len(data))])


def damaged_run_detected(run: Path, work: Path, name: str, damage, rng: random.Random) -> bool:
    """Damage one file of a copy of ``run``; whether verify, sample and evaluate each refuse it in one line."""
    copy = work / "damaged"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy)
    damage(copy / name, rng)
    commands = (
        ["verify", str(copy)],
        ["sample", str(copy), "--num", "3", "--out", str(work / "s.npy")],
        ["evaluate", str(copy)],
    )
    return all(refused_in_one_line(*cli(*argv)) for argv in commands)


def damaged_checkpoint_survived(
    unfinished: Path, reference: Path, work: Path, suffix: str, damage, rng: random.Random
) -> bool:
    """Damage the newest checkpoint of a copy of an unfinished run; whether verify refuses it in one line and
    --resume falls back to the one before, says so, and still ends with the same bits."""
    copy = work / "ck" / "points"
    shutil.rmtree(copy.parent, ignore_errors=True)
    copy.parent.mkdir(parents=True)
    shutil.copytree(partial_dir(unfinished), partial_dir(copy))
    newest = checkpoint_steps(checkpoints_dir(copy))[0]
    damage(checkpoints_dir(copy) / f"step-{newest:08d}{suffix}", rng)
    if not refused_in_one_line(*cli("verify", str(copy))):
        return False
    code, err = cli("train", "--resume", str(copy), "--quiet")
    return code == 0 and "fell back" in err and same_run(reference, copy)


def diverged_detected(work: Path, learning_rate: str, seed: int) -> bool:
    """A learning rate that makes the loss non-finite: one line naming the step, only finite checkpoints kept."""
    out = work / f"nan-{learning_rate}-{seed}"
    code, err = cli(
        "train",
        *POINTS,
        "--learning-rate",
        learning_rate,
        "--warmup-steps",
        "0",
        "--seed",
        str(seed),
        "--checkpoint-every",
        "1",
        "--out",
        str(out),
    )
    finite = all(
        torch.isfinite(read_checkpoint(checkpoints_dir(out), s)["train"]["losses"]).all()
        for s in checkpoint_steps(checkpoints_dir(out))
    )
    return refused_in_one_line(code, err) and "diverged at step" in err and finite and not out.exists()


def second_trainer_refused(work: Path, reference: Path, resume: bool) -> bool:
    """While one trainer runs, a second (fresh, or --resume) on the same run is refused; the first is unharmed."""
    out = work / f"twice-{resume}" / "points"
    first = start(POINTS, out, every=5)
    if not wait_for_checkpoint(first, out, 20):
        return False
    argv = ["train", "--resume", str(out)] if resume else ["train", *POINTS, "--out", str(out)]
    code, err = cli(*argv)
    first.communicate(timeout=300)
    return (
        refused_in_one_line(code, err)
        and "another training process" in err
        and first.returncode == 0
        and same_run(reference, out)
    )


def _landed(wheres: list[str]) -> str:
    """ "at a checkpointed step: 5, before the first checkpoint: 1, ..."."""
    kinds = ["at step" if w.startswith("at step") else w for w in wheres]
    return ", ".join(f"{'after a checkpoint' if k == 'at step' else k}: {kinds.count(k)}" for k in dict.fromkeys(kinds))


def campaign(work: Path, kills: int, flips: int, seed: int) -> list[tuple[str, int, int, str]]:
    """Every fault, tried; (fault, cases, survived, how) per row."""
    rng = random.Random(seed)
    reference = work / "reference"  # uninterrupted runs
    for name, flags in (("points", POINTS), ("images", IMAGES)):
        assert cli("train", *flags, "--out", str(reference / name))[0] == 0
    rows = []
    for signum in (signal.SIGKILL, signal.SIGINT, signal.SIGTERM):
        for name, flags, total in (("points", POINTS, 480), ("images", IMAGES, 48)):
            count = kills if name == "points" else max(1, kills // 3)
            cases = [
                interrupted(flags, total, work / f"{signum.name}-{name}-{i}" / name, reference / name, signum, rng)
                for i in range(count)
            ]
            rows.append(
                (
                    f"{signum.name} at a random point of {'an image' if name == 'images' else 'a point'} run, "
                    "then `train --resume`",
                    count,
                    sum(ok for ok, _ in cases),
                    _landed([where for _, where in cases]),
                )
            )
    run = reference / "points"
    for label, damage in (("one bit flipped", flip), ("truncated", truncate)):
        ok = [
            damaged_run_detected(run, work, name, damage, rng)
            for name in [*RUN_FILES, MANIFEST]
            for _ in range(flips if damage is flip else 1)
        ]
        rows.append(
            (
                f"run directory: {label} in each of its {len(RUN_FILES) + 1} files",
                len(ok),
                sum(ok),
                "verify, sample and evaluate each refuse it in one line",
            )
        )
    unfinished = work / "unfinished" / "points"
    proc = start(POINTS, unfinished, every=10)
    wait_for_checkpoint(proc, unfinished, 100)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=300)
    for label, damage in (("one bit flipped", flip), ("truncated", truncate)):
        ok = [
            damaged_checkpoint_survived(unfinished, reference / "points", work, suffix, damage, rng)
            for suffix in (".safetensors", ".json")
            for _ in range(flips if damage is flip else 1)
        ]
        rows.append(
            (
                f"newest checkpoint: {label} (tensors or record), then `--resume`",
                len(ok),
                sum(ok),
                "verify refuses it; --resume falls back to the one before and ends with the same bits",
            )
        )
    ok = [diverged_detected(work, lr, s) for lr in ("1e10", "1e20", "1e30") for s in range(2)]
    rows.append(
        (
            "a learning rate that makes the loss non-finite (1e10, 1e20, 1e30)",
            len(ok),
            sum(ok),
            "stops naming the step; only finite checkpoints kept",
        )
    )
    ok = [second_trainer_refused(work, reference / "points", resume) for resume in (False, True)]
    rows.append(
        (
            "a second trainer on the same run (fresh, --resume)",
            len(ok),
            sum(ok),
            "refused in one line; the first ends with the same bits",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kills",
        type=int,
        default=8,
        help="interruptions per signal of the point run (a third as many of the image run)",
    )
    parser.add_argument("--flips", type=int, default=3, help="bit flips per file")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random faults")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start_time = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        rows = campaign(Path(work), args.kills, args.flips, args.seed)
    print("| fault | cases | survived: nothing lost / detected | how |")
    print("|---|---|---|---|")
    for fault, cases, survived, how in rows:
        print(f"| {fault} | {cases} | {survived} | {how} |")
    total, survived = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"\n{survived} of {total} cases survived; {time.perf_counter() - start_time:.0f} s")


if __name__ == "__main__":
    main()
