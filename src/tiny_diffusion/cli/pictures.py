"""The picture commands of ``tiny-diffusion``: ``plot forward``, ``plot reverse``, ``plot classes``,
``plot guidance`` and ``animate``.

Handlers only (their flags are in ``picture_flags``): the drawing is in ``viz``; the states to draw come from
``viz.processes`` and the model (``Diffusion``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..errors import UsageError
from .models import load_model
from .picture_flags import ANIMATED_IMAGES, FIGURE_FORMATS, FORWARD_FIELDS, PANEL_IMAGES, sampler_options

__all__ = ["plot", "animate"]


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
    if getattr(args, "num", 1) < 1:
        raise UsageError(f"--num must be positive, got {args.num}")
    if getattr(args, "panels", 2) < 2:
        raise UsageError(f"--panels must be at least 2, got {args.panels}")


def _sampling(model, args: argparse.Namespace):
    """The sampling that the sampler flags ask of ``model``, the rest the run's own: refuses a bad flag at once."""
    from ..diffusion import resolve_sampling

    return resolve_sampling(model.config, **sampler_options(args))


def _plot_forward(args: argparse.Namespace) -> int:
    from ..core.schedule import NoiseSchedule
    from ..data.prepare import forward_data
    from ..viz import figures as viz
    from ..viz.processes import evenly_spaced, flow_forward_states, forward_labels, forward_states, time_label

    _check_counts(args)
    values = {name: getattr(args, name) for name in FORWARD_FIELDS if getattr(args, name) is not None}
    config = TrainConfig.from_dict(values)
    _, points = forward_data(config, min(args.num, PANEL_IMAGES) if config.is_images else args.num)
    name = config.dataset_name
    times: list[float] | list[int]
    if config.method == "flow":  # the straight path from data (t = 0) to noise (t = 1)
        times = [i / (args.panels - 1) for i in range(args.panels)]
        title = f"flow matching's path x_t = (1 - t) x_0 + t noise: {name}"
    else:
        times = evenly_spaced(config.num_timesteps, args.panels)
        title = f"forward process q(x_t | x_0): {name}, T = {config.num_timesteps}, {config.beta_schedule} betas"
    out = _figure_path(args.out, Path("runs") / f"forward_{name}", args.format, overwrite=args.overwrite)
    if config.method == "flow":
        states = flow_forward_states(points, times, seed=args.seed)
    else:
        states = forward_states(points, NoiseSchedule.from_settings(config), [int(t) for t in times], seed=args.seed)
    viz.plot_frames(states, forward_labels(times), out, title=title)
    print(f"wrote {out} ({args.panels} panels, t = {', '.join(map(time_label, times))})")
    return 0


def _plot_reverse(args: argparse.Namespace) -> int:
    from ..viz import figures as viz
    from ..viz.processes import predicted_x0, reverse_states, time_label

    _check_counts(args)
    model, home = load_model(args)
    how = _sampling(model, args)
    images = model.config.is_images
    out = _figure_path(args.out, home / "reverse", args.format, overwrite=args.overwrite)
    result = reverse_states(
        model,
        min(args.num, PANEL_IMAGES) if images else args.num,
        args.panels,
        **sampler_options(args),
        seed=args.seed,
    )
    if images:  # the denoising strip: x_t and what the model predicts x_0 to be from it
        viz.plot_denoising(
            result.states,
            predicted_x0(model, result),
            result.labels(),
            out,
            title=f"reverse process ({how.sampler}): {model.config.dataset_name}",
        )
        print(f"wrote {out} ({args.panels} panels, t = {', '.join(map(time_label, result.timesteps))})")
        return 0
    # axes fit the training data and the samples, not the initial noise, so the shape fills its panel;
    # noise points outside those limits are cut off
    limits = viz.axis_limits(model.data_range(), result.states[-1])
    viz.plot_strip(
        result.states,
        result.labels(),
        out,
        limits=limits,
        title=f"reverse process ({how.sampler}): {model.config.dataset_name}",
    )
    print(f"wrote {out} ({args.panels} panels, t = {', '.join(map(time_label, result.timesteps))})")
    return 0


def _conditional_run(args: argparse.Namespace, scales: list[float], *, autoguided: bool = False):
    """The run of ``args.run_dir``, checked to be conditional (or, where ``autoguided`` will do, autoguided), with
    the sampler flags and --per-class filled in; the guidance ``scales`` asked for are checked too."""
    from ..diffusion import Diffusion

    _check_counts(args)
    model = Diffusion.load(args.run_dir)
    if not model.classes and not (autoguided and model.guide is not None):
        also = " or --guide-at (autoguidance)" if autoguided else ""
        raise UsageError(
            f"{args.run_dir} is not a conditional run: it has no classes to draw; train one with --conditional{also}"
        )
    _sampling(model, args)  # refuse a bad --eta or tolerance before drawing
    if args.per_class is None:
        args.per_class = 10 if model.config.is_images else 500
    if args.per_class < 1:
        raise UsageError(f"--per-class must be positive, got {args.per_class}")
    for scale in scales:
        if scale < 0:
            raise UsageError(f"a guidance scale must be >= 0, got {scale}")
    return model


def _sampled(model, args: argparse.Namespace, guidance: float | None):
    """(K, per_class, *shape) samples of each class."""
    from ..viz.processes import class_samples

    return class_samples(
        model,
        args.per_class,
        guidance=guidance,
        **sampler_options(args),
        seed=args.seed,
    )


def _sampled_alike(model, args: argparse.Namespace, guidance: float) -> np.ndarray:
    """(per_class, *shape) samples of an unconditional run under ``guidance``, from the noise of ``args.seed``."""
    return model.sample(
        args.per_class,
        **sampler_options(args),
        seed=args.seed,
        guidance=guidance,
    )


def _plot_classes(args: argparse.Namespace) -> int:
    from ..viz import figures as viz

    model = _conditional_run(args, [] if args.guidance is None else [args.guidance])
    out = _figure_path(args.out, Path(args.run_dir) / "classes", args.format, overwrite=args.overwrite)
    samples = _sampled(model, args, args.guidance)
    scale = model.config.guidance if args.guidance is None else args.guidance
    title = f"{model.config.dataset_name}: {args.per_class} samples per class, guidance {scale:g}"
    viz.plot_rows(samples, model.classes, out, title=title, reference=model.data_range())
    print(f"wrote {out} ({len(model.classes)} classes x {args.per_class} samples)")
    return 0


def _plot_guidance(args: argparse.Namespace) -> int:
    from ..viz import figures as viz

    model = _conditional_run(args, args.scales, autoguided=True)
    out = _figure_path(args.out, Path(args.run_dir) / "guidance", args.format, overwrite=args.overwrite)
    if not model.classes:  # autoguided: a row of samples per scale
        rows = np.stack([_sampled_alike(model, args, scale) for scale in args.scales])  # (S, per_class, *shape)
        title = f"{model.config.dataset_name}: autoguidance, each row from the same noise"
        viz.plot_rows(rows, [f"w = {scale:g}" for scale in args.scales], out, title=title, reference=model.data_range())
        print(f"wrote {out} ({len(args.scales)} guidance scales x {args.per_class} samples)")
        return 0
    grid = np.stack([_sampled(model, args, scale) for scale in args.scales])  # (S, K, per_class, *shape)
    labels = [f"w = {scale:g}" for scale in args.scales]
    title = f"{model.config.dataset_name}: classifier-free guidance, each row from the same noise"
    viz.plot_table(grid, labels, model.classes, out, title=title, reference=model.data_range())
    print(f"wrote {out} ({len(args.scales)} guidance scales x {len(model.classes)} classes)")
    return 0


PLOTS = {"forward": _plot_forward, "reverse": _plot_reverse, "classes": _plot_classes, "guidance": _plot_guidance}


def plot(args: argparse.Namespace) -> int:
    """The `plot` command: a forward or reverse strip."""
    return PLOTS[args.kind](args)


REVERSE_FRAMES = 60  # intervals between the reverse process's frames (so at most 61 states are shown)
HOLD_FRAMES = 10  # extra frames resting on the final samples before the animation loops


def animate(args: argparse.Namespace) -> int:
    """reverse.gif and training.gif in the run directory (3-D runs turn slowly about the vertical axis)."""
    from ..diffusion import sampler_steps
    from ..runs.files import training_snapshots
    from ..viz import figures as viz
    from ..viz.processes import reverse_states

    _check_counts(args)
    for name in ("fps", "training_fps"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    model, home = load_model(args)
    how = _sampling(model, args)
    suffixes = (".gif", ".mp4") if args.mp4 and viz.mp4_available() else (".gif",)
    trained = args.exact is None  # an exact model has no training to animate
    outputs = [home / f"{stem}{suffix}" for stem in ("reverse", "training")[: 1 + trained] for suffix in suffixes]
    if not args.overwrite and any(p.exists() for p in outputs):
        raise UsageError(f"{next(p for p in outputs if p.exists())} already exists; pass --overwrite to replace it")
    frames, epochs = training_snapshots(home) if trained else (None, [])
    home.mkdir(parents=True, exist_ok=True)
    total = sampler_steps(model.config, how)
    num = min(args.num, ANIMATED_IMAGES) if model.config.is_images else args.num
    result = reverse_states(
        model,
        num,
        min(total, REVERSE_FRAMES) + 1,
        **sampler_options(args),
        seed=args.seed,
    )
    # fixed axes from the training data and the final points: the shape fills the frame, stray noise is cut off
    box, name = model.data_range(), model.config.dataset_name
    for suffix in suffixes:
        viz.animate(
            result.states,
            result.captions(),
            home / f"reverse{suffix}",
            fps=args.fps,
            hold=HOLD_FRAMES,
            title=f"{name}: reverse process ({how.sampler})",
            reference=box,
        )
        if trained:
            viz.animate(
                frames,
                [f"epoch {e}" for e in epochs],
                home / f"training{suffix}",
                fps=args.training_fps,
                title=f"{name}: samples during training",
                reference=box,
            )
    if args.mp4 and ".mp4" not in suffixes:
        print("note: ffmpeg is not installed, so no MP4 was written (GIFs need only Pillow)")
    snapshots = f", {len(epochs)} snapshots" if trained else ""
    print(f"wrote {', '.join(str(p) for p in outputs)} ({len(result.states)} reverse states{snapshots})")
    return 0
