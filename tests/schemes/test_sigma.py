"""Tests for gradcheck/schemes/sigma.py: the three spectral norms of THEORY §0, and THEORY C8.

Oracle throughout: the dense conv matrix built by applying torch's own ``nn.Conv2d`` (its own
padding code, not :func:`conv_forward`) to every basis vector, then ``torch.linalg.svdvals``;
all float64.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from gradcheck.schemes.sigma import (
    conv_adjoint,
    conv_forward,
    conv_operator_norm,
    conv_padding,
    conv_singular_values_fft,
    module_operator_norm,
    patch_multiplicity,
    sigma_R,
    sigma_R2,
    top_singular_vectors,
)

EPS = torch.finfo(torch.float64).eps
LANCZOS_RTOL = 1e-9  # brief: sigma to 1e-9 relative; ARPACK tol=1e-10 gives <= ~5e-11
RESIDUAL_MAX = 1e-8  # ARPACK stops at ||A^T A v - l v|| <= tol * l = 1e-10 l; 100x margin


@dataclass(frozen=True)
class ConvCase:
    """A conv layer and its input size; ``weight(seed)`` draws a Gaussian float64 kernel."""

    c_out: int
    c_in: int
    kernel: tuple[int, int]
    input_hw: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    padding_mode: str = "zeros"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.c_in,) + self.input_hw

    @property
    def geometry(self) -> tuple:
        return self.stride, self.padding, self.dilation, self.padding_mode

    def weight(self, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(self.c_out, self.c_in, *self.kernel, generator=g, dtype=torch.float64)


def dense_conv_matrix(case: ConvCase, weight: torch.Tensor, padding=None) -> torch.Tensor:
    """Oracle ``(m, n)`` matrix of the conv, from ``nn.Conv2d`` on the identity basis."""
    conv = nn.Conv2d(case.c_in, case.c_out, case.kernel, case.stride,
                     case.padding if padding is None else padding, case.dilation, bias=False,
                     padding_mode=case.padding_mode).double()
    n = math.prod(case.input_shape)
    with torch.no_grad():
        conv.weight.copy_(weight)
        out = conv(torch.eye(n, dtype=torch.float64).reshape((n,) + case.input_shape))
    return out.reshape(n, -1).T


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Run this module single-threaded, then restore the setting.

    These tiny float64 convs gain nothing from intra-op threads, and on a shared busy CPU
    torch's OpenMP pool made this file 20x slower (134 s vs 6 s on 2 cores).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- sigma_R, sigma_R2 ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (2, 5, 1, 1), (7, 2, 3, 5), (6, 4), (3, 9)])
def test_sigma_R_and_R2_match_svd_of_reshapes(shape, gen):
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    tol = 10 * max(w.shape[0] * w[0].numel(), 1) * EPS
    want_r = torch.linalg.svdvals(w.reshape(shape[0], -1))[0]
    want_r2 = torch.linalg.svdvals(w.transpose(0, 1).reshape(shape[1], -1))[0]
    torch.testing.assert_close(sigma_R(w), want_r, rtol=tol, atol=0.0)
    torch.testing.assert_close(sigma_R2(w), want_r2, rtol=tol, atol=0.0)
    assert sigma_R(w).dim() == sigma_R2(w).dim() == 0


def test_sigma_R2_needs_the_transpose(gen):
    """THEORY §0: without the in/out transpose the BSN divisor is a different number."""
    w = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    naive = torch.linalg.svdvals(w.reshape(3, -1))[0]
    assert abs(sigma_R2(w) / sigma_R(w) - 1) > 1e-3, (sigma_R2(w), sigma_R(w))
    assert abs(sigma_R2(w) / naive - 1) > 1e-3, (sigma_R2(w), naive)


def test_dense_sigma_R_equals_sigma_R2(gen):
    """THEORY C9a: for dense layers sigma_R == sigma_R2, so BSN == SN."""
    w = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sigma_R(w), sigma_R2(w), rtol=10 * w.numel() * EPS, atol=0.0)


def test_sigma_R_known_answer_orthogonal_rows():
    q, _ = torch.linalg.qr(torch.randn(27, 5, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64))
    w = q.T.reshape(5, 3, 3, 3)  # orthonormal rows of the reshape: every singular value is 1
    torch.testing.assert_close(sigma_R(w), torch.tensor(1.0, dtype=torch.float64),
                               rtol=0.0, atol=100 * EPS)


def test_sigma_R_gradient_is_u_v_transpose(gen):
    """d sigma / dW = u v^T (the identity behind THEORY C3a) and torch's gradcheck passes."""
    w = torch.randn(4, 3, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(sigma_R(w), w)
    s, u, v = top_singular_vectors(w.reshape(4, -1))
    assert not (s.requires_grad or u.requires_grad or v.requires_grad)
    torch.testing.assert_close(grad.reshape(4, -1), torch.outer(u, v), rtol=0.0,
                               atol=100 * w.numel() * EPS)
    assert torch.autograd.gradcheck(sigma_R, (w,))
    assert torch.autograd.gradcheck(sigma_R2, (w,))


def test_top_singular_vectors_triple(gen):
    m = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    s, u, v = top_singular_vectors(m)
    torch.testing.assert_close(m @ v, s * u, rtol=0.0, atol=100 * m.numel() * EPS * s)
    torch.testing.assert_close(u.norm(), torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-14)
    assert v[v.abs().argmax()] > 0


# -- conv_padding, conv_forward, conv_adjoint -------------------------------------------------
def test_conv_padding_resolves_every_form():
    assert conv_padding(2, (3, 3), 1, 1, (8, 8)) == (2, 2)
    assert conv_padding((1, 0), (3, 1), 2, 1, (8, 8)) == (1, 0)
    assert conv_padding("valid", (3, 3), 1, 1, (8, 8)) == (0, 0)
    assert conv_padding("same", (5, 3), 1, (1, 2), (8, 8)) == (2, 2)
    assert conv_padding(nn.Conv2d(2, 3, (3, 5), padding="same"), input_hw=(8, 8)) == (1, 2)
    with pytest.raises(ValueError, match="odd"):
        conv_padding("same", (4, 4), 1, 1, (8, 8))
    with pytest.raises(ValueError, match="stride"):
        conv_padding("same", (3, 3), 2, 1, (8, 8))
    with pytest.raises(ValueError, match="empty output"):
        conv_padding(0, (5, 5), 1, 1, (4, 4))


def _adjoint_cases():
    for s, p, k, d, hw in itertools.product((1, 2, 3), (0, 1, 2), (1, 2, 3, 4, 5), (1, 2),
                                            ((5, 6), (8, 7))):
        for kernel in {(k, k), (k, 6 - k)}:
            if all(n + 2 * p - d * (kk - 1) >= 1 for n, kk in zip(hw, kernel)):
                yield ConvCase(2, 3, kernel, hw, (s, s), (p, p), (d, d))


@pytest.mark.parametrize("padding_mode", ["zeros", "circular", "reflect", "replicate"])
def test_conv_adjoint_is_exact_adjoint(padding_mode, gen):
    """<A v, u> == <v, A^T u>; atol = 10 n eps sum|u||K||v| (n: terms in the longest sum)."""
    checked = 0
    for base in _adjoint_cases():
        case = ConvCase(**{**base.__dict__, "padding_mode": padding_mode})
        w = case.weight(checked)
        v = torch.randn((2,) + case.input_shape, generator=gen, dtype=torch.float64)
        av = conv_forward(w, v, *case.geometry)
        oracle = (dense_conv_matrix(case, w) @ v.reshape(2, -1).T).T
        torch.testing.assert_close(
            av.reshape(2, -1), oracle, rtol=1e-13, atol=1e-13,
            msg=lambda m, case=case: f"{case}: conv_forward != nn.Conv2d\n{m}")
        u = torch.randn(av.shape, generator=gen, dtype=torch.float64)
        atu = conv_adjoint(w, u, case.input_shape, *case.geometry)
        assert atu.shape == v.shape, (case, atu.shape)
        assert conv_adjoint(w, u[0], case.input_shape, *case.geometry).shape == case.input_shape
        lhs, rhs = (av * u).sum(), (v * atu).sum()
        scale = (conv_forward(w.abs(), v.abs(), *case.geometry) * u.abs()).sum()
        n = w.numel() + av.numel() + v.numel()
        atol = 10 * n * EPS * float(scale)
        assert abs(lhs - rhs) <= atol, f"{case}: <Av,u>={lhs} <v,A^T u>={rhs}, atol={atol:.2e}"
        checked += 1
    assert checked >= 280  # every (stride, padding, kernel, dilation, size) with a non-empty output


# -- conv_operator_norm ------------------------------------------------------------------------
NORM_CASES = {  # name: (case, expected method)
    "basic": (ConvCase(3, 2, (3, 3), (6, 6)), "lanczos"),
    "stride2-pad1": (ConvCase(4, 3, (3, 3), (8, 7), (2, 2), (1, 1)), "lanczos"),
    "1x1": (ConvCase(5, 4, (1, 1), (5, 5)), "lanczos"),
    "c1": (ConvCase(1, 1, (3, 3), (9, 9), padding=(1, 1)), "lanczos"),
    "stride>kernel": (ConvCase(3, 2, (2, 2), (9, 9), (3, 3)), "lanczos"),
    "rect": (ConvCase(3, 2, (2, 4), (7, 9), (1, 2), (1, 0)), "lanczos"),
    "dilation2": (ConvCase(2, 3, (3, 3), (8, 8), padding=(2, 2), dilation=(2, 2)), "lanczos"),
    "kernel=input": (ConvCase(3, 4, (5, 5), (5, 5)), "lanczos"),
    "clustered": (ConvCase(8, 8, (3, 3), (12, 12), padding=(1, 1)), "lanczos"),
    "even-4x4-s2": (ConvCase(6, 4, (4, 4), (10, 10), (2, 2), (1, 1)), "lanczos"),
    "reflect": (ConvCase(3, 2, (3, 3), (7, 6), (2, 1), (1, 1), padding_mode="reflect"), "lanczos"),
    "replicate": (ConvCase(2, 3, (3, 2), (6, 6), padding=(2, 1), padding_mode="replicate"),
                  "lanczos"),
    "circular-s2": (ConvCase(3, 2, (3, 3), (8, 8), (2, 2), (1, 1), padding_mode="circular"),
                    "lanczos"),
    "circular-fft": (ConvCase(3, 2, (3, 3), (6, 7), padding=(1, 1), padding_mode="circular"),
                     "fft"),
    "circular-fft-dil": (ConvCase(2, 3, (3, 5), (6, 8), padding=(2, 4), dilation=(2, 2),
                                  padding_mode="circular"), "fft"),
    "tiny-dense": (ConvCase(2, 1, (2, 2), (4, 4)), "dense"),
    "tiny-dense-s2": (ConvCase(3, 4, (3, 3), (4, 4), (2, 2), (1, 1)), "dense"),
}


@pytest.mark.parametrize("name", sorted(NORM_CASES))
def test_conv_operator_norm_matches_dense_svd(name):
    case, method = NORM_CASES[name]
    w = case.weight(7)
    want = float(torch.linalg.svdvals(dense_conv_matrix(case, w))[0])
    got = conv_operator_norm(w, case.input_shape, *case.geometry)
    assert got.method == method, (name, got.method)
    rel = abs(got.sigma - want) / want
    assert rel <= LANCZOS_RTOL, f"{name} {case}: sigma={got.sigma} dense={want} rel={rel:.2e}"
    assert 0 <= got.residual <= RESIDUAL_MAX, (name, got.residual)
    assert got.v.shape == case.input_shape and got.u.dim() == 3 and got.matvecs > 0
    one = torch.tensor(1.0, dtype=torch.float64)
    torch.testing.assert_close(got.v.norm(), one, rtol=0.0, atol=1e-12)
    torch.testing.assert_close(got.u.norm(), one, rtol=0.0, atol=1e-9)  # = ||Av|| / sigma
    av = conv_forward(w, got.v, *case.geometry)
    torch.testing.assert_close(av, got.sigma * got.u, rtol=0.0, atol=100 * EPS * got.sigma)
    # ||A^T u - sigma v|| / sigma equals the residual exactly, so it certifies v as well.
    atu = conv_adjoint(w, got.u, case.input_shape, *case.geometry)
    assert float((atu - got.sigma * got.v).norm()) / got.sigma <= RESIDUAL_MAX


def test_conv_operator_norm_known_answers(gen):
    """1x1 stride-1 conv and a kernel covering the whole input both have norm sigma_R."""
    for case in (ConvCase(5, 4, (1, 1), (5, 5)), ConvCase(3, 4, (5, 5), (5, 5))):
        w = case.weight(3)
        got = conv_operator_norm(w, case.input_shape, *case.geometry).sigma
        assert abs(got / float(sigma_R(w)) - 1) <= LANCZOS_RTOL, (case, got, float(sigma_R(w)))
    delta = torch.zeros(3, 3, 3, 3, dtype=torch.float64)
    delta[range(3), range(3), 1, 1] = 1.0  # identity map
    got = conv_operator_norm(delta, (3, 6, 6), padding=1).sigma
    assert abs(got - 1) <= LANCZOS_RTOL, got


def test_conv_operator_norm_determinism_and_dtype():
    for case, _ in (NORM_CASES["clustered"], NORM_CASES["circular-fft"], NORM_CASES["tiny-dense"]):
        w = case.weight(0)
        a, b = (conv_operator_norm(w, case.input_shape, *case.geometry, seed=5) for _ in range(2))
        assert (a.sigma, a.residual, a.matvecs, a.method) == (b.sigma, b.residual, b.matvecs,
                                                               b.method)
        assert torch.equal(a.u, b.u) and torch.equal(a.v, b.v)
        c = conv_operator_norm(w.float(), case.input_shape, *case.geometry)
        assert c.u.dtype == c.v.dtype == torch.float32
        want = conv_operator_norm(w.float().double(), case.input_shape, *case.geometry).sigma
        assert abs(c.sigma / want - 1) <= LANCZOS_RTOL


def test_conv_operator_norm_max_matvecs_and_bad_input():
    case, _ = NORM_CASES["clustered"]
    with pytest.raises(RuntimeError, match="max_matvecs"):
        conv_operator_norm(case.weight(0), case.input_shape, *case.geometry, max_matvecs=10)
    with pytest.raises(ValueError, match="c_in"):
        conv_operator_norm(case.weight(0), (3, 12, 12), *case.geometry)
    with pytest.raises(ValueError, match="padding_mode"):
        conv_operator_norm(case.weight(0), case.input_shape, padding_mode="mirror")


# -- FFT (Sedghi et al. 2019) --------------------------------------------------------------------
@pytest.mark.parametrize("case", [
    ConvCase(3, 2, (3, 3), (5, 6), padding=(1, 1), padding_mode="circular"),
    ConvCase(2, 4, (5, 3), (4, 4), padding=(2, 1), padding_mode="circular"),
    ConvCase(1, 1, (3, 3), (7, 7), padding=(1, 1), padding_mode="circular"),
    ConvCase(3, 3, (5, 5), (3, 3), padding=(2, 2), padding_mode="circular"),  # kernel wraps
    ConvCase(2, 3, (2, 4), (5, 6), padding_mode="circular"),  # even: torch's asymmetric 'same'
], ids=["3x3", "5x3", "c1", "wrap", "even"])
def test_fft_singular_values_match_dense(case):
    """Full spectrum, sorted; atol = 1e-10 sigma_max (the rounding is ~n eps sigma_max)."""
    w = case.weight(11)
    odd = all(k % 2 for k in case.kernel)
    want = torch.linalg.svdvals(dense_conv_matrix(case, w, None if odd else "same"))
    got = conv_singular_values_fft(w, case.input_hw)
    assert got.dtype == torch.float64 and got.shape == want.shape
    assert torch.all(got[:-1] >= got[1:])
    torch.testing.assert_close(got, want, rtol=0.0, atol=1e-10 * float(want[0]))


# -- THEORY C8 ---------------------------------------------------------------------------------
def _out_len(n, k, s, p):
    return (n + 2 * p - k) // s + 1


@settings(max_examples=60, deadline=None)
@given(c_out=st.integers(1, 4), c_in=st.integers(1, 4), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2),
       pw=st.integers(0, 2), h=st.integers(1, 9), w_=st.integers(1, 9), seed=st.integers(0, 99))
def test_c8_sigma_R_leq_opnorm_leq_mu_sigma_R(c_out, c_in, kh, kw, sh, sw, ph, pw, h, w_, seed):
    """THEORY C8: sigma_R <= ||Conv||_op <= mu sigma_R when some receptive field is inside."""
    dims = [(h, kh, sh, ph), (w_, kw, sw, pw)]
    assume(all(_out_len(n, k, s, p) >= 1 for n, k, s, p in dims))
    assume(all(any(0 <= o * s - p and o * s - p + k <= n for o in range(_out_len(n, k, s, p)))
               for n, k, s, p in dims))
    case = ConvCase(c_out, c_in, (kh, kw), (h, w_), (sh, sw), (ph, pw))
    weight = case.weight(seed)
    op = conv_operator_norm(weight, case.input_shape, *case.geometry).sigma
    s_r, mu = float(sigma_R(weight)), patch_multiplicity((kh, kw), (sh, sw))
    spec = f"{case} seed={seed}"
    assert s_r <= op * (1 + LANCZOS_RTOL), f"{spec}: sigma_R/op={s_r / op}"
    assert op <= mu * s_r * (1 + LANCZOS_RTOL), f"{spec}: op/(mu sigma_R)={op / (mu * s_r)}"
    if (sh, sw) == (1, 1) and all(any(x + p - (k - 1) >= 0 and x + p <= _out_len(n, k, 1, p) - 1
                                      for x in range(n)) for n, k, _, p in dims):
        s_r2 = float(sigma_R2(weight))
        assert s_r2 <= op * (1 + LANCZOS_RTOL), f"{spec}: sigma_R2/op={s_r2 / op}"
        assert op <= mu * s_r2 * (1 + LANCZOS_RTOL), f"{spec}: op/(mu sigma_R2)={op / (mu * s_r2)}"


def test_patch_multiplicity_known_values():
    assert patch_multiplicity((3, 3), (1, 1)) == 3.0
    assert patch_multiplicity((4, 4), (2, 2)) == 2.0
    assert patch_multiplicity((3, 3), (2, 2)) == 2.0
    assert patch_multiplicity((2, 2), (3, 3)) == 1.0
    assert patch_multiplicity((3, 5), (1, 2)) == 3.0
    assert patch_multiplicity(None, None) == 1.0


# -- module_operator_norm -----------------------------------------------------------------------
def test_module_operator_norm_linear_and_conv():
    torch.manual_seed(0)
    lin = nn.Linear(6, 4).double()
    got = module_operator_norm(lin, (6,))
    want = float(torch.linalg.svdvals(lin.weight.detach())[0])
    assert got.method == "dense" and got.u.shape == (4,) and got.v.shape == (6,)
    assert abs(got.sigma / want - 1) <= 10 * 24 * EPS and got.residual <= 100 * 24 * EPS
    conv = nn.Conv2d(2, 3, 3, padding="same", padding_mode="circular", bias=False).double()
    assert module_operator_norm(conv, (2, 6, 6)).method == "fft"
    conv = nn.Conv2d(2, 3, 4, stride=2, padding=1, padding_mode="reflect", bias=False).double()
    case = ConvCase(3, 2, (4, 4), (9, 8), (2, 2), (1, 1), padding_mode="reflect")
    want = float(torch.linalg.svdvals(dense_conv_matrix(case, conv.weight.detach()))[0])
    assert abs(module_operator_norm(conv, (2, 9, 8)).sigma / want - 1) <= LANCZOS_RTOL
    sn = nn.utils.parametrizations.spectral_norm(nn.Conv2d(3, 4, 3, padding=1).double())
    sn.eval()
    op = module_operator_norm(sn, (3, 8, 8))
    assert 1 - LANCZOS_RTOL <= op.sigma <= patch_multiplicity(3, 1) * (1 + 1e-6)  # C8 with SN_w
    with pytest.raises(ValueError, match="groups"):
        module_operator_norm(nn.Conv2d(4, 4, 3, groups=2), (4, 8, 8))
    with pytest.raises(ValueError, match="in_features"):
        module_operator_norm(lin, (5,))
    with pytest.raises(TypeError):
        module_operator_norm(nn.ReLU(), (3,))


# -- speed sanity (prints, never asserts time) -------------------------------------------------
CIFAR_LAYERS = [  # SN-GAN CIFAR-10 discriminator convs: (c_out, c_in, k, stride, input size)
    (64, 3, 3, 1, 32), (64, 64, 4, 2, 32), (128, 64, 3, 1, 16), (128, 128, 4, 2, 16),
    (256, 128, 3, 1, 8), (256, 256, 4, 2, 8), (512, 256, 3, 1, 4)]


@pytest.mark.slow
@pytest.mark.parametrize("layer", CIFAR_LAYERS, ids=lambda x: "x".join(map(str, x)))
def test_cifar_discriminator_layers_converge(layer, capsys):
    c_out, c_in, k, s, size = layer
    w = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(0)) / math.sqrt(
        c_in * k * k)
    start = time.perf_counter()
    op = conv_operator_norm(w, (c_in, size, size), (s, s), (1, 1))
    seconds = time.perf_counter() - start
    ratio = op.sigma / float(sigma_R(w))
    with capsys.disabled():
        print(f"\n  {layer}: ||Conv||/sigma_R={ratio:.3f} residual={op.residual:.1e} "
              f"matvecs={op.matvecs} {seconds:.2f}s")
    assert op.residual <= RESIDUAL_MAX
    assert 1 - 1e-6 <= ratio <= patch_multiplicity(k, s) * (1 + 1e-6)  # C8, float32 weight
