"""The ``tiny-diffusion`` command: parse, validate, call the library. Bad input exits 2 with one line on stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, Sequence

from ..runs.checkpoints import DEFAULT_EVERY, DEFAULT_KEEP
from .pictures import add_animate_parser, add_plot_parser, add_sampler_flags, animate, plot
from ..config import (DEVICES, TrainConfig, add_config_flags, add_flag, flag_groups, load_config_file, parse_float,
                      parse_int)
from ..core.distributed import is_main_process, world_size
from ..errors import SettingError, UsageError
from ..runs.interrupts import Interrupted

__all__ = ["main", "build_parser"]

PROG = "tiny-diffusion"


def _one_line(message: str) -> str:
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
        self.exit(2, f"{PROG}: error: {_one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Small, readable diffusion models (DDPM) for point sets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and write a run directory",
                                usage=f"{PROG} train [-h] [--config FILE] [--resume RUN_DIR] [--out DIR]\n"
                                f"{' ' * 28}[--overwrite] [--SETTING VALUE ...]",
                                description="Train a DDPM and write a run directory (config, weights, samples, "
                                "figures). Every setting has a flag (below, by kind); the original's spellings "
                                "(--num_epochs) are accepted too.")
    train.add_argument("--config", metavar="FILE", help="TOML, YAML or JSON file whose keys match the flags; "
                       "flags given on the command line win")
    train.add_argument("--resume", metavar="RUN_DIR", help="carry on the interrupted run of RUN_DIR from its newest "
                       "checkpoint, with the settings it was started with (no other setting flags needed)")
    groups = flag_groups(train)
    run = groups["run"]
    run.add_argument("--out", metavar="DIR", help="run directory (default: runs/EXPERIMENT_NAME, else "
                     "runs/DATASET)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory (once the new "
                     "run is complete), or discard an unfinished run there")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_flag(run, "checkpoint-every", default=DEFAULT_EVERY, metavar="STEPS|SECONDSs",
             help="save a checkpoint every this many optimiser steps (200), or seconds of training (30s); "
             "0 = only when interrupted. Results do not depend on it (default: %(default)s)")
    add_flag(run, "keep-checkpoints", type=parse_int, default=DEFAULT_KEEP, metavar="K",
             help="keep the newest K checkpoints (default: %(default)s)")
    groups["device"].add_argument("--compile", action="store_true", help="train a torch.compile'd network: "
                                  "compiling takes a while first and can be slower on a CPU (README, Beyond one "
                                  "core); results agree up to float rounding, so it is not a setting of the run")
    add_config_flags(train, groups=groups)

    sample = commands.add_parser("sample", help="draw samples from a trained run",
                                 description="Rebuild the model from RUN_DIR alone and write samples as .npy, with "
                                 "a picture of them beside it (.png: a scatter plot of points, a grid of images).")
    sample.add_argument("run_dir", metavar="RUN_DIR")
    sample.add_argument("--num", type=parse_int, default=1000, help="number of samples (default: %(default)s)")
    add_sampler_flags(sample)
    sample.add_argument("--prompt", help="a conditional run's class to draw: a digit 0-9, its name (seven) or a "
                        "number (2024, drawn digit by digit as one image), or a shape's name (dino)")
    sample.add_argument("--guidance", type=parse_float, default=None, help="classifier-free guidance scale w of a "
                        "conditional run, 0 = plain conditional (default: the run's)")
    sample.add_argument("--seed", type=parse_int, default=0, help="seed of the initial noise (default: %(default)s)")
    sample.add_argument("--device", default="cpu", choices=DEVICES, help="where to sample (default: %(default)s)")
    sample.add_argument("--out", metavar="FILE.npy", help="output (default: RUN_DIR/sampled_SAMPLER_seedK.npy); "
                        "the picture goes beside it, as FILE.png")
    sample.add_argument("--overwrite", action="store_true", help="replace existing output files")

    verify = commands.add_parser("verify", help="check every file of a run against its manifest",
                                 description="Check the size and sha256 of every file of RUN_DIR against its "
                                 "manifest.json, and of an unfinished run's config and checkpoints; a missing, "
                                 "truncated or changed file is reported in one line (exit code 2).")
    verify.add_argument("run_dir", metavar="RUN_DIR")

    evaluate = commands.add_parser("evaluate", help="metrics of samples against a dataset, as JSON",
                                   description="Compare samples (a .npy file or a run's samples.npy) with fresh "
                                   "draws of the dataset; every metric comes with its data-vs-data floor. Image "
                                   "samples are scored by the judge (trained and cached first if needed).")
    evaluate.add_argument("path", metavar="FILE.npy|RUN_DIR")
    evaluate.add_argument("--dataset", help="dataset to compare with (default: the run's, with its options)")
    evaluate.add_argument("--data-dir", metavar="DIR", help="mnist: the directory of its IDX files")
    evaluate.add_argument("--labels", metavar="FILE.npy", help="the class each sample was drawn for (a conditional "
                          "run's labels.npy, the default for its RUN_DIR): adds how well each class is drawn")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar (when the judge must be trained)")

    datasets = commands.add_parser("datasets", help="list the datasets, or draw each one",
                                   description="List every registered dataset with its dimension and description.")
    datasets.add_argument("--plot", metavar="DIR", help="also write one PNG per dataset into DIR")
    datasets.add_argument("--num", type=parse_int, default=2000, help="points per picture")
    add_plot_parser(commands)
    add_animate_parser(commands)

    ablate = commands.add_parser("ablate", help="one run per value of a setting, a grid figure and a table",
                                 usage=f"{PROG} ablate [-h] [--config FILE] [--out DIR] [--jobs N] [--quiet]\n"
                                 f"{' ' * 29}[--SETTING VALUE ...] PARAM VALUE [VALUE ...]",
                                 description="Train one run per VALUE of the setting PARAM (any train flag, e.g. "
                                 "learning_rate, num_timesteps, beta_schedule, hidden_size, time_embedding, dataset, "
                                 "sample_steps) with the other flags as given, then write grid.png (rows: values; "
                                 "columns: snapshots) and results.csv / results.md. Complete runs with the same "
                                 "settings are reused and interrupted ones carry on from their last checkpoint, so "
                                 "an interrupted study resumes.")
    ablate.add_argument("param", metavar="PARAM", help="the setting to vary (a train flag name)")
    ablate.add_argument("values", metavar="VALUE", nargs="+", help="its values")
    ablate.add_argument("--config", metavar="FILE", help="TOML, YAML or JSON file of train settings")
    ablate.add_argument("--out", metavar="DIR", help="study directory (default: runs/ablate_PARAM)")
    ablate.add_argument("--jobs", type=parse_int, default=1, help="runs to train at once, in separate processes "
                        "(default: %(default)s)")
    ablate.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(ablate)

    from ..data.images import IMAGE_DATASETS
    from ..eval.judge import DEFAULT_EPOCHS

    judge = commands.add_parser("judge", help="the digit classifier that scores image samples",
                                description="The judge: a small classifier trained on real digits; `evaluate` "
                                "uses its confidence, class histogram and features to score image samples.")
    judge_commands = judge.add_subparsers(dest="judge_command", required=True, metavar="ACTION")
    judge_train = judge_commands.add_parser("train", help="train the judge and cache it",
                                            description="Train the judge on the dataset's train split, report its "
                                            "test accuracy and cache it (replacing a cached one).")
    judge_train.add_argument("--dataset", default="mnist5k", choices=tuple(IMAGE_DATASETS),
                             help="image dataset (default: %(default)s)")
    judge_train.add_argument("--data-dir", metavar="DIR", help="mnist: the directory of its IDX files")
    judge_train.add_argument("--epochs", type=parse_int, default=DEFAULT_EPOCHS, help="(default: %(default)s)")
    judge_train.add_argument("--seed", type=parse_int, default=0, help="(default: %(default)s)")
    judge_train.add_argument("--cache-dir", metavar="DIR", help="where judges are cached (default: "
                             "$TINY_DIFFUSION_CACHE, else ~/.cache/tiny-diffusion)")
    judge_train.add_argument("--quiet", action="store_true", help="no progress bar")

    from ..studies.reproduce import QUICK_EPOCHS, STUDY_NAMES

    reproduce = commands.add_parser("reproduce", help="re-run the original tiny-diffusion's eight studies",
                                    description="Train the original tiny-diffusion's eight ablation studies with its "
                                    "settings and values, write each study's grid and tables, and findings.md: "
                                    "every study's numbers beside the original's conclusion. Complete runs are "
                                    "reused, so an interrupted reproduction resumes.")
    reproduce.add_argument("--quick", action="store_true", help=f"train {QUICK_EPOCHS} epochs instead of 200")
    reproduce.add_argument("--only", nargs="+", metavar="STUDY", choices=STUDY_NAMES,
                           help=f"run only these studies: {', '.join(STUDY_NAMES)}")
    reproduce.add_argument("--out", metavar="DIR", help="output directory (default: runs/reproduce or "
                           "runs/reproduce_quick)")
    reproduce.add_argument("--jobs", type=parse_int, default=min(os.cpu_count() or 1, 8),
                           help="runs to train at once, one process each (default: one per CPU core, at most 8: "
                           "%(default)s here)")
    reproduce.add_argument("--device", default="auto", choices=DEVICES, help="where to train (default: %(default)s)")
    reproduce.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the config file and the command line give (the flags win)."""
    values = load_config_file(args.config) if args.config else {}
    values.update({f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None})
    return values


def _config_from(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the config file, then the flags given on the command line."""
    return TrainConfig.from_dict(_given(args)).validate()


def _resumed_config(args: argparse.Namespace) -> TrainConfig:
    """The saved settings of the run to resume; a setting given on the command line must agree with them (but
    --device, which only says where to carry on)."""
    from ..data.prepare import with_absolute_dataset
    from ..runs.staging import resumable_config

    if args.out or args.overwrite:
        raise UsageError(f"--resume carries on the run in {args.resume}: drop --out and --overwrite")
    saved = resumable_config(Path(args.resume))
    given = _given(args)
    wanted = with_absolute_dataset(TrainConfig.from_dict({**saved.to_dict(), **given}).validate())
    differing = saved.differences(wanted, ignore=("device",))
    if differing:
        raise UsageError(f"--resume carries on {args.resume} with the settings it was started with; these "
                         f"differ: {'; '.join(differing)}")
    return wanted


def _ablate(args: argparse.Namespace) -> int:
    from ..studies.ablation import parse_values, run_study

    param, values = parse_values(args.param, args.values)
    base = _config_from(args)
    out = Path(args.out) if args.out else Path("runs") / f"ablate_{param}"
    rows = run_study(base, param, values, out, jobs=args.jobs, progress=not args.quiet)
    print((out / "results.md").read_text(), end="")
    print(f"trained {sum(r.trained for r in rows)} of {len(rows)} runs; wrote {out}/grid.png and results.csv")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from ..studies.reproduce import base_config, reproduce

    out = Path(args.out or Path("runs") / ("reproduce_quick" if args.quick else "reproduce"))
    results = reproduce(out, base_config(quick=args.quick, device=args.device), only=args.only, jobs=args.jobs,
                        progress=not args.quiet)
    print((out / "findings.md").read_text(), end="")
    shape, fit = (sum(result.agrees(score) for result in results) for score in ("shape", "fit"))
    print(f"of {len(results)} studies, {shape} agree with the original by shape score and {fit} by fit; wrote {out}/")
    return 0


def _judge(args: argparse.Namespace) -> int:
    from ..eval.judge import judge_path, make_cache_dir, train_judge

    path = judge_path(args.dataset, args.cache_dir)
    make_cache_dir(path)
    judge = train_judge(args.dataset, data_dir=args.data_dir, epochs=args.epochs, seed=args.seed,
                        progress=not args.quiet)
    judge.save(path)
    print(f"judge for {args.dataset}: test accuracy {judge.test_accuracy:.4f}; cached at {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..api import train_summary

    if args.resume:
        config, out = _resumed_config(args), Path(args.resume)
    else:
        config, out = _config_from(args), args.out
    summary = train_summary(config, out, overwrite=args.overwrite, resume=bool(args.resume), progress=not args.quiet,
                            checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                            compile=args.compile)
    if summary is not None:  # None: a process of a torchrun job but rank 0, which writes the run
        print(f"trained in {summary.seconds:.1f} s, sampled {len(summary.samples)} in {summary.sample_seconds:.1f} s "
              f"({_rate(summary.samples, summary.sample_seconds)}); wrote {summary.run_dir}/")
    return 0


def _rate(samples, seconds: float) -> str:
    """Samples drawn per second, as points/s or images/s."""
    unit = "images" if samples.ndim == 4 else "points"
    rate = len(samples) / max(seconds, 1e-9)
    return f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:.2g} {unit}/s"  # slow draws keep two digits


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from ..diffusion import Diffusion, resolve_sampling
    from ..runs.files import save_npy

    if args.num < 1:
        raise UsageError(f"--num must be positive, got {args.num}")
    if args.guidance is not None and args.guidance < 0:
        raise UsageError(f"--guidance must be >= 0, got {args.guidance}")
    model = Diffusion.load(args.run_dir, device=_device(args.device))
    how = resolve_sampling(model.config, args.sampler, args.sample_steps, args.eta)
    stem = f"prompt_{_slug(args.prompt)}_" if args.prompt is not None else "sampled_"
    out = Path(args.out or Path(args.run_dir) / f"{stem}{how.sampler}_seed{args.seed}.npy")
    if out.suffix != ".npy":
        raise UsageError(f"--out must end in .npy, got {out}")
    picture = out.with_suffix(".png")
    for path in (out, picture):
        if path.exists() and not args.overwrite:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it")
    start = time.perf_counter()
    samples = model.sample(args.num, sampler=args.sampler, steps=args.sample_steps, eta=args.eta, seed=args.seed,
                           prompt=args.prompt, guidance=args.guidance)
    seconds = time.perf_counter() - start
    glyphs = samples.shape[-1] // model.shape[-1] if model.config.is_images else 1  # digits side by side
    rate = _rate(samples, seconds / glyphs)
    if not np.isfinite(samples).all():
        raise UsageError("sampling produced non-finite values")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_npy(out, samples)
    _draw_samples(samples, model, args, how.sampler, picture)
    shape = "x".join(map(str, samples.shape[1:]))
    print(f"wrote {samples.shape[0]} samples of shape {shape} to {out} and {picture}; sampled in {seconds:.1f} s "
          f"({rate})")
    return 0


def _device(name: str):
    from ..core.training import resolve_device

    return resolve_device(name)


def _slug(prompt: str) -> str:
    """A prompt as part of a file name: letters, digits, - and _ kept, anything else _."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in prompt.strip().lower())


PICTURED_IMAGES = 100  # the picture of a sample of images shows the first 100 (a 10 x 10 grid), as samples.png does


def _draw_samples(samples, model, args: argparse.Namespace, sampler: str, path: Path) -> None:
    """The picture beside the .npy: a scatter plot of points, a grid of images (of a prompt's, several digits side
    by side)."""
    from ..viz import figures as viz

    if args.prompt is not None:
        scale = model.config.guidance if args.guidance is None else args.guidance
        title = f"{args.prompt!r}: {len(samples)} samples, guidance {scale:g}"
    else:
        total = len(samples)
        samples = samples[:PICTURED_IMAGES] if model.config.is_images else samples
        shown = f"{total} samples" if len(samples) == total else f"the first {len(samples)} of {total} samples"
        title = f"{model.config.dataset_name}: {shown} ({sampler}, seed {args.seed})"
    if model.config.is_images:
        glyphs = samples.shape[-1] // model.shape[-1]  # images side by side in each sample
        viz.plot_images(samples, path, title=title, cols=max(1, round((len(samples) / glyphs) ** 0.5)))
    else:
        viz.plot_points(samples, path, title=title, limits=viz.axis_limits(model.data_range(), samples))


def _evaluate(args: argparse.Namespace) -> int:
    from ..api import evaluate

    print(json.dumps(evaluate(args.path, dataset=args.dataset, data_dir=args.data_dir, labels=args.labels,
                              progress=not args.quiet), indent=2))
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from ..data import DATASETS

    if args.num < 1:
        raise UsageError(f"--num must be positive, got {args.num}")
    width = max(map(len, DATASETS))
    for name, dataset in DATASETS.items():
        options = f"  [options: {', '.join(dataset.options)}]" if dataset.options else ""
        print(f"{name:<{width}}  {dataset.dim}-D  {dataset.description}{options}")
    if args.plot:
        from ..viz import figures as viz

        out = Path(args.plot)
        out.mkdir(parents=True, exist_ok=True)
        for name, dataset in DATASETS.items():
            viz.plot_points(dataset.sample(args.num, seed=0), out / f"{name}.png", title=f"{name} ({dataset.dim}-D)")
        print(f"wrote {len(DATASETS)} pictures to {out}/")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..runs.staging import verify_report

    print(verify_report(Path(args.run_dir)))
    return 0


COMMANDS = {"train": _train, "verify": _verify, "sample": _sample, "evaluate": _evaluate, "datasets": _datasets,
            "plot": plot, "animate": animate, "ablate": _ablate, "reproduce": _reproduce, "judge": _judge}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tiny-diffusion`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    # under torchrun only rank 0 speaks: the others meet the same errors and stops (the processes agree on them)
    main_process = is_main_process()
    try:
        if args.command != "train" and world_size() > 1:
            raise UsageError(f"only `train` runs as several processes (torchrun); run `{args.command}` as one")
        return COMMANDS[args.command](args)
    except UsageError as e:
        if main_process:  # a bad setting is named as the command line spells it: --num-epochs
            message = e.flags() if isinstance(e, SettingError) else str(e)
            print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
        return 2
    except Interrupted as e:
        if main_process:
            print(f"{PROG}: {_one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if main_process:
            print(f"{PROG}: interrupted; earlier results are untouched", file=sys.stderr)
        return 130
