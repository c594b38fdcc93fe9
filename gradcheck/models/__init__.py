"""Built-in discriminators: MLP, plain conv stack, the paper's CIFAR-10 CNN, SNGAN ResNet.

The architecture registry (``--arch``) is :mod:`gradcheck.archs`.
"""
from ..archs import ACTIVATIONS, OUTPUTS
from ._common import Discriminator, make_activation, make_output
from .conv import conv_stack
from .mlp import mlp
from .resnet import ResNetDiscriminator, resnet
from .sngan import SNGAN_CONVS, sngan

__all__ = ["ACTIVATIONS", "OUTPUTS", "Discriminator", "make_activation", "make_output",
           "conv_stack", "mlp", "resnet", "ResNetDiscriminator", "sngan", "SNGAN_CONVS"]
