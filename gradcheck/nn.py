"""BSN, BSSN and SSN for PyTorch users, with the semantics of torch's ``spectral_norm``.

:func:`bidirectional_spectral_norm` and :func:`scaled_spectral_norm` register a
``torch.nn.utils.parametrize`` parametrization on a layer's weight, exactly as
``torch.nn.utils.parametrizations.spectral_norm`` does (THEORY §1):

- BSN / BSSN: ``W -> scale * W / ((sigma_R(W) + sigma_R2(W)) / 2)`` (THEORY C9; ``scale=1``
  is BSN, any other ``scale`` is BSSN),
- SSN: ``W -> scale * W / sigma_R(W)`` (``scale=1`` is Miyato's SN, as torch's).

Each sigma is a power-iteration estimate ``u^T M v`` with persistent unit vectors ``u, v``
stored as buffers of the parametrization (so they travel with ``state_dict`` and ``.to()``).
As in torch: the vectors start from ``torch.randn`` (the global generator), get 15 warm-up
iterations at registration (so an eval forward right after registration is already close);
every forward in training mode first runs ``n_power_iterations`` steps in place (also under
``torch.no_grad()``, as torch does); eval forwards never touch them, so they are deterministic;
``u`` and ``v`` are cloned before use, so ``D(real)`` and ``D(fake)`` may both be computed before
one ``backward()`` (the GAN pattern); gradients treat ``u, v`` as constants, which is the exact
gradient of ``sigma`` once the iteration has converged (THEORY C3a); assigning
``module.weight = X`` sets the raw weight to ``X``; ``eps`` guards each normalisation.

Shapes and "dim": ``sigma_R`` reshapes the kernel with its *output* channels first and
``sigma_R2`` with its *input* channels first (THEORY §0). ``nn.Linear`` (``(out, in)``) and
``nn.Conv2d`` (``(c_out, c_in, k_h, k_w)``) store outputs first (torch's ``dim=0``);
``nn.ConvTranspose2d`` stores ``(c_in, c_out, k_h, k_w)`` (torch's ``dim=1``), which is handled.
For ``nn.Linear`` the two reshapes are ``W`` and ``W^T``, so ``sigma_R2 == sigma_R`` and BSN is
SN (THEORY C9a): a dense BSN layer keeps one estimate, exactly as SSN does.

Accuracy: ``u^T M v <= sigma_max(M)`` for unit vectors, so each estimate is a lower bound and
the effective weight's sigma is ``>= scale``. While the weight moves the estimate lags, most
when the top two singular values nearly cross (measured in a tiny GAN, Adam lr 2e-3, one step
per forward: ~1e-6 to 1e-4 relative with a clear gap, up to ~1e-2 near a crossing), as with
torch's SN. Set ``n_power_iterations`` higher, or use ``gradcheck.schemes`` in ``exact`` mode,
where that matters.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .schemes.spectral import SpectralScaling

SUPPORTED_MODULES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
WARMUP_ITERATIONS = 15  # as torch.nn.utils.parametrizations.spectral_norm


class PowerSpectralScaling(SpectralScaling):
    """``W -> scale * W / sigma(W)`` with torch-style persistent power iteration (THEORY §1).

    A :class:`~gradcheck.schemes.SpectralScaling` (so ``gradcheck.schemes.scaling_of`` and the
    probes recognise it) in ``power`` mode whose state follows
    ``torch.nn.utils.parametrizations.spectral_norm``: buffers ``_u{j}``/``_v{j}`` for each
    reshape ``j`` (0: outputs first, ``sigma_R``; 1: inputs first, ``sigma_R2``, BSN only),
    ``eps``, warm-up, update rule and ``right_inverse`` as torch's. Build it through
    :func:`bidirectional_spectral_norm` or :func:`scaled_spectral_norm`.

    Args:
        weight: the raw weight, ``(c_out, c_in[, k_h, k_w])`` for ``dim=0`` or
            ``(c_in, c_out, k_h, k_w)`` for ``dim=1``.
        kind: ``sn`` (divide by ``sigma_R``) or ``bsn`` (by ``(sigma_R + sigma_R2) / 2``).
        scale: the constant ``c``; finite and positive.
        n_power_iterations: power steps per training-mode forward; >= 1.
        eps: added safety in ``F.normalize``: vectors are divided by ``max(||x||, eps)``.
        dim: the weight dimension holding the output channels (0 or 1).
    """

    def __init__(self, weight: Tensor, kind: str = "sn", scale: float = 1.0,
                 n_power_iterations: int = 1, eps: float = 1e-12, dim: int = 0):
        if weight.ndim < 2:
            raise ValueError(f"weight must have at least 2 dimensions; got shape "
                             f"{tuple(weight.shape)}")
        if kind not in ("sn", "bsn"):
            raise ValueError(f"kind must be sn or bsn; got {kind!r}")
        if dim not in (0, 1):
            raise ValueError(f"dim must be 0 or 1; got {dim!r}")
        if int(n_power_iterations) < 1:
            raise ValueError(f"n_power_iterations must be >= 1; got {n_power_iterations!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive; got {eps!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be finite and positive; got {scale!r}")
        # 'exact' here only stops the base class from creating its own (seeded, one-step)
        # vectors; the torch-style ones are made below.
        super().__init__(weight, kind, scale, "exact", n_power_iterations)
        self.mode, self.eps, self.dim = "power", float(eps), int(dim)
        with torch.no_grad():
            mats = self._matrices(weight.detach())
            for j, m in enumerate(mats):  # draw order as torch: u then v
                u = m.new_empty(m.shape[0]).normal_(0, 1)
                v = m.new_empty(m.shape[1]).normal_(0, 1)
                self.register_buffer(f"_u{j}", F.normalize(u, dim=0, eps=self.eps))
                self.register_buffer(f"_v{j}", F.normalize(v, dim=0, eps=self.eps))
            self._power_method(mats, WARMUP_ITERATIONS)

    def _matrices(self, w: Tensor) -> list[Tensor]:
        """The reshapes whose top singular values make up sigma: ``[(c_out, -1), (c_in, -1)]``."""
        outputs_first = w if self.dim == 0 else w.transpose(0, 1)
        mats = [outputs_first.flatten(1)]
        if self.kind == "bsn" and w.ndim > 2:   # dense: BSN == SN (one estimate, THEORY C9a)
            mats.append(outputs_first.transpose(0, 1).flatten(1))
        return mats

    def _operators(self, w: Tensor):  # keeps inherited helpers consistent with _matrices
        return [(lambda v, m=m: m @ v, lambda u, m=m: m.T @ u, (m.shape[1],))
                for m in self._matrices(w)]

    @torch.no_grad()
    def _power_method(self, mats: list[Tensor], n_iterations: int) -> None:
        """torch's update, in place (``out=``): ``u = Mv / |Mv|``, then ``v = M^T u / |M^T u|``."""
        for j, m in enumerate(mats):
            u, v = getattr(self, f"_u{j}"), getattr(self, f"_v{j}")
            for _ in range(n_iterations):
                F.normalize(torch.mv(m, v), dim=0, eps=self.eps, out=u)
                F.normalize(torch.mv(m.H, u), dim=0, eps=self.eps, out=v)

    def sigma_estimates(self, w: Tensor) -> list[Tensor]:
        """``[u0^T M0 v0]`` (SSN) or ``[u0^T M0 v0, u1^T M1 v1]`` (BSN): the estimates of
        ``sigma_R`` (and ``sigma_R2``) from the stored vectors, 0-dim, differentiable in ``w``."""
        return [torch.vdot(getattr(self, f"_u{j}").clone(memory_format=torch.contiguous_format),
                           torch.mv(m, getattr(self, f"_v{j}").clone(
                               memory_format=torch.contiguous_format)))
                for j, m in enumerate(self._matrices(w))]

    def sigma(self, w: Tensor) -> Tensor:
        """The divisor: ``sigma_R`` (SSN) or ``(sigma_R + sigma_R2) / 2`` (BSN) estimates."""
        est = self.sigma_estimates(w)
        return est[0] if len(est) == 1 else (est[0] + est[1]) / 2

    def forward(self, w: Tensor) -> Tensor:  # noqa: D102
        if self.training:
            self._power_method(self._matrices(w), self.n_power_iterations)
        if self.scale == 1.0:     # torch's exact expression: no rounding from a 1.0 multiply
            return w / self.sigma(w)
        return self.scale * w / self.sigma(w)

    def right_inverse(self, value: Tensor) -> Tensor:
        """``module.weight = X`` stores ``X`` as the raw weight (as torch's spectral_norm)."""
        return value

    def extra_repr(self) -> str:  # noqa: D102
        return (f"kind={self.kind}, scale={self.scale}, "
                f"n_power_iterations={self.n_power_iterations}, eps={self.eps}, dim={self.dim}")


def _weight_and_dim(fn: str, module: nn.Module, name: str) -> tuple[Tensor, int]:
    if not isinstance(module, SUPPORTED_MODULES):
        raise TypeError(f"{fn} supports nn.Linear, nn.Conv2d and nn.ConvTranspose2d; got "
                        f"{type(module).__name__}")
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"{fn}: module {type(module).__name__} has no parameter or buffer "
                         f"named {name!r}")
    if isinstance(weight, nn.parameter.UninitializedParameter):
        raise ValueError(f"{fn}: {name!r} of this lazy module is not initialised yet; run one "
                         "forward first")
    if weight.ndim < 2:
        raise ValueError(f"{fn}: {name!r} must have at least 2 dimensions; got shape "
                         f"{tuple(weight.shape)}")
    return weight, 1 if isinstance(module, nn.ConvTranspose2d) else 0


def bidirectional_spectral_norm(module: nn.Module, name: str = "weight", scale: float = 1.0,
                                n_power_iterations: int = 1, eps: float = 1e-12) -> nn.Module:
    """Register BSN (``scale=1``) or BSSN on ``module.<name>`` (THEORY §1, C9).

    The weight used in the forward pass is ``scale * W / ((sigma_R(W) + sigma_R2(W)) / 2)``
    with both sigmas estimated by persistent power iteration, as torch's ``spectral_norm``
    estimates ``sigma_R`` (see the module docstring for the exact semantics). For
    ``nn.Linear``, ``sigma_R2 == sigma_R`` and this is :func:`scaled_spectral_norm` (C9a).

    Example (a discriminator trained with the hinge loss)::

        >>> import torch; from torch import nn; from gradcheck.nn import bidirectional_spectral_norm
        >>> bsn = bidirectional_spectral_norm
        >>> D = nn.Sequential(bsn(nn.Conv2d(3, 8, 3, stride=2)), nn.ReLU(), nn.Flatten(),
        ...                   bsn(nn.Linear(72, 1), scale=1.2))  # scale != 1: BSSN
        >>> opt = torch.optim.Adam(D.parameters(), lr=2e-4)
        >>> real, fake = torch.randn(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
        >>> for _ in range(3):  # train mode: a power step per forward; two forwards, one backward
        ...     loss = (1 - D(real)).relu().mean() + (1 + D(fake)).relu().mean()
        ...     opt.zero_grad(); loss.backward(); opt.step()
        >>> D.eval()(real).shape  # eval mode: stored estimates, no update, deterministic
        torch.Size([4, 1])

    Args:
        module: ``nn.Linear``, ``nn.Conv2d`` or ``nn.ConvTranspose2d`` with ``groups=1``.
        name: the weight's attribute name.
        scale: the BSSN constant ``c`` (finite, positive; 1 is BSN).
        n_power_iterations: power steps per training-mode forward, for each of the two sigmas.
        eps: lower bound on norms in the normalisations (as torch).

    Returns:
        ``module``, with the parametrization registered (buffers
        ``module.parametrizations.<name>[0]._u0, _v0, _u1, _v1``).

    Raises:
        TypeError: any other module type.
        ValueError: a grouped convolution, a missing or uninitialised weight, bad arguments.
    """
    fn = "bidirectional_spectral_norm"
    weight, dim = _weight_and_dim(fn, module, name)
    if getattr(module, "groups", 1) != 1:
        raise ValueError(f"{fn} needs groups=1 (sigma_R2 of a grouped kernel is not the "
                         f"layer's); got groups={module.groups}")
    parametrize.register_parametrization(
        module, name, PowerSpectralScaling(weight, "bsn", scale, n_power_iterations, eps, dim))
    return module


def scaled_spectral_norm(module: nn.Module, name: str = "weight", scale: float = 1.0,
                         n_power_iterations: int = 1, eps: float = 1e-12) -> nn.Module:
    """Register SSN, ``scale * W / sigma_R(W)``, on ``module.<name>`` (THEORY §1).

    With ``scale=1`` and the same ``torch.manual_seed`` this reproduces
    ``torch.nn.utils.parametrizations.spectral_norm(module, name, n_power_iterations, eps)``
    (same vectors, same updates).

    Example::

        >>> import torch; from torch import nn; from gradcheck.nn import scaled_spectral_norm
        >>> D = nn.Sequential(scaled_spectral_norm(nn.Linear(5, 16), scale=1.5), nn.ReLU(),
        ...                   scaled_spectral_norm(nn.Linear(16, 1), scale=1.5))
        >>> opt = torch.optim.SGD(D.parameters(), 1e-2)
        >>> real, fake = torch.randn(8, 5), torch.rand(8, 5)
        >>> for _ in range(3):  # WGAN-style critic steps
        ...     loss = D(fake).mean() - D(real).mean()
        ...     opt.zero_grad(); loss.backward(); opt.step()
        >>> print(f"{float(torch.linalg.matrix_norm(D.eval()[0].weight.detach(), 2)):.1f}")
        1.5

    Args:
        module: ``nn.Linear``, ``nn.Conv2d`` or ``nn.ConvTranspose2d``.
        name: the weight's attribute name.
        scale: the SSN constant ``c`` (finite, positive; 1 is SN).
        n_power_iterations: power steps per training-mode forward.
        eps: lower bound on norms in the normalisations (as torch).

    Returns:
        ``module``, with the parametrization registered (buffers ``_u0, _v0``).

    Raises:
        TypeError: any other module type.
        ValueError: a missing or uninitialised weight, bad arguments.
    """
    weight, dim = _weight_and_dim("scaled_spectral_norm", module, name)
    parametrize.register_parametrization(
        module, name, PowerSpectralScaling(weight, "sn", scale, n_power_iterations, eps, dim))
    return module


__all__ = ["PowerSpectralScaling", "bidirectional_spectral_norm", "scaled_spectral_norm"]
