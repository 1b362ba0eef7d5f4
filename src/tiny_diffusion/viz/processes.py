"""Pictures of the forward and reverse processes: which states to show, the states themselves and their labels.

A "step" s counts noising steps applied to the data: s = 0 is x_0, s = T is x_T. Step s > 0 therefore uses the
schedule's zero-based index s - 1 (alphas_cumprod[s - 1]); the reverse process walks the same steps back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.samplers import sampler_steps
from ..core.schedule import NoiseSchedule
from ..diffusion import Diffusion, resolve_sampling
from ..errors import UsageError

__all__ = [
    "evenly_spaced",
    "forward_states",
    "forward_labels",
    "ReverseStates",
    "reverse_states",
    "predicted_x0",
    "class_samples",
]


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` distinct integers from 0 to ``total`` inclusive, evenly spaced (rounded): which steps to show."""
    if not 2 <= count <= total + 1:
        raise UsageError(f"can show between 2 and {total + 1} states of {total} steps, asked for {count}")
    return [round(i * total / (count - 1)) for i in range(count)]


def forward_states(points: np.ndarray, schedule: NoiseSchedule, steps: Sequence[int], *, seed: int = 0) -> np.ndarray:
    """x_s ~ q(x_s | x_0) of (N, D) points after each of ``steps`` noising steps (0: the points), as (K, N, D).

    One noise draw (seeded) serves every step, x_s = sqrt(alpha-bar) x_0 + sqrt(1 - alpha-bar) noise, so each point
    slides along a straight line from its data position towards its own noise sample and the panels evolve smoothly.
    """
    x0 = torch.as_tensor(np.asarray(points), dtype=torch.float32, device=schedule.device)  # (N, D)
    generator = torch.Generator(schedule.device).manual_seed(seed)
    noise = torch.randn(x0.shape, generator=generator, device=schedule.device)
    states = []
    for step in steps:
        if not 0 <= step <= len(schedule):
            raise UsageError(f"a forward step must be between 0 and {len(schedule)}, got {step}")
        t = torch.full((len(x0),), step - 1, device=schedule.device, dtype=torch.long)
        states.append(x0 if step == 0 else schedule.add_noise(x0, noise, t))
    return torch.stack(states).cpu().numpy()


def forward_labels(steps: Sequence[int]) -> list[str]:
    """Panel titles of forward states: "t = 0 (data)", "t = 100", ..."""
    return [f"t = {s} (data)" if s == 0 else f"t = {s}" for s in steps]


@dataclass
class ReverseStates:
    """Evenly spaced states of one reverse-process run, in the data's units."""

    states: np.ndarray  # (K, N, D): the initial noise first, the samples last
    timesteps: list[int]  # the step t of each state: T for the noise, 0 for the samples
    num_timesteps: int  # T

    def labels(self) -> list[str]:
        """Panel titles: "t = 500 (noise)", ..., "t = 0 (samples)"."""
        T = self.num_timesteps
        return [
            f"t = {t} (noise)" if t == T else f"t = {t} (samples)" if t == 0 else f"t = {t}" for t in self.timesteps
        ]

    def captions(self) -> list[str]:
        """Animation captions: "step 500 / 500", ..., "step 0 / 500"."""
        return [f"step {t} / {self.num_timesteps}" for t in self.timesteps]


def reverse_states(
    model: Diffusion,
    num: int,
    count: int,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    seed: int = 0,
) -> ReverseStates:
    """Sample ``num`` points and keep ``count`` states evenly spaced over the sampler's steps (noise first); the
    sampling left out is the run's own."""
    how = resolve_sampling(model.config, sampler, steps, eta)
    total = sampler_steps(len(model.schedule), how.sampler, how.steps)
    chosen = evenly_spaced(total, count)  # sampler steps done at each kept state
    every = math.gcd(*chosen)  # record this often and every chosen state is among the recorded ones
    trajectory = model.draw(num, how, seed=seed, record_every=every)
    kept = [i for i, d in enumerate(range(0, total + 1, every)) if d in chosen]
    return ReverseStates(trajectory.states[kept], [int(trajectory.timesteps[i]) for i in kept], len(model.schedule))


def predicted_x0(model: Diffusion, result: ReverseStates) -> np.ndarray:
    """The model's estimate of x_0 from each state of a reverse process (the samples themselves at t = 0), clipped
    as the sampler clips it, in the data's units: what the network "sees" through the noise at each step."""
    return np.stack(
        [state if t == 0 else model.predict_x0(state, t - 1) for state, t in zip(result.states, result.timesteps)]
    )


def class_samples(
    model: Diffusion,
    per_class: int,
    *,
    guidance: float | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """(K, per_class, *shape): ``per_class`` samples of each of a conditional run's K classes, in the data's units,
    under guidance ``guidance`` (default: the run's). The same seed starts every guidance scale from the same noise."""
    if not model.classes:
        raise UsageError("this run is not conditional: it has no classes to draw; train one with --conditional")
    k = len(model.classes)
    labels = np.repeat(np.arange(k), per_class)  # (K * per_class,): class 0 first
    samples = model.sample(
        k * per_class, sampler=sampler, steps=steps, eta=eta, seed=seed, labels=labels, guidance=guidance
    )
    return samples.reshape(k, per_class, *model.shape)
