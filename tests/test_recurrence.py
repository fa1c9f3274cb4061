"""Numerics of our GRU recurrence (C++ kernel and plain-PyTorch fallback) against nn.GRU."""

import os

import pytest
import torch
from torch import nn

from grutune.nn import recurrence
from grutune.nn.recurrence import (
    FastGRU,
    _Recurrence,
    cpu_kernel,
    gru_recurrence,
    reference_recurrence,
)

needs_kernel = pytest.mark.skipif(cpu_kernel() is None, reason="no C++ compiler here")


def _build_error() -> str:
    """Why the kernel is missing: the extension builder's own error, asked again."""
    if os.environ.get("GRUTUNE_NO_KERNEL") == "1":
        return "GRUTUNE_NO_KERNEL=1 is set"
    from torch.utils.cpp_extension import load

    try:
        load(name="grutune_gru_cpu_check", sources=[str(recurrence._SOURCE)],
             extra_cflags=recurrence._FLAGS, verbose=False)
    except Exception as err:  # noqa: BLE001 - whatever the builder raises is the answer
        return f"{type(err).__name__}: {err}"
    return "it builds when asked again; the first build failed (see the log)"


def test_the_kernel_is_built_where_it_is_required():
    """CI sets GRUTUNE_REQUIRE_KERNEL=1: there a kernel that cannot be built fails this
    test with the build error, instead of the kernel tests being skipped unnoticed."""
    kernel = cpu_kernel()
    if kernel is None:
        if os.environ.get("GRUTUNE_REQUIRE_KERNEL") == "1":
            pytest.fail(f"GRUTUNE_REQUIRE_KERNEL=1 but the C++ GRU kernel could not be "
                        f"built: {_build_error()}")
        pytest.skip("the C++ kernel could not be built (GRUTUNE_REQUIRE_KERNEL=1 fails here)")
    assert callable(kernel.forward) and callable(kernel.backward)


def _loss_weights(out: torch.Tensor) -> torch.Tensor:
    """Random output gradients scaled like a mean loss over steps and rows (so weight
    gradients are O(1), as in training, and 1e-5 is a meaningful float32 tolerance)."""
    steps_rows = out.shape[-3] * out.shape[-2]
    return torch.randn(out.shape, generator=torch.Generator().manual_seed(0),
                       dtype=out.dtype) / steps_rows


def _grads(out: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(out, inputs, _loss_weights(out)))


@pytest.mark.parametrize("steps,batch", [(1, 1), (7, 3), (40, 33), (120, 64)])
def test_fast_gru_matches_nn_gru_float32(steps, batch):
    torch.manual_seed(steps)
    gru = FastGRU(12, 16)
    x = torch.randn(steps, batch, 12, requires_grad=True)
    ours = gru(x)[0]
    theirs = nn.GRU.forward(gru, x)[0]
    assert ours.shape == (steps, batch, 16)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    params = [x, *gru.parameters()]
    for a, b in zip(_grads(ours, params), _grads(theirs, params), strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (a - b).abs().max()


@needs_kernel
@pytest.mark.parametrize("scale", [10.0, 100.0, 1e4])
def test_saturated_gates_match_nn_gru_without_nan(scale):
    """Large weights and inputs (a high learning rate's) saturate every gate; exp
    overflowed there under -ffast-math and gave NaN where nn.GRU gives 0 and 1."""
    torch.manual_seed(0)
    gru = FastGRU(16, 32)
    with torch.no_grad():
        for p in gru.parameters():
            p.mul_(scale)
    x = (torch.randn(50, 8, 16) * scale).requires_grad_()
    ours, theirs = gru(x)[0], nn.GRU.forward(gru, x)[0]
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    params = [x, *gru.parameters()]
    for a, b in zip(_grads(ours, params), _grads(theirs, params), strict=True):
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()


@needs_kernel
def test_saturated_gates_are_exactly_their_limits():
    """Gates far past saturation are exactly 0, 1 or -1, as in nn.GRU: a reciprocal
    estimate for the division (GCC's default for vectorized floats under -ffast-math on
    x86, now off with -mno-recip) left them one ulp short, and large weights turned that
    ulp into gradients 3e-4 off where nn.GRU's are 0."""
    torch.manual_seed(0)
    gru = FastGRU(16, 32)
    with torch.no_grad():
        for p in gru.parameters():
            p.mul_(1e4)
    x = torch.randn(20, 4, 16) * 1e4
    ours = gru(x)[0]
    assert torch.equal(ours, nn.GRU.forward(gru, x)[0])
    assert set(ours.unique().tolist()) <= {-1.0, 0.0, 1.0}


@needs_kernel
@pytest.mark.parametrize("where", ["input", "weight_hh", "bias_ih"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_arguments_make_the_output_nan(where, value):
    """The clamp above must not hide diverged weights or inputs: they give NaN (so the
    trainer fails the trial), never a finite output."""
    torch.manual_seed(0)
    gru = FastGRU(16, 32)
    x = torch.randn(20, 8, 16)  # [T, B, C]
    clean = gru(x)[0].detach()
    with torch.no_grad():
        {"input": x[3, 2], "weight_hh": gru.weight_hh_l0[4],
         "bias_ih": gru.bias_ih_l0[40:41]}[where].fill_(value)
    out = gru(x)[0].detach()
    if where != "input":
        assert torch.isnan(out).all()
        return
    # a bad input value fails its own row only: the other rows' outputs do not change
    assert torch.isnan(out[:, 2]).all()
    others = [b for b in range(8) if b != 2]
    assert torch.equal(out[:, others], clean[:, others])


@needs_kernel
def test_kernel_is_exact_in_float64():
    torch.manual_seed(0)
    k, t, b, h = 3, 9, 5, 4
    gi = torch.randn(k, t, b, 3 * h, dtype=torch.float64, requires_grad=True)
    w = torch.randn(k, 3 * h, h, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(k, 3 * h, dtype=torch.float64, requires_grad=True)
    ours = _Recurrence.apply(gi, w, bias)
    theirs = reference_recurrence(gi, w, bias)
    assert torch.allclose(ours, theirs, atol=1e-12)
    for a, b_ in zip(_grads(ours, [gi, w, bias]), _grads(theirs, [gi, w, bias]), strict=True):
        assert torch.allclose(a, b_, atol=1e-12)


@needs_kernel
def test_gradcheck_in_float64():
    torch.manual_seed(1)
    gi = torch.randn(2, 4, 3, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 6, 2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_Recurrence.apply, (gi, w, bias))


@pytest.mark.parametrize("threads", [1, 2])
def test_every_member_matches_its_own_nn_gru(threads):
    """K members in one call == K separate nn.GRUs with the same weights (1e-5, float32),
    whatever the number of threads the rows are split over."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(2)
        k, t, b, e, h = 4, 30, 17, 6, 8
        grus = [nn.GRU(e, h) for _ in range(k)]
        x = torch.randn(k, t, b, e, requires_grad=True)
        w_ih = torch.stack([g.weight_ih_l0 for g in grus]).detach().requires_grad_()
        b_ih = torch.stack([g.bias_ih_l0 for g in grus]).detach().requires_grad_()
        w_hh = torch.stack([g.weight_hh_l0 for g in grus]).detach().requires_grad_()
        b_hh = torch.stack([g.bias_hh_l0 for g in grus]).detach().requires_grad_()
        gi = torch.baddbmm(b_ih.unsqueeze(1), x.reshape(k, t * b, e), w_ih.transpose(1, 2))
        ours = gru_recurrence(gi.view(k, t, b, 3 * h), w_hh, b_hh)  # [K, T, B, H]
        g_ours = _grads(ours, [x, w_ih, w_hh, b_ih, b_hh])  # nn.GRU's parameter order
        for i, gru in enumerate(grus):
            xi = x[i].detach().requires_grad_()
            theirs = gru(xi)[0]
            assert torch.allclose(ours[i], theirs, atol=1e-5)
            weights = _loss_weights(ours)[i]
            g_theirs = torch.autograd.grad(theirs, [xi, *gru.parameters()], weights)
            mine = [g_ours[0][i], g_ours[1][i], g_ours[2][i], g_ours[3][i], g_ours[4][i]]
            for a, b_ in zip(mine, g_theirs, strict=True):
                assert torch.allclose(a, b_, atol=1e-5, rtol=1e-5), (a - b_).abs().max()
    finally:
        torch.set_num_threads(before)


def test_fast_gru_state_dict_is_nn_grus():
    gru = FastGRU(3, 2)
    plain = nn.GRU(3, 2)
    plain.load_state_dict(gru.state_dict())
    assert set(gru.state_dict()) == set(plain.state_dict())


def test_the_ninja_package_builds_the_kernel_without_a_system_ninja(monkeypatch):
    """ninja is a dependency: a venv run without activating it (PATH without its bin/)
    still finds the ninja that torch builds the kernel with."""
    import shutil
    from pathlib import Path

    import ninja

    from grutune.nn.recurrence import _ninja_on_path

    monkeypatch.setenv("PATH", "/nonexistent")
    assert shutil.which("ninja") is None
    _ninja_on_path()
    assert shutil.which("ninja") == str(Path(ninja.BIN_DIR) / "ninja")


def test_a_build_lock_left_by_a_killed_build_does_not_hang_the_next_run(tmp_path):
    """torch's build lock is a plain file that a process killed mid-build leaves behind
    (every later build used to wait for it forever); the next run removes it and loads."""
    import shutil
    import subprocess
    import sys

    from grutune.compat import extension_build_directory
    from grutune.nn.recurrence import _cpu_tag, cpu_kernel

    if cpu_kernel() is None:
        pytest.skip("no C++ compiler: there is no kernel build to lock")
    name = f"grutune_gru_cpu_{_cpu_tag()}"
    built = extension_build_directory(name)
    folder = tmp_path / "extensions"
    shutil.copytree(built, folder / name, ignore=shutil.ignore_patterns("lock", "*.lock"))
    (folder / name / "lock").touch()  # what a SIGKILL during the build leaves
    code = "from grutune.nn.recurrence import cpu_kernel; print(cpu_kernel() is not None)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "TORCH_EXTENSIONS_DIR": str(folder)})
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
    assert not (folder / name / "lock").exists()
