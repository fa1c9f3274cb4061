"""Where models train and in what precision: grutune's device logic, in one place.

``--device auto|cpu|cuda|cuda:N|mps`` and ``--precision fp32|bf16|fp16`` become a
``Placement``, the process's current one (``current()``, set for a run by ``placed``).
The trainer reads it: it moves the model and the training split there (the split's
tensors once per process, ``SequenceData.on``), trains under the placement's autocast
(fp16 with a gradient scaler), and hands the model back on the CPU, so checkpoints,
ensembles, bundles and exports never see a device. ``predict`` runs where the model is
and returns CPU outputs.

The recurrent stack on a GPU is stock cuDNN: ``FastGRU`` is ``nn.GRU`` itself off the
CPU (the C++ kernel is CPU-only), and ``nn.LSTM`` is cuDNN's too. Each layer and
direction is one cuDNN call (the backward direction reads each sequence reversed within
its length, which cuDNN's own bidirectional mode would not). Populations have no cuDNN
form (K members with their own weights), so their stacked recurrence runs as plain
PyTorch on a GPU (``recurrence.reference_recurrence``, K members per batched product).

Workers: by default one per visible GPU (``gpu_workers``); each forked worker is pinned
to GPU ``index % n`` (or to the one ``cuda:N`` names) through ``CUDA_VISIBLE_DEVICES``
before anything in it touches CUDA (``pin_worker``). The parent never initializes CUDA
before it forks: GPUs are counted through NVML (``torch.cuda.device_count``), which
leaves fork safe.

>>> current().device, current().precision
(device(type='cpu'), 'fp32')
>>> with placed("cpu"):
...     current().spec
'cpu'
>>> resolve_device("cpu")
'cpu'
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn

from grutune.config import DEVICE_SPEC, PRECISIONS
from grutune.exceptions import ConfigError

log = logging.getLogger("grutune")

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Placement:
    """A resolved device spec (``cpu``, ``cuda``: every visible GPU, ``cuda:N``, ``mps``)
    and a precision."""

    spec: str = "cpu"
    precision: str = "fp32"

    @property
    def device(self) -> torch.device:
        """The torch device this process computes on (``cuda`` -> ``cuda:0``)."""
        device = torch.device(self.spec)
        return device if device.type == "cpu" or device.index is not None else \
            torch.device(device.type, 0)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Mixed precision for a computation on ``device``: autocast to bf16/fp16 when it
        is this placement's device type and the precision asks for it; else nothing."""
        if self.precision == "fp32" or device.type != self.device.type:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16's loss scaler (a pass-through for fp32 and bf16, which need none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")


_state = {"placement": Placement()}


def current() -> Placement:
    """This process's placement (the CPU in float32 unless a run set another)."""
    return _state["placement"]


@contextlib.contextmanager
def placed(spec: str = "cpu", precision: str = "fp32") -> Iterator[Placement]:
    """Train on ``spec`` (resolved: no ``auto``) in ``precision`` inside the block;
    forked workers inherit it."""
    before = _state["placement"]
    _state["placement"] = Placement(spec, precision)
    try:
        yield _state["placement"]
    finally:
        _state["placement"] = before


def gpu_count() -> int:
    """Visible CUDA GPUs, counted without initializing CUDA (NVML), so that workers can
    still be forked and pinned afterwards."""
    return torch.cuda.device_count()


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(spec: str, precision: str = "fp32") -> str:
    """``spec`` checked against this machine: ``auto`` becomes ``cuda`` (a GPU is
    visible), else ``mps`` (Apple's Metal), else ``cpu``. A device asked for but absent,
    or reduced precision off CUDA, is a ConfigError.

    >>> resolve_device("cpu", "fp32")
    'cpu'
    >>> resolve_device("tpu")
    Traceback (most recent call last):
    ...
    grutune.exceptions.ConfigError: --device: must be auto, cpu, cuda, cuda:N or mps; got 'tpu'
    """
    if not isinstance(spec, str) or not DEVICE_SPEC.fullmatch(spec):
        raise ConfigError(f"--device: must be auto, cpu, cuda, cuda:N or mps; got {spec!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision: must be one of {', '.join(PRECISIONS)}; got "
                          f"{precision!r}")
    if spec == "auto":
        spec = "cuda" if gpu_count() > 0 else "mps" if mps_available() else "cpu"
    if spec.startswith("cuda"):
        count = gpu_count()
        if count == 0:
            build = "" if torch.backends.cuda.is_built() else ", a build without CUDA"
            raise ConfigError(f"--device {spec}: no CUDA GPU is visible (torch "
                              f"{torch.__version__}{build}); use --device cpu or auto")
        index = int(spec.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError(f"--device {spec}: {count} CUDA GPU(s) visible, cuda:0 to "
                              f"cuda:{count - 1}")
    if spec == "mps" and not mps_available():
        raise ConfigError("--device mps: Apple's Metal backend is not available here; use "
                          "--device cpu or auto")
    if precision != "fp32" and not spec.startswith("cuda"):
        raise ConfigError(f"--precision {precision}: mixed precision needs a CUDA device "
                          f"(the device is {spec}); off CUDA grutune trains in fp32")
    return spec


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (indices
    or UUIDs), in order."""
    count = gpu_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    return [name.strip() for name in listed.split(",") if name.strip()][:count]


def gpu_workers(spec: str, requested: int | None) -> int | None:
    """Trial workers for a device: ``requested`` if given; else one per visible GPU for
    ``cuda``, one for ``cuda:N`` and ``mps``; None on the CPU (one per core, decided by
    ``tuning.workers``). Forked workers cannot use CUDA once this process has
    initialized it, so then the trials run in this one process, with a warning."""
    if spec == "cpu":
        return requested
    workers = requested or (max(len(visible_gpus()), 1) if spec == "cuda" else 1)
    if workers > 1 and spec.startswith("cuda") and torch.cuda.is_initialized():
        log.warning("--workers %d: CUDA is already initialized in this process, so forked "
                    "workers could not use it; running the trials in this one process",
                    workers)
        return 1
    return workers


def pin_worker(index: int) -> None:
    """In forked worker ``index``, before anything touches CUDA: see only its GPU
    (``CUDA_VISIBLE_DEVICES``), round robin over the visible ones, or the one ``cuda:N``
    names; it is then this worker's ``cuda:0``. Nothing to do off CUDA."""
    place = current()
    if not place.spec.startswith("cuda"):
        return
    gpus = visible_gpus()
    if not gpus:
        return  # the worker's first CUDA call says what is wrong
    _, _, fixed = place.spec.partition(":")
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus[int(fixed) if fixed else index % len(gpus)]
    _state["placement"] = replace(place, spec="cuda:0")


def module_device(module: nn.Module) -> torch.device:
    """Where a module's parameters are (the CPU for one without any)."""
    first = next(iter(module.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def full_precision(outputs: torch.Tensor) -> torch.Tensor:
    """Outputs computed under autocast, back in float32 (others as they are)."""
    return outputs.float() if outputs.dtype in (torch.float16, torch.bfloat16) else outputs


def describe(spec: str, precision: str, workers: int) -> str:
    """The plan's line about the device (empty for the CPU, whose kernel line says it).

    >>> describe("cuda:1", "bf16", 1)
    'Device: cuda:1, one worker; recurrent layers: cuDNN nn.GRU / nn.LSTM; precision bf16.'
    """
    if spec == "cpu":
        return ""
    if spec.startswith("cuda"):
        share = ("one worker" if workers == 1 else
                 f"{workers} workers each pinned to one GPU (CUDA_VISIBLE_DEVICES)"
                 if spec == "cuda" else f"{workers} workers sharing it")
        return (f"Device: {spec}, {share}; recurrent layers: cuDNN nn.GRU / nn.LSTM; "
                f"precision {precision}.")
    return f"Device: {spec} (nn.GRU / nn.LSTM), one worker; precision {precision}."
