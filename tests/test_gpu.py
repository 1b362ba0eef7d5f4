"""The CUDA path: every tensor of training and sampling on the GPU, mixed precision there, and two processes on two
GPUs (NCCL). Skipped where there is no CUDA device (as on the machine this was written on: not run there yet)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import TINY_IMAGES, TINY_POINTS, flags
from tiny_diffusion.cli.main import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.core.training import TrainState, train
from tiny_diffusion.diffusion import Diffusion
from tiny_diffusion.models import build_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

POINTS = flags(TINY_POINTS, quiet=True)
IMAGES = flags(TINY_IMAGES, quiet=True)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize(
    "flags",
    [POINTS, [*IMAGES, "--model", "unet"], [*IMAGES, "--model", "seed-cnn", "--conditional", "--ema-decay", "0.9"]],
    ids=["points", "unet", "seed-cnn"],
)
def test_a_run_trains_and_samples_on_the_gpu(tmp_path, flags, precision):
    out = tmp_path / "run"
    assert main(["train", *flags, "--device", "cuda", "--precision", precision, "--out", str(out)]) == 0
    assert np.isfinite(np.load(out / "samples.npy")).all() and np.isfinite(np.load(out / "loss.npy")).all()
    model = Diffusion.load(out, device="cuda")
    assert model.device.type == "cuda" and next(model.network.parameters()).device.type == "cuda"
    trajectory = model.sample(8, sampler="ddim", steps=5, seed=0, trajectory=True)
    assert np.isfinite(trajectory.samples).all() and trajectory.states.shape[0] == 6


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_tensor_of_a_training_state_is_on_the_gpu(precision):
    config = TrainConfig(
        num_samples=128,
        train_batch_size=32,
        num_epochs=1,
        num_timesteps=20,
        embedding_size=8,
        hidden_size=16,
        hidden_layers=1,
        ema_decay=0.9,
        precision=precision,
    )
    device = torch.device("cuda")
    model = build_model(config, shape=(2,)).to(device)
    state = TrainState.start(model, config, generator=torch.Generator(device).manual_seed(0), num_samples=128)
    train(state, NoiseSchedule(20, device=device), torch.randn(128, 2, device=device), config, progress=False)
    assert state.losses.device.type == state.grad_norms.device.type == "cuda"
    assert state.order is None and state.generator.device.type == "cuda"
    moments = [v for s in state.optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    assert {t.device.type for t in [*moments, *state.ema.parameters(), *state.ema.buffers()]} == {"cuda"}
    assert state.scaler.is_enabled() == (precision == "fp16")
    assert torch.isfinite(state.losses).all()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_processes_train_on_two_gpus_with_nccl(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "tiny_diffusion",
            "train",
            *IMAGES,
            "--model",
            "seed-cnn",
            "--ema-decay",
            "0.9",
            "--device",
            "cuda",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "all 2 processes end with the same training state" in proc.stderr
    assert "= 2 processes x 16" in proc.stdout and "on cuda:0" in proc.stdout
    assert main(["verify", str(out)]) == 0
