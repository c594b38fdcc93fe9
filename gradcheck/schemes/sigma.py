"""The three spectral norms of a layer (THEORY §0): sigma_R, sigma_R2 and ``||Conv_K||_op``.

- :func:`sigma_R`, :func:`sigma_R2`: exact top singular values of the two kernel reshapes
  (differentiable; what SN_w and BSN divide by).
- :func:`conv_operator_norm`: the norm of the actual map ``x -> conv2d(x, K)`` (SN_Conv), by
  FFT (circular, stride 1; Sedghi et al. 2019), dense SVD (tiny inputs) or float64 Lanczos on
  ``A^T A`` through :func:`conv_forward` / :func:`conv_adjoint`.
- :func:`patch_multiplicity`: ``mu`` of THEORY C8, ``sigma_R <= ||Conv_K||_op <= mu sigma_R``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor, nn

from .._threads import single_threaded
from ..theory.bounds import patch_multiplicity  # noqa: F401  (re-exported)

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
DENSE_MAX_NUMEL = 64  # inputs this small use the dense matrix and a full SVD


def _pair(x) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, (int, np.integer)) else (int(x[0]), int(x[1]))


def _check_mode(padding_mode: str) -> None:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}; "
                         f"got {padding_mode!r}")


def _canonical_sign(v: Tensor) -> Tensor:
    """Flip ``v`` so that its entry of largest magnitude (first on ties) is positive."""
    return -v if v.reshape(-1)[v.reshape(-1).abs().argmax()] < 0 else v


# -- the two kernel reshapes ------------------------------------------------------------------
def sigma_R(weight: Tensor) -> Tensor:
    """Largest singular value of ``weight.reshape(c_out, -1)`` (THEORY §0, SN_w).

    Args:
        weight: ``(c_out, c_in, k_h, k_w)`` conv kernel or ``(out, in)`` dense matrix.

    Returns:
        0-dim tensor, differentiable w.r.t. ``weight``.
    """
    return torch.linalg.matrix_norm(weight.reshape(weight.shape[0], -1), ord=2)


def sigma_R2(weight: Tensor) -> Tensor:
    """Largest singular value of ``weight.transpose(0, 1).reshape(c_in, -1)`` (THEORY §0, BSN).

    For a dense ``(out, in)`` weight this is ``sigma_max(W) == sigma_R(W)`` (THEORY C9a).

    Args:
        weight: ``(c_out, c_in, k_h, k_w)`` or ``(out, in)``.

    Returns:
        0-dim tensor, differentiable w.r.t. ``weight``.
    """
    return torch.linalg.matrix_norm(weight.transpose(0, 1).reshape(weight.shape[1], -1), ord=2)


def top_singular_vectors(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Exact top singular triple of a 2-D matrix by SVD, all detached.

    Args:
        matrix: ``(m, n)``.

    Returns:
        ``(sigma, u, v)``: 0-dim, ``(m,)``, ``(n,)`` with ``matrix @ v = sigma u``; the sign is
        fixed so that the largest-magnitude entry of ``v`` is positive.
    """
    U, S, Vh = torch.linalg.svd(matrix.detach(), full_matrices=False)
    sign = 1.0 if Vh[0, Vh[0].abs().argmax()] >= 0 else -1.0
    return S[0], sign * U[:, 0], sign * Vh[0]


#: above this smaller side, dense top singular values come from the Gram matrix's eigenvalues
GRAM_MIN = 256


def _top_by_gram(matrix: Tensor, seed: int = 0, gram: str = "small"
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`top_singular_vectors` for a large matrix: Lanczos on a Gram matrix
    (:func:`gradcheck.linalg.lanczos_top`, residual-checked, ~0.1 s at 1024 x 1024), else
    ``eigh`` of that Gram matrix (0.21 s vs 0.66 s for the SVD). The top eigenvalue of
    ``A^T A`` has absolute error ~eps ||A||^2, so ``sigma_max`` keeps relative accuracy ~eps.
    ``gram`` ('small', 'AtA', 'AAt') picks the Gram matrix, ``seed`` Lanczos' start vector."""
    from ..linalg import lanczos_top

    A = matrix.detach()
    r = lanczos_top(A, seed=seed, gram=gram)
    if r is not None:
        sigma, u, v, _ = r
    else:
        tall = A.shape[0] >= A.shape[1] if gram == "small" else gram == "AtA"
        evals, evecs = torch.linalg.eigh(A.T @ A if tall else A @ A.T)
        sigma = evals[-1].clamp_min(0).sqrt()
        if tall:
            v = evecs[:, -1]
            u = A @ v / sigma if sigma > 0 else A.new_zeros(A.shape[0])
        else:
            u = evecs[:, -1]
            v = A.T @ u / sigma if sigma > 0 else A.new_zeros(A.shape[1])
    sign = 1.0 if v[v.abs().argmax()] >= 0 else -1.0
    return sigma, sign * u, sign * v


def top_sigma(matrix: Tensor, seed: int = 0, gram: str = "small") -> float:
    """``sigma_max`` of a 2-D matrix, not differentiable: ``svdvals`` up to :data:`GRAM_MIN` on
    the smaller side, :func:`_top_by_gram` above it (``gram``, ``seed`` as there)."""
    A = matrix.detach()
    if min(A.shape) <= GRAM_MIN:
        return float(torch.linalg.svdvals(A)[0]) if A.numel() else 0.0
    return float(_top_by_gram(A, seed, gram)[0])


# -- the convolution as a linear map ---------------------------------------------------------
def conv_padding(module_or_padding, kernel_hw=None, stride=None, dilation=None,
                 input_hw=None) -> tuple[int, int]:
    """Resolve ``nn.Conv2d`` padding (int, pair, ``'valid'``, ``'same'``) into ``(p_h, p_w)``.

    Args:
        module_or_padding: an ``nn.Conv2d`` (its fields fill any argument left ``None``) or
            its ``padding`` value.
        kernel_hw, stride, dilation: ints or pairs; needed for ``'same'``.
        input_hw: ``(H, W)``; if given together with ``kernel_hw``, checks the output is
            non-empty.

    Returns:
        Symmetric padding ``(p_h, p_w)``.

    Raises:
        ValueError: ``'same'`` with stride != 1 or with an odd total padding
            ``dilation * (k - 1)`` (PyTorch would pad asymmetrically), or an empty output.
    """
    padding, m = module_or_padding, module_or_padding
    if isinstance(m, nn.Conv2d):
        padding, kernel_hw = m.padding, kernel_hw or m.kernel_size
        stride, dilation = stride or m.stride, dilation or m.dilation
    stride, dilation = _pair(stride or 1), _pair(dilation or 1)
    if padding == "valid":
        pad = (0, 0)
    elif padding == "same":
        if kernel_hw is None:
            raise ValueError("padding='same' needs kernel_hw")
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride 1; got stride={stride}")
        totals = [d * (k - 1) for d, k in zip(dilation, _pair(kernel_hw))]
        if any(t % 2 for t in totals):
            raise ValueError(f"padding='same' with kernel {_pair(kernel_hw)}, dilation {dilation}"
                             f" needs odd total padding {tuple(totals)}; PyTorch pads that "
                             "asymmetrically and only symmetric padding is supported")
        pad = (totals[0] // 2, totals[1] // 2)
    elif isinstance(padding, str):
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same'; got {padding!r}")
    else:
        pad = _pair(padding)
    if input_hw is not None and kernel_hw is not None:
        out = [(n + 2 * p - d * (k - 1) - 1) // s + 1
               for n, p, d, k, s in zip(input_hw, pad, dilation, _pair(kernel_hw), stride)]
        if min(out) < 1:
            raise ValueError(f"empty output {tuple(out)}: input {tuple(input_hw)}, padding {pad}, "
                             f"kernel {_pair(kernel_hw)}, dilation {dilation}, stride {stride}")
    return pad


def conv_forward(weight: Tensor, v: Tensor, stride, padding, dilation=(1, 1),
                 padding_mode: str = "zeros") -> Tensor:
    """Apply ``Conv_K`` (no bias), exactly as ``nn.Conv2d`` with ``groups=1`` does.

    Args:
        weight: ``(c_out, c_in, k_h, k_w)``.
        v: ``(c_in, H, W)`` or ``(B, c_in, H, W)``.
        stride, padding, dilation: ints or pairs (``padding`` may be ``'valid'``/``'same'``).
        padding_mode: one of :data:`PADDING_MODES`.

    Returns:
        ``(c_out, H_out, W_out)`` or ``(B, c_out, H_out, W_out)``, matching ``v``.
    """
    _check_mode(padding_mode)
    stride, dilation = _pair(stride), _pair(dilation)
    pad = conv_padding(padding, weight.shape[-2:], stride, dilation)
    x = v.unsqueeze(0) if v.dim() == 3 else v
    if padding_mode == "zeros":
        y = F.conv2d(x, weight, None, stride, pad, dilation)
    else:
        x = F.pad(x, (pad[1], pad[1], pad[0], pad[0]), mode=padding_mode)
        y = F.conv2d(x, weight, None, stride, 0, dilation)
    return y.squeeze(0) if v.dim() == 3 else y


def conv_adjoint(weight: Tensor, u: Tensor, input_shape, stride, padding, dilation=(1, 1),
                 padding_mode: str = "zeros") -> Tensor:
    """Apply ``Conv_K^T``: ``<conv_forward(v), u> == <v, conv_adjoint(u)>`` exactly.

    Zero padding uses ``conv_transpose2d`` with the ``output_padding`` that restores the rows
    and columns the strided forward never reads; other modes use the autograd VJP.

    Args:
        weight: ``(c_out, c_in, k_h, k_w)``.
        u: ``(c_out, H_out, W_out)`` or ``(B, c_out, H_out, W_out)``.
        input_shape: ``(c_in, H, W)`` (a leading batch size is ignored).
        stride, padding, dilation, padding_mode: as in :func:`conv_forward`.

    Returns:
        ``(c_in, H, W)`` or ``(B, c_in, H, W)``, matching ``u``.
    """
    _check_mode(padding_mode)
    stride, dilation = _pair(stride), _pair(dilation)
    pad = conv_padding(padding, weight.shape[-2:], stride, dilation)
    y = u.unsqueeze(0) if u.dim() == 3 else u
    hw = tuple(int(n) for n in input_shape[-2:])
    if padding_mode == "zeros":
        out_pad = tuple((n + 2 * p - d * (k - 1) - 1) % s for n, p, d, k, s
                        in zip(hw, pad, dilation, weight.shape[-2:], stride))
        x = F.conv_transpose2d(y, weight, None, stride, pad, out_pad, 1, dilation)
    else:
        x0 = torch.zeros((y.shape[0], weight.shape[1]) + hw, dtype=y.dtype, device=y.device)
        from ..linalg import vjp

        x = vjp(lambda x: conv_forward(weight, x, stride, pad, dilation, padding_mode), x0, y)
    return x.squeeze(0) if u.dim() == 3 else x


# -- operator norm -----------------------------------------------------------------------------
@dataclass(frozen=True)
class OperatorNorm:
    """Top singular triple of a layer's linear map (THEORY §0, ``||Conv_K||_op``)."""

    sigma: float  # ||Conv_K||_op (dense: sigma_max(W))
    u: Tensor  # unit top left singular vector, (c_out, H_out, W_out) or (out,); detached
    v: Tensor  # unit top right singular vector, (c_in, H, W) or (in,); detached
    residual: float  # ||A^T A v - sigma^2 v|| / sigma^2, measured in float64
    matvecs: int  # applications of A or A^T used (dense SVD of a given matrix: 0)
    method: str  # 'lanczos' | 'fft' | 'dense'


def _fold_kernel(w: Tensor, input_hw, dilation, padding) -> Tensor:
    """Circular cross-correlation kernel on the ``H x W`` torus, ``(c_out, c_in, H, W)``."""
    (H, W), (kh, kw) = input_hw, w.shape[-2:]
    ker = w.new_zeros(w.shape[:2] + (H, W))
    for i, j in np.ndindex(kh, kw):  # tap (i, j) reads x[p + d*(i, j) - pad] (mod H, W)
        ker[:, :, (dilation[0] * i - padding[0]) % H,
            (dilation[1] * j - padding[1]) % W] += w[:, :, i, j]  # aliased taps add
    return ker


def conv_singular_values_fft(weight: Tensor, input_hw) -> Tensor:
    """All singular values of the circular stride-1 convolution on ``H x W`` inputs.

    The map is ``nn.Conv2d(..., padding='same', padding_mode='circular')``: output size equals
    input size. Its singular values are the union over the ``H W`` spatial frequencies of the
    singular values of the ``c_out x c_in`` matrices of the 2-D FFT of the kernel zero-padded
    to ``H x W`` (Sedghi et al. 2019); the kernel's placement only changes phases. Kernels
    larger than the input wrap around (aliased taps add).

    Args:
        weight: ``(c_out, c_in, k_h, k_w)``.
        input_hw: ``(H, W)``.

    Returns:
        ``(H * W * min(c_out, c_in),)`` float64, descending.
    """
    ker = _fold_kernel(weight.detach().cpu().double(), tuple(input_hw), (1, 1), (0, 0))
    symbols = torch.fft.fft2(ker).permute(2, 3, 0, 1)  # (H, W, c_out, c_in)
    return torch.linalg.svdvals(symbols).reshape(-1).sort(descending=True).values


def _fft_top(w: Tensor, input_shape, pad, dilation):
    """Exact sigma and a real top right singular vector ``(c_in, H, W)`` via the FFT."""
    c_in, H, W = input_shape
    symbols = torch.fft.fft2(_fold_kernel(w, (H, W), dilation, pad)).permute(2, 3, 0, 1)
    # y_hat[f] = conj(K_hat[f]) x_hat[f] for a cross-correlation with a real kernel.
    # Values at every frequency, vectors only at the top one (2-3x less than a full SVD).
    S = torch.linalg.svdvals(symbols.conj())
    fh, fw = divmod(int(S[..., 0].reshape(-1).argmax()), W)  # first of the tied maxima
    _, s_top, Vh = torch.linalg.svd(symbols[fh, fw].conj(), full_matrices=False)
    S = S.clone()
    S[fh, fw, 0] = s_top[0]                  # sigma and its vector from the same solve
    x_hat = torch.zeros(c_in, H, W, dtype=symbols.dtype)
    x_hat[:, fh, fw] = Vh[0].conj()
    z = torch.fft.ifft2(x_hat)  # complex top singular vector; Re and Im are real ones
    v = z.real if z.real.norm() >= z.imag.norm() else z.imag
    return float(S[fh, fw, 0]), v / v.norm()


def _dense_matrix(fwd, input_shape) -> Tensor:
    n = math.prod(input_shape)  # (m, n): the map applied to every basis vector
    return fwd(torch.eye(n, dtype=torch.float64).reshape((n,) + input_shape)).reshape(n, -1).T


def _lanczos_top(fwd, adj, input_shape, tol, seed, max_matvecs):
    """Top eigenpair of ``A^T A`` by ARPACK, counting applications of ``A`` and ``A^T``."""
    n, count = math.prod(input_shape), [0]

    def normal(x):
        if count[0] + 2 > max_matvecs:
            raise RuntimeError(f"conv_operator_norm: max_matvecs={max_matvecs} exceeded before "
                               f"Lanczos reached tol; raise max_matvecs or tol")
        count[0] += 2
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(input_shape))
        return adj(fwd(xt)).reshape(-1).numpy()

    op = LinearOperator((n, n), matvec=normal, dtype=np.float64)
    v0 = np.random.RandomState(seed).standard_normal(n)
    try:  # ncv > default 20: top singular values of conv operators are clustered
        with single_threaded():
            _, vec = eigsh(op, k=1, which="LA", v0=v0, tol=tol, ncv=min(n, 32), maxiter=10**6)
    except ArpackNoConvergence as err:
        raise RuntimeError(f"conv_operator_norm: Lanczos did not converge to tol={tol} "
                           f"after {count[0]} matvecs") from err
    return torch.from_numpy(vec[:, 0].copy()), count[0]


def conv_operator_norm(weight: Tensor, input_shape, stride=(1, 1), padding=(0, 0),
                       dilation=(1, 1), padding_mode: str = "zeros", tol: float = 1e-10,
                       seed: int = 0, max_matvecs: int = 20000) -> OperatorNorm:
    """Operator norm ``||Conv_K||_op`` of ``x -> conv2d(x, K)`` on inputs ``(c_in, H, W)``.

    Method: ``'fft'`` (exact) for circular padding, stride 1 and output size = input size;
    ``'dense'`` (full SVD) when ``c_in H W <= 64``; otherwise ``'lanczos'``: ARPACK ``eigsh``
    on ``A^T A`` with ``v0`` from ``numpy.random.RandomState(seed)``, stopping at ARPACK's
    relative tolerance ``tol``, then ``sigma = sqrt(v^T A^T A v)`` (Rayleigh quotient, float64).
    Deterministic: the same inputs and seed give bitwise identical results. Checks THEORY C8
    (via tests) and computes the SN_Conv divisor of THEORY §1.

    Args:
        weight: ``(c_out, c_in, k_h, k_w)``; any dtype/device, detached internally.
        input_shape: ``(c_in, H, W)``.
        stride, padding, dilation, padding_mode: as for ``nn.Conv2d`` (``groups=1``).
        tol: Lanczos tolerance (ignored by 'fft' and 'dense').
        seed: seeds the Lanczos start vector.
        max_matvecs: budget of ``A``/``A^T`` applications.

    Returns:
        :class:`OperatorNorm`; ``u = conv_forward(v) / sigma`` and ``v`` unit, in
        ``weight.dtype`` on ``weight.device``, with ``v``'s largest-magnitude entry positive.

    Raises:
        RuntimeError: Lanczos needed more than ``max_matvecs`` applications.
        ValueError: bad padding, padding mode, channel count, or an empty output.
    """
    _check_mode(padding_mode)
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or input_shape[0] != weight.shape[1]:
        raise ValueError(f"input_shape must be (c_in={weight.shape[1]}, H, W); got {input_shape}")
    stride, dilation = _pair(stride), _pair(dilation)
    pad = conv_padding(padding, weight.shape[-2:], stride, dilation, input_shape[1:])
    w = weight.detach().to("cpu", torch.float64)
    geometry = (stride, pad, dilation, padding_mode)
    fwd = lambda x: conv_forward(w, x, *geometry)  # noqa: E731
    adj = lambda y: conv_adjoint(w, y, input_shape, *geometry)  # noqa: E731
    n = math.prod(input_shape)
    same = all(2 * p == d * (k - 1) for p, d, k in zip(pad, dilation, weight.shape[-2:]))
    if padding_mode == "circular" and stride == (1, 1) and same:
        method, matvecs = "fft", 0
        sigma, v = _fft_top(w, input_shape, pad, dilation)
    elif n <= DENSE_MAX_NUMEL:
        method, matvecs = "dense", n
        sigma, _, v = top_singular_vectors(_dense_matrix(fwd, input_shape))
        sigma, v = float(sigma), v.reshape(input_shape)
    else:  # sigma = sqrt of the Rayleigh quotient v^T A^T A v, below
        method, sigma = "lanczos", None
        v, matvecs = _lanczos_top(fwd, adj, input_shape, tol, seed, max_matvecs)
        v = (v / v.norm()).reshape(input_shape)
    v, matvecs = _canonical_sign(v), matvecs + 2  # + the two below
    av = fwd(v)
    atav = adj(av)
    if sigma is None:
        sigma = math.sqrt(max(float(torch.dot(v.reshape(-1), atav.reshape(-1))), 0.0))
    residual = float((atav - sigma ** 2 * v).norm()) / sigma ** 2 if sigma > 0 else 0.0
    u = av / sigma if sigma > 0 else torch.zeros_like(av)
    out = dict(dtype=weight.dtype, device=weight.device)
    return OperatorNorm(sigma, u.to(**out), v.to(**out), residual, matvecs, method)


def module_operator_norm(module: nn.Conv2d | nn.Linear, input_shape, weight: Tensor | None = None,
                         tol: float = 1e-10, seed: int = 0) -> OperatorNorm:
    """:func:`conv_operator_norm` with stride/padding/dilation/mode read from ``module``.

    Args:
        module: ``nn.Conv2d`` (``groups=1``) or ``nn.Linear``.
        input_shape: ``(c_in, H, W)`` for conv, ``(in_features,)`` for Linear.
        weight: overrides ``module.weight`` (which may itself be parametrized).
        tol, seed: as in :func:`conv_operator_norm`.

    Returns:
        :class:`OperatorNorm`; for Linear: exact SVD, method ``'dense'``, 1-D ``u``/``v``.

    Raises:
        ValueError: ``groups != 1``, or an ``input_shape`` that does not fit ``module``.
        TypeError: any other module.
    """
    if not isinstance(module, (nn.Conv2d, nn.Linear)):
        raise TypeError(f"module must be nn.Conv2d or nn.Linear; got {type(module).__name__}")
    weight = module.weight if weight is None else weight
    if isinstance(module, nn.Linear):  # all three spectral norms coincide (THEORY §0)
        if tuple(input_shape) != (module.in_features,):
            raise ValueError(f"input_shape for {module} must be ({module.in_features},); "
                             f"got {tuple(input_shape)}")
        w = weight.detach().to("cpu", torch.float64)
        sigma, u, v = top_singular_vectors(w) if min(w.shape) <= GRAM_MIN else _top_by_gram(w)
        s2, out = float(sigma) ** 2, dict(dtype=weight.dtype, device=weight.device)
        residual = float((w.T @ (w @ v) - s2 * v).norm()) / s2 if s2 > 0 else 0.0
        return OperatorNorm(float(sigma), u.to(**out), v.to(**out), residual, 0, "dense")
    if module.groups != 1:
        raise ValueError(f"module_operator_norm needs groups=1; got groups={module.groups}")
    pad = conv_padding(module, input_hw=tuple(input_shape)[-2:])
    return conv_operator_norm(weight, input_shape, module.stride, pad, module.dilation,
                              module.padding_mode, tol=tol, seed=seed)
