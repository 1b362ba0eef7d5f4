"""Image denoisers: shapes, conditioning on t and cond, gradient flow, a tiny overfit, size checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tiny_diffusion.errors import UsageError
from tiny_diffusion.models.cnn import SeedCNN, parameter_count
from tiny_diffusion.models.images import IMAGE_MODELS
from tiny_diffusion.models.unet import UNet

MODELS = sorted(IMAGE_MODELS)
SHAPES = [(1, 28, 28), (1, 8, 8)]


def build(name: str, **options) -> nn.Module:
    """The named model, seeded, with its weights moved off their initial values.

    The U-Net's output conv starts at zero (a constant-zero function), so the t- and cond-dependence checks would
    see nothing without the nudge.
    """
    torch.manual_seed(0)
    model = IMAGE_MODELS[name](**options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def images(shape: tuple[int, int, int], batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("time_embedding", ["sinusoidal", "learnable"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", MODELS)
def test_output_has_the_input_shape_and_depends_on_t(name, shape, time_embedding):
    model = build(name, in_channels=shape[0], time_embedding=time_embedding).eval()  # BatchNorm: running stats
    x = images(shape)
    with torch.no_grad():
        early = model(x, torch.zeros(3, dtype=torch.int64))
        late = model(x, torch.full((3,), 500, dtype=torch.int64))
    assert early.shape == x.shape
    assert torch.isfinite(early).all()
    assert (early - late).abs().max() > 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_zero_time_embedding_ignores_t(name):
    model = build(name, time_embedding="zero").eval()
    x = images((1, 8, 8))
    with torch.no_grad():
        early = model(x, torch.zeros(3, dtype=torch.int64))
        late = model(x, torch.full((3,), 500, dtype=torch.int64))
    torch.testing.assert_close(early, late)


@pytest.mark.parametrize("name", MODELS)
def test_cond_is_added_to_the_time_conditioning(name):
    model = build(name).eval()
    x, t = images((1, 8, 8)), torch.tensor([1, 2, 3])
    assert model.condition(t).shape == (3, model.cond_size)
    cond = torch.randn(3, model.cond_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = model(x, t)
        torch.testing.assert_close(model(x, t, cond=torch.zeros(3, model.cond_size)), plain)
        assert (model(x, t, cond=cond) - plain).abs().max() > 1e-4


@pytest.mark.parametrize("time_embedding", ["sinusoidal", "learnable"])
@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name, time_embedding):
    # unperturbed: after one step the U-Net's zero-initialised output conv no longer blocks the gradient
    torch.manual_seed(0)
    model = IMAGE_MODELS[name](time_embedding=time_embedding)
    x, t = images((1, 8, 8), batch=4), torch.tensor([0, 10, 100, 999])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        (model(x, t, cond=torch.randn(4, model.cond_size)) - x).pow(2).mean().backward()
        optimizer.step()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().max() > 0]
    assert silent == []


@pytest.mark.parametrize("name", MODELS)
def test_a_few_steps_of_noise_prediction_overfit_a_tiny_batch(name):
    torch.manual_seed(0)
    model = IMAGE_MODELS[name]()
    gen = torch.Generator().manual_seed(3)
    x0 = torch.rand(8, 1, 8, 8, generator=gen) * 2 - 1
    noise = torch.randn(8, 1, 8, 8, generator=gen)
    t = torch.randint(0, 1000, (8,), generator=gen)
    x_t = 0.6 * x0 + 0.8 * noise  # one fixed noise level: the check is the fit, not the schedule
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = (model(x_t, t) - noise).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: UNet(levels=2), (1, 30, 30)),  # 30 / 4 is not whole
        (lambda: UNet(levels=1), (1, 27, 28)),
        (lambda: SeedCNN(), (1, 14, 14)),  # 14 / 4 is not whole
        (lambda: SeedCNN(), (28, 28)),  # no batch dimension
    ],
)
def test_bad_image_sizes_fail(make, shape):
    with pytest.raises(UsageError, match="divisible|shape"):
        make()(torch.zeros(2, *shape), torch.zeros(2, dtype=torch.int64))


@pytest.mark.parametrize(
    "make",
    [
        lambda: UNet(levels=0),
        lambda: UNet(levels=2, channel_mults=(1, 2)),
        lambda: UNet(dropout=1.0),
        lambda: UNet(time_embedding="fourier"),
        lambda: SeedCNN(levels=0),
        lambda: SeedCNN(time_embedding="fourier"),
    ],
)
def test_bad_options_fail(make):
    with pytest.raises(UsageError):
        make()


@pytest.mark.parametrize(
    "model, shape",
    [
        (UNet(levels=1, blocks_per_level=2, dropout=0.1), (1, 30, 30)),  # 30 / 2 is whole
        (UNet(3, channels=12, channel_mults=(1, 2, 3)), (3, 8, 8)),  # GroupNorm groups 6, 8 and 6
        (SeedCNN(3, channels=8, levels=3), (3, 16, 16)),
    ],
)
def test_variants_keep_the_shape(model, shape):
    x = images(shape, batch=2)
    assert model(x, torch.tensor([5, 7])).shape == x.shape


@pytest.mark.parametrize("name, low, high", [("seed-cnn", 100_000, 300_000), ("unet", 500_000, 2_000_000)])
def test_parameter_count(name, low, high):
    model = IMAGE_MODELS[name]()
    assert parameter_count(model) == sum(p.numel() for p in model.parameters())
    assert low <= parameter_count(model) <= high
