"""Tests of ``gradcheck/probe/hessian.py`` against float64 oracles (STYLE.md §2, §6).

- Oracle: ``weight_hessian_opnorm`` (dense path and Lanczos path) against the dense Hessian of
  ``functional_call`` on the materialised model (``gradcheck.reference.materialize``) and
  ``eigvalsh``, for every catalogue case and layer; ``raw_weight_hessian_opnorm`` against the
  dense Hessian w.r.t. ``parametrizations.weight.original`` by ``functional_call`` on the model
  itself; ``raw_weight_grads`` / ``effective_weight_grads`` against per-sample
  ``torch.func.grad`` oracles.
- Known answers: a one-layer sigmoid net (``H = sigma''(w.x) x x^T``), identity output on
  piecewise-linear nets (``H = 0`` exactly), and the a.e. structure
  ``||H|| = |a''(z_L)| ||dz_L/dW_t||^2`` on random ReLU nets (hypothesis).
- Edge cases: 1x1 weights, a layer above ``EXACT_MAX`` entries, bad arguments, exact sn-conv.

Tolerances: dense paths ``10 n eps`` relative with ``n`` the Hessian size (STYLE.md §7) plus,
for the reference's different summation order, the same again; Lanczos at ``tol = 1e-10``
checked at ``1e-8``.
"""
from __future__ import annotations

import math

import pytest
import torch
from conftest import ALL_CASES, EPS, assert_rel_close, mlp_case, with_scheme
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, hessian

from gradcheck import reference as R
from gradcheck.models import Discriminator
from gradcheck.probe import ProbeError, ProbeOptions, probe
from gradcheck.probe.hessian import (
    EXACT_MAX,
    effective_weight_grads,
    raw_weight_grads,
    raw_weight_hessian_opnorm,
    weight_hessian_opnorm,
)
from gradcheck.probe.layers import record
from gradcheck.schemes import apply_scheme

pytestmark = pytest.mark.usefixtures("single_blas_thread")
LANCZOS_RTOL = 1e-8


def tol(n: int) -> float:
    return 10 * n * EPS


def _opnorm(H: torch.Tensor) -> float:
    n = int(math.isqrt(H.numel()))
    H = H.detach().reshape(n, n)
    return float(torch.linalg.eigvalsh((H + H.T) / 2).abs().max())


def oracle_hessian_opnorm(model: nn.Module, x1: torch.Tensor, t: int) -> float:
    """Dense Hessian of ``D`` w.r.t. the weight of probe layer ``t`` of the materialised model."""
    seq = R.materialize(model)
    pos = [i for i, m in enumerate(seq) if isinstance(m, R.PROBE_TYPES)][t]
    plain = nn.Sequential(*seq)
    w0 = seq[pos].weight.detach()
    f = lambda w: functional_call(plain, {f"{pos}.weight": w}, (x1,)).reshape(())  # noqa: E731
    return _opnorm(hessian(f)(w0))


def _layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the probe layers (module order = forward order for Sequentials)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _raw_key(model: nn.Module, name: str) -> str:
    mod = model.get_submodule(name)
    if getattr(mod, "parametrizations", None) is not None:
        return f"{name}.parametrizations.weight.original"
    return f"{name}.weight"


def oracle_raw_hessian_opnorm(model: nn.Module, x1: torch.Tensor, t: int) -> float:
    """Dense Hessian w.r.t. the raw weight by ``functional_call`` through the parametrization."""
    key = _raw_key(model, _layer_names(model)[t])
    r0 = dict(model.named_parameters())[key].detach()
    model.eval()
    f = lambda r: functional_call(model, {key: r}, (x1,)).reshape(())  # noqa: E731
    return _opnorm(hessian(f)(r0))


# ------------------------------------------------------------------------------------------------
# Oracles on the catalogue
# ------------------------------------------------------------------------------------------------

HESSIAN_CASES = [c for c in ALL_CASES if "legacy-sn" not in c.tags]


@pytest.mark.parametrize("case", HESSIAN_CASES, ids=lambda c: c.name)
def test_weight_hessian_opnorm_matches_dense_oracle(case, seed):
    """Dense path and Lanczos path against the materialised model's dense Hessian."""
    model, x = case.make(seed)
    x1 = x[:1]
    L = len(record(model.eval(), x1).layers)
    for t in range(L):
        want = oracle_hessian_opnorm(model, x1, t)
        n = int(record(model, x1).weights[t].numel())
        dense = weight_hessian_opnorm(model, x1, t)
        lanczos = weight_hessian_opnorm(model, x1, t, exact_max=0)
        atol = tol(n) * max(want, 1e-300) if want > 0 else 0.0
        assert_rel_close(dense, want, rtol=2 * tol(n), atol=atol,
                         what=f"{case.name} layer {t} dense Hessian op-norm (n={n})")
        assert_rel_close(lanczos, want, rtol=LANCZOS_RTOL, atol=atol,
                         what=f"{case.name} layer {t} Lanczos Hessian op-norm (n={n})")


@pytest.mark.parametrize("case", [c for c in HESSIAN_CASES
                                  if c.tags[-1:] in (("sn",), ("bsn",), ("ssn",), ("bssn",),
                                                     ("torch-sn",))],
                         ids=lambda c: c.name)
def test_raw_weight_hessian_opnorm_matches_dense_oracle(case, seed):
    """Through the SN map (gradcheck's exact SN family, torch's parametrization)."""
    model, x = case.make(seed)
    x1 = x[:1]
    L = len(record(model.eval(), x1).layers)
    for t in range(L):
        want = oracle_raw_hessian_opnorm(model, x1, t)
        n = int(dict(model.named_parameters())[_raw_key(model, _layer_names(model)[t])].numel())
        assert_rel_close(raw_weight_hessian_opnorm(model, x1, t), want, rtol=100 * tol(n),
                         what=f"{case.name} layer {t} raw Hessian (n={n})")
        assert_rel_close(raw_weight_hessian_opnorm(model, x1, t, exact_max=0), want,
                         rtol=LANCZOS_RTOL, what=f"{case.name} layer {t} raw Hessian Lanczos")


def test_raw_weight_hessian_equals_effective_without_parametrization(seed):
    model, x = mlp_case("tanh", output="sigmoid").make(seed)
    for t in range(3):
        assert raw_weight_hessian_opnorm(model, x[:1], t) == weight_hessian_opnorm(model, x[:1], t)


def test_raw_weight_hessian_refuses_exact_sn_conv(seed):
    case = [c for c in HESSIAN_CASES if c.tags[-1:] == ("sn-conv",)][0]
    model, x = case.make(seed)
    with pytest.raises(ProbeError, match="sn-conv"):
        raw_weight_hessian_opnorm(model, x[:1], 0)


def _fd_directional(model: nn.Module, raw: torch.Tensor, xb: torch.Tensor, E: torch.Tensor,
                    h: float = 1e-7) -> float:
    """Central difference ``(D(raw + h E) - D(raw - h E)) / 2h`` (in place, restored)."""
    vals = []
    with torch.no_grad():
        for sgn in (1.0, -1.0):
            raw.add_(sgn * h * E)
            vals.append(float(model(xb[None])))
            raw.sub_(sgn * h * E)
    return (vals[0] - vals[1]) / (2 * h)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_raw_weight_grads_match_oracles(case, seed):
    """Per-sample gradients w.r.t. the raw weights against ``torch.func.grad`` of
    ``functional_call`` through the parametrization; where that cannot run (exact sn-conv calls
    ARPACK, the legacy hook is not functional) against central finite differences along a random
    direction per input (``h = 1e-7``, small enough not to cross a (leaky) ReLU kink, which
    ``h = 1e-5`` did in one case: truncation ``~h^2``, cancellation ``~eps |D| / h ~ 1e-9 |D|``;
    checked at ``1e-6 (|D| + ||g|| ||E||)``). Without a parametrization they are the
    effective-weight gradients, also checked against ``reference.per_sample_weight_grads``."""
    model, x = case.make(seed)
    got = raw_weight_grads(model, x)
    eff = effective_weight_grads(model, x)[1]
    want_eff = R.per_sample_weight_grads(model, x)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    for t, name in enumerate(_layer_names(model)):
        mod = model.get_submodule(name)
        n = int(got[t][0].numel())
        scale = float(want_eff[t].abs().max()) + 1e-300
        torch.testing.assert_close(eff[t], want_eff[t], rtol=tol(n), atol=tol(n) * scale)
        if hasattr(mod, "weight_orig") or "sn-conv" in case.tags:
            raw = mod.weight_orig if hasattr(mod, "weight_orig") else \
                mod.parametrizations.weight.original
            for b in range(x.shape[0]):
                E = torch.randn(raw.shape, generator=gen, dtype=torch.float64)
                fd = _fd_directional(model, raw, x[b], E)
                g = got[t][b]
                with torch.no_grad():
                    D = float(model(x[b:b + 1]))
                allowed = 1e-6 * (abs(D) + float(g.norm() * E.norm()))
                assert abs(float((g * E).sum()) - fd) <= allowed, (
                    f"{case.name} layer {t} input {b}: <grad, E> {float((g * E).sum())!r} vs "
                    f"finite difference {fd!r}")
            continue
        key = _raw_key(model, name)
        r0 = dict(model.named_parameters())[key].detach()
        want = torch.stack([torch.func.grad(
            lambda r, xb=xb, key=key: functional_call(model, {key: r}, (xb[None],)).reshape(()))(r0)
            for xb in x])
        rs = float(want.detach().abs().max()) + 1e-300
        torch.testing.assert_close(got[t], want, rtol=tol(n), atol=tol(n) * rs)


# ------------------------------------------------------------------------------------------------
# Known answers and structure
# ------------------------------------------------------------------------------------------------

def _sigmoid_second(z: float) -> float:
    s = 1.0 / (1.0 + math.exp(-z))
    return s * (1 - s) * (1 - 2 * s)


def test_one_layer_sigmoid_known_answer():
    """``D = sigmoid(w.x)``: ``H = sigma''(w.x) x x^T``, ``||H|| = |sigma''(w.x)| ||x||^2``; at
    ``w.x = ln(2 + sqrt 3)`` (where ``|sigma''|`` peaks) this is ``||x||^2 / (6 sqrt 3)``."""
    x = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    z = math.log(2 + math.sqrt(3))
    model = Discriminator(nn.Linear(3, 1, bias=False), nn.Sigmoid()).double()
    with torch.no_grad():
        model[0].weight.copy_(x * z / float(x.norm()) ** 2)
    want = abs(_sigmoid_second(z)) * float(x.norm()) ** 2
    assert want == pytest.approx(float(x.norm()) ** 2 / (6 * math.sqrt(3)), rel=tol(10))
    assert_rel_close(weight_hessian_opnorm(model, x, 0), want, rtol=tol(10), what="one layer")
    assert_rel_close(weight_hessian_opnorm(model, x, 0, exact_max=0), want, rtol=LANCZOS_RTOL,
                     what="one layer, Lanczos")


@pytest.mark.parametrize("activation", ["relu", "lrelu", "linear"])
@pytest.mark.parametrize("exact_max", [EXACT_MAX, 0], ids=["dense", "lanczos"])
def test_identity_output_piecewise_linear_hessian_is_exactly_zero(activation, exact_max, seed):
    """THEORY C4: ``z_L`` is locally linear in ``W_t``; with identity output ``H = 0``."""
    for case in (mlp_case(activation), with_scheme(mlp_case(activation), "sn")):
        model, x = case.make(seed)
        for t in range(3):
            assert weight_hessian_opnorm(model, x[:1], t, exact_max=exact_max) == 0.0


@st.composite
def relu_sigmoid_mlp(draw):
    depth, seed = draw(st.integers(1, 4)), draw(st.integers(0, 2 ** 31 - 1))
    widths = [draw(st.integers(1, 8)) for _ in range(depth)]
    act = draw(st.sampled_from(["relu", "lrelu", "linear"]))
    layers, n = [], widths[0]
    for w in widths[1:]:
        layers += [nn.Linear(n, w, bias=False),
                   nn.ReLU() if act == "relu" else nn.LeakyReLU(0.3) if act == "lrelu"
                   else nn.Identity()]
        n = w
    layers.append(nn.Linear(n, 1, bias=False))
    head = Discriminator(*layers).double()
    x = torch.randn(1, widths[0], generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    apply_scheme(head, draw(st.sampled_from(["lecun", "kaiming", "orthogonal"])), x, seed=seed)
    return head, x


@settings(max_examples=30, deadline=None)
@given(relu_sigmoid_mlp())
def test_hessian_is_rank_one_outer_product_on_piecewise_linear_nets(net):
    """THEORY C4's a.e. structure: ``||H_{W_t} D|| = |a_L''(z_L)| ||dz_L/dW_t||^2`` for
    ``D = sigmoid(z_L)``, with ``dz_L/dW_t`` from the engine on the sigmoid-free head."""
    head, x = net
    model = Discriminator(*head, nn.Sigmoid())
    with torch.no_grad():
        z = float(head(x))
    g = probe(head, x, ProbeOptions(spectra=False)).grads.weight_grad[:, 0]
    for t in range(len(g)):
        n = int(record(model, x).weights[t].numel())
        want = abs(_sigmoid_second(z)) * float(g[t]) ** 2
        got = weight_hessian_opnorm(model, x, t)
        assert_rel_close(got, want, rtol=tol(10 * n), atol=tol(n) * EPS,
                         what=f"layer {t}: |a''(z_L)| ||dz_L/dW||^2 (z_L = {z:.3g})")


def test_lanczos_above_exact_max_matches_oracle(seed):
    """A 24 x 20 layer (480 > EXACT_MAX entries) with tanh: full-rank Hessian, Lanczos path."""
    model, x = mlp_case("tanh", depth=2, width=24, input_dim=20, output="sigmoid").make(seed)
    assert record(model, x[:1]).weights[0].numel() > EXACT_MAX
    want = oracle_hessian_opnorm(model, x[:1], 0)
    assert_rel_close(weight_hessian_opnorm(model, x[:1], 0), want, rtol=LANCZOS_RTOL,
                     what="Lanczos above EXACT_MAX")


def test_width_one_layers(seed):
    """1x1 weights: the Hessian is a scalar, ``sigma''(z) (dz/dw)^2``."""
    model, x = mlp_case("relu", width=1, input_dim=1, output="sigmoid").make(seed)
    for t in range(3):
        want = oracle_hessian_opnorm(model, x[:1], t)
        assert_rel_close(weight_hessian_opnorm(model, x[:1], t), want, rtol=tol(10),
                         atol=0.0, what=f"width-1 layer {t}")


def test_model_untouched_and_training_flag_restored(seed):
    model, x = with_scheme(mlp_case("lrelu"), "sn").make(seed)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weight_hessian_opnorm(model, x[:1], 1)
    raw_weight_hessian_opnorm(model, x[:1], 1)
    raw_weight_grads(model, x)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not m._forward_hooks for m in model.modules())


def test_bad_arguments(seed):
    model, x = mlp_case("relu").make(seed)
    with pytest.raises(ValueError, match="ONE input"):
        weight_hessian_opnorm(model, x, 0)
    with pytest.raises(ValueError, match="layer_index must be in"):
        weight_hessian_opnorm(model, x[:1], 3)


def test_power_iteration_fallback_known_answer():
    """The fallback used when ARPACK stops on an invariant start: power iteration on ``H^2``
    recovers ``max |eig|`` of a diagonal operator with eigenvalues of both signs."""
    from gradcheck.probe.hessian import _power_opnorm  # private: the fallback itself

    d = torch.tensor([0.5, -3.0, 2.0, 0.0], dtype=torch.float64).numpy()
    v0 = torch.ones(4, dtype=torch.float64).numpy()
    assert _power_opnorm(lambda v: d * v, v0, 1e-14, 1000) == pytest.approx(3.0, rel=1e-12)
    assert _power_opnorm(lambda v: 0 * v, v0, 1e-14, 1000) == 0.0
