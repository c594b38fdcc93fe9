"""Record one forward pass of ANY ``nn.Module``: the probe layers and the graph between them.

Why a ``TorchFunctionMode`` (and not ``torch.fx`` or the autograd graph): discriminators written
the way public GAN code writes them trace badly with ``fx`` (data-dependent branches, legacy
``spectral_norm`` pre-hooks that assign ``module.weight``, wrappers that call
``self.module.forward`` directly), and the autograd graph has lost what the forward did in place
(``nn.ReLU(inplace=True)`` overwrites the tensor a hook saw). A function mode sees every torch
call as it runs, with the tensors it really received, so it measures:

* the **layers**: every ``F.linear`` / ``F.conv2d`` call, with the weight the operation received
  (BigGAN's ``F.conv2d(x, self.W_())``, torch's parametrizations, the legacy hook, a wrapper's
  ``setattr(module, 'weight', w)``), its bias and geometry;
* the **graph** from the input ``x`` to the output ``D``: every call with an argument that depends
  on ``x`` becomes a :class:`GraphNode` (values are numbered; an in-place call makes a new value).

Each layer's input is cloned before the layer reads it and its output is cloned before anything
else sees it, so ``h[i]`` / ``z[i]`` are exactly the tensors the layer used and produced even when
the model then writes over them in place. Layers called through ``nn.Module.__call__`` are
recorded at module level (so a conv's circular padding stays part of its layer map); calls that
bypass hooks are recorded at the functional call, attributed to the module that owns the weight,
or to a stand-in module with the call's geometry. Nothing is written onto the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

PROBE_TYPES = (nn.Linear, nn.Conv2d)
_LAYER_FUNCS = {F.linear: "linear", F.conv2d: "conv"}


@dataclass(frozen=True)
class GraphNode:
    """One recorded call on values that depend on ``x``.

    ``inputs`` are the numbers of the x-dependent values it read (value 0 is ``x``), ``output``
    the number of the value it produced. ``layer`` is the probe-layer index for layer nodes (-1
    otherwise). ``const`` is the number of tensor arguments that do not depend on ``x``.
    ``fn`` applies the call to a new x-dependent input with every other argument as recorded
    (parameter-free unary maps only; used to measure their operator norm).
    """

    op: str
    inputs: tuple[int, ...]
    output: int
    where: str                      # qualified name of the innermost module ('' = the model)
    module_type: str                # its class name
    layer: int = -1
    const: int = 0
    args: tuple = ()                # the non-tensor positional arguments after the input
    kwargs: tuple = ()              # non-tensor keyword arguments as sorted (key, value) pairs
    const_values: tuple = ()        # 0-dim / python-number constants (scalars of mul/div/add)
    const_zero: bool = False        # every constant tensor argument is exactly zero
    in_shape: tuple[int, ...] = ()  # per-input shape of the first x-dependent input
    out_shape: tuple[int, ...] = ()
    fn: Callable | None = field(default=None, compare=False, repr=False)


@dataclass
class LayerCall:
    """A probe layer as it was called."""

    module: nn.Module
    name: str
    kind: str                       # 'linear' | 'conv'
    weight: torch.Tensor            # the weight the operation received (detached)
    bias: torch.Tensor | None
    h: torch.Tensor                 # its input (a private clone, in the autograd graph)
    z: torch.Tensor                 # its output (in the autograd graph, never written over)
    padding: Any = 0


def _flat(obj, out: list) -> list:
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _flat(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flat(o, out)
    return out


def _name(func) -> str:
    n = getattr(func, "__name__", None) or str(func)
    return n


def _hashable(v):
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(u) for u in v)
    if isinstance(v, (int, float, bool, str, type(None), torch.dtype)):
        return v
    return repr(v)


class Tracer(TorchFunctionMode):
    """Records layers and the x-dependent graph while ``model(x)`` runs (see module doc)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.names = {m: n for n, m in model.named_modules()}
        self.probe_modules = [m for m in model.modules() if isinstance(m, PROBE_TYPES)]
        self._probe_ids = {id(m) for m in self.probe_modules}
        self.stack: list[nn.Module] = []
        self.open: list[dict] = []          # probe modules being called through __call__
        self.value: dict[int, int] = {}     # id(tensor) -> number of its current value
        self.keep: list[torch.Tensor] = []  # keeps every traced tensor alive (ids stay unique)
        self.n_values = 0
        self.nodes: list[GraphNode] = []
        self.layers: list[LayerCall] = []
        self.quiet = 0
        self.error: str | None = None

    # -- values ------------------------------------------------------------------------------
    def _new_value(self, t: torch.Tensor) -> int:
        self.keep.append(t)
        self.value[id(t)] = v = self.n_values
        self.n_values += 1
        return v

    def _val(self, t) -> int | None:
        return self.value.get(id(t)) if isinstance(t, torch.Tensor) else None

    def source(self, x: torch.Tensor) -> None:
        self._new_value(x)

    def _where(self) -> tuple[str, str]:
        if not self.stack:
            return "", ""
        m = self.stack[-1]
        return self.names.get(m, type(m).__name__), type(m).__name__

    # -- module hooks (installed globally while tracing) -------------------------------------
    def pre_hook(self, module, args):
        self.stack.append(module)
        if id(module) not in self._probe_ids or not args or not isinstance(args[0], torch.Tensor):
            return None
        self.quiet += 1
        try:
            h = args[0].clone()
        finally:
            self.quiet -= 1
        self.open.append(dict(module=module, src=self._val(args[0]), h=h, call=None))
        return (h, *args[1:])

    def post_hook(self, module, args, out):
        if self.stack and self.stack[-1] is module:
            self.stack.pop()
        if not self.open or self.open[-1]["module"] is not module:
            return None
        rec = self.open.pop()
        call = rec["call"]
        if call is None:
            self.error = (f"layer {self.names.get(module, type(module).__name__)!r} "
                          f"({type(module).__name__}) computed its output without F.linear / "
                          "F.conv2d; the weight it used cannot be measured")
            return None
        if not isinstance(out, torch.Tensor):
            return None
        self.quiet += 1
        try:
            out2 = out.clone()
        finally:
            self.quiet -= 1
        kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
        self._add_layer(module, self.names.get(module, type(module).__name__), kind, call[0],
                        call[1], rec["h"], out, out2, rec["src"], module.padding
                        if kind == "conv" else 0)
        return out2

    # -- the function mode -------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.quiet:
            return func(*args, **kwargs)
        kind = _LAYER_FUNCS.get(func)
        if kind is not None:
            if self.open and self.stack and self.open[-1]["module"] is self.stack[-1]:
                rec = self.open[-1]
                if rec["call"] is not None:
                    self.error = (f"layer {self.names.get(rec['module'], '?')!r} calls "
                                  f"{func.__name__} more than once per forward")
                rec["call"] = (self._arg(args, kwargs, 1, "weight"),
                               self._arg(args, kwargs, 2, "bias"))
                return func(*args, **kwargs)
            return self._functional_layer(func, kind, args, kwargs)
        tensors = _flat((args, kwargs), [])
        before = [(t, t._version) for t in tensors]
        srcs = [self._val(t) for t in tensors]
        out = func(*args, **kwargs)
        if self.open:                      # inside a probe layer: its own ops are not graph nodes
            return out
        if not any(s is not None for s in srcs):
            return out
        outs = [o for o in _flat(out, []) if o.is_floating_point() or o.dtype == torch.bool]
        if not outs:
            return out
        mutated = [t for t, ver in before if t._version != ver]
        self._add_node(func, args, kwargs, tensors, srcs, outs, mutated)
        return out

    @staticmethod
    def _arg(args, kwargs, i, key):
        return args[i] if len(args) > i else kwargs.get(key)

    def _add_node(self, func, args, kwargs, tensors, srcs, outs, mutated) -> None:
        where, mtype = self._where()
        ins = tuple(s for s in srcs if s is not None)
        const = [t for t, s in zip(tensors, srcs) if s is None]
        scalars = tuple(float(a) for a in list(args[1:]) + list(kwargs.values())
                        if isinstance(a, (int, float)) and not isinstance(a, bool))
        scalars += tuple(float(t) for t in const if t.numel() == 1)
        first = next(t for t, s in zip(tensors, srcs) if s is not None)
        target = mutated[0] if mutated else outs[0]
        fn = None
        if len(ins) == 1 and not const:
            pos = [i for i, a in enumerate(args) if self._val(a) is not None]

            def fn(t, _func=func, _args=args, _kwargs=kwargs, _pos=pos):
                a = list(_args)
                if _pos:
                    a[_pos[0]] = t
                return _func(*a, **_kwargs)
        node = GraphNode(
            op=_name(func), inputs=ins, output=-1, where=where, module_type=mtype,
            const=len(const),
            args=tuple(_hashable(a) for a in args[1:] if not isinstance(a, torch.Tensor)),
            kwargs=tuple(sorted((k, _hashable(v)) for k, v in kwargs.items()
                                if not isinstance(v, torch.Tensor))),
            const_values=scalars,
            const_zero=bool(const) and all(bool((t == 0).all()) for t in const),
            in_shape=tuple(first.shape[1:]), out_shape=tuple(target.shape[1:]), fn=fn)
        for o in ([target] if mutated else outs):
            v = self._new_value(o)
            self.nodes.append(_with_output(node, v))

    def _functional_layer(self, func, kind, args, kwargs):
        """A layer op called outside any probe module's ``__call__`` (hooks bypassed)."""
        x, w = args[0], self._arg(args, kwargs, 1, "weight")
        b = self._arg(args, kwargs, 2, "bias")
        src = self._val(x)
        if src is None and self._val(w) is None:
            return func(*args, **kwargs)     # not on the x path (e.g. a power iteration)
        if self._val(w) is not None:
            self.error = (f"a {func.__name__} call at {self._where()[0] or 'the model'!r} uses a "
                          "weight that depends on the input; it cannot be probed")
            return func(*args, **kwargs)
        geo = {k: self._arg(args, kwargs, i, k) for i, k in
               ((3, "stride"), (4, "padding"), (5, "dilation"), (6, "groups"))} \
            if kind == "conv" else {}
        module, name = self._owner(kind, w, geo)
        h = x.clone()
        rest = list(args[1:])
        z = func(h, *rest, **kwargs)
        out2 = z.clone()
        self._add_layer(module, name, kind, w, b, h, z, out2, src,
                        geo.get("padding") if kind == "conv" else 0)
        return out2

    def _owner(self, kind, w, geo) -> tuple[nn.Module, str]:
        """The probe module whose weight is ``w`` (geometry matching), else a stand-in."""
        def same(m):
            if kind == "linear":
                return isinstance(m, nn.Linear)
            if not isinstance(m, nn.Conv2d) or m.padding_mode != "zeros":
                return False
            want = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)
            got = {k: (v if v is not None else d) for (k, v), d in
                   zip(geo.items(), (1, 0, 1, 1))}
            pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else v \
                if isinstance(v, str) else (v, v)  # noqa: E731
            return all(pair(got[k]) == pair(want[k]) for k in ("stride", "padding", "dilation")) \
                and int(got["groups"]) == m.groups
        for m in self.probe_modules:
            own = m.__dict__.get("weight", m._parameters.get("weight"))
            if own is w and same(m):
                return m, self.names[m]
        where = self._where()[0]
        label = f"{where or 'model'}.{'linear' if kind == 'linear' else 'conv2d'}" \
                f"[{len(self.layers)}]"
        if kind == "linear":
            m = nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta")
        else:
            g = {k: v for k, v in geo.items() if v is not None}
            m = nn.Conv2d(w.shape[1] * int(g.get("groups", 1)), w.shape[0], tuple(w.shape[2:]),
                          stride=g.get("stride", 1), padding=g.get("padding", 0),
                          dilation=g.get("dilation", 1), groups=int(g.get("groups", 1)),
                          bias=False, device="meta")
        m.weight = nn.Parameter(w.detach(), requires_grad=False)
        return m, label

    def _add_layer(self, module, name, kind, w, b, h, z, out2, src, padding) -> None:
        idx = len(self.layers)
        self.layers.append(LayerCall(module, name, kind, w.detach(), None if b is None
                                     else b.detach(), h, z, padding))
        if src is None:
            return
        where, mtype = name, type(module).__name__
        v = self._new_value(out2)
        self.nodes.append(GraphNode(op=kind, inputs=(src,), output=v, where=where,
                                    module_type=mtype, layer=idx,
                                    in_shape=tuple(h.shape[1:]), out_shape=tuple(z.shape[1:])))


def _with_output(node: GraphNode, v: int) -> GraphNode:
    from dataclasses import replace

    return replace(node, output=v)


def trace(model: nn.Module, x: torch.Tensor) -> tuple[Tracer, torch.Tensor]:
    """Run ``model(x)`` under a :class:`Tracer`; returns the tracer and the output.

    ``x`` must already require grad; the caller turns the tracer into a tape.
    """
    from torch.nn.modules.module import (
        register_module_forward_hook,
        register_module_forward_pre_hook,
    )

    tr = Tracer(model)
    tr.source(x)
    handles = [register_module_forward_pre_hook(tr.pre_hook),
               register_module_forward_hook(tr.post_hook)]
    try:
        with tr:
            out = model(x)
    finally:
        for hd in handles:
            hd.remove()
    return tr, out


__all__ = ["GraphNode", "LayerCall", "Tracer", "trace", "PROBE_TYPES"]
