"""Which number format the training matrix products use: bf16 autocast or float32.

Why a choice by device: bf16 autocast only pays where the hardware multiplies bf16
natively (CUDA GPUs; CPUs with AMX tiles, e.g. Xeon Sapphire Rapids and later). On a CPU
without them autocast converts every operand and runs slower than float32
(docs/benchmarks.md has the measurement). Only training runs in bf16: validation,
test and serving always score in float32.
"""

from __future__ import annotations

import contextlib

import torch

from negrec.config import TrainConfig


def cpu_has_bf16_matrix_units() -> bool:
    """True on CPUs with AMX tiles, where oneDNN runs bf16 matmuls natively."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe is not None else False


def training_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The autocast dtype for ``train.precision`` on ``device`` (float32 = no autocast)."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and cpu_has_bf16_matrix_units():
        return torch.bfloat16
    return torch.float32


def autocast_for(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """The context that the training step's forward pass and loss run in."""
    dtype = training_dtype(config.precision, device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
