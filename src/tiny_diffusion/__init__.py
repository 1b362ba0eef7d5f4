"""Tiny Diffusion: small, readable probabilistic diffusion models (DDPM) for point sets."""

from .errors import UsageError
from .schedule import NoiseSchedule

__version__ = "0.1.0"
__all__ = ["NoiseSchedule", "UsageError", "__version__"]
