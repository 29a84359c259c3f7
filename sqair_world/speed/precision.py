"""Numeric speed switches: denormal flushing, bfloat16 detection, bfloat16 autocast and reduced-precision matmuls.

- :func:`flush_denormals`: presence logits of absent slots are masked to -88 (reference §2.3), so sigmoid and
  softplus produce values near 6e-39, below float32's smallest normal number; denormal operands make MKL's
  matrix products several times slower, and flushing them to zero changes nothing a float32 sum could see.
- :func:`reduced_precision_matmul`: float32 products computed internally in bfloat16 (oneDNN on CPUs with
  AVX512-BF16 or AMX) or TF32 (CUDA); tensors, samples, log-densities and the bound stay float32.
- :func:`mixed_precision`: bfloat16 autocast; the model keeps samples, log-densities, the canvas and the
  likelihood in float32 (the distribution functions promote their inputs, ``SQAIR.render`` leaves autocast).

docs/benchmarks.md has the measurements, docs/moving_mnist.md ("Reduced precision") the learning curves.
"""

from __future__ import annotations

import torch


def flush_denormals() -> bool:
    """Treat denormal floats as zero on the CPU (this thread and the threads it starts). Returns whether the CPU
    supports it (x86 with SSE3)."""
    return torch.set_flush_denormal(True)


def reduced_precision_matmul(enable: bool = True) -> None:
    """Process-wide: float32 matmuls in bfloat16 on the CPU (oneDNN) and TF32 on CUDA (``enable``), or IEEE."""
    torch.backends.mkldnn.matmul.fp32_precision = "bf16" if enable else "ieee"
    torch.backends.cuda.matmul.fp32_precision = "tf32" if enable else "ieee"


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN computes bfloat16 natively on this CPU (AVX512-BF16 or AMX); without it bfloat16 products are
    emulated and far slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def require_native_bf16(device: torch.device | str, option: str) -> None:
    """Refuse a bfloat16 option (``option``, named in the message) on a CPU without native bfloat16."""
    if torch.device(device).type == "cpu" and not cpu_has_native_bf16():
        raise ValueError(
            f"{option} computes in bfloat16, which this CPU does not support natively (no AVX512-BF16 or AMX), so it "
            "runs slower than float32 here. Leave it off on this machine (it is meant for CPUs with native bfloat16 "
            "and for GPUs)."
        )


def mixed_precision(device: torch.device | str, enabled: bool = True) -> torch.autocast:
    """Context manager: bfloat16 autocast on ``device``'s type (CPU or CUDA), or a no-op when not ``enabled``."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


__all__ = [
    "cpu_has_native_bf16",
    "flush_denormals",
    "mixed_precision",
    "reduced_precision_matmul",
    "require_native_bf16",
]
