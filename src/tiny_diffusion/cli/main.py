"""The ``tiny-diffusion`` command: parse, validate, call the library. Bad input exits 2 with one line on stderr."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import SettingError, SettingWarning, UsageError
from ..runs.interrupts import Interrupted
from .config_file import load_config_file
from .measures import diagnose, evaluate, likelihood, nfe
from .models import load_model
from .parser import PROG, build_parser, one_line
from .picture_flags import sampler_options
from .pictures import animate, plot

__all__ = ["main", "build_parser"]


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the config file and the command line give (the flags win)."""
    values = load_config_file(args.config) if args.config else {}
    values.update({f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None})
    return values


def _config_from(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the config file, then the flags given on the command line."""
    return TrainConfig.from_dict(_given(args))


def _resumed_config(args: argparse.Namespace) -> TrainConfig:
    """The saved settings of the run to resume, with those given on the command line over them (the training job
    refuses any that differ, but --device, which only says where to carry on)."""
    from ..runs.staging import resumable_config

    if args.out or args.overwrite:
        raise UsageError(f"--resume carries on the run in {args.resume}: drop --out and --overwrite")
    return TrainConfig.from_dict({**resumable_config(Path(args.resume)).to_dict(), **_given(args)})


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
    results = reproduce(
        out, base_config(quick=args.quick, device=args.device), only=args.only, jobs=args.jobs, progress=not args.quiet
    )
    print((out / "findings.md").read_text(), end="")
    shape, fit = (sum(result.agrees(score) for result in results) for score in ("shape", "fit"))
    print(f"of {len(results)} studies, {shape} agree with the original by shape score and {fit} by fit; wrote {out}/")
    return 0


def _judge(args: argparse.Namespace) -> int:
    from ..eval.judge import judge_path, make_cache_dir
    from ..eval.judge_training import train_judge

    path = judge_path(args.dataset, args.cache_dir)
    make_cache_dir(path)
    judge = train_judge(
        args.dataset, data_dir=args.data_dir, epochs=args.epochs, seed=args.seed, progress=not args.quiet
    )
    judge.save(path)
    print(f"judge for {args.dataset}: test accuracy {judge.test_accuracy:.4f}; cached at {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..api import train_summary

    if args.resume:
        config, out = _resumed_config(args), Path(args.resume)
    else:
        config, out = _config_from(args), args.out
    summary = train_summary(
        config,
        out,
        overwrite=args.overwrite,
        resume=bool(args.resume),
        progress=not args.quiet,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        compile=args.compile,
        threads=args.threads,
    )
    if summary is not None:  # None: a process of a torchrun job but rank 0, which writes the run
        print(
            f"trained in {summary.seconds:.1f} s, sampled {len(summary.samples)} in {summary.sample_seconds:.1f} s "
            f"({_rate(summary.samples, summary.sample_seconds)}); wrote {summary.run_dir}/"
        )
    return 0


def _rate(samples, seconds: float) -> str:
    """Samples drawn per second, as points/s or images/s."""
    unit = "images" if samples.ndim == 4 else "points"
    rate = len(samples) / max(seconds, 1e-9)
    return f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:.2g} {unit}/s"  # slow draws keep two digits


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from ..diffusion import resolve_sampling, sampler_steps
    from ..runs.files import save_npy

    if args.num < 1:
        raise UsageError(f"--num must be positive, got {args.num}")
    if args.guidance is not None and args.guidance < 0:
        raise UsageError(f"--guidance must be >= 0, got {args.guidance}")
    model, home = load_model(args, device=_device(args.device))
    how = resolve_sampling(model.config, **sampler_options(args))
    stem = f"prompt_{_slug(args.prompt)}_" if args.prompt is not None else "sampled_"
    out = Path(args.out or home / f"{stem}{how.sampler}_seed{args.seed}.npy")
    if out.suffix != ".npy":
        raise UsageError(f"--out must end in .npy, got {out}")
    picture = out.with_suffix(".png")
    for path in (out, picture):
        if path.exists() and not args.overwrite:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it")
    start = time.perf_counter()
    drawn = model.sample(
        args.num,
        **sampler_options(args),
        seed=args.seed,
        prompt=args.prompt,
        guidance=args.guidance,
        trajectory=True,  # for its count of network calls; recording once per walk keeps only the noise and samples
        record_every=sampler_steps(model.config, how),
    )
    seconds = time.perf_counter() - start
    samples = drawn.samples
    glyphs = samples.shape[-1] // model.shape[-1]  # a number's digits side by side (1 for points)
    rate = _rate(samples, seconds / glyphs)
    if not np.isfinite(samples).all():
        raise UsageError("sampling produced non-finite values")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_npy(out, samples)
    _draw_samples(samples, model, args, how.sampler, picture)
    shape = "x".join(map(str, samples.shape[1:]))
    print(
        f"wrote {samples.shape[0]} samples of shape {shape} to {out} and {picture}; sampled in {seconds:.1f} s "
        f"({rate}) with {drawn.nfe} network calls"
    )
    return 0


def _device(name: str):
    from ..core.devices import resolve_device

    return resolve_device(name)


def _slug(prompt: str) -> str:
    """A prompt as part of a file name: letters, digits, - and _ kept, anything else _."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in prompt.strip().lower())


def _draw_samples(samples, model, args: argparse.Namespace, sampler: str, path: Path) -> None:
    """The picture beside the .npy: a scatter plot of points, a grid of images (of a prompt's, several digits side
    by side)."""
    from ..viz import figures as viz

    if args.prompt is not None:
        scale = model.config.guidance if args.guidance is None else args.guidance
        title = f"{args.prompt!r}: {len(samples)} samples, guidance {scale:g}"
    else:
        total, shown = len(samples), len(viz.pictured(samples))
        what = f"{total} samples" if shown == total else f"the first {shown} of {total} samples"
        title = f"{model.config.dataset_name}: {what} ({sampler}, seed {args.seed})"
    viz.plot_samples(samples, path, title=title, reference=model.data_range())


def _export_html(args: argparse.Namespace) -> int:
    from ..viz.page import export_html

    out = export_html(args.run_dir, args.out, overwrite=args.overwrite)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): open it in a browser, no network needed")
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


def _serve(args: argparse.Namespace) -> int:
    from ..web import INSTALL_HINT

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    from ..web.server import serve

    try:
        serve(Path(args.runs_dir), host=args.host, port=args.port)
    except KeyboardInterrupt:  # uvicorn stopped cleanly, then passes Ctrl-C on
        pass
    print(f"{PROG}: stopped serving", file=sys.stderr)
    return 0


COMMANDS = {
    "train": _train,
    "verify": _verify,
    "sample": _sample,
    "evaluate": evaluate,
    "datasets": _datasets,
    "diagnose": diagnose,
    "likelihood": likelihood,
    "nfe": nfe,
    "export-html": _export_html,
    "plot": plot,
    "animate": animate,
    "ablate": _ablate,
    "reproduce": _reproduce,
    "judge": _judge,
    "serve": _serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tiny-diffusion`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), "")
    args = build_parser(command).parse_args(argv)
    from ..core.distributed import is_main_process, world_size  # after parsing: --help needs no torch

    # under torchrun only rank 0 speaks: the others meet the same errors and stops (the processes agree on them)
    main_process = is_main_process()
    try:
        if args.command != "train" and world_size() > 1:
            raise UsageError(f"only `train` runs as several processes (torchrun); run `{args.command}` as one")
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def show(message, category, *where: Any, **kw: Any) -> None:  # a SettingWarning: one line, flags named
                if not isinstance(message, SettingWarning):
                    shown(message, category, *where, **kw)
                elif main_process:
                    print(f"{PROG}: warning: {one_line(message.flags())}", file=sys.stderr, flush=True)

            warnings.showwarning = show
            warnings.simplefilter("always", SettingWarning)  # every run that trains badly is told so
            return COMMANDS[args.command](args)
    except UsageError as e:
        if main_process:  # a bad setting is named as the command line spells it: --num-epochs
            message = e.flags() if isinstance(e, SettingError) else str(e)
            print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
        return 2
    except Interrupted as e:
        if main_process:
            print(f"{PROG}: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if main_process:
            print(f"{PROG}: interrupted; earlier results are untouched", file=sys.stderr)
        return 130
