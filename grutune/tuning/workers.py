"""Trials in parallel on one machine: N forked worker processes, one thread each, one study.

A small GRU gains almost nothing from a second thread, so on a CPU the cheapest way to
more trials per hour is one single-thread trial per core. Workers are forked *after* the
data is prepared, so they share the parent's tensors (copy-on-write pages that nobody
writes) instead of preparing N copies. Each worker opens its own connection to the study's
storage (Optuna's journal file by default, or the user's ``--storage``) and runs
``study.optimize`` until the trial count or the budget is reached; the study itself keeps
every trial exactly once.

On CUDA the default is one worker per visible GPU (``nn.device.gpu_workers``), and each
worker is pinned to its GPU (``CUDA_VISIBLE_DEVICES``, set in the worker before anything
there initializes CUDA; the parent never initializes it before forking). More workers
than GPUs share them round robin: several small trials on one GPU.

Signals: workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group);
the parent forwards SIGTERM instead — the first stops each worker after its current
epoch, a second stops it at once. A worker whose parent dies is killed with it (Linux
``PR_SET_PDEATHSIG``), so a killed run leaves no orphans behind.

>>> import os
>>> default_workers() == max(1, len(os.sched_getaffinity(0)))
True

Supported platforms: Linux (and the BSDs) run N workers; on macOS and Windows a
study runs its trials in one process (``usable_workers``), with everything else the
same.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import platform
import signal
import time
from collections.abc import Callable

import torch

from grutune.nn.device import pin_worker

PR_SET_PDEATHSIG = 1
log = logging.getLogger("grutune")


def fork_safe(system: str | None = None) -> bool:
    """Whether trial workers can be forked here. Linux and the BSDs fork; macOS has
    ``fork``, but a process that forks after its math libraries started threads can
    crash there (Python itself defaults to spawn on macOS); Windows has no fork.

    >>> fork_safe("Windows"), fork_safe("Darwin"), fork_safe("Linux")
    (False, False, True)
    """
    system = system or platform.system()
    return system in ("Linux", "FreeBSD", "OpenBSD", "NetBSD")


def usable_workers(requested: int | None, system: str | None = None) -> int:
    """The trial workers to run: ``requested`` (None or 0: one per core) where workers
    can be forked; elsewhere one, with a warning when more were asked for. Workers are
    forked rather than spawned on purpose: they share the prepared tensors and the
    study's closures, which a spawned process would have to prepare again.
    """
    if fork_safe(system):
        return requested or default_workers()
    if requested and requested > 1:
        log.warning("--workers %d: trial workers need fork, which %s does not offer "
                    "safely; running the trials in this one process", requested,
                    system or platform.system())
    return 1


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # elsewhere workers check their parent in should_stop


def _child(index: int, work: Callable[[int], int]) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin_worker(index)  # on CUDA: this worker's GPU, before anything here initializes CUDA
    torch.set_num_threads(1)
    os._exit(work(index))  # no atexit handlers inherited from the parent


def run_workers(n: int, work: Callable[[int], int], poll: Callable[[], None],
                interval: float = 1.0,
                notify: Callable[[int], None] = lambda count: None) -> list[int]:
    """Fork ``n`` processes running ``work(index)``; call ``poll`` while they run.

    Returns the workers' exit codes. ``work`` returns 0 when done, 130 when stopped by
    a signal. A first SIGINT/SIGTERM to the parent is forwarded once as SIGTERM (stop
    after the epoch); a second forwards another (stop now) and raises KeyboardInterrupt.
    ``notify(count)`` is told of each signal (to tell the user what happens next).
    """
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_child, args=(i, work), name=f"grutune-worker-{i}")
             for i in range(n)]
    for p in procs:
        p.start()
    signals = {"count": 0}

    def forward(signum: int, frame: object) -> None:
        signals["count"] += 1
        notify(signals["count"])
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)
        if signals["count"] > 1:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(p.is_alive() for p in procs):
            poll()
            time.sleep(interval)
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for p in procs:
            p.join()
    poll()
    return [p.exitcode if p.exitcode is not None else 1 for p in procs]


def parent_alive(parent: int) -> bool:
    """False once the process that forked this worker is gone (re-parented)."""
    return os.getppid() == parent
