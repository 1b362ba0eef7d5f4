"""The ``tiny-diffusion`` command: parse, validate, call the library. Bad input exits 2 with one line on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Sequence

from .config import TrainConfig, load_config_file
from .errors import UsageError
from .samplers import SAMPLERS

__all__ = ["main", "build_parser"]

PROG = "tiny-diffusion"


def _add_config_flags(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One flag per TrainConfig field (or per field in ``names``), in both spellings (--num_epochs and
    --num-epochs), help from the field."""
    for f in fields(TrainConfig):
        if names is not None and f.name not in names:
            continue
        flags = [f"--{f.name}"]
        if "_" in f.name:
            flags.append(f"--{f.name.replace('_', '-')}")
        default = f.default if f.default is not MISSING else None
        shown = "" if default is None else f" (default: {default})"
        kwargs = {"dest": f.name, "default": None, "help": f"{f.metadata['help']}{shown}"}
        base = f.type.removeprefix("Optional[").removesuffix("]")
        if base == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}[base]
            kwargs["metavar"] = base.upper()
        if f.metadata["choices"]:
            kwargs["choices"] = f.metadata["choices"]
            kwargs.pop("metavar")
        parser.add_argument(*flags, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Small, readable diffusion models (DDPM) for point sets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and write a run directory",
                                description="Train a DDPM and write a run directory (config, weights, samples, figures).")
    train.add_argument("--config", metavar="FILE", help="TOML, YAML or JSON file whose keys match the flags; "
                       "flags given on the command line win")
    train.add_argument("--out", metavar="DIR", help="run directory (default: runs/EXPERIMENT_NAME)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_flags(train)

    sample = commands.add_parser("sample", help="draw samples from a trained run",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                 description="Rebuild the model from RUN_DIR alone and write samples as .npy.")
    sample.add_argument("run_dir", metavar="RUN_DIR")
    sample.add_argument("--num", type=int, default=1000, help="number of samples")
    sample.add_argument("--sampler", choices=SAMPLERS, default="ddpm", help="ancestral ddpm or ddim")
    sample.add_argument("--sample-steps", "--sample_steps", dest="sample_steps", type=int, default=None,
                        help="ddim steps (default: all training steps)")
    sample.add_argument("--eta", type=float, default=0.0, help="ddim noise: 0 deterministic, 1 like ddpm")
    sample.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    sample.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"), help="where to sample")
    sample.add_argument("--out", metavar="FILE.npy", help="output (default: RUN_DIR/sampled_SAMPLER_seedK.npy)")
    sample.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    evaluate = commands.add_parser("evaluate", help="metrics of samples against a dataset, as JSON",
                                   description="Compare samples (a .npy file or a run's samples.npy) with fresh "
                                   "draws of the dataset; every metric comes with its data-vs-data floor.")
    evaluate.add_argument("path", metavar="FILE.npy|RUN_DIR")
    evaluate.add_argument("--dataset", help="dataset to compare with (default: the run's, with its options)")

    datasets = commands.add_parser("datasets", help="list the datasets, or draw each one",
                                   description="List every registered dataset with its dimension and description.")
    datasets.add_argument("--plot", metavar="DIR", help="also write one PNG per dataset into DIR")
    datasets.add_argument("--num", type=int, default=2000, help="points per picture")
    _add_plot_parsers(commands)
    _add_animate_parser(commands)

    ablate = commands.add_parser("ablate", help="one run per value of a setting, a grid figure and a table",
                                 description="Train one run per VALUE of the setting PARAM (any train flag, e.g. "
                                 "learning_rate, num_timesteps, beta_schedule, hidden_size, time_embedding, dataset, "
                                 "sample_steps) with the other flags as given, then write grid.png (rows: values; "
                                 "columns: snapshots) and results.csv / results.md. Complete runs with the same "
                                 "settings are reused, so an interrupted study resumes.")
    ablate.add_argument("param", metavar="PARAM", help="the setting to vary (a train flag name)")
    ablate.add_argument("values", metavar="VALUE", nargs="+", help="its values")
    ablate.add_argument("--config", metavar="FILE", help="TOML, YAML or JSON file of train settings")
    ablate.add_argument("--out", metavar="DIR", help="study directory (default: runs/ablate_PARAM)")
    ablate.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_flags(ablate)
    return parser


# file types `plot` writes (viz.save_figure picks matplotlib's backend from the suffix); run directories keep PNG
FIGURE_FORMATS = ("png", "svg", "pdf")
# the TrainConfig fields that `plot forward` takes: the data (as in train) and the noise schedule
FORWARD_FIELDS = ("dataset", "densify", "lines", "angle", "digit", "image_index", "columns", "subset",
                  "standardize", "data_seed", "num_timesteps", "beta_schedule", "beta_start", "beta_end")


def _add_sampler_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sampler", choices=SAMPLERS, default="ddpm", help="ancestral ddpm or ddim "
                        "(default: %(default)s)")
    parser.add_argument("--sample-steps", "--sample_steps", dest="sample_steps", type=int, default=None,
                        help="ddim steps (default: all training steps)")
    parser.add_argument("--eta", type=float, default=0.0, help="ddim noise: 0 deterministic, 1 like ddpm "
                        "(default: %(default)s)")


def _add_plot_parsers(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser("plot", help="a strip of panels of the forward or reverse process",
                               description="Draw the forward process q(x_t | x_0) of a dataset, or the reverse "
                               "process of a trained run, as a strip of panels at evenly spaced steps.")
    kinds = plot.add_subparsers(dest="kind", required=True, metavar="KIND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--num", type=int, default=1000, help="points per panel (default: %(default)s)")
    common.add_argument("--panels", type=int, default=6, help="number of panels, from t = T to t = 0 at evenly "
                        "spaced steps (default: %(default)s)")
    common.add_argument("--seed", type=int, default=0, help="seed of the noise (default: %(default)s)")
    common.add_argument("--format", choices=FIGURE_FORMATS, default=None,
                        help="file type (default: from --out's suffix, else png)")
    common.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    forward = kinds.add_parser("forward", parents=[common], help="the data being noised, step by step",
                               description="The forward process q(x_t | x_0) of a dataset: the data (t = 0) "
                               "through T, one fixed noise draw per point. Dataset and schedule flags as in train.")
    forward.add_argument("--out", metavar="FILE", help="output (default: forward_DATASET.FORMAT here)")
    _add_config_flags(forward, FORWARD_FIELDS)
    reverse = kinds.add_parser("reverse", parents=[common], help="a trained run's noise becoming samples",
                               description="Rebuild the model from RUN_DIR and draw the reverse process: the "
                               "initial noise (t = T) to the samples (t = 0).")
    reverse.add_argument("run_dir", metavar="RUN_DIR")
    reverse.add_argument("--out", metavar="FILE", help="output (default: RUN_DIR/reverse.FORMAT)")
    _add_sampler_flags(reverse)


def _add_animate_parser(commands: argparse._SubParsersAction) -> None:
    animate = commands.add_parser("animate", help="GIFs of a run's reverse process and of its training",
                                  description="Write RUN_DIR/reverse.gif (noise to samples, evenly spaced steps, "
                                  "resting on the samples) and RUN_DIR/training.gif (one frame per snapshot).")
    animate.add_argument("run_dir", metavar="RUN_DIR")
    animate.add_argument("--num", type=int, default=1000, help="points in the reverse process "
                         "(default: %(default)s)")
    animate.add_argument("--fps", type=float, default=20, help="frames per second of the reverse process "
                         "(default: %(default)s)")
    animate.add_argument("--training-fps", "--training_fps", dest="training_fps", type=float, default=2,
                         help="frames (snapshots) per second of the training "
                         "animation (default: %(default)s)")
    animate.add_argument("--seed", type=int, default=0, help="seed of the initial noise (default: %(default)s)")
    _add_sampler_flags(animate)
    animate.add_argument("--mp4", action="store_true", help="also write .mp4 files (needs ffmpeg; skipped with a "
                         "note when it is missing)")
    animate.add_argument("--overwrite", action="store_true", help="replace existing animations")


def _config_from(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the config file, then the flags given on the command line."""
    values = load_config_file(args.config) if args.config else {}
    values.update({f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None})
    return TrainConfig.from_dict(values).validate()


def _ablate(args: argparse.Namespace) -> int:
    from .ablation import parse_values, run_study

    param, values = parse_values(args.param, args.values)
    base = _config_from(args)
    out = Path(args.out) if args.out else Path("runs") / f"ablate_{param}"
    rows = run_study(base, param, values, out, progress=not args.quiet)
    print((out / "results.md").read_text(), end="")
    print(f"trained {sum(r.trained for r in rows)} of {len(rows)} runs; wrote {out}/grid.png and results.csv")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .pipeline import train_run

    config = _config_from(args)
    out = Path(args.out) if args.out else Path("runs") / config.experiment_name
    summary = train_run(config, out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"trained in {summary.seconds:.1f} s, sampled {len(summary.samples)} points in "
          f"{summary.sample_seconds:.1f} s; wrote {summary.run_dir}/")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .pipeline import sample_run
    from .runs import load_run, save_npy
    from .training import resolve_device

    if args.num < 1:
        raise UsageError(f"--num must be positive, got {args.num}")
    loaded = load_run(args.run_dir, device=resolve_device(args.device))
    out = Path(args.out or Path(args.run_dir) / f"sampled_{args.sampler}_seed{args.seed}.npy")
    if out.suffix != ".npy":
        raise UsageError(f"--out must end in .npy, got {out}")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    if args.eta < 0:
        raise UsageError(f"--eta must be >= 0, got {args.eta}")
    trajectory = sample_run(loaded, args.num, sampler=args.sampler, steps=args.sample_steps, eta=args.eta,
                            seed=args.seed)
    samples = trajectory.samples.cpu().numpy()
    if not np.isfinite(samples).all():
        raise UsageError("sampling produced non-finite values")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_npy(out, samples)
    print(f"wrote {samples.shape[0]} samples of dimension {samples.shape[1]} to {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data import get_dataset
    from .pipeline import dataset_for, evaluate_points
    from .runs import load_points

    path = Path(args.path)
    if path.is_dir():
        try:
            config = TrainConfig.from_dict(json.loads((path / "config.json").read_text())["config"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(f"{path} is not a readable run directory; give a .npy file and --dataset") from None
        dataset, options = dataset_for(config)
        if args.dataset is not None:
            dataset, options = get_dataset(args.dataset), {}
        path = path / "samples.npy"
    elif args.dataset is None:
        raise UsageError("--dataset is needed to evaluate a .npy file")
    else:
        dataset, options = get_dataset(args.dataset), {}
    samples = load_points(path)
    if samples.shape[1] != dataset.dim:
        raise UsageError(f"{path} holds {samples.shape[1]}-D points, dataset {dataset.name} is {dataset.dim}-D")
    print(json.dumps(evaluate_points(samples, dataset, options), indent=2))
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from .data import DATASETS

    if args.num < 1:
        raise UsageError(f"--num must be positive, got {args.num}")
    width = max(map(len, DATASETS))
    for name, dataset in DATASETS.items():
        options = f"  [options: {', '.join(dataset.options)}]" if dataset.options else ""
        print(f"{name:<{width}}  {dataset.dim}-D  {dataset.description}{options}")
    if args.plot:
        from . import viz

        out = Path(args.plot)
        out.mkdir(parents=True, exist_ok=True)
        for name, dataset in DATASETS.items():
            viz.plot_points(dataset.sample(args.num, seed=0), out / f"{name}.png", title=f"{name} ({dataset.dim}-D)")
        print(f"wrote {len(DATASETS)} pictures to {out}/")
    return 0


def _figure_path(out: str | None, default: Path, fmt: str | None, *, overwrite: bool) -> Path:
    """Where a figure goes: --out (whose suffix, if any, must agree with --format) or ``default`` + format."""
    path = Path(out) if out else default
    suffix = path.suffix.lstrip(".").lower()
    if not suffix:
        path = path.with_name(f"{path.name}.{fmt or 'png'}")
    elif suffix not in FIGURE_FORMATS:
        raise UsageError(f"--out must end in .{', .'.join(FIGURE_FORMATS)} or have no suffix, got {path}")
    elif fmt and fmt != suffix:
        raise UsageError(f"--out {path} does not match --format {fmt}")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _check_counts(args: argparse.Namespace) -> None:
    if args.num < 1:
        raise UsageError(f"--num must be positive, got {args.num}")
    if getattr(args, "panels", 2) < 2:
        raise UsageError(f"--panels must be at least 2, got {args.panels}")
    if getattr(args, "eta", 0) < 0:
        raise UsageError(f"--eta must be >= 0, got {args.eta}")


def _plot_forward(args: argparse.Namespace) -> int:
    from . import viz
    from .pipeline import evenly_spaced, forward_data, forward_labels, forward_states
    from .schedule import NoiseSchedule

    _check_counts(args)
    values = {name: getattr(args, name) for name in FORWARD_FIELDS if getattr(args, name) is not None}
    config = TrainConfig.from_dict(values).validate()
    dataset, points = forward_data(config, args.num)
    name = Path(dataset.name).stem  # a registry name, or a point file's name without its folder and suffix
    out = _figure_path(args.out, Path(f"forward_{name}"), args.format, overwrite=args.overwrite)
    schedule = NoiseSchedule(config.num_timesteps, config.beta_schedule, beta_start=config.beta_start,
                             beta_end=config.beta_end)
    steps = evenly_spaced(config.num_timesteps, args.panels)
    states = forward_states(points, schedule, steps, seed=args.seed)
    viz.plot_strip(states, forward_labels(steps), out, title=f"forward process q(x_t | x_0): {name}, "
                   f"T = {config.num_timesteps}, {config.beta_schedule} betas")
    print(f"wrote {out} ({args.panels} panels, t = {', '.join(map(str, steps))})")
    return 0


def _plot_reverse(args: argparse.Namespace) -> int:
    from . import viz
    from .pipeline import data_box, reverse_states
    from .runs import load_run

    _check_counts(args)
    loaded = load_run(args.run_dir)
    out = _figure_path(args.out, Path(args.run_dir) / "reverse", args.format, overwrite=args.overwrite)
    result = reverse_states(loaded, args.num, args.panels, sampler=args.sampler, steps=args.sample_steps,
                            eta=args.eta, seed=args.seed)
    # axes fit the training data and the samples, not the initial noise, so the shape fills its panel;
    # noise points outside those limits are cut off
    limits = viz.axis_limits(data_box(loaded), result.states[-1])
    viz.plot_strip(result.states, result.labels(), out, limits=limits,
                   title=f"reverse process ({args.sampler}): {Path(loaded.config.dataset).stem}")
    print(f"wrote {out} ({args.panels} panels, t = {', '.join(map(str, result.timesteps))})")
    return 0


PLOTS = {"forward": _plot_forward, "reverse": _plot_reverse}


def _plot(args: argparse.Namespace) -> int:
    return PLOTS[args.kind](args)


REVERSE_FRAMES = 60  # intervals between the reverse process's frames (so at most 61 states are shown)
HOLD_FRAMES = 10  # extra frames resting on the final samples before the animation loops


def _animate(args: argparse.Namespace) -> int:
    """reverse.gif and training.gif in the run directory (3-D runs turn slowly about the vertical axis)."""
    from . import viz
    from .pipeline import data_box, reverse_states
    from .samplers import sampler_timesteps
    from .runs import load_run, training_snapshots

    _check_counts(args)
    for name in ("fps", "training_fps"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    loaded = load_run(args.run_dir)
    run_dir = Path(args.run_dir)
    suffixes = (".gif", ".mp4") if args.mp4 and viz.mp4_available() else (".gif",)
    outputs = [run_dir / f"{stem}{suffix}" for stem in ("reverse", "training") for suffix in suffixes]
    if not args.overwrite and any(p.exists() for p in outputs):
        raise UsageError(f"{next(p for p in outputs if p.exists())} already exists; pass --overwrite to replace it")
    frames, epochs = training_snapshots(run_dir)
    total = len(sampler_timesteps(loaded.config.num_timesteps, args.sampler, args.sample_steps))
    result = reverse_states(loaded, args.num, min(total, REVERSE_FRAMES) + 1, sampler=args.sampler,
                            steps=args.sample_steps, eta=args.eta, seed=args.seed)
    # fixed axes from the training data and the final points: the shape fills the frame, stray noise is cut off
    box, name = data_box(loaded), Path(loaded.config.dataset).stem
    for suffix in suffixes:
        viz.animate_points(result.states, result.captions(), run_dir / f"reverse{suffix}", fps=args.fps,
                           hold=HOLD_FRAMES, limits=viz.axis_limits(box, result.states[-1]),
                           title=f"{name}: reverse process ({args.sampler})")
        viz.animate_points(frames, [f"epoch {e}" for e in epochs], run_dir / f"training{suffix}",
                           fps=args.training_fps, limits=viz.axis_limits(box, frames[-1]),
                           title=f"{name}: samples during training")
    if args.mp4 and ".mp4" not in suffixes:
        print("note: ffmpeg is not installed, so no MP4 was written (GIFs need only Pillow)")
    print(f"wrote {', '.join(str(p) for p in outputs)} ({len(result.states)} reverse states, "
          f"{len(frames)} snapshots)")
    return 0


COMMANDS = {"train": _train, "sample": _sample, "evaluate": _evaluate, "datasets": _datasets, "plot": _plot,
            "animate": _animate, "ablate": _ablate}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tiny-diffusion`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; earlier results are untouched", file=sys.stderr)
        return 130
