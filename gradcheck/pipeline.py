"""The per-seed pipeline: subject -> probe -> facts -> claims -> tables. No I/O.

``run_seed(spec, seed)`` is the one per-seed step (used by ``run``, ``track`` and the figures);
``run(spec)`` concatenates the seeds. Measurements a claim declares in ``needs`` are taken only
when its premises hold: C6a's LeCun twin is probed only for an SN-family model on which C6a can
apply.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .claims import CHECK_COLUMNS, REGISTRY, Context, check_all, failed_premise
from .claims._base import verdict_line, violated_claims
from .claims.c6_sn_lecun import r_hat, r_pred
from .claims.c7_meanfield import mean_field
from .probe import JacobianOptions, ProbeOptions, ProbeResult, probe
from .spec import RunSpec
from .subjects import Subject, subject


@dataclass(frozen=True)
class SeedOutput:
    """One seed: table rows, spectra, the raw measurements and what was probed."""

    layers: list[dict]
    checks: list[dict]
    spectra: dict[str, np.ndarray]
    result: ProbeResult
    subject: Subject
    notes: tuple[str, ...]


@dataclass(frozen=True)
class RunOutput:
    """Everything a run produces, before it is written anywhere."""

    spec: RunSpec
    layers: pd.DataFrame
    checks: pd.DataFrame
    spectra: dict[str, np.ndarray]
    seconds: float
    subject: str = ""                 # what was probed, in words (console, summary, plots)
    notes: tuple[str, ...] = ()       # facts' warnings, skipped stages, identified activations


def probe_options(spec: RunSpec, seed: int, spectra: bool = True) -> ProbeOptions:
    if not spectra:
        return ProbeOptions(spectra=False, seed=seed)
    return ProbeOptions(spectra_inputs=min(spec.spectra_inputs, spec.batch),
                        jacobian=JacobianOptions(k=spec.topk, seed=seed,
                                                 operator_inputs=spec.operator_inputs,
                                                 mode=spec.spectra,
                                                 budget_seconds=spec.budget_seconds), seed=seed)


def layer_rows(ctx: Context, v, mf, mf_pad) -> list[dict]:
    """One row per layer: shapes, the three sigmas, gradient norms, predictions, spectra."""
    result, seed, eps = ctx.result, ctx.seed, ctx.setting.eps
    g, rows = result.grads, []
    for t, (info, n) in enumerate(zip(result.layers, result.norms)):
        wg_rms = math.sqrt(float(np.mean(g.weight_grad[t] ** 2)))
        ag_rms = math.sqrt(float(np.mean(g.act_grad[t] ** 2)))
        wg_pred, ag_pred = math.sqrt(mf.weight_grad_sq[t]), math.sqrt(mf.act_grad_sq[t])
        wp_pad, ap_pad = math.sqrt(mf_pad.weight_grad_sq[t]), math.sqrt(mf_pad.act_grad_sq[t])
        ratio = lambda a, b: a / b if b else math.nan  # noqa: E731
        row = dict(seed=seed, layer=t, name=info.name, kind=info.kind,
                   weight_shape="x".join(map(str, info.weight_shape)),
                   input_shape="x".join(map(str, info.input_shape)),
                   output_shape="x".join(map(str, info.output_shape)),
                   fan_in=info.fan_in, fan_out=info.fan_out, mu=info.mu,
                   sigma_R=n.sigma_R, sigma_R2=n.sigma_R2, sigma_op=n.sigma_op,
                   op_over_R=n.sigma_op / n.sigma_R if n.sigma_R > 0 else math.nan,
                   op_residual=n.op_residual,
                   op_method=n.op_method, frobenius=n.frobenius, sigma_scheme=n.sigma_scheme,
                   raw_sigma_R=n.raw_sigma_R, sigma_1step=n.sigma_1step,
                   r_hat=r_hat(ctx, n), r_pred=r_pred(ctx, info, n)[0],
                   v=v[t], chi=mf.chi[t],
                   wgrad_mean=float(np.mean(g.weight_grad[t])), wgrad_rms=wg_rms,
                   wgrad_pred=wg_pred, wgrad_ratio=ratio(wg_rms, wg_pred),
                   agrad_mean=float(np.mean(g.act_grad[t])), agrad_rms=ag_rms,
                   agrad_pred=ag_pred, agrad_ratio=ratio(ag_rms, ag_pred),
                   wgrad_pred_pad=wp_pad, wgrad_ratio_pad=ratio(wg_rms, wp_pad),
                   agrad_pred_pad=ap_pad, agrad_ratio_pad=ratio(ag_rms, ap_pad))
        for name, specs in (("local", result.local), ("cum", result.cumulative)):
            sp = specs[t] if t < len(specs) else None
            row[f"jac_{name}_max"] = float(np.mean(sp.top)) if sp else math.nan
            nz = sp.smallest_nonzero(eps) if sp else np.array([math.nan])
            row[f"jac_{name}_min"] = float(np.nanmean(nz)) if np.isfinite(nz).any() \
                else math.nan
            row[f"jac_{name}_rank"] = float(np.mean(sp.rank_fraction(eps))) if sp \
                else math.nan
            row[f"jac_{name}_msq"] = float(np.mean(sp.msq)) if sp else math.nan
            row[f"jac_{name}_method"] = sp.method if sp else ""
            row[f"jac_{name}_inputs"] = int(sp.values.shape[0]) if sp else 0
            # top-k solves: the worst relative residual over inputs (NaN: full spectrum)
            row[f"jac_{name}_residual"] = float(np.max(sp.residual)) \
                if sp is not None and sp.residual is not None and len(sp.residual) else math.nan
        rows.append(row)
    return rows


def _twin(seed: int, subj: Subject, ctx: Context):
    """C6a's LeCun twin and the cancellation factor, when C6a can apply."""
    from .probe.conditioning import conditioning

    if subj.twin_model is None or failed_premise(REGISTRY["C6a"], ctx):
        return None, 1.0
    # C6a reads the twin's gradient norms only: no layer norms (conv Lanczos), no spectra
    twin = probe(subj.twin_model, subj.x, ProbeOptions(spectra=False, norms=False, seed=seed))
    try:    # rounding amplification where sums nearly cancel (C6a tolerance)
        k = conditioning(subj.twin_model, subj.x)
    except (RuntimeError, ValueError):
        k = 1.0
    return twin, k


def run_seed(spec: RunSpec, seed: int, model_level: bool = True, spectra: bool = True,
             progress=None) -> SeedOutput:
    """Probe one seed's subject and check it against THEORY.

    ``model_level=False`` skips the claims that need the model itself (C2a, C3, C4, C11-H)
    and C6a's twin (the figures do not draw them; they dominate the cost of deep nets).
    """
    say = progress or (lambda m: None)
    subj = subject(spec, seed, say)
    return check_subject(subj, probe_options(spec, seed, spectra), seed, model_level, say)


def check_subject(subj: Subject, opts: ProbeOptions, seed: int = 0, model_level: bool = True,
                  progress=None) -> SeedOutput:
    """Probe a :class:`Subject`, measure its facts, check every claim: the per-seed step."""
    say = progress or (lambda m: None)
    say(f"probing {subj.description}")
    res = probe(subj.model, subj.x, opts, say)
    say("measured: " + res.facts.describe())
    notes = list(res.facts.warnings) + ([res.spectra_note] if res.spectra_note else [])
    if res.spectra_plan:
        notes.append(f"Jacobian spectra plan: {res.spectra_plan}")
    if subj.source != "builtin":
        notes.insert(0, "model facts (measured): " + res.facts.describe())
    ctx = Context(res, subj.setting, seed, subj.model if model_level else None, subj.x)
    twin, k = (None, 1.0)
    if model_level:
        twin, k = _twin(seed, subj, ctx)
        if twin is not None:
            say("probed the LeCun twin for C6a")
    q0 = float((subj.x.double() ** 2).mean())
    v, mf = mean_field(ctx, q0)
    _, mf_pad = mean_field(ctx, q0, padding_aware=True)
    ctx = Context(res, subj.setting, seed, ctx.model, subj.x, twin, k,
                  extra=dict(mean_field=mf, model_level=model_level))
    say("checking the claims")
    checks = check_all(ctx, say)
    spectra_out = {}
    for t in range(len(res.layers)):
        for name, specs in (("local", res.local), ("cumulative", res.cumulative)):
            if t < len(specs):
                spectra_out[f"seed{seed}/layer{t}/{name}"] = specs[t].values
                if specs[t].residual is not None:
                    spectra_out[f"seed{seed}/layer{t}/{name}_residual"] = specs[t].residual
    spectra_out[f"seed{seed}/weight_grad"] = res.grads.weight_grad
    spectra_out[f"seed{seed}/act_grad"] = res.grads.act_grad
    return SeedOutput(layer_rows(ctx, v, mf, mf_pad), checks, spectra_out, res, subj,
                      tuple(notes))


def run(spec: RunSpec, progress=None, model_level: bool = True) -> RunOutput:
    """Probe one subject per seed and check it against THEORY (every claim in the registry)."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    layers, checks, spectra, notes, subject_desc = [], [], {}, [], ""
    for seed in spec.seeds:
        out = run_seed(spec, seed, model_level=model_level,
                       progress=lambda m, s=seed: say(f"seed {s}: {m}"))
        layers += out.layers
        checks += out.checks
        spectra.update(out.spectra)
        notes += [n for n in out.notes if n not in notes]
        subject_desc = subject_desc or out.subject.describe(out.result)
    return RunOutput(spec, pd.DataFrame(layers), pd.DataFrame(checks, columns=CHECK_COLUMNS),
                     spectra, time.perf_counter() - t0, subject_desc, tuple(notes))


@dataclass(frozen=True)
class Checks:
    """What :func:`check` returns: the tables of ``gradcheck run`` and the verdict."""

    layers: pd.DataFrame       # one row per layer (layers.csv columns)
    checks: pd.DataFrame       # one row per (claim, layer) (checks.csv columns)
    verdict: str               # 'all asserted claims hold' | 'violated: C1, ...'
    violated: tuple[str, ...]
    facts: object              # gradcheck.probe.facts.ModelFacts, measured
    result: ProbeResult

    @property
    def ok(self) -> bool:
        return not self.violated


def check(model, x, scheme: str | None = None, scale: float = 1.0, *, seed: int = 0,
          spectra: bool = False, model_level: bool = True, trained: bool = False) -> Checks:
    """Check an in-memory ``nn.Module`` against THEORY: no factory, no files.

    Args:
        model: any discriminator returning one score per input (probed in eval mode).
        x: inputs ``(B, ...)`` on the model's device and dtype.
        scheme: the scaling its weights were drawn with, if known (enables C5/C6b/C9b;
            None: unknown provenance, those claims are not applicable).
        scale: ``c`` of ssn / bssn.
        seed: seeds the matrix-free solvers and the C2a rescaling.
        spectra: also compute Jacobian spectra (chains only; slower).
        model_level: also run the claims that need the model itself (C2a, C3, C4, C11-H).
        trained: the weights were moved by training (no longer the scheme's Gaussians).

    Returns:
        :class:`Checks` with the layers and checks tables, the measured facts and the verdict.

    Example:
        >>> import torch, gradcheck
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> D = nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 1, bias=False))
        >>> out = gradcheck.check(D.double(), torch.randn(16, 4, dtype=torch.float64))
        >>> out.verdict
        'all asserted claims hold'
        >>> out.checks.query("claim == 'C1'").holds.all()
        np.True_
    """
    import torch

    from .claims import Setting
    from .schemes.registry import get

    if scheme is not None:
        get(scheme)
    setting = Setting(scheme, scale, float(torch.finfo(x.dtype).eps), trained)
    subj = Subject(model, x, setting, "python", type(model).__name__)
    out = check_subject(subj, ProbeOptions(spectra=spectra, seed=seed), seed, model_level)
    checks = pd.DataFrame(out.checks, columns=CHECK_COLUMNS)
    violated = violated_claims(checks)
    return Checks(pd.DataFrame(out.layers), checks, verdict_line(violated), violated,
                  out.result.facts,
                  out.result)


__all__ = ["SeedOutput", "RunOutput", "Checks", "probe_options", "layer_rows", "run_seed",
           "check_subject", "run", "check"]
