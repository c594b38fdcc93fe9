"""Bounds of THEORY §2 and C8, computed from model shapes and measured norms.

All functions are pure and take numpy arrays; layer index ``t = 0..L-1`` in forward order.
"""
from __future__ import annotations

import math

import numpy as np

#: ``lambda_L = sup |a_L'|`` per output activation (THEORY §0).
LAMBDA_L = {"identity": 1.0, "sigmoid": 0.25}
#: ``sup |a_L''|`` per output activation (THEORY C4).
SUP_SECOND = {"identity": 0.0, "sigmoid": 1.0 / (6.0 * math.sqrt(3.0))}


def lambda_L(output: str) -> float:
    """``sup |a_L'|``: 1 for identity, 1/4 for sigmoid."""
    return LAMBDA_L[output]


def patch_multiplicity(kernel, stride) -> float:
    """THEORY's ``mu = sqrt(ceil(kh/sh) * ceil(kw/sw))`` (dilation 1, zero padding; dense or
    ``kernel=None``: 1). Ints or pairs."""
    if kernel is None:
        return 1.0
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else (stride or (1, 1))
    return math.sqrt(math.ceil(kh / sh) * math.ceil(kw / sw))


def _axis_multiplicity(size: int, kernel: int, stride: int, padding: int, dilation: int,
                       mode: str) -> int:
    """Max over input pixels of the number of (output, tap) pairs that read it, one axis."""
    n_out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    count = [0] * size
    for j in range(max(n_out, 0)):
        for t in range(kernel):
            r = j * stride - padding + t * dilation
            if mode == "circular":
                r %= size
            elif mode == "reflect":
                while r < 0 or r >= size:
                    r = -r if r < 0 else 2 * (size - 1) - r
            elif mode == "replicate":
                r = min(max(r, 0), size - 1)
            if 0 <= r < size:
                count[r] += 1
    return max(count) if count else 0


def exact_patch_multiplicity(input_hw, kernel, stride, padding, dilation=(1, 1),
                             padding_mode: str = "zeros") -> float:
    """``sqrt`` of the largest number of patches (with repeats) that read one input pixel.

    This is what C1's conv factor and C8's upper bound need (``||P(x)||_F <= mu ||x||``). It
    equals THEORY's ``mu`` for dilation 1, zero padding and inputs at least a kernel span wide,
    is smaller on tinier inputs, and stays correct for dilation and circular, reflect and
    replicate padding, where THEORY's formula undercounts.
    """
    return math.sqrt(_axis_multiplicity(input_hw[0], kernel[0], stride[0], padding[0],
                                        dilation[0], padding_mode)
                     * _axis_multiplicity(input_hw[1], kernel[1], stride[1], padding[1],
                                          dilation[1], padding_mode))


def prod_except(values: np.ndarray) -> np.ndarray:
    """``out[t] = prod_{i != t} values[i]`` without dividing (exact with zeros)."""
    v = np.asarray(values, dtype=np.float64)
    left = np.concatenate([[1.0], np.cumprod(v[:-1])])
    right = np.concatenate([np.cumprod(v[::-1][:-1])[::-1], [1.0]])
    return left * right


def c1_bound(x_norm: np.ndarray, op_norms: np.ndarray, mu: np.ndarray,
             lam: float) -> np.ndarray:
    """THEORY C1: ``lambda_L mu_t ||x|| prod_{i != t} ||W_i||_op``, shape ``(L, B)``.

    Args:
        x_norm: ``(B,)`` input norms. op_norms: ``(L,)`` true operator norms.
        mu: ``(L,)`` patch multiplicities. lam: ``lambda_L``.
    """
    return (lam * np.asarray(mu) * prod_except(op_norms))[:, None] * np.asarray(x_norm)[None, :]


def c1_sn_bound(x_norm: np.ndarray, n_layers: int, lam: float) -> np.ndarray:
    """THEORY C1-SN: every dense layer at spectral norm 1 -> ``lambda_L ||x||`` for all layers."""
    return np.tile(lam * np.asarray(x_norm)[None, :], (n_layers, 1))


def c8_applicable(size: int, kernel: int, stride: int, padding: int,
                  dilation: int = 1) -> bool:
    """Some output's receptive field lies entirely inside the input along one axis (C8)."""
    span = dilation * (kernel - 1) + 1
    n_out = (size + 2 * padding - span) // stride + 1
    return any(j * stride >= padding and j * stride + span - 1 <= padding + size - 1
               for j in range(max(n_out, 0)))


def c8_r2_applicable(size: int, kernel: int, stride: int, padding: int,
                     dilation: int = 1) -> bool:
    """Stride 1: some input pixel has all of its ``k`` output neighbours along this axis."""
    if stride != 1 or dilation != 1:
        return False
    n_out = size + 2 * padding - kernel + 1
    return any(r + padding - kernel + 1 >= 0 and r + padding <= n_out - 1 for r in range(size))


def chain_tol(layers, eps: float) -> float:
    """:func:`inequality_tol` for a probed chain: ``layers`` are LayerInfo-like (input_shape,
    output_shape); width = the largest per-input layer input or output size."""
    width = max(max(math.prod(i.input_shape), math.prod(i.output_shape)) for i in layers)
    return inequality_tol(eps, len(layers), width)


def inequality_tol(eps: float, n_layers: int, width: int) -> float:
    """Relative slack for an inequality/identity evaluated in a dtype with machine ``eps``.

    Each of the ``n_layers`` products/reductions of length <= ``width`` loses at most
    ``~sqrt(width) eps`` relative (random-walk rounding); we allow 10x that.
    """
    return 10.0 * (n_layers + 1) * math.sqrt(max(width, 1)) * eps
