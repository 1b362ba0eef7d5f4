"""Mixed precision: autocast to bf16 or fp16 trains, the weights stay fp32, fp16's scaler skips overflowing steps
(not a divergence) and is checkpointed; the command refuses fp16 off a GPU and records the precision of a run."""

import json
import re

import numpy as np
import pytest
import torch

from tiny_diffusion.cli.main import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.precision import PRECISIONS, autocast, check_precision
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.core.training import TrainState, train
from tiny_diffusion.models import build_model

SMALL = dict(
    num_samples=256,
    train_batch_size=64,
    num_timesteps=20,
    embedding_size=8,
    hidden_size=32,
    hidden_layers=1,
    warmup_steps=4,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _state(config: TrainConfig) -> tuple[TrainState, torch.Tensor]:
    torch.manual_seed(0)
    data = torch.from_numpy(np.random.default_rng(0).normal(size=(config.num_samples, 2)).astype(np.float32) * 0.1 + 1)
    state = TrainState.start(
        build_model(config, shape=(2,)), config, generator=torch.Generator().manual_seed(0), num_samples=len(data)
    )
    return state, data


# fp16 autocast runs on a CPU too (the command refuses it there as slow and pointless, but the library can test it)
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_lowers_the_loss_and_keeps_fp32_weights(precision):
    config = TrainConfig(**SMALL, num_epochs=30, learning_rate=3e-3, precision=precision)
    state, data = _state(config)
    result = train(state, NoiseSchedule(20), data, config, progress=False)
    assert np.isfinite(result.losses).all()
    assert result.losses[-20:].mean() < 0.7 * result.losses[:20].mean()
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}
    assert state.scaler.is_enabled() == (precision == "fp16")


def test_the_forward_pass_runs_in_the_precision_asked_for():
    linear = torch.nn.Linear(4, 4)
    for name, dtype in PRECISIONS.items():
        with autocast(name, torch.device("cpu")):
            assert linear(torch.ones(2, 4)).dtype == (dtype or torch.float32), name


def test_an_overflowing_fp16_step_is_skipped_and_not_called_a_divergence():
    config = TrainConfig(**SMALL, num_epochs=1, precision="fp16")
    state, data = _state(config)
    state.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)  # every gradient overflows at first
    before = [p.detach().clone() for p in state.model.parameters()]
    train(state, NoiseSchedule(20), data, config, progress=False)  # 4 steps: no Diverged
    assert state.scaler.get_scale() == 2.0**96  # halved at each of them
    assert all(torch.equal(a, b) for a, b in zip(before, state.model.parameters()))  # every step skipped
    assert state.grad_norms.tolist() == [0.0] * 4 and state.losses.isfinite().all()


@pytest.mark.parametrize("device,ok", [("cpu", False), ("mps", False), ("cuda", True)])
def test_fp16_is_for_cuda_gpus_only(device, ok):
    if ok:
        check_precision("fp16", torch.device(device))
    else:
        with pytest.raises(Exception, match=f"fp16 needs a CUDA GPU \\(this run is on {device}\\)"):
            check_precision("fp16", torch.device(device))
    check_precision("bf16", torch.device(device))


def test_a_bf16_run_says_so_and_records_its_precision(tmp_path, capsys):
    out = tmp_path / "run"
    flags = [
        "--num-samples",
        "256",
        "--train-batch-size",
        "64",
        "--num-epochs",
        "2",
        "--num-timesteps",
        "20",
        "--embedding-size",
        "8",
        "--hidden-size",
        "16",
        "--hidden-layers",
        "1",
        "--eval-batch-size",
        "40",
        "--precision",
        "bf16",
    ]
    assert main(["train", *flags, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "batch 64, peak learning rate 0.006, bf16 on cpu" in lines[0]
    assert re.fullmatch(r"trained in [0-9.]+ s, sampled 40 in [0-9.]+ s \([0-9,]+ points/s\); wrote .*", lines[-1])
    assert json.loads((out / "config.json").read_text())["config"]["precision"] == "bf16"
