"""CPU/GPU speed switches for training and evaluation, kept out of the model maths.

- :func:`flush_denormals`: presence logits of absent slots are masked to -88 (reference §2.3), so
  sigmoid/softplus produce values near 6e-39, below float32's smallest normal number. Denormal
  operands make MKL's matrix products several times slower: a training iteration of MLP-SQAIR took
  1.13 s with them and 0.70 s without (bench/bench_model.py, 2 threads). Flushing them to zero
  changes nothing a float32 sum could see.
- :func:`reduced_precision_matmul`: float32 matrix products computed internally in bfloat16 (oneDNN on
  CPUs with AMX / avx512_bf16) or TF32 (CUDA). Tensors stay float32, so samples, log-densities and
  the bound are computed in float32; only the products lose mantissa bits (about 3 significant
  digits). Opt-in (``TrainConfig.fast_matmul``); docs/training.md shows the learning curves, and that on
  a 2-core Xeon it is slower than float32 at this model's matrix sizes (it pays on GPUs, as TF32).
- :func:`mixed_precision`: bfloat16 autocast (``TrainConfig.autocast``). Linear layers and their products run
  in bfloat16; the model keeps samples, log-densities, the canvas and the likelihood in float32 (the
  distribution functions promote their inputs, ``SQAIR.render`` leaves autocast).
- :func:`sqair_world.model.nn.row_compaction` (on by default, for steps over >= 128 rows, at most 80% of them active):
  eager slot steps run only on the rows where the slot exists (:class:`sqair_world.model.nn.RowSubset`). On the
  shipped moving-MNIST model's training batches that is 28.6 of 72.7 GFLOP per iteration; compiled steps
  (static shapes) compute every row.
- :func:`accelerate`: ``torch.compile`` of the per-frame step, which fuses the few hundred small
  element-wise ops of a frame into a few dozen kernels. Opt-in (``TrainConfig.compile``).
"""

from __future__ import annotations

import torch
from torch import nn


def flush_denormals() -> bool:
    """Treat denormal floats as zero on the CPU (this thread and the threads it starts). Returns whether
    the CPU supports it (x86 with SSE3)."""
    return torch.set_flush_denormal(True)


def reduced_precision_matmul(enable: bool = True) -> None:
    """Process-wide: float32 matmuls in bfloat16 on the CPU (oneDNN) and TF32 on CUDA (``enable``), or IEEE float32."""
    torch.backends.mkldnn.matmul.fp32_precision = "bf16" if enable else "ieee"
    torch.backends.cuda.matmul.fp32_precision = "tf32" if enable else "ieee"


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN computes bfloat16 natively on this CPU (AVX512-BF16 or AMX). Without it bfloat16 products
    are emulated and far slower than float32: on a 2-core AVX2-only EPYC a 2048x2048 product ran at 0.3 GFLOP/s
    in bfloat16 against 131 in float32, and an autocast training iteration (batch 32, K 5, T 10) took 7-15 s
    instead of 1.1-1.7 s."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def require_native_bf16(device: torch.device | str, option: str) -> None:
    """Refuse a bfloat16 option (``option``, named in the message) on a CPU without native bfloat16."""
    if torch.device(device).type == "cpu" and not cpu_has_native_bf16():
        raise ValueError(
            f"{option} computes in bfloat16, which this CPU does not support natively (no AVX512-BF16 "
            f"or AMX), so it runs slower than float32 here (autocast training 7-10 times slower). Leave it off on "
            f"this machine (it is meant for CPUs with AMX and for GPUs)."
        )


def mixed_precision(device: torch.device | str, enabled: bool = True) -> torch.autocast:
    """Context manager: bfloat16 autocast on ``device``'s type (CPU or CUDA), or a no-op when not ``enabled``."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def accelerate(model: nn.Module, dynamic: bool | None = False, cpp_wrapper: bool = False) -> nn.Module:
    """``torch.compile`` the model's ``step``, the per-frame function its ``forward`` and ``online_step`` call, in place.

    ``dynamic=False`` (training): one graph per batch size, plus one for the first frame, compiled on first
    use (20-120 s on 2 CPU cores; inductor caches the kernels on disk). ``None`` (env wrappers, whose row
    subsets vary): torch's automatic dynamic shapes after the first recompilation. ``state_dict`` is
    unchanged: the compiled step is an instance attribute over the plain method.

    ``cpp_wrapper`` (inference on CPU, the env wrappers): inductor calls its kernels from generated C++
    instead of Python. A step runs hundreds of tiny kernels, so the Python launches matter: on a 2-core
    EPYC one online Pac-Man step took 3.4 ms against 4.6 ms (compilation 4.4 min against 3.1 min).
    """
    options = {"cpp_wrapper": True} if cpp_wrapper else None
    model.step = torch.compile(type(model).step.__get__(model), dynamic=dynamic, options=options)
    return model


__all__ = [
    "accelerate",
    "cpu_has_native_bf16",
    "flush_denormals",
    "mixed_precision",
    "reduced_precision_matmul",
    "require_native_bf16",
]
