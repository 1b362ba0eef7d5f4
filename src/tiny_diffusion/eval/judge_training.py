"""Training the judge: a small CNN on the real digits, with outlier exposure (Hendrycks et al. 2019) so that noise
and smudges get a flat class distribution rather than a confident digit; random shifts as augmentation."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.images import get_image_dataset
from ..errors import UsageError
from .judge import BATCH, Judge, JudgeNet

__all__ = ["train_judge", "DEFAULT_EPOCHS"]

DEFAULT_EPOCHS = 8
JUNK_WEIGHT = 0.5  # of the outlier-exposure term in the training loss (the paper's value)


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) -> the same images each moved by its own random whole-pixel shift in [-max_shift, max_shift]^2,
    the uncovered border filled with background (-1)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)  # (B, C, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b, 1), generator=generator)  # (B, 1) each
    rows = (dy + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    return padded[torch.arange(b)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]


def _junk(n: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """(n, C, H, W) images that show no digit, in [-1, 1]: a random mix of uniform noise, smooth blobs (4x4 noise
    upsampled) and flat grey."""
    c, h, w = shape
    noise = torch.rand((n, c, h, w), generator=generator) * 2 - 1
    blobs = F.interpolate(torch.randn((n, c, 4, 4), generator=generator), size=(h, w), mode="bilinear").clamp(-1, 1)
    flat = (torch.rand((n, 1, 1, 1), generator=generator) * 2 - 1).expand(n, c, h, w)
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=generator)
    return torch.where(kind == 0, noise, torch.where(kind == 1, blobs, flat))


def _loss(net: nn.Module, digits: torch.Tensor, labels: torch.Tensor, junk: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the digits, plus KL(uniform || p) on the junk ("outlier exposure", Hendrycks et al. 2019,
    https://arxiv.org/abs/1812.04606). Without the second term the judge calls pure noise a digit with > 0.99
    confidence, and the ``confident`` share would not tell noise from digits."""
    logits = net(torch.cat([digits, junk]))  # (B + J, K)
    n, k = len(digits), logits.shape[1]
    # cross-entropy against the uniform distribution, less its entropy log K: 0 when p is uniform
    unsure = -F.log_softmax(logits[n:], dim=1).mean() - math.log(k)
    return F.cross_entropy(logits[:n], labels) + JUNK_WEIGHT * unsure


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device | str) -> float:
    with torch.inference_mode():
        hits = sum(
            int((net(xb.to(device)).argmax(1).cpu() == yb).sum()) for xb, yb in zip(x.split(BATCH), y.split(BATCH))
        )
    return hits / len(y)


def train_judge(
    dataset: str = "mnist5k",
    *,
    data_dir: str | Path | None = None,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Judge:
    """Train a ``JudgeNet`` on the dataset's train split (digits shifted at random by up to 2 pixels in 28, and
    junk images it must learn to be unsure of) and measure its accuracy on the test split. The same seed gives the
    same weights on the same device with the same number of threads (the order of float sums depends on both)."""
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise UsageError(f"train_judge needs epochs >= 1, batch_size >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    ds = get_image_dataset(dataset)
    x, y = (torch.tensor(a) for a in ds.images("train", data_dir=data_dir))  # copies: the cache is read-only
    x_test, y_test = (torch.tensor(a) for a in ds.images("test", data_dir=data_dir))
    shape = tuple(int(s) for s in x.shape[1:])
    max_shift = max(1, round(2 * min(shape[1:]) / 28))  # 2 pixels on 28x28, 1 on 8x8
    generator = torch.Generator().manual_seed(seed)  # shuffling, shifts and junk
    with torch.random.fork_rng(devices=[]):  # the initial weights, without touching the caller's global RNG
        torch.manual_seed(seed)
        net = JudgeNet(shape[0], ds.num_classes).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    bar = tqdm(range(epochs), desc=f"judge {dataset}", unit="epoch", disable=not progress)
    for _ in bar:
        net.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            digits = _random_shift(x[idx], max_shift, generator)
            junk = _junk(max(1, len(idx) // 4), shape, generator)
            loss = _loss(net, digits.to(device), y[idx].to(device), junk.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
        bar.set_postfix(loss=f"{total / len(x):.4f}")
    net.eval()
    return Judge(net, dataset, shape, _accuracy(net, x_test, y_test, device))
