"""The claims registry: every claim of THEORY.md with its kind, statement, premise and the
applicability test ``run`` uses to decide between checking it and saying "not applicable".

``applies(claim_id, setting, layers) -> (bool, reason)`` is the one place that decides.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("inequality", "identity", "prediction", "empirical")
HOMOGENEOUS = ("relu", "lrelu", "linear")
PIECEWISE_LINEAR = ("relu", "lrelu", "linear")
SN_FAMILY = ("sn", "sn-conv", "bsn", "ssn", "bssn")


@dataclass(frozen=True)
class Claim:
    id: str
    kind: str
    statement: str
    assumptions: str


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("C1", "inequality",
          "||dD/dW_t||_F <= lambda_L mu_t ||x|| prod_{i!=t} ||W_i||_op for every layer and input",
          "bias-free; |a'| <= 1 internal activations; flatten/pooling with norm <= 1"),
    Claim("C1a", "identity", "dense layer, one input: ||dD/dW_t||_F = ||delta_t|| ||h_{t-1}||",
          "dense layer"),
    Claim("C1-SN", "inequality",
          "every dense layer at spectral norm 1: ||dD/dW_t||_F <= lambda_L ||x||",
          "bias-free, all layers dense, scheme sn/bsn/sn-conv (c = 1)"),
    Claim("C2a", "identity",
          "scaling layer i by c_i > 0 with prod c_i = 1 leaves D unchanged and divides dD/dW_t "
          "by c_t", "bias-free, ReLU/leaky-ReLU/identity activations, identity output"),
    Claim("C2b", "inequality",
          "||x||^2 C^2 sum_t s_t^-2 >= L ||x||^2 C^(2-2/L) with C = prod s_t (AM-GM)",
          "s_t > 0 (layer operator norms)"),
    Claim("C3a", "identity",
          "dD/dW = (G - <G, W_bar> u v^T) / sigma(W) through W_bar = W / sigma(W)",
          "SN map with the exact, simple top singular value"),
    Claim("C3b", "inequality", "||dD/dW||_F <= (||G||_F + ||G||_*) / sigma(W)",
          "SN map with the exact, simple top singular value"),
    Claim("C4", "inequality",
          "||H_{W_t} D||_op <= sup|a_L''| (mu_t ||x|| prod_{i!=t} ||W_i||_op)^2; 0 for "
          "identity output", "bias-free, piecewise-linear internal activations"),
    Claim("C5", "inequality",
          "s max(E||g_m||, E||g_n||) <= E||W||_op <= s (sqrt m + sqrt n) (Gordon)",
          "W m x n with i.i.d. N(0, s^2) entries"),
    Claim("C5-ratio", "prediction", "||W||_op / (s (sqrt m + sqrt n)) -> 1 (Bai-Yin)",
          "i.i.d. Gaussian raw weights"),
    Claim("C6a", "identity",
          "dD/dW_t(SN) = prod_{i!=t} r_hat_i dD/dW_t(LeCun), r_hat_i = s_i sqrt(fan_in_i) / "
          "sigma_i", "homogeneous (C2a premise), SN family on Gaussian raw weights"),
    Claim("C6b", "prediction",
          "r ~ sqrt(n)/(sqrt(n)+sqrt(m)) (SN), BSN and SN_Conv variants, c r scaled",
          "Gaussian raw weights"),
    Claim("C7", "prediction",
          "E||dD/dW_l||_F^2 ~ N_l fan_in_l d_l q_{l-1} (mean field)",
          "Gaussian weights, large width"),
    Claim("C8", "inequality",
          "sigma_R(K) <= ||Conv_K||_op <= mu sigma_R(K) (and sigma_R2, stride 1)",
          "zero padding, some receptive field inside the input"),
    Claim("C9a", "identity", "dense layers: sigma_R = sigma_R2, so BSN == SN", "dense layer"),
    Claim("C9b", "prediction",
          "BSN's effective std tracks Xavier's up to a per-layer constant; spread and "
          "sum |log chi| reported per scheme", "Gaussian raw weights"),
    Claim("C10", "empirical", "SN keeps control throughout training; LeCun only at the start",
          "checkpoints of trained GANs"),
]}


def applies(claim_id: str, scheme: str | None, activation: str, output: str, bias: bool,
            kinds: list[str]) -> tuple[bool, str]:
    """Whether ``claim_id`` applies to a model; the reason when it does not.

    Args:
        scheme: the scaling (None: unknown provenance). activation: internal activation.
        output: output activation. bias: biases present. kinds: per-layer 'linear'/'conv'.
    """
    if claim_id not in CLAIMS:
        raise KeyError(f"unknown claim {claim_id!r}; known: {', '.join(CLAIMS)}")
    if bias and claim_id in ("C1", "C1-SN", "C2a", "C4", "C6a"):
        return False, "biases present (theory is bias-free)"
    if claim_id == "C1-SN":
        if scheme not in ("sn", "bsn", "sn-conv"):
            return False, "layers are not normalised to spectral norm 1"
        if any(k != "linear" for k in kinds):
            return False, "conv layers: SN_w operator norms can exceed 1 (C8); see C1"
    if claim_id in ("C2a", "C6a"):
        if activation not in HOMOGENEOUS:
            return False, f"activation {activation} is not positively homogeneous"
        if output != "identity":
            return False, f"output activation {output} is not homogeneous"
    if claim_id == "C4" and output not in ("identity", "sigmoid"):
        return False, f"output activation {output}: sup|a_L''| unknown"
    if claim_id in ("C6a", "C6b", "C3a", "C3b") and scheme not in SN_FAMILY:
        return False, "not an SN-family scheme"
    if claim_id == "C4" and activation not in PIECEWISE_LINEAR:
        return False, f"activation {activation} is not piecewise linear"
    if claim_id in ("C5", "C5-ratio") and scheme == "orthogonal":
        return False, "orthogonal weights are not Gaussian"
    if claim_id in ("C5", "C5-ratio", "C6b", "C9b") and scheme is None:
        return False, "weights of unknown provenance"
    return True, ""
