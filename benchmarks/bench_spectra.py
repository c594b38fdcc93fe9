"""MLP Jacobian spectra (the engine's ``chain`` path) against autograd baselines and the floor.

Engine: ``jacobian_spectra(model, x, JacobianOptions())``: full singular values of every local
Jacobian ``dh[i+1]/dh[i]`` (L of them, the last the row ``dD/dh[L-1]``) and every cumulative
Jacobian ``dh[L-1]/dh[i]`` (L-1), per input. Baselines computing the same 2L-1 spectra, timed
in the same process:

- ``loop``: per input and per Jacobian, ``torch.autograd.functional.jacobian`` then
  ``svdvals`` (the DESIGN.md baseline);
- ``vmap(jacrev)``: per Jacobian, ``torch.func.vmap(torch.func.jacrev(f))`` over the batch of
  layer inputs, then batched ``svdvals``;
- ``floor``: the bare linear algebra the answer needs, given the per-layer matrices
  ``M_i = diag(a'(z_i)) W_i`` (built outside the timing): the batched ``svdvals`` of every
  ``M_i``, the products ``C_i = C_{i+1} M_i`` and their ``svdvals``. Nothing can be faster
  with the same dense algorithm; the goal is the engine within 1.3x of it.

Agreement: per Jacobian, ``max |s - s_engine| / s_engine,max``, the worst over all of them.
Run ``python benchmarks/bench_spectra.py [--quick]``.
"""
from __future__ import annotations

import torch
from torch import nn

try:
    from . import common as C
except ImportError:
    import common as C

from gradcheck.build import make_model
from gradcheck.probe.jacobian import JacobianOptions, jacobian_spectra
from gradcheck.spec import RunSpec

GOALS = {"floor": "<= 1.3x the floor (ratio >= x0.77)", "loop": ">= x50 (depth 20)",
         "vmap(jacrev)": "", "floor (all rows)": ""}


def _maps(model):
    """(local, cumulative) lists of unbatched maps ``h_i -> ...`` as plain ``nn.Sequential``;
    and the indices of the Linear layers in the flat model."""
    seq = list(model)
    lin = [i for i, m in enumerate(seq) if isinstance(m, nn.Linear)]
    L = len(lin)
    local = [nn.Sequential(*seq[lin[i]:lin[i + 1]]) for i in range(L - 1)]
    local.append(nn.Sequential(*seq[lin[-1]:]))                   # h[L-1] -> D (1 output)
    cumulative = [nn.Sequential(*seq[lin[i]:lin[-1]]) for i in range(L - 1)]
    return local, cumulative, seq, lin


def engine(model, x):
    loc, cum = jacobian_spectra(model, x, JacobianOptions())
    return [s.values for s in loc], [s.values for s in cum]


def loop(model, x):
    local, cumulative, seq, lin = _maps(model)
    loc = [[] for _ in local]
    cum = [[] for _ in cumulative]
    for b in range(len(x)):
        hs = C.layer_inputs(seq, lin, x[b])
        for acc, maps in ((loc, local), (cum, cumulative)):
            for i, f in enumerate(maps):
                J = torch.autograd.functional.jacobian(f, hs[i])
                acc[i].append(torch.linalg.svdvals(J.reshape(-1, hs[i].numel())))
    return ([torch.stack(v).detach().numpy() for v in loc],
            [torch.stack(v).detach().numpy() for v in cum])


def vmap_jacrev(model, x):
    local, cumulative, seq, lin = _maps(model)
    hs = C.layer_inputs(seq, lin, x)
    out = []
    for maps in (local, cumulative):
        vals = []
        for i, f in enumerate(maps):
            J = torch.func.vmap(torch.func.jacrev(f))(hs[i])
            J = J.reshape(len(x), -1, hs[i].shape[-1]).detach()
            vals.append(torch.linalg.svdvals(J).numpy())
        out.append(vals)
    return tuple(out)


def chain_mats(model, x):
    """``M_i = diag(a'(z_i)) W_i`` per input, (B, n_{i+1}, n_i); ReLU/identity only."""
    local, _, seq, lin = _maps(model)
    hs = C.layer_inputs(seq, lin, x)
    mats = []
    for k, i in enumerate(lin):
        W = seq[i].weight.detach()
        act = seq[i + 1] if i + 1 < len(seq) else nn.Identity()
        if isinstance(act, nn.ReLU):
            d = (hs[k] @ W.T > 0).to(W.dtype)
        elif isinstance(act, nn.Identity):
            d = torch.ones(len(x), W.shape[0], dtype=W.dtype)
        else:
            raise TypeError(f"floor: activation {type(act).__name__} not handled")
        mats.append(d[:, :, None] * W[None])
    return mats


def svdvals_live(m: torch.Tensor) -> torch.Tensor:
    """``svdvals`` of ``m`` (B, r, c) on its non-zero rows only (ReLU's dead units zero whole
    rows: about half), zeros padded back: the same values for a fraction of the flops."""
    B, r, c = m.shape
    live = (m != 0).any(-1)
    a = int(live.sum(1).max())
    if a == r:
        return torch.linalg.svdvals(m)
    idx = torch.argsort((~live).to(torch.int8), dim=1, stable=True)[:, :a]
    s = torch.linalg.svdvals(torch.gather(m, 1, idx[:, :, None].expand(B, a, c)))
    return torch.nn.functional.pad(s, (0, min(r, c) - s.shape[1]))


def floor(mats, svd=torch.linalg.svdvals):
    """The linear algebra alone: svdvals of each M_i, the top-down products and their svdvals."""
    loc = [svd(m).numpy() for m in mats]
    cum, Cm = [], None
    for i in range(len(mats) - 2, -1, -1):
        Cm = mats[i] if Cm is None else Cm @ mats[i]
        cum.append(svd(Cm).numpy())
    return loc, cum[::-1]


def agreement(got, ref) -> float:
    worst = 0.0
    for g_list, r_list in zip(got, ref):
        for g, r in zip(g_list, r_list):
            worst = max(worst, C.max_rel_diff(g, r))
    return worst


def bench_case(depth, width, batch, repeat=3, budget_s=20.0, with_loop=True) -> list[dict]:
    spec = RunSpec(arch="mlp", depth=depth, width=width, init="lecun")
    model = make_model(spec, seed=0)
    x = torch.randn((batch, *spec.input_shape), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    label = f"mlp d{depth} w{width} B={batch}"
    ref, te, me, basis = C.measure(lambda: engine(model, x), repeat=max(repeat, 3),
                                   budget_s=budget_s)
    rows = [C.row("spectra", label, te, "(engine)", peak_MiB=me, mem_basis=basis)]
    mats = chain_mats(model, x)
    cases = {"floor": lambda: floor(mats, svdvals_live),
             "floor (all rows)": lambda: floor(mats),
             "vmap(jacrev)": lambda: vmap_jacrev(model, x)}
    if with_loop:
        cases["loop"] = lambda: loop(model, x)
    for name, fn in cases.items():
        got, tb, mb, basis = C.measure(fn, repeat=repeat if name != "loop" else 1,
                                       budget_s=budget_s)
        rows.append(C.row("spectra", label, te, name, tb, goal=GOALS[name], peak_MiB=mb,
                          mem_basis=basis, agreement=agreement(got, ref)))
    return rows


def run(quick: bool = False) -> list[dict]:
    print(f"MLP Jacobian spectra; {C.env_line()}", flush=True)
    C.guarded("spectra", "warm-up", bench_case, 3, 16, 2, repeat=1)
    cases = [(20, 128, 4, True)] if quick else [(20, 128, 16, True), (20, 256, 16, False)]
    rows = []
    for d, w, b, with_loop in cases:
        rows += C.guarded("spectra", f"mlp d{d} w{w} B={b}", bench_case, d, w, b,
                          repeat=2 if quick else 3, budget_s=5.0 if quick else 20.0,
                          with_loop=with_loop)
    C.print_table("spectra: MLP chain path", rows)
    return rows


if __name__ == "__main__":
    raise SystemExit(C.cli(__doc__, run))
