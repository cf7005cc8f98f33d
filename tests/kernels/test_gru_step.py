"""Fused GRU step kernels (issue 4) against torch.nn.GRU / a torch.nn.GRUCell stack."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from polyfe2.kernels import reference as ref

ROOT = Path(__file__).resolve().parents[2]
ATOL = 1e-5  # fp32, all values O(1)

NS = [1, 17, 1000]
HS = [16, 64, 256]
LS = [1, 2, 3]


def make_model(H, L, D=None, n_f=9, n_m=32, O=6, seed=0):
    torch.manual_seed(seed)
    D = D or H
    gru = torch.nn.GRU(D, H, L)
    lin = torch.nn.Linear(n_f + n_m, D)
    out = torch.nn.Linear(H, O)
    return gru, lin, out


def make_inputs(N, H, L, D, n_f=9, n_m=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(N, n_f, generator=g)
    m = torch.randn(N, n_m, generator=g)
    x = torch.randn(N, D, generator=g)
    h = torch.rand(L, N, H, generator=g) * 2 - 1  # hidden states live in (-1, 1)
    return f, m, x, h


@torch.no_grad()
def nn_gru_step(gru, x, h):
    _, h_new = gru(x.unsqueeze(0), h)
    return h_new


@torch.no_grad()
def gru_cell_stack_step(gru, x, h):
    """The same step with a torch.nn.GRUCell per layer sharing the nn.GRU weights."""
    out, inp = [], x
    for l in range(gru.num_layers):
        cell = torch.nn.GRUCell(inp.shape[1], gru.hidden_size)
        cell.weight_ih.copy_(getattr(gru, f"weight_ih_l{l}"))
        cell.weight_hh.copy_(getattr(gru, f"weight_hh_l{l}"))
        cell.bias_ih.copy_(getattr(gru, f"bias_ih_l{l}"))
        cell.bias_hh.copy_(getattr(gru, f"bias_hh_l{l}"))
        inp = cell(inp, h[l])
        out.append(inp)
    return torch.stack(out)


def weights(gru):
    L = gru.num_layers
    g = lambda n: [getattr(gru, f"{n}_l{l}").detach().contiguous() for l in range(L)]  # noqa: E731
    return g("weight_ih"), g("bias_ih"), g("weight_hh"), g("bias_hh")


def close(a, b, atol=ATOL):
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert err <= atol, f"max abs error {err:.3g} > {atol:.1g}"


# ------------------------------------------------------------------------- reference (pure torch)
@pytest.mark.parametrize("L", LS)
@pytest.mark.parametrize("H", HS)
@pytest.mark.parametrize("N", NS)
def test_reference_matches_nn_gru(N, H, L):
    gru, lin, _ = make_model(H, L)
    f, m, x, h = make_inputs(N, H, L, H)
    w_ih, b_ih, w_hh, b_hh = weights(gru)
    expect = nn_gru_step(gru, x, h)
    gh, _ = ref.precompute(h, w_hh, b_hh)
    h_new, y = ref.gru_step_reference(x, h, gh, w_ih, b_ih)
    assert y is None
    close(h_new, expect)
    close(h_new, gru_cell_stack_step(gru, x, h))
    # precomputed path with a linear input layer
    with torch.no_grad():
        xl = lin(torch.cat([f, m], 1))
        W = lin.weight.detach()
        gh, gxc = ref.precompute(h, w_hh, b_hh, m=m, w_in_m=W[:, 9:], b_in=lin.bias.detach(),
                                 w_ih1=w_ih[0], b_ih1=b_ih[0])
        w_f = ref.fold_input_weights(w_ih[0], W[:, :9])
        h_new, _ = ref.gru_step_precomputed_reference(f, gxc, w_f, h, gh, w_ih[1:], b_ih[1:])
    close(h_new, nn_gru_step(gru, xl, h))


# ------------------------------------------------------------------------- compiled CPU kernel
def test_cpu_kernel_is_built(kernels):
    assert kernels.has_cpu_kernel(), "compiled CPU kernel missing after tools/build_kernels.sh"
    assert kernels.backend_info("cpu").startswith(kernels.CPU_KERNEL)


@pytest.mark.parametrize("L", LS)
@pytest.mark.parametrize("H", HS)
@pytest.mark.parametrize("N", NS)
def test_cpu_kernel_general_path(kernels, N, H, L):
    gru, _, out = make_model(H, L)
    _, _, x, h = make_inputs(N, H, L, H)
    fg = kernels.FusedGRU(gru, None, out, backend="compiled")
    h_new, y = fg.step(x, h, fg.precompute(h))
    expect = nn_gru_step(gru, x, h)
    close(h_new, expect)
    close(h_new, gru_cell_stack_step(gru, x, h))
    with torch.no_grad():
        close(y, out(expect[-1]))


@pytest.mark.parametrize("L", LS)
@pytest.mark.parametrize("H", HS)
@pytest.mark.parametrize("N", NS)
def test_cpu_kernel_precomputed_path(kernels, N, H, L):
    gru, lin, out = make_model(H, L)
    f, m, _, h = make_inputs(N, H, L, H)
    with torch.no_grad():
        x = lin(torch.cat([f, m], 1))
    fg = kernels.FusedGRU(gru, lin, out, backend="compiled")
    pre = fg.precompute(h, m)
    h_new, y = fg.step(f, h, pre)
    expect = nn_gru_step(gru, x, h)
    close(h_new, expect)
    close(h_new, gru_cell_stack_step(gru, x, h))
    with torch.no_grad():
        close(y, out(expect[-1]))
    # evaluating again from the same precomputed terms with another F
    f2 = f + 0.1
    with torch.no_grad():
        x2 = lin(torch.cat([f2, m], 1))
    h_new2, _ = fg.step(f2, h, pre)
    close(h_new2, nn_gru_step(gru, x2, h))


@pytest.mark.parametrize("N,H,L,D", [(67, 20, 2, 13), (130, 33, 3, 33), (5, 7, 1, 3), (257, 48, 2, 100)])
def test_cpu_kernel_odd_shapes(kernels, N, H, L, D):
    """Hidden sizes that are no multiple of the vector width, N no multiple of the tiles, D != H."""
    gru, lin, out = make_model(H, L, D=D)
    f, m, x, h = make_inputs(N, H, L, D)
    fg = kernels.FusedGRU(gru, None, out, backend="compiled")
    h_new, y = fg.step(x, h, fg.precompute(h))
    expect = nn_gru_step(gru, x, h)
    close(h_new, expect)
    with torch.no_grad():
        close(y, out(expect[-1]))
    fp = kernels.FusedGRU(gru, lin, None, backend="compiled")
    h_new, y = fp.step(f, h, fp.precompute(h, m))
    assert y is None
    with torch.no_grad():
        close(h_new, nn_gru_step(gru, lin(torch.cat([f, m], 1)), h))


def test_cpu_kernel_matches_reference_and_thread_count(kernels):
    N, H, L = 301, 64, 2
    gru, lin, out = make_model(H, L)
    f, m, _, h = make_inputs(N, H, L, H)
    w_ih, b_ih, w_hh, b_hh = weights(gru)
    fg = kernels.FusedGRU(gru, lin, out)
    pre = fg.precompute(h, m)
    args = (f, pre.gx_const, fg.w_f, h, pre.gh, fg.w_ih[1:], fg.b_ih[1:])
    kw = dict(w_out=fg.w_out, b_out=fg.b_out)
    h1, y1 = kernels.gru_step_precomputed(*args, **kw, backend="compiled", num_threads=1)
    h2, y2 = kernels.gru_step_precomputed(*args, **kw, backend="compiled", num_threads=2)
    hr, yr = kernels.gru_step_precomputed(*args, **kw, backend="reference")
    assert torch.equal(h1, h2) and torch.equal(y1, y2)  # row results do not depend on threads
    close(h1, hr)
    close(y1, yr)


def test_boundary_checks(kernels):
    N, H, L = 10, 16, 2
    gru, lin, _ = make_model(H, L)
    f, m, x, h = make_inputs(N, H, L, H)
    w_ih, b_ih, w_hh, b_hh = weights(gru)
    gh, _ = ref.precompute(h, w_hh, b_hh)
    err = kernels.KernelArgumentError
    with pytest.raises(err, match="dtype float32"):
        kernels.gru_step(x.double(), h, gh, w_ih, b_ih)
    with pytest.raises(err, match="contiguous"):
        kernels.gru_step(x, h, gh.transpose(0, 1).contiguous().transpose(0, 1), w_ih, b_ih)
    with pytest.raises(err, match="shape"):
        kernels.gru_step(x[:5], h, gh, w_ih, b_ih)
    with pytest.raises(err, match="entries"):
        kernels.gru_step(x, h, gh, w_ih[:1], b_ih[:1])
    with pytest.raises(err, match="gx_const"):
        kernels.gru_step_precomputed(f, torch.zeros(N, H), torch.zeros(3 * H, 9), h, gh,
                                     w_ih[1:], b_ih[1:])
    with pytest.raises(err, match="backend"):
        kernels.gru_step(x, h, gh, w_ih, b_ih, backend="fast")
    if torch.cuda.is_available():
        with pytest.raises(err, match="on cuda"):
            kernels.gru_step(x.cuda(), h, gh, w_ih, b_ih)


def _built(kernels, module: str) -> bool:
    """Whether the build installed the extension module ``module`` of polyfe2.kernels (in the
    environment; an editable install keeps the sources in src/ and the modules in site-packages)."""
    import importlib.util

    spec = importlib.util.find_spec(f"{kernels.__name__}.{module}")
    return spec is not None and spec.origin is not None and spec.origin.endswith((".so", ".pyd"))


def test_backend_info_names_the_implementation_that_runs(kernels):
    """backend_info and has_cpu_kernel/has_cuda follow the module files that exist, and the
    implementation named for the CPU is the one "auto" runs, within ATOL of the torch reference."""
    cpu_built, cuda_built = _built(kernels, "_gru_cpu"), _built(kernels, "_gru_cuda")
    assert kernels.has_cpu_kernel() == cpu_built
    assert kernels.has_cuda() == (cuda_built and torch.cuda.is_available())
    assert kernels.backend_info("cuda").startswith(kernels.CUDA_KERNEL) == cuda_built
    info = kernels.backend_info("cpu")
    assert info.startswith(kernels.CPU_KERNEL) if cpu_built else info == kernels.REFERENCE

    N, H, L = 97, 32, 2
    gru, lin, out = make_model(H, L)
    f, m, _, h = make_inputs(N, H, L, H)
    auto = kernels.FusedGRU(gru, lin, out, backend="auto")
    assert auto.backend_info() == info
    named = kernels.FusedGRU(gru, lin, out, backend="compiled" if cpu_built else "reference")
    reference = kernels.FusedGRU(gru, lin, out, backend="reference")
    assert reference.backend_info() == kernels.REFERENCE
    h_auto, y_auto = auto.step(f, h, auto.precompute(h, m))
    h_named, y_named = named.step(f, h, named.precompute(h, m))
    assert torch.equal(h_auto, h_named) and torch.equal(y_auto, y_named)  # "auto" runs what is named
    h_ref, y_ref = reference.step(f, h, reference.precompute(h, m))
    close(h_auto, h_ref)
    close(y_auto, y_ref)
    with torch.no_grad():
        close(h_auto, nn_gru_step(gru, lin(torch.cat([f, m], 1)), h))


# ------------------------------------------------------------------------- CUDA build
def _nvcc():
    return shutil.which("nvcc") or os.environ.get("CUDACXX") or (
        "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not found")
def test_cuda_source_compiles_with_nvcc(tmp_path):
    """nvcc compiles the CUDA kernels (sm_90) in a temp dir; no GPU needed."""
    src = ROOT / "csrc" / "cuda" / "gru_step.cu"
    proc = subprocess.run([_nvcc(), "-std=c++17", "-O3", "-arch=sm_90", "-c", str(src),
                           "-o", str(tmp_path / "gru_step.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not found")
def test_cuda_module_built(kernels):
    """With nvcc present, tools/build_kernels.sh must have built and installed _gru_cuda."""
    assert kernels._gru_cuda is not None, "_gru_cuda was not built although nvcc is present"
    lib, err = kernels._gru_cuda.cublas_library()
    assert bool(lib) != bool(err), (lib, err)  # the cuBLAS it loaded, or why it loaded none
    # works without a GPU, and sees the devices torch sees (the same CUDA_VISIBLE_DEVICES)
    assert kernels._gru_cuda.device_count() == torch.cuda.device_count()


# ------------------------------------------------------------------------- CUDA vs torch
@pytest.mark.gpu
@pytest.mark.parametrize("math,atol", [("fp32", 2e-5), ("tf32", 5e-3), ("bf16", 3e-2)])
@pytest.mark.parametrize("N,H,L", [(1, 16, 1), (1000, 256, 2), (4099, 64, 3), (333, 20, 2)])
def test_cuda_kernel_matches_torch(kernels, N, H, L, math, atol):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if not kernels.has_cuda():
        pytest.fail("CUDA device present but the _gru_cuda module is not built")
    dev = torch.device("cuda")
    gru, lin, out = make_model(H, L)
    f, m, x, h = make_inputs(N, H, L, H)
    with torch.no_grad():
        xl = lin(torch.cat([f, m], 1))
        expect = nn_gru_step(gru, x, h)
        expect_l = nn_gru_step(gru, xl, h)
        y_expect = out(expect[-1])
    gru, lin, out = gru.to(dev), lin.to(dev), out.to(dev)
    fg = kernels.FusedGRU(gru, None, out, backend="compiled", math=math)
    assert fg.backend_info().startswith(kernels.CUDA_KERNEL)
    hd = h.to(dev)
    h_new, y = fg.step(x.to(dev), hd, fg.precompute(hd))
    close(h_new.cpu(), expect, atol)
    close(y.cpu(), y_expect, 4 * atol)
    fp = kernels.FusedGRU(gru, lin, None, backend="compiled", math=math)
    h_new, y = fp.step(f.to(dev), hd, fp.precompute(hd, m.to(dev)))
    assert y is None
    close(h_new.cpu(), expect_l, atol)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_preallocated_outputs(kernels, backend):
    N, H, L = 50, 32, 2
    gru, lin, out = make_model(H, L)
    f, m, _, h = make_inputs(N, H, L, H)
    fg = kernels.FusedGRU(gru, lin, out, backend=backend)
    pre = fg.precompute(h, m)
    expect_h, expect_y = fg.step(f, h, pre)
    out_h, out_y = torch.full_like(h, float("nan")), torch.full((N, 6), float("nan"))
    h_new, y = fg.step(f, h, pre, out_h=out_h, out_y=out_y)
    assert h_new is out_h and y is out_y
    close(out_h, expect_h)
    close(out_y, expect_y)
    with pytest.raises(kernels.KernelArgumentError, match="alias"):
        fg.step(f, h, pre, out_h=h)
    with pytest.raises(kernels.KernelArgumentError, match="out_h"):
        fg.step(f, h, pre, out_h=out_h[:, :10])
