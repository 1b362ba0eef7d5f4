"""`export-html`: the page's file, what it carries, and the command's errors. The page in a real browser:
test_page_browser.py (it uses the runs trained here)."""

import base64
import fnmatch
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_IMAGES, TINY_POINTS, single_thread, tiny, without_warnings
from tiny_diffusion.cli.main import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.diffusion import Diffusion
from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs.job import train_run
from tiny_diffusion.viz.page import SCRIPTS, _script_safe, export_html, render_html

# tiny point runs the page must draw exactly as Python does: each target, clipping on and off, a conditional run
# under guidance, 3-D points and an autoguided run; and flow runs, clipped (dino) and not, conditional under
# guidance (blobs)
POINT_RUNS = {
    "noise": dict(dataset="dino"),
    "x0": dict(dataset="moons", target="x0", standardize=True),
    "v-conditional": dict(dataset="blobs", target="v", conditional=True, guidance=2.0, clip_sample=False),
    "previous-3d": dict(dataset="helix", target="previous", sampler="ddim", sample_steps=8, eta=0.5),
    "autoguided": dict(dataset="moons", guide_at=0.5, guidance=1.5),
}

FLOW_RUNS = {
    "flow": dict(dataset="dino", method="flow"),
    "flow-conditional": dict(
        dataset="blobs", method="flow", conditional=True, guidance=2.0, clip_sample=False, sampler="ode"
    ),
}


def _train(folder, **settings):
    with single_thread():
        train_run(TrainConfig.from_dict(settings), folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def point_runs(tmp_path_factory):
    """name -> a tiny trained point run's directory."""
    root = tmp_path_factory.mktemp("page_runs")
    base = tiny(TINY_POINTS, embedding_size=16, hidden_size=32, num_epochs=3, beta_schedule="cosine", device="cpu")
    return {name: _train(root / name, **{**base, **changes}) for name, changes in POINT_RUNS.items()}


@pytest.fixture(scope="session")
def flow_runs(tmp_path_factory):
    """name -> a tiny trained flow run's directory."""
    root = tmp_path_factory.mktemp("page_flow_runs")
    base = tiny(TINY_POINTS, embedding_size=16, hidden_size=32, num_epochs=3, device="cpu")
    return {name: _train(root / name, **{**base, **changes}) for name, changes in FLOW_RUNS.items()}


@pytest.fixture(scope="session")
def image_run(tmp_path_factory):
    """A tiny conditional image run (8x8 digits): a row of digits per class on its page."""
    return _train(
        tmp_path_factory.mktemp("page_images") / "digits", **tiny(TINY_IMAGES, conditional=True, device="cpu")
    )


def page_data(document: str) -> dict:
    """The run data a page carries (its <script type="application/json">)."""
    found = re.search(r'<script type="application/json" id="run-data">(.*?)</script>', document, re.S)
    assert found is not None
    return json.loads(found.group(1))


def floats(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


def test_the_page_carries_its_scripts_and_the_run_s_own_weights(point_runs):
    run_dir = point_runs["v-conditional"]
    document = render_html(run_dir)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", document)  # nothing to fetch
    assert document.count("<script") == 2  # the data and one script with every file of the page
    assert document.count("Tiny Diffusion: blobs") == 2  # the title and the heading
    for name in SCRIPTS:
        assert f"// ---- {name}" in document
    data = page_data(document)
    model = Diffusion.load(run_dir)
    network = model.network.denoiser
    assert data["kind"] == "points" and data["classes"] == list(model.classes) and data["guidance"] == 2.0
    np.testing.assert_array_equal(
        floats(data["network"]["first"]["weight"]), network.joint[0].weight.detach().flatten()
    )
    np.testing.assert_array_equal(
        floats(data["network"]["labels"]["weight"]), model.network.labels.weight.detach().flatten()
    )
    np.testing.assert_array_equal(floats(data["schedule"]["alphas_cumprod"]), model.schedule.alphas_cumprod)
    assert data["clip"] is None and data["default"] == {"sampler": "dpmpp-2m", "steps": 20, "eta": 0.0}
    assert len(data["network"]["blocks"]) == model.config.hidden_layers


def test_an_autoguided_run_s_page_carries_its_guide_s_weights(point_runs):
    data = page_data(render_html(point_runs["autoguided"]))
    model = Diffusion.load(point_runs["autoguided"])
    assert model.guide is not None and data["guidance"] == 1.5
    for name, network in (("network", model.network), ("guide", model.guide)):
        np.testing.assert_array_equal(floats(data[name]["first"]["weight"]), network.joint[0].weight.detach().flatten())
    assert not np.array_equal(floats(data["guide"]["first"]["weight"]), floats(data["network"]["first"]["weight"]))
    assert page_data(render_html(point_runs["noise"]))["guide"] is None


def test_the_data_cannot_end_its_script():
    """A '<' in the data (a class name, a file's name) is escaped: '</script>' inside the JSON would end it."""
    data = {"classes": ["</script><script>alert(1)</script>", "<!--"]}
    safe = _script_safe(json.dumps(data))
    assert "<" not in safe and json.loads(safe) == data


def test_an_image_run_s_page_holds_a_row_of_digits_per_class_under_the_slider(image_run):
    data = page_data(render_html(image_run))
    process = data["images"]
    states = np.frombuffer(base64.b64decode(process["states"]), dtype=np.uint8)
    assert process["rows"] == 10 and process["rowLabels"][7] == "7"
    assert states.size == len(process["timesteps"]) * 10 * process["cols"] * 8 * 8
    assert process["timesteps"][0] == data["T"] and process["timesteps"][-1] == 0
    assert "network" not in data  # image runs draw nothing live


def test_the_command_writes_run_dir_page_html_and_refuses_to_overwrite(point_runs, capsys):
    run_dir = point_runs["noise"]
    (run_dir / "page.html").unlink(missing_ok=True)
    assert main(["export-html", str(run_dir)]) == 0
    assert "page.html" in capsys.readouterr().out
    assert page_data((run_dir / "page.html").read_text())["name"] == "dino"
    assert main(["export-html", str(run_dir)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["export-html", str(run_dir), "--overwrite"]) == 0
    assert main(["verify", str(run_dir)]) == 0  # the page beside the run's files leaves its manifest intact
    assert "all" in capsys.readouterr().out


def test_diffusion_export_html_writes_the_same_page(point_runs, tmp_path):
    out = Diffusion.load(point_runs["noise"]).export_html(tmp_path / "dino.html")
    assert out == tmp_path / "dino.html"
    assert out.read_text() == render_html(point_runs["noise"])
    with pytest.raises(UsageError, match="already exists"):
        export_html(point_runs["noise"], out)


@pytest.mark.parametrize(
    "args,message",
    [
        (["{missing}"], "does not exist"),
        (["{empty}"], "is not a run directory"),
        (["{run}", "--out", "{tmp}/page.txt"], "must end in .html"),
        (["{run}", "--out", "{tmp}/nowhere/page.html"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(point_runs, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    where = dict(missing=tmp_path / "missing", empty=tmp_path / "empty", run=point_runs["noise"], tmp=tmp_path)
    assert main(["export-html", *(a.format(**where) for a in args)]) == 2
    err = without_warnings(capsys.readouterr().err)
    assert err.count("\n") == 1 and message in err


def test_a_non_editable_install_ships_every_file_of_the_page():
    """pyproject's package-data for tiny_diffusion.viz covers every file under viz/page/ (the template, the style
    and the scripts render_html reads)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    folder = root / "src" / "tiny_diffusion" / "viz"
    files = [p.relative_to(folder).as_posix() for p in (folder / "page").iterdir()]
    assert {*SCRIPTS, "page.html", "page.css"} <= {Path(f).name for f in files}
    assert all(any(fnmatch.fnmatch(f, g) for g in patterns["tiny_diffusion.viz"]) for f in files)


def test_where_the_data_cannot_be_drawn_the_forward_process_noises_the_run_s_samples(point_runs, monkeypatch):
    """A run of a point file that has since moved: the page still exports, its forward process starting from the
    run's own samples (in the model's coordinates), and says so."""
    import tiny_diffusion.data.prepare as prepare

    def moved(config):
        raise UsageError("no such file")

    monkeypatch.setattr(prepare, "training_data", moved)
    data = page_data(render_html(point_runs["x0"]))  # moons, standardized: model coordinates differ from data units
    model = Diffusion.load(point_runs["x0"])
    samples = np.load(point_runs["x0"] / "samples.npy")
    expected = (samples - model.shift.numpy()) / model.scale.numpy()
    assert data["forward"]["source"] == "the run's samples"
    np.testing.assert_allclose(floats(data["forward"]["points"]).reshape(-1, 2), expected, rtol=1e-6)


def test_a_flow_run_s_page_carries_its_time_scale_and_no_schedule(flow_runs):
    data = page_data(render_html(flow_runs["flow"]))
    model = Diffusion.load(flow_runs["flow"])
    assert data["method"] == "flow" and data["T"] is None and "schedule" not in data
    assert data["timeScale"] == 1000.0
    assert data["default"] == {"sampler": "midpoint", "steps": 25, "eta": 0.0}  # the run's own
    np.testing.assert_array_equal(
        floats(data["network"]["last"]["weight"]), model.network.joint[-1].weight.detach().flatten()
    )


def test_a_flow_run_that_samples_with_the_ode_is_drawn_with_midpoint_on_the_page(flow_runs):
    """The adaptive ode sampler is Python's alone: the page's first draw takes midpoint in the default steps."""
    model = Diffusion.load(flow_runs["flow-conditional"])  # sampler ode
    assert model.sampling.sampler == "ode"
    data = page_data(render_html(model))
    assert data["run"]["sampler"] == "ode" and data["default"] == {"sampler": "midpoint", "steps": 25, "eta": 0.0}


def test_a_flow_image_run_s_page_holds_its_reverse_process_from_t_1_to_0(tmp_path):
    run = _train(tmp_path / "flow-digits", **tiny(TINY_IMAGES, method="flow", sample_steps=4, device="cpu"))
    data = page_data(render_html(run))
    assert data["method"] == "flow" and data["images"]["timesteps"] == [1.0, 0.75, 0.5, 0.25, 0.0]
