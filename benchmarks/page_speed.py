"""The exported page's speed and fidelity: samples drawn in headless Chromium beside Python's.

    OMP_NUM_THREADS=1 tiny-diffusion train --out /tmp/page-dino        # the default dino (a minute or two)
    python benchmarks/page_speed.py /tmp/page-dino [--sampler dpmpp-2m] [--repeats 3] [--markdown FILE]
        [--screenshot FILE.png]

Exports the run's page, opens it from file:// in Debian's Chromium (/usr/bin/chromium, driven by playwright) with
every other request blocked, and times `tinyDiffusion.sample({n: 1000, sampler, steps})` at 20 and 50 steps (the
median of --repeats draws after one warm-up; the sampler is the page's first, dpmpp-2m, unless told). The same draw
in Python (`Diffusion.sample`, same sampler, steps and eta; its own noise) is the reference: W2 between the page's
and Python's samples beside the data's own floor (W2 between two draws of the dataset), and precision@0.1 of each
against the dataset's support (`evaluate`). W2 between two Python draws (seeds 0 and 1) is given beside it: two
draws of 1,000 points of the same model are that far apart.

Bars (issue 17): 1,000 points in 20 steps within 1.5 s and 50 steps within 3 s; at 20 steps (20 model calls),
W2(page, Python) <= 1.2 x the floor and |precision@0.1(page) - precision@0.1(Python)| <= 0.03.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from tiny_diffusion.data.prepare import dataset_for  # not public: the run's dataset with its options
from tiny_diffusion.diffusion import Diffusion
from tiny_diffusion.eval.evaluate import evaluate_points  # not public: metrics beside their floors
from tiny_diffusion.eval.metrics import wasserstein2
from tiny_diffusion.viz.page import PAGE_SAMPLER, export_html

CHROMIUM = "/usr/bin/chromium"
BARS = {20: 1.5, 50: 3.0}  # steps -> seconds for 1,000 points


def page_draws(
    page_path: Path, n: int, repeats: int, screenshot: str | None = None, sampler: str = PAGE_SAMPLER
) -> dict[int, tuple[float, np.ndarray, int]]:
    """steps -> (median seconds, the last draw's samples, Web Workers used) for each of BARS; with ``screenshot``,
    also a picture of the page (its first draw, trajectories shown) in that PNG file."""
    from playwright.sync_api import sync_playwright

    found = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
        page.goto(page_path.as_uri())
        page.evaluate("() => window.tinyDiffusion.ready")
        if screenshot:
            page.check("#paths")
            page.screenshot(path=screenshot, full_page=True)
        timed = """async o => { const start = performance.now(); const x = await window.tinyDiffusion.sample(o);
                   return [performance.now() - start, x]; }"""
        for steps in BARS:
            options = {"n": n, "sampler": sampler, "steps": steps, "eta": 0, "seed": 0}
            page.evaluate(timed, options)  # warm-up: the JIT, the workers' first messages
            runs = [page.evaluate(timed, {**options, "seed": seed}) for seed in range(repeats)]
            seconds = statistics.median(ms for ms, _ in runs) / 1000
            found[steps] = (seconds, np.array(runs[-1][1]), page.evaluate("() => window.tinyDiffusion.workers"))
        browser.close()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a trained point run (the default dino: `tiny-diffusion train`)")
    parser.add_argument("--num", type=int, default=1000, help="points per draw (default: %(default)s)")
    parser.add_argument(
        "--sampler",
        default=PAGE_SAMPLER,
        help="ddpm, ddim, dpmpp-2m, euler or heun; euler, heun or midpoint for a flow run (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed draws per setting (default: %(default)s)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--screenshot", metavar="FILE.png", help="also a picture of the page (docs/page_dino.png)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = Diffusion.load(args.run_dir)
    dataset, options = dataset_for(model.config)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_html(args.run_dir, Path(tmp) / "page.html")
        size = path.stat().st_size
        drawn = page_draws(path, args.num, args.repeats, args.screenshot, args.sampler)
    lines = [
        f"page: {size / 1e6:.2f} MB; {drawn[20][2]} Web Workers; {args.sampler}, eta 0, {args.num} points",
        "",
        "| steps | page s | bar s | W2(page, Python) | W2(Python, Python) | W2 floor | ratio | precision@0.1 page "
        "| Python | difference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok = True
    for steps, (seconds, samples, _) in drawn.items():
        python, again = (
            model.sample(args.num, sampler=args.sampler, steps=steps, eta=0.0, seed=seed) for seed in (0, 1)
        )
        page_metrics, python_metrics = (evaluate_points(s, dataset, options) for s in (samples, python))
        w2, w2_python = (
            wasserstein2(dataset.in_metric_units(a), dataset.in_metric_units(python))  # in the floor's units
            for a in (samples, again)
        )
        floor = page_metrics["w2_floor"]
        precisions = page_metrics["precision@0.1"], python_metrics["precision@0.1"]
        difference = abs(precisions[0] - precisions[1])
        ok &= seconds <= BARS[steps] and (steps != 20 or (w2 <= 1.2 * floor and difference <= 0.03))
        lines.append(
            f"| {steps} | {seconds:.2f} | {BARS[steps]} | {w2:.4f} | {w2_python:.4f} | {floor:.4f} "
            f"| {w2 / floor:.2f} | {precisions[0]:.3f} | {precisions[1]:.3f} | {difference:.3f} |"
        )
    report = "\n".join(lines)
    print(report)
    print("all bars met" if ok else "some bar missed", file=sys.stderr)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
