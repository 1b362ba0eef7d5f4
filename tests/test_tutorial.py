"""The tutorial notebook, docs/tutorial.ipynb: committed without outputs, and run from top to bottom in a fresh
kernel, its lesson (T = 50 draws a squashed dino, T = 500 does not) checked in what it prints. About 1.5 minutes on a
2-core machine."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tiny_diffusion

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def read_notebook():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    return notebook


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def text_of(cell) -> str:
    """What a code cell printed (streams and plain-text results), as one string."""
    return "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "") for out in cell.outputs)


def test_the_notebook_is_committed_without_outputs():
    """Outputs stay out of git (small diffs, no stale numbers): clear them before committing
    (`jupyter nbconvert --clear-output --inplace docs/tutorial.ipynb`)."""
    cells = code_cells(read_notebook())
    assert cells
    for cell in cells:
        assert cell.outputs == [] and cell.execution_count is None, f"cell {cell.id} has outputs: clear them"


def test_the_notebook_runs_from_top_to_bottom(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the kernel imports the package under test, and runs torch on one thread (the fastest on a busy 2-core machine)
    src = str(Path(tiny_diffusion.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = read_notebook()
    start = time.perf_counter()
    # a failing cell raises CellExecutionError with its traceback; a cell stuck for 5 minutes, a timeout
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    print(f"tutorial ran in {time.perf_counter() - start:.0f} s")
    assert (tmp_path / "runs" / "tutorial_T500" / "samples.npy").exists()  # its runs went where it ran

    cells = code_cells(notebook)
    for cell in cells:  # every figure drawn shows (td.train must leave the notebook's backend alone)
        if "plt.subplots" in cell.source:
            assert any("image/png" in out.get("data", {}) for out in cell.outputs), cell.source
    table = next(text_of(cell) for cell in cells if "td.evaluate" in cell.source)
    rows = {
        line[:9].strip(): [float(v) for v in line[9:].split()] for line in table.splitlines() if line.startswith("T = ")
    }
    alpha_bar_T, w2, w2_floor, precision, recall, std_x, std_y = rows["T = 50"]
    assert alpha_bar_T == pytest.approx(0.603, abs=1e-3) and w2 > 2 * w2_floor and std_y < 0.8  # squashed
    alpha_bar_T, w2, w2_floor, precision, recall, std_x, std_y = rows["T = 500"]
    assert w2 < 1.25 * w2_floor and 0.9 < std_y < 1.1 and precision > 0.75 and recall > 0.95


@pytest.mark.parametrize(
    "before,expected",
    [
        ("", "agg"),  # a script or the command line: off screen
        ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot", "svg"),  # a program that chose one
    ],
)
def test_the_library_keeps_a_backend_the_program_chose(before, expected):
    """Jupyter's inline backend survives ``td.train`` (which draws the run's pictures), so a notebook's plots show."""
    code = f"{before}; import tiny_diffusion.viz.figures, matplotlib; print(matplotlib.get_backend().lower())"
    env = {**os.environ, "PYTHONPATH": str(Path(tiny_diffusion.__file__).resolve().parents[1])}
    env.pop("MPLBACKEND", None)
    out = subprocess.run([sys.executable, "-c", code.lstrip("; ")], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == expected
