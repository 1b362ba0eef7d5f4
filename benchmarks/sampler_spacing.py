"""Where the probability-flow samplers put their noise levels: Karras sigmas (rho = 7) against DDIM's trailing steps.

    python benchmarks/sampler_spacing.py RUN_DIR [--samplers dpmpp-2m,euler,heun] [--steps 10,20]
        [--spacings trailing,karras] [--seeds 0] [--num 1000]
    python benchmarks/sampler_spacing.py --exact dino ...   # the data's own score in place of a network
    python benchmarks/sampler_spacing.py FLOW_RUN --samplers euler,heun,midpoint   # a flow run: even time steps
    python benchmarks/sampler_spacing.py --exact dino --exact-method flow --samplers euler,heun,midpoint

For each sampler, spacing, step count and seed of the initial noise: ``--num`` samples scored as ``evaluate`` scores
a point run's (W2 as a multiple of its floor, precision and recall), with the network calls made; with several seeds,
their mean too (W2 of 1000 samples moves by about 0.1 of its floor from one seed to the next). ``--exact DATASET``
draws the exact model (``td.exact``; ``--exact-method flow``: its exact velocity) instead, so a seed of the noise can
be scored apart from any network. A flow model's samplers take even time steps: the spacing column says so. On the
dino a last column says whether the draw meets the quality bar of ``points_quality.py`` (``BARS``), and the mean row
how many draws did. Tables for the docs (Concepts, "Fast samplers"), measured on the default dino run.
"""

from __future__ import annotations

import argparse

import numpy as np

import tiny_diffusion as td
from points_quality import BARS, meets  # the dino's quality bar, kept in one place
from tiny_diffusion.diffusion import resolve_sampling
from tiny_diffusion.eval.evaluate import evaluate_run_samples

COLUMNS = ("w2 / floor", "precision@0.1", "precision@0.05", "recall@0.05")


def scores(model: td.Diffusion, sampler: str, spacing: str, steps: int, seed: int, num: int) -> tuple[int, list, bool]:
    """The network calls made, the COLUMNS of one draw and whether it meets the quality bar."""
    how = (
        resolve_sampling(model.config, sampler, steps, 0.0)
        if model.is_flow
        else (resolve_sampling(model.config, sampler, steps, 0.0, spacing=spacing))
    )
    drawn = model.draw(num, how, seed=seed)
    m = evaluate_run_samples(drawn.samples, model.config)
    return drawn.nfe, [m["w2"] / m["w2_floor"], *(m[name] for name in COLUMNS[1:])], meets(m)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", help="a trained point run")
    parser.add_argument("--exact", metavar="DATASET", help="instead of RUN_DIR: the exact model of a point dataset")
    parser.add_argument("--exact-method", choices=("ddpm", "flow"), default="ddpm", help="the exact model's method")
    parser.add_argument("--samplers", default="dpmpp-2m,euler,heun", help="comma-separated samplers")
    parser.add_argument("--steps", default="10,20", help="comma-separated step counts")
    parser.add_argument("--spacings", default="trailing,karras", help="comma-separated step spacings")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the initial noise")
    parser.add_argument("--num", type=int, default=1000, help="samples per setting")
    args = parser.parse_args()
    if (args.run_dir is None) == (args.exact is None):
        parser.error("give a run directory or --exact DATASET (one of them)")
    model = td.exact(args.exact, method=args.exact_method) if args.exact else td.Diffusion.load(args.run_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    spacings = ["even"] if model.is_flow else args.spacings.split(",")
    barred = model.config.dataset == "dino"  # the bar is the dino's
    columns = [*COLUMNS, *(["meets the bar"] if barred else [])]
    if barred:
        print(f"The bar: {BARS}.")
    print(f"| sampler | spacing | steps | calls | seed | {' | '.join(columns)} |")
    print("|---|---|---|---|---|" + "---|" * len(columns))
    for sampler in args.samplers.split(","):
        for spacing in spacings:
            for steps in (int(n) for n in args.steps.split(",")):
                rows, met = [], 0
                for seed in seeds:
                    nfe, values, ok = scores(model, sampler, spacing, steps, seed, args.num)
                    rows.append(values)
                    met += ok
                    cells = [f"{v:.3f}" for v in values] + (["yes" if ok else "no"] if barred else [])
                    print(f"| {sampler} | {spacing} | {steps} | {nfe} | {seed} | " + " | ".join(cells) + " |")
                if len(seeds) > 1:
                    cells = [f"**{v:.3f}**" for v in np.mean(rows, axis=0)]
                    cells += [f"**{met} of {len(seeds)}**"] if barred else []
                    print(f"| {sampler} | {spacing} | {steps} | {nfe} | mean | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
