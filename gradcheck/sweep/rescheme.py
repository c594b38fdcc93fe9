"""A user's ``--model`` under each scheme: "would BSN help my D?".

The model comes from the user's factory (as in ``gradcheck run --model``); its own weight
reparametrizations on Linear/Conv2d layers (torch's ``parametrizations.spectral_norm``,
gradcheck's BSN/SSN, any other ``torch.nn.utils.parametrize`` parametrization of ``weight``)
and the legacy ``spectral_norm`` / ``weight_norm`` hooks are removed, and the scheme is applied
to the raw weights of the same architecture by :func:`gradcheck.schemes.apply_scheme` (same seed
-> same raw directions for every scheme, so the columns of ``compare`` differ by the scheme
only). A model without any of these just gets each scheme on its layers.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..claims import Setting
from ..spec import RunSpec, SpecError
from ..subjects import Subject, trial_forward, user_model


def strip_normalization(model: nn.Module) -> list[str]:
    """Remove weight parametrizations and legacy SN / weight-norm hooks from every Linear /
    Conv2d of ``model`` (in place); return what was removed, in words."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.spectral_norm import SpectralNorm, remove_spectral_norm
    from torch.nn.utils.weight_norm import WeightNorm, remove_weight_norm

    removed = []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        where = name or "<model>"
        if parametrize.is_parametrized(m, "weight"):
            kinds = "+".join(type(p).__name__ for p in m.parametrizations["weight"])
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
            removed.append(f"{kinds} parametrization on {where}")
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, SpectralNorm):
                remove_spectral_norm(m, hook.name)
                removed.append(f"legacy spectral_norm on {where}")
            elif isinstance(hook, WeightNorm):
                remove_weight_norm(m, hook.name)
                removed.append(f"legacy weight_norm on {where}")
    return removed


def summarize_removed(removed: list[str]) -> str:
    """'SpectralNorm parametrization (3 layers), legacy spectral_norm (1 layer)'."""
    counts: dict[str, int] = {}
    for r in removed:
        what = r.split(" on ")[0]
        counts[what] = counts.get(what, 0) + 1
    return ", ".join(f"{w} ({n} layer{'s' if n > 1 else ''})" for w, n in counts.items())


def _activation(model: nn.Module, x: torch.Tensor) -> tuple[str, float]:
    """The activation kind and slope measured on one recorded forward (Kaiming's gain)."""
    from ..probe import ProbeError
    from ..probe.facts import measure_facts
    from ..probe.layers import record

    try:
        facts = measure_facts(record(model, x[:1]), model)
    except ProbeError as e:
        raise SpecError(f"argument --model: {e}") from None
    kinds = [a.kind for a in facts.activations]
    act = facts.activation or (kinds[0] if kinds else "linear")
    return act, facts.slope


def reschemed_subject(spec: RunSpec, seed: int, scheme: str,
                      scale: float = 1.0) -> tuple[Subject, list[str]]:
    """The subject of one seed: the user's model, normalization removed, ``scheme`` applied;
    and what was removed (:func:`strip_normalization`).

    C6a's LeCun twin (SN family) is the same stripped model with LeCun weights from the same
    seed. The setting records the scheme, so C5 / C6b / C9b apply as on a built-in model.
    """
    from ..build import DTYPE, make_inputs, resolve_device
    from ..schemes import apply_scheme
    from ..schemes.registry import SCHEMES

    dev, dt = resolve_device(spec.device), DTYPE[spec.dtype]
    base = user_model(spec, seed)
    removed = strip_normalization(base)
    base = base.double()
    x = make_inputs(spec, seed)
    trial_forward(base, x, "--model/--input-shape")
    act, slope = _activation(base, x)

    def draw(name: str, c: float) -> nn.Module:
        m = copy.deepcopy(base)
        apply_scheme(m, name, x, seed=seed, scale=c, activation=act, slope=slope,
                     mode=spec.sn_mode, n_power_iterations=spec.power_iterations)
        return m.to(device=dev, dtype=dt).eval()

    rec = SCHEMES[scheme]
    model = draw(scheme, scale)
    twin = draw("lecun", 1.0) if rec.spectral else None
    eps = float(torch.finfo(dt).eps)
    desc = f"{type(base).__name__} ({spec.model}) under {rec.label}" + \
        (f" (scale {rec.c(scale):g})" if rec.takes_scale else "")
    subj = Subject(model, x.to(device=dev, dtype=dt), Setting(scheme, rec.c(scale), eps),
                   "model", desc, twin)
    return subj, removed


__all__ = ["strip_normalization", "summarize_removed", "reschemed_subject"]
