"""The claim registry and the rows every module emits: kinds, premises, verdict rules.

Hand-built contexts (no model) and one real small model (an SN MLP probed end to end)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gradcheck
from gradcheck.claims import (
    CHECK_COLUMNS,
    KINDS,
    MODULES,
    PREMISES,
    REGISTRY,
    Context,
    Setting,
    check_all,
)
from gradcheck.probe.facts import LinearMapFact

from .conftest import (
    BN_NODE,
    act_node,
    acts,
    chain_facts,
    context,
    conv,
    dense,
    dense_stack,
    facts,
    grads,
    layer_node,
    linear_node,
    norm_list,
    norms,
    result,
    sum_node,
)


# -- the registry ---------------------------------------------------------------------------
def test_every_claim_has_a_kind_and_known_premises():
    for cid, claim in REGISTRY.items():
        assert claim.id == cid
        assert claim.kind in KINDS, (cid, claim.kind)
        unknown = [p for p in claim.premises if p not in PREMISES]
        assert not unknown, f"{cid}: premises {unknown} are not in PREMISES"
        assert set(claim.needs) <= {"model", "lecun_twin"}, (cid, claim.needs)
        assert claim.statement


def test_claim_ids_are_unique_across_modules():
    ids = [c.id for m in MODULES for c in m.CLAIMS]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert set(REGISTRY) == set(ids) | {"C10"} and REGISTRY["C10"].kind == "empirical"
    assert gradcheck.CLAIMS is REGISTRY and gradcheck.REGISTRY is REGISTRY


def test_every_premise_is_used_and_callable():
    used = {p for c in REGISTRY.values() for p in c.premises}
    assert used <= set(PREMISES)
    assert all(callable(f) for f in PREMISES.values())


# -- rows of check_all ----------------------------------------------------------------------
X4 = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
XN = X4.norm(dim=1).numpy()


def _chain_ctx(scheme="sn", **kw):
    layers = dense_stack((4, 5, 3, 1))
    f = chain_facts(3, **kw)
    return context(result(layers, norm_list((1.0, 1.0, 1.0), sigma_scheme=2.0),
                          grads(0.5 * np.ones((3, 2)), XN), f), scheme, x=X4)


def _residual_ctx():
    layers = [dense(0, 4, 5), dense(1, 5, 5), dense(2, 5, 1)]
    g = (layer_node(0, 0, 1), act_node(1, 2), layer_node(1, 2, 3), sum_node((1, 3), 4),
         layer_node(2, 4, 5), linear_node(5, 6))
    f = facts(g, 6, 3, chain=False, skips=((1, 1),), activations=acts(1))
    return context(result(layers, norm_list((2.0, 0.5, 3.0)), grads(np.ones((3, 2)), XN), f),
                   "lecun", x=X4)


def _conv_ctx():
    layers = [conv(0, 1, 2, (4, 4)), dense(1, 8, 1)]
    g = (layer_node(0, 0, 1), act_node(1, 2), linear_node(2, 3, 0.5, "avg_pool2d"),
         linear_node(3, 4, 1.0, "flatten"), layer_node(1, 4, 5), linear_node(5, 6))
    f = facts(g, 6, 2, activations=acts(1),
              linear_maps=(LinearMapFact("avg_pool2d", "pool", 0.5, "dense"),))
    x = torch.ones(2, 1, 4, 4, dtype=torch.float64)
    ns = [norms(2.5, sigma_R=1.0, sigma_R2=1.1, sigma_scheme=1.05), norms(1.0, sigma_scheme=3.0)]
    return context(result(layers, ns, grads(np.ones((2, 2)), (4.0, 4.0)), f), "bsn", x=x)


def _overflow_ctx():
    ctx = _chain_ctx("sn")
    g = ctx.result.grads
    wg = g.weight_grad.copy()
    wg[1, 0] = math.inf
    res = result(ctx.layers, ctx.result.norms, grads(wg, g.x_norm), ctx.facts)
    return context(res, "sn", x=X4)


CONTEXTS = {
    "sn-chain": lambda: _chain_ctx("sn"),
    "lecun-chain-sigmoid": lambda: _chain_ctx("lecun", output="sigmoid"),
    "unknown-tanh": lambda: _chain_ctx(None, activation="tanh"),
    "bias-batchnorm": lambda: _chain_ctx("ssn", biases=(True, False, False),
                                         unsupported=BN_NODE),
    "trained-sn": lambda: Context(_chain_ctx().result, Setting("sn", trained=True), 0, None,
                                  X4),
    "residual": _residual_ctx,
    "conv-pool-bsn": _conv_ctx,
    "overflow": _overflow_ctx,
}


def assert_rows_well_formed(rows, what):
    assert rows, what
    for r in rows:
        assert list(r) == CHECK_COLUMNS, (what, list(r))
        claim = REGISTRY.get(r["claim"])
        assert claim is not None, (what, r)
        assert r["kind"] == claim.kind, f"{what}: {r['claim']} row has kind {r['kind']!r}, " \
                                        f"registry says {claim.kind!r}"
        assert r["holds"] == "" or isinstance(r["holds"], bool), (what, r)
        if r["note"].startswith("not applicable") or r["note"].startswith("overflow"):
            assert r["holds"] == "", f"{what}: a {r['note'][:20]!r} row has a verdict: {r}"
        if r["kind"] in ("prediction", "empirical"):
            assert r["holds"] == "", f"{what}: a {r['kind']} row has a verdict: {r}"


@pytest.mark.parametrize("name", list(CONTEXTS))
def test_hand_built_rows(name):
    assert_rows_well_formed(check_all(CONTEXTS[name]()), name)


def test_hand_built_premise_failures_never_violate():
    """Premises fail everywhere (unknown provenance, tanh, biases, a BatchNorm): no False."""
    for name in ("unknown-tanh", "bias-batchnorm"):
        bad = [r for r in check_all(CONTEXTS[name]()) if r["holds"] is False]
        assert not bad, (name, bad)


def test_overflow_context_has_no_violation():
    rows = check_all(_overflow_ctx())
    assert not [r for r in rows if r["holds"] is False]
    assert any(r["note"].startswith("overflow") for r in rows)


@pytest.fixture(scope="module")
def real_sn_mlp():
    from gradcheck.models import mlp
    from gradcheck.probe import probe
    from gradcheck.schemes import apply_scheme

    torch.manual_seed(0)
    model = mlp(3, 8, 8).double()
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    apply_scheme(model, "sn", x)
    res = probe(model, x)
    return check_all(Context(res, Setting("sn"), 0, model, x))


def test_real_model_rows(real_sn_mlp):
    assert_rows_well_formed(real_sn_mlp, "mlp(3, 8, 8) + sn")
    claims = {r["claim"] for r in real_sn_mlp}
    assert {"C1", "C1-SN", "C1a", "C2a", "C2b", "C3a", "C3b", "C4", "C5-ratio", "C6b", "C7",
            "C9a", "C11", "C11-H"} <= claims


def test_real_model_satisfies_every_asserted_claim(real_sn_mlp):
    bad = [r for r in real_sn_mlp if r["holds"] is False]
    assert not bad, bad
