"""The arithmetic of training: fp32, or mixed precision with autocast (bf16, fp16) and fp16's gradient scaler.

Under autocast the weights, the optimiser's moments and the EMA copy stay in fp32; matrix products and convolutions of
the forward pass run in the lower precision, and the loss is reduced in fp32 (autocast's own lists decide, op by op).
fp16 has a narrow exponent range, so its loss is scaled up before ``backward`` and the gradients scaled back before
clipping (``torch.amp.GradScaler``); a step whose gradients overflow is skipped and the scale lowered. bf16 has fp32's
range and needs no scaler. Sampling always runs in fp32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from ..errors import UsageError

__all__ = ["PRECISIONS", "autocast", "check_precision", "grad_scaler"]

# name -> the dtype autocast computes in (None: plain fp32, no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse an unknown precision, or fp16 where it is not meant to run (anywhere but a CUDA GPU)."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise UsageError(f"--precision fp16 needs a CUDA GPU (this run is on {device.type}); use bf16 or fp32")


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context to run the forward pass and the loss in: autocast to the precision's dtype, or nothing for fp32."""
    dtype = PRECISIONS[precision]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16's loss scaler; for the other precisions a disabled one, whose every method passes straight through."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
