"""Model facts, measured once per probed model from its recorded forward pass (THEORY §0).

Claims read their premises from :class:`ModelFacts` — chain or graph (and where the skips are),
each activation (kind, slope, in place or not), the output activation, biases (present *and*
non-zero), normalisation layers, parameter-free linear maps with their exact operator norms, and
the first node that no claim can handle — never from how the model was named or built.

Every recorded call is classified into one node kind of THEORY §6 (C11):
``layer`` (Linear / Conv2d), ``act`` (elementwise, ``|a'| <= 1``, ``a(0) = 0``: ReLU, leaky ReLU
with ``|slope| <= 1``, tanh, hardtanh around 0), ``linear`` (parameter-free linear map with known
operator norm: reshape / flatten / clone / eval dropout 1, average pooling by its exact operator
norm, global sum pooling ``sqrt(N)``, global mean ``1/sqrt(N)``, a scalar multiple ``|c|``),
``sum`` (sum or difference of branches), ``cat`` (concatenation along a non-batch dimension),
``sigmoid`` (only as the output activation) and ``unsupported`` (anything else, with the reason).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..linalg import vjp
from .layers import Tape
from .trace import GraphNode

_IDENTITY = {"clone", "contiguous", "view", "reshape", "flatten", "squeeze", "unsqueeze",
             "view_as", "reshape_as", "float", "double", "to", "type_as", "squeeze_",
             "unsqueeze_"}
_DROPOUT = {"dropout", "dropout_", "alpha_dropout", "feature_alpha_dropout", "dropout2d"}
_ACTS = {"relu", "relu_", "leaky_relu", "leaky_relu_", "tanh", "tanh_", "hardtanh",
         "hardtanh_", "relu6"}
_POOLS = {"avg_pool2d", "adaptive_avg_pool2d", "avg_pool1d", "adaptive_avg_pool1d"}
_SUMS = {"add", "__add__", "__radd__", "add_", "__iadd__", "sub", "__sub__", "sub_", "__isub__",
         "__rsub__", "subtract"}
_MULS = {"mul", "__mul__", "__rmul__", "mul_", "__imul__", "multiply"}
_DIVS = {"div", "__truediv__", "div_", "__itruediv__", "true_divide", "divide"}
_NORMS = {"batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm"}


@dataclass(frozen=True)
class ActivationFact:
    """One elementwise activation on the x -> D path."""

    kind: str          # relu | lrelu | tanh | hardtanh | the op name when not a C11 activation
    slope: float       # leaky-ReLU negative slope (0 for relu)
    inplace: bool
    where: str         # qualified module name


@dataclass(frozen=True)
class LinearMapFact:
    """A parameter-free linear map on the x -> D path and its operator norm."""

    op: str
    where: str
    opnorm: float
    method: str        # 'exact' (closed form), 'dense' (SVD of its matrix), 'power'


@dataclass(frozen=True)
class CNode:
    """A classified graph node (the data C11's forward/backward passes need)."""

    kind: str                  # layer | act | linear | sum | cat | sigmoid | unsupported
    inputs: tuple[int, ...]
    output: int
    lip: float = 1.0           # operator norm / Lipschitz constant of a 'linear' node
    layer: int = -1
    label: str = ""            # "<op> at '<where>' (<module type>)"
    reason: str = ""           # why a node is unsupported


@dataclass(frozen=True)
class ModelFacts:
    """What a recorded forward pass says about the model (see the module docstring)."""

    chain: bool
    skips: tuple[tuple[int, int], ...]      # (first, last) probe layers a skip goes around
    activations: tuple[ActivationFact, ...]
    output: str | None                      # identity | sigmoid | the op name of another a_L
    biases: tuple[bool, ...]                # per layer: present and non-zero
    norm_layers: tuple[str, ...]
    linear_maps: tuple[LinearMapFact, ...]
    unsupported: str | None                 # the first node C11 cannot handle, named
    warnings: tuple[str, ...]
    graph: tuple[CNode, ...]
    out_value: int
    n_layers: int

    # -- premises, each '' when it holds or the reason it fails -------------------------------
    def not_chain(self) -> str:
        if self.chain:
            return ""
        around = ", ".join(f"{i}..{j}" for i, j in self.skips) or "?"
        return f"not a chain (skip around layers {around})"

    def with_bias(self) -> str:
        idx = [i for i, b in enumerate(self.biases) if b]
        return f"non-zero biases on layer(s) {_span(idx)} (theory is bias-free)" if idx else ""

    def bad_node(self) -> str:
        return f"unsupported node {self.unsupported}" if self.unsupported else ""

    def bad_output(self) -> str:
        return "" if self.output in ("identity", "sigmoid") else \
            f"output activation {self.output or 'unidentified'} is neither identity nor sigmoid"

    def activation_kinds(self) -> set[str]:
        return {a.kind for a in self.activations}

    def expansive_maps(self) -> str:
        big = [m for m in self.linear_maps if m.opnorm > 1 + 1e-12]
        return "" if not big else "parameter-free map(s) with operator norm > 1: " + ", ".join(
            f"{m.op} at {m.where!r} ({m.opnorm:.4g})" for m in big)

    def describe(self) -> str:
        """One line: structure, activations, output, biases, unsupported nodes."""
        acts = []
        for a in self.activations:
            name = f"{a.kind} (slope {a.slope:g})" if a.kind == "lrelu" else a.kind
            name += ", in place" if a.inplace else ""
            if name not in acts:
                acts.append(name)
        parts = ["chain" if self.chain else self.not_chain().replace("not a chain ", "graph ")]
        parts.append("activations " + ("; ".join(acts) if acts else "none (linear)"))
        parts.append(f"output {self.output or 'unidentified'}")
        parts.append(self.with_bias() or "bias-free")
        if self.unsupported:
            parts.append(f"first unsupported node: {self.unsupported}")
        return ", ".join(parts)

    @property
    def activation(self) -> str | None:
        """The one internal activation kind (relu | lrelu | tanh | linear), None if mixed."""
        kinds = {a.kind for a in self.activations}
        slopes = {a.slope for a in self.activations if a.kind == "lrelu"}
        if not kinds:
            return "linear"
        if len(kinds) == 1 and len(slopes) <= 1:
            return next(iter(kinds))
        return None

    @property
    def slope(self) -> float:
        s = [a.slope for a in self.activations if a.kind == "lrelu"]
        return s[0] if s else 0.0


def _span(idx: list[int]) -> str:
    return ", ".join(map(str, idx[:6])) + (" ..." if len(idx) > 6 else "")


def _dims(node: GraphNode) -> tuple[int, ...] | None:
    """The reduced dims of sum/mean (None: all dims, including the batch)."""
    dim = node.args[0] if node.args else dict(node.kwargs).get("dim")
    if dim is None:
        return None
    dims = dim if isinstance(dim, tuple) else (dim,)
    nd = len(node.in_shape) + 1
    return tuple(sorted(d % nd for d in dims if isinstance(d, int)))


def _inplace(node: GraphNode) -> bool:
    return node.op.endswith("_") or dict(node.kwargs).get("inplace") is True or \
        any(a is True for a in node.args)


def _per_channel_norm(node: GraphNode) -> tuple[float, str]:
    """Operator norm of a per-channel linear map (pooling) from its matrix on one channel."""
    shape = node.in_shape
    spatial = shape[1:]
    n = math.prod(spatial)
    with torch.no_grad():
        if n <= 4096:
            e = torch.eye(n, dtype=torch.float64).reshape(n, 1, *spatial)
            M = node.fn(e).reshape(n, -1)
            return float(torch.linalg.matrix_norm(M, 2)), "dense"
        g = torch.Generator().manual_seed(0)
        v = torch.rand((1, 1, *spatial), generator=g, dtype=torch.float64)
        s = 0.0
        for _ in range(1000):
            u = vjp(node.fn, v, node.fn(v))
            s_new = float(u.norm()) ** 0.5
            v = u / u.norm()
            if abs(s_new - s) <= 1e-13 * s_new:
                break
            s = s_new
        return s_new, "power"


def classify(node: GraphNode) -> tuple[str, float, str, str]:
    """``(kind, lip, reason, method)`` of one recorded node (see the module docstring)."""
    op, n_in = node.op, len(node.inputs)
    kw = dict(node.kwargs)
    if node.layer >= 0:
        return "layer", math.nan, "", ""
    if op in _NORMS:
        return "unsupported", math.nan, f"normalisation layer ({node.module_type})", ""
    if n_in == 1 and node.const == 0 and op in _IDENTITY:
        return "linear", 1.0, "", "exact"
    if op in _DROPOUT:
        training = node.args[1] if len(node.args) > 1 else kw.get("training", True)
        return ("linear", 1.0, "", "exact") if training is False else \
            ("unsupported", math.nan, "dropout in training mode", "")
    if op in ("permute", "transpose", "swapaxes") and n_in == 1:
        dims = [d for d in (node.args[0] if op == "permute" and node.args and
                            isinstance(node.args[0], tuple) else node.args) if isinstance(d, int)]
        nd = len(node.in_shape) + 1
        first = [d % nd for d in dims]
        batch_kept = (first[0] == 0) if op == "permute" else (0 not in first)
        return ("linear", 1.0, "", "exact") if batch_kept else \
            ("unsupported", math.nan, "moves the batch dimension", "")
    if op in _ACTS and n_in == 1:
        if op.startswith("leaky"):
            return "act", 1.0, "", ""
        if op.startswith("hardtanh"):
            lo = node.args[0] if node.args else kw.get("min_val", -1.0)
            hi = node.args[1] if len(node.args) > 1 else kw.get("max_val", 1.0)
            ok = isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo <= 0 <= hi
            return ("act", 1.0, "", "") if ok else \
                ("unsupported", math.nan, "hardtanh with a(0) != 0", "")
        return "act", 1.0, "", ""
    if op == "sigmoid" and n_in == 1:
        return "sigmoid", 0.25, "", ""
    if op in _POOLS and n_in == 1 and node.fn is not None:
        lip, method = _per_channel_norm(node)
        return "linear", lip, "", method
    if op in ("sum", "mean", "nansum") and n_in == 1 and node.const == 0:
        dims = _dims(node)
        if dims is None or 0 in dims:
            return "unsupported", math.nan, "reduces over the batch (mixes inputs)", ""
        N = math.prod(node.in_shape[d - 1] for d in dims)
        return ("linear", math.sqrt(N), "", "exact") if op != "mean" else \
            ("linear", 1 / math.sqrt(N), "", "exact")
    if op in _MULS or op in _DIVS:
        if n_in != 1:
            return "unsupported", math.nan, "product of two x-dependent branches", ""
        if len(node.const_values) == 1 and node.const <= 1:
            c = abs(node.const_values[0])
            if op in _DIVS:
                return ("linear", 1 / c, "", "exact") if c > 0 else \
                    ("unsupported", math.nan, "division by zero", "")
            return "linear", c, "", "exact"
        return "unsupported", math.nan, "multiplies by a non-scalar tensor", ""
    if op in _SUMS:
        if kw.get("alpha", 1) not in (1, 1.0):
            return "unsupported", math.nan, "scaled sum (alpha != 1)", ""
        if n_in >= 2 and node.const == 0 and not node.const_values:
            return "sum", 1.0, "", ""
        if n_in == 1 and (node.const_zero or (not node.const and
                                              all(c == 0 for c in node.const_values))):
            return "linear", 1.0, "", "exact"
        return "unsupported", math.nan, "adds a constant (an affine shift: bias-like)", ""
    if op in ("cat", "concat", "concatenate"):
        dim = node.args[0] if node.args else kw.get("dim", 0)
        if node.const or dim == 0:
            return "unsupported", math.nan, "concatenates with a constant or along the batch", ""
        return "cat", 1.0, "", ""
    return "unsupported", math.nan, f"no operator-norm rule for {op!r}", ""


def _legacy_sn_warnings(model: nn.Module) -> list[str]:
    """Layers under torch's legacy ``spectral_norm`` whose power iteration never ran."""
    out = []
    names = {m: n for n, m in model.named_modules()}
    for m in model.modules():
        for hook in m._forward_pre_hooks.values():
            if type(hook).__name__ != "SpectralNorm" or not hasattr(hook, "name"):
                continue
            try:
                W = getattr(m, hook.name + "_orig").detach().double()
                u = getattr(m, hook.name + "_u").detach().double()
                v = getattr(m, hook.name + "_v").detach().double()
                dim = getattr(hook, "dim", 0)
                Wm = W.movedim(dim, 0).reshape(W.shape[dim], -1)
                est, exact = float(u @ (Wm @ v)), float(torch.linalg.matrix_norm(Wm, 2))
            except (AttributeError, RuntimeError):
                continue
            if exact > 0 and not 0.9 <= est / exact <= 1.1:
                out.append(f"layer {names.get(m, '?')!r}: legacy torch.nn.utils.spectral_norm "
                           f"divides by a power-iteration estimate {est:.4g} of sigma_R = "
                           f"{exact:.4g} ({est / exact:.3g}x): its u, v look never updated by a "
                           "training-mode forward. Run a few training-mode forwards first "
                           "(warm-up), or use torch.nn.utils.parametrizations.spectral_norm or "
                           "gradcheck's exact mode")
    return out


def measure_facts(tape: Tape, model: nn.Module | None = None) -> ModelFacts:
    """:class:`ModelFacts` of a recorded forward pass (``model`` adds the legacy-SN check)."""
    nodes = list(tape.graph)
    producer = {n.output: n for n in nodes}
    need, stack = set(), [tape.out_value]
    while stack:                                   # values on some x -> D path
        v = stack.pop()
        if v in need or v < 0:
            continue
        need.add(v)
        if v in producer:
            stack.extend(producer[v].inputs)
    rel = [n for n in nodes if n.output in need]
    consumers: dict[int, int] = {}
    for n in rel:
        for i in n.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    chain = all(len(n.inputs) == 1 for n in rel) and all(c <= 1 for c in consumers.values())
    anc: dict[int, frozenset] = {0: frozenset()}
    skips = []
    for n in rel:
        sets = [anc.get(i, frozenset()) for i in n.inputs]
        own = frozenset([n.layer]) if n.layer >= 0 else frozenset()
        anc[n.output] = frozenset().union(*sets) | own
        if len(n.inputs) >= 2:
            branch = frozenset().union(*sets) - frozenset.intersection(*sets)
            if branch:
                skips.append((min(branch), max(branch)))
            else:
                skips.append((-1, -1))
    # the output activation: walk back from D through norm-1 maps
    out_kind, v = "identity", tape.out_value
    while v in producer:
        n = producer[v]
        kind, lip, _, _ = classify(n)
        if kind == "sigmoid":
            out_kind = "sigmoid"
            break
        if kind == "linear" and lip == 1.0 and len(n.inputs) == 1:
            v = n.inputs[0]
            continue
        if kind in ("act", "unsupported") and len(n.inputs) == 1:
            out_kind = n.op.rstrip("_")
        break
    out_sigmoid = producer.get(v) if out_kind == "sigmoid" else None
    acts, maps, norms, cnodes, unsupported = [], [], [], [], None
    for n in rel:
        kind, lip, reason, method = classify(n)
        label = f"{n.op} at {n.where!r} ({n.module_type})" if n.where else f"{n.op} (model)"
        if kind == "sigmoid" and n is not out_sigmoid:
            kind, reason = "unsupported", "internal sigmoid (a(0) != 0)"
        if kind == "act":
            name = n.op.rstrip("_")
            slope = 0.0
            if name == "leaky_relu":
                s = n.args[0] if n.args and isinstance(n.args[0], (int, float)) and \
                    not isinstance(n.args[0], bool) else dict(n.kwargs).get("negative_slope",
                                                                           0.01)
                slope = float(s)
                if abs(slope) > 1:
                    kind, reason = "unsupported", f"leaky ReLU slope {slope:g} > 1 (|a'| > 1)"
                name = "lrelu"
            elif name in ("relu", "relu6"):
                name = "relu" if name == "relu" else "relu6"
            acts.append(ActivationFact(name, slope, _inplace(n), n.where))
        if n.op in _NORMS:
            norms.append(f"{n.module_type} at {n.where!r}" if n.where else n.op)
        if kind == "linear" and (lip != 1.0 or n.op in _POOLS or n.op in ("sum", "mean")):
            maps.append(LinearMapFact(n.op, n.where, lip, method))
        if kind == "unsupported" and unsupported is None:
            unsupported = f"{label}: {reason}"
        cnodes.append(CNode(kind, n.inputs, n.output, lip, n.layer, label, reason))
    warnings = _legacy_sn_warnings(model) if model is not None else []
    return ModelFacts(
        chain=chain, skips=tuple(sorted(set(s for s in skips if s[0] >= 0))),
        activations=tuple(acts), output=out_kind,
        biases=tuple(info.has_bias for info in tape.layers), norm_layers=tuple(norms),
        linear_maps=tuple(maps), unsupported=unsupported, warnings=tuple(warnings),
        graph=tuple(cnodes), out_value=tape.out_value, n_layers=len(tape.layers))


__all__ = ["ActivationFact", "LinearMapFact", "CNode", "ModelFacts", "classify",
           "measure_facts"]
