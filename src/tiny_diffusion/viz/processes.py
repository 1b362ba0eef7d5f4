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

from ..core import flow
from ..core.schedule import NoiseSchedule
from ..diffusion import Diffusion, resolve_sampling, sampler_steps
from ..errors import UsageError

__all__ = [
    "evenly_spaced",
    "forward_states",
    "forward_labels",
    "flow_forward_states",
    "time_label",
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


def flow_forward_states(points: np.ndarray, times: Sequence[float], *, seed: int = 0) -> np.ndarray:
    """x_t = (1 - t) x_0 + t noise of (N, D) points at each flow time of ``times`` in [0, 1], as (K, N, D): the
    flow's forward path, one noise draw (seeded) for every time, so each point moves on its straight line."""
    x0 = torch.as_tensor(np.asarray(points), dtype=torch.float32)  # (N, D)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    return torch.stack([flow.interpolate(x0, noise, torch.full((len(x0),), float(t))) for t in times]).numpy()


def time_label(t: float) -> str:
    """A time as panels show it: a step as it is (t = 250), a flow time to two decimals (t = 0.25)."""
    if isinstance(t, (int, np.integer)) or float(t) in (0.0, 1.0):
        return str(int(t))
    return f"{t:.2f}"


def forward_labels(steps: Sequence[float]) -> list[str]:
    """Panel titles of forward states: "t = 0 (data)", "t = 100", ... (flow times: "t = 0.25", ...)"""
    return [f"t = {time_label(s)} (data)" if s == 0 else f"t = {time_label(s)}" for s in steps]


@dataclass
class ReverseStates:
    """Evenly spaced states of one reverse-process run, in the data's units."""

    states: np.ndarray  # (K, N, D): the initial noise first, the samples last
    timesteps: list[int] | list[float]  # the step t of each state: T for the noise, 0 for the samples (flow: [0, 1])
    num_timesteps: int  # T (a flow run: 1)

    def labels(self) -> list[str]:
        """Panel titles: "t = 500 (noise)", ..., "t = 0 (samples)" (flow: "t = 1 (noise)", "t = 0.50", ...)."""
        T = self.num_timesteps
        ends = {T: " (noise)", 0: " (samples)"}
        return [f"t = {time_label(t)}{ends.get(t, '')}" for t in self.timesteps]

    def captions(self) -> list[str]:
        """Animation captions: "step 500 / 500", ..., "step 0 / 500" (flow: "t = 0.50")."""
        if self.num_timesteps == 1 and any(isinstance(t, float) for t in self.timesteps):
            return [f"t = {t:.2f}" for t in self.timesteps]
        return [f"step {t} / {self.num_timesteps}" for t in self.timesteps]


def reverse_states(
    model: Diffusion,
    num: int,
    count: int,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> ReverseStates:
    """Sample ``num`` points and keep ``count`` states evenly spaced over the sampler's steps (noise first); the
    sampling left out is the run's own (``rtol`` and ``atol``: the ode sampler's tolerances)."""
    how = resolve_sampling(model.config, sampler, steps, eta, rtol=rtol, atol=atol)
    total = sampler_steps(model.config, how)
    chosen = evenly_spaced(total, count)  # sampler steps done at each kept state
    every = math.gcd(*chosen)  # record this often and every chosen state is among the recorded ones
    trajectory = model.draw(num, how, seed=seed, record_every=every)
    kept = [i for i, d in enumerate(range(0, total + 1, every)) if d in chosen]
    times = [float(trajectory.timesteps[i]) if model.is_flow else int(trajectory.timesteps[i]) for i in kept]
    return ReverseStates(trajectory.states[kept], times, trajectory.num_timesteps)


def predicted_x0(model: Diffusion, result: ReverseStates) -> np.ndarray:
    """The model's estimate of x_0 from each state of a reverse process (the samples themselves at t = 0), clipped
    as the sampler clips it, in the data's units: what the network "sees" through the noise at each step."""
    step = 0 if model.is_flow else 1  # step s sits at the schedule's zero-based index s - 1; flow time is itself
    return np.stack(
        [state if t == 0 else model.predict_x0(state, t - step) for state, t in zip(result.states, result.timesteps)]
    )


def class_samples(
    model: Diffusion,
    per_class: int,
    *,
    guidance: float | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """(K, per_class, *shape): ``per_class`` samples of each of a conditional run's K classes, in the data's units,
    under guidance ``guidance`` (default: the run's). The same seed starts every guidance scale from the same noise."""
    if not model.classes:
        raise UsageError("this run is not conditional: it has no classes to draw; train one with --conditional")
    k = len(model.classes)
    labels = np.repeat(np.arange(k), per_class)  # (K * per_class,): class 0 first
    samples = model.sample(
        k * per_class,
        sampler=sampler,
        steps=steps,
        eta=eta,
        rtol=rtol,
        atol=atol,
        seed=seed,
        labels=labels,
        guidance=guidance,
    )
    return samples.reshape(k, per_class, *model.shape)
