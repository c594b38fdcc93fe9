"""Typed factories of HAND-BUILT measurements for the claim-module tests.

No model and no probe: every test writes down the numbers a probe would have measured
(:class:`LayerInfo`, :class:`LayerNorms`, :class:`GradientNorms`, :class:`ModelFacts` with its
:class:`CNode` graph), wraps them in a :class:`ProbeResult` and a :class:`Context`, calls a claim
module's ``check`` and compares the rows with numbers it computes itself from THEORY.md.
The expected values are never computed with the modules' own helpers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gradcheck.claims import Context, Setting
from gradcheck.probe import GradientNorms, LayerInfo, LayerNorms, ProbeResult
from gradcheck.probe.facts import ActivationFact, CNode, LinearMapFact, ModelFacts

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)   # a float32 probe: tolerances wide enough to straddle
NA = "not applicable: "

BN_NODE = "batch_norm at '1' (BatchNorm1d): normalisation layer (BatchNorm1d)"


# -- layers -------------------------------------------------------------------------------------
def dense(index: int, n_in: int, n_out: int, bias: bool = False) -> LayerInfo:
    """A dense probe layer ``W: R^n_in -> R^n_out`` (weight shape ``(n_out, n_in)``)."""
    return LayerInfo(index=index, name=str(2 * index), kind="linear",
                     weight_shape=(n_out, n_in), input_shape=(n_in,), output_shape=(n_out,),
                     kernel=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                     padding_mode="zeros", has_bias=bias, parametrized="")


def dense_stack(widths: Sequence[int]) -> list[LayerInfo]:
    """Dense layers ``widths[0] -> widths[1] -> ... -> widths[-1]``."""
    return [dense(i, a, b) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]


def conv(index: int, c_in: int, c_out: int, hw: tuple[int, int], kernel: int = 3,
         stride: int = 1, padding: int = 1, dilation: int = 1, padding_mode: str = "zeros",
         bias: bool = False) -> LayerInfo:
    """A square-kernel conv layer on a ``(c_in, H, W)`` input (output shape computed)."""
    out = [(n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1 for n in hw]
    return LayerInfo(index=index, name=str(2 * index), kind="conv",
                     weight_shape=(c_out, c_in, kernel, kernel), input_shape=(c_in, *hw),
                     output_shape=(c_out, *out), kernel=(kernel, kernel), stride=(stride, stride),
                     padding=(padding, padding), dilation=(dilation, dilation),
                     padding_mode=padding_mode, has_bias=bias, parametrized="")


def hand_tol(layers: Sequence[LayerInfo], eps: float) -> float:
    """The derived tolerance, written out from its definition (not via the module helper):
    ``10 (L + 1) sqrt(width) eps``, width = the largest per-input layer input/output size."""
    width = max(max(math.prod(i.input_shape), math.prod(i.output_shape)) for i in layers)
    return 10.0 * (len(layers) + 1) * math.sqrt(width) * eps


# -- norms --------------------------------------------------------------------------------------
def norms(sigma_op: float, *, sigma_R: float | None = None, sigma_R2: float | None = None,
          frobenius: float | None = None, sigma_scheme: float = math.nan,
          raw_sigma_R: float | None = None, op_residual: float = 0.0) -> LayerNorms:
    """One layer's norms; by default a dense-like layer (all three sigmas equal)."""
    sR = sigma_op if sigma_R is None else sigma_R
    return LayerNorms(
        sigma_R=sR, sigma_R2=sR if sigma_R2 is None else sigma_R2, sigma_op=sigma_op,
        op_residual=op_residual, op_method="dense",
        frobenius=sigma_op if frobenius is None else frobenius, sigma_scheme=sigma_scheme,
        raw_sigma_R=(sR if math.isnan(sigma_scheme) else sR * sigma_scheme)
        if raw_sigma_R is None else raw_sigma_R,
        sigma_1step=math.nan)


def norm_list(ops: Sequence[float], **kw) -> list[LayerNorms]:
    return [norms(float(s), **kw) for s in ops]


# -- gradients ----------------------------------------------------------------------------------
def grads(weight_grad, x_norm, *, delta=None, h_norm=None, act_grad=None, D=None
          ) -> GradientNorms:
    """Per-input gradient norms, ``(L, B)`` arrays (``x_norm``: ``(B,)``).

    Unless given, ``h_norm[0] = ||x||`` and ``h_norm[t] = 1`` above it, and ``delta`` is chosen so
    that the dense rank-one identity ``||dD/dW|| = ||delta|| ||h||`` (C1a) holds exactly.
    """
    wg = np.atleast_2d(np.asarray(weight_grad, dtype=np.float64))
    xn = np.asarray(x_norm, dtype=np.float64).reshape(-1)
    L, B = wg.shape
    assert B == xn.size, (wg.shape, xn.shape)
    if h_norm is None:
        h_norm = np.ones((L, B))
        h_norm[0] = xn
    h_norm = np.asarray(h_norm, dtype=np.float64).reshape(L, B)
    if delta is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = np.where(h_norm > 0, wg / np.where(h_norm > 0, h_norm, 1.0), 0.0)
    delta = np.asarray(delta, dtype=np.float64).reshape(L, B)
    return GradientNorms(
        x_norm=xn, D=np.zeros(B) if D is None else np.asarray(D, dtype=np.float64),
        weight_grad=wg, act_grad=delta.copy() if act_grad is None else np.asarray(act_grad),
        delta=delta, h_norm=h_norm)


# -- facts and graphs ---------------------------------------------------------------------------
def layer_node(t: int, inp: int, out: int) -> CNode:
    return CNode("layer", (inp,), out, math.nan, t, f"linear at '{2 * t}' (Linear)")


def act_node(inp: int, out: int, kind: str = "relu") -> CNode:
    return CNode("act", (inp,), out, 1.0, -1, f"{kind} at '?' (module)")


def linear_node(inp: int, out: int, lip: float = 1.0, op: str = "reshape") -> CNode:
    return CNode("linear", (inp,), out, lip, -1, f"{op} (model)")


def sum_node(inputs: tuple[int, ...], out: int) -> CNode:
    return CNode("sum", inputs, out, 1.0, -1, "add (model)")


def cat_node(inputs: tuple[int, ...], out: int) -> CNode:
    return CNode("cat", inputs, out, 1.0, -1, "cat (model)")


def sigmoid_node(inp: int, out: int) -> CNode:
    return CNode("sigmoid", (inp,), out, 0.25, -1, "sigmoid at '?' (Sigmoid)")


def chain_graph(n_layers: int, activation: str = "relu", output: str = "identity",
                reshape: bool = True) -> tuple[tuple[CNode, ...], int]:
    """``x -> W_0 -> a -> W_1 -> ... -> W_{L-1} [-> sigmoid] [-> reshape]``: (nodes, out value)."""
    nodes, v = [], 0
    for t in range(n_layers):
        nodes.append(layer_node(t, v, v + 1))
        v += 1
        if t < n_layers - 1 and activation != "linear":
            nodes.append(act_node(v, v + 1, activation))
            v += 1
    if output == "sigmoid":
        nodes.append(sigmoid_node(v, v + 1))
        v += 1
    elif output not in ("identity",):          # another output activation, e.g. tanh
        nodes.append(act_node(v, v + 1, output))
        v += 1
    if reshape:
        nodes.append(linear_node(v, v + 1))
        v += 1
    return tuple(nodes), v


def facts(graph: Sequence[CNode], out_value: int, n_layers: int, *, chain: bool = True,
          skips: tuple[tuple[int, int], ...] = (), activations: Sequence[ActivationFact] = (),
          output: str | None = "identity", biases: Sequence[bool] | None = None,
          linear_maps: Sequence[LinearMapFact] = (), unsupported: str | None = None,
          norm_layers: Sequence[str] = ()) -> ModelFacts:
    return ModelFacts(
        chain=chain, skips=tuple(skips), activations=tuple(activations), output=output,
        biases=tuple(biases) if biases is not None else (False,) * n_layers,
        norm_layers=tuple(norm_layers), linear_maps=tuple(linear_maps), unsupported=unsupported,
        warnings=(), graph=tuple(graph), out_value=out_value, n_layers=n_layers)


def acts(n: int, kind: str = "relu", slope: float = 0.0) -> tuple[ActivationFact, ...]:
    return tuple(ActivationFact(kind, slope, False, str(2 * i + 1)) for i in range(n))


def chain_facts(n_layers: int, activation: str = "relu", slope: float = 0.0,
                output: str = "identity", **kw) -> ModelFacts:
    """Facts of a measured chain: ``n_layers - 1`` internal activations of one kind."""
    graph, out = chain_graph(n_layers, "linear" if activation == "linear" else activation,
                             output)
    a = () if activation == "linear" else acts(n_layers - 1, activation, slope)
    return facts(graph, out, n_layers, activations=kw.pop("activations", a), output=output, **kw)


# -- results and contexts -----------------------------------------------------------------------
def result(layers: Sequence[LayerInfo], layer_norms: Sequence[LayerNorms], g: GradientNorms,
           f: ModelFacts) -> ProbeResult:
    return ProbeResult(tuple(layers), tuple(layer_norms), g, (), (), f, "")


def context(res: ProbeResult, scheme: str | None = None, *, eps: float = EPS64,
            scale: float = 1.0, trained: bool = False, seed: int = 0, model=None, x=None,
            twin=None, c6a_k: float = 1.0, extra: dict | None = None) -> Context:
    return Context(res, Setting(scheme, scale, eps, trained), seed, model, x, twin, c6a_k,
                   extra or {})


# -- rows ---------------------------------------------------------------------------------------
def rows_of(rows: list[dict], claim: str) -> list[dict]:
    return [r for r in rows if r["claim"] == claim]


def by_layer(rows: list[dict], claim: str) -> dict[int, dict]:
    out = {}
    for r in rows_of(rows, claim):
        assert r["layer"] not in out, f"two {claim} rows for layer {r['layer']}: {rows}"
        out[r["layer"]] = r
    return out


def assert_na(rows: list[dict], claim: str, reason: str, layers: Sequence[int] | None = None):
    """Every ``claim`` row says 'not applicable: <reason>', has no verdict and NaN numbers;
    with ``layers``, there is exactly one such row per listed layer."""
    got = rows_of(rows, claim)
    for r in got:
        assert r["note"] == NA + reason, f"{claim} layer {r['layer']}: note {r['note']!r}, " \
                                         f"expected {NA + reason!r}"
        assert r["holds"] == "", f"{claim} layer {r['layer']}: n/a row has verdict {r['holds']!r}"
        assert math.isnan(r["lhs"]) and math.isnan(r["rhs"]) and math.isnan(r["ratio"]), r
    if layers is not None:
        assert sorted(r["layer"] for r in got) == sorted(layers), \
            f"{claim}: n/a rows for layers {[r['layer'] for r in got]}, expected {list(layers)}"


def assert_overflow(row: dict, n_bad: int | None = None):
    assert row["note"].startswith("overflow"), row
    if n_bad is not None:
        assert row["note"].startswith(f"overflow: {n_bad} per-input value"), row
    assert row["holds"] == "", f"overflow row has a verdict: {row}"


def assert_no_verdict(rows: list[dict], claim: str):
    for r in rows_of(rows, claim):
        assert r["holds"] == "", f"{claim} layer {r['layer']} has verdict {r['holds']!r}: {r}"


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)
