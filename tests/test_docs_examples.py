"""The Python examples of README.md and docs/*.md run as written.

Each page's ```python blocks run in order, as one script, in a fresh interpreter whose working directory is a
temporary folder (so `out="runs/moons"` lands there, and a later block on the page can load what an earlier one
wrote). A block is left out only when its fence says so explicitly: ```python {.skip} (the attribute form that
pymdownx.superfences and GitHub both render as Python).

Why not mktestdocs or pytest-markdown-docs: both exec the blocks inside the pytest process, so pages would share
torch's state and imports and a hung example could not be timed out; what is left to write is the fence reader below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TIMEOUT_S = 120  # per page; every example trains for a few epochs at most

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
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
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


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page: Path, tmp_path: Path):
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    script = "\n".join(f"# --- block {k + 1} of {page.name}\n{block}" for k, block in enumerate(blocks))
    (tmp_path / "examples.py").write_text(script, encoding="utf-8")
    env = dict(os.environ)
    # This checkout's code, whichever copy is installed; one thread each (the examples are tiny, the machine shared).
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run([sys.executable, "examples.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{page.relative_to(ROOT)}: its examples failed\n{proc.stdout}\n{proc.stderr}"
