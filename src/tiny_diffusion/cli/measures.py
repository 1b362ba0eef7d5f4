"""The measuring commands: ``evaluate``, ``diagnose``, ``nfe`` and ``likelihood``. Each takes a run (or, where it
says so, an exact model: ``cli/models.py``), calls the public API, and prints or writes what it measured; their flags
are in ``measure_flags.py``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .models import load_model

if TYPE_CHECKING:
    import numpy as np

    from ..diffusion import Diffusion

__all__ = ["evaluate", "diagnose", "nfe", "likelihood"]


def evaluate(args: argparse.Namespace) -> int:
    from ..api import evaluate as measure

    print(
        json.dumps(
            measure(
                args.path,
                dataset=args.dataset,
                data_dir=args.data_dir,
                labels=args.labels,
                progress=not args.quiet,
                likelihood=args.likelihood,
            ),
            indent=2,
        )
    )
    return 0


def diagnose(args: argparse.Namespace) -> int:
    from ..api import diagnose as measure
    from ..runs.files import save_json
    from ..viz import figures as viz

    run_dir = Path(args.run_dir)
    outputs = [run_dir / "diagnose.json", run_dir / "diagnose.png"]
    if not args.overwrite and any(p.exists() for p in outputs):  # before the work, not after it
        raise UsageError(f"{next(p for p in outputs if p.exists())} already exists; pass --overwrite to replace it")
    diagnosis = measure(run_dir, steps=args.steps, per_step=args.per_step, seed=args.seed)  # warns as train does
    terminal, flowing = diagnosis["terminal"], diagnosis["method"] == "flow"
    kept = (
        f"x_T keeps {terminal['signal_kept']:.0%} of the signal, KL(q(x_T) || N(0, I)) = {terminal['kl_nats']:.3g} nats"
    )
    if flowing:
        kept = "a flow run: x_1 is the noise itself"
    save_json(outputs[0], diagnosis)
    viz.plot_diagnosis(diagnosis["per_step"], outputs[1], title=f"{run_dir.name}: {kept}", times=flowing)
    errors = diagnosis["per_step"]["error"]
    copies = diagnosis["memorized_share"]
    print(f"{kept}; x0 error against the ideal denoiser from {min(errors):.3g} to {max(errors):.3g}"
          + ("" if copies is None else f"; {copies:.1%} of the samples copy a training point")
          + f"; wrote {outputs[0]} and {outputs[1]}")  # fmt: skip
    return 0


def nfe(args: argparse.Namespace) -> int:
    from ..api import nfe as measure
    from ..eval.nfe import NfeRow, format_row, table_header
    from ..runs.files import save_json
    from ..viz import figures as viz

    model, run_dir = load_model(args)  # a run, or an exact model writing to runs/exact_DATASET
    outputs = [run_dir / "nfe.json", run_dir / "nfe.png"]
    if not args.overwrite and any(p.exists() for p in outputs):  # before the work, not after it
        raise UsageError(f"{next(p for p in outputs if p.exists())} already exists; pass --overwrite to replace it")
    run_dir.mkdir(parents=True, exist_ok=True)
    measured: list[NfeRow] = []

    def report(row: NfeRow) -> None:
        if not measured:  # the header comes with the first row, so a refused setting prints no table
            print(table_header(model.config.is_images, spread=args.seeds > 1))
        measured.append(row)
        print(format_row(row), flush=True)

    rows = measure(
        model,
        samplers=args.samplers,
        steps=args.steps,
        tolerances=args.tolerances,
        etas=args.etas,
        num=args.num_samples,
        seed=args.seed,
        seeds=args.seeds,
        progress=report,
    )
    save_json(outputs[0], {"num_samples": int(rows[0].metrics["n"]), "seed": args.seed, "seeds": args.seeds,
                           "rows": [row.as_dict() for row in rows]})  # fmt: skip
    viz.plot_nfe([row.as_dict() for row in rows], outputs[1], title=f"{run_dir.name}: quality against model calls")
    print(f"wrote {outputs[0]} and {outputs[1]}")
    return 0


def likelihood(args: argparse.Namespace) -> int:
    import numpy as np

    from ..runs.files import save_npy

    model, home = load_model(args)
    if (args.bound or args.bound_only) and model.is_flow:
        raise UsageError("--bound is ddpm's variational bound; a flow run has only its ODE's log-likelihood")
    points, stem = _likelihood_points(args, model)
    out = Path(args.out or home / f"{'bound' if args.bound_only else 'log_prob'}_{stem}.npy")
    if out.suffix != ".npy":
        raise UsageError(f"--out must end in .npy, got {out}")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    summary: dict[str, float] = {}
    if not args.bound_only:
        values = model.log_prob(points, rtol=args.rtol, atol=args.atol, hutchinson=args.hutchinson, seed=args.seed)
        summary.update(_mean_and_error("log_prob", values))
    if args.bound or args.bound_only:
        bound = model.elbo(points, seed=args.seed)
        summary.update(_mean_and_error("bound_nats", bound))
        summary["bound_bits_per_dim"] = float(model.bits_per_dim(summary["bound_nats"]))
        values = bound if args.bound_only else values
    out.parent.mkdir(parents=True, exist_ok=True)
    save_npy(out, np.asarray(values, dtype=np.float64))
    print(json.dumps({**summary, "count": len(points), "out": str(out)}, indent=2))
    return 0


def _likelihood_points(args: argparse.Namespace, model: Diffusion) -> tuple[np.ndarray, str]:
    """The points ``likelihood`` measures and the stem of its output file: --points FILE.npy, checked; or --test N,
    the first N images of an image run's test split, or N fresh points of a point run's dataset."""
    import numpy as np

    from ..data.images import get_image_dataset
    from ..data.prepare import dataset_for
    from ..eval.evaluate import REFERENCE_SEEDS
    from ..runs.files import load_samples

    if args.test is not None:
        if args.test < 1:
            raise UsageError(f"--test must be a positive number of points, got {args.test}")
        if model.config.is_images:
            images, _ = get_image_dataset(model.config.dataset).images("test", data_dir=model.config.data_dir)
            return images[: args.test], "test"
        dataset, options = dataset_for(model.config)
        return dataset.sample(args.test, REFERENCE_SEEDS[0], **options), "test"
    points_path = Path(args.points)
    points = load_samples(points_path, shape="(N, C, H, W)" if model.config.is_images else "(N, D)")
    if points.shape[1:] != model.shape:
        dims = "x".join(map(str, model.shape))
        raise UsageError(f"{points_path} holds points of shape {points.shape[1:]}; the model's are ({dims})")
    if not np.isfinite(points).all():
        raise UsageError(f"{points_path} holds non-finite values (NaN or infinity)")
    return points, points_path.stem


def _mean_and_error(name: str, values) -> dict[str, float]:
    """The mean of per-point values and its standard error."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    error = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {name: float(values.mean()), f"{name}_stderr": error}
