"""The ``tiny-diffusion`` command: a thin layer over the library (``main`` parses, validates once and calls it)."""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
