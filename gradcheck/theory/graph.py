"""THEORY C11: Lipschitz bounds on any computation graph of supported nodes (pure functions).

Nodes are ``(kind, inputs, output, lip, layer)`` records (:class:`gradcheck.probe.facts.CNode`);
value 0 is the input ``x``. A forward pass gives ``F(n)``, an upper bound on the Lipschitz
constant of ``x -> n``; a backward pass gives ``B(n)``, one on ``n -> D``:

* ``F(x) = 1``; a layer or linear map ``A``: ``F = ||A||_op F(in)``; an activation (and the
  output sigmoid): ``F = F(in)``; a sum: ``F = sum F(inputs)``; a concatenation:
  ``F = sqrt(sum F(inputs)^2)``.
* ``B(D) = 1``; ``B(n) = sum_j B(c_j) Lip_n(c_j)`` over the consumers ``c_j`` of ``n``:
  ``||A||_op`` for a linear consumer, 1 for an activation, a sum or a concatenation, and
  ``lambda_L = 1/4`` for the output sigmoid (so ``B`` of the sigmoid's input is ``lambda_L``).

On a chain ``F(h_{t-1}) B(z_t) = lambda_L prod_{i != t} ||W_i||_op`` (times the norms of any
parameter-free maps, 1 for reshape / flatten), i.e. C1's product.
"""
from __future__ import annotations

import math
from typing import Sequence


def _lip(node, op_norms: Sequence[float]) -> float:
    if node.kind == "layer":
        return float(op_norms[node.layer])
    if node.kind == "linear":
        return float(node.lip)
    if node.kind == "sigmoid":
        return 0.25
    return 1.0                                   # act, sum, cat


def forward_bounds(nodes, op_norms: Sequence[float]) -> dict[int, float]:
    """``F``: value number -> bound on the Lipschitz constant of ``x -> value``.

    Raises:
        ValueError: a node of a kind C11 cannot handle ('unsupported').
    """
    F = {0: 1.0}
    for n in nodes:
        if n.kind == "unsupported":
            raise ValueError(f"C11 cannot bound through {n.label}: {n.reason}")
        ins = [F.get(i, 0.0) for i in n.inputs]
        if n.kind == "sum":
            F[n.output] = sum(ins)
        elif n.kind == "cat":
            F[n.output] = math.sqrt(sum(f * f for f in ins))
        elif n.kind == "sigmoid":
            F[n.output] = ins[0]                 # not used downstream of D
        else:
            F[n.output] = _lip(n, op_norms) * ins[0]
    return F


def backward_bounds(nodes, op_norms: Sequence[float], out_value: int) -> dict[int, float]:
    """``B``: value number -> bound on the Lipschitz constant of ``value -> D`` (D scalar)."""
    B = {out_value: 1.0}
    for n in reversed(list(nodes)):
        b = B.get(n.output, 0.0)
        if b == 0.0:
            continue
        lip = 1.0 if n.kind in ("sum", "cat", "act") else _lip(n, op_norms)
        for i in n.inputs:
            B[i] = B.get(i, 0.0) + b * lip
    return B


def layer_bounds(nodes, op_norms: Sequence[float], out_value: int
                 ) -> list[tuple[float, float]]:
    """Per probe layer ``t``: ``(F(h_{t-1}), B(z_t))`` (h = its input value, z = its output)."""
    F = forward_bounds(nodes, op_norms)
    B = backward_bounds(nodes, op_norms, out_value)
    out = {}
    for n in nodes:
        if n.kind == "layer":
            out[n.layer] = (F.get(n.inputs[0], 0.0), B.get(n.output, 0.0))
    return [out.get(t, (math.nan, math.nan)) for t in range(len(op_norms))]


__all__ = ["forward_bounds", "backward_bounds", "layer_bounds"]
