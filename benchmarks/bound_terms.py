"""Where a run's variational bound goes: its terms at a few steps, for some of its test images or fresh points.

    python benchmarks/bound_terms.py RUN_DIR [--num 10] [--steps 0 1 2 5 10 20 50 100 200 500 900 999]

Each term of Ho et al.'s bound (2020, eq. 5) at the steps given, averaged over ``--num`` images of the run's test
split (or fresh points of its dataset), from one draw of the noise: the decoder's -log p(x0 | x at step 0) at step 0,
else the KL term coef1_t^2 |x0 - x0_hat|^2 / (2 beta-tilde_t); with the squared error of the x0 prediction beside
it. The bound (``tiny-diffusion likelihood RUN --bound``) is their sum over every step plus the prior's term.
"""

from __future__ import annotations

import argparse
import math

import torch

import tiny_diffusion as td
from tiny_diffusion.data.images import get_image_dataset  # not public: an image run's test split
from tiny_diffusion.data.prepare import dataset_for  # not public: a point run's dataset with its options
from tiny_diffusion.eval.likelihood import _decoder_log_prob  # not public: the bound's decoder term


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--num", type=int, default=10, help="test images or fresh points")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 900, 999])
    args = parser.parse_args()
    model = td.Diffusion.load(args.run_dir)
    config = model.config
    if config.is_images:
        x = get_image_dataset(config.dataset).images("test", data_dir=config.data_dir)[0][: args.num]
    else:
        dataset, options = dataset_for(config)
        x = dataset.sample(args.num, 1, **options)
    x0 = model._likelihood_input(x)  # (N, ...) float64 in the model's coordinates
    schedule, predict = model.schedule, model.noise_predictor(args.num)
    ab, coef1 = schedule.alphas_cumprod.double(), schedule.posterior_mean_coef1.double()
    variance = schedule.posterior_variance.double()
    generator = torch.Generator().manual_seed(0)
    print("| step | term, nats | squared error of x0 |")
    print("|---|---|---|")
    for t in (t for t in args.steps if t < len(schedule)):
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        x_t = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * noise
        with torch.no_grad():
            predicted = predict(x_t.float(), torch.full((args.num,), t)).double()
        x0_hat = (x_t - (1 - ab[t]).sqrt() * predicted) / ab[t].sqrt()
        error = ((x0 - x0_hat) ** 2).reshape(args.num, -1).sum(1)
        if t == 0:
            decoder = _decoder_log_prob(x0, x0_hat, math.sqrt(float(variance[1])), config.is_images)
            term = -decoder.reshape(args.num, -1).sum(1)
        else:
            term = coef1[t] ** 2 * error / (2 * variance[t])
        print(f"| {t} | {float(term.mean()):.1f} | {float(error.mean()):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
