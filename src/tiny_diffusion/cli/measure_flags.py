"""The flags of the measuring commands: ``evaluate``, ``diagnose``, ``nfe`` and ``likelihood`` (``measures.py``)."""

from __future__ import annotations

import argparse

from ..choices import ALL_SAMPLERS, FLOW_SAMPLERS, SAMPLERS
from .flags import parse_float, parse_int
from .models import add_model_args

__all__ = ["add_measure_parsers"]


def add_measure_parsers(commands: argparse._SubParsersAction) -> None:
    """Add the four measuring commands to the ``tiny-diffusion`` subcommands."""
    evaluate = commands.add_parser(
        "evaluate",
        help="metrics of samples against a dataset, as JSON",
        description="Compare samples (a .npy file or a run's samples.npy) with fresh "
        "draws of the dataset; every metric comes with its data-vs-data floor. Image "
        "samples are scored by the judge (trained and cached first if needed). A run of a dataset whose density is "
        "known also gets its NLL beside the exact one.",
    )
    evaluate.add_argument("path", metavar="FILE.npy|RUN_DIR")
    evaluate.add_argument("--dataset", help="dataset to compare with (default: the run's, with its options)")
    evaluate.add_argument("--data-dir", metavar="DIR", help="mnist: the directory of its IDX files")
    evaluate.add_argument(
        "--labels",
        metavar="FILE.npy",
        help="the class each sample was drawn for (a conditional "
        "run's labels.npy, the default for its RUN_DIR): adds how well each class is drawn",
    )
    evaluate.add_argument(
        "--no-likelihood",
        dest="likelihood",
        action="store_false",
        help="leave out the run's negative log-likelihood beside the exact one (computed where the data's density "
        "is known: dino, blobs, 8gaussians)",
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar (when the judge must be trained)")

    diagnose = commands.add_parser(
        "diagnose",
        help="a run against the exact answer: denoiser error per step, terminal mismatch, copies",
        description="Compare a run's denoiser with the ideal denoiser of its own training set at evenly spaced steps "
        "(the mean squared error of its x0 prediction, and its training loss, on fresh x_t), say whether its forward "
        "process reaches noise (the share of the signal x_T keeps, KL of q(x_T) from N(0, I)) and, for points, how "
        "many of its samples copy a training point; write RUN_DIR/diagnose.json and diagnose.png. A flow run is "
        "compared at times (the midpoints of --steps equal intervals of [0, 1]); its path ends at the noise itself.",
    )
    diagnose.add_argument("run_dir", metavar="RUN_DIR")
    diagnose.add_argument(
        "--steps", type=parse_int, default=20, help="steps (a flow run: times) compared (default: %(default)s)"
    )
    diagnose.add_argument("--per-step", type=parse_int, default=256, help="fresh x_t at each (default: %(default)s)")
    diagnose.add_argument("--seed", type=parse_int, default=0, help="(default: %(default)s)")
    diagnose.add_argument("--overwrite", action="store_true", help="replace an earlier diagnosis")

    nfe = commands.add_parser(
        "nfe",
        help="sample quality against the network evaluations each sampler makes",
        description="Draw a run's samples with each sampler at each step count (the ode sampler at each tolerance, "
        "ddim at each eta), score them as `evaluate` does (for points W2, precision, recall; for images the judge's "
        "Frechet distance and confident share; each beside its floor) and set them against the network evaluations "
        "actually made; write RUN_DIR/nfe.json and nfe.png and print a table. With --exact DATASET in place of "
        "RUN_DIR, the same for the dataset's exact model: what the samplers alone lose.",
    )
    add_model_args(nfe)
    nfe.add_argument(
        "--samplers",
        nargs="+",
        choices=ALL_SAMPLERS,
        default=None,
        metavar="SAMPLER",
        help=f"a ddpm run's from {', '.join(SAMPLERS)}, a flow run's from {', '.join(FLOW_SAMPLERS)} (default: all of "
        "the run's, ddpm once; image runs leave out ode)",
    )
    nfe.add_argument(
        "--steps",
        nargs="+",
        type=parse_int,
        default=None,
        help="step counts (default: 5 10 20 50 for points, 10 20 50 for images, those up to T)",
    )
    nfe.add_argument(
        "--tolerances",
        nargs="+",
        type=parse_float,
        default=None,
        help="the ode sampler's rtol = atol (default: 0.1 0.01 0.001)",
    )
    nfe.add_argument(
        "--etas", nargs="+", type=parse_float, default=None, help="ddim's noise, each a curve of its own (default: 0)"
    )
    nfe.add_argument(
        "--num-samples", type=parse_int, default=None, help="per setting (default: the run's eval_batch_size)"
    )
    nfe.add_argument(
        "--seed", type=parse_int, default=0, help="of the initial noise, the same for all (default: %(default)s)"
    )
    nfe.add_argument(
        "--seeds",
        type=parse_int,
        default=1,
        help="draw each setting from this many seeds of the noise (--seed onwards) and report the means, with W2's "
        "spread: one draw's W2 is noisy (default: %(default)s)",
    )
    nfe.add_argument("--overwrite", action="store_true", help="replace an earlier nfe.json and nfe.png")

    likelihood = commands.add_parser(
        "likelihood",
        help="the log-density of points under a run (or an exact model), by the probability-flow ODE",
        description="The natural-log density of each point of FILE.npy (N, D) in the data's units, by the "
        "probability-flow ODE (dopri5; the exact divergence up to 8 dimensions, Hutchinson's estimator above) from "
        "the data after the first noising step to N(0, I) at t = T (a flow run: its own ODE, from the data itself at "
        "t = 0 to N(0, I) at t = 1). Writes the (N,) log-densities as .npy and prints "
        "their mean, standard error and count as JSON; --bound adds the variational bound (Ho et al. eq. 5) in nats "
        "and bits per dimension, --bound-only computes the bound alone (the ODE is slow on images).",
    )
    add_model_args(likelihood)
    points = likelihood.add_mutually_exclusive_group(required=True)
    points.add_argument("--points", metavar="FILE.npy", help="the points, (N, D) in data units (or images)")
    points.add_argument(
        "--test",
        type=parse_int,
        metavar="N",
        help="instead of a file: the first N images of the run's test split, or N fresh points of its dataset",
    )
    likelihood.add_argument("--out", metavar="FILE.npy", help="output (default: RUN_DIR/log_prob_POINTS.npy)")
    likelihood.add_argument("--rtol", type=parse_float, default=1e-5, help="the solver's (default: %(default)s)")
    likelihood.add_argument("--atol", type=parse_float, default=1e-5, help="the solver's (default: %(default)s)")
    likelihood.add_argument(
        "--hutchinson", type=parse_int, default=None, metavar="K", help="estimate the divergence with K probes "
        "(default: exact up to 8 dimensions, else 16 probes)"
    )  # fmt: skip
    bound = likelihood.add_mutually_exclusive_group()
    bound.add_argument("--bound", action="store_true", help="also the variational bound, in nats per point")
    bound.add_argument(
        "--bound-only",
        action="store_true",
        help="only the variational bound; the output file holds it (nats per point, default RUN_DIR/bound_POINTS.npy)",
    )
    likelihood.add_argument("--seed", type=parse_int, default=0, help="(default: %(default)s)")
    likelihood.add_argument("--overwrite", action="store_true", help="replace an existing output file")
