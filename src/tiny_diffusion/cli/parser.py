"""The command line's parser: every command and its flags. Bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

from ..choices import DEVICES
from ..runs.policy import DEFAULT_EVERY, DEFAULT_KEEP
from .flags import add_config_flags, add_flag, flag_groups, parse_float, parse_int
from .measure_flags import add_measure_parsers
from .models import add_model_args
from .picture_flags import add_animate_parser, add_plot_parser, add_sampler_flags

__all__ = ["PROG", "build_parser", "one_line"]

PROG = "tiny-diffusion"


def one_line(message: str) -> str:
    """``message`` with control characters (line breaks among them) written as escapes: an argument or a path may
    hold them, and an error is one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class _Parser(argparse.ArgumentParser):
    """argparse, whose errors are one line like the others (no usage dump), exit code 2; sub-commands' parsers
    are of this class too. `tiny-diffusion train --help` shows the flags."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")  # "argument --num-epochs: ..." -> "--num-epochs: ..."
        if message.startswith("the following arguments are required"):
            message += f" (`{self.prog} --help` lists them)"
        elif message.startswith("unrecognized arguments"):  # reported by the top parser, whatever the command
            message += " (the command's --help lists its flags)"
        self.exit(2, f"{PROG}: error: {one_line(message)}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given a ``command``, the parsers of the others are left without their
    arguments where filling them would import torch (`tiny-diffusion --help` and `train --help` stay quick)."""
    parser = _Parser(prog=PROG, description="Small, readable diffusion models (DDPM) for point sets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model and write a run directory",
        usage=f"{PROG} train [-h] [--config FILE] [--resume RUN_DIR] [--out DIR]\n"
        f"{' ' * 28}[--overwrite] [--SETTING VALUE ...]",
        description="Train a DDPM and write a run directory (config, weights, samples, "
        "figures). Every setting has a flag (below, by kind); the original's spellings "
        "(--num_epochs) are accepted too.",
    )
    train.add_argument(
        "--config",
        metavar="FILE",
        help="TOML, YAML or JSON file whose keys match the flags; flags given on the command line win",
    )
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="carry on the interrupted run of RUN_DIR from its newest "
        "checkpoint, with the settings it was started with (no other setting flags needed)",
    )
    groups = flag_groups(train)
    run = groups["run"]
    run.add_argument("--out", metavar="DIR", help="run directory (default: runs/EXPERIMENT_NAME, else runs/DATASET)")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run directory (once the new run is complete), or discard an unfinished run there",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_flag(
        run,
        "checkpoint-every",
        default=DEFAULT_EVERY,
        metavar="STEPS|SECONDSs",
        help="save a checkpoint every this many optimiser steps (200), or seconds of training (30s); "
        "0 = only when interrupted. Results do not depend on it (default: %(default)s)",
    )
    add_flag(
        run,
        "keep-checkpoints",
        type=parse_int,
        default=DEFAULT_KEEP,
        metavar="K",
        help="keep the newest K checkpoints (default: %(default)s)",
    )
    groups["device"].add_argument(
        "--threads",
        type=parse_int,
        metavar="N",
        help="torch's CPU threads while training (default: 1 for points on the CPU, whose small matrix products "
        "stall on more when a core is busy, unless OMP_NUM_THREADS is set; torch's own for images)",
    )
    groups["device"].add_argument(
        "--compile",
        action="store_true",
        help="train a torch.compile'd network: "
        "compiling takes a while first and can be slower on a CPU (README, Beyond one "
        "core); results agree up to float rounding, so it is not a setting of the run",
    )
    add_config_flags(train, groups=groups)

    sample = commands.add_parser(
        "sample",
        help="draw samples from a trained run",
        description="Rebuild the model from RUN_DIR alone (or take the exact model of a dataset) and write samples "
        "as .npy, with a picture of them beside it (.png: a scatter plot of points, a grid of images).",
    )
    add_model_args(sample)
    sample.add_argument("--num", type=parse_int, default=1000, help="number of samples (default: %(default)s)")
    add_sampler_flags(sample)
    sample.add_argument(
        "--prompt",
        help="a conditional run's class to draw: a digit 0-9, its name (seven) or a "
        "number (2024, drawn digit by digit as one image), or a shape's name (dino)",
    )
    sample.add_argument(
        "--guidance",
        type=parse_float,
        default=None,
        help="guidance scale w: classifier-free for a conditional run, autoguidance for an autoguided one "
        "(an image run's default); 0 = none (default: the run's)",
    )
    sample.add_argument("--seed", type=parse_int, default=0, help="seed of the initial noise (default: %(default)s)")
    sample.add_argument("--device", default="cpu", choices=DEVICES, help="where to sample (default: %(default)s)")
    sample.add_argument(
        "--out",
        metavar="FILE.npy",
        help="output (default: RUN_DIR/sampled_SAMPLER_seedK.npy); the picture goes beside it, as FILE.png",
    )
    sample.add_argument("--overwrite", action="store_true", help="replace existing output files")

    verify = commands.add_parser(
        "verify",
        help="check every file of a run against its manifest",
        description="Check the size and sha256 of every file of RUN_DIR against its "
        "manifest.json, and of an unfinished run's config and checkpoints; a missing, "
        "truncated or changed file is reported in one line (exit code 2).",
    )
    verify.add_argument("run_dir", metavar="RUN_DIR")

    add_measure_parsers(commands)

    export = commands.add_parser(
        "export-html",
        help="one self-contained HTML page of a run: samples drawn live in the browser, sliders, training",
        description="Write a single HTML file that opens from disk or any static host with no network access "
        "(every script, style and weight inside it). Point runs: samples drawn live in the browser by the run's own "
        "network (sampler, steps, eta, seed, class, guidance), the reverse and forward processes under a time "
        "slider, trajectories, the denoiser's field, the training snapshots and the loss. Image runs: the reverse "
        "process of a grid of digits, drawn here.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--out", metavar="FILE.html", help="output (default: RUN_DIR/page.html)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    datasets = commands.add_parser(
        "datasets",
        help="list the datasets, or draw each one",
        description="List every registered dataset with its dimension and description.",
    )
    datasets.add_argument("--plot", metavar="DIR", help="also write one PNG per dataset into DIR")
    datasets.add_argument("--num", type=parse_int, default=2000, help="points per picture")
    add_plot_parser(commands)
    add_animate_parser(commands)

    ablate = commands.add_parser(
        "ablate",
        help="one run per value of a setting, a grid figure and a table",
        usage=f"{PROG} ablate [-h] [--config FILE] [--out DIR] [--jobs N] [--quiet]\n"
        f"{' ' * 29}[--SETTING VALUE ...] PARAM VALUE [VALUE ...]",
        description="Train one run per VALUE of the setting PARAM (any train flag, e.g. "
        "learning_rate, num_timesteps, beta_schedule, hidden_size, time_embedding, dataset, "
        "sample_steps) with the other flags as given, then write grid.png (rows: values; "
        "columns: snapshots) and results.csv / results.md. Complete runs with the same "
        "settings are reused and interrupted ones carry on from their last checkpoint, so "
        "an interrupted study resumes.",
    )
    ablate.add_argument("param", metavar="PARAM", help="the setting to vary (a train flag name)")
    ablate.add_argument("values", metavar="VALUE", nargs="+", help="its values")
    ablate.add_argument("--config", metavar="FILE", help="TOML, YAML or JSON file of train settings")
    ablate.add_argument("--out", metavar="DIR", help="study directory (default: runs/ablate_PARAM)")
    ablate.add_argument(
        "--jobs", type=parse_int, default=1, help="runs to train at once, in separate processes (default: %(default)s)"
    )
    ablate.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(ablate)

    serve = commands.add_parser(
        "serve",
        help="a local web app: the runs, their pages, and a playground that trains live",
        description="Serve a local web app: the list of runs in RUNS_DIR with their figures and metrics, each "
        "run's interactive page, and a playground where you draw points (or pick a dataset), train, and watch the "
        'snapshots and the loss arrive live. Needs the web extra: pip install "tiny-diffusion[web]". Ctrl-C stops '
        "it (a training saves a checkpoint first).",
    )
    serve.add_argument(
        "runs_dir",
        metavar="RUNS_DIR",
        nargs="?",
        default="runs",
        help="the folder of runs to list, where the playground's runs go too (default: %(default)s)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on; another than this machine's own is served with a warning "
        "(default: %(default)s)",
    )
    serve.add_argument("--port", type=parse_int, default=8000, help="0 picks a free one (default: %(default)s)")

    judge = commands.add_parser(
        "judge",
        help="the digit classifier that scores image samples",
        description="The judge: a small classifier trained on real digits; `evaluate` "
        "uses its confidence, class histogram and features to score image samples.",
    )
    if command in (None, "judge"):  # what it needs loads torch: only for this command
        _judge_args(judge)

    reproduce = commands.add_parser(
        "reproduce",
        help="re-run the original tiny-diffusion's eight studies",
        description="Train the original tiny-diffusion's eight ablation studies with its "
        "settings and values, write each study's grid and tables, and findings.md: "
        "every study's numbers beside the original's conclusion. Complete runs are "
        "reused, so an interrupted reproduction resumes.",
    )
    if command in (None, "reproduce"):  # the studies' names load torch: only for this command
        _reproduce_args(reproduce)
    return parser


def _judge_args(judge: argparse.ArgumentParser) -> None:
    from ..data.images import IMAGE_DATASETS
    from ..eval.judge_training import DEFAULT_EPOCHS

    judge_commands = judge.add_subparsers(dest="judge_command", required=True, metavar="ACTION")
    judge_train = judge_commands.add_parser(
        "train",
        help="train the judge and cache it",
        description="Train the judge on the dataset's train split, report its "
        "test accuracy and cache it (replacing a cached one).",
    )
    judge_train.add_argument(
        "--dataset", default="mnist5k", choices=tuple(IMAGE_DATASETS), help="image dataset (default: %(default)s)"
    )
    judge_train.add_argument("--data-dir", metavar="DIR", help="mnist: the directory of its IDX files")
    judge_train.add_argument("--epochs", type=parse_int, default=DEFAULT_EPOCHS, help="(default: %(default)s)")
    judge_train.add_argument("--seed", type=parse_int, default=0, help="(default: %(default)s)")
    judge_train.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where judges are cached (default: $TINY_DIFFUSION_CACHE, else ~/.cache/tiny-diffusion)",
    )
    judge_train.add_argument("--quiet", action="store_true", help="no progress bar")


def _reproduce_args(reproduce: argparse.ArgumentParser) -> None:
    from ..studies.reproduce import QUICK_EPOCHS, STUDY_NAMES

    reproduce.add_argument("--quick", action="store_true", help=f"train {QUICK_EPOCHS} epochs instead of 200")
    reproduce.add_argument(
        "--only",
        nargs="+",
        metavar="STUDY",
        choices=STUDY_NAMES,
        help=f"run only these studies: {', '.join(STUDY_NAMES)}",
    )
    reproduce.add_argument(
        "--out", metavar="DIR", help="output directory (default: runs/reproduce or runs/reproduce_quick)"
    )
    reproduce.add_argument(
        "--jobs",
        type=parse_int,
        default=min(os.cpu_count() or 1, 8),
        help="runs to train at once, one process each (default: one per CPU core, at most 8: %(default)s here)",
    )
    reproduce.add_argument("--device", default="auto", choices=DEVICES, help="where to train (default: %(default)s)")
    reproduce.add_argument("--quiet", action="store_true", help="no progress lines")
