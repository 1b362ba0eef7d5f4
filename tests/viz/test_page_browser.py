"""The exported page in a real browser (headless Chromium through playwright): it loads from file:// with every other
request blocked and no console errors, draws the samples Python draws, and its slider and views change the picture.

Skipped where playwright (`pip install playwright`) or Debian's Chromium (/usr/bin/chromium) is missing: the
browser that `playwright install` would download is not needed.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from test_page import FLOW_RUNS, POINT_RUNS, flow_runs, image_run, point_runs  # noqa: F401  (session fixtures)

from conftest import single_thread
from tiny_diffusion.diffusion import Diffusion
from tiny_diffusion.eval.metrics import wasserstein2
from tiny_diffusion.viz.page import export_html

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright is not installed"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def pages(point_runs, flow_runs, image_run, tmp_path_factory):  # noqa: F811
    """name -> the exported page of each run."""
    folder = tmp_path_factory.mktemp("pages")
    runs = {**point_runs, **flow_runs, "images": image_run}
    return {name: export_html(run, folder / f"{name}.html") for name, run in runs.items()}


class Opened:
    """A page opened from file:// with every other request aborted, and what went wrong while it ran."""

    def __init__(self, browser, path: Path, *, init_script: str | None = None):
        self.page = browser.new_page(viewport={"width": 1100, "height": 900})
        if init_script:
            self.page.add_init_script(init_script)
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._only_files)
        self.page.goto(path.as_uri())
        self.page.evaluate("() => window.tinyDiffusion.ready")

    def _only_files(self, route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def picture(self) -> str:
        return self.page.evaluate("() => document.getElementById('plot').toDataURL()")

    def slide(self, value: int) -> None:
        self.page.evaluate(
            "v => { const s = document.getElementById('time'); s.value = v; s.dispatchEvent(new Event('input')); }",
            value,
        )

    def sample(self, **options) -> np.ndarray:
        return np.array(self.page.evaluate("o => window.tinyDiffusion.sample(o)", options))


@pytest.fixture
def opened(browser):
    made = []

    def open_page(path: Path, **options) -> Opened:
        made.append(Opened(browser, path, **options))
        return made[-1]

    yield open_page
    for page in made:
        assert page.errors == [] and page.blocked == []
        page.page.close()


@pytest.mark.parametrize("name", [*POINT_RUNS, *FLOW_RUNS, "images"])
def test_every_page_loads_offline_without_errors(pages, opened, name):
    page = opened(pages[name])
    assert page.page.evaluate("() => window.tinyDiffusion.data.name")
    status = page.page.text_content("#status")
    first = "midpoint in 25 steps (seed 0" if name in FLOW_RUNS else "dpmpp-2m in 20 steps (eta 0, seed 0"
    assert "images" in status if name == "images" else f"1000 points, {first}" in status
    # the checks that nothing was requested and nothing failed are in `opened`


@pytest.mark.parametrize("name", POINT_RUNS)
def test_ddim_from_the_same_noise_draws_python_s_samples(point_runs, pages, opened, name):  # noqa: F811
    """Deterministic DDIM (eta 0) from the initial noise of a Python draw: the same samples, up to float32 rounding.
    8 of T = 20 steps puts Python's round-half-to-even in the timesteps (20 - 2.5 i)."""
    model = Diffusion.load(point_runs[name])
    n, seed = 300, 5
    noise = torch.randn((n, *model.shape), generator=torch.Generator().manual_seed(seed))
    label = {"label": 3, "guidance": 2.0} if model.classes else {}
    with single_thread():
        expected = model.sample(
            n, sampler="ddim", steps=8, eta=0.0, seed=seed, labels=[3] * n if model.classes else None
        )
    drawn = opened(pages[name]).sample(n=n, sampler="ddim", steps=8, eta=0, noise=noise.tolist(), **label)
    spread = np.abs(expected).max()
    assert drawn.shape == expected.shape
    # target "previous" divides by the posterior's coefficient of x0, about 0.01 at the last steps of a cosine
    # schedule of T = 20: float32 rounding (the summation order of a matrix product) grows a hundredfold there
    assert np.abs(drawn - expected).max() < (3e-3 if model.config.target == "previous" else 1e-4) * spread


@pytest.mark.parametrize(
    "name,sampler",
    [("noise", "dpmpp-2m"), ("x0", "dpmpp-2m"), ("autoguided", "dpmpp-2m"), ("noise", "euler"), ("x0", "heun"),
     ("v-conditional", "heun")],
)  # fmt: skip
def test_the_karras_samplers_from_the_same_noise_draw_python_s_samples(point_runs, pages, opened, name, sampler):  # noqa: F811
    """The page's dpmpp-2m (second order from the second step), euler and heun (a second call at the next level, the
    last step Euler's) on Karras noise levels are Python's, up to rounding; clipped (noise, x0) or not (v), guided."""
    model = Diffusion.load(point_runs[name])
    n, seed = 300, 4
    noise = torch.randn((n, *model.shape), generator=torch.Generator().manual_seed(seed))
    label = {"label": 2} if model.classes else {}
    with single_thread():
        expected = model.sample(n, sampler=sampler, steps=8, seed=seed, labels=[2] * n if model.classes else None)
    drawn = opened(pages[name]).sample(n=n, sampler=sampler, steps=8, noise=noise.tolist(), **label)
    assert np.abs(drawn - expected).max() < 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize(
    "name,sampler,steps",
    [("flow", "euler", 6), ("flow", "heun", 5), ("flow", "midpoint", 7), ("flow-conditional", "midpoint", 5)],
)
def test_each_flow_sampler_from_the_same_noise_draws_python_s_samples(flow_runs, pages, opened, name, sampler, steps):  # noqa: F811
    """A flow run's page integrates the run's velocity field as core/flow.py does: the same time grid (torch's
    float32 linspace), the same clipping of the implied x0 (dino) and guidance (blobs), up to float32 rounding."""
    model = Diffusion.load(flow_runs[name])
    n, seed = 300, 3
    noise = torch.randn((n, *model.shape), generator=torch.Generator().manual_seed(seed))
    label = {"label": 1, "guidance": 2.0} if model.classes else {}
    with single_thread():
        expected = model.sample(n, sampler=sampler, steps=steps, seed=seed, labels=[1] * n if model.classes else None)
    drawn = opened(pages[name]).sample(n=n, sampler=sampler, steps=steps, noise=noise.tolist(), **label)
    assert drawn.shape == expected.shape
    assert np.abs(drawn - expected).max() < 1e-4 * np.abs(expected).max()


def test_an_autoguided_page_draws_python_s_samples_at_each_guidance_and_takes_no_label(
    point_runs,  # noqa: F811
    pages,
    opened,
):
    """model + w (model - guide) with the guide's own network, in workers or not; w = 0 is the model alone."""
    model = Diffusion.load(point_runs["autoguided"])
    page = opened(pages["autoguided"])
    assert page.page.is_visible("#guidance") and page.page.is_hidden("#label")
    assert "autoguided by its weights after 0.5 of training (guidance 1.5)" in page.page.text_content("#summary")
    n, seed = 600, 2  # 600 points: split over the workers where there are any
    noise = torch.randn((n, *model.shape), generator=torch.Generator().manual_seed(seed))
    drawn = {}
    for guidance in (0.0, 3.0):
        with single_thread():
            expected = model.sample(n, sampler="ddim", steps=6, eta=0.0, seed=seed, guidance=guidance)
        drawn[guidance] = page.sample(n=n, sampler="ddim", steps=6, noise=noise.tolist(), guidance=guidance)
        assert np.abs(drawn[guidance] - expected).max() < 1e-4 * np.abs(expected).max()
    assert np.abs(drawn[0.0] - drawn[3.0]).max() > 1e-2  # the guide moved the samples
    found = page.page.evaluate("o => window.tinyDiffusion.sample(o).then(() => 'drawn', e => e.message)", {"label": 0})
    assert found == "this run is not conditional: it takes no label"


def test_a_flow_page_scrubs_both_processes_and_refuses_what_is_not_a_flow_s(pages, opened):
    page = opened(pages["flow"])
    assert page.page.evaluate("() => window.tinyDiffusion.samplers") == ["euler", "heun", "midpoint"]
    assert page.page.is_hidden("#eta")
    samples = page.picture()
    page.slide(0)
    assert page.picture() != samples and page.page.text_content("#time-label") == "t = 1 (noise)"
    page.slide(10)
    assert page.page.text_content("#time-label") == "t = 0.600"  # 25 steps of 0.04 from 1
    without = page.picture()
    page.page.check("#field")
    assert page.picture() != without  # arrows to the predicted x0 = x_t - t v
    page.page.check('input[name="mode"][value="forward"]')
    page.slide(37)
    assert page.page.text_content("#time-label") == "t = 0.37 of 1"
    halfway = page.picture()
    page.slide(100)
    assert page.picture() != halfway
    for options, message in [
        ({"sampler": "ddim"}, "unknown sampler ddim"),
        ({"eta": 1}, "the flow samplers are deterministic"),
        ({"steps": 1001}, "steps must be an integer from 1 to 1000"),
    ]:
        found = page.page.evaluate("o => window.tinyDiffusion.sample(o).then(() => 'drawn', e => e.message)", options)
        assert message in found


@pytest.mark.parametrize("sampler,eta", [("ddpm", None), ("ddim", 1.0)])
def test_random_draws_match_python_s_in_distribution(point_runs, pages, opened, sampler, eta):  # noqa: F811
    """The page's noise is its own (not torch's stream): its samples and Python's are two draws of one distribution,
    as far apart in W2 as two Python draws are."""
    model = Diffusion.load(point_runs["noise"])
    n, steps = 400, None if sampler == "ddpm" else 10
    with single_thread():
        first, second = (model.sample(n, sampler=sampler, steps=steps, eta=eta, seed=s) for s in (1, 2))
    drawn = opened(pages["noise"]).sample(n=n, sampler=sampler, steps=steps or 20, eta=eta or 0, seed=7)
    floor = wasserstein2(first, second)
    assert wasserstein2(drawn, first) < 1.5 * floor
    # a deterministic sampler from the same page noise would not spread as widely
    assert wasserstein2(drawn, opened(pages["noise"]).sample(n=n, sampler="ddim", steps=10, eta=0, seed=7)) > 0


def test_the_slider_views_and_toggles_change_the_picture(pages, opened):
    page = opened(pages["noise"])
    samples = page.picture()
    page.slide(0)  # back to the initial noise
    noise = page.picture()
    assert noise != samples
    page.slide(10)
    page.page.check("#paths")
    with_paths = page.picture()
    page.page.check("#field")
    assert len({with_paths, page.picture(), noise}) == 3
    page.page.check('input[name="mode"][value="forward"]')
    data = page.picture()
    page.slide(20)
    assert page.picture() != data
    page.page.check('input[name="mode"][value="training"]')
    last = page.picture()
    page.slide(0)
    assert page.picture() != last and "epoch 1" in page.page.text_content("#time-label")


def test_the_form_draws_again_and_reports_bad_settings(pages, opened):
    page = opened(pages["v-conditional"])
    before = page.picture()
    page.page.select_option("#label", "2")
    page.page.fill("#num", "200")
    page.page.click("button[type=submit]")
    page.page.wait_for_function("() => document.getElementById('status').textContent.startsWith('200 points')")
    assert page.picture() != before
    page.page.fill("#steps", "0")
    page.page.click("button[type=submit]")
    page.page.wait_for_function("() => document.getElementById('status').classList.contains('error')")
    assert "steps must be an integer from 1 to T = 20" in page.page.text_content("#status")


@pytest.mark.parametrize(
    "name,sampler,steps",
    [("noise", "ddpm", None), ("noise", "dpmpp-2m", 8), ("x0", "heun", 8), ("v-conditional", "ddim", 5),
     ("autoguided", "euler", 6), ("flow", "heun", 5), ("flow-conditional", "midpoint", 4)],
)  # fmt: skip
def test_the_page_says_how_many_network_calls_a_draw_made(point_runs, flow_runs, pages, opened, name, sampler, steps):  # noqa: F811
    """The status line counts the draw's network calls as Python's Trajectory.nfe does: heun 2 steps - 1, guidance
    (a class under classifier-free guidance, or autoguidance) twice the calls."""
    model = Diffusion.load({**point_runs, **flow_runs}[name])
    page = opened(pages[name])
    page.page.select_option("#sampler", sampler)
    if steps is not None:
        page.page.fill("#steps", str(steps))
    page.page.fill("#num", "50")
    labels = None
    if model.classes:
        page.page.select_option("#label", "1")
        labels = [1] * 50
    page.page.click("button[type=submit]")
    page.page.wait_for_function("() => document.getElementById('status').textContent.startsWith('50 points')")
    with single_thread():
        expected = model.sample(50, sampler=sampler, steps=steps, labels=labels, trajectory=True).nfe
    assert expected > (steps or 0) or sampler not in ("heun", "midpoint")  # the cases count second calls
    assert f": {expected} network calls, " in page.page.text_content("#status")


def test_a_3d_page_turns_when_dragged(pages, opened):
    page = opened(pages["previous-3d"])
    before = page.picture()
    box = page.page.locator("#plot").bounding_box()
    page.page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + 220, box["y"] + 160, steps=4)
    page.page.mouse.up()
    assert page.picture() != before


@pytest.mark.parametrize(
    "options,message",
    [
        ({"steps": 0}, "steps must be an integer"),
        ({"sampler": "ode"}, "unknown sampler ode"),
        ({"n": 2.5}, "n must be an integer"),
        ({"eta": -1}, "eta must be"),
        ({"label": 1}, "not conditional"),
        ({"n": 2, "noise": [[0, 0]]}, "noise must be 2 x 2 numbers"),
    ],
)
def test_the_hook_rejects_bad_options_with_a_message(pages, opened, options, message):
    page = opened(pages["noise"])
    found = page.page.evaluate("o => window.tinyDiffusion.sample(o).then(() => 'drawn', e => e.message)", options)
    assert message in found


def test_an_image_page_scrubs_its_reverse_process(pages, opened):
    page = opened(pages["images"])
    samples = page.picture()
    page.slide(0)
    assert page.picture() != samples and "(noise)" in page.page.text_content("#time-label")
    found = page.page.evaluate("() => window.tinyDiffusion.sample({}).then(() => 'drawn', e => e.message)")
    assert "draws no new samples" in found


def test_draws_split_over_web_workers_are_the_same_bit_for_bit(pages, opened):
    """600 points go to the workers (at least 256 each), 300 stay on the page's thread: each point's samples are the
    same either way."""
    page = opened(pages["noise"])
    cores = page.page.evaluate("() => navigator.hardwareConcurrency")
    assert page.page.evaluate("() => window.tinyDiffusion.workers") == (min(4, cores) if cores > 1 else 0)
    noise = np.random.default_rng(0).standard_normal((600, 2)).tolist()
    many = page.sample(n=600, sampler="ddim", steps=5, eta=0, noise=noise)
    few = page.sample(n=300, sampler="ddim", steps=5, eta=0, noise=noise[:300])
    np.testing.assert_array_equal(many[:300], few)


def test_without_webassembly_the_page_multiplies_in_javascript_to_the_same_samples(pages, opened):
    """The products run in WebAssembly SIMD where the browser has it; without, in JavaScript: the same samples up to
    float32 rounding (300 points stay on the page's thread)."""
    noise = np.random.default_rng(1).standard_normal((300, 2)).tolist()
    options = dict(n=300, sampler="ddim", steps=8, eta=0, noise=noise)
    simd = opened(pages["noise"])
    plain = opened(pages["noise"], init_script="WebAssembly.Module = undefined;")
    assert simd.page.evaluate("() => window.tinyDiffusion.simd")
    assert not plain.page.evaluate("() => window.tinyDiffusion.simd")
    np.testing.assert_allclose(plain.sample(**options), simd.sample(**options), atol=1e-5)
