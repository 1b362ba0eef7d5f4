"""Shared test set-up: judges are cached in a temporary folder, never in the user's ~/.cache; one torch thread
where a test asks for it."""

import os
from contextlib import contextmanager

import pytest
import torch

from tiny_diffusion.eval.judge import CACHE_ENV


@pytest.fixture(autouse=True, scope="session")
def judge_cache(tmp_path_factory):
    """One cache for the session, so a judge trained by one test serves the others."""
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = before


@contextmanager
def single_thread():
    """torch on one thread for the block: the same results for every run compared (bitwise equality needs the same
    thread count), and the fastest on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """``single_thread`` for a whole test (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    with single_thread():
        yield


# --- tiny runs: the settings most tests train with, as a TrainConfig mapping or as command-line flags -------------

TINY_POINTS = dict(
    num_samples=256,
    train_batch_size=64,
    eval_batch_size=50,
    num_epochs=2,
    num_timesteps=20,
    embedding_size=8,
    hidden_size=16,
    hidden_layers=1,
    save_images_step=1,
)
TINY_IMAGES = dict(
    dataset="digits8",
    channels=4,
    num_timesteps=20,
    num_epochs=2,
    sample_steps=5,
    num_samples=256,
    train_batch_size=32,
    eval_batch_size=16,
    save_images_step=1,
)


def tiny(base: dict, **changes) -> dict:
    """``base`` (TINY_POINTS or TINY_IMAGES) with ``changes``: the settings of one test's runs."""
    return {**base, **changes}


def flags(base: dict, **changes) -> list[str]:
    """The same as command-line flags: {"num_epochs": 2, "quiet": True, "clip_sample": False} ->
    ["--num-epochs", "2", "--quiet", "--no-clip-sample"]."""
    out = []
    for name, value in tiny(base, **changes).items():
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            out.append(flag)
        elif value is False:
            out.append(f"--no-{name.replace('_', '-')}")
        else:
            out += [flag, str(value)]
    return out


def without_warnings(err: str) -> str:
    """stderr without the settings' warning lines (``tiny-diffusion: warning: ...``, printed before training; the
    tiny runs' T = 20 draws one), so that what is left can be checked to be one line."""
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith("tiny-diffusion: warning: "))
