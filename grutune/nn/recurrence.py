"""The GRU recurrence for K stacked members, with our own forward and backward.

``gru_recurrence(gi, w_hh, b_hh)`` runs the recurrence over precomputed input
projections ``gi = x @ W_ih^T + b_ih`` for K members at once:

    gi [K, T, B, 3H], w_hh [K, 3H, H], b_hh [K, 3H]  ->  h [K, T, B, H]

with nn.GRU's equations and gate order (r, z, n) and a zero initial state. The
single-trial GRU (``FastGRU``, K = 1) and the population (``population.py``, K members)
both call it.

Why our own: on the CPU, ``nn.GRU``'s backward is autograd over a dozen small operators
per time step, each with its dispatch and allocation. Here the forward keeps the four
gate tensors; the backward runs only the hidden-state recursion step by step (one
batched [B, 3H] x [3H, H] product and one fused gate loop per step) and computes the
recurrent weight gradient with a single product over all steps, as cuDNN does. The
step loops are C++ (``csrc/gru_cpu.cpp``), compiled on first use with PyTorch's
extension builder and cached; where that is not possible (no compiler, or tensors on a
GPU) a plain PyTorch loop with autograd computes the same values.

>>> import torch
>>> gi, w, b = torch.randn(2, 5, 3, 12), torch.randn(2, 12, 4), torch.randn(2, 12)
>>> h = gru_recurrence(gi, w, b)
>>> h.shape
torch.Size([2, 5, 3, 4])
>>> torch.allclose(h, reference_recurrence(gi, w, b), atol=1e-5)
True
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

log = logging.getLogger("grutune")

_SOURCE = Path(__file__).parent / "csrc" / "gru_cpu.cpp"
# what the gate loop wants from a GCC-compatible compiler, in this order (the order is
# part of torch's build hash): -march=native on x86 and GCC, -mcpu=native where only that
# exists (clang on Arm); -ffast-math vectorizes exp; -mno-recip keeps GCC on x86 from
# dividing by a reciprocal estimate in vectorized float code, which -ffast-math allows
# there: with it sigmoid(40) was 1 - 6e-8 and tanh(20) 1 - 1.2e-7 on an AVX2 CPU, never
# exactly saturated, and weights scaled by 1e4 turned that one ulp into gradients 3e-4
# away from nn.GRU's (no slower: 60.6 against 62.9 ms for a 316 x 64 x 64 forward and
# backward, side by side). Each is kept only if the compiler found accepts it
# (``compile_flags``).
_GCC_FLAGS = ("-O3", ("-march=native", "-mcpu=native"), "-ffast-math", "-mno-recip",
              "-fopenmp-simd")
_MSVC_FLAGS = ["/O2", "/fp:fast"]  # Windows: torch builds with cl, which knows no -O3
_lock = threading.Lock()
_state: dict[str, ModuleType | None] = {}


def cpu_kernel() -> ModuleType | None:
    """The compiled C++ step loops, built on first call (about 20 s) and cached on disk.

    None when they cannot be built (no C++ compiler) or ``GRUTUNE_NO_KERNEL=1`` is set;
    callers then use ``reference_recurrence``.
    """
    with _lock:
        if "kernel" not in _state:
            _state["kernel"] = _build()
        return _state["kernel"]


# glibc mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Let glibc reuse freed memory instead of returning it to the system at once.

    A training step allocates tens to hundreds of MB of activations (gates, projections)
    and frees them; by default glibc serves large blocks with fresh ``mmap`` pages and
    trims the heap after each free, so every step pays a page fault per 4 KB touched —
    measured here as half the recurrence's time (16.0 -> 7.2 ms forward for 316 steps x
    64 rows). Here every block comes from the heap and freed memory stays for reuse. The
    cost: the process keeps its peak memory. False where this is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def _ninja_on_path() -> None:
    """Put the ``ninja`` package's binary first on PATH: torch builds extensions with
    the ``ninja`` it finds there, and a virtual environment run without activating it
    (``.venv/bin/grutune``) would otherwise find none."""
    try:
        import ninja
    except ImportError:
        return
    path = os.environ.get("PATH", "")
    if ninja.BIN_DIR not in path.split(os.pathsep):
        os.environ["PATH"] = ninja.BIN_DIR + (os.pathsep + path if path else "")


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """An OS lock around torch's build (or load) of the kernel in ``folder``.

    torch's own lock is a file, ``lock``, that a process killed while it builds leaves
    behind; every later build then waits for it forever (a hung ``grutune tune`` after
    a Ctrl-C or a kill during the first run). The OS releases this lock when its holder
    dies, and every grutune process takes it before torch's, so the holder knows that a
    ``lock`` file left there is stale and removes it. Where there is no ``fcntl``
    (Windows) torch's lock works alone.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / "grutune.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (folder / "lock").unlink(missing_ok=True)  # left by a build killed midway
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build() -> ModuleType | None:
    keep_freed_memory()
    if os.environ.get("GRUTUNE_NO_KERNEL") == "1":
        return None
    _ninja_on_path()
    try:
        from torch.utils.cpp_extension import load

        from grutune.compat import extension_build_directory  # imports Optuna: only here

        name = f"grutune_gru_cpu_{_cpu_tag()}"
        with _build_lock(extension_build_directory(name)):
            return load(name=name, sources=[str(_SOURCE)], extra_cflags=compile_flags(),
                        verbose=False)
    except Exception as exc:  # noqa: BLE001 - any build failure means: use the fallback
        log.warning("the C++ GRU kernel could not be built (%s); using the slower plain "
                    "PyTorch recurrence", str(exc).splitlines()[0] if str(exc) else exc)
        return None


def compile_flags(compiler: str | None = None, system: str | None = None) -> list[str]:
    """The kernel's compiler flags, suited to the compiler torch will build with (``CXX``,
    else ``c++``; ``cl`` on Windows): each wanted flag is tried on an empty program and
    kept only if the compiler accepts it without a warning, so an older or different
    compiler builds a slower kernel rather than none.

    >>> compile_flags(system="Windows")
    ['/O2', '/fp:fast']
    """
    if (system or platform.system()) == "Windows":
        return list(_MSVC_FLAGS)
    compiler = compiler or os.environ.get("CXX", "c++")
    flags = []
    for wanted in _GCC_FLAGS:
        choices = wanted if isinstance(wanted, tuple) else (wanted,)
        flags += next(([f] for f in choices if _accepts(compiler, f)), [])
    return flags


@functools.cache
def _accepts(compiler: str, flag: str) -> bool:
    """Whether ``compiler`` compiles an empty program with ``flag`` (warnings as errors:
    clang only warns about a flag it ignores)."""
    with tempfile.TemporaryDirectory(prefix="grutune-flags-") as folder:
        source = Path(folder) / "probe.cpp"
        source.write_text("int main() { return 0; }\n")
        try:
            done = subprocess.run([compiler, flag, "-Werror", "-c", str(source), "-o",
                                   str(Path(folder) / "probe.o")], capture_output=True,
                                  timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0


def _cpu_tag() -> str:
    """A short hash of this CPU's instruction-set flags: the build uses ``-march=native``,
    so a cache shared between different machines must not hand one's binary to another."""
    flags = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags += line
                break
    except OSError:
        pass
    return hashlib.sha256(flags.encode()).hexdigest()[:8]


class _Recurrence(torch.autograd.Function):
    """Autograd wrapper around the C++ forward/backward."""

    @staticmethod
    def forward(ctx, gi: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
        kernel = cpu_kernel()
        out, saved = kernel.forward(gi.contiguous(), w_hh.contiguous(), b_hh.contiguous())
        ctx.save_for_backward(out, saved, w_hh)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, saved, w_hh = ctx.saved_tensors
        d_gi, d_w, d_b = cpu_kernel().backward(grad_out, out, saved, w_hh)
        return d_gi, d_w, d_b


def reference_recurrence(gi: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """The same recurrence in plain PyTorch (any device; autograd does the backward).

    Steps come from ``unbind`` (indexing ``gi[:, t]`` would make autograd write a
    full-size zero gradient for every step).
    """
    k, _, b, h3 = gi.shape
    hidden = h3 // 3
    h = gi.new_zeros(k, b, hidden)  # [K, B, H]
    w_t = w_hh.transpose(1, 2)  # [K, H, 3H]
    outs = []
    for gi_t in gi.unbind(1):  # [K, B, 3H]
        gh = torch.baddbmm(b_hh.unsqueeze(1), h, w_t)  # [K, B, 3H]
        i_r, i_z, i_n = gi_t.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = n + z * (h - n)
        outs.append(h)
    return torch.stack(outs, dim=1)  # [K, T, B, H]


def gru_recurrence(gi: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """h [K, T, B, H] from gi [K, T, B, 3H], w_hh [K, 3H, H], b_hh [K, 3H]."""
    if (gi.device.type == "cpu" and gi.dtype in (torch.float32, torch.float64)
            and cpu_kernel() is not None):
        return _Recurrence.apply(gi, w_hh, b_hh)
    return reference_recurrence(gi, w_hh, b_hh)


_plain = {"depth": 0}  # > 0 inside plain_gru()


@contextlib.contextmanager
def plain_gru() -> Iterator[None]:
    """Inside this block FastGRU runs as ``nn.GRU`` itself (standard, exportable
    operators; the same maths)."""
    _plain["depth"] += 1
    try:
        yield
    finally:
        _plain["depth"] -= 1


class FastGRU(nn.GRU):
    """``nn.GRU`` (one layer, one direction, zero initial state) with our recurrence on
    the CPU; same parameters and state-dict keys, so it loads and saves like ``nn.GRU``.

    Input and output are time-major: [T, B, E] -> ([T, B, H], None). On a GPU it is
    ``nn.GRU`` itself (cuDNN).

    >>> gru = FastGRU(4, 3)
    >>> x = torch.randn(6, 2, 4)
    >>> torch.allclose(gru(x)[0], nn.GRU.forward(gru, x)[0], atol=1e-5)
    True
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)

    def forward(self, x: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if (x.device.type != "cpu" or hx is not None or _plain["depth"]
                or cpu_kernel() is None):
            return super().forward(x, hx)
        t, b, _ = x.shape
        # all steps' input projections in one product: [T*B, E] x [E, 3H]
        gi = torch.addmm(self.bias_ih_l0, x.reshape(t * b, -1), self.weight_ih_l0.t())
        h = gru_recurrence(gi.view(1, t, b, -1), self.weight_hh_l0.unsqueeze(0),
                           self.bias_hh_l0.unsqueeze(0))  # [1, T, B, H]
        return h[0], None
