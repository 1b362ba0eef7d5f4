"""The playground end to end in a real browser (headless Chromium driven by Playwright): draw points with the
mouse, download them as a CSV point file, train with tiny settings, watch every snapshot and the loss arrive by
server-sent events, and find the run in the list, its figures and its interactive page loaded."""

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from serving import app_in_a_thread, crash, servers

from conftest import TINY_POINTS
from tiny_diffusion.data.files import load_point_file

pytest.importorskip("fastapi", reason="the web app needs the web extra: pip install 'tiny-diffusion[web]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip only)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("the browser test needs Debian's chromium (apt-get install chromium)", allow_module_level=True)

VIEW = 2  # the drawing canvas spans [-VIEW, VIEW] (playground.js)

# records every text #epoch and #loss-value show, and when the run is announced, in order
WATCH = """() => {
  window.seen = [];
  for (const id of ["epoch", "loss-value", "result"]) {
    new MutationObserver(() => window.seen.push([id, document.getElementById(id).textContent]))
      .observe(document.getElementById(id), { childList: true, characterData: true, subtree: true });
  }
}"""


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def draw_circle(page, *, radius: float, strokes: int = 90) -> None:
    """Press the mouse and draw a circle of ``radius`` pixels round the canvas's centre."""
    box = page.locator("#draw").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx + radius, cy)
    page.mouse.down()
    for k in range(1, strokes + 1):
        angle = 2 * math.pi * k / strokes
        page.mouse.move(cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    page.mouse.up()


def test_draw_train_and_watch_it_learn_live(browser, tmp_path):
    runs = tmp_path / "runs"
    with servers(runs) as start:
        server = start()
        page = browser.new_page(accept_downloads=True)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/playground")
        page.wait_for_selector("#num_epochs")
        assert page.locator("#dataset option").count() > 5  # my drawing and the 2-D datasets

        draw_circle(page, radius=100)
        count = int(page.inner_text("#count").split()[0])
        assert 40 <= count <= 91
        with page.expect_download() as download:
            page.click("#download")
        csv = tmp_path / download.value.suggested_filename
        download.value.save_as(csv)
        points = load_point_file(csv)  # the drawing is a point file train reads
        assert csv.name == "drawing.csv" and points.shape == (count, 2)
        width = page.locator("#draw").bounding_box()["width"]
        np.testing.assert_allclose(np.hypot(*points.T), 100 / width * 2 * VIEW, rtol=0.05)  # the circle drawn

        for name, value in TINY_POINTS.items():
            page.fill(f"#{name}", str(value))
        page.fill("#name", "drawn")
        page.evaluate(WATCH)
        page.click("#start")
        page.wait_for_selector("#result a", timeout=120_000)
        assert page.inner_text("#result a") == "drawn has joined the list of runs"
        assert page.inner_text("#status") == "done: drawn is trained"

        seen = page.evaluate("window.seen")
        steps = TINY_POINTS["num_samples"] // TINY_POINTS["train_batch_size"]
        epochs = [text for where, text in seen if where == "epoch" and text.startswith("epoch")]
        assert epochs == [f"epoch {e} of 2, step {e * steps}" for e in (1, 2)]  # each snapshot, in order
        losses = [text for where, text in seen if where == "loss-value"]
        assert [int(text.rsplit(" ", 1)[1]) for text in losses] == [steps, 2 * steps]
        loss = np.load(runs / "drawn" / "loss.npy")
        shown = float(re.match(r"loss (\S+) at", losses[-1]).group(1))
        assert shown == pytest.approx(loss[-1], rel=5e-3)  # the last step's loss, to 3 digits
        assert [where for where, _ in seen].index("result") > len(seen) - 3  # announced after the snapshots
        assert page.locator("#samples").get_attribute("data-count") == str(TINY_POINTS["eval_batch_size"])

        page.click("#result a")
        page.wait_for_selector("#run-drawn")
        assert page.locator("#run-drawn img").count() == 3  # samples, frames and loss figures, which all load
        page.wait_for_function("[...document.querySelectorAll('#run-drawn img')].every(i => i.naturalWidth > 0)")
        page.goto(server.url + "/runs/drawn/page")
        page.wait_for_load_state("load")
        assert page.title() == "Tiny Diffusion: drawn"  # the page of the run's dataset: the drawing
        assert errors == []
        code, err = server.interrupt()
        assert code == 0 and "Traceback" not in err


def test_a_crashed_training_is_shown_and_the_server_serves_on(browser, tmp_path):
    from tiny_diffusion.web.app import create_app
    from tiny_diffusion.web.training import Trainer

    runs = tmp_path / "runs"
    app = create_app(runs, trainer=Trainer(runs, target=crash))
    with app_in_a_thread(app) as url:
        page = browser.new_page()
        page.goto(url + "/playground")
        page.wait_for_selector("#num_epochs")
        page.select_option("#dataset", "moons")
        page.click("#start")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('training failed')")
        assert page.inner_text("#status") == "training failed: RuntimeError: the model fell over"
        assert "error" in page.get_attribute("#status", "class")
        assert page.is_enabled("#start") and not page.is_enabled("#stop")  # ready for the next try
        page.fill("#train_batch_size", "4096")  # within its bounds, but refused by TrainConfig: said in the page
        page.click("#start")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('train_batch_size')")
        assert page.inner_text("#status") == "train_batch_size (4096) exceeds num_samples (2000)"
        page.goto(url + "/")
        assert page.inner_text("h1").startswith("Runs")
