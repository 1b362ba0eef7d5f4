"""The configuration of a training run: one dataclass, a comment per field, validated in one place."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from . import choices
from .choices import DEVICES, IMAGE_MODELS
from .data import DATASETS, POINT_FILE_SUFFIXES
from .data.images import IMAGE_DATASETS
from .data.registry import DENSIFY, OPTION_NAMES, check_options
from .errors import SettingError, UsageError

__all__ = ["TrainConfig", "coerce_field", "DEVICES", "IMAGE_DEFAULTS", "PRESETS", "FLAG_GROUPS"]

# Where an image dataset differs from the field defaults (which are the dino's). from_dict starts from these when the
# dataset is an image set; see the README's image section for how they were chosen.
# fmt: off
IMAGE_DEFAULTS: dict[str, Any] = dict(
    model="unet", channels=16, num_samples=0, train_batch_size=64, eval_batch_size=500, num_epochs=100,
    learning_rate=2e-3, warmup_steps=200, ema_decay=0.999, target="x0", num_timesteps=1000,
    beta_schedule="cosine", sampler="ddim", sample_steps=50, eta=1.0, save_images_step=20,
    timestep_sampling="uniform", embedding_size=128, guide_at=0.1, guidance=0.5,
)
# fmt: on

# settings of IMAGE_DEFAULTS that a conditional run does not take: its guidance is classifier-free (0 by default)
UNCONDITIONAL_ONLY = ("guide_at", "guidance")


# settings of IMAGE_DEFAULTS that only ddpm runs take (a flow run keeps its method's own)
DDPM_ONLY = ("target", "sampler", "sample_steps", "eta")

SNAPSHOT_IMAGES = 64  # images per training snapshot

# Named starting points (``--preset``): applied over the dataset's defaults, under a config file's and the flags'
# values. "study": the follow-up study's final settings (25 epochs, learning rate 2e-4, hidden size 128, five hidden
# layers, with the original's embeddings of 128 and uniform timesteps); on images its model is its CNN (seed-cnn) at
# the width SeedCNN defaults to (the study gave none).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "study": {
        "points": dict(
            num_epochs=25,
            learning_rate=2e-4,
            embedding_size=128,
            hidden_size=128,
            hidden_layers=5,
            timestep_sampling="uniform",
        ),
        "images": dict(model="seed-cnn", num_epochs=25, learning_rate=2e-4, channels=32, guide_at=0.0, guidance=0.0),
    }
}


# the kinds of setting, in the order `train --help` lists their flags: group key -> heading
FLAG_GROUPS = {"data": "data", "model": "model", "schedule": "noise schedule", "training": "training",
               "sampling": "sampling", "run": "run directory and output", "device": "device and precision"}  # fmt: skip


def opt(default: Any, help: str, valid: Iterable[str] | None = None, *, group: str) -> Any:
    """A config field with its help text (shown by ``--help``), its kind (a FLAG_GROUPS key, its --help heading)
    and, for names, its valid choices."""
    assert group in FLAG_GROUPS, group
    return field(default=default, metadata={"help": help, "choices": tuple(valid) if valid else None, "group": group})


@dataclass
class TrainConfig:
    """Everything needed to rebuild a run, checked when it is made. Defaults are the project's dino configuration;
    an image dataset starts from IMAGE_DEFAULTS (``from_dict`` or ``tiny_diffusion.settings``)."""

    experiment_name: Optional[str] = opt(
        None,
        "names the run directory runs/NAME when --out is not given "
        "(default: the dataset's name, or its file's without the suffix)",
        group="run",
    )
    dataset: str = opt(
        "dino",
        "a dataset name (`tiny-diffusion datasets` lists them) or a .csv, .tsv, .npy or .npz file of points",
        group="data",
    )
    densify: Optional[str] = opt(None, "line datasets: how points fill each line (default none)", DENSIFY, group="data")
    lines: Optional[int] = opt(None, "line datasets: number of parallel lines", group="data")
    angle: Optional[float] = opt(None, "inclined_lines: angle of the lines in degrees", group="data")
    digit: Optional[int] = opt(None, "mnist_points: which digit (0-9)", group="data")
    image_index: Optional[int] = opt(None, "mnist_points: which image of that digit", group="data")
    columns: Optional[str] = opt(
        None, "point files: comma-separated columns to use, by name or 0-based index", group="data"
    )
    subset: Optional[str] = opt(
        None, "point files: keep rows whose `dataset` column equals this (long tables)", group="data"
    )
    data_dir: Optional[str] = opt(
        None, "mnist: the directory holding the IDX files (train-images-idx3-ubyte[.gz], ...)", group="data"
    )
    standardize: Optional[bool] = opt(
        None,
        "train on data shifted and scaled to zero mean and unit variance per coordinate; samples come back in "
        "the data's units (default: on for a point file, off for the registered datasets, which are made near "
        "unit scale; a run records which)",
        group="data",
    )
    num_samples: int = opt(
        8000,
        "size of the training set drawn from the dataset (images: the first this many training images; 0 = all)",
        group="data",
    )
    train_batch_size: int = opt(512, "points per optimiser step", group="training")
    eval_batch_size: int = opt(1000, "number of final samples, and of points in each snapshot", group="sampling")
    num_epochs: int = opt(420, "passes over the training set", group="training")
    learning_rate: float = opt(6e-3, "peak learning rate of AdamW", group="training")
    lr_schedule: str = opt(
        "cosine",
        "learning rate after warm-up: constant (the original) or cosine decay to 0",
        ("constant", "cosine"),
        group="training",
    )
    warmup_steps: int = opt(100, "optimiser steps of linear learning-rate warm-up (0 = none)", group="training")
    ema_decay: float = opt(
        0.0, "decay of an exponential moving average of the weights used to sample (0 = off)", group="training"
    )
    grad_clip: float = opt(1.0, "clip the gradient norm to this (0 = no clipping)", group="training")
    min_snr_gamma: float = opt(
        0.0,
        "weight each step's loss by min(SNR, gamma), in x0 terms (Hang et al. 2023; "
        "5 is theirs); 0 = the plain mean squared error",
        group="training",
    )
    timestep_sampling: str = opt(
        "log-normal",
        "the noise levels training visits: uniform over the T steps (the original DDPM) or log-normal in the "
        "noise-to-signal ratio sigma (Karras et al. 2022; a flow run: logit-normal t)",
        choices.TIMESTEP_SAMPLINGS,
        group="training",
    )
    log_sigma_mean: float = opt(-0.7, "log-normal timestep sampling: the mean of ln sigma", group="training")
    log_sigma_std: float = opt(
        1.6, "log-normal timestep sampling: the standard deviation of ln sigma", group="training"
    )
    num_timesteps: int = opt(500, "diffusion steps T", group="schedule")
    beta_schedule: str = opt("linear", "noise schedule", choices.BETA_SCHEDULES, group="schedule")
    beta_start: float = opt(1e-4, "first beta (linear, quadratic, sigmoid)", group="schedule")
    beta_end: float = opt(0.02, "last beta (linear, quadratic, sigmoid)", group="schedule")
    method: str = opt(
        "ddpm",
        "how noise becomes data: ddpm (denoising diffusion, Ho et al. 2020) or flow (conditional flow matching on "
        "the straight path x_t = (1 - t) x0 + t noise, the network predicting the velocity noise - x0; "
        "Lipman et al. 2023)",
        choices.METHODS,
        group="training",
    )
    target: str = opt("noise", "ddpm: what the network predicts", choices.TARGETS, group="training")
    model: str = opt("mlp", "the denoiser: mlp for points; seed-cnn or unet for images", choices.MODELS, group="model")
    embedding_size: int = opt(64, "width of each timestep and input embedding", group="model")
    hidden_size: int = opt(96, "mlp: width of the hidden layers", group="model")
    hidden_layers: int = opt(3, "mlp: number of residual hidden blocks", group="model")
    channels: int = opt(32, "seed-cnn and unet: channels of the first level (deeper levels have more)", group="model")
    time_embedding: str = opt("sinusoidal", "timestep embedding", choices.TIME_EMBEDDINGS, group="model")
    input_embedding: str = opt(
        "sinusoidal", "embedding of each input coordinate", choices.INPUT_EMBEDDINGS, group="model"
    )
    input_scale: float = opt(25.0, "frequency scale of the sinusoidal and linear input embeddings", group="model")
    save_images_step: int = opt(
        30, "take a snapshot (sample --eval-batch-size points, or 64 images) every this many epochs", group="run"
    )
    sampler: Optional[str] = opt(
        None,
        "sampler of the final samples (and of `sample`): ddpm, ddim, dpmpp-2m, euler, heun or ode for ddpm runs, "
        "euler, heun, midpoint or ode for flow runs (default: the method's own, ddpm or midpoint)",
        choices.ALL_SAMPLERS,
        group="sampling",
    )
    snapshot_sampler: Optional[str] = opt(
        None,
        "sampler of the snapshots taken during training, at its default steps (default: --sampler's, but "
        "dpmpp-2m in 20 steps where that is ddpm, whose T steps would cost much of a short run's time)",
        choices.ALL_SAMPLERS,
        group="sampling",
    )
    sample_steps: Optional[int] = opt(
        None,
        "denoising steps of ddim, dpmpp-2m, euler and heun (default: --num-timesteps; 20 for dpmpp-2m, euler, heun), "
        "or of a flow sampler (default 25)",
        group="sampling",
    )
    eta: float = opt(0.0, "ddim noise: 0 deterministic, 1 like ddpm", group="sampling")
    clip_sample: bool = opt(
        True, "clip each predicted x0 to the training data's range (guards the last steps)", group="sampling"
    )
    seed: int = opt(0, "seeds model initialisation, batch order and sampling", group="training")
    data_seed: int = opt(42, "seeds the dataset draw (42 reproduces the original's data)", group="data")
    device: str = opt("auto", "auto picks cuda, then mps, then cpu", DEVICES, group="device")
    precision: str = opt(
        "fp32",
        "training arithmetic: fp32, or mixed precision by autocast: bf16 (CPU or GPU; "
        "usually slower than fp32 on CPUs without AMX) or fp16 (CUDA GPUs only, with a gradient "
        "scaler); sampling is always fp32",
        choices.PRECISIONS,
        group="device",
    )
    conditional: bool = opt(
        False,
        "train on class labels too, so `sample --prompt` can ask for a class: a digit of "
        "an image set, or a shape of random, blobs or a table with a `dataset` column",
        group="data",
    )
    cond_drop: float = opt(
        0.1,
        "conditional runs: share of training steps without the label, so one model also "
        "draws unconditionally (classifier-free guidance needs both)",
        group="training",
    )
    guidance: float = opt(
        0.0,
        "guidance scale w of the run's own samples and the default of `sample`: conditional runs "
        "cond + w (cond - uncond), classifier-free; unconditional runs with --guide-at "
        "model + w (model - guide), autoguidance; 0 = none",
        group="sampling",
    )
    guide_at: float = opt(
        0.0,
        "unconditional runs: keep the weights (the EMA's) after this share of training as the weaker "
        "model --guidance pushes away from (autoguidance, Karras et al. 2024); 0 = none",
        group="sampling",
    )
    preset: Optional[str] = opt(
        None,
        "start from a named set of settings (flags given win): study = the follow-up study's final settings",
        PRESETS,
        group="run",
    )

    def __post_init__(self) -> None:
        self.validate()  # a TrainConfig is valid from the start: nothing downstream checks it again

    def validate(self) -> TrainConfig:
        """Refuse nonsense with one clear line (raises UsageError); returns self. Run when a config is made (and
        by ``dataclasses.replace``), so a TrainConfig in hand is a valid one."""
        self._validate_names()
        self._validate_sizes()
        self._validate_guidance()
        self._validate_optimisation()
        self._validate_method()
        self._validate_sampling()
        try:
            self.dataset_options()  # validates the option values
        except UsageError as e:  # its message names the option
            raise SettingError(str(e), *OPTION_NAMES) from None
        return self

    def _validate_names(self) -> None:
        """The dataset, every setting with a list of choices, the run's folder name, the seeds, the model."""
        if (
            self.dataset not in DATASETS
            and self.dataset not in IMAGE_DATASETS
            and not self.dataset.lower().endswith(POINT_FILE_SUFFIXES)
        ):
            raise UsageError(
                f"unknown dataset {self.dataset!r}; choose from {', '.join([*DATASETS, *IMAGE_DATASETS])} "
                f"or give a {', '.join(POINT_FILE_SUFFIXES)} file"
            )
        for f in fields(self):
            value, valid = getattr(self, f.name), f.metadata["choices"]
            if valid and value is not None and value not in valid:
                raise SettingError(f"unknown {f.name} {value!r}; choose from {', '.join(valid)}", f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingError(f"{f.name} must be a finite number, got {value}", f.name)
            if isinstance(value, str) and "\0" in value:
                raise SettingError(f"{f.name} must not contain a NUL character", f.name)
        name = self.experiment_name
        if name is not None and not _plain_name(name):
            raise SettingError(
                f"experiment_name names the folder runs/NAME: give a plain name, got {name!r}", "experiment_name"
            )
        for seed in ("seed", "data_seed"):
            if not 0 <= getattr(self, seed) < 2**63:
                raise SettingError(f"{seed} must be an integer from 0 to 2**63 - 1, got {getattr(self, seed)}", seed)
        if self.is_images and self.model not in IMAGE_MODELS:
            raise UsageError(f"{self.dataset} is an image dataset: choose --model {' or '.join(IMAGE_MODELS)}")
        if not self.is_images and self.model != "mlp":
            raise UsageError(
                f"the {self.model} model is for image datasets ({', '.join(IMAGE_DATASETS)}); points use --model mlp"
            )

    def _validate_sizes(self) -> None:
        """Counts and sizes that must be positive, or at least 0."""
        positive = (
            "train_batch_size",
            "eval_batch_size",
            "num_epochs",
            "num_timesteps",
            "embedding_size",
            "hidden_size",
            "channels",
            "save_images_step",
            "learning_rate",
            "log_sigma_std",
        )
        if not self.is_images:  # images: 0 = every training image
            positive += ("num_samples",)
        for name in positive:
            if not getattr(self, name) > 0:
                raise SettingError(f"{name} must be positive, got {getattr(self, name)}", name)
        for name in ("num_samples", "hidden_layers", "warmup_steps", "eta", "grad_clip", "min_snr_gamma"):
            if getattr(self, name) < 0:
                raise SettingError(f"{name} must be >= 0, got {getattr(self, name)}", name)

    def _validate_guidance(self) -> None:
        """Conditioning and guidance: classifier-free for a conditional run, autoguidance for an unconditional one."""
        if self.conditional and self.subset is not None:
            raise UsageError(
                "--subset keeps one sub-dataset of a table, --conditional trains on all of them with "
                "their names as labels: choose one"
            )
        if not 0 <= self.cond_drop < 1:
            raise SettingError(f"cond_drop must be in [0, 1), got {self.cond_drop}", "cond_drop")
        if self.guidance < 0:
            raise SettingError(f"guidance must be >= 0, got {self.guidance}", "guidance")
        if not 0 <= self.guide_at < 1:
            raise SettingError(f"guide_at must be in [0, 1), got {self.guide_at}", "guide_at")
        if self.conditional and self.guide_at > 0:
            raise SettingError(
                "a conditional run is guided by its own unconditional model: leave guide_at 0", "guide_at"
            )
        if not self.conditional and self.guidance > 0 and self.guide_at == 0:
            raise SettingError(
                "guidance of an unconditional run needs a guide: set guide_at (say 0.1), or train with --conditional",
                "guidance",
                "guide_at",
            )
        if self.conditional and self.guidance > 0 and self.cond_drop == 0:
            raise SettingError(
                "guidance needs the unconditional model too: set cond_drop > 0 (say 0.1) or guidance 0",
                "guidance",
                "cond_drop",
            )

    def _validate_optimisation(self) -> None:
        """The EMA, the noise schedule's betas and the batch against the training set."""
        if not 0 <= self.ema_decay < 1:
            raise SettingError(f"ema_decay must be in [0, 1), got {self.ema_decay}", "ema_decay")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise SettingError(
                f"need 0 < beta_start <= beta_end < 1, got {self.beta_start} and {self.beta_end}",
                "beta_start",
                "beta_end",
            )
        if self.num_samples and self.train_batch_size > self.num_samples:
            raise SettingError(
                f"train_batch_size ({self.train_batch_size}) exceeds num_samples ({self.num_samples})",
                "train_batch_size",
                "num_samples",
            )

    def _validate_sampling(self) -> None:
        """The final samples' steps, for the run's method and sampler."""
        if self.method == "flow":
            if self.sample_steps is not None and self.sample_steps < 1:
                raise SettingError(f"sample_steps must be positive, got {self.sample_steps}", "sample_steps")
        elif self.sample_steps is not None and not 1 <= self.sample_steps <= self.num_timesteps:
            raise SettingError(
                f"sample_steps must be between 1 and num_timesteps ({self.num_timesteps}), got {self.sample_steps}",
                "sample_steps",
                "num_timesteps",
            )
        if self.own_sampler == "ddpm" and self.sample_steps not in (None, self.num_timesteps):
            raise UsageError("the ddpm sampler walks all num_timesteps steps; use --sampler ddim for fewer")
        if self.sampler == "ode" and self.sample_steps not in (None, self.num_timesteps):
            raise UsageError("the ode sampler chooses its own steps; leave sample_steps out")

    def _validate_method(self) -> None:
        """Refuse the settings of one method given to a run of the other."""
        valid = choices.samplers_of(self.method)
        for name in ("sampler", "snapshot_sampler"):
            value = getattr(self, name)
            if value is not None and value not in valid:
                raise SettingError(
                    f"{name} {value} is not for {self.method} runs; choose from {', '.join(valid)}", name
                )
        if self.method != "flow":
            return
        if self.target != "noise":
            raise SettingError(
                f"a flow run's network predicts the velocity noise - x0; target {self.target} is for ddpm runs",
                "target",
            )
        if self.min_snr_gamma > 0:
            raise SettingError("min_snr_gamma weights ddpm's steps; flow runs take the plain mean", "min_snr_gamma")

    @property
    def own_sampler(self) -> str:
        """The run's sampler: ``sampler``, or the method's own where left out (ddpm; midpoint for flow)."""
        return self.sampler if self.sampler is not None else choices.DEFAULT_SAMPLERS[self.method]

    @property
    def own_snapshot_sampler(self) -> str:
        """The sampler of the run's snapshots: ``snapshot_sampler``, else the run's own, but dpmpp-2m (at its 20
        steps) in place of ddpm's T steps: snapshots only show training's progress."""
        if self.snapshot_sampler is not None:
            return self.snapshot_sampler
        return "dpmpp-2m" if self.own_sampler == "ddpm" else self.own_sampler

    def with_method(self, method: str) -> TrainConfig:
        """These settings with ``method``, the sampling and target of the other method dropped (back to the new
        method's own): what ``ablate method ddpm flow`` compares."""
        if method == self.method:
            return replace(self)
        drop: dict[str, Any] = {}
        if self.sampler is not None and self.sampler not in choices.samplers_of(method):
            drop.update(sampler=None, sample_steps=None, eta=0.0)
        if self.snapshot_sampler is not None and self.snapshot_sampler not in choices.samplers_of(method):
            drop.update(snapshot_sampler=None)
        if method == "flow":
            drop.update(target="noise", min_snr_gamma=0.0)
        return replace(self, method=method, **drop)

    @property
    def dataset_name(self) -> str:
        """The dataset as titles and folder names give it: its registry name, or its point file's name without
        folder or suffix (mydata for /home/me/data/mydata.csv)."""
        return self.dataset if self.dataset in DATASETS or self.is_images else Path(self.dataset).stem

    @property
    def run_name(self) -> str:
        """The name of the run's folder under runs/: experiment_name, else the dataset's."""
        if self.experiment_name is not None:
            return self.experiment_name
        return self.dataset_name if _plain_name(self.dataset_name) else "run"

    @property
    def snapshot_size(self) -> int:
        """Samples in each training snapshot: eval_batch_size points, or 64 images (an 8 x 8 grid)."""
        return SNAPSHOT_IMAGES if self.is_images else self.eval_batch_size

    @property
    def is_images(self) -> bool:
        """Whether the dataset is an image set (else points)."""
        return self.dataset in IMAGE_DATASETS

    @property
    def standardizes(self) -> bool:
        """Whether training standardizes the points: ``standardize`` where set, else (None) for a user's point
        file, whose units are anyone's, and not for a registered dataset, made near unit scale."""
        if self.standardize is not None:
            return self.standardize
        return not self.is_images and self.dataset not in DATASETS

    def resolved(self) -> TrainConfig:
        """These settings with the automatic ones made explicit (``standardize``, the method's own ``sampler``), as a
        run's config.json records what was used."""
        if self.standardize is not None and self.sampler is not None:
            return self
        return replace(self, standardize=self.standardizes, sampler=self.own_sampler)

    def dataset_options(self) -> dict[str, Any]:
        """The dataset options that were set (lines, angle, densify, digit, image_index), validated."""
        return check_options({name: getattr(self, name) for name in OPTION_NAMES})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: TrainConfig, *, ignore: Sequence[str] = ()) -> list[str]:
        """The settings (but those in ``ignore``) in which ``other`` differs, as "name: mine -> other's"; an
        automatic setting compares by what it resolves to (standardize None is True for a point file)."""
        mine, theirs = self.resolved(), other.resolved()
        return [
            f"{f.name}: {getattr(mine, f.name)!r} -> {getattr(theirs, f.name)!r}"
            for f in fields(self)
            if f.name not in ignore and getattr(mine, f.name) != getattr(theirs, f.name)
        ]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping of field names (dashes allowed) to values; unknown keys and bad types are refused.
        An image dataset starts from IMAGE_DEFAULTS rather than the dino's defaults, and a preset from its values."""
        by_name = {f.name: f for f in fields(cls)}
        given = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in by_name:
                raise UsageError(f"unknown config key {key!r}")
            given[name] = _coerce(name, by_name[name].type, value)
        images = given.get("dataset") in IMAGE_DATASETS
        preset = given.get("preset")
        if preset is not None and preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        start = dict(IMAGE_DEFAULTS) if images else {}
        if given.get("method") == "flow":  # the images' ddpm sampling and target are not a flow run's, and their
            # autoguidance was measured on ddpm runs only
            start = {k: v for k, v in start.items() if k not in (*DDPM_ONLY, *UNCONDITIONAL_ONLY)}
        if given.get("conditional"):
            start = {k: v for k, v in start.items() if k not in UNCONDITIONAL_ONLY}
        if preset is not None:
            start.update(PRESETS[preset]["images" if images else "points"])
        return cls(**{**start, **given})


def _plain_name(name: str) -> bool:
    """Whether ``name`` can name a folder of runs/ as it is: not empty, not . or .., no path separator."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def coerce_field(name: str, value: Any) -> Any:
    """``value`` checked (and ints widened to float) for the TrainConfig field ``name``."""
    return _coerce(name, {f.name: f.type for f in fields(TrainConfig)}[name], value)


def _coerce(name: str, type_name: str, value: Any) -> Any:
    """``value`` as the field's type, or a UsageError naming the field (config files carry any JSON/TOML type)."""
    if value is None and type_name.startswith("Optional"):
        return None
    base = type_name.removeprefix("Optional[").removesuffix("]")
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }[base]
    if not ok:
        raise UsageError(f"config key {name!r} must be of type {base}, got {value!r}")
    return float(value) if base == "float" else value
