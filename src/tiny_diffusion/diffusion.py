"""``Diffusion``: a denoiser with everything needed to use it (schedule, the data's units, classes, the run's own
sampler), loaded from a run directory or handed back by ``train``. Arrays go in and come out in the data's units;
the model's coordinates (standardized, when the run was) never leave this module, so nothing can be scaled twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, overload

import numpy as np
import torch
from torch import nn

from .choices import FLOW_SAMPLERS, SAMPLERS, samplers_of
from .core import flow
from .core.objectives import Target, noise_predictor
from .core.samplers import (
    ODE_ATOL,
    ODE_RTOL,
    SIGMA_SAMPLERS,
    STEP_SPACINGS,
    NoisePredictor,
    SamplerName,
    Spacing,
    sample,
)
from .core.samplers import sampler_steps as ddpm_sampler_steps
from .core.schedule import NoiseSchedule
from .data.prompts import parse_prompt, side_by_side
from .errors import UsageError
from .models import LabelConditioned, autoguided, guided

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["Diffusion", "Trajectory", "Sampling", "resolve_sampling", "sampler_steps", "balanced_labels"]

Sampler = Literal["ddpm", "ddim", "dpmpp-2m", "euler", "heun", "ode", "midpoint"]
FAST_STEPS = 20  # the probability-flow samplers' steps when none are asked for (and the run's sampler is another)
# steps of a flow run's sampler when the run gives none: midpoint's 25 steps are 50 network calls, where it reaches
# the adaptive ode sampler's precision on the dino (docs/concepts.md#flow-matching)
FLOW_SAMPLE_STEPS = 25


@dataclass(frozen=True)
class Sampling:
    """How to walk the reverse process: the sampler, its number of steps (None: all T), DDIM's eta, the ode
    sampler's tolerances and where dpmpp-2m, euler and heun put their noise levels."""

    sampler: str
    steps: int | None
    eta: float
    rtol: float = ODE_RTOL
    atol: float = ODE_ATOL
    spacing: str = "karras"  # core.samplers.STEP_SPACINGS


def resolve_sampling(
    config: TrainConfig,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    spacing: str = "karras",
) -> Sampling:
    """The sampling asked for, with what was left out (None) filled in from the run: its own sampler (the method's
    own where the run names none); its steps and eta where its sampler is used, else all steps (``FAST_STEPS`` for
    dpmpp-2m, euler and heun, at most T; ``FLOW_SAMPLE_STEPS`` for a flow run) and eta 0; the ode sampler's
    tolerances ``ODE_RTOL`` and ``ODE_ATOL`` (flow's own for a flow run); Karras noise levels. A sampler of the other
    method is refused, and so are tolerances for a sampler other than ode. The one place these defaults are decided."""
    sampler = config.own_sampler if sampler is None else sampler
    valid = samplers_of(config.method)
    if sampler not in valid:
        other = " of ddpm runs" if sampler in SAMPLERS else " of flow runs" if sampler in FLOW_SAMPLERS else ""
        raise UsageError(
            f"the {sampler} sampler{other} does not apply to this {config.method} run; choose from {', '.join(valid)}"
        )
    own = sampler == config.own_sampler
    if steps is None and own:
        steps = config.sample_steps
    if eta is None:
        eta = config.eta if own else 0.0
    if not eta >= 0 or not math.isfinite(eta):
        raise UsageError(f"eta must be a finite number >= 0, got {eta}")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{name} must be a positive number, got {value}")
        if value is not None and sampler != "ode":
            raise UsageError(f"{name} is the ode sampler's tolerance; the {sampler} sampler takes none: leave it out")
    if config.method == "flow":
        if eta != 0:
            raise UsageError(f"eta is ddim's noise; the flow samplers are deterministic: leave it out (got {eta})")
        steps = FLOW_SAMPLE_STEPS if steps is None else steps
        if steps < 1:
            raise UsageError(f"a flow sampler needs at least 1 step, got {steps}")
        rtol, atol = (flow.ODE_RTOL if rtol is None else rtol), (flow.ODE_ATOL if atol is None else atol)
        return Sampling(sampler, steps, 0.0, float(rtol), float(atol))
    if steps is None and sampler in SIGMA_SAMPLERS:  # a ddpm run's dpmpp-2m, euler or heun (flow has its own)
        steps = min(FAST_STEPS, config.num_timesteps)
    if spacing not in STEP_SPACINGS:
        raise UsageError(f"unknown step spacing {spacing!r}; choose from {', '.join(STEP_SPACINGS)}")
    ddpm_sampler_steps(config.num_timesteps, sampler, steps)  # refuses an unknown sampler or a wrong step count
    rtol = ODE_RTOL if rtol is None else float(rtol)
    return Sampling(sampler, steps, float(eta), rtol, ODE_ATOL if atol is None else float(atol), spacing)


def sampler_steps(config: TrainConfig, how: Sampling) -> int:
    """How many steps the resolved sampling ``how`` walks for a run of ``config``: what ``record_every`` counts."""
    if config.method == "flow":
        return cast(int, how.steps)
    return ddpm_sampler_steps(config.num_timesteps, how.sampler, how.steps)


def balanced_labels(num: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(num,) labels 0, 1, ..., K - 1, 0, 1, ...: what a conditional model draws when no class is asked for."""
    return torch.arange(num, device=device) % num_classes


@dataclass
class Trajectory:
    """Samples and the states of the reverse process on the way to them, in the data's units."""

    samples: np.ndarray  # (N, *shape): the final samples
    states: np.ndarray  # (K, N, *shape): the recorded states, the initial noise first and the samples last
    timesteps: np.ndarray  # (K,) the step t of each state: T for the noise, 0 for the samples
    num_timesteps: int  # T
    nfe: int = 0  # network evaluations per sample (under guidance the conditional and unconditional passes count 2)


@dataclass(eq=False)
class Diffusion:
    """A trained denoiser and all it needs to draw samples: ``Diffusion.load(run_dir)`` or ``train(...)``.

    ``sample`` draws with the run's own sampler, steps and eta unless told otherwise; a conditional model also
    draws a class (``prompt="seven"``) under classifier-free guidance. Arrays in and out are NumPy, in the data's
    units (points) or [-1, 1] pixels (images).
    """

    config: TrainConfig  # every setting of the run
    network: nn.Module | Callable[..., torch.Tensor]  # predicts config.target from (x_t, t[, labels])
    schedule: NoiseSchedule
    shape: tuple[int, ...]  # of one sample: (D,) for points, (C, H, W) for images
    # per channel (a point's coordinates, an image's colour channels), each (C,), in the model's coordinates:
    data_min: torch.Tensor  # the training data's range (predicted x0 is clipped to it)
    data_max: torch.Tensor
    shift: torch.Tensor  # data = model coordinates * scale + shift (zeros and ones unless standardized)
    scale: torch.Tensor
    classes: tuple[str, ...] = ()  # a conditional model's class names (label k draws classes[k]); else empty
    run_dir: Path | None = None  # where it was loaded from or trained into
    # the exact score(x_t, alpha-bar) at any alpha-bar, where known (td.exact's mixtures): likelihoods then start at
    # the noiseless data rather than at the first step
    exact_score: Callable[[torch.Tensor, float], torch.Tensor] | None = None
    # an autoguided run's weaker network (its weights after guide_at of training), which guidance pushes away from
    guide: nn.Module | None = None

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | torch.device = "cpu") -> Diffusion:
        """Rebuild a model from its run directory alone (every file checked against the run's manifest first)."""
        from .runs.files import load_run  # the run directory's format lives with the other run files

        return load_run(run_dir, device=device)

    @property
    def device(self) -> torch.device:
        return self.schedule.device

    @property
    def sampling(self) -> Sampling:
        """The run's own sampler, steps and eta: what ``sample`` uses by default."""
        return resolve_sampling(self.config)

    def __repr__(self) -> str:
        where = f", run_dir={str(self.run_dir)!r}" if self.run_dir else ""
        classes = f", classes={len(self.classes)}" if self.classes else ""
        how = "method='flow'" if self.is_flow else f"T={len(self.schedule)}, target={self.config.target!r}"
        return f"Diffusion(dataset={self.config.dataset!r}, shape={self.shape}, {how}{classes}{where})"

    # -- drawing ------------------------------------------------------------------------------------------------

    @overload
    def sample(
        self,
        num: int,
        *,
        sampler: str | None = ...,
        steps: int | None = ...,
        eta: float | None = ...,
        rtol: float | None = ...,
        atol: float | None = ...,
        seed: int = ...,
        prompt: str | None = ...,
        labels: Sequence[int] | np.ndarray | None = ...,
        guidance: float | None = ...,
        trajectory: Literal[False] = ...,
        record_every: int = ...,
    ) -> np.ndarray: ...

    @overload
    def sample(
        self,
        num: int,
        *,
        sampler: str | None = ...,
        steps: int | None = ...,
        eta: float | None = ...,
        rtol: float | None = ...,
        atol: float | None = ...,
        seed: int = ...,
        prompt: str | None = ...,
        labels: Sequence[int] | np.ndarray | None = ...,
        guidance: float | None = ...,
        trajectory: Literal[True],
        record_every: int = ...,
    ) -> Trajectory: ...

    def sample(
        self,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        seed: int = 0,
        prompt: str | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        guidance: float | None = None,
        trajectory: bool = False,
        record_every: int = 1,
    ) -> np.ndarray | Trajectory:
        """Draw ``num`` samples, (num, *shape), in the data's units.

        ``sampler``, ``steps`` and ``eta`` left out are the run's own (``self.sampling``); ``rtol`` and ``atol`` are
        the ode sampler's tolerances (refused with another sampler). A conditional model draws
        the class ``prompt`` names (a digit, its name, a number drawn digit by digit side by side, a shape's name),
        or the classes ``labels`` (num,), or every class in turn, under classifier-free guidance ``guidance``
        (default: the run's); an autoguided model (``guide``) takes ``guidance`` as its autoguidance scale, 0
        for the model alone. ``trajectory=True`` returns a ``Trajectory`` with the states after every
        ``record_every`` steps too.
        """
        if not num >= 1:
            raise UsageError(f"the number of samples must be positive, got {num}")
        if record_every < 1:
            raise UsageError(f"record_every must be positive, got {record_every}")
        glyphs = self._prompt(prompt) if prompt is not None else []
        if glyphs and labels is not None:
            raise UsageError("give a prompt or labels, not both")
        if glyphs:
            labels = np.tile(glyphs, num)  # (num * k,): each sample's glyphs in turn
        drawn = self.draw(
            num * max(1, len(glyphs)),
            resolve_sampling(self.config, sampler, steps, eta, rtol=rtol, atol=atol),
            seed=seed,
            labels=labels,
            guidance=guidance,
            record_every=record_every if trajectory else 0,
        )
        if len(glyphs) > 1:  # a number: its digits side by side, (num, C, H, k W)
            drawn.samples = side_by_side(drawn.samples.reshape(num, len(glyphs), *self.shape))
            drawn.states = np.stack([side_by_side(s.reshape(num, len(glyphs), *self.shape)) for s in drawn.states])
        return drawn if trajectory else drawn.samples

    def add_noise(self, x0: np.ndarray, t: float | Sequence[float] | np.ndarray, *, seed: int = 0) -> np.ndarray:
        """x_t ~ q(x_t | x_0) for data ``x0`` (N, *shape) in the data's units, at ``t`` (one for all, or (N,)): the
        zero-based step t, sqrt(alpha-bar_t) x0 + sqrt(1 - alpha-bar_t) noise; for a flow run the time t in
        [0, 1], (1 - t) x0 + t noise. In the model's coordinates, returned in the data's units."""
        x = self._to_model(torch.as_tensor(np.asarray(x0), dtype=torch.float32, device=self.device))
        if tuple(x.shape[1:]) != self.shape:
            raise UsageError(f"x0 must have shape (N, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        noise = torch.randn(x.shape, generator=torch.Generator(self.device).manual_seed(seed), device=self.device)
        if self.is_flow:
            times = self._flow_times(t, len(x))
            return self._to_data(flow.interpolate(x, noise, times)).cpu().numpy()
        steps = torch.as_tensor(np.asarray(t), dtype=torch.long, device=self.device).broadcast_to((len(x),))
        if not bool(((steps >= 0) & (steps < len(self.schedule))).all()):
            raise UsageError(f"t must be between 0 and {len(self.schedule) - 1}")
        return self._to_data(self.schedule.add_noise(x, noise, steps)).cpu().numpy()

    @property
    def is_flow(self) -> bool:
        """Whether the run is a flow-matching one (its network predicts velocities; its time runs over [0, 1])."""
        return self.config.method == "flow"

    def _flow_times(self, t: float | Sequence[float] | np.ndarray, num: int) -> torch.Tensor:
        times = torch.as_tensor(np.asarray(t, dtype=np.float64), dtype=torch.float32, device=self.device)
        times = times.broadcast_to((num,)) if times.dim() <= 1 else times
        if times.shape != (num,) or not bool(((times >= 0) & (times <= 1)).all()):
            raise UsageError("a flow run's t must be a time from 0 (data) to 1 (noise), one or one per sample")
        return times

    def predict_x0(
        self,
        x_t: np.ndarray,
        t: float,
        *,
        labels: Sequence[int] | np.ndarray | None = None,
        guidance: float | None = None,
    ) -> np.ndarray:
        """What the model takes x_0 to be from ``x_t`` (N, *shape) at zero-based step ``t`` (a flow run: at time t in
        [0, 1], x_t - t v), clipped as the sampler clips it; both in the data's units. A conditional model predicts
        for ``labels`` (default: each in turn)."""
        x = self._to_model(torch.as_tensor(np.asarray(x_t), dtype=torch.float32, device=self.device))
        with torch.no_grad():
            if self.is_flow:
                times = self._flow_times(t, len(x))
                x0 = flow.predict_x0(x, self.velocity(len(x), labels=labels, guidance=guidance)(x, times), times)
            else:
                index = torch.full((len(x),), int(t), device=self.device, dtype=torch.long)
                x0 = self.schedule.predict_x0(
                    x, self.noise_predictor(len(x), labels=labels, guidance=guidance)(x, index), index
                )
        if self.config.clip_sample:
            x0 = x0.clamp(self._per_channel(self.data_min), self._per_channel(self.data_max))
        return self._to_data(x0).cpu().numpy()

    def export_html(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the run's interactive page, one self-contained HTML file (default: RUN_DIR/page.html; see
        ``viz/page.py``), and return its path."""
        from .viz.page import export_html

        if self.run_dir is None:
            raise UsageError("this model has no run directory: the page shows a run's training record too")
        return export_html(self.run_dir, path, overwrite=overwrite)

    def data_range(self) -> np.ndarray:
        """(2, C): the per-channel minimum and maximum of the training data, in the data's units."""
        return torch.stack([self._to_data(self.data_min), self._to_data(self.data_max)]).cpu().numpy()

    def noise_predictor(
        self,
        num: int,
        *,
        labels: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        guidance: float | None = None,
    ) -> NoisePredictor:
        """The noise prediction noise(x_t, t) that the samplers call, for a batch of ``num`` in the model's
        coordinates: a conditional model's for the classes ``labels`` (num,) (default: each in turn) under
        classifier-free guidance ``guidance`` (default: the run's). A ddpm run's only (see ``velocity``)."""
        if self.is_flow:
            raise UsageError("a flow run predicts velocities, not noise: this needs a ddpm run")
        return noise_predictor(self._output(num, labels, guidance), self.schedule, cast(Target, self.config.target))

    def velocity(
        self,
        num: int,
        *,
        labels: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        guidance: float | None = None,
    ) -> flow.Velocity:
        """A flow run's velocity v(x_t, t), t (num,) in [0, 1], for a batch of ``num`` in the model's coordinates,
        conditioned and guided as ``noise_predictor`` is: v_cond + w (v_cond - v_uncond)."""
        if not self.is_flow:
            raise UsageError("a ddpm run predicts noise, not a velocity: this needs a flow run (method flow)")
        return flow.velocity_predictor(self._output(num, labels, guidance))

    def _output(
        self,
        num: int,
        labels: Sequence[int] | np.ndarray | torch.Tensor | None,
        guidance: float | None,
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The network's output at (x_t, t) for a batch of ``num``: a conditional model's for ``labels`` under
        classifier-free guidance ``guidance`` (the run's by default), an autoguided one's under autoguidance."""
        network = self.network
        scale = self.config.guidance if guidance is None else guidance
        if (self.classes or self.guide is not None) and not scale >= 0:
            raise UsageError(f"guidance must be >= 0, got {scale}")
        if self.classes:
            chosen = (
                balanced_labels(num, len(self.classes), self.device)
                if labels is None
                else torch.as_tensor(np.asarray(labels), dtype=torch.long, device=self.device)
            )
            if chosen.shape != (num,) or not bool(((chosen >= 0) & (chosen < len(self.classes))).all()):
                raise UsageError(f"labels must be ({num},) classes from 0 to {len(self.classes) - 1}")
            network = guided(cast(LabelConditioned, self.network), chosen, scale)
        elif labels is not None:
            raise UsageError(
                "this model is not conditional, so it cannot be asked for a class; train one with "
                "conditional=True (--conditional)"
            )
        elif self.guide is not None:
            network = autoguided(network, self.guide, scale)
        elif guidance is not None:
            raise UsageError(
                "this model has nothing to guide it: guidance needs a conditional run (--conditional) or an "
                "autoguided one (--guide-at)"
            )
        return cast(Callable[[torch.Tensor, torch.Tensor], torch.Tensor], network)

    # -- likelihoods (the maths in eval/likelihood.py) ---------------------------------------------------------

    def log_prob(
        self,
        x: np.ndarray,
        *,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        hutchinson: int | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """The natural-log density (N,) of points ``x`` (N, *shape) in the data's units, by the probability-flow ODE
        (dopri5 with ``rtol`` and ``atol``; Hutchinson's trace with ``hutchinson`` probes, or the exact trace). It is
        the density of x at the first step (of x itself for an exact mixture, whose score is known at every noise
        level), with N(0, I) at the end (see ``eval/likelihood.py``); a flow run's is its own ODE's, of the data
        itself at t = 0 (``flow_log_prob``)."""
        from .eval.likelihood import flow_log_prob, pf_ode_log_prob

        x0 = self._likelihood_input(x)
        dtype = torch.float32 if isinstance(self.network, nn.Module) else torch.float64
        if self.is_flow:  # the flow's own ODE, from the data at t = 0 to N(0, I) at t = 1
            flowed = flow_log_prob(
                self.velocity(len(x0)), x0, rtol=rtol, atol=atol, hutchinson=hutchinson, seed=seed, dtype=dtype
            )
            return flowed.value - self._log_scale()
        found = pf_ode_log_prob(
            self.noise_predictor(len(x0)),
            self.schedule,
            x0,
            rtol=rtol,
            atol=atol,
            hutchinson=hutchinson,
            seed=seed,
            dtype=dtype,
            score=self.exact_score,
        )
        return found.value - self._log_scale()

    def elbo(self, x: np.ndarray, *, samples: int = 1, seed: int = 0) -> np.ndarray:
        """The variational bound (Ho et al. 2020, eq. 5) on -log p(x) (N,) in nats per point, in the data's units
        (images: [-1, 1] pixels on 256 levels); ``samples`` draws of the noise per step. See ``bits_per_dim``."""
        from .eval.likelihood import variational_bound

        if self.is_flow:
            raise UsageError("the variational bound is ddpm's; a flow run has log_prob (its ODE's exact likelihood)")
        x0 = self._likelihood_input(x)
        dtype = torch.float32 if isinstance(self.network, nn.Module) else torch.float64
        found = variational_bound(
            self.noise_predictor(len(x0)),
            self.schedule,
            x0,
            samples=samples,
            seed=seed,
            dtype=dtype,
            discrete=self.config.is_images,
        )
        return found.value + self._log_scale()

    def bits_per_dim(self, nats: np.ndarray) -> np.ndarray:
        """A negative log-likelihood or bound in nats per point as bits per dimension."""
        return np.asarray(nats) / (math.prod(self.shape) * math.log(2))

    def _likelihood_input(self, x: np.ndarray) -> torch.Tensor:
        if self.classes:
            raise UsageError("likelihoods of a conditional model are not supported; use an unconditional run")
        array = np.asarray(x, dtype=np.float64)
        if array.ndim != len(self.shape) + 1 or tuple(array.shape[1:]) != self.shape:
            raise UsageError(f"x must have shape (N, {', '.join(map(str, self.shape))}), got {array.shape}")
        if not np.isfinite(array).all():
            raise UsageError("x has non-finite values (NaN or infinity)")
        x0 = torch.as_tensor(array, device=self.device)
        return (x0 - self._per_channel(self.shift.double())) / self._per_channel(self.scale.double())

    def _log_scale(self) -> float:
        """log |d data / d model| of one sample: sum over coordinates of log scale (each channel's over its pixels)."""
        per_channel = math.prod(self.shape[1:]) if len(self.shape) > 1 else 1
        return float(self.scale.double().log().sum()) * per_channel

    # -- the model's coordinates (private: everything public is in the data's units) ----------------------------

    def _prompt(self, prompt: str) -> list[int]:
        if not self.classes:
            raise UsageError(
                "a prompt needs a conditional run (train one with --conditional, or conditional=True); "
                "this one has no classes"
            )
        return parse_prompt(prompt, self.classes)

    def draw(
        self,
        num: int,
        how: Sampling,
        *,
        seed: int,
        labels: Sequence[int] | np.ndarray | None = None,
        guidance: float | None = None,
        record_every: int = 0,
    ) -> Trajectory:
        """Draw ``num`` samples walking ``how`` (a resolved ``Sampling``), recording the states every ``record_every``
        steps (0: none); the sampling sits in the model's coordinates, what comes back is in the data's units."""
        generator = torch.Generator(self.device).manual_seed(seed)
        clip = (self._per_channel(self.data_min), self._per_channel(self.data_max)) if self.config.clip_sample else None
        if self.is_flow:
            return self._draw_flow(num, how, generator, clip, labels, guidance, record_every)
        noise_predictor = self.noise_predictor(num, labels=labels, guidance=guidance)
        drawn = sample(
            noise_predictor,
            self.schedule,
            (num, *self.shape),
            sampler=cast(SamplerName, how.sampler),
            steps=how.steps,
            eta=how.eta,
            clip=clip,
            generator=generator,
            record_every=record_every,
            rtol=how.rtol,
            atol=how.atol,
            spacing=cast(Spacing, how.spacing),
        )
        walked = drawn.timesteps
        # after d of the sampler's steps x sits at step walked[d] + 1 (the next step denoises it), or 0 at the end
        done = [len(walked) - left for left in drawn.steps_left]
        states = drawn.states if drawn.states is not None else drawn.samples[None]
        timesteps = [walked[d] + 1 if d < len(walked) else 0 for d in done] if done else [0]
        return Trajectory(
            self._to_data(drawn.samples).cpu().numpy(),
            self._to_data(states).cpu().numpy(),
            np.array(timesteps),
            len(self.schedule),
            drawn.nfe * self._passes(guidance),
        )

    def _draw_flow(
        self,
        num: int,
        how: Sampling,
        generator: torch.Generator,
        clip: tuple[torch.Tensor, torch.Tensor] | None,
        labels: Sequence[int] | np.ndarray | None,
        guidance: float | None,
        record_every: int,
    ) -> Trajectory:
        """``draw`` for a flow run: the flow sampler from t = 1 to 0 in ``how.steps`` steps."""
        steps = cast(int, how.steps)
        drawn = flow.sample(
            self.velocity(num, labels=labels, guidance=guidance),
            (num, *self.shape),
            sampler=how.sampler,
            steps=steps,
            clip=clip,
            generator=generator,
            device=self.device,
            record_every=record_every,
            rtol=how.rtol,
            atol=how.atol,
        )
        states = drawn.states if drawn.states is not None else drawn.samples[None]
        times = np.array([left / steps for left in drawn.steps_left] if drawn.steps_left else [0.0])
        return Trajectory(
            self._to_data(drawn.samples).cpu().numpy(),
            self._to_data(states).cpu().numpy(),
            times,
            1,
            drawn.nfe * self._passes(guidance),
        )

    def _passes(self, guidance: float | None) -> int:
        """Network passes per noise prediction: two under guidance (``models.guided`` runs the conditional and the
        unconditional prediction in one batch of 2N; ``models.autoguided`` the model and its guide), else one."""
        scale = self.config.guidance if guidance is None else guidance
        return 2 if (self.classes or self.guide is not None) and scale != 0 else 1

    def _per_channel(self, values: torch.Tensor) -> torch.Tensor:
        """(C,) -> a shape that broadcasts over samples (..., *shape): (D,) for points, (C, 1, 1) for images."""
        return values.reshape(-1, *[1] * (len(self.shape) - 1))

    def _to_data(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._per_channel(self.scale) + self._per_channel(self.shift)

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._per_channel(self.shift)) / self._per_channel(self.scale)
