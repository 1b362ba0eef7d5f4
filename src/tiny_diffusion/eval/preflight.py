"""Checks of a run's settings before it trains: settings that train, but badly. Each finding is a SettingWarning
(one line, naming the settings to change); the training job issues them through ``warnings.warn``.

- ``terminal_signal``: the share of the data left in x_T, sqrt(alpha-bar_T). Sampling starts from N(0, I) as if
  x_T held no signal; whatever the forward process leaves is missing from every sample, which come out squashed
  toward the centre (the original's T = 50 keeps 78%).
- ``data_scale``: how far point data sit from the unit scale the noise is made for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import SettingWarning

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..core.schedule import NoiseSchedule

__all__ = [
    "MAX_TERMINAL_SIGNAL",
    "MAX_COORDINATE",
    "MIN_SPREAD",
    "terminal_signal",
    "terminal_warning",
    "setting_warnings",
]

# x_T = sqrt(alpha-bar_T) x0 + sqrt(1 - alpha-bar_T) noise. With unit-scale data, a signal of 0.1 is a tenth of the
# noise's standard deviation (1% of the variance) that the sampler, starting from pure noise, never sees: small
# beside the noise, and a bound the project's defaults meet (linear T = 500 leaves 0.08, cosine T = 1000 5e-5)
# while the original's linear T = 50 (0.78) and T = 100 (0.60) are far above it.
MAX_TERMINAL_SIGNAL = 0.1

# Point data not standardized: the defaults are tuned on data of unit scale (every registered set has coordinates
# within 4.4 and a spread of 1.2 to 2.2). A coordinate of 10 keeps 0.08 x 10 = 0.8 of a noise standard deviation at
# x_T under the default schedule, as badly unreached as T = 50 leaves unit data; a spread below 0.1 is buried by
# the noise of the first 4% of the default 500 steps (signal-to-noise 1 at alpha-bar 0.99), leaving the rest of
# the schedule nothing to learn.
MAX_COORDINATE = 10.0
MIN_SPREAD = 0.1


def terminal_signal(schedule: NoiseSchedule) -> float:
    """sqrt(alpha-bar_T): the share of x0 that x_T keeps at the last step."""
    return float(schedule.sqrt_alphas_cumprod[-1])


def terminal_warning(schedule: NoiseSchedule) -> SettingWarning | None:
    """The warning for a forward process that does not reach noise (x_T keeps more than MAX_TERMINAL_SIGNAL of
    x0), or None: what training and ``diagnose`` both say."""
    signal = terminal_signal(schedule)
    if signal <= MAX_TERMINAL_SIGNAL:
        return None
    return SettingWarning(
        f"x_T keeps {signal:.0%} of the signal: samples will be squashed toward the centre; "
        "raise num_timesteps or use beta_schedule cosine",
        "num_timesteps",
        "beta_schedule",
    )


def setting_warnings(config: TrainConfig, schedule: NoiseSchedule, x: np.ndarray) -> list[SettingWarning]:
    """What is wrong with training ``config`` on ``x`` (N, *shape), the training set in the model's coordinates,
    under ``schedule``: empty for settings that train as they should."""
    # a flow run's path ends in pure noise at t = 1 whatever the schedule: only ddpm can stop short of it
    terminal = terminal_warning(schedule) if config.method == "ddpm" else None
    found = [warning for warning in [terminal] if warning is not None]
    if not config.is_images and not config.standardizes:
        reach = float(np.abs(x).max())
        spread = float(np.sqrt(x.var(axis=0).mean()))  # root mean square of the coordinates' standard deviations
        if reach > MAX_COORDINATE or spread < MIN_SPREAD:
            found.append(
                SettingWarning(
                    f"the data's coordinates reach {reach:.3g} with a spread of {spread:.3g}, far from the unit "
                    "scale of the noise: samples will miss the shape; set standardize (or rescale the data)",
                    "standardize",
                )
            )
    return found
