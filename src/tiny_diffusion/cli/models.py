"""Where a command's model comes from: a run directory, or ``--exact DATASET``, the exact model of a point dataset
(its Gaussian mixture's score, or its training set's ideal denoiser: ``td.exact``), which needs no training; with
``--exact-method flow``, the same as flow matching's exact velocity."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import METHODS
from ..errors import UsageError

if TYPE_CHECKING:
    from ..diffusion import Diffusion

__all__ = ["add_model_args", "load_model"]


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """RUN_DIR, or --exact DATASET in its place."""
    parser.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="a trained run's directory")
    parser.add_argument(
        "--exact",
        metavar="DATASET",
        help="instead of RUN_DIR: the exact model of a point dataset (the score of the Gaussian mixture it is drawn "
        "from where it is one: dino, blobs, 8gaussians; else the ideal denoiser of its training set); its files go "
        "to runs/exact_DATASET",
    )
    parser.add_argument(
        "--exact-method",
        choices=METHODS,
        default="ddpm",
        help="with --exact: the exact noise predictor of ddpm, or the exact velocity of flow matching (its files go "
        "to runs/exact_DATASET_flow) (default: %(default)s)",
    )


def load_model(args: argparse.Namespace, *, device: str = "cpu") -> tuple[Diffusion, Path]:
    """The model the command names and the folder its outputs go to by default: the run directory, or
    runs/exact_DATASET for an exact model."""
    if (args.run_dir is None) == (args.exact is None):
        raise UsageError("give a run directory or --exact DATASET (one of them)")
    if args.exact is None and args.exact_method != "ddpm":
        raise UsageError("--exact-method goes with --exact DATASET; a run directory's method is its own")
    if args.exact is None:
        from ..diffusion import Diffusion

        return Diffusion.load(args.run_dir, device=device), Path(args.run_dir)
    from ..api import exact

    model = exact(args.exact, device=device, method=args.exact_method)
    suffix = "_flow" if model.is_flow else ""
    return model, Path("runs") / f"exact_{model.config.dataset_name}{suffix}"
