"""Known answers and THEORY identities/inequalities measured by the probe engine.

- Orthogonal linear nets: every local and cumulative Jacobian singular value is exactly 1, every
  operator norm is 1, and ``||dD/dW_t||_F = ||x||`` for every layer (dense chain path and, with
  1x1 orthogonal convs, the dense operator path).
- THEORY C9a: dense BSN == SN (same seed), up to round-off.
- THEORY §1: SN / BSN dense layers have ``sigma_op = 1``; SSN/BSSN with scale ``c`` have ``c``;
  strict SN (sn-conv) conv layers have ``||Conv||_op = 1``.
- THEORY C1a (identity): ``||dD/dW_t||_F = ||delta_t|| ||h_t||`` on dense layers.
- THEORY C1 (inequality): ``||dD/dW_t||_F <= lambda_L mu_t ||x|| prod_{i != t} ||W_i||_op`` on
  random bias-free conv nets (hypothesis).

Identity tolerances are ``10 * n * eps`` with ``n`` the number of float64 terms accumulated
(STYLE.md §7); ``n`` is stated at each use.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import CONV_CASES, EPS, MLP_CASES, assert_rel_close, conv_case, mlp_case, with_scheme
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from gradcheck.models import Discriminator, mlp
from gradcheck.probe import ProbeOptions, probe
from gradcheck.schemes import apply_scheme

pytestmark = pytest.mark.usefixtures("single_blas_thread")


def identity_tol(n: int) -> float:
    """``10 n eps``: round-off bound for a quantity accumulated from ``n`` O(1) float64 terms."""
    return 10 * n * EPS


# ------------------------------------------------------------------------------------------------
# Orthogonal linear nets: all singular values 1
# ------------------------------------------------------------------------------------------------

WIDTH, DEPTH = 5, 4


@pytest.fixture
def orthogonal_linear_mlp(seed):
    """Linear-activation MLP, square ``WIDTH x WIDTH`` orthogonal layers (input_dim = WIDTH) and
    a unit-norm ``1 x WIDTH`` head (``semi_orthogonal`` of a row normalises it)."""
    x = torch.randn(4, WIDTH, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    model = mlp(DEPTH, WIDTH, WIDTH, activation="linear").double()
    apply_scheme(model, "orthogonal", x, seed=seed)
    return model, x


@pytest.fixture
def orthogonal_linear_conv(seed):
    """Two 1x1 convs with orthogonal ``3 x 3`` kernels (an orthogonal map ``Q (x) I`` on
    ``(3, 3, 3)`` inputs), linear activations, and a unit-norm dense head."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 3, 3, generator=gen, dtype=torch.float64)
    model = Discriminator(nn.Conv2d(3, 3, 1, bias=False), nn.Identity(),
                          nn.Conv2d(3, 3, 1, bias=False), nn.Identity(), nn.Flatten(),
                          nn.Linear(27, 1, bias=False)).double()
    apply_scheme(model, "orthogonal", x, seed=seed)
    return model, x


def _assert_all_singular_values_one(res, n: int, what: str, method: str) -> None:
    L = len(res.layers)
    for which, specs in (("local", res.local), ("cumulative", res.cumulative)):
        for i, spec in enumerate(specs):
            assert spec.full and spec.method == method, f"{what}: {which} {i} used {spec.method}"
            # a product of up to L orthogonal factors: n * L accumulated terms
            assert_rel_close(spec.values, np.ones_like(spec.values), identity_tol(n * L),
                             f"{what}: {which} Jacobian {i} singular values")
            assert_rel_close(spec.msq, np.ones_like(spec.msq), identity_tol(n * L),
                             f"{what}: {which} Jacobian {i} mean squared singular value")
    assert [s.shape for s in res.local][-1][0] == 1 and len(res.cumulative) == L - 1


def test_orthogonal_linear_mlp_every_jacobian_singular_value_is_one(orthogonal_linear_mlp):
    model, x = orthogonal_linear_mlp
    res = probe(model, x)
    _assert_all_singular_values_one(res, WIDTH, "orthogonal linear MLP", "chain")
    assert res.local[-1].values.shape == (x.shape[0], 1)     # the head row: one value, ||row||


def test_orthogonal_linear_mlp_norms_and_gradients(orthogonal_linear_mlp):
    """All operator norms 1 and, since ``||h_t|| = ||x||`` and ``||delta_t|| = ||row|| = 1``,
    ``||dD/dW_t||_F = ||x||`` for every layer."""
    model, x = orthogonal_linear_mlp
    res = probe(model, x, ProbeOptions(spectra=False))
    tol = identity_tol(WIDTH * DEPTH)
    for what in ("sigma_R", "sigma_R2", "sigma_op"):
        got = np.array([getattr(n, what) for n in res.norms])
        assert_rel_close(got, np.ones(DEPTH), tol, f"orthogonal MLP {what}")
    g = res.grads
    assert_rel_close(g.weight_grad, np.broadcast_to(g.x_norm, g.weight_grad.shape), tol,
                     "orthogonal MLP ||dD/dW_t|| = ||x||")
    assert_rel_close(g.h_norm, np.broadcast_to(g.x_norm, g.h_norm.shape), tol,
                     "orthogonal MLP ||h_t|| = ||x||")
    assert_rel_close(g.delta, np.ones_like(g.delta), tol, "orthogonal MLP ||delta_t|| = 1")


def test_orthogonal_1x1_conv_every_jacobian_singular_value_is_one(orthogonal_linear_conv):
    model, x = orthogonal_linear_conv
    res = probe(model, x)
    _assert_all_singular_values_one(res, 27, "orthogonal 1x1 conv net", "dense")
    got = np.array([n.sigma_op for n in res.norms])
    assert_rel_close(got, np.ones(3), identity_tol(27), "orthogonal 1x1 conv sigma_op")


# ------------------------------------------------------------------------------------------------
# SN family: C9a and the normalised norms
# ------------------------------------------------------------------------------------------------

def _scheme_model(scheme: str, seed: int, scale: float = 1.0):
    case = with_scheme(mlp_case("lrelu", depth=4, width=7, input_dim=6, slope=0.1), scheme, scale)
    return case.make(seed)


def test_dense_bsn_equals_sn(seed):
    """THEORY C9a: for dense layers ``sigma_R2 = sigma_R``, so BSN == SN.

    The raw weights are bitwise identical (same seed); the divisors ``(sigma_R + sigma_R2) / 2``
    and ``sigma_R`` come from SVDs of ``W^T`` and ``W`` and agree to round-off, not bitwise
    (measured: 1-ulp differences in the effective weights), so everything downstream is
    compared at ``10 n eps`` with ``n = 7 * 4`` (width x depth).
    """
    sn_model, x = _scheme_model("sn", seed)
    bsn_model, x2 = _scheme_model("bsn", seed)
    assert torch.equal(x, x2)
    for a, b in zip(sn_model.modules(), bsn_model.modules()):
        if isinstance(a, nn.Linear):
            raw_a = a.parametrizations.weight.original
            raw_b = b.parametrizations.weight.original
            assert torch.equal(raw_a, raw_b), "same seed must give the same raw weights"
    sn, bsn = (probe(m, x) for m in (sn_model, bsn_model))
    tol = identity_tol(7 * 4)
    for f in ("D", "x_norm", "weight_grad", "act_grad", "delta", "h_norm"):
        a, b = getattr(bsn.grads, f), getattr(sn.grads, f)
        assert_rel_close(a, b, tol, f"bsn vs sn: {f}", atol=tol * float(np.abs(b).max()))
    for what in ("sigma_R", "sigma_R2", "sigma_op", "frobenius", "sigma_scheme", "raw_sigma_R"):
        a = np.array([getattr(n, what) for n in bsn.norms])
        b = np.array([getattr(n, what) for n in sn.norms])
        assert_rel_close(a, b, tol, f"bsn vs sn: {what}")
    for i, (p, q) in enumerate(zip(bsn.local + bsn.cumulative, sn.local + sn.cumulative)):
        assert_rel_close(p.values, q.values, 0.0, f"bsn vs sn: spectrum {i}",
                         atol=tol * float(np.abs(q.values).max()))


@pytest.mark.parametrize("scheme,scale", [("sn", 1.0), ("bsn", 1.0), ("ssn", 1.7),
                                          ("bssn", 1.7)])
def test_sn_family_dense_layers_have_operator_norm_scale(seed, scheme, scale):
    """THEORY §1: ``c W / sigma(W)`` with the exact sigma has ``sigma_op = c`` on dense layers
    (``sigma_R = sigma_R2 = sigma_op``), and ``sigma_scheme`` is the raw ``sigma_R``."""
    model, x = _scheme_model(scheme, seed, scale)
    res = probe(model, x, ProbeOptions(spectra=False))
    tol = identity_tol(7 * 4)
    for what in ("sigma_R", "sigma_R2", "sigma_op"):
        got = np.array([getattr(n, what) for n in res.norms])
        assert_rel_close(got, np.full(len(got), scale), tol, f"{scheme} dense {what}")
    assert_rel_close(np.array([n.sigma_scheme for n in res.norms]),
                     np.array([n.raw_sigma_R for n in res.norms]), tol,
                     f"{scheme}: divisor = raw sigma_R on dense layers")


def _assert_sn_conv_operator_norms_one(model, x, what: str) -> None:
    res = probe(model, x, ProbeOptions(spectra=False))
    got = np.array([n.sigma_op for n in res.norms])
    # the parametrization divides by a Lanczos sigma (tol 1e-10) and the engine re-measures it
    # with op_tol 1e-10: the two agree to about 1e-10 relative; allow 1e-9.
    assert_rel_close(got, np.ones(len(got)), 1e-9, f"{what}: sigma_op under sn-conv")
    conv = [n for n, info in zip(res.norms, res.layers) if info.kind == "conv"]
    assert all(n.sigma_R <= n.sigma_op * (1 + 1e-9) for n in conv), "C8: sigma_R <= ||Conv||_op"


@pytest.mark.parametrize("case", [conv_case(stride_every=2), conv_case(depth=2, stride_every=1),
                                  mlp_case("lrelu")], ids=lambda c: c.name)
def test_sn_conv_layers_have_unit_operator_norm(case, seed):
    """Strict SN (THEORY §1 ``sn-conv``): every layer's operator norm on its actual input is 1.

    Regression: ``gradcheck.schemes.record_input_shapes`` used a forward pre-hook
    ``lambda mod, args: shapes.setdefault(...)`` that returned the shape tuple, which PyTorch
    takes as the layer's new arguments, so ``apply_scheme(..., 'sn-conv')`` raised
    ``TypeError: Conv2d.forward() takes 2 positional arguments but 4 were given`` on every model.
    """
    model, x = with_scheme(case, "sn-conv").make(seed)
    _assert_sn_conv_operator_norms_one(model, x, f"{case.name} under sn-conv")


# ------------------------------------------------------------------------------------------------
# THEORY C1a: ||dD/dW_t||_F = ||delta_t|| ||h_t|| on dense layers
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", MLP_CASES + CONV_CASES[:3], ids=lambda c: c.name)
def test_c1a_dense_weight_grad_is_delta_times_h(case, seed):
    """C1a holds for any dense layer, biases and sigmoid output included (``dD/dW = delta h^T``
    whatever the rest of the net); the engine computes ``dD/dW`` by autograd of the layer map, so
    this is a real check. ``n`` = number of weight entries (each norm sums that many squares)."""
    model, x = case.make(seed)
    res = probe(model, x, ProbeOptions(spectra=False))
    g = res.grads
    dense = [info for info in res.layers if info.kind == "linear"]
    assert dense, case.name
    for info in dense:
        i, n = info.index, math.prod(info.weight_shape)
        lhs, rhs = g.weight_grad[i], g.delta[i] * g.h_norm[i]
        assert_rel_close(lhs, rhs, identity_tol(n), f"{case.name}: C1a on layer {i}",
                         atol=identity_tol(n) * float(rhs.max()))


# ------------------------------------------------------------------------------------------------
# THEORY C1: gradient upper bound on random conv nets
# ------------------------------------------------------------------------------------------------

# sigma_op comes from a dense SVD (inputs of <= 64 entries) or Lanczos with op_tol = 1e-10, which
# can undershoot by about that much per factor; with at most 4 factors and round-off 10 n eps
# (n <= 300 here) a relative slack of 1e-8 covers both with a wide margin.
C1_SLACK = 1e-8
ACTS = {"relu": nn.ReLU, "lrelu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh,
        "linear": nn.Identity}


@st.composite
def random_conv_net(draw):
    """A bias-free conv net (1-3 convs, kernels 1-4, strides 1-3, paddings 0-2), its input, and
    the output activation; weights Gaussian with a per-layer scale in [0.3, 3] so operator norms
    fall on both sides of 1."""
    seed = draw(st.integers(0, 2 ** 16))
    gen = torch.Generator().manual_seed(seed)
    c, size = draw(st.integers(1, 3)), draw(st.integers(3, 6))
    act = draw(st.sampled_from(sorted(ACTS)))
    output = draw(st.sampled_from(["identity", "sigmoid"]))
    layers, shape = [], (c, size, size)
    for _ in range(draw(st.integers(1, 3))):
        k, s, p = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
        out_hw = (shape[1] + 2 * p - k) // s + 1
        assume(out_hw >= 1 and p < k)
        c_out = draw(st.integers(1, 3))
        layers += [nn.Conv2d(shape[0], c_out, k, stride=s, padding=p, bias=False), ACTS[act]()]
        shape = (c_out, out_hw, out_hw)
    layers += [nn.Flatten(), nn.Linear(math.prod(shape), 1, bias=False)]
    layers += [nn.Sigmoid()] if output == "sigmoid" else []
    model = Discriminator(*layers).double()
    with torch.no_grad():
        for m in model:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                scale = float(draw(st.floats(0.3, 3.0)))
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64)
                               * scale / math.sqrt(m.weight[0].numel()))
    x = torch.randn(3, c, size, size, generator=gen, dtype=torch.float64)
    return model, x, (1.0 if output == "identity" else 0.25)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(random_conv_net())
def test_c1_weight_grad_leq_bound(net):
    """C1: ``||dD/dW_t||_F <= lambda_L mu_t ||x|| prod_{i != t} ||W_i||_op`` for every layer and
    input, with the engine's own measurements on both sides (``lambda_L = 1`` identity output,
    1/4 sigmoid)."""
    model, x, lam = net
    res = probe(model, x, ProbeOptions(spectra=False))
    ops = np.array([n.sigma_op for n in res.norms])
    g = res.grads
    for info in res.layers:
        t = info.index
        others = float(np.prod(np.delete(ops, t)))
        bound = lam * info.mu * g.x_norm * others
        lhs = g.weight_grad[t]
        ratio = lhs / bound
        worst = int(np.argmax(ratio))
        assert np.all(lhs <= bound * (1 + C1_SLACK)), (
            f"C1 violated on layer {t} ({info.kind}, kernel {info.kernel}, stride {info.stride}, "
            f"mu {info.mu:.3f}) input {worst}: ||dD/dW|| = {lhs[worst]!r} > bound "
            f"{bound[worst]!r} (ratio {ratio[worst]!r}, slack {C1_SLACK}); sigma_op = {ops}")


# Two explicit inputs on which the engine's own measurements break C1 with ``LayerInfo.mu``.
# Both nets: one conv (1 -> 1 channel), identity activation, Flatten, a dense head with unit row
# ``w``, identity output (lambda_L = 1). Then ``dD/dK = P(x)^T w`` (P = im2col patches) and the
# bound is ``mu ||x|| ||w|| = mu ||x||``.

def _one_conv_net(conv: nn.Conv2d, n_out: int, head: torch.Tensor) -> nn.Module:
    model = Discriminator(conv, nn.Identity(), nn.Flatten(), nn.Linear(n_out, 1, bias=False))
    model = model.double()
    with torch.no_grad():
        model[0].weight.fill_(1.0)        # any kernel: dD/dK does not depend on K here
        model[3].weight.copy_(head.reshape(1, -1))
    return model


def dilated_counterexample():
    """3x3 kernel, stride 2, dilation 2, 27x27 input -> 12x12 output. Every tap of every patch
    reads an even-even pixel, so each such pixel is read by 9 (patch, tap) pairs, not
    ``mu^2 = ceil(3/2)^2 = 4``. With ``x = 1`` on the 14x14 even-even pixels and
    ``w = 1/12`` everywhere: each tap's gradient is ``144 / 12 = 12``, ``||dD/dK|| = 36``,
    bound ``2 * 14 = 28``: ratio 9/7."""
    conv = nn.Conv2d(1, 1, 3, stride=2, dilation=2, bias=False)
    model = _one_conv_net(conv, 144, torch.full((144,), 1 / 12, dtype=torch.float64))
    x = torch.zeros(1, 1, 27, 27, dtype=torch.float64)
    x[..., ::2, ::2] = 1.0
    return model, x, 36.0 / 28.0


def reflect_counterexample():
    """3x3 kernel, padding 1 ``reflect``, 3x3 input. The centre pixel is read through its
    mirror copies by 16 (patch, tap) pairs (``mu^2 = 9``). With ``x`` = the centre pixel and
    ``w = 1/2`` on the four output corners (the top left singular vector of ``P(x) = [[1,0,1],
    [0,1,0],[1,0,1]]^(x)2``, whose norm is ``2 * 2 = 4``): ``||dD/dK|| = 4``, bound ``3``."""
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect", bias=False)
    head = torch.zeros(3, 3, dtype=torch.float64)
    head[0, 0] = head[0, 2] = head[2, 0] = head[2, 2] = 0.5
    model = _one_conv_net(conv, 9, head)
    x = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    x[..., 1, 1] = 1.0
    return model, x, 4.0 / 3.0


@pytest.mark.parametrize("build", [dilated_counterexample, reflect_counterexample],
                         ids=["dilation2-stride2", "reflect-padding"])
def test_c1_counterexample_outside_theory_premise(build):
    """On convs outside THEORY §0's premise (dilation 1, zero padding), which the engine
    accepts, THEORY's formula ``mu = sqrt(ceil(kh/sh) ceil(kw/sw))`` undercounts the patches
    reading one pixel, and C1 stated with it fails on these inputs by the ratio in each
    builder's docstring. ``LayerInfo.mu`` therefore uses the exact maximal multiplicity there
    (3 for the dilated case, 5 for the reflect case), and C1 with the engine's mu holds.
    """
    from gradcheck.theory.bounds import patch_multiplicity

    model, x, predicted_ratio = build()
    res = probe(model, x, ProbeOptions(spectra=False))
    ops = np.array([n.sigma_op for n in res.norms])
    info, g = res.layers[0], res.grads
    lhs = float(g.weight_grad[0, 0])
    formula = patch_multiplicity(info.kernel, info.stride) * float(g.x_norm[0]) * float(ops[1])
    assert lhs == pytest.approx(predicted_ratio * formula, rel=identity_tol(1000))
    assert lhs > formula * (1 + C1_SLACK)       # THEORY's formula, outside its premise
    bound = info.mu * float(g.x_norm[0]) * float(ops[1])
    assert lhs <= bound * (1 + C1_SLACK), (
        f"C1 violated on {info.kernel} kernel, stride {info.stride}, dilation {info.dilation}, "
        f"padding {info.padding} {info.padding_mode}: ||dD/dK|| = {lhs!r} > "
        f"mu ||x|| ||W_2|| = {info.mu} * {float(g.x_norm[0])!r} * {float(ops[1])!r} = {bound!r} "
        f"(ratio {lhs / bound!r}, slack {C1_SLACK})")


def test_unconverged_bottom_k_is_nan_never_the_smallest_of_the_top_k():
    """A top-k + bottom-k spectrum whose bottom-k solve failed (NaN) reports NaN as its
    smallest non-zero singular value, not the smallest of the top-k (reviewer's case: 1.3576
    reported where the true minimum was 0.00743)."""
    import numpy as np

    from gradcheck.probe.jacobian import Spectrum

    values = np.array([[3.0, 2.0, 1.3576, np.nan, np.nan, np.nan],
                       [3.0, 2.0, 1.5, 0.2, 0.1, 0.00743]])
    sp = Spectrum(values, np.ones(2), (400, 1200), False, "lanczos")
    got = sp.smallest_nonzero(np.finfo(np.float64).eps)
    assert np.isnan(got[0]) and got[1] == 0.00743


@pytest.mark.parametrize("shape, layer", [
    ((16, 4, 4), nn.Conv2d(16, 32, 3, padding=1, bias=False)),           # ghost: N(a+b) < ab
    ((2, 9, 9), nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)),     # batched matmul
    ((2, 8, 8), nn.Conv2d(2, 3, 3, dilation=2, padding=2, bias=False)),
    ((5, 6), nn.Linear(6, 3, bias=False)),                                # a sequence input
], ids=["conv-ghost", "conv-matmul", "conv-dilated", "linear-sequence"])
def test_fast_weight_gradient_norms_equal_the_vjp(shape, layer):
    """The ghost-norm / im2col path of the per-sample weight-gradient norms equals the vjp of
    the layer map (float64, 1e-12) on shapes that pick each branch."""
    import numpy as np

    from gradcheck.probe.gradients import _fast_norms, per_sample_weight_grads
    from gradcheck.probe.layers import record

    torch.manual_seed(0)
    head = nn.Linear(int(np.prod(layer(torch.zeros(1, *shape)).shape[1:])), 1, bias=False)
    model = nn.Sequential(layer, nn.Flatten(), head).double()
    x = torch.randn(6, *shape, dtype=torch.float64)
    tape = record(model, x)
    D = tape.D.sum()
    d = torch.autograd.grad(D, tape.z[0], retain_graph=True)[0]
    fast = _fast_norms(tape.layers[0], tape.h[0], d, 1 << 20)
    ref = per_sample_weight_grads(tape.modules[0], tape.weights[0], tape.h[0], d)
    ref = ref.reshape(len(x), -1).norm(dim=1).numpy()
    assert fast is not None
    if isinstance(layer, nn.Conv2d) and layer.in_channels == 16:   # the branch it is meant for
        n, a, b = 16, 32, 16 * 9
        assert n * n * (a + b) < a * b * n
    np.testing.assert_allclose(fast, ref, rtol=1e-12)
