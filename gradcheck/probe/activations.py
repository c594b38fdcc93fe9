"""What the tape says about a model's activations (for models of unknown provenance).

THEORY's claims have premises on the activations (``|a'| <= 1`` for C1; positively homogeneous
ReLU / leaky ReLU / identity for C2a, C4, C6a; identity or sigmoid output). For a user's model
they are read off one recorded forward pass instead of being assumed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .jacobian import _diagonal_derivative
from .layers import Tape


@dataclass(frozen=True)
class ActivationInfo:
    activation: str | None    # relu | lrelu | linear when identified on every layer, else None
    slope: float              # leaky-ReLU slope when activation == 'lrelu'
    output: str | None        # identity | sigmoid when identified, else None
    max_slope: float          # largest |a'(z)| seen on the elementwise maps (inf: none measured)
    note: str                 # what could not be identified


def infer_activations(tape: Tape) -> ActivationInfo:
    """Identify the internal activation and the output activation from a tape."""
    L, slopes, max_slope, notes = len(tape.layers), set(), 0.0, []
    for i in range(L - 1):
        d = _diagonal_derivative(tape.h[i + 1], tape.z[i])
        if d is None:
            notes.append(f"the map after layer {i} is not elementwise")
            continue
        z, h = tape.z[i].detach().reshape(d.shape), tape.h[i + 1].detach().reshape(d.shape)
        max_slope = max(max_slope, float(d.abs().max()))
        scale = float(h.abs().max().clamp_min(1e-300))
        if float((h - d * z).abs().max()) > 1e-10 * scale:
            notes.append(f"the activation after layer {i} is not piecewise linear through 0")
            continue
        slopes.update(round(float(v), 12) for v in d.unique())
    act, slope = None, 0.0
    if not notes:
        if slopes <= {1.0}:
            act = "linear"
        elif slopes <= {0.0, 1.0}:
            act = "relu"
        elif len(slopes - {1.0}) == 1 and 0.0 < min(slopes) < 1.0:
            act, slope = "lrelu", min(slopes)
        else:
            notes.append(f"activation slopes {sorted(slopes)} are not ReLU-like")
    dL = _diagonal_derivative(tape.D.reshape(-1, 1), tape.z[-1])
    if dL is not None:
        max_slope = max(max_slope, float(dL.abs().max()))
    zL, D = tape.z[-1].detach().reshape(-1), tape.D.detach().reshape(-1)
    scale = float(D.abs().max().clamp_min(1e-300))
    if float((D - zL).abs().max()) <= 1e-12 * max(scale, 1.0):
        output = "identity"
    elif float((D - torch.sigmoid(zL)).abs().max()) <= 1e-12:
        output = "sigmoid"
    else:
        output = None
        notes.append("the output activation is neither identity nor sigmoid")
    return ActivationInfo(act, slope, output, max_slope, "; ".join(notes))
