"""Per-sample weight-gradient norms ``||dD(x_b)/dW_i||_F``: the engine against three baselines.

Engine: ``gradient_norms(record(model, x))`` (one traced forward, one backward, a per-layer
fast rule). Baselines, each timed in the same process on the same model and inputs:

- ``loop``: one forward and one ``autograd.grad`` per input (the obvious method);
- ``vmap(grad)``: ``torch.func.vmap(torch.func.grad(loss))`` over ``functional_call``, with
  the engine's memory budget as ``chunk_size`` (at most 2**24 per-sample gradient elements);
- ``ghost``: per-sample norms from activations and output gradients without materialising a
  per-sample gradient (Opacus' ghost clipping): ``||g_b||^2 = sum_{t,s} (a_bt . a_bs)
  (g_bt . g_bs)`` over positions t, s (Linear on vectors: one position, ``||a|| ||g||``;
  Conv2d: the same on ``unfold``-ed patches). Implemented here, Opacus is not needed.

Agreement is the largest relative difference of any baseline's norms from the engine's.
Run ``python benchmarks/bench_grad_norms.py [--quick]``.
"""
from __future__ import annotations

import torch
from torch import nn

try:
    from . import common as C
except ImportError:
    import common as C

from gradcheck.build import make_model
from gradcheck.probe.gradients import gradient_norms
from gradcheck.probe.layers import record
from gradcheck.spec import RunSpec

GOAL_LARGE = ">= x5 vs loop and vmap(grad) at batch 256; >= x0.83 vs ghost (within 1.2x)"
GOAL_SMALL = ">= x1 vs loop (batch 1-32); >= x0.83 vs ghost"
MAX_ELEMENTS = 1 << 24


def _layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def engine(model, x):
    return gradient_norms(record(model, x)).weight_grad


def loop(model, x):
    """One forward and one backward per input."""
    ws = [m.weight for m in _layers(model)]
    out = torch.zeros(len(ws), len(x), dtype=torch.float64)
    for b in range(len(x)):
        g = torch.autograd.grad(model(x[b:b + 1]).sum(), ws)
        out[:, b] = torch.stack([gi.norm() for gi in g])
    return out.numpy()


def vmap_grad(model, x):
    """``vmap(grad)`` over ``functional_call``, chunked to the engine's memory budget."""
    names = {id(m.weight): n for n, m in model.named_modules() if isinstance(m, (nn.Linear,
                                                                                nn.Conv2d))}
    params = {k: v.detach() for k, v in model.named_parameters()}
    n_params = sum(v.numel() for v in params.values())

    def loss(p, xb):
        return torch.func.functional_call(model, p, (xb.unsqueeze(0),)).sum()

    chunk = max(1, min(len(x), MAX_ELEMENTS // n_params))
    g = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0), chunk_size=chunk)(params, x)
    rows = [g[names[id(m.weight)] + ".weight"].flatten(1).norm(dim=1) for m in _layers(model)]
    return torch.stack(rows).numpy()


def ghost(model, x):
    """Ghost norms from activations ``a`` and output gradients ``g`` (one forward, one backward).
    """
    mods, acts, outs = _layers(model), [], []

    def hook(m, inp, out):
        acts.append(inp[0].detach())
        outs.append(out)

    handles = [m.register_forward_hook(hook) for m in mods]
    try:
        D = model(x)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(D.sum(), outs)
    B, rows = x.shape[0], []
    for m, a, g in zip(mods, acts, grads):
        g = g.detach()
        if isinstance(m, nn.Conv2d):
            a = nn.functional.unfold(a, m.kernel_size, m.dilation, m.padding, m.stride)
            a, g = a.transpose(1, 2), g.flatten(2).transpose(1, 2)      # (B, T, d)
        else:
            a, g = a.reshape(B, -1, a.shape[-1]), g.reshape(B, -1, g.shape[-1])
        T = a.shape[1]
        if T == 1:          # the Gram matrices are 1x1: (a.a)(g.g)
            sq = (a[:, 0] ** 2).sum(1) * (g[:, 0] ** 2).sum(1)
        else:
            step = max(1, MAX_ELEMENTS // (T * T))
            sq = torch.cat([((a[s:s + step] @ a[s:s + step].transpose(1, 2))
                             * (g[s:s + step] @ g[s:s + step].transpose(1, 2))).sum((1, 2))
                            for s in range(0, B, step)])
        rows.append(sq.clamp_min(0).sqrt())
    return torch.stack(rows).numpy()


BASELINES = {"loop": loop, "vmap(grad)": vmap_grad, "ghost": ghost}


def _model(kind: str, depth: int, width: int):
    if kind == "mlp":
        spec = RunSpec(arch="mlp", depth=depth, width=width, init="lecun")
    else:
        spec = RunSpec(arch="conv", depth=depth, channels=width, image_size=16, init="lecun")
    return make_model(spec, seed=0), spec.input_shape


def bench_case(kind, depth, width, batch, repeat=3, budget_s=20.0) -> list[dict]:
    model, shape = _model(kind, depth, width)
    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    ref, te, me, basis = C.measure(lambda: engine(model, x), repeat=max(repeat, 5),
                                   budget_s=budget_s)
    label = (f"{kind} d{depth} w{width}" if kind == "mlp" else
             f"conv d{depth} c{width} 16x16") + f" B={batch}"
    rows = [C.row("grads", label, te, "(engine)", peak_MiB=me, mem_basis=basis)]
    goal = GOAL_LARGE if batch >= 256 else GOAL_SMALL if batch <= 32 else ""
    for name, fn in BASELINES.items():
        got, tb, mb, basis = C.measure(lambda fn=fn: fn(model, x), repeat=repeat,
                                       budget_s=budget_s)
        rows.append(C.row("grads", label, te, name, tb, goal=goal, peak_MiB=mb,
                          mem_basis=basis, agreement=C.max_rel_diff(got, ref)))
    return rows


def run(quick: bool = False) -> list[dict]:
    torch.manual_seed(0)
    print(f"per-sample gradient norms; {C.env_line()}", flush=True)
    batches = (1, 32, 256) if quick else (1, 8, 32, 256)
    cases = ([("mlp", 10, 128), ("conv", 4, 16)] if quick
             else [("mlp", 20, 128), ("conv", 6, 16)])
    rows = []
    for kind, depth, width in cases:
        C.guarded("grads", "warm-up", bench_case, kind, depth, width, 2, repeat=1)
        part = []
        for B in batches:
            part += C.guarded("grads", f"{kind} d{depth} w{width} B={B}", bench_case, kind,
                              depth, width, B, repeat=2 if quick else 3,
                              budget_s=5.0 if quick else 20.0)
        C.print_table(f"grads: {kind}", part)
        rows += part
    return rows


if __name__ == "__main__":
    raise SystemExit(C.cli(__doc__, run))
