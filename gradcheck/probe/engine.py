"""The probe engine: one call measures everything THEORY needs about a model on some inputs."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from .facts import ModelFacts, measure_facts
from .gradients import GradientNorms, gradient_norms
from .jacobian import JacobianOptions, Spectrum, spectra_with_plan
from .layers import LayerInfo, record
from .norms import LayerNorms, layer_norms


@dataclass(frozen=True)
class ProbeOptions:
    """What to measure and how hard to try."""

    spectra: bool = True                  # compute Jacobian singular values
    norms: bool = True                    # compute the layer norms (False: ProbeResult.norms=())
    spectra_inputs: int = 16              # how many of the inputs get spectra
    jacobian: JacobianOptions = field(default_factory=JacobianOptions)
    op_tol: float = 1e-10                 # relative tolerance of conv operator norms
    max_elements: int = 1 << 24           # chunk bound for per-sample weight gradients
    chunk: int = 256                      # inputs per gradient chunk
    seed: int = 0


@dataclass(frozen=True)
class ProbeResult:
    """Measurements of one model on one batch of inputs (THEORY C1-C9, C11 inputs)."""

    layers: tuple[LayerInfo, ...]
    norms: tuple[LayerNorms, ...]
    grads: GradientNorms
    local: tuple[Spectrum, ...]          # empty when spectra were not requested / not a chain
    cumulative: tuple[Spectrum, ...]
    facts: ModelFacts | None = None      # measured on the first recorded forward pass
    spectra_note: str = ""               # why no spectra were computed, or what the budget cut
    spectra_plan: str = ""               # how each Jacobian family was computed, estimated cost


def _concat_grads(parts: list[GradientNorms]) -> GradientNorms:
    import numpy as np

    ax = {"x_norm": 0, "D": 0}
    fields = [f for f in GradientNorms.__dataclass_fields__ if f != "weight_grad_vjp"]
    return GradientNorms(**{f: np.concatenate([getattr(p, f) for p in parts], axis=ax.get(f, 1))
                            for f in fields}, weight_grad_vjp=parts[0].weight_grad_vjp)


def probe(model: nn.Module, x: torch.Tensor, opts: ProbeOptions = ProbeOptions(),
          progress=None) -> ProbeResult:
    """Measure ``model`` on inputs ``x`` of shape ``(B, ...)``.

    The model is put in eval mode for the duration (authors'-mode SN does not update) and
    restored after. ``progress`` is an optional callable ``progress(str)``.
    """
    was_training = model.training
    model.eval()
    say = progress or (lambda msg: None)
    try:
        with parametrize.cached():
            parts, first = [], None
            for s in range(0, x.shape[0], opts.chunk):
                tape = record(model, x[s:s + opts.chunk])
                first = first or tape
                parts.append(gradient_norms(tape, opts.max_elements))
            facts = measure_facts(first, model)
            say("gradient norms done")
            norms = ()
            if opts.norms:            # conv operator norms by Lanczos: seconds per layer
                from .budget import Progress

                cost = [float(max(1, w.numel())) * (1 if info.kind == "linear" else
                                                     max(1, math.prod(info.output_shape[1:])))
                        for info, w in zip(first.layers, first.weights)]
                bar = Progress(progress, sum(cost), "layer norms")
                out = []
                for j, (info, mod, w) in enumerate(zip(first.layers, first.modules,
                                                       first.weights)):
                    out.append(layer_norms(info, mod, w, opts.op_tol, opts.seed))
                    bar.step(cost[j], f"(layer {j + 1}/{len(cost)})")
                norms = tuple(out)
            if opts.norms:
                say("spectral norms done")
            local = cumulative = ()
            note = plan = ""
            if opts.spectra and opts.spectra_inputs > 0 and not facts.chain:
                note = ("Jacobian spectra skipped: " + facts.not_chain()
                        + "; layer-to-layer Jacobians are defined for chains only")
                say(note)
            elif opts.spectra and opts.spectra_inputs > 0:
                local, cumulative, plan, note = spectra_with_plan(
                    model, x[:opts.spectra_inputs], opts.jacobian, progress)
                note = f"Jacobian spectra: {note}" if note else ""
                say("Jacobian spectra done")
        return ProbeResult(tuple(first.layers), norms, _concat_grads(parts), tuple(local),
                           tuple(cumulative), facts, note, plan)
    finally:
        model.train(was_training)
