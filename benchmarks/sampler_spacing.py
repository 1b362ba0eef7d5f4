"""Where the probability-flow samplers put their noise levels: Karras sigmas (rho = 7) against DDIM's trailing steps.

    python benchmarks/sampler_spacing.py RUN_DIR [--samplers dpmpp-2m,euler,heun] [--steps 10,20] [--num 1000]

For each sampler, spacing and step count: ``--num`` samples from the same noise (seed 0), scored as ``evaluate`` scores
a point run's (W2 as a multiple of its floor, precision and recall), with the network calls made. No bar: a table for
the docs (Concepts, "Fast samplers"), measured on the default dino run.
"""

from __future__ import annotations

import argparse

import tiny_diffusion as td
from tiny_diffusion.diffusion import resolve_sampling
from tiny_diffusion.eval.evaluate import evaluate_run_samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a trained point run")
    parser.add_argument("--samplers", default="dpmpp-2m,euler,heun", help="comma-separated samplers")
    parser.add_argument("--steps", default="10,20", help="comma-separated step counts")
    parser.add_argument("--num", type=int, default=1000, help="samples per setting")
    args = parser.parse_args()
    model = td.Diffusion.load(args.run_dir)
    print("| sampler | spacing | steps | calls | W2 / floor | precision@0.1 | precision@0.05 | recall@0.05 |")
    print("|---|---|---|---|---|---|---|---|")
    for sampler in args.samplers.split(","):
        for spacing in ("trailing", "karras"):
            for steps in (int(n) for n in args.steps.split(",")):
                how = resolve_sampling(model.config, sampler, steps, 0.0, spacing=spacing)
                drawn = model.draw(args.num, how, seed=0)
                m = evaluate_run_samples(drawn.samples, model.config)
                print(f"| {sampler} | {spacing} | {steps} | {drawn.nfe} | {m['w2'] / m['w2_floor']:.2f} | "
                      f"{m['precision@0.1']:.3f} | {m['precision@0.05']:.3f} | {m['recall@0.05']:.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
