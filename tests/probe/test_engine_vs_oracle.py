"""The probe engine (:mod:`gradcheck.probe`) against the float64 oracle
(:mod:`gradcheck.reference`).

Checked per sample on small float64 nets (MLPs, conv stacks, hand-built convs with 1x1 kernels,
stride 3, padding 0 and 'same', models under the SN-family schemes and under torch's two
spectral norms):

- gradient norms ``||dD/dW_i||_F``, ``||dD/dh_i||``, ``||dD/dz_i||``, ``||h_i||``, ``D``, ``||x||``;
- the three spectral norms of THEORY §0 (``sigma_R``, ``sigma_R2``, ``||W_i||_op``), ``||W||_F``
  and the scheme's divisor;
- local and cumulative Jacobian singular values on the chain, dense and Lanczos paths, and the
  Hutchinson mean squared singular value.

Tolerances:

- ``GRAD_RTOL = 1e-10`` (the brief's bound). The round-off of either side is bounded by
  ``10 * n * eps`` with ``n`` the number of float64 terms accumulated along the forward and
  backward passes; :func:`roundoff_rtol` computes it per case and the tests assert it stays
  below ``GRAD_RTOL`` (so the tolerance is never tighter than round-off).
- ``NORM_RTOL = 1e-9``: operator norms by the engine's Lanczos (``op_tol = 1e-10``; ARPACK's
  stopping rule bounds the Ritz-value error by the tolerance times the value).
- ``SPECTRUM_RTOL = 1e-10`` relative to the top singular value for full spectra (chain and dense
  paths: the same ``svdvals`` of matrices that agree to round-off; a singular value moves by
  at most the spectral-norm perturbation, Weyl).
- ``LANCZOS_RTOL = 1e-6`` for ARPACK top-k (``JacobianOptions.tol = 1e-6`` bounds the relative
  Ritz-value error of ``J^T J``-type problems by about that much); bottom-k (where not NaN)
  compared as squares, ``tol * sigma^2 + 10 n eps top^2``; Hutchinson msq within 5 standard
  deviations of its exact sampling distribution with 64 probes (:func:`hutchinson_tolerance`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import (
    ALL_CASES,
    CONV_CASES,
    EPS,
    MLP_CASES,
    SCHEME_CASES,
    NetCase,
    assert_rel_close,
    conv_case,
    custom_conv_case,
    with_scheme,
)
from torch import nn
from torch.func import grad

from gradcheck import reference as R
from gradcheck.probe import JacobianOptions, ProbeOptions, probe
from gradcheck.probe.jacobian import _Operator, _operator_spectrum  # private: matvec counts
from gradcheck.probe.layers import record

GRAD_RTOL = 1e-10
NORM_RTOL = 1e-9
SPECTRUM_RTOL = 1e-10
LANCZOS_RTOL = 1e-6
SPECTRA_INPUTS = 2      # inputs that get Jacobian spectra (each costs a dense oracle Jacobian)

pytestmark = pytest.mark.usefixtures("single_blas_thread")


# ------------------------------------------------------------------------------------------------
# Oracle helpers beyond reference.py (built only on its materialised Sequential)
# ------------------------------------------------------------------------------------------------

def oracle_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """``z_i`` (output of probe layer ``i``, bias included) by iterating the materialised
    float64 Sequential."""
    seq = list(R.materialize(model))
    out = []
    with torch.no_grad():
        h = x.detach().to(torch.float64)
        for layer in seq:
            h = layer(h)
            if isinstance(layer, R.PROBE_TYPES):
                out.append(h)
    return out


def oracle_deltas(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """``dD(x_b)/dz_i`` per sample by :func:`torch.func.grad` of the tail of the materialised
    float64 Sequential (``z_i`` = output of probe layer ``i``, bias included)."""
    seq = list(R.materialize(model))
    positions = [j for j, m in enumerate(seq) if isinstance(m, R.PROBE_TYPES)]
    out = []
    for p, z in zip(positions, oracle_outputs(model, x)):
        def tail(z1: torch.Tensor, p: int = p) -> torch.Tensor:
            h = z1.unsqueeze(0)
            for layer in seq[p + 1:]:
                h = layer(h)
            return h.reshape(-1)[0]
        out.append(torch.stack([grad(tail)(z[b]) for b in range(z.shape[0])]))
    return out


def patch_multiplicity_oracle(conv: nn.Conv2d, input_hw: tuple[int, int]) -> int:
    """Brute force: the largest number of (output position, kernel tap) pairs that read one
    input pixel, padding copies included. Column sums of the dense matrix of a one-channel
    all-ones kernel with ``conv``'s geometry (stride, padding, dilation, padding_mode)."""
    ones = nn.Conv2d(1, 1, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                     bias=False, padding_mode=conv.padding_mode).double()
    with torch.no_grad():
        ones.weight.fill_(1.0)
    M = R.dense_conv_matrix(ones, (1,) + tuple(input_hw))
    return int(round(float(M.sum(dim=0).max())))


def flat_norms(t: torch.Tensor) -> np.ndarray:
    return t.detach().reshape(t.shape[0], -1).norm(dim=1).numpy()


def roundoff_rtol(model: nn.Module, x: torch.Tensor) -> float:
    """``10 * n * eps`` with ``n`` = terms accumulated through the whole net and back: the sum of
    the per-sample sizes of every probe layer's input and output (each output entry is a sum of
    at most ``fan_in`` terms, each backward entry of at most ``fan_out``; both are bounded by
    these sizes)."""
    h, _ = R.layer_tensors(model, x[:1])
    n = sum(t[0].numel() for t in h) * 2 + 1
    return 10 * n * EPS


# ------------------------------------------------------------------------------------------------
# Measured: one probe and the oracle per case (module scope: computed once, used by many tests)
# ------------------------------------------------------------------------------------------------

@dataclass
class Measured:
    case: NetCase
    model: nn.Module
    x: torch.Tensor
    result: object          # ProbeResult


def _measure(case: NetCase, seed: int, spectra: bool) -> Measured:
    model, x = case.make(seed)
    opts = ProbeOptions(spectra=spectra, spectra_inputs=SPECTRA_INPUTS,
                        jacobian=JacobianOptions(operator_inputs=SPECTRA_INPUTS))
    return Measured(case, model, x, probe(model, x, opts))


@pytest.fixture(scope="module", params=ALL_CASES, ids=lambda c: c.name)
def measured(request, seed) -> Measured:
    """Probe of every case without spectra."""
    return _measure(request.param, seed, spectra=False)


SPECTRA_CASES = MLP_CASES + CONV_CASES + [c for c in SCHEME_CASES if "conv" in c.tags][:2]


@pytest.fixture(scope="module", params=SPECTRA_CASES, ids=lambda c: c.name)
def measured_spectra(request, seed) -> Measured:
    """Probe with spectra (default JacobianOptions: chain for MLPs, dense for small convs)."""
    return _measure(request.param, seed, spectra=True)


# ------------------------------------------------------------------------------------------------
# 1. Per-sample gradient norms (THEORY C1, C1a, C7 inputs)
# ------------------------------------------------------------------------------------------------

def test_roundoff_bound_is_below_the_gradient_tolerance(measured):
    bound = roundoff_rtol(measured.model, measured.x)
    assert bound < GRAD_RTOL, (f"{measured.case.name}: round-off 10 n eps = {bound:.2e} "
                               f"> {GRAD_RTOL}")


def test_D_and_input_norm_match_oracle(measured):
    name, g = measured.case.name, measured.result.grads
    h, D = R.layer_tensors(measured.model, measured.x)
    assert_rel_close(g.D, D.numpy(), GRAD_RTOL, f"{name}: D", atol=GRAD_RTOL * float(D.abs().max()))
    assert_rel_close(g.x_norm, flat_norms(measured.x), GRAD_RTOL, f"{name}: ||x||")
    L = len(h)
    assert g.h_norm.shape == (L, measured.x.shape[0])
    for i in range(L):
        assert_rel_close(g.h_norm[i], flat_norms(h[i]), GRAD_RTOL, f"{name}: ||h_{i}||",
                         atol=GRAD_RTOL * float(flat_norms(h[i]).max()))


def test_weight_grad_norms_match_oracle(measured):
    """``||dD/dW_i||_F`` per sample w.r.t. the effective weight (atol relative to the layer's
    largest per-sample norm, for samples whose gradient is exactly or nearly zero)."""
    name, g = measured.case.name, measured.result.grads
    expected = [flat_norms(t) for t in R.per_sample_weight_grads(measured.model, measured.x)]
    assert g.weight_grad.shape == (len(expected), measured.x.shape[0])
    for i, e in enumerate(expected):
        assert_rel_close(g.weight_grad[i], e, GRAD_RTOL, f"{name}: ||dD/dW_{i}||_F",
                         atol=GRAD_RTOL * float(e.max()))


def test_activation_grad_norms_match_oracle(measured):
    name, g = measured.case.name, measured.result.grads
    expected = [flat_norms(t) for t in R.per_sample_input_grads(measured.model, measured.x)]
    for i, e in enumerate(expected):
        assert_rel_close(g.act_grad[i], e, GRAD_RTOL, f"{name}: ||dD/dh_{i}||",
                         atol=GRAD_RTOL * float(e.max()))


def test_delta_norms_match_oracle(measured):
    name, g = measured.case.name, measured.result.grads
    expected = [flat_norms(t) for t in oracle_deltas(measured.model, measured.x)]
    for i, e in enumerate(expected):
        assert_rel_close(g.delta[i], e, GRAD_RTOL, f"{name}: ||dD/dz_{i}||",
                         atol=GRAD_RTOL * float(e.max()))


@pytest.mark.parametrize("case", [MLP_CASES[1], CONV_CASES[1]], ids=lambda c: c.name)
def test_gradient_chunking_does_not_change_results(case, seed):
    """Input chunks of 2 (``chunk``) and one-sample weight-gradient chunks (``max_elements=1``)
    give the same numbers as one pass: the per-sample computations are independent."""
    model, _ = case.make(seed)
    x = case.inputs(seed, batch=5)
    whole = probe(model, x, ProbeOptions(spectra=False)).grads
    parts = probe(model, x, ProbeOptions(spectra=False, chunk=2, max_elements=1)).grads
    for f in ("x_norm", "D", "weight_grad", "act_grad", "delta", "h_norm"):
        a, b = getattr(parts, f), getattr(whole, f)
        assert a.shape == b.shape, f"{case.name}: {f} shape {a.shape} != {b.shape}"
        assert_rel_close(a, b, GRAD_RTOL, f"{case.name}: chunked {f}",
                         atol=GRAD_RTOL * float(np.abs(b).max()))


# ------------------------------------------------------------------------------------------------
# Layer descriptions
# ------------------------------------------------------------------------------------------------

def test_layer_info_matches_modules_and_oracle_shapes(measured):
    name, layers = measured.case.name, measured.result.layers
    seq = R.materialize(measured.model)
    mods = [m for m in seq if isinstance(m, R.PROBE_TYPES)]
    h, _ = R.layer_tensors(measured.model, measured.x[:1])
    z = oracle_outputs(measured.model, measured.x[:1])
    W = R.effective_weights(measured.model)
    assert [layer.index for layer in layers] == list(range(len(mods)))
    for i, (info, mod, w) in enumerate(zip(layers, mods, W)):
        where = f"{name}: layer {i} ({info.name})"
        assert info.weight_shape == tuple(w.shape), where
        assert info.input_shape == tuple(h[i].shape[1:]), where
        assert info.output_shape == tuple(z[i].shape[1:]), where
        assert info.fan_in == w[0].numel(), where
        assert info.fan_out == w.shape[0] * w[0, 0].numel(), where
        assert info.has_bias == (mod.bias is not None), where
        if isinstance(mod, nn.Conv2d):
            assert info.kind == "conv" and info.kernel == tuple(mod.kernel_size), where
            assert info.stride == tuple(mod.stride), where
            assert info.dilation == tuple(mod.dilation), where
            assert info.padding_mode == mod.padding_mode, where
            if mod.padding == "same":
                expect_pad = tuple(d * (k - 1) // 2 for d, k in zip(mod.dilation, mod.kernel_size))
            elif mod.padding == "valid":
                expect_pad = (0, 0)
            else:
                expect_pad = tuple(mod.padding)
            assert info.padding == expect_pad, where
            (kh, kw), (sh, sw) = mod.kernel_size, mod.stride
            # THEORY §0's formula (stated for dilation 1, zero padding) is a floor; outside
            # that premise mu may be larger; that it bounds the real multiplicity is the next test.
            theory_mu = math.sqrt(math.ceil(kh / sh) * math.ceil(kw / sw))
            if mod.dilation == (1, 1) and mod.padding_mode == "zeros":
                assert info.mu == theory_mu, where
            else:
                assert info.mu >= theory_mu, where
        else:
            assert info.kind == "linear" and info.kernel == (1, 1) and info.mu == 1.0, where


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.name)
def test_mu_squared_bounds_patch_multiplicity(case, seed):
    """C1's conv factor needs ``mu_t^2 >= `` the number of patches reading any input pixel
    (THEORY C1: ``||P_t||_F^2 = sum_p mult(p) x_p^2 <= mu_t^2 ||x||^2``). Brute-force
    multiplicity from the dense matrix of an all-ones kernel with the layer's geometry.

    Fails (engine/theory gap) where ``LayerInfo.mu`` applies THEORY's dilation-1, zero-padding
    formula ``sqrt(ceil(k_h/s_h) ceil(k_w/s_w))`` to layers outside that premise: dilation 2 with
    stride 2 (all taps land on the stride lattice: 2x2 kernel, multiplicity 4, mu^2 = 1) and
    reflect padding (pixels next to the border are read again through their mirror copies: 3x3
    kernel, multiplicity 16, mu^2 = 9). See test_known_answers.py::test_c1_counterexample_*.
    """
    model, x = case.make(seed)
    res = probe(model, x, ProbeOptions(spectra=False))
    mods = [m for m in R.materialize(model) if isinstance(m, R.PROBE_TYPES)]
    bad = []
    for info, mod in zip(res.layers, mods):
        if info.kind != "conv":
            continue
        mult = patch_multiplicity_oracle(mod, info.input_shape[1:])
        if info.mu ** 2 < mult:
            bad.append(f"layer {info.index} (kernel {info.kernel}, stride {info.stride}, "
                       f"dilation {info.dilation}, padding {info.padding} {info.padding_mode}, "
                       f"input {info.input_shape}): mu^2 = {info.mu ** 2:g} < multiplicity {mult}")
    assert not bad, f"{case.name}: " + "; ".join(bad)


# ------------------------------------------------------------------------------------------------
# 3. Spectral norms of the effective weights (THEORY §0)
# ------------------------------------------------------------------------------------------------

def test_spectral_norms_match_oracle(measured):
    name, norms = measured.case.name, measured.result.norms
    W = R.effective_weights(measured.model)
    op = R.operator_norms(measured.model, measured.x[0])
    got = np.array([[n.sigma_R, n.sigma_R2, n.sigma_op, n.frobenius] for n in norms])
    want = np.array([[float(R.singular_values(w.reshape(w.shape[0], -1))[0]),
                      float(R.singular_values(w.transpose(0, 1).reshape(w.shape[1], -1))[0]),
                      o, float(w.norm())] for w, o in zip(W, op)])
    for j, what in enumerate(("sigma_R", "sigma_R2", "sigma_op", "frobenius")):
        assert_rel_close(got[:, j], want[:, j], NORM_RTOL, f"{name}: {what} per layer")


def _raw_weight(mod: nn.Module) -> torch.Tensor:
    params = getattr(mod, "parametrizations", None)
    if params is not None:
        return params.weight.original.detach()
    return mod.weight_orig.detach()          # legacy torch.nn.utils.spectral_norm


def _top(m: torch.Tensor) -> float:
    return float(R.singular_values(m)[0])


@pytest.mark.parametrize("case", SCHEME_CASES, ids=lambda c: c.name)
def test_scheme_divisor_matches_raw_weights(case, seed):
    """``sigma_scheme`` (the divisor, THEORY C6a's ``r_hat`` input) and ``raw_sigma_R``:
    effective weight ``= c * raw / sigma_scheme`` for every normalised layer, and the divisor is
    the scheme's formula on the raw weight (sn/ssn ``sigma_R``, bsn/bssn the mean of
    ``sigma_R`` and ``sigma_R2``, sn-conv the dense-matrix ``||Conv||_op``); torch's two spectral
    norms divide by their own ``u^T W v``, which only the first identity checks."""
    model, x = case.make(seed)
    res = probe(model, x, ProbeOptions(spectra=False))
    mods = [m for m in model.modules() if isinstance(m, R.PROBE_TYPES)]
    W = R.effective_weights(model)
    for info, norm, mod, w in zip(res.layers, res.norms, mods, W):
        where = f"{case.name}: layer {info.index}"
        raw = _raw_weight(mod).double()
        r_R = _top(raw.reshape(raw.shape[0], -1))
        r_R2 = _top(raw.transpose(0, 1).reshape(raw.shape[1], -1))
        assert_rel_close(norm.raw_sigma_R, r_R, NORM_RTOL, f"{where}: raw_sigma_R")
        assert_rel_close(w.numpy(), (case.scale * raw / norm.sigma_scheme).numpy(), NORM_RTOL,
                         f"{where}: W_eff = c W_raw / sigma_scheme",
                         atol=NORM_RTOL * float(w.abs().max()))
        if {"sn", "ssn"} & set(case.tags):
            expected = r_R
        elif {"bsn", "bssn"} & set(case.tags):
            expected = (r_R + r_R2) / 2
        elif "sn-conv" in case.tags:
            expected = (_top(R.dense_conv_matrix(mod, info.input_shape, weight=raw))
                        if info.kind == "conv" else r_R)
        else:
            continue
        assert_rel_close(norm.sigma_scheme, expected, NORM_RTOL, f"{where}: sigma_scheme")


# ------------------------------------------------------------------------------------------------
# 2. Jacobian spectra: chain (MLP) and dense (conv) paths
# ------------------------------------------------------------------------------------------------

def _oracle_spectra(model, x, which: str, i: int) -> list[torch.Tensor]:
    fn = R.layer_jacobian if which == "local" else R.cumulative_jacobian
    return [fn(model, x[b], i).detach() for b in range(SPECTRA_INPUTS)]


def test_full_jacobian_spectra_match_oracle(measured_spectra):
    m = measured_spectra
    name, res = m.case.name, m.result
    L = len(res.layers)
    assert len(res.local) == L and len(res.cumulative) == L - 1, name
    expected_method = "chain" if "dense" in m.case.tags else "dense"
    for which, specs in (("local", res.local), ("cumulative", res.cumulative)):
        for i, spec in enumerate(specs):
            where = f"{name}: {which} Jacobian {i} ({spec.method})"
            assert spec.full and spec.method == expected_method, where
            Js = _oracle_spectra(m.model, m.x, which, i)
            assert spec.shape == tuple(Js[0].shape), where
            assert spec.values.shape[0] == SPECTRA_INPUTS, where
            for b, J in enumerate(Js):
                s = R.singular_values(J).numpy()
                top = max(float(s[0]), np.finfo(np.float64).tiny)
                assert_rel_close(spec.values[b], s, 0.0, f"{where}, input {b}",
                                 atol=SPECTRUM_RTOL * top)
                msq = float((J ** 2).sum()) / min(J.shape)
                assert_rel_close(spec.msq[b], msq, SPECTRUM_RTOL, f"{where}, input {b}: msq",
                                 atol=SPECTRUM_RTOL * top ** 2)


# ------------------------------------------------------------------------------------------------
# 2. Jacobian spectra: Lanczos path (top-k, bottom-k, Hutchinson)
# ------------------------------------------------------------------------------------------------

# Every Jacobian of these nets except the final 1 x n row has min(m, n) >= 18 > k + 2, so ARPACK
# can return k = 3 values; dense_max=1 sends every such Jacobian to Lanczos and only the 1 x n
# row to the dense path (dense_max=0 crashes on that row: see the test after this block).
LANCZOS_K = 3
HUTCHINSON_PROBES = 64
HUTCHINSON_SDS = 5.0
LANCZOS_CASES = [
    conv_case(depth=3, channels=2, image_size=5, stride_every=2),
    custom_conv_case("lanczos-k4-s2", [dict(out=3, kernel_size=4, stride=2, padding=1),
                                       dict(out=2, kernel_size=3, padding=1)], (2, 6, 6)),
    with_scheme(conv_case(depth=3, channels=2, image_size=5, stride_every=2), "sn"),
]
LANCZOS_OPTS = JacobianOptions(dense_max=1, k=LANCZOS_K, operator_inputs=SPECTRA_INPUTS,
                               hutchinson_probes=HUTCHINSON_PROBES, tol=1e-6, seed=3)


@pytest.fixture(scope="module", params=LANCZOS_CASES, ids=lambda c: c.name)
def measured_lanczos(request, seed) -> Measured:
    case = request.param
    model, x = case.make(seed)
    opts = ProbeOptions(spectra=True, spectra_inputs=SPECTRA_INPUTS, jacobian=LANCZOS_OPTS)
    return Measured(case, model, x, probe(model, x, opts))


def hutchinson_tolerance(J: torch.Tensor, probes: int, sds: float) -> float:
    """Tolerance on the Hutchinson estimate of ``msq = tr(J^T J) / min(m, n)``.

    With Rademacher probes ``p``, ``E ||J p||^2 = tr(A)`` for ``A = J^T J`` and
    ``Var ||J p||^2 = 2 (||A||_F^2 - sum_j A_jj^2)`` (the diagonal of ``A`` is seen exactly).
    The engine averages ``probes`` independent probes, so its standard deviation is
    ``sqrt(2 (||A||_F^2 - sum A_jj^2) / probes)``; we allow ``sds`` of those (5 standard
    deviations: two-sided Gaussian tail 6e-7; the probe seed is fixed, so the outcome is
    deterministic), divided by ``min(m, n)`` like the estimate.
    """
    A = J.T @ J
    var = 2.0 * (float((A ** 2).sum()) - float((torch.diagonal(A) ** 2).sum()))
    return sds * math.sqrt(max(var, 0.0) / probes) / min(J.shape)


def test_lanczos_top_bottom_and_hutchinson_match_oracle(measured_lanczos):
    m = measured_lanczos
    name, res = m.case.name, m.result
    compared_bottom = 0
    for which, specs in (("local", res.local), ("cumulative", res.cumulative)):
        for i, spec in enumerate(specs):
            Js = _oracle_spectra(m.model, m.x, which, i)
            where = f"{name}: {which} Jacobian {i} {spec.shape} ({spec.method})"
            if min(spec.shape) == 1:     # the 1 x n row is always dense (dense_max=1)
                assert spec.method == "dense" and spec.full, where
                continue
            assert spec.method == "lanczos" and not spec.full, where
            k = min(LANCZOS_K, min(spec.shape) - 2)
            assert spec.values.shape == (SPECTRA_INPUTS, 2 * k), where
            for b, J in enumerate(Js):
                s = R.singular_values(J).numpy()
                top = float(s[0])
                assert_rel_close(spec.values[b, :k], s[:k], LANCZOS_RTOL,
                                 f"{where}, input {b}: top-{k}")
                bottom = spec.values[b, k:]
                ok = ~np.isnan(bottom)
                # bottom-k come from eigenvalues lambda = sigma^2 of the Gram; ARPACK bounds the
                # eigenvalue error by tol * |lambda| plus Gram round-off ~ 10 n eps top^2.
                n, compared_bottom = min(J.shape), compared_bottom + int(ok.sum())
                assert_rel_close(bottom[ok] ** 2, s[-k:][ok] ** 2, LANCZOS_OPTS.tol,
                                 f"{where}, input {b}: bottom-{k} (squared)",
                                 atol=10 * n * EPS * top ** 2)
                tol = hutchinson_tolerance(J, HUTCHINSON_PROBES, HUTCHINSON_SDS)
                msq = float((J ** 2).sum()) / min(J.shape)
                assert_rel_close(spec.msq[b], msq, 0.0,
                                 f"{where}, input {b}: Hutchinson msq ({HUTCHINSON_PROBES} "
                                 f"probes, {HUTCHINSON_SDS} sd)", atol=tol)
    assert compared_bottom > 0, f"{name}: every bottom-k was NaN; the bottom check is vacuous"


def test_lanczos_path_forced_with_dense_max_zero(seed):
    """``JacobianOptions(dense_max=0)`` must put every Jacobian on the Lanczos path, including the
    final ``1 x n`` row ``dD/dh[L-1]`` (whose single singular value is ``||row||``).

    Known engine bug: ``_operator_spectrum`` uses ``k = min(opts.k, min(m, n) - 2)``, which is
    -1 for the row, and ``scipy.sparse.linalg.svds`` raises ``ValueError: k must be an integer
    satisfying 0 < k < min(A.shape)``. The same crash hits any Jacobian with
    ``min(m, n) <= 2`` that is not small enough for the dense path (e.g. the final row when
    ``n > dense_elems``).
    """
    case = LANCZOS_CASES[0]
    model, x = case.make(seed)
    opts = ProbeOptions(spectra=True, spectra_inputs=1,
                        jacobian=JacobianOptions(dense_max=0, k=LANCZOS_K))
    res = probe(model, x, opts)
    row = res.local[-1]
    expected = float(R.layer_jacobian(model, x[0], len(res.layers) - 1).norm())
    assert_rel_close(row.top, [expected], LANCZOS_RTOL, f"{case.name}: ||dD/dh[L-1]||")


def test_lanczos_respects_max_matvecs_budget(seed):
    """``JacobianOptions.max_matvecs`` bounds the work of one Lanczos spectrum.

    Counting every application of ``J`` or ``J^T`` (``_Operator.matvecs``): the top-k solve and
    the bottom-k solve on the Gram (2 applications per Gram product) may each use at most
    ``2 * max_matvecs``, plus one per Hutchinson probe, plus ``2 * ncv`` for ARPACK's last
    restart that may overrun; we allow ``4 * max_matvecs + probes + 100``.

    Known engine bug: ``_operator_spectrum`` passes ``max_matvecs`` to ARPACK as ``maxiter``,
    which counts implicit restarts (each up to ``ncv`` Gram products), not matvecs: with
    ``max_matvecs=50`` a 50 x 50 conv Jacobian whose bottom-k does not converge takes 1837
    applications (measured; 16857-20567 at the default 600), so a non-converging bottom solve
    costs ~30x the stated budget on real nets.
    """
    case = LANCZOS_CASES[0]
    model, x = case.make(seed)
    tape = record(model, x[:1])
    budget, probes = 50, 16
    opts = JacobianOptions(dense_max=1, k=LANCZOS_K, max_matvecs=budget, hutchinson_probes=probes)
    op = _Operator(tape.h[1], tape.h[0])            # local Jacobian 0: 50 x 50
    _operator_spectrum(op, opts)
    allowed = 4 * budget + probes + 100
    assert op.matvecs <= allowed, (
        f"{case.name}: local Jacobian 0 ({op.m} x {op.n}) used {op.matvecs} applications of "
        f"J / J^T with max_matvecs={budget} (allowed {allowed}; ratio {op.matvecs / allowed:.1f})")


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.bias_free], ids=lambda c: c.name)
def test_c11_bound_equals_c1_on_every_chain_case(case, seed):
    """THEORY §6: on a chain F(h_{t-1}) B(z_t) = lambda_L prod_{i != t} ||W_i||_op times the
    operator norms of the parameter-free maps on the chain, so C11's rhs equals C1's exactly
    where those are flatten/reshape (norm 1) and is C1's times the pooling norms otherwise."""
    from gradcheck.claims import Context, Setting
    from gradcheck.claims.c1_gradient_bound import bound as c1_bound_of
    from gradcheck.claims.c11_graph_bound import graph_bound

    model, x = case.make(seed)
    res = probe(model, x, ProbeOptions(spectra=False))
    assert res.facts.chain, res.facts.describe()
    ctx = Context(res, Setting(None))
    c11 = graph_bound(ctx)[:, None] * res.grads.x_norm[None, :]
    pools = math.prod(m.opnorm for m in res.facts.linear_maps)   # 1 without pooling
    assert pools <= 1 + 1e-15
    assert_rel_close(c11, pools * c1_bound_of(ctx), 1e-12, f"{case.name}: C11 rhs vs C1 rhs")
