"""One record per weight scaling (THEORY §1): everything the rest of gradcheck asks about a scheme.

Spec validation, CLI help, the claims (C1-SN gate, C5/C6b/C9b premises, C6a shrink, C6b
prediction, C7 variance), the figures, the proofs samplers and the test strategies read these
records; nothing else tests a scheme's name. Adding a scheme is one :class:`Scheme` entry here
(plus a divisor in :mod:`gradcheck.schemes.spectral` if it divides by something new) and its test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: how the SN family computes sigma: exact (SVD / Lanczos) or the authors' power iteration
MODES = ("exact", "power")

#: the divisors a ``SpectralScaling`` knows (``sigma`` of THEORY §1)
DIVISORS = {
    "sn": "sigma_R(W) (Miyato's SN_w)",
    "bsn": "(sigma_R(W) + sigma_R2(W)) / 2",
    "sn-conv": "||Conv_W||_op on the layer's actual input (strict SN)",
}


@dataclass(frozen=True)
class Scheme:
    """A weight scaling.

    ``raw`` is the Gaussian (or orthogonal) draw the weights start from; ``divisor`` the SN
    family's sigma (None: the draw is used as is); ``takes_scale``: multiplied by ``c``.
    """

    name: str
    raw: str                      # lecun | xavier | kaiming | orthogonal
    divisor: str | None           # None | sn | bsn | sn-conv (a key of DIVISORS)
    takes_scale: bool
    label: str                    # for tables and plots
    help: str                     # one line for --help

    @property
    def spectral(self) -> bool:
        """Divides the raw weight by a spectral norm (the SN family)."""
        return self.divisor is not None

    @property
    def gaussian(self) -> bool:
        """The weights are (a scaling of) i.i.d. Gaussian draws (C5, C6b, C9b premises)."""
        return self.raw != "orthogonal"

    @property
    def unit_norm(self) -> bool:
        """Every dense layer ends at spectral norm exactly 1 (C1-SN's premise)."""
        return self.spectral and not self.takes_scale

    def c(self, scale: float) -> float:
        """The multiplier ``c`` actually applied (1 unless the scheme takes a scale)."""
        return float(scale) if self.takes_scale else 1.0

    def raw_std(self, fan_in: int, fan_out: int, gain: float) -> float:
        """Per-entry std ``s`` of the Gaussian draw (the raw std for the SN family).

        ``gain`` is the Kaiming gain of the model's activation (used by kaiming only).
        """
        if self.raw == "xavier":
            return math.sqrt(2.0 / (fan_in + fan_out))
        if self.raw == "kaiming":
            return gain / math.sqrt(fan_in)
        return 1.0 / math.sqrt(fan_in)

    def weight_variance(self, shape: tuple[int, ...], fan_in: int, fan_out: int, gain: float,
                        sigma_scheme: float, scale: float) -> float:
        """``v_l`` of THEORY C7: per-entry variance of the weight the forward uses, at init."""
        if self.spectral:            # c^2 s^2 / sigma^2 with raw std s = 1/sqrt(fan_in)
            return self.c(scale) ** 2 / (fan_in * sigma_scheme ** 2)
        if self.raw == "orthogonal":
            m = shape[0]
            return min(m, fan_in) / (m * fan_in)
        return self.raw_std(fan_in, fan_out, gain) ** 2

    def shrink(self, sigma_scheme: float, scale: float) -> float:
        """THEORY C6a ``r_hat = c s sqrt(fan_in) / sigma_scheme`` (``s = 1/sqrt(fan_in)``)."""
        return self.c(scale) / sigma_scheme if self.spectral else math.nan

    def shrink_prediction(self, c_in: int, c_out: int, k: int, conv: bool, scale: float,
                          sigma_scheme: float) -> tuple[float, str]:
        """THEORY C6b ``(r_pred, note)``; NaN outside the SN family.

        SN_Conv on a conv layer: C6b's ``s sqrt(n) / ||Conv||_op`` has no closed form, so the
        prediction is evaluated with the measured raw operator norm (equal to ``r_hat``).
        """
        from ..theory.meanfield import shrink_prediction

        if not self.spectral:
            return math.nan, ""
        if self.divisor == "sn-conv" and conv:
            return self.c(scale) / sigma_scheme, "SN_Conv: s sqrt(n)/||Conv||_op with the " \
                                                 "measured raw operator norm"
        kind = "sn" if self.divisor == "sn-conv" else self.divisor
        return shrink_prediction(kind, c_in, c_out, k, self.c(scale)), ""


SCHEMES: dict[str, Scheme] = {s.name: s for s in [
    Scheme("lecun", "lecun", None, False, "LeCun", "N(0, 1/fan_in)"),
    Scheme("xavier", "xavier", None, False, "Xavier", "N(0, 2/(fan_in + fan_out))"),
    Scheme("kaiming", "kaiming", None, False, "Kaiming",
           "N(0, g^2/fan_in), g = sqrt(2/(1+alpha^2))"),
    Scheme("orthogonal", "orthogonal", None, False, "orthogonal",
           "(semi-)orthogonal reshaped kernel, gain 1"),
    Scheme("sn", "lecun", "sn", False, "SN", "W / sigma_R(W) (Miyato)"),
    Scheme("sn-conv", "lecun", "sn-conv", False, "strict SN", "W / ||Conv_W||_op"),
    Scheme("bsn", "lecun", "bsn", False, "BSN", "W / ((sigma_R + sigma_R2)/2)"),
    Scheme("ssn", "lecun", "sn", True, "SSN", "c W / sigma_R(W)"),
    Scheme("bssn", "lecun", "bsn", True, "BSSN", "c W / ((sigma_R + sigma_R2)/2)"),
]}

NAMES = tuple(SCHEMES)
INIT_SCHEMES = tuple(n for n, s in SCHEMES.items() if not s.spectral)
SPECTRAL_SCHEMES = tuple(n for n, s in SCHEMES.items() if s.spectral)
SCALED_SCHEMES = tuple(n for n, s in SCHEMES.items() if s.takes_scale)


def get(name: str) -> Scheme:
    """The record of ``name``; ``ValueError`` naming the allowed values otherwise."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"init must be one of {', '.join(NAMES)}; got {name!r}") from None


__all__ = ["DIVISORS", "Scheme", "SCHEMES", "NAMES", "INIT_SCHEMES", "SPECTRAL_SCHEMES",
           "SCALED_SCHEMES", "get"]
