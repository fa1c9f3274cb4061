"""Out of memory: one rule for telling it apart from other errors, wherever a trial runs.

An out-of-memory error fails one trial (``TrialFailure``, reason recorded) and the study
goes on: a smaller configuration may well fit. The allocators say it differently:

* the exception type: ``torch.OutOfMemoryError`` (= ``torch.cuda.OutOfMemoryError``,
  CUDA and ROCm's caching allocators), Python's ``MemoryError``, ``OSError`` ENOMEM;
* a ``RuntimeError``'s message: the CPU allocator's "DefaultCPUAllocator: can't allocate
  memory" (errno 12, "Cannot allocate memory"), "not enough memory", CUDA's "CUDA error:
  out of memory" (raised outside the caching allocator), MPS's "MPS backend out of
  memory", HIP's "HIP out of memory", cuBLAS / cuDNN's "..._ALLOC_FAILED".

>>> is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
...                     "can't allocate memory: you tried to allocate 24000000000 bytes."))
True
>>> is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
False
"""

from __future__ import annotations

import errno
import gc

import torch

MESSAGES = (
    "out of memory",  # CUDA, HIP, MPS ("MPS backend out of memory"), XPU
    "can't allocate memory",  # DefaultCPUAllocator
    "cannot allocate memory",  # errno 12's text
    "not enough memory",  # DefaultCPUAllocator (other versions), Windows
    "alloc_failed",  # CUBLAS_STATUS_ALLOC_FAILED, CUDNN_STATUS_ALLOC_FAILED
)
_TYPES: tuple[type[BaseException], ...] = tuple(
    {t for t in (getattr(torch, "OutOfMemoryError", None),
                 getattr(torch.cuda, "OutOfMemoryError", None), MemoryError) if t is not None})


def is_oom(err: BaseException) -> bool:
    """True when ``err`` (or an error it was raised from) says memory ran out."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, _TYPES):
            return True
        if isinstance(err, OSError) and err.errno == errno.ENOMEM:
            return True
        if isinstance(err, RuntimeError):
            text = str(err).lower()
            if any(m in text for m in MESSAGES):
                return True
        err, seen = err.__cause__, seen + 1
    return False


def oom_reason(err: BaseException) -> str:
    """One line for the trial's fail_reason: "out of memory: <first line of the error>"."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"out of memory: {first[:300]}"


def release_memory() -> None:
    """Give back what the failed trial held, so the next one starts from a clean slate."""
    gc.collect()
    # is_initialized, not is_available: the latter initializes CUDA's driver, after which
    # forked workers could not use it; a process that never used CUDA holds nothing there
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
