"""The training loop: learning-rate shape, that it learns, determinism, and the divergence guard."""

import numpy as np
import pytest
import torch

from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.devices import resolve_device
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.core.training import TrainState, _lr_lambda, train
from tiny_diffusion.errors import UsageError
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


def _fit(config: TrainConfig, seed: int = 0):
    torch.manual_seed(seed)
    data = torch.from_numpy(np.random.default_rng(0).normal(size=(config.num_samples, 2)).astype(np.float32) * 0.1 + 1)
    model = build_model(config, shape=(2,))
    state = TrainState.start(model, config, generator=torch.Generator().manual_seed(seed), num_samples=len(data))
    return train(state, NoiseSchedule(config.num_timesteps), data, config, progress=False)


def test_learning_rate_warms_up_linearly_then_decays_to_zero():
    factor = _lr_lambda(TrainConfig(warmup_steps=10, lr_schedule="cosine"), total_steps=110)
    assert [factor(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert factor(60) == pytest.approx(0.5)
    assert factor(110) == pytest.approx(0.0, abs=1e-12)
    constant = _lr_lambda(TrainConfig(warmup_steps=0, lr_schedule="constant"), total_steps=100)
    assert {constant(s) for s in (0, 50, 99)} == {1.0}


def test_training_lowers_the_loss():
    result = _fit(TrainConfig(**SMALL, num_epochs=30, learning_rate=3e-3))
    steps_per_epoch = 256 // 64
    assert result.losses.shape == (30 * steps_per_epoch,)
    assert result.losses[-20:].mean() < 0.7 * result.losses[:20].mean()


def test_same_seed_same_weights():
    a = _fit(TrainConfig(**SMALL, num_epochs=2)).model.state_dict()
    b = _fit(TrainConfig(**SMALL, num_epochs=2)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ema_copy_is_what_training_returns():
    result = _fit(TrainConfig(**SMALL, num_epochs=2, ema_decay=0.9))
    assert not any(p.requires_grad for p in result.model.parameters())


def test_ema_warms_up_so_the_initial_weights_do_not_linger():
    # 2 epochs = 8 steps: a plain 0.999 average would still be 99% the initial weights
    torch.manual_seed(0)
    initial = build_model(TrainConfig(**SMALL), shape=(2,)).state_dict()
    config = TrainConfig(**SMALL, num_epochs=2, ema_decay=0.999)
    result = _fit(config)
    torch.manual_seed(0)
    live = _fit(TrainConfig(**SMALL, num_epochs=2)).model.state_dict()  # the same run without the average
    ema = result.model.state_dict()
    to_live = sum((ema[k] - live[k]).norm() for k in ema)
    to_initial = sum((ema[k] - initial[k]).norm() for k in ema)
    assert to_live < to_initial


def test_ema_keeps_the_live_batch_norm_statistics():
    config = TrainConfig.from_dict(
        {
            "dataset": "digits8",
            "model": "seed-cnn",
            "channels": 4,
            "num_timesteps": 20,
            "sample_steps": 5,  # the image defaults' 50 would exceed T = 20
            "train_batch_size": 32,
            "num_epochs": 1,
            "ema_decay": 0.99,
        }
    )
    model = build_model(config, shape=(1, 8, 8))
    data = torch.rand(64, 1, 8, 8) * 2 - 1
    state = TrainState.start(model, config, generator=torch.Generator().manual_seed(0), num_samples=64)
    result = train(state, NoiseSchedule(20), data, config, progress=False)
    ema_buffers, live_buffers = dict(result.model.named_buffers()), dict(model.named_buffers())
    assert ema_buffers and all(torch.equal(ema_buffers[k], live_buffers[k]) for k in ema_buffers)
    assert ema_buffers["stem.norm.num_batches_tracked"].item() == 2


@pytest.mark.parametrize("target", ["noise", "x0", "previous", "v"])
def test_min_snr_weighted_training_lowers_the_loss(target):
    result = _fit(TrainConfig(**SMALL, num_epochs=30, learning_rate=3e-3, target=target, min_snr_gamma=5.0))
    assert np.isfinite(result.losses).all()
    assert result.losses[-20:].mean() < 0.8 * result.losses[:20].mean()


def test_divergence_stops_with_a_hint():
    with pytest.raises(UsageError, match="diverged.*learning-rate"):
        _fit(TrainConfig(**{**SMALL, "warmup_steps": 0}, num_epochs=3, learning_rate=1e30))


def test_snapshots_follow_save_images_step():
    epochs = []
    config = TrainConfig(**SMALL, num_epochs=7, save_images_step=3)
    torch.manual_seed(0)
    state = TrainState.start(
        build_model(config, shape=(2,)), config, generator=torch.Generator().manual_seed(0), num_samples=256
    )
    train(state, NoiseSchedule(20), torch.randn(256, 2), config, progress=False, snapshot=lambda m, e: epochs.append(e))
    assert epochs == [0, 3, 6]


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError, match="choose from"):
        resolve_device("tpu")


def test_the_flow_regression_is_the_straight_paths_velocity_at_uniform_times():
    from tiny_diffusion.core import flow
    from tiny_diffusion.core.training import METHODS

    config = TrainConfig(**SMALL, method="flow")
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    drawn = []

    def rows(draw):  # the loop's own: the global batch's times from its generator
        drawn.append(draw(64, torch.Generator().manual_seed(1)))
        return drawn[-1]

    regression = METHODS["flow"](NoiseSchedule(20), x0, noise, rows, config)
    t = drawn[0]
    assert t.dtype == torch.float32 and bool(((t >= 0) & (t < 1)).all()) and len(t.unique()) == 64
    torch.testing.assert_close(regression.x_t, (1 - t[:, None]) * x0 + t[:, None] * noise)
    torch.testing.assert_close(regression.target, noise - x0)
    torch.testing.assert_close(regression.t, t * flow.TIME_SCALE)
    assert regression.weights is None


def test_flow_training_lowers_the_loss():
    result = _fit(TrainConfig(**SMALL, method="flow", num_epochs=30, learning_rate=3e-3))
    assert result.losses[-20:].mean() < 0.7 * result.losses[:20].mean()
