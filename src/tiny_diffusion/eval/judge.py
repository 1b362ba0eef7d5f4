"""The judge: a small digit classifier that scores generated images, and the numbers it gives.

Generated digits have no ground truth to compare with one by one, so they are judged the way FID judges ImageNet
models: through a classifier trained on the real data. Here it is a small CNN (``JudgeNet``) that trains in about
a minute on a CPU and is cached on disk (``get_judge``). ``image_metrics.image_metrics`` reports:

- ``confident``: the share of samples whose top class has softmax probability > ``confidence`` (0.9): how many
  samples look clearly like *some* digit. Smudges and noise score low.
- ``class_entropy_bits``: the entropy (base 2) of the histogram of predicted classes. log2(10) = 3.32 bits when
  the ten digits are drawn equally often, 0 when the model draws one digit only (mode collapse).
- ``frechet``: the Fréchet distance between Gaussians fitted to the judge's penultimate-layer features of the
  samples and of a real reference set: FID's formula on this judge's features (so not comparable with FID
  numbers). It sees both quality and variety; lower is better.

Each has a floor: the same number for real images. ``confident_floor`` is the confident share of a second real
set (``floor_real``), ``class_entropy_floor_bits`` the class entropy of the reference set (``real``), and
``frechet_floor`` the Fréchet distance between ``floor_real`` and ``real``, two disjoint real sets (train vs test
images). It is above 0 because Gaussians fitted to finite sets differ; a perfect model scores about the floor,
not 0. Read a model's numbers against the floors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from ..errors import UsageError
from ..runs.files import write_atomic

__all__ = [
    "JudgeNet",
    "Judge",
    "Verdict",
    "load_judge",
    "judge_path",
    "get_judge",
    "check_images",
    "make_cache_dir",
    "CACHE_ENV",
]

CACHE_ENV = "TINY_DIFFUSION_CACHE"  # overrides the default cache folder ~/.cache/tiny-diffusion
FORMAT = 1  # of the sidecar; bump when JudgeNet's layers change
BATCH = 256  # images per forward pass when judging (memory only; results do not depend on it)


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class JudgeNet(nn.Module):
    """conv32-maxpool-conv64-pool to 4x4-conv64-fc(features)-fc(classes) for (B, C, H, W) images in [-1, 1],
    H, W >= 8; each conv followed by batch norm and ReLU.

    The adaptive pool makes the rest independent of the image size: 28x28 MNIST (14x14 after the max-pool) and
    8x8 digits (4x4) both reach it as 4x4 maps. Pooling early keeps a CPU epoch on 4,500 MNIST digits to seconds;
    batch norm makes the few epochs enough (without it, the same budget ends about 1.5 points less accurate).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            *_conv(in_channels, 32),
            nn.MaxPool2d(2),
            *_conv(32, 64),
            nn.AdaptiveAvgPool2d(4),
            *_conv(64, 64),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, feature_dim): the penultimate layer, what the Fréchet distance compares."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, classes) logits."""
        return self.head(self.body(x))


@dataclass
class Verdict:
    """What the judge makes of a set of images."""

    features: np.ndarray  # (N, F) float64 penultimate-layer features
    probabilities: np.ndarray  # (N, K) float64 softmax over the classes

    @property
    def predicted(self) -> np.ndarray:
        """(N,) the most probable class of each image."""
        return self.probabilities.argmax(axis=1)

    def confident(self, confidence: float) -> float:
        """Share of images whose top class has probability > ``confidence``."""
        return float(np.mean(self.probabilities.max(axis=1) > confidence))


@dataclass
class Judge:
    """A trained ``JudgeNet`` (in eval mode) and what it was trained on."""

    net: JudgeNet
    dataset: str
    shape: tuple[int, int, int]  # (C, H, W) of the images it judges
    test_accuracy: float  # on the dataset's test split

    @property
    def num_classes(self) -> int:
        return self.net.head.out_features

    @property
    def feature_dim(self) -> int:
        return self.net.head.in_features

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def assess(self, images: np.ndarray | torch.Tensor, name: str = "images") -> Verdict:
        """Features and class probabilities of (N, C, H, W) images in [-1, 1], in batches, without gradients."""
        x = check_images(self, images, name)
        features, logits = [], []
        with torch.inference_mode():
            for batch in x.split(BATCH):
                h = self.net.features(batch.to(self.device))  # (B, F)
                features.append(h.double().cpu())
                logits.append(self.net.head(h).double().cpu())
        return Verdict(torch.cat(features).numpy(), torch.softmax(torch.cat(logits), dim=1).numpy())

    def save(self, path: str | Path) -> Path:
        """Weights to ``path`` (safetensors) and, beside it, a JSON sidecar with what they are and their sha256.

        Each file is written atomically, the weights first: a crash in between leaves a sidecar whose hash no
        longer matches, which ``load_judge`` refuses, never a judge that silently mixes two trainings.
        """
        path = Path(path)
        make_cache_dir(path)
        weights = save_safetensors({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()})
        meta = {
            "format": FORMAT,
            "dataset": self.dataset,
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
            "test_accuracy": self.test_accuracy,
            "sha256": hashlib.sha256(weights).hexdigest(),
        }
        try:
            write_atomic(path, weights)
            write_atomic(sidecar_path(path), (json.dumps(meta, indent=2) + "\n").encode())
        except OSError as e:
            raise UsageError(f"cannot write the judge to {path}: {e.strerror}") from None
        return path


def make_cache_dir(path: str | Path) -> None:
    """Create the folder a judge will be saved in, or refuse in one line: called before training, so a cache that
    cannot be written does not cost a training first."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the judge cache {Path(path).parent}: {e.strerror}") from None


def check_images(judge: Judge, images: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    # torch.tensor copies: the datasets hand out read-only arrays, which torch.from_numpy warns about
    x = images if isinstance(images, torch.Tensor) else torch.tensor(np.asarray(images))
    if x.ndim != 4 or len(x) == 0 or tuple(x.shape[1:]) != judge.shape:
        raise UsageError(
            f"{name} must be a non-empty (N, {', '.join(map(str, judge.shape))}) array for the "
            f"{judge.dataset} judge, got shape {tuple(x.shape)}"
        )
    x = x.detach().float().cpu()
    if not torch.isfinite(x).all():
        raise UsageError(f"{name} hold non-finite values (NaN or inf)")
    return x


def sidecar_path(path: str | Path) -> Path:
    """The JSON beside a judge's weights: judge/mnist5k.safetensors -> judge/mnist5k.json."""
    return Path(path).with_suffix(".json")


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar's fields, checked: dataset, shape, test_accuracy, num_classes, feature_dim, sha256."""
    try:
        meta = json.loads(path.read_text())
        version = meta["format"]
        fields = {
            "dataset": str(meta["dataset"]),
            "shape": tuple(int(s) for s in meta["shape"]),
            "test_accuracy": float(meta["test_accuracy"]),
            "num_classes": int(meta["num_classes"]),
            "feature_dim": int(meta["feature_dim"]),
            "sha256": str(meta["sha256"]),
        }
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: a judge's weights need their sidecar; train the judge again") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{path} is corrupt ({_first_line(e)}); train the judge again") from None
    if version != FORMAT:
        raise UsageError(f"{path} is of format {version!r}, this version reads {FORMAT}; train the judge again")
    shape = fields["shape"]
    if len(shape) != 3 or min(shape) < 1 or fields["num_classes"] < 2 or fields["feature_dim"] < 1:
        raise UsageError(f"{path} is corrupt: shape {shape}, {fields['num_classes']} classes; train the judge again")
    return fields


def load_judge(path: str | Path, device: torch.device | str = "cpu") -> Judge:
    """A judge saved by ``Judge.save``, checked against its sidecar's sha256; one clear error for anything amiss."""
    path = Path(path)
    try:
        weights = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no judge at {path}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    meta = _read_sidecar(sidecar_path(path))
    if hashlib.sha256(weights).hexdigest() != meta["sha256"]:
        raise UsageError(
            f"{path} does not match the sha256 in {sidecar_path(path).name}: the file is corrupt or "
            "was replaced; train the judge again"
        )
    net = JudgeNet(meta["shape"][0], meta["num_classes"], meta["feature_dim"])
    try:
        net.load_state_dict(load_safetensors(weights))
    except (SafetensorError, RuntimeError) as e:
        raise UsageError(f"{path} does not hold the weights its sidecar describes ({_first_line(e)})") from None
    return Judge(net.to(device).eval(), meta["dataset"], meta["shape"], meta["test_accuracy"])


def judge_path(dataset: str, cache_dir: str | Path | None = None) -> Path:
    """Where the judge for ``dataset`` is cached: <cache>/judge/<dataset>.safetensors, the cache being
    ``cache_dir``, else $TINY_DIFFUSION_CACHE, else ~/.cache/tiny-diffusion."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", dataset):
        raise UsageError(f"{dataset!r} is not a dataset name")
    root = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tiny-diffusion"
    return Path(root).expanduser() / "judge" / f"{dataset}.safetensors"


def get_judge(
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    train_if_missing: bool = False,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> Judge:
    """The cached judge for ``dataset``; when there is none, train and cache one if ``train_if_missing``."""
    path = judge_path(dataset, cache_dir)
    if path.exists():
        judge = load_judge(path, device)
        if judge.dataset != dataset:
            raise UsageError(f"{path} holds a judge for {judge.dataset}, not {dataset}; train the judge again")
        return judge
    if not train_if_missing:
        raise UsageError(
            f"no judge for {dataset} at {path}; run `tiny-diffusion judge train --dataset {dataset}` "
            "first (about a minute on a CPU)"
        )
    make_cache_dir(path)
    from .judge_training import train_judge  # the training loop is needed only when there is no judge yet

    judge = train_judge(dataset, data_dir=data_dir, device=device, progress=progress)
    judge.save(path)
    return judge
