"""The public functions a notebook and the command line share: ``train`` a model into a run directory, and
``evaluate`` what it draws. ``Diffusion`` (load, sample, add_noise) is in ``diffusion``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from .config import TrainConfig
from .diffusion import Diffusion
from .errors import UsageError
from .runs.checkpoints import DEFAULT_EVERY, DEFAULT_KEEP, CheckpointPolicy
from .runs.job import Snapshot, TrainSummary, train_run

if TYPE_CHECKING:
    from .eval.nfe import NfeRow

__all__ = ["train", "train_summary", "evaluate", "settings", "default_out", "exact", "EXACT_KINDS", "diagnose", "nfe"]

ExactKind = Literal["auto", "ideal", "mixture"]
EXACT_KINDS: tuple[str, ...] = ("auto", "ideal", "mixture")
MAX_FLOW_DIAGNOSE_TIMES = 1000  # a flow run's diagnosis at most at this many times (a ddpm run's: at most T steps)


def settings(base: TrainConfig | Mapping[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """A run's settings, validated: the defaults (an image dataset's own, or a preset's), then ``base`` (settings
    or a mapping of setting names to values), then ``overrides``. An unknown name or a bad value is a UsageError."""
    values = base.to_dict() if isinstance(base, TrainConfig) else dict(base or {})
    return TrainConfig.from_dict({**values, **overrides})


def default_out(config: TrainConfig) -> Path:
    """Where a run goes when no directory is given: runs/EXPERIMENT_NAME, else runs/DATASET (runs/dino,
    runs/moons; a point file's name without its suffix: runs/mydata for data/mydata.csv)."""
    return Path("runs") / config.run_name


def train_summary(
    config: TrainConfig,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[Snapshot], None] | None = None,
    checkpoint_every: str | int = DEFAULT_EVERY,
    keep_checkpoints: int = DEFAULT_KEEP,
    compile: bool = False,
    threads: int | None = None,
) -> TrainSummary | None:
    """``train``, returning what the command prints too (times, samples); None in a torchrun process but rank 0."""
    policy = CheckpointPolicy.parse(str(checkpoint_every), keep_checkpoints)
    return train_run(
        config,
        Path(out) if out is not None else default_out(config),
        overwrite=overwrite,
        resume=resume,
        progress=progress,
        checkpoints=policy,
        compile=compile,
        threads=threads,
        callback=callback,
    )


def train(
    config: TrainConfig | Mapping[str, Any] | None = None,
    /,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[Snapshot], None] | None = None,
    checkpoint_every: str | int = DEFAULT_EVERY,
    keep_checkpoints: int = DEFAULT_KEEP,
    compile: bool = False,
    threads: int | None = None,
    **overrides: Any,
) -> Diffusion:
    """Train a model and write its run directory (``out``, default runs/EXPERIMENT_NAME or runs/DATASET); return
    the model.

    Any setting of ``tiny-diffusion train`` is a keyword (``dataset="moons"``, ``num_epochs=60``,
    ``num_timesteps=200``); ``config`` may hold settings too (a ``TrainConfig`` or a mapping), and the keywords win.
    ``progress`` shows progress bars (``tqdm.auto``: widgets in a notebook); ``callback`` is called with a
    ``Snapshot`` (epoch, step, the losses so far, samples drawn now) at every snapshot, every
    ``save_images_step`` epochs and after the last. An existing run directory is replaced only with
    ``overwrite=True``. Checkpoints are saved every ``checkpoint_every`` ("30s" or a number of steps). ``threads``:
    torch's CPU threads while training (default: one for points on the CPU, unless OMP_NUM_THREADS is set; torch's
    own for images), restored afterwards.
    """
    summary = train_summary(
        settings(config, **overrides),
        out,
        overwrite=overwrite,
        progress=progress,
        callback=callback,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        compile=compile,
        threads=threads,
    )
    if summary is None:
        raise UsageError("td.train runs as one process; use `torchrun -m tiny_diffusion train` for several")
    return summary.model


def exact(
    dataset: str,
    *,
    num_samples: int = 8000,
    data_seed: int = 42,
    kind: ExactKind = "auto",
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> Diffusion:
    """A model that needs no training: the exact noise predictor of a point dataset, drawn by ``sample`` as a
    trained model is, with the schedule and sampler of ``settings(dataset=dataset, **overrides)``; with
    ``method="flow"``, the exact velocity of flow matching's straight path instead (``core.exact``).

    ``kind`` "ideal": the ideal denoiser E[x_0 | x_t] of the training set a run with these settings trains on
    (``num_samples`` points drawn with ``data_seed``), which reproduces training points; "mixture": the exact score
    of the Gaussian mixture the dataset is drawn from (dino, blobs, 8gaussians); "auto": the mixture where the
    dataset is one, else the ideal denoiser. The data's range (for ``clip_sample``) and units (``standardize``) are
    the training set's, as in a run.
    """
    from .core.exact import (
        ideal_noise_predictor,
        ideal_velocity_network,
        mixture_noise_predictor,
        mixture_score,
        mixture_velocity_network,
    )
    from .core.schedule import NoiseSchedule
    from .data.images import IMAGE_DATASETS
    from .data.prepare import dataset_for, training_data

    if kind not in EXACT_KINDS:
        raise UsageError(f"unknown kind {kind!r} of exact model; choose from {', '.join(EXACT_KINDS)}")
    if dataset in IMAGE_DATASETS:
        raise UsageError(f"an exact model needs a point dataset; {dataset} is an image set")
    if overrides.pop("target", "noise") != "noise" or overrides.get("conditional"):
        raise UsageError("an exact model predicts the noise, unconditionally: leave out target and conditional")
    overrides.setdefault("train_batch_size", min(num_samples, TrainConfig.train_batch_size))  # unused, but checked
    config = settings(dataset=dataset, num_samples=num_samples, data_seed=data_seed, target="noise", **overrides)
    mixture = dataset_for(config)[0].mixture()
    if kind == "mixture" and mixture is None:
        raise UsageError(
            f"dataset {dataset} is not a Gaussian mixture; use kind='ideal' (its training set's ideal denoiser)"
        )
    train_set = training_data(config)
    schedule = NoiseSchedule.from_settings(config, device=device)
    x = torch.tensor(train_set.x, dtype=torch.float64, device=device)  # (N, D), the model's coordinates
    shift, scale = (torch.tensor(v, dtype=torch.float64, device=device) for v in (train_set.shift, train_set.scale))
    score = None
    flowing = config.method == "flow"
    if kind == "ideal" or mixture is None:
        network = ideal_velocity_network(x) if flowing else ideal_noise_predictor(x, schedule)
    else:  # the mixture in the model's coordinates: (x - shift) / scale per coordinate
        means, stds, weights = (
            torch.tensor(v, dtype=torch.float64, device=device) for v in (mixture.means, mixture.stds, mixture.weights)
        )
        means, stds = (means - shift) / scale, stds / scale
        if flowing:  # its likelihood is its own ODE's, from the data itself at t = 0: no score needed
            network = mixture_velocity_network(means, stds, weights)
        else:
            network = mixture_noise_predictor(means, stds, weights, schedule)
            score = partial(mixture_score, means=means, stds=stds, weights=weights)
    data_min, data_max = x.amin(dim=0).float(), x.amax(dim=0).float()
    return Diffusion(
        config, network, schedule, train_set.shape, data_min, data_max, shift.float(), scale.float(), exact_score=score
    )


def evaluate(
    what: Diffusion | str | Path | np.ndarray,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    labels: np.ndarray | str | Path | None = None,
    progress: bool = True,
    likelihood: bool = True,
) -> dict[str, float]:
    """The metrics ``tiny-diffusion evaluate`` prints: of a model's run (its final samples), a run directory, a
    .npy file of samples or an array of them. Points: W2, MMD, precision and recall against fresh draws of the
    dataset, each beside its data-vs-data floor; images: the judge's numbers (the judge is trained and cached first
    if needed). A conditional run's samples come with the class each was drawn for (``labels``: an array or a .npy
    file; a run's own labels.npy by default), adding how well each class is drawn. ``dataset`` (with ``data_dir``
    for mnist) says what to compare with; a run's own is the default. ``likelihood``: for a model (or run) of an
    unconditional point set whose density is known (dino, blobs, 8gaussians), also the negative log-likelihood of
    1,000 fresh points beside the exact one and the gap (``eval.evaluate.nll_beside_exact``; seconds to a minute)."""
    from .data.images import get_image_dataset
    from .data.prepare import dataset_for
    from .eval.evaluate import evaluate_run_samples
    from .runs.files import load_labels, load_samples, read_config

    run_dir, samples = _run_and_samples(what)
    run_config = read_config(run_dir) if run_dir is not None else None
    if run_dir is not None and run_config is not None and dataset is None and run_config.conditional and labels is None:
        labels = run_dir / "labels.npy"  # the class each of the run's samples was drawn for
    if dataset is not None:
        config = TrainConfig.from_dict({"dataset": dataset, "conditional": labels is not None})
    elif run_config is not None:
        config = run_config
    else:
        raise UsageError("say which dataset the samples are to be compared with (--dataset NAME)")
    if data_dir is not None:
        config = replace(config, data_dir=data_dir)
    if config.is_images:
        samples = load_samples(samples, shape="(N, C, H, W)") if not isinstance(samples, np.ndarray) else samples
        num_classes = get_image_dataset(config.dataset).num_classes
        _check_samples(samples, 4, "(N, C, H, W)")
    else:
        samples = load_samples(samples) if not isinstance(samples, np.ndarray) else samples
        _check_samples(samples, 2, "(N, D)")
        points = dataset_for(config)[0]
        if samples.shape[1] != points.dim:
            raise UsageError(f"the samples are {samples.shape[1]}-D points, dataset {points.name} is {points.dim}-D")
        num_classes = len(points.classes)
    if isinstance(labels, (str, Path)):
        labels = load_labels(labels, num=len(samples), num_classes=num_classes)
    elif labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(samples),) or not np.issubdtype(labels.dtype, np.integer):
            raise UsageError(
                f"labels must be ({len(samples)},) integers, one per sample; got {labels.dtype} {labels.shape}"
            )
    metrics = evaluate_run_samples(samples, config, labels=labels, progress=progress)
    if likelihood and dataset is None and run_dir is not None and not config.is_images and not config.conditional:
        metrics.update(_nll_beside_exact(what if isinstance(what, Diffusion) else run_dir, config))
    return metrics


def _nll_beside_exact(model: Diffusion | Path, config: TrainConfig) -> dict[str, float]:
    """evaluate's likelihood numbers (``eval.evaluate.nll_beside_exact``) where the run's data has a known density
    and the run its model; else none."""
    from .data.prepare import dataset_for
    from .eval.evaluate import nll_beside_exact

    points, options = dataset_for(config)
    if points.mixture() is None or (isinstance(model, Path) and not (model / "model.safetensors").exists()):
        return {}
    model = Diffusion.load(model) if isinstance(model, Path) else model
    found = nll_beside_exact(
        model.log_prob,
        points,
        options,
        # the density the model's log_prob gives: of the data after the first step, or of the data itself where the
        # score is known at the data (an exact mixture) or the ODE starts there (a flow run)
        alpha_bar0=1.0 if model.exact_score is not None or model.is_flow else float(model.schedule.alphas_cumprod[0]),
        shift=model.shift.double().cpu().numpy(),
        scale=model.scale.double().cpu().numpy(),
    )
    return found or {}


def diagnose(model: Diffusion | str | Path, *, steps: int = 20, per_step: int = 256, seed: int = 0) -> dict[str, Any]:
    """Where a trained model stands against the exact answer (``eval.diagnostics``): at ``steps`` evenly spaced
    steps (a flow run: at the midpoints of ``steps`` equal intervals of time), the error of its x0 prediction against
    the ideal denoiser of its own training set and its training loss (``per_step`` fresh x_t each); whether the
    forward process reaches noise (the terminal mismatch); and, for a run of points, the share of its final samples
    that copy a training point. ``model`` is a model or a run directory. A forward process that does not reach noise
    is also warned about (``SettingWarning``), as ``train`` warns."""
    from .data.prepare import training_data
    from .eval.diagnostics import FLOW_TERMINAL, denoiser_errors, flow_times, summary, terminal_mismatch
    from .eval.evaluate import memorized_share
    from .eval.preflight import terminal_warning

    model = Diffusion.load(model) if isinstance(model, (str, Path)) else model
    most = MAX_FLOW_DIAGNOSE_TIMES if model.is_flow else len(model.schedule)
    if not 2 <= steps <= most:
        raise UsageError(f"steps must be between 2 and {'' if model.is_flow else 'T = '}{most}, got {steps}")
    if per_step < 1:
        raise UsageError(f"per_step must be positive, got {per_step}")
    train_set = training_data(model.config)
    data = torch.tensor(train_set.x, dtype=torch.float32)  # copies: the cached arrays are read-only
    labels = None if train_set.labels is None else torch.tensor(train_set.labels)
    if model.is_flow:
        chosen: list[int] | list[float] = flow_times(steps)
        terminal = FLOW_TERMINAL
    else:
        warning = terminal_warning(model.schedule)
        if warning is not None:
            warnings.warn(warning, stacklevel=2)
        chosen = np.unique(np.linspace(0, len(model.schedule) - 1, steps).round().astype(int)).tolist()
        terminal = terminal_mismatch(model.schedule, train_set.x)
    errors = denoiser_errors(model, data, chosen, labels=labels, per_step=per_step, seed=seed)
    memorized = None
    if model.run_dir is not None and not model.config.is_images:
        memorized = memorized_share(np.load(model.run_dir / "samples.npy"), model.config)
    return summary(errors, terminal, memorized, method=model.config.method)


def nfe(
    model: Diffusion | str | Path,
    *,
    samplers: Sequence[str] | None = None,
    steps: Sequence[int] | None = None,
    tolerances: Sequence[float] | None = None,
    etas: Sequence[float] | None = None,
    num: int | None = None,
    seed: int = 0,
    seeds: int = 1,
    progress: Callable[[NfeRow], None] | None = None,
) -> list[NfeRow]:
    """Sample quality against the network evaluations made (``eval.nfe``): each of ``samplers`` (default: ddpm once,
    ddim, dpmpp-2m, euler, heun and, for points, ode; a flow run's euler, heun, midpoint and ode) at each of ``steps``
    (default: 5, 10, 20, 50 for points, 10, 20, 50 for images, up to T), the ode sampler at each rtol = atol of
    ``tolerances``, ddim at each of ``etas`` (default: 0), ``num`` samples each (default: the run's eval_batch_size,
    as ``evaluate`` scores) from the same noise ``seed``, scored as ``evaluate`` scores the run's samples: W2,
    precision and recall for points, the judge's numbers for images. With ``seeds`` > 1 each setting is drawn from
    the noise of ``seed`` to ``seed + seeds - 1``: its row holds the means and their spread."""
    from .choices import samplers_of
    from .diffusion import resolve_sampling
    from .eval.evaluate import evaluate_run_samples
    from .eval.nfe import (
        IMAGE_NFE_SAMPLERS,
        IMAGE_NFE_STEPS,
        NFE_SAMPLERS,
        NFE_STEPS,
        ODE_TOLERANCES,
        measure_nfe,
        nfe_settings,
    )

    model = Diffusion.load(model) if isinstance(model, (str, Path)) else model
    config = model.config
    num = config.eval_batch_size if num is None else num
    if num < 2:
        raise UsageError(f"the number of samples must be at least 2, got {num}")
    if seeds < 1:
        raise UsageError(f"seeds counts the draws of each setting: at least 1, got {seeds}")
    if steps is None:
        ladder = IMAGE_NFE_STEPS if config.is_images else NFE_STEPS
        steps = [n for n in ladder if n <= config.num_timesteps] or [config.num_timesteps]
    own: Sequence[str] = samplers_of(config.method)  # a flow run's own samplers
    if config.method == "ddpm":
        own = IMAGE_NFE_SAMPLERS if config.is_images else NFE_SAMPLERS
    chosen = nfe_settings(samplers or own, steps, tolerances or ODE_TOLERANCES, etas=etas or (0.0,))
    ways = {how: resolve_sampling(config, how[0], how[1], how[3], rtol=how[2], atol=how[2]) for how in chosen}

    def draw(
        sampler: str, count: int | None, tolerance: float | None, eta: float, noise: int
    ) -> tuple[np.ndarray, int]:
        drawn = model.draw(num, ways[sampler, count, tolerance, eta], seed=noise)
        return drawn.samples, drawn.nfe

    def score(samples: np.ndarray) -> dict[str, float]:
        return evaluate_run_samples(samples, config, progress=False)

    return measure_nfe(draw, score, chosen, seeds=range(seed, seed + seeds), progress=progress)


def _run_and_samples(what: Diffusion | str | Path | np.ndarray) -> tuple[Path | None, Path | np.ndarray]:
    """The run directory (if any) and the samples (an array, or the .npy file holding them) of what to evaluate."""
    if isinstance(what, Diffusion):
        if what.run_dir is None:
            raise UsageError("this model has no run directory: evaluate the samples it draws instead")
        return what.run_dir, what.run_dir / "samples.npy"
    if isinstance(what, np.ndarray):
        return None, what
    path = Path(what)
    if path.is_dir():
        return path, path / "samples.npy"
    if not path.exists():
        kind = ".npy file" if path.suffix == ".npy" else "run directory"
        raise UsageError(f"{kind} {path} does not exist")
    return None, path


def _check_samples(samples: np.ndarray, ndim: int, shape: str) -> None:
    if samples.ndim != ndim or not np.issubdtype(samples.dtype, np.number):
        raise UsageError(f"samples must be a numeric {shape} array, got {samples.dtype} {samples.shape}")
