"""Tests for the brute-force oracles in :mod:`gradcheck.reference`.

Known answers (orthogonal nets, linear layers, circulant convs), edge cases (1x1 kernels,
stride > kernel, 'same'/'valid' padding, non-zero padding modes, biases, parametrized and legacy
spectral norm) and properties (chain rule, per-sample gradients vs. autograd of the batch sum).
All in float64; identity tolerances are ``10 * n * eps`` with ``n`` the number of accumulated terms.
"""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from gradcheck import reference as R
from gradcheck.models import conv_stack, mlp

EPS = torch.finfo(torch.float64).eps


def tol(n: int) -> dict:
    """Identity tolerance for a quantity accumulated from ``n`` float64 terms of size O(1)."""
    return {"rtol": 10 * n * EPS, "atol": 10 * n * EPS}


def assert_close(actual, expected, n: int, msg: str = "") -> None:
    kw = tol(n)
    torch.testing.assert_close(
        actual, expected, **kw,
        msg=lambda m: f"{msg}\n{m}\n(tolerance rtol=atol={kw['rtol']:.2e} from n={n})")


# ------------------------------------------------------------------------------------------------
# Case factories (seeded)
# ------------------------------------------------------------------------------------------------

def orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def orthogonal_linear_mlp(depth: int = 4, width: int = 5, seed: int = 0) -> nn.Module:
    """Linear-activation MLP with square orthogonal hidden weights and a unit-norm head row."""
    gen = torch.Generator().manual_seed(seed)
    model = mlp(depth, width, width, activation="linear").double()
    layers = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer in layers[:-1]:
            layer.weight.copy_(orthogonal(width, gen))
        row = torch.randn(1, width, generator=gen, dtype=torch.float64)
        layers[-1].weight.copy_(row / row.norm())
    return model


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def relu_mlp(seed: int = 1, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(kw.pop("depth", 4), kw.pop("width", 6), kw.pop("input_dim", 5), **kw).double()


def small_conv(seed: int = 2, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return conv_stack(kw.pop("depth", 4), kw.pop("channels", 3), kw.pop("image_size", 6),
                      in_channels=kw.pop("in_channels", 2), **kw).double()


NETS = {
    "relu_mlp": (lambda: relu_mlp(activation="relu"), (5,)),
    "tanh_mlp_sigmoid_bias": (lambda: relu_mlp(activation="tanh", output="sigmoid", bias=True),
                              (5,)),
    "lrelu_conv_stride": (lambda: small_conv(stride_every=2), (2, 6, 6)),
    "relu_conv_bias": (lambda: small_conv(activation="relu", bias=True), (2, 6, 6)),
}


@pytest.fixture(params=sorted(NETS))
def net_case(request, gen):
    build, shape = NETS[request.param]
    x = torch.randn(3, *shape, generator=gen, dtype=torch.float64)
    return request.param, build(), x


# ------------------------------------------------------------------------------------------------
# Known answers: orthogonal linear MLP
# ------------------------------------------------------------------------------------------------

def test_orthogonal_linear_mlp_all_jacobian_singular_values_are_one(gen):
    model = orthogonal_linear_mlp()
    x1 = torch.randn(5, generator=gen, dtype=torch.float64)
    L = len(R.effective_weights(model))
    for i in range(L):
        s = R.singular_values(R.layer_jacobian(model, x1, i))
        assert_close(s, torch.ones_like(s), 5, f"layer {i} Jacobian singular values")
    for i in range(L - 1):
        s = R.singular_values(R.cumulative_jacobian(model, x1, i))
        assert_close(s, torch.ones_like(s), 5 * L, f"cumulative Jacobian from {i}")
    norms = torch.tensor(R.operator_norms(model, x1), dtype=torch.float64)
    assert_close(norms, torch.ones(L, dtype=torch.float64), 5, "operator norms")


def test_orthogonal_linear_mlp_weight_grad_is_delta_outer_h(gen):
    model = orthogonal_linear_mlp()
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    W = R.effective_weights(model)
    L = len(W)
    grads = R.per_sample_weight_grads(model, x)
    for t in range(L):
        # Independent closed form for a linear net: h_t = W_{t-1}..W_0 x, delta_t^T = w_L..W_{t+1}.
        h = x.clone()
        for w in W[:t]:
            h = h @ w.T
        delta = torch.ones(1, dtype=torch.float64)
        for w in reversed(W[t + 1:]):
            delta = delta @ w
        expected = torch.einsum("o,bi->boi", delta, h)
        assert grads[t].shape == (4, *W[t].shape)
        assert_close(grads[t], expected, 5 * L, f"dD/dW_{t}")
        norms = grads[t].flatten(1).norm(dim=1)
        assert_close(norms, delta.norm() * h.norm(dim=1), 5 * L, f"||dD/dW_{t}|| = ||delta|| ||h||")
        assert_close(norms, x.norm(dim=1), 5 * L, f"||dD/dW_{t}|| = ||x|| (orthogonal net)")


# ------------------------------------------------------------------------------------------------
# Known answers: per-layer Jacobians
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [False, True])
def test_linear_activation_mlp_layer_jacobian_equals_weight(gen, bias):
    model = relu_mlp(activation="linear", bias=bias)
    x1 = torch.randn(5, generator=gen, dtype=torch.float64)
    for i, w in enumerate(R.effective_weights(model)):
        assert_close(R.layer_jacobian(model, x1, i), w, 6, f"layer {i}")


def test_relu_mlp_layer_jacobian_is_mask_times_weight(gen):
    model = relu_mlp(activation="relu")
    x1 = torch.randn(5, generator=gen, dtype=torch.float64)
    W = R.effective_weights(model)
    h, _ = R.layer_tensors(model, x1[None])
    for i in range(len(W) - 1):
        mask = (h[i][0] @ W[i].T > 0).to(torch.float64)
        assert_close(R.layer_jacobian(model, x1, i), mask[:, None] * W[i], 6, f"layer {i}")


def test_linear_activation_conv_layer_jacobian_equals_dense_conv_matrix(gen):
    model = small_conv(activation="linear", stride_every=1)
    x1 = torch.randn(2, 6, 6, generator=gen, dtype=torch.float64)
    conv = [m for m in model if isinstance(m, nn.Conv2d)][0]
    expected = R.dense_conv_matrix(conv, (2, 6, 6))
    assert_close(R.layer_jacobian(model, x1, 0), expected, 18)
    assert R.operator_norms(model, x1)[0] == pytest.approx(
        float(R.singular_values(expected)[0]), rel=1e-12)


# ------------------------------------------------------------------------------------------------
# Properties: chain rule, per-sample gradients vs autograd, layer tensors vs forward
# ------------------------------------------------------------------------------------------------

def test_cumulative_jacobian_is_product_of_layer_jacobians(net_case):
    name, model, x = net_case
    x1 = x[0]
    L = len(R.effective_weights(model))
    J = [R.layer_jacobian(model, x1, i) for i in range(L)]
    input_grads = R.per_sample_input_grads(model, x1[None])
    n = sum(j.shape[1] for j in J)
    for i in range(L - 1):
        product = J[i]
        for j in J[i + 1:L - 1]:
            product = j @ product
        cum = R.cumulative_jacobian(model, x1, i)
        assert_close(cum, product, n, f"{name}: chain rule from layer {i}")
        assert_close((J[L - 1] @ cum)[0], input_grads[i][0].flatten(), n,
                     f"{name}: dD/dh[{i}] = J_(L-1) @ cumulative({i})")
    eye = torch.eye(J[-1].shape[1], dtype=torch.float64)
    assert_close(R.cumulative_jacobian(model, x1, L - 1), eye, 1, "empty product is identity")


def test_per_sample_weight_grads_sum_to_autograd_of_batch_sum(net_case):
    name, model, x = net_case
    grads = R.per_sample_weight_grads(model, x)
    weights = [m.weight for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]
    expected = torch.autograd.grad(model(x).sum(), weights)
    for i, (g, e) in enumerate(zip(grads, expected)):
        assert g.shape == (x.shape[0], *e.shape) and g.dtype == torch.float64
        assert_close(g.sum(0), e, 200, f"{name}: layer {i}")


def test_per_sample_input_grads_match_autograd_of_batch_sum(net_case):
    name, model, x = net_case
    h, D = R.layer_tensors(model, x)
    assert_close(D, model(x).detach(), 200, f"{name}: layer_tensors D vs forward")
    xg = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(xg).sum(), xg)
    grads = R.per_sample_input_grads(model, x)
    assert [g.shape for g in grads] == [t.shape for t in h]
    assert_close(grads[0], expected, 200, f"{name}: dD/dx")


def test_layer_tensors_are_float64_probe_inputs(gen):
    model = small_conv(stride_every=2).float()
    x = torch.randn(2, 2, 6, 6, generator=gen)
    h, D = R.layer_tensors(model, x)
    assert [tuple(t.shape) for t in h] == [(2, 2, 6, 6), (2, 3, 6, 6), (2, 3, 3, 3), (2, 27)]
    assert all(t.dtype == torch.float64 for t in h) and D.shape == (2,)
    torch.testing.assert_close(D, model(x).double(), rtol=1e-5, atol=1e-6)  # float32 forward


# ------------------------------------------------------------------------------------------------
# dense_conv_matrix
# ------------------------------------------------------------------------------------------------

CONV_CASES = {
    "3x3_stride2_pad1": dict(kernel_size=3, stride=2, padding=1),
    "1x1": dict(kernel_size=1),
    "1x1_stride2": dict(kernel_size=1, stride=2),
    "same_3x3": dict(kernel_size=3, padding="same"),
    "same_even_dilated": dict(kernel_size=4, padding="same", dilation=2),
    "valid_4x4": dict(kernel_size=4, padding="valid"),
    "stride_gt_kernel": dict(kernel_size=2, stride=3, padding=1),
    "rect_kernel_grouped": dict(kernel_size=(3, 1), padding=(1, 0), groups=2),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_dense_conv_matrix_matches_conv2d(case, gen):
    torch.manual_seed(3)
    conv = nn.Conv2d(4, 6, bias=True, **CONV_CASES[case]).double()
    x = torch.randn(4, 7, 8, generator=gen, dtype=torch.float64)
    M = R.dense_conv_matrix(conv, (4, 7, 8))
    expected = F.conv2d(x[None], conv.weight, None, conv.stride, conv.padding, conv.dilation,
                        conv.groups).flatten()
    assert M.shape == (expected.numel(), x.numel()) and M.dtype == torch.float64
    assert_close(M @ x.flatten(), expected, 4 * 16, case)


def test_dense_conv_matrix_uses_given_weight(gen):
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    w = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 5, 5, generator=gen, dtype=torch.float64)
    M = R.dense_conv_matrix(conv, (2, 5, 5), weight=w)
    assert_close(M @ x.flatten(), F.conv2d(x[None], w, padding=1).flatten(), 18)


@settings(max_examples=40, deadline=None)
@given(c_in=st.integers(1, 3), c_out=st.integers(1, 3), k=st.integers(1, 4),
       stride=st.integers(1, 3), pad=st.integers(0, 2), dilation=st.integers(1, 2),
       mode=st.sampled_from(["zeros", "circular", "reflect", "replicate"]),
       h=st.integers(1, 6), w=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_dense_conv_matrix_matches_module_forward_property(c_in, c_out, k, stride, pad, dilation,
                                                           mode, h, w, seed):
    span = dilation * (k - 1) + 1
    assume(h + 2 * pad >= span and w + 2 * pad >= span)
    assume(mode != "reflect" or pad < min(h, w))
    assume(mode != "circular" or pad <= min(h, w))
    torch.manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, dilation=dilation,
                     padding_mode=mode, bias=False).double()
    x = torch.randn(c_in, h, w, dtype=torch.float64)
    M = R.dense_conv_matrix(conv, (c_in, h, w))
    assert_close(M @ x.flatten(), conv(x[None]).detach().flatten(), c_in * k * k,
                 f"k={k} s={stride} p={pad} d={dilation} mode={mode} in=({c_in},{h},{w})")


def test_circular_conv_singular_values_are_fft_block_singular_values(gen):
    """Sedghi et al. 2019: circular stride-1 conv spectrum = union over frequencies (THEORY §0)."""
    n = 5
    kernel = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", bias=False).double()
    s_dense = R.singular_values(R.dense_conv_matrix(conv, (2, n, n), weight=kernel))
    blocks = torch.fft.fft2(kernel, s=(n, n)).permute(2, 3, 0, 1)  # (n, n, c_out, c_in)
    s_fft = torch.linalg.svdvals(blocks).flatten().sort(descending=True).values
    assert_close(s_dense[: s_fft.numel()], s_fft, 2 * 9 * n * n)


def test_dense_conv_matrix_rejects_bad_shapes():
    with pytest.raises(ValueError, match="input_shape"):
        R.dense_conv_matrix(nn.Conv2d(2, 3, 3), (5, 5))
    with pytest.raises(ValueError, match="Conv2d"):
        R.dense_conv_matrix(nn.Linear(2, 3), (2, 5, 5))


# ------------------------------------------------------------------------------------------------
# materialize: parametrizations and legacy spectral norm
# ------------------------------------------------------------------------------------------------

def _add_spectral_norm(model: nn.Module, legacy: bool) -> nn.Module:
    for idx, layer in enumerate(model):
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            if legacy:
                model[idx] = torch.nn.utils.spectral_norm(layer)
            else:
                model[idx] = torch.nn.utils.parametrizations.spectral_norm(layer)
    return model


@pytest.mark.parametrize("legacy", [False, True], ids=["parametrizations", "legacy_hook"])
@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_spectral_norm_materializes_to_eval_forward(legacy, kind, gen):
    if kind == "mlp":
        model, shape = relu_mlp(activation="lrelu", bias=True), (5,)
    else:
        model, shape = small_conv(stride_every=2), (2, 6, 6)
    model = _add_spectral_norm(model, legacy).train()
    x = torch.randn(3, *shape, generator=gen, dtype=torch.float64)
    for _ in range(3):  # training-mode forwards move the power-iteration vectors u, v
        model(x)
    buffers_before = {k: v.clone() for k, v in model.state_dict().items()}

    plain = R.materialize(model)  # while `model` is still in training mode

    assert model.training, "materialize must not change the original's mode"
    probes = [m for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not legacy:  # the original keeps its parametrization (its class is not touched)
        assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in probes)
    for k, v in model.state_dict().items():
        assert torch.equal(v, buffers_before[k]), f"materialize changed {k} of the original"
    assert not plain.training
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.modules())
    assert all(not m._forward_pre_hooks for m in plain.modules())

    model.eval()
    with torch.no_grad():
        expected = model(x)
    assert_close(plain(x).detach(), expected, 200, f"{kind} legacy={legacy}: outputs")
    # The weight eval-mode forward uses (legacy: set by the pre-hook; parametrized: recomputed).
    used = [m.weight for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]
    for i, (w, u) in enumerate(zip(R.effective_weights(model), used)):
        assert_close(w, u.detach(), 10, f"{kind} legacy={legacy}: weight {i}")
        w_mat = w.reshape(w.shape[0], -1)
        # after normalisation sigma_max(W/sigma_est) is ~1 (power-iteration estimate, not exact)
        assert float(torch.linalg.matrix_norm(w_mat, 2)) == pytest.approx(1.0, abs=0.5)


@pytest.mark.parametrize("legacy_weight_norm", [False, True])
def test_other_reparametrizations_materialize_to_eval_forward(legacy_weight_norm, gen):
    """weight_norm (parametrized or legacy hook) and orthogonal parametrizations, after backward."""
    model = relu_mlp(depth=3, width=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # legacy weight_norm is deprecated
        wn = torch.nn.utils.weight_norm if legacy_weight_norm else \
            torch.nn.utils.parametrizations.weight_norm
        model[0] = wn(model[0])
    model[2] = torch.nn.utils.parametrizations.orthogonal(model[2])
    x = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    model.train()(x).sum().backward()  # leaves autograd history on the legacy hook's weight
    plain = R.materialize(model)
    with torch.no_grad():
        expected = model.eval()(x)
    assert_close(plain(x).detach(), expected, 60)
    assert_close(R.singular_values(R.effective_weights(model)[1]),
                 torch.ones(4, dtype=torch.float64), 4, "orthogonal parametrization")


def test_materialize_casts_and_copies():
    model = mlp(2, 3, 4)
    plain = R.materialize(model)
    assert all(p.dtype == torch.float64 for p in plain.parameters())
    assert next(model.parameters()).dtype == torch.float32
    assert plain[0] is not model[0]
    assert R.materialize(model, dtype=torch.float32)[0].weight.dtype == torch.float32


def test_materialize_accepts_single_child_wrapper(gen):
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = relu_mlp()

        def forward(self, x):
            return self.net(x)

    wrapped = Wrapper()
    x = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    _, D = R.layer_tensors(wrapped, x)
    assert_close(D, wrapped(x).detach(), 60)


@pytest.mark.parametrize("bad, match", [
    (lambda: nn.Sequential(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), nn.Linear(3, 1)),
     "flat"),
    (lambda: nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)), "BatchNorm1d"),
    (lambda: nn.Sequential(nn.ReLU(), nn.Tanh()), "no nn.Linear"),
    (lambda: nn.Linear(3, 1), "nn.Sequential"),
])
def test_materialize_rejects_unsupported_structures(bad, match):
    with pytest.raises(ValueError, match=match):
        R.materialize(bad())


def test_materialize_rejects_unknown_hooks():
    model = mlp(2, 3, 4)
    model[0].register_forward_hook(lambda mod, inp, out: out * 2)
    with pytest.raises(ValueError, match="hook"):
        R.materialize(model)


def test_layer_index_out_of_range_raises():
    model = relu_mlp()
    x1 = torch.zeros(5, dtype=torch.float64)
    with pytest.raises(ValueError, match="index"):
        R.layer_jacobian(model, x1, 4)
    with pytest.raises(ValueError, match="index"):
        R.cumulative_jacobian(model, x1, -1)


# ------------------------------------------------------------------------------------------------
# singular_values, operator_norms
# ------------------------------------------------------------------------------------------------

def test_singular_values_of_diagonal_are_sorted_abs_entries():
    d = torch.tensor([0.5, -3.0, 2.0, 0.0])
    s = R.singular_values(torch.diag(d))
    assert s.dtype == torch.float64
    assert_close(s, torch.tensor([3.0, 2.0, 0.5, 0.0], dtype=torch.float64), 4)
    with pytest.raises(ValueError):
        R.singular_values(d)


def test_operator_norms_match_power_iteration_through_conv_and_adjoint(gen):
    """Conv ||.||_op from the dense matrix agrees with an independent power iteration."""
    model = small_conv(stride_every=2)
    x1 = torch.randn(2, 6, 6, generator=gen, dtype=torch.float64)
    h, _ = R.layer_tensors(model, x1[None])
    norms = R.operator_norms(model, x1)
    probes = [m for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]
    for i, (layer, hi) in enumerate(zip(probes, h)):
        if isinstance(layer, nn.Linear):
            want = float(torch.linalg.matrix_norm(layer.weight.detach(), 2))
            assert norms[i] == pytest.approx(want, rel=1e-12)
            continue
        v = torch.randn(hi.shape, generator=gen, dtype=torch.float64)
        for _ in range(500):
            v = v.requires_grad_(True)
            out = F.conv2d(v, layer.weight.detach(), None, layer.stride, layer.padding)
            (v,) = torch.autograd.grad(out, v, out)  # v <- A^T A v
            v = v / v.norm()
        out = F.conv2d(v, layer.weight.detach(), None, layer.stride, layer.padding)
        assert norms[i] == pytest.approx(float(out.norm()), rel=1e-6), f"layer {i}"
    assert len(norms) == len(probes)
