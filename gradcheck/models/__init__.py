"""Built-in discriminators: MLP, plain conv stack, the paper's CIFAR-10 CNN."""
from ._common import ACTIVATIONS, OUTPUTS, Discriminator, make_activation, make_output
from .conv import conv_stack
from .mlp import mlp
from .sngan import SNGAN_CONVS, sngan

__all__ = ["ACTIVATIONS", "OUTPUTS", "Discriminator", "make_activation", "make_output",
           "conv_stack", "mlp", "sngan", "SNGAN_CONVS"]
