"""A zoo of GAN discriminators written the way public GAN code writes them, and an independent
per-input autograd oracle of the per-layer quantities the probe engine reports.

Every factory ``name(seed=0) -> (model, x)`` builds a float64 model in eval mode (all randomness
from ``seed``, the global RNG left untouched) and an input batch; every model returns one score
per input. The styles reproduced:

* ``residual_mlp``          bias-free residual MLP (two pre-activation blocks).
* ``mimicry_sngan_resnet``  SNGAN-32 ResNet D as in torch_mimicry: torch's *legacy*
  ``torch.nn.utils.spectral_norm`` on every conv/linear, ``nn.ReLU(inplace=True)`` (also on a
  block's input, so the learnable shortcut sees ``relu(x)``, exactly as mimicry's ``DBlock``
  does), ``F.avg_pool2d``, an optimised first block, 1x1 shortcuts, global sum pooling; warmed up
  by training-mode forwards. ``legacy_sn_cold`` is the same net never run in training mode.
* ``biggan_style``          BigGAN-PyTorch style ``SNConv2d`` / ``SNLinear``: subclasses of
  ``nn.Conv2d`` / ``nn.Linear`` whose ``forward`` calls ``F.conv2d(x, self.W_(), ...)`` with the
  weight divided by a power-iteration sigma kept in buffers.
* ``sn_wrapper``            the old hand-written ``SpectralNorm(nn.Module)`` wrapper that renames
  ``weight`` to ``weight_bar`` + ``weight_u``/``weight_v`` and calls ``self.module.forward``.
* ``dcgan_inplace``         DCGAN D, ``nn.LeakyReLU(0.2, inplace=True)``, no BN, bias-free.
* ``dcgan_batchnorm``       the same with eval-mode ``nn.BatchNorm2d`` after the middle convs.
* ``cifar_resnet``          CIFAR BasicBlock ResNet D (identity shortcuts, ``out += x``), no BN.

The oracle :func:`oracle_layer_grads` treats every call of ``torch.nn.functional.linear`` /
``torch.nn.functional.conv2d`` during the forward as one layer and differentiates one input at a
time (a python loop, one forward + backward per input), so it shares no method with the engine.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CHAIN",
    "INPUT_SHAPES",
    "RESIDUAL",
    "ZOO",
    "biggan_style",
    "cifar_resnet",
    "dcgan_batchnorm",
    "dcgan_inplace",
    "legacy_sn_cold",
    "mimicry_sngan_resnet",
    "mimicry_sngan_resnet_model",
    "oracle_layer_grads",
    "residual_mlp",
    "residual_mlp_model",
    "sn_wrapper",
]


@contextmanager
def _seeded(seed: int):
    """Run with ``torch.manual_seed(seed)`` without disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _inputs(shape: tuple[int, ...], batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1_000 + seed)
    return torch.randn((batch,) + shape, generator=gen, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------
# a. bias-free residual MLP
# ------------------------------------------------------------------------------------------------

class ResidualMLP(nn.Module):
    """h = W0 x; twice h = h + W2 relu(W1 relu(h)); relu; dense head. No biases."""

    def __init__(self, d_in: int = 6, width: int = 8, blocks: int = 2):
        super().__init__()
        self.inp = nn.Linear(d_in, width, bias=False)
        self.fc1 = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(blocks))
        self.fc2 = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(blocks))
        self.head = nn.Linear(width, 1, bias=False)

    def forward(self, x):
        h = self.inp(x)
        for f1, f2 in zip(self.fc1, self.fc2):
            h = h + f2(F.relu(f1(F.relu(h))))
        return self.head(F.relu(h)).squeeze(1)


def residual_mlp(seed: int = 0):
    """ResidualMLP(6 -> 8, 2 blocks -> 1): 6 dense layers; x (5, 6)."""
    with _seeded(seed):
        model = ResidualMLP().double().eval()
    return model, _inputs((6,), 5, seed)


# ------------------------------------------------------------------------------------------------
# b. SNGAN-32 ResNet D in the style of torch_mimicry (legacy torch spectral_norm)
# ------------------------------------------------------------------------------------------------

def _sn_conv(*args, gain: float = 1.0, **kwargs) -> nn.Conv2d:
    conv = nn.Conv2d(*args, **kwargs)
    nn.init.xavier_uniform_(conv.weight, gain)
    return torch.nn.utils.spectral_norm(conv)


def _sn_linear(*args, gain: float = 1.0, **kwargs) -> nn.Linear:
    lin = nn.Linear(*args, **kwargs)
    nn.init.xavier_uniform_(lin.weight, gain)
    return torch.nn.utils.spectral_norm(lin)


class MimicryDBlock(nn.Module):
    """Mimicry's DBlock: pre-activation residual branch with an in-place ReLU on the block input
    (so ``_shortcut`` sees the rectified input, as in mimicry), avg-pool downsampling, a 1x1
    shortcut conv when the shape changes."""

    def __init__(self, cin: int, cout: int, downsample: bool = False):
        super().__init__()
        self.downsample = downsample
        self.learnable_sc = cin != cout or downsample
        self.c1 = _sn_conv(cin, cin, 3, 1, 1, gain=math.sqrt(2.0))
        self.c2 = _sn_conv(cin, cout, 3, 1, 1, gain=math.sqrt(2.0))
        self.activation = nn.ReLU(True)
        if self.learnable_sc:
            self.c_sc = _sn_conv(cin, cout, 1, 1, 0, gain=1.0)

    def _residual(self, x):
        h = x
        h = self.activation(h)
        h = self.c1(h)
        h = self.activation(h)
        h = self.c2(h)
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h

    def _shortcut(self, x):
        if self.learnable_sc:
            x = self.c_sc(x)
            return F.avg_pool2d(x, 2) if self.downsample else x
        return x

    def forward(self, x):
        return self._residual(x) + self._shortcut(x)


class MimicryDBlockOptimized(nn.Module):
    """Mimicry's first (optimised) block: conv-relu-conv-pool + pool-conv1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.c1 = _sn_conv(cin, cout, 3, 1, 1, gain=math.sqrt(2.0))
        self.c2 = _sn_conv(cout, cout, 3, 1, 1, gain=math.sqrt(2.0))
        self.c_sc = _sn_conv(cin, cout, 1, 1, 0, gain=1.0)
        self.activation = nn.ReLU(True)

    def _residual(self, x):
        h = x
        h = self.c1(h)
        h = self.activation(h)
        h = self.c2(h)
        return F.avg_pool2d(h, 2)

    def _shortcut(self, x):
        return self.c_sc(F.avg_pool2d(x, 2))

    def forward(self, x):
        return self._residual(x) + self._shortcut(x)


class MimicrySNGAN32D(nn.Module):
    """SNGANDiscriminator32 (ndf channels; biases as nn.Conv2d / nn.Linear default)."""

    def __init__(self, ndf: int = 6):
        super().__init__()
        self.block1 = MimicryDBlockOptimized(3, ndf)
        self.block2 = MimicryDBlock(ndf, ndf, downsample=True)
        self.block3 = MimicryDBlock(ndf, ndf, downsample=False)
        self.block4 = MimicryDBlock(ndf, ndf, downsample=False)
        self.l5 = _sn_linear(ndf, 1, gain=1.0)
        self.activation = nn.ReLU(True)

    def forward(self, x):
        h = x
        h = self.block1(h)
        h = self.block2(h)
        h = self.block3(h)
        h = self.block4(h)
        h = self.activation(h)
        h = torch.sum(h, dim=(2, 3))      # global sum pooling
        return self.l5(h)


def _mimicry(seed: int, warm: int):
    with _seeded(seed):
        model = MimicrySNGAN32D().double()
        x = _inputs((3, 16, 16), 4, seed)
        if warm:
            model.train()
            with torch.no_grad():
                for k in range(warm):   # legacy SN: one power step per training forward
                    model(_inputs((3, 16, 16), 4, 100 + 17 * seed + k))
    return model.eval(), x


def mimicry_sngan_resnet(seed: int = 0):
    """Mimicry SNGAN-32 D, ndf 6, 11 SN layers (biases on), 3 training-mode warm-up forwards;
    x (4, 3, 16, 16)."""
    return _mimicry(seed, warm=3)


def legacy_sn_cold(seed: int = 0):
    """As :func:`mimicry_sngan_resnet` but never run in training mode: the legacy SN hook's
    random initial ``u, v`` give sigma = u^T W v (no power step ever taken)."""
    return _mimicry(seed, warm=0)


# ------------------------------------------------------------------------------------------------
# c. BigGAN-PyTorch style SNConv2d / SNLinear (normalised weight computed inside forward)
# ------------------------------------------------------------------------------------------------

def _power_step(W: torch.Tensor, u: torch.Tensor, update: bool, eps: float = 1e-12):
    """One power step from the buffer ``u`` (1, out): returns sigma (differentiable in W)."""
    with torch.no_grad():
        v = F.normalize(torch.matmul(u, W), eps=eps)
        u_new = F.normalize(torch.matmul(v, W.t()), eps=eps)
        if update:
            u[:] = u_new
    return torch.squeeze(torch.matmul(torch.matmul(v, W.t()), u_new.t()))


class _SNMixin:
    """Holds the singular-vector estimate ``u0`` and the last sigma ``sv0`` in buffers."""

    def _sn_init(self, num_outputs: int, num_itrs: int = 1, eps: float = 1e-12):
        self.num_itrs, self.sn_eps = num_itrs, eps
        self.register_buffer("u0", torch.randn(1, num_outputs))
        self.register_buffer("sv0", torch.ones(1))

    def W_(self):
        W_mat = self.weight.view(self.weight.size(0), -1)
        for _ in range(self.num_itrs):
            sv = _power_step(W_mat, self.u0, update=self.training, eps=self.sn_eps)
        if self.training:
            with torch.no_grad():
                self.sv0[:] = sv
        return self.weight / sv


class SNConv2d(nn.Conv2d, _SNMixin):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1,
                 bias=True, num_itrs=1):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding,
                           bias=bias)
        self._sn_init(out_channels, num_itrs)

    def forward(self, x):
        return F.conv2d(x, self.W_(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class SNLinear(nn.Linear, _SNMixin):
    def __init__(self, in_features, out_features, bias=True, num_itrs=1):
        nn.Linear.__init__(self, in_features, out_features, bias)
        self._sn_init(out_features, num_itrs)

    def forward(self, x):
        return F.linear(x, self.W_(), self.bias)


class BigGANDBlock(nn.Module):
    def __init__(self, cin, cout, preactivation=False, downsample=None):
        super().__init__()
        self.preactivation, self.downsample = preactivation, downsample
        self.activation = nn.ReLU(inplace=False)
        self.conv1 = SNConv2d(cin, cout)
        self.conv2 = SNConv2d(cout, cout)
        self.learnable_sc = cin != cout or downsample is not None
        if self.learnable_sc:
            self.conv_sc = SNConv2d(cin, cout, kernel_size=1, padding=0)

    def shortcut(self, x):
        if self.preactivation:
            if self.learnable_sc:
                x = self.conv_sc(x)
            if self.downsample:
                x = self.downsample(x)
        else:
            if self.downsample:
                x = self.downsample(x)
            if self.learnable_sc:
                x = self.conv_sc(x)
        return x

    def forward(self, x):
        h = F.relu(x) if self.preactivation else x
        h = self.conv1(h)
        h = self.conv2(self.activation(h))
        if self.downsample:
            h = self.downsample(h)
        return h + self.shortcut(x)


class BigGANStyleD(nn.Module):
    def __init__(self, ch: int = 6):
        super().__init__()
        self.activation = nn.ReLU(inplace=False)
        self.blocks = nn.ModuleList([
            BigGANDBlock(3, ch, preactivation=False, downsample=nn.AvgPool2d(2)),
            BigGANDBlock(ch, ch, preactivation=True, downsample=None),   # identity shortcut
        ])
        self.linear = SNLinear(ch, 1)

    def forward(self, x):
        h = x
        for block in self.blocks:
            h = block(h)
        h = torch.sum(self.activation(h), [2, 3])
        return self.linear(h)


def biggan_style(seed: int = 0):
    """BigGAN-style D: 2 blocks (3 -> 6 channels, 8x8 -> 4x4), 6 SN layers with zeroed biases,
    10 training-mode warm-up forwards; x (4, 3, 8, 8)."""
    with _seeded(seed):
        model = BigGANStyleD().double()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                    m.bias.zero_()
        model.train()
        with torch.no_grad():
            for k in range(10):
                model(_inputs((3, 8, 8), 4, 200 + k))
    return model.eval(), _inputs((3, 8, 8), 4, seed)


# ------------------------------------------------------------------------------------------------
# d. the old hand-written SpectralNorm wrapper (weight_bar, u, v; calls self.module.forward)
# ------------------------------------------------------------------------------------------------

def l2normalize(v, eps=1e-12):
    return v / (v.norm() + eps)


class SpectralNorm(nn.Module):
    def __init__(self, module, name="weight", power_iterations=1):
        super().__init__()
        self.module = module
        self.name = name
        self.power_iterations = power_iterations
        if not self._made_params():
            self._make_params()

    def _update_u_v(self):
        u = getattr(self.module, self.name + "_u")
        v = getattr(self.module, self.name + "_v")
        w = getattr(self.module, self.name + "_bar")
        height = w.data.shape[0]
        for _ in range(self.power_iterations):
            v.data = l2normalize(torch.mv(torch.t(w.view(height, -1).data), u.data))
            u.data = l2normalize(torch.mv(w.view(height, -1).data, v.data))
        sigma = u.dot(w.view(height, -1).mv(v))
        setattr(self.module, self.name, w / sigma.expand_as(w))

    def _made_params(self):
        try:
            getattr(self.module, self.name + "_u")
            getattr(self.module, self.name + "_v")
            getattr(self.module, self.name + "_bar")
            return True
        except AttributeError:
            return False

    def _make_params(self):
        w = getattr(self.module, self.name)
        height = w.data.shape[0]
        width = w.view(height, -1).data.shape[1]
        u = nn.Parameter(w.data.new(height).normal_(0, 1), requires_grad=False)
        v = nn.Parameter(w.data.new(width).normal_(0, 1), requires_grad=False)
        u.data = l2normalize(u.data)
        v.data = l2normalize(v.data)
        w_bar = nn.Parameter(w.data)
        del self.module._parameters[self.name]
        self.module.register_parameter(self.name + "_u", u)
        self.module.register_parameter(self.name + "_v", v)
        self.module.register_parameter(self.name + "_bar", w_bar)

    def forward(self, *args):
        self._update_u_v()          # NB: every forward, train or eval (as in those repos)
        return self.module.forward(*args)


class SNWrapperD(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = SpectralNorm(nn.Conv2d(3, 4, 4, stride=2, padding=1))
        self.conv2 = SpectralNorm(nn.Conv2d(4, 8, 4, stride=2, padding=1))
        self.conv3 = SpectralNorm(nn.Conv2d(8, 8, 3, stride=1, padding=1))
        self.fc = SpectralNorm(nn.Linear(4 * 4 * 8, 1))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        m = x
        m = self.act(self.conv1(m))
        m = self.act(self.conv2(m))
        m = self.act(self.conv3(m))
        return self.fc(m.view(-1, 4 * 4 * 8))


def sn_wrapper(seed: int = 0):
    """SpectralNorm-wrapper CNN: 3 convs (3 -> 4 -> 8 -> 8, 16x16 -> 4x4) + linear, biases on,
    LeakyReLU(0.2); x (4, 3, 16, 16). The wrapper runs a power step on *every* forward, so the
    factory iterates until u, v are at their fixed point (the used weight no longer changes)."""
    with _seeded(seed):
        model = SNWrapperD().double()
        x = _inputs((3, 16, 16), 4, seed)
        vecs = lambda: torch.cat([p.detach().reshape(-1).clone() for n, p in
                                  model.named_parameters() if n.endswith(("_u", "_v"))])
        with torch.no_grad():
            before = vecs()
            for _ in range(2000):
                model(x[:1])
                after = vecs()
                if torch.equal(after, before):
                    break
                before = after
    return model.eval(), x


# ------------------------------------------------------------------------------------------------
# e, f. DCGAN D (in-place LeakyReLU; with and without eval-mode BatchNorm)
# ------------------------------------------------------------------------------------------------

class DCGAND(nn.Module):
    def __init__(self, nc: int = 3, ndf: int = 4, batchnorm: bool = False):
        super().__init__()
        bn = (lambda c: [nn.BatchNorm2d(c)]) if batchnorm else (lambda c: [])
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),              # 16 -> 8
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),         # 8 -> 4
            *bn(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            *([nn.Conv2d(ndf * 2, ndf * 2, 3, 1, 1, bias=False), *bn(ndf * 2),
               nn.LeakyReLU(0.2, inplace=True)] if batchnorm else []),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),           # 4 -> 1
        )

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


def dcgan_inplace(seed: int = 0):
    """DCGAN D: convs 3 -> 4 -> 8 -> 1 (4x4, strides 2, 2, 1), LeakyReLU(0.2, inplace=True),
    bias-free, no BN; x (4, 3, 16, 16)."""
    with _seeded(seed):
        model = DCGAND().double().eval()
    return model, _inputs((3, 16, 16), 4, seed)


def dcgan_batchnorm(seed: int = 0):
    """DCGAN D with eval-mode BatchNorm2d after the two middle convs (4 convs 3 -> 4 -> 8 -> 8 ->
    1); running stats and affine parameters drawn from a seeded generator; x (4, 3, 16, 16)."""
    with _seeded(seed):
        model = DCGAND(batchnorm=True).double()
    gen = torch.Generator().manual_seed(500 + seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.5 * torch.randn(c, generator=gen, dtype=torch.float64))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen, dtype=torch.float64))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen, dtype=torch.float64))
                m.bias.copy_(0.3 * torch.randn(c, generator=gen, dtype=torch.float64))
    return model.eval(), _inputs((3, 16, 16), 4, seed)


# ------------------------------------------------------------------------------------------------
# g. CIFAR ResNet D (BasicBlock, identity shortcuts, no BN, bias-free)
# ------------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = nn.Sequential()

    def forward(self, x):
        out = F.relu(self.conv1(x))
        out = self.conv2(out)
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class CifarResNetD(nn.Module):
    def __init__(self, planes: int = 6, num_blocks: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, planes, 3, stride=1, padding=1, bias=False)
        self.layer1 = nn.Sequential(*[BasicBlock(planes, planes) for _ in range(num_blocks)])
        self.linear = nn.Linear(planes * 2 * 2, 1, bias=False)

    def forward(self, x):
        out = F.relu(self.conv1(x))
        out = self.layer1(out)
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        return self.linear(out)


def cifar_resnet(seed: int = 0):
    """CIFAR ResNet D: stem conv 3 -> 6, 2 BasicBlocks (identity shortcuts), avg-pool 4,
    linear 24 -> 1; 6 layers, bias-free; x (4, 3, 8, 8)."""
    with _seeded(seed):
        model = CifarResNetD().double().eval()
    return model, _inputs((3, 8, 8), 4, seed)


# ------------------------------------------------------------------------------------------------
# Catalogue and zero-argument factories for ``gradcheck run --model tests.zoo:<name>``
# ------------------------------------------------------------------------------------------------

ZOO: dict[str, Callable[..., tuple[nn.Module, torch.Tensor]]] = {
    "residual_mlp": residual_mlp,
    "mimicry_sngan_resnet": mimicry_sngan_resnet,
    "legacy_sn_cold": legacy_sn_cold,
    "biggan_style": biggan_style,
    "sn_wrapper": sn_wrapper,
    "dcgan_inplace": dcgan_inplace,
    "dcgan_batchnorm": dcgan_batchnorm,
    "cifar_resnet": cifar_resnet,
}
RESIDUAL = ("residual_mlp", "mimicry_sngan_resnet", "legacy_sn_cold", "biggan_style",
            "cifar_resnet")
CHAIN = ("sn_wrapper", "dcgan_inplace", "dcgan_batchnorm")
INPUT_SHAPES = {"residual_mlp": (6,), "mimicry_sngan_resnet": (3, 16, 16),
                "legacy_sn_cold": (3, 16, 16), "biggan_style": (3, 8, 8),
                "sn_wrapper": (3, 16, 16), "dcgan_inplace": (3, 16, 16),
                "dcgan_batchnorm": (3, 16, 16), "cifar_resnet": (3, 8, 8)}


def residual_mlp_model() -> nn.Module:
    """Zero-argument factory (``--model tests.zoo:residual_mlp_model --input-shape 6``)."""
    return residual_mlp()[0]


def mimicry_sngan_resnet_model() -> nn.Module:
    """Zero-argument factory (``--model tests.zoo:mimicry_sngan_resnet_model --input-shape
    3,16,16``)."""
    return mimicry_sngan_resnet()[0]


# ------------------------------------------------------------------------------------------------
# The oracle
# ------------------------------------------------------------------------------------------------

def oracle_layer_grads(model: nn.Module, x: torch.Tensor) -> dict:
    """Per-input autograd of the per-layer quantities, one forward + backward per input.

    A *layer* is one call of ``torch.nn.functional.linear`` / ``torch.nn.functional.conv2d``
    during ``model``'s forward (in call order). During each forward both functions are replaced
    by wrappers that pass ``w + E`` as the weight and return ``out + Z`` (``E``, ``Z`` zero leaves
    requiring grad) and record the op's input at call time; the score's gradients w.r.t. ``E`` and
    ``Z`` are then dD/dW (of the weight the op actually received) and dD/dz.

    Returns a dict of numpy float64 arrays ``weight_grad``, ``delta``, ``h_norm`` of shape (L, B),
    plus ``weights`` (the used weights, detached, from input 0), ``names`` (the innermost running
    module's qualified name, ``#k`` for its k-th call), ``kinds`` ('linear' | 'conv'),
    ``weight_shapes`` and ``biases`` (bias passed and nonzero). Raises ``ValueError`` if the
    sequence of layers or their used weights differ between inputs, or if the model does not
    return one score per input.
    """
    lin0, conv0 = F.linear, F.conv2d
    names = {id(m): n or "<root>" for n, m in model.named_modules()}
    stack: list[str] = []
    rec: list[dict] = []

    def pre(mod, args):
        stack.append(names[id(mod)])

    def post(mod, args, out):
        stack.pop()

    def note(kind, inp, weight, bias, E, Z):
        rec.append(dict(kind=kind, where=stack[-1] if stack else "<root>", E=E, Z=Z,
                        h=float(torch.linalg.vector_norm(inp.detach())),
                        w=weight.detach().clone(),
                        bias=bias is not None and bool(torch.any(bias.detach() != 0))))

    def linear(input, weight, bias=None):
        E = torch.zeros_like(weight, requires_grad=True)
        out = lin0(input, weight + E, bias)
        Z = torch.zeros_like(out, requires_grad=True)
        note("linear", input, weight, bias, E, Z)
        return out + Z

    def conv2d(input, weight, bias=None, *args, **kwargs):
        E = torch.zeros_like(weight, requires_grad=True)
        out = conv0(input, weight + E, bias, *args, **kwargs)
        Z = torch.zeros_like(out, requires_grad=True)
        note("conv", input, weight, bias, E, Z)
        return out + Z

    B = x.shape[0]
    per_input: list[list[dict]] = []
    handles = []
    try:
        for m in model.modules():
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
        F.linear, F.conv2d = linear, conv2d
        for b in range(B):
            rec, stack[:] = [], []
            with torch.enable_grad():
                out = model(x[b:b + 1])
                if not isinstance(out, torch.Tensor) or out.numel() != 1:
                    raise ValueError(f"model returned shape {tuple(getattr(out, 'shape', ()))} "
                                     "for one input; expected one score")
                leaves = [r["E"] for r in rec] + [r["Z"] for r in rec]
                grads = torch.autograd.grad(out.reshape(()), leaves, allow_unused=True)
            L = len(rec)
            for r, gE, gZ in zip(rec, grads[:L], grads[L:]):
                r["gW"] = 0.0 if gE is None else float(torch.linalg.vector_norm(gE))
                r["gz"] = 0.0 if gZ is None else float(torch.linalg.vector_norm(gZ))
                del r["E"], r["Z"]
            per_input.append(rec)
    finally:
        F.linear, F.conv2d = lin0, conv0
        for h in handles:
            h.remove()

    first = per_input[0]
    for b, rec_b in enumerate(per_input[1:], 1):
        sig0 = [(r["kind"], tuple(r["w"].shape)) for r in first]
        sig = [(r["kind"], tuple(r["w"].shape)) for r in rec_b]
        if sig != sig0:
            raise ValueError(f"input {b} ran layers {sig}, input 0 ran {sig0}")
        for t, (r0, r) in enumerate(zip(first, rec_b)):
            if not torch.allclose(r["w"], r0["w"], rtol=1e-13, atol=0):
                raise ValueError(f"layer {t} ({r0['where']}): the used weight changed between "
                                 f"inputs 0 and {b}")
    counts: dict[str, int] = {}
    out_names = []
    for r in first:
        k = counts.get(r["where"], 0)
        counts[r["where"]] = k + 1
        out_names.append(r["where"] if k == 0 else f"{r['where']}#{k}")
    grid = lambda key: np.array([[rec_b[t][key] for rec_b in per_input]
                                 for t in range(len(first))], dtype=np.float64).reshape(-1, B)
    return dict(weight_grad=grid("gW"), delta=grid("gz"), h_norm=grid("h"),
                weights=[r["w"] for r in first], names=out_names,
                kinds=[r["kind"] for r in first],
                weight_shapes=[tuple(r["w"].shape) for r in first],
                biases=[r["bias"] for r in first])
