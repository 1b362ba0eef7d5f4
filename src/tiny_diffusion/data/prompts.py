"""Prompts: the words a user asks a conditional run for, turned into class labels.

A run knows its classes by name (``"0"`` to ``"9"`` for digits; ``dino``, ``ring``, ... for shapes). A prompt is
one of those names (any case), or, for a run on digits, a digit's English name ("seven") or a number ("2024"),
which is drawn digit by digit and set side by side as one image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import UsageError

__all__ = ["DIGIT_WORDS", "MAX_GLYPHS", "parse_prompt", "is_digit_classes", "known_prompts", "side_by_side"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAX_GLYPHS = 12  # digits in a number prompt: one image 12 x 28 = 336 pixels wide at most


def is_digit_classes(classes: Sequence[str]) -> bool:
    """Whether the classes are the ten digits "0" to "9" in order (image datasets of digits)."""
    return tuple(classes) == tuple(str(d) for d in range(10))


def known_prompts(classes: Sequence[str]) -> str:
    """What a run with these classes can be asked for, in words (for error messages and help)."""
    if is_digit_classes(classes):
        return "a digit 0-9, its name (zero ... nine), or a number of up to 12 digits such as 2024"
    return ", ".join(classes)


def parse_prompt(prompt: str, classes: Sequence[str]) -> list[int]:
    """The class labels a prompt asks for, one per glyph: ``[7]`` for "7" or "seven", ``[2, 0, 2, 4]`` for "2024",
    ``[k]`` for the k-th class name. Anything else fails with one line listing what is known."""
    text = prompt.strip().lower()
    names = [name.lower() for name in classes]
    if text in names:
        return [names.index(text)]
    if is_digit_classes(classes):
        if text in DIGIT_WORDS:
            return [DIGIT_WORDS.index(text)]
        if text and text.isascii() and text.isdigit():
            if len(text) > MAX_GLYPHS:
                raise UsageError(f"prompt {prompt!r} has {len(text)} digits; at most {MAX_GLYPHS} fit in one image")
            return [int(ch) for ch in text]
    raise UsageError(f"unknown prompt {prompt!r}; this run knows {known_prompts(classes)}")


def side_by_side(images: np.ndarray) -> np.ndarray:
    """(N, K, C, H, W) -> (N, C, H, K * W): each sample's K images (a number's digits) joined left to right."""
    n, k, c, h, w = images.shape
    return images.transpose(0, 2, 3, 1, 4).reshape(n, c, h, k * w)
