"""THEORY C3a (identity) and C3b (inequality) on random SN-family nets, and the module.

Property tests (hypothesis, float64) over dense and conv nets: depth 1-6, widths 1-32 (conv
channels 1-8), kernels 1-5, strides 1-3, paddings 0-2, activations relu / lrelu / tanh / linear
(C3 holds for any activation), identity or sigmoid output, the SN-family schemes with scale ``c``
in [0.5, 2], random seeds. C3 is about ``sigma = sigma_R``: the applicable layers are those of
:func:`applicable` below (all SN / SSN layers, the dense layers of the others; the claims check
says "not applicable" for the rest); a negative control shows the formula is wrong for a BSN
conv layer.

Oracles: autograd through gradcheck's exact parametrization (``raw_weight_grads``) and through
torch's own ``parametrizations.spectral_norm`` after its power iteration has converged.

Tolerances: ``inequality_tol(eps, L, width)`` (the C1 module's), times
``1 + sigma_1 / (sigma_1 - sigma_2)`` where the top singular vectors enter (C3a); absolute that
times ``||G||_F / sigma``, the size of both terms of C3a.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import EPS, assert_rel_close
from conftest import net_params as shared_net_params
from hypothesis import assume, given, settings, target
from torch import nn

from gradcheck.claims import c3_sn_map_gradient as claim
from gradcheck.models import Discriminator
from gradcheck.probe import ProbeOptions, probe
from gradcheck.probe.hessian import effective_weight_grads, raw_weight_grads
from gradcheck.schemes import scaling_of
from gradcheck.schemes.registry import SCHEMES
from gradcheck.theory.bounds import inequality_tol, lambda_L, prod_except
from gradcheck.theory.reparam import (
    c3b_bound,
    c3b_dense_bound,
    sn_raw_gradient,
    top_singular_triple,
)
from proofs_numeric import c3_sn_map_gradient as C3
from proofs_numeric._base import asserted, context
from proofs_numeric.c2_equal_allocation import build_generic

pytestmark = pytest.mark.usefixtures("single_blas_thread")
ALL_ACTIVATIONS = ("relu", "lrelu", "tanh", "linear")


net_params = shared_net_params(activations=ALL_ACTIVATIONS, outputs=("identity", "sigmoid"),
                              schemes=C3.SN_SCHEMES)


def _layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def gap_factor(W: torch.Tensor) -> float:
    """``1 + sigma_1 / (sigma_1 - sigma_2)`` of ``W.reshape(c_out, -1)`` (``sigma_2 = 0`` for a
    rank-one shape): how much round-off in ``W`` moves its top singular vectors."""
    s = torch.linalg.svdvals(W.detach().reshape(W.shape[0], -1).double())
    s2 = float(s[1]) if s.numel() > 1 else 0.0
    return 1.0 + float(s[0]) / max(float(s[0]) - s2, float(s[0]) * 1e-300)


def applicable(module, weight: torch.Tensor) -> bool:
    """C3 with ``sigma = sigma_R`` applies: SN/SSN anywhere, the other SN kinds on dense layers
    (exact sigma)."""
    sc = scaling_of(module)
    return sc is not None and sc.mode == "exact" and (sc.kind == "sn" or weight.dim() == 2)


def _setup(p):
    """(model, x, probe result, base tolerance, G_eff, raw grads)."""
    model, x = build_generic(p)
    res = probe(model, x, ProbeOptions(spectra=False))
    width = max(max(int(np.prod(i.input_shape)), int(np.prod(i.output_shape)))
                for i in res.layers)
    tol = inequality_tol(EPS, len(res.layers), width)
    return model, x, res, tol, effective_weight_grads(model, x)[1], raw_weight_grads(model, x)


@settings(max_examples=50, deadline=None)
@given(net_params())
def test_c3a_raw_gradient_equals_miyato_formula(p):
    """THEORY C3a: ``dD/dW = (G - <G, W_bar> u v^T) / sigma(W)`` per input, ``G = c dD/dW_eff``,
    against autograd through the parametrization."""
    model, x, res, tol, G_eff, raw = _setup(p)
    checked = 0
    for t, mod in enumerate(_layers(model)):
        W = mod.parametrizations.weight.original.detach()
        if not applicable(mod, W):
            continue
        g = gap_factor(W)
        assume(g < 1e6)   # the premise: a simple top singular value
        G = scaling_of(mod).scale * G_eff[t]
        ref = float(G.abs().max()) / float(top_singular_triple(W)[0])
        assert_rel_close(raw[t].numpy(), sn_raw_gradient(G, W).numpy(), rtol=tol * g,
                         atol=tol * g * ref, what=f"C3a layer {t}, gap factor {g:.3g}, {p}")
        checked += 1
    assert checked >= 1   # the dense head is always applicable


@settings(max_examples=50, deadline=None)
@given(net_params())
def test_c3b_raw_gradient_norm_leq_bound(p):
    """THEORY C3b: ``||dD/dW||_F <= (||G||_F + ||G||_*) / sigma(W)`` for every input."""
    model, x, res, tol, G_eff, raw = _setup(p)
    for t, mod in enumerate(_layers(model)):
        W = mod.parametrizations.weight.original.detach()
        if not applicable(mod, W):
            continue
        G = scaling_of(mod).scale * G_eff[t]
        for b in range(len(x)):
            lhs, rhs = float(raw[t][b].norm()), c3b_bound(G[b], W)
            target(lhs / rhs if rhs > 0 else 0.0, label=f"C3b ratio, layer {t}, input {b}")
            assert lhs <= rhs * (1 + tol), (
                f"C3b violated on layer {t} input {b}: {lhs!r} > {rhs!r} "
                f"(ratio {lhs / rhs!r}, tol {tol:.3g}); {p}")


@settings(max_examples=60, deadline=None)
@given(net_params(conv=False))
def test_c3b_dense_corollary(p):
    """THEORY C3b, dense one-input corollary: ``||dD/dW||_F <= 2 lambda_L ||x|| / sigma(W)``
    under SN (``c prod_{i != t} ||W_i||_op = 1``); with SSN / BSSN times that factor."""
    model, x, res, tol, G_eff, raw = _setup(p)
    ops = np.array([n.sigma_op for n in res.norms])
    lam = lambda_L(p["output"])
    for t, mod in enumerate(_layers(model)):
        W = mod.parametrizations.weight.original.detach()
        c = scaling_of(mod).scale
        sigma = float(top_singular_triple(W)[0])
        others = c * float(prod_except(ops)[t])
        if SCHEMES[p["scheme"]].unit_norm:
            assert abs(others - 1) <= tol
            others = 1.0     # THEORY's statement, literally
        lhs = raw[t].reshape(len(x), -1).norm(dim=1).numpy()
        rhs = c3b_dense_bound(res.grads.x_norm, sigma, lam, others)
        worst = int(np.argmax(lhs / rhs))
        target(float(lhs[worst] / rhs[worst]), label=f"C3b dense ratio, layer {t}")
        assert np.all(lhs <= rhs * (1 + tol)), (
            f"C3b dense corollary violated on layer {t} input {worst}: {lhs[worst]!r} > "
            f"{rhs[worst]!r} (ratio {lhs[worst] / rhs[worst]!r}, tol {tol:.3g}); {p}")


def test_c3b_dense_corollary_factor_two_is_needed():
    """Known answer near the worst case: SN net ``x -> w . W_bar x`` with ``W = diag(2, 1.98)``
    (``u = v = e1``), unit head ``w = e2`` and ``x = e2``. Then ``G = e2 e2^T``
    (``||G|| = ||x|| = 1``, C1 tight), ``<G, u v^T> = 0`` and ``<G, W_bar> = 0.99``, so
    ``||dD/dW||_F = sqrt(1 + 0.99^2) / sigma``: ratio ``sqrt(1 + 0.99^2) / 2 = 0.7036`` to the
    corollary ``2 ||x|| / sigma``, i.e. above 1 for the same bound without its factor 2."""
    model = Discriminator(nn.Linear(2, 2, bias=False), nn.Identity(),
                          nn.Linear(2, 1, bias=False)).double()
    x = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        model[0].weight.copy_(torch.diag(torch.tensor([2.0, 1.98], dtype=torch.float64)))
        model[2].weight.copy_(torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    from gradcheck.schemes import apply_spectral
    apply_spectral(model, "sn", x)
    raw = raw_weight_grads(model, x)[0][0]
    W = model[0].parametrizations.weight.original.detach()
    bound = float(c3b_dense_bound(1.0, float(top_singular_triple(W)[0]), 1.0))
    assert_rel_close(float(raw.norm()) / bound, math.sqrt(1 + 0.99 ** 2) / 2,
                     rtol=inequality_tol(EPS, 2, 2), what="C3b dense corollary ratio")


def _torch_sn_net(seed: int, conv: bool) -> tuple[nn.Module, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if conv:
        layers = [nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.Tanh(),
                  nn.Conv2d(4, 3, 2, stride=2, bias=False), nn.LeakyReLU(0.2), nn.Flatten(),
                  nn.Linear(27, 1, bias=False), nn.Sigmoid()]
        x = torch.randn(3, 2, 6, 6, generator=gen, dtype=torch.float64)
    else:
        layers = [nn.Linear(6, 7, bias=False), nn.Tanh(), nn.Linear(7, 5, bias=False),
                  nn.ReLU(), nn.Linear(5, 1, bias=False)]
        x = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    model = Discriminator(*layers).double()
    for m in _layers(model):
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))
        torch.nn.utils.parametrizations.spectral_norm(m)
        sn = m.parametrizations.weight[0]
        U, _, Vh = torch.linalg.svd(m.parametrizations.weight.original.detach()
                                    .reshape(m.weight.shape[0], -1))
        with torch.no_grad():   # torch's power iteration, converged: the exact singular pair
            sn._u.copy_(U[:, 0])
            sn._v.copy_(Vh[0])
    return model.eval(), x


@pytest.mark.parametrize("conv", [False, True], ids=["dense", "conv"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c3a_matches_torch_spectral_norm(conv, seed):
    """C3a against an independent implementation: autograd through torch's own
    ``parametrizations.spectral_norm`` in eval mode, ``sigma = u^T W v`` with its stored vectors
    set to the converged (exact) top singular pair; its derivative comes from that expression,
    not from an SVD backward."""
    model, x = _torch_sn_net(seed, conv)
    G_eff = effective_weight_grads(model, x)[1]
    raw = raw_weight_grads(model, x)
    for t, mod in enumerate(_layers(model)):
        W = mod.parametrizations.weight.original.detach()
        s = torch.linalg.svdvals(W.reshape(W.shape[0], -1))
        tol = inequality_tol(EPS, 3, 72) * gap_factor(W)
        ref = float(G_eff[t].abs().max()) / float(s[0])
        assert_rel_close(raw[t].numpy(), sn_raw_gradient(G_eff[t], W).numpy(), rtol=tol,
                         atol=tol * ref, what=f"C3a vs torch spectral_norm, layer {t}")


def test_c3a_formula_does_not_apply_to_bsn_conv_layers():
    """Negative control: BSN divides a conv kernel by ``(sigma_R + sigma_R2) / 2``, not
    ``sigma_R``, so Miyato's formula with ``sigma_R`` misses the raw gradient by far more than
    round-off there (which is why ``applicable`` excludes such layers)."""
    p = dict(conv=True, depth=2, seed=3, widths=[4, 5, 3, 1, 1, 1], kernels=[3, 3, 1, 1, 1, 1],
             strides=[1, 1, 1, 1, 1, 1], paddings=[1, 0, 0, 0, 0, 0], image=6,
             activation="tanh", slope=0.2, output="identity", scheme="bsn", scale=1.0)
    model, x = build_generic(p)
    mod = _layers(model)[0]
    W = mod.parametrizations.weight.original.detach()
    assert not applicable(mod, W)
    raw = raw_weight_grads(model, x)[0]
    pred = sn_raw_gradient(effective_weight_grads(model, x)[1][0], W)
    assert float((raw - pred).norm() / raw.norm()) > 1e-3
    rows = [r for r in claim.check(context(model, x, "bsn", 1.0, 3)) if r["layer"] == 0]
    assert len(rows) == 2 and all(not asserted(r) and r["note"].startswith(
        "not applicable: layer divides by (sigma_R + sigma_R2)/2") for r in rows), rows


@pytest.mark.parametrize("seed", range(6))
def test_module_instances_hold(seed):
    """``proofs_numeric.c3_sn_map_gradient``: every row of a few sampled instances holds."""
    rows = C3.instance(C3.sample(np.random.default_rng([seed, 3])))
    assert {r.claim for r in rows} == set(C3.CLAIMS)
    for r in rows:
        assert r.kind == C3.CLAIMS[r.claim]
        assert r.holds, f"{r.claim} {r.note}: ratio {r.ratio!r}, tol {r.tol!r}, {r.params}"


@pytest.mark.parametrize("seed", range(3))
def test_module_rows_are_the_claims_check(seed):
    """One check, many callers: the module's C3a / C3b rows are the asserted rows of
    ``claims.c3_sn_map_gradient.check`` (same lhs, rhs, verdict), followed by the dense
    corollary rows (one per dense layer the check applied to)."""
    p = C3.sample(np.random.default_rng([seed, 3]))
    ctx = C3.make_context(p)
    want = [r for r in claim.check(ctx) if asserted(r)]
    got = C3.instance(p)
    assert [(r.claim, r.lhs, r.rhs, r.holds) for r in got[:len(want)]] == \
        [(r["claim"], r["lhs"], r["rhs"], r["holds"]) for r in want]
    dense = {r["layer"] for r in want if ctx.layers[r["layer"]].kind == "linear"}
    extra = got[len(want):]
    assert len(extra) == len(dense) and all("dense corollary" in r.note for r in extra)
