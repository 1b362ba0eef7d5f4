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
