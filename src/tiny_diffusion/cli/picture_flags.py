"""The flags of the picture commands: ``plot forward|reverse|classes|guidance`` and ``animate``, and the sampler
flags that ``sample`` shares with them."""

from __future__ import annotations

import argparse
from typing import Any

from ..choices import ALL_SAMPLERS, ODE_TOLERANCES
from .flags import add_config_flags, add_flag, parse_float, parse_int
from .models import add_model_args

__all__ = ["add_plot_parser", "add_animate_parser", "add_sampler_flags", "sampler_options", "FIGURE_FORMATS",
           "FORWARD_FIELDS", "PANEL_IMAGES", "ANIMATED_IMAGES"]  # fmt: skip

# file types `plot` writes (viz.save_figure picks matplotlib's backend from the suffix); run directories keep PNG
FIGURE_FORMATS = ("png", "svg", "pdf")

# the TrainConfig fields that `plot forward` takes: the data (as in train), the noise schedule and the method
FORWARD_FIELDS = ("dataset", "densify", "lines", "angle", "digit", "image_index", "columns", "subset", "data_dir",
                  "standardize", "data_seed", "num_timesteps", "beta_schedule", "beta_start", "beta_end",
                  "method")  # fmt: skip

PANEL_IMAGES = 9  # images in each panel of an image strip (a 3 x 3 tile)

ANIMATED_IMAGES = 16  # images in each frame of an image animation (4 x 4)


def add_sampler_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sampler",
        choices=ALL_SAMPLERS,
        default=None,
        help="ddpm runs: ancestral ddpm, ddim, the probability-flow ODE's dpmpp-2m (DPM-Solver++ 2M), euler, heun, or "
        "ode (adaptive dopri5); flow runs: euler, heun, midpoint or ode (default: the run's)",
    )
    add_flag(
        parser,
        "sample-steps",
        type=parse_int,
        default=None,
        help="steps of ddim, dpmpp-2m, euler, heun (default: the run's when its sampler is used, else all training "
        "steps for ddim and 20 for the others; heun calls the network 2 steps - 1 times), or of a flow sampler "
        "(default 25)",
    )
    parser.add_argument(
        "--eta",
        type=parse_float,
        default=None,
        help="ddim noise: 0 deterministic, 1 like ddpm (default: the run's when its sampler is used, else 0)",
    )
    for name, kind in (("rtol", "relative"), ("atol", "absolute")):
        parser.add_argument(
            f"--{name}",
            type=parse_float,
            default=None,
            help=f"the ode sampler's {kind} tolerance: looser is fewer network calls (default: "
            + ", ".join(f"{value:g} for a {method} run" for method, value in ODE_TOLERANCES.items())
            + ")",
        )


def sampler_options(args: argparse.Namespace) -> dict[str, Any]:
    """What the flags of ``add_sampler_flags`` ask for, as the keywords of ``Diffusion.sample`` and
    ``resolve_sampling`` (None: the run's own)."""
    return {"sampler": args.sampler, "steps": args.sample_steps, "eta": args.eta, "rtol": args.rtol, "atol": args.atol}


def add_plot_parser(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser(
        "plot",
        help="the forward or reverse process; a conditional run's classes",
        description="Draw the forward process q(x_t | x_0) of a dataset, or the reverse "
        "process of a trained run, as a strip of panels at evenly spaced steps; or a "
        "conditional run's samples of each class, at one or several guidance scales.",
    )
    kinds = plot.add_subparsers(dest="kind", required=True, metavar="KIND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--num",
        type=parse_int,
        default=1000,
        help=f"points per panel (default: %(default)s; images: at most {PANEL_IMAGES})",
    )
    common.add_argument(
        "--panels",
        type=parse_int,
        default=6,
        help="number of panels, from t = T to t = 0 at evenly spaced steps (default: %(default)s)",
    )
    common.add_argument("--seed", type=parse_int, default=0, help="seed of the noise (default: %(default)s)")
    common.add_argument(
        "--format", choices=FIGURE_FORMATS, default=None, help="file type (default: from --out's suffix, else png)"
    )
    common.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    forward = kinds.add_parser(
        "forward",
        parents=[common],
        help="the data being noised, step by step",
        description="The forward process q(x_t | x_0) of a dataset: the data (t = 0) "
        "through T, one fixed noise draw per point. Dataset and schedule flags as in train.",
    )
    forward.add_argument("--out", metavar="FILE", help="output (default: runs/forward_DATASET.FORMAT)")
    add_config_flags(forward, FORWARD_FIELDS)
    reverse = kinds.add_parser(
        "reverse",
        parents=[common],
        help="a trained run's noise becoming samples",
        description="Rebuild the model from RUN_DIR (or take the exact model of a dataset) and draw the reverse "
        "process: the initial noise (t = T) to the samples (t = 0).",
    )
    add_model_args(reverse)
    reverse.add_argument("--out", metavar="FILE", help="output (default: RUN_DIR/reverse.FORMAT)")
    add_sampler_flags(reverse)

    picture = argparse.ArgumentParser(add_help=False)  # what `classes` and `guidance` share
    picture.add_argument("run_dir", metavar="RUN_DIR")
    add_flag(
        picture,
        "per-class",
        type=parse_int,
        default=None,
        help="samples of each class, or of each row of an autoguided run (default: 10 images or 500 points)",
    )
    picture.add_argument("--seed", type=parse_int, default=0, help="seed of the noise (default: %(default)s)")
    picture.add_argument(
        "--format", choices=FIGURE_FORMATS, default=None, help="file type (default: from --out's suffix, else png)"
    )
    picture.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_sampler_flags(picture)
    classes = kinds.add_parser(
        "classes",
        parents=[picture],
        help="a conditional run's samples of each class",
        description="Draw samples of every class of a conditional run: a row of images per "
        "digit, or a panel of points per shape.",
    )
    classes.add_argument(
        "--guidance", type=parse_float, default=None, help="classifier-free guidance scale (default: the run's)"
    )
    classes.add_argument("--out", metavar="FILE", help="output (default: RUN_DIR/classes.FORMAT)")
    guidance = kinds.add_parser(
        "guidance",
        parents=[picture],
        help="a conditional or autoguided run's samples as the guidance scale grows",
        description="Draw a conditional run's classes at several classifier-free guidance scales, or an "
        "autoguided run's samples (--per-class of them) at several autoguidance scales, each from the same "
        "noise: a row per scale.",
    )
    guidance.add_argument(
        "--scales",
        type=parse_float,
        nargs="+",
        default=[0.0, 1.0, 3.0, 5.0],
        metavar="W",
        help="guidance scales, a row each (default: 0 1 3 5)",
    )
    guidance.add_argument("--out", metavar="FILE", help="output (default: RUN_DIR/guidance.FORMAT)")


def add_animate_parser(commands: argparse._SubParsersAction) -> None:
    animate = commands.add_parser(
        "animate",
        help="GIFs of a run's reverse process and of its training",
        description="Write RUN_DIR/reverse.gif (noise to samples, evenly spaced steps, "
        "resting on the samples) and RUN_DIR/training.gif (one frame per snapshot); an exact model (--exact) has "
        "no training, so only its reverse.gif.",
    )
    add_model_args(animate)
    animate.add_argument(
        "--num",
        type=parse_int,
        default=1000,
        help=f"points in the reverse process (default: %(default)s; images: at most {ANIMATED_IMAGES})",
    )
    animate.add_argument(
        "--fps", type=parse_float, default=20, help="frames per second of the reverse process (default: %(default)s)"
    )
    add_flag(
        animate,
        "training-fps",
        type=parse_float,
        default=2,
        help="frames (snapshots) per second of the training animation (default: %(default)s)",
    )
    animate.add_argument("--seed", type=parse_int, default=0, help="seed of the initial noise (default: %(default)s)")
    add_sampler_flags(animate)
    animate.add_argument(
        "--mp4",
        action="store_true",
        help="also write .mp4 files (needs ffmpeg; skipped with a note when it is missing)",
    )
    animate.add_argument("--overwrite", action="store_true", help="replace existing animations")
