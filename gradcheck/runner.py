"""spec -> (model, inputs) -> probe -> checks: the whole ``gradcheck run`` pipeline, no I/O."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from .build import DTYPE, make_inputs, make_model, resolve_device
from .probe import JacobianOptions, ProbeOptions, ProbeResult, probe
from .schemes import SPECTRAL_SCHEMES
from .spec import RunSpec
from .verify import CHECK_COLUMNS, Setting, checks, mean_field, r_hat, shrink_pred
from .probe.conditioning import conditioning
from .verify_model import model_checks


@dataclass(frozen=True)
class RunOutput:
    """Everything a run produces, before it is written anywhere."""

    spec: RunSpec
    layers: pd.DataFrame
    checks: pd.DataFrame
    spectra: dict[str, np.ndarray]
    seconds: float


def setting_of(spec: RunSpec, scheme: str | None = None, trained: bool = False) -> Setting:
    return Setting(scheme=scheme if scheme is not None or spec.source != "builtin" else spec.init,
                   scale=spec.scale, activation=spec.resolved_activation, slope=spec.slope,
                   output=spec.output, bias=spec.bias,
                   eps=float(torch.finfo(DTYPE[spec.dtype]).eps), trained=trained)


def probe_options(spec: RunSpec, seed: int) -> ProbeOptions:
    return ProbeOptions(spectra_inputs=min(spec.spectra_inputs, spec.batch),
                        jacobian=JacobianOptions(k=spec.topk, seed=seed,
                                                 operator_inputs=spec.operator_inputs), seed=seed)


def _probe_seed(spec: RunSpec, seed: int, init: str | None = None,
                spectra: bool = True, progress=None):
    """(model, inputs, ProbeResult) of a built-in model for one seed."""
    dev, dt = resolve_device(spec.device), DTYPE[spec.dtype]
    model = make_model(spec, seed, init).to(device=dev, dtype=dt)
    x = make_inputs(spec, seed).to(device=dev, dtype=dt)
    opts = probe_options(spec, seed)
    if not spectra:
        opts = ProbeOptions(spectra=False, seed=seed)
    return model, x, probe(model, x, opts, progress)


def layer_rows(result: ProbeResult, setting: Setting, seed: int, v, mf, mf_pad) -> list[dict]:
    """One row per layer: shapes, the three sigmas, gradient norms, predictions, spectra."""
    g, rows = result.grads, []
    for t, (info, n) in enumerate(zip(result.layers, result.norms)):
        wg_rms = math.sqrt(float(np.mean(g.weight_grad[t] ** 2)))
        ag_rms = math.sqrt(float(np.mean(g.act_grad[t] ** 2)))
        wg_pred, ag_pred = math.sqrt(mf.weight_grad_sq[t]), math.sqrt(mf.act_grad_sq[t])
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
                   r_hat=r_hat(setting, info, n), r_pred=shrink_pred(setting, info, n),
                   v=v[t], chi=mf.chi[t],
                   wgrad_mean=float(np.mean(g.weight_grad[t])), wgrad_rms=wg_rms,
                   wgrad_pred=wg_pred, wgrad_ratio=wg_rms / wg_pred if wg_pred else math.nan,
                   agrad_mean=float(np.mean(g.act_grad[t])), agrad_rms=ag_rms,
                   agrad_pred=ag_pred, agrad_ratio=ag_rms / ag_pred if ag_pred else math.nan,
                   wgrad_pred_pad=math.sqrt(mf_pad.weight_grad_sq[t]),
                   wgrad_ratio_pad=wg_rms / math.sqrt(mf_pad.weight_grad_sq[t])
                   if mf_pad.weight_grad_sq[t] else math.nan,
                   agrad_pred_pad=math.sqrt(mf_pad.act_grad_sq[t]),
                   agrad_ratio_pad=ag_rms / math.sqrt(mf_pad.act_grad_sq[t])
                   if mf_pad.act_grad_sq[t] else math.nan)
        for name, specs in (("local", result.local), ("cum", result.cumulative)):
            sp = specs[t] if t < len(specs) else None
            row[f"jac_{name}_max"] = float(np.mean(sp.top)) if sp else math.nan
            nz = sp.smallest_nonzero(setting.eps) if sp else np.array([math.nan])
            row[f"jac_{name}_min"] = float(np.nanmean(nz)) if np.isfinite(nz).any() \
                else math.nan
            row[f"jac_{name}_rank"] = float(np.mean(sp.rank_fraction(setting.eps))) if sp \
                else math.nan
            row[f"jac_{name}_msq"] = float(np.mean(sp.msq)) if sp else math.nan
            row[f"jac_{name}_method"] = sp.method if sp else ""
        rows.append(row)
    return rows


def _external(spec: RunSpec, seed: int, say):
    """(model, inputs, setting, twin=None) for --checkpoint / --model sources."""
    from .sources import checkpoint_inputs, checkpoint_model, trial_forward, user_model

    if spec.source == "checkpoint":
        model, tspec, step = checkpoint_model(spec)
        say(f"checkpoint step {step}: {tspec.arch} D trained with {tspec.scheme}")
        x = checkpoint_inputs(tspec, spec.batch, seed)
        setting = Setting(scheme=tspec.scheme, scale=tspec.scale, activation=tspec.activation,
                          slope=tspec.slope, output="identity", bias=False,
                          eps=float(torch.finfo(DTYPE[spec.dtype]).eps), trained=True)
    else:
        model = user_model(spec, seed)
        gen = torch.Generator().manual_seed(10_000 + int(seed))
        x = torch.randn((spec.batch, *spec.input_shape), generator=gen, dtype=torch.float64)
        trial_forward(model.double(), x, "--model/--input-shape")
        setting = _user_setting(spec, model, x, say)
    return model, x, setting


def _user_setting(spec: RunSpec, model, x, say) -> Setting:
    """Activations of a user model read off the tape (``--activation`` overrides)."""
    from .probe.activations import infer_activations
    from .probe.layers import record

    info = infer_activations(record(model.eval(), x[:8]))
    act = spec.activation or info.activation or "unknown"
    slope = spec.slope if spec.activation else (info.slope if info.activation == "lrelu"
                                                else spec.slope)
    say(f"activations from the tape: internal {info.activation or 'unidentified'}"
        f"{f' (slope {slope:g})' if act == 'lrelu' else ''}, output {info.output or 'unidentified'}"
        f"{'; ' + info.note if info.note else ''}")
    premise = "" if info.max_slope <= 1 + 1e-12 else (
        f"an activation slope {info.max_slope:.4g} > 1 was measured (THEORY premise |a'| <= 1)")
    return Setting(scheme=None, scale=1.0, activation=act, slope=slope,
                   output=info.output or "unknown", bias=False,
                   eps=float(torch.finfo(DTYPE[spec.dtype]).eps), c1_premise=premise)


def run(spec: RunSpec, progress=None) -> RunOutput:
    """Probe one model per seed and check it against THEORY (C1, C1-SN, C1a, C6a, C7, C8)."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    dev, dt = resolve_device(spec.device), DTYPE[spec.dtype]
    layer_list, check_list, spectra = [], [], {}
    for seed in spec.seeds:
        tell = lambda m, s=seed: say(f"seed {s}: {m}")  # noqa: E731
        twin, c6a_k = None, 1.0
        if spec.source == "builtin":
            setting = setting_of(spec)
            tell(f"probing {spec.arch} ({spec.n_layers} layers, init {spec.init})")
            model, x, res = _probe_seed(spec, seed, progress=tell)
            if spec.init in SPECTRAL_SCHEMES:
                tell("probing the LeCun twin for C6a")
                twin_model, _, twin = _probe_seed(spec, seed, init="lecun", spectra=False)
                try:    # rounding amplification where sums nearly cancel (C6a tolerance)
                    c6a_k = conditioning(twin_model, x)
                except (RuntimeError, ValueError):
                    c6a_k = 1.0
        else:
            model, x, setting = _external(spec, seed, tell)
            model, x = model.to(device=dev, dtype=dt), x.to(device=dev, dtype=dt)
            res = probe(model, x, probe_options(spec, seed), tell)
        if any(info.has_bias for info in res.layers) and not setting.bias:
            setting = replace(setting, bias=True)      # the model has biases: say so
        q0 = float((x.double() ** 2).mean())
        v, mf = mean_field(res, setting, q0)
        _, mf_pad = mean_field(res, setting, q0, padding_aware=True)
        layer_list += layer_rows(res, setting, seed, v, mf, mf_pad)
        check_list += checks(res, setting, seed, mf, twin, c6a_k)
        tell("model checks (C2-C5, C6b, C9)")
        check_list += model_checks(model, x, res, setting, seed)
        for t in range(len(res.layers)):
            if t < len(res.local):
                spectra[f"seed{seed}/layer{t}/local"] = res.local[t].values
            if t < len(res.cumulative):
                spectra[f"seed{seed}/layer{t}/cumulative"] = res.cumulative[t].values
        spectra[f"seed{seed}/weight_grad"] = res.grads.weight_grad
        spectra[f"seed{seed}/act_grad"] = res.grads.act_grad
    return RunOutput(spec, pd.DataFrame(layer_list),
                     pd.DataFrame(check_list, columns=CHECK_COLUMNS), spectra,
                     time.perf_counter() - t0)
