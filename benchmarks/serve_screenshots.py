"""The screenshots of `tiny-diffusion serve` in the docs (docs/serve_runs.png, docs/serve_playground.png).

    python benchmarks/serve_screenshots.py [--out docs]

Trains two small runs (moons, with its metrics.json from td.evaluate, and 8gaussians) into a temporary folder,
serves it with `tiny-diffusion serve`, and photographs in headless Chromium (Playwright, /usr/bin/chromium): the
list of runs, then the playground halfway through training on a heart drawn with the mouse.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from playwright.sync_api import sync_playwright

import tiny_diffusion as td

SMALL = dict(num_samples=2000, train_batch_size=128, eval_batch_size=1000, num_epochs=60, num_timesteps=200,
             beta_schedule="cosine", hidden_size=64, hidden_layers=2, embedding_size=32,
             save_images_step=10)  # fmt: skip


def heart(t: float) -> tuple[float, float]:
    """A point of the heart curve, x and y in about [-1, 1] (y up)."""
    x = 16 * math.sin(t) ** 3
    y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
    return x / 17, y / 17


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder of the two PNG files (default: %(default)s)")
    args = parser.parse_args()
    out = Path(args.out)
    runs = Path(tempfile.mkdtemp()) / "runs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", td.SettingWarning)
        for dataset in ("moons", "8gaussians"):
            model = td.train(SMALL, dataset=dataset, out=runs / dataset, progress=False)
            if dataset == "moons":
                (runs / dataset / "metrics.json").write_text(json.dumps(td.evaluate(model, progress=False), indent=2))
    server = subprocess.Popen(
        [sys.executable, "-m", "tiny_diffusion", "serve", "runs", "--port", "0"],
        cwd=runs.parent,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = server.stdout.readline().split(" at ")[1].split()[0].rstrip("/")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "/")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=out / "serve_runs.png")
            page.set_viewport_size({"width": 1400, "height": 930})
            page.goto(url + "/playground")
            page.wait_for_selector("#num_epochs")
            box = page.locator("#draw").bounding_box()
            centre, scale = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2), box["width"] * 0.38
            page.mouse.move(centre[0], centre[1] - heart(0)[1] * scale)
            page.mouse.down()
            for k in range(1, 361):
                x, y = heart(2 * math.pi * k / 360)
                page.mouse.move(centre[0] + x * scale, centre[1] - y * scale)
            page.mouse.up()
            for name, value in {"num_epochs": 200, "num_timesteps": 200, "beta_schedule": "cosine"}.items():
                if name == "beta_schedule":
                    page.select_option(f"#{name}", value)
                else:
                    page.fill(f"#{name}", str(value))
            page.fill("#name", "heart")
            page.click("#start")
            page.wait_for_function("/epoch (1[2-9]\\d|200) of/.test(document.getElementById('epoch').textContent)",
                                   timeout=600_000)  # fmt: skip
            page.screenshot(path=out / "serve_playground.png")
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=120)
    print(f"wrote {out / 'serve_runs.png'} and {out / 'serve_playground.png'}")


if __name__ == "__main__":
    main()
