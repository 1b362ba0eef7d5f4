"""The Python examples of README.md and docs/*.md run as written.

Each page's ```python blocks run in order, as one script, in a fresh interpreter whose working directory is a
temporary folder (so `out="runs/moons"` lands there, and a later block of the page can load what an earlier one
wrote); the pages run side by side. A block is left out only when its fence says so explicitly: ```python {.skip}
(the attribute form that pymdownx.superfences and GitHub both render as Python).

Why not mktestdocs or pytest-markdown-docs: both exec the blocks inside the pytest process, so pages would share
torch's state and imports and a hung example could not be timed out; what is left to write is the fence reader below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TIMEOUT_S = 180  # for all pages, from their start; every example trains for a few epochs at most

# An opening fence: three or more backticks, the info string ("python", "python {.skip}", ...).
FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>`{3,})(?P<info>[^`\n]*)$")


def python_blocks(text: str) -> list[str]:
    """The source of every ```python block of a Markdown page, in order, less those marked {.skip}."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        i += 1
        if not opening:
            continue
        indent, ticks, info = opening["indent"], opening["ticks"], opening["info"].strip()
        body = []
        while i < len(lines) and not re.fullmatch(rf" *{ticks}`* *", lines[i]):
            body.append(lines[i].removeprefix(indent))
            i += 1
        i += 1  # the closing fence
        words = info.replace("{", " ").replace("}", " ").split()
        if words and words[0] in ("python", "py", ".python") and ".skip" not in words:
            blocks.append("\n".join(body) + "\n")
    return blocks


def test_the_fence_reader():
    page = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python {.skip}\nboom()\n```\n  ```python\n  y = 2\n  ```\n"
    assert python_blocks(page) == ["x = 1\n", "y = 2\n"]


PAGES_WITH_EXAMPLES = [page for page in PAGES if python_blocks(page.read_text(encoding="utf-8"))]


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _start(page: Path, folder: Path) -> subprocess.Popen:
    """Run the page's blocks, in order, as one script in a fresh interpreter whose working directory is ``folder``."""
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    script = "\n".join(f"# --- block {k + 1} of {page.name}\n{block}" for k, block in enumerate(blocks))
    (folder / "examples.py").write_text(script, encoding="utf-8")
    env = dict(os.environ)
    # This checkout's code, whichever copy is installed; one thread each (the examples are tiny, and run side by side).
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    return subprocess.Popen(
        [sys.executable, "examples.py"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@dataclass
class Started:
    procs: dict[str, subprocess.Popen]  # page id -> its examples' process
    deadline: float  # time.monotonic() by which every page must be done


@pytest.fixture(scope="module")
def started(request, tmp_path_factory) -> Started:
    """Every selected page's examples, started at once: each page is one process on one thread, so on a 2-core
    machine the pages take about half the time they would one after another."""
    selected = {
        item.callspec.params["page"]
        for item in request.session.items
        if item.originalname == "test_page_examples_run" and hasattr(item, "callspec")
    }
    procs = {_page_id(page): _start(page, tmp_path_factory.mktemp(page.stem)) for page in selected}
    yield Started(procs, time.monotonic() + TIMEOUT_S)
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=_page_id)
def test_page_examples_run(page: Path, started: Started):
    proc = started.procs[_page_id(page)]
    try:
        output, _ = proc.communicate(timeout=max(1.0, started.deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"{_page_id(page)}: the examples ran past {TIMEOUT_S} s\n{output[-4000:]}")
    assert proc.returncode == 0, f"{_page_id(page)}: its examples failed\n{output[-4000:]}"
