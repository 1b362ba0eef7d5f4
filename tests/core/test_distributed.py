"""Training as several processes (torchrun, gloo on the CPU): each takes its share of every global batch, together
they compute what one process computes, they end with the same state, and rank 0 alone writes one run directory."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import TINY_IMAGES, TINY_POINTS, flags, single_thread
from tiny_diffusion.cli.main import main
from tiny_diffusion.core.distributed import Cluster, resume_command
from tiny_diffusion.runs.checkpoints import checkpoint_steps
from tiny_diffusion.runs.staging import checkpoints_dir

# 16 steps per epoch of a global batch of 16 (8 per process), 160 in all
POINTS = flags(TINY_POINTS, train_batch_size=16, num_epochs=10, save_images_step=5, ema_decay=0.9, quiet=True)
# 8 steps per epoch, 24 in all; conditional: the label drops are shared out too
IMAGES = flags(TINY_IMAGES, num_epochs=3, save_images_step=2, conditional=True, quiet=True)
AGREE = "all 2 processes end with the same training state"

pytestmark = pytest.mark.usefixtures("one_thread")


def _torchrun(args, *, processes=2, timeout=300):
    """``tiny-diffusion ARGS`` as ``processes`` processes started by torchrun, one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            "-m",
            "tiny_diffusion",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _ours(stderr):
    """The lines tiny-diffusion wrote to stderr (not torchrun's)."""
    return [line for line in stderr.splitlines() if line.startswith("tiny-diffusion")]


def _single(args, out):
    with single_thread():
        assert main(["train", *args, "--out", str(out)]) == 0


def _assert_written_once(run, proc):
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("trained in") == 1 and proc.stdout.count("parameters;") == 1  # rank 0 alone speaks
    assert "global batch" in proc.stdout and "= 2 processes x" in proc.stdout
    lines = _ours(proc.stderr)
    assert sum(AGREE in line for line in lines) == 1 and len(set(lines)) == len(lines)  # no line twice
    assert sorted(p.name for p in run.parent.iterdir()) == [run.name]  # no partial folder, lock or temporary left
    assert main(["verify", str(run)]) == 0


@pytest.mark.parametrize("flags,model", [(POINTS, "mlp"), (IMAGES, "unet")], ids=["points", "images"])
def test_two_processes_train_what_one_trains_and_write_one_run(tmp_path, capsys, flags, model):
    args = [*flags, "--model", model]
    _single(args, tmp_path / "one" / "run")
    proc = _torchrun(["train", *args, "--out", str(tmp_path / "two" / "run")])
    _assert_written_once(tmp_path / "two" / "run", proc)
    one, two = tmp_path / "one" / "run", tmp_path / "two" / "run"
    # the same global batches, noise and timesteps: the same losses, up to the order of float sums
    np.testing.assert_allclose(np.load(two / "loss.npy"), np.load(one / "loss.npy"), rtol=0, atol=2e-5)
    weights_one, weights_two = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert weights_one.keys() == weights_two.keys()
    for name, value in weights_one.items():
        np.testing.assert_allclose(weights_two[name], value, rtol=0, atol=1e-4, err_msg=name)


def test_batch_norm_statistics_and_their_ema_stay_the_same_on_every_process(tmp_path):
    # seed-cnn's BatchNorm normalises each process's own rows on a CPU (no SyncBatchNorm there), so the run differs
    # from one process; its running statistics are averaged after every step and the EMA copy follows them
    run = tmp_path / "run"
    proc = _torchrun(["train", *IMAGES, "--model", "seed-cnn", "--ema-decay", "0.9", "--out", str(run)])
    _assert_written_once(run, proc)


def test_the_global_batch_must_divide_among_the_processes(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", *POINTS, "--train-batch-size", "15", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "tiny-diffusion: error: --train-batch-size is the global batch, shared evenly by the 2 processes: "
        "15 does not divide by 2\n"
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv,message",
    [
        (["verify", "runs/base"], "only `train` runs as several processes (torchrun); run `verify` as one"),
        (
            ["train", *POINTS],
            "WORLD_SIZE=2 is set but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not: start the processes with torchrun",
        ),
    ],
    ids=["not train", "not torchrun"],
)
def test_what_cannot_run_as_several_processes_is_refused_in_one_line(monkeypatch, tmp_path, capsys, argv, message):
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err == f"tiny-diffusion: error: {message}\n"


def test_a_refusal_by_rank_0_stops_every_process_at_once_with_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()  # rank 0 finds the directory taken; rank 1 must not wait for it
    start = time.monotonic()
    proc = _torchrun(["train", *POINTS, "--out", str(run)])
    assert proc.returncode != 0
    assert _ours(proc.stderr) == [
        f"tiny-diffusion: error: run directory {run} already exists; pass --overwrite to "
        "replace it or choose another --out"
    ]
    assert time.monotonic() - start < 120  # far below the collectives' timeout (30 min)


@pytest.mark.parametrize("batch,processes", [(16, 1), (16, 2), (12, 3), (64, 8)])
def test_the_processes_share_out_every_row_of_a_batch_once(batch, processes):
    shards = [Cluster(rank, processes).shard(batch) for rank in range(processes)]
    rows = [row for shard in shards for row in range(batch)[shard]]
    assert rows == list(range(batch))
    assert {len(range(batch)[shard]) for shard in shards} == {batch // processes}


@pytest.mark.parametrize(
    "env,command",
    [
        ({}, "tiny-diffusion train --resume runs/x"),
        (
            {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"},
            "torchrun --nproc_per_node=2 -m tiny_diffusion train --resume runs/x",
        ),
    ],
)
def test_the_resume_command_starts_as_many_processes_per_machine(monkeypatch, env, command):
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert resume_command("runs/x") == command


# Two processes joined by hand (no torchrun): the collectives training relies on, each checked on both ranks.
COLLECTIVES = textwrap.dedent("""
    import sys, torch
    from torch import nn
    from tiny_diffusion.core.distributed import Cluster, ReplicasDiffer, joined
    from tiny_diffusion.errors import UsageError

    with joined(torch.device("cpu")) as cluster:
        rank = cluster.rank
        assert cluster.broadcast_bytes(b"from rank 0" if rank == 0 else b"ignored") == b"from rank 0"
        assert cluster.broadcast_bytes(b"") == b""
        assert cluster.mean(torch.tensor(float(rank))).item() == 0.5
        assert cluster.any(rank, 0) == (1, 0)
        norm = nn.BatchNorm1d(3)
        norm.running_mean.fill_(rank)  # as if each process saw other rows
        cluster.average_buffers(norm)
        assert torch.equal(norm.running_mean, torch.full((3,), 0.5)) and norm.num_batches_tracked.item() == 0
        assert cluster.on_main(lambda: "done") == ("done" if rank == 0 else None)
        try:
            cluster.on_main(lambda: (_ for _ in ()).throw(UsageError("refused by rank 0")))
        except UsageError as e:
            assert str(e) == "refused by rank 0"
        else:
            raise AssertionError("rank 0's refusal did not reach rank " + str(rank))
        same = {"w": torch.arange(4.0)}
        assert len(cluster.check_replicas(same)) == 64
        try:
            cluster.check_replicas({"w": torch.arange(4.0) + rank * 1e-6})
        except ReplicasDiffer as e:
            assert "process 1 differs from process 0" in str(e)
        else:
            raise AssertionError("differing replicas passed")
    print("ok", rank)
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_collectives_agree_across_two_processes(tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(COLLECTIVES)
    common = {
        **os.environ,
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "OMP_NUM_THREADS": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            env={**common, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for rank, (proc, (out, err)) in enumerate(zip(procs, results)):
        assert proc.returncode == 0, err
        assert out == f"ok {rank}\n"


@pytest.mark.slow
def test_a_run_of_two_processes_stopped_by_sigterm_resumes_to_the_same_bits(tmp_path):
    flags = [*POINTS, "--num-epochs", "30"]
    whole, cut = tmp_path / "whole" / "run", tmp_path / "cut" / "run"
    _assert_written_once(whole, _torchrun(["train", *flags, "--out", str(whole)]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "tiny_diffusion",
            "train",
            *flags,
            "--out",
            str(cut),
            "--checkpoint-every",
            "25",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not checkpoint_steps(checkpoints_dir(cut)):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both processes
    err = proc.communicate(timeout=120)[1]
    stopped = [line for line in _ours(err) if "interrupted by SIGTERM" in line]
    assert len(stopped) == 1, err  # the processes stop at the same step; rank 0 saves it and says so
    assert "resume with: torchrun --nproc_per_node=2 -m tiny_diffusion train --resume" in stopped[0]
    resumed = _torchrun(["train", "--resume", str(cut), "--quiet"])
    assert "resuming" in resumed.stderr
    _assert_written_once(cut, resumed)
    for name in ("model.safetensors", "samples.npy", "loss.npy", "frames.npy"):
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
