"""Shared test set-up: judges are cached in a temporary folder, never in the user's ~/.cache."""

import os

import pytest

from tiny_diffusion.judge import CACHE_ENV


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
