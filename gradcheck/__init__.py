"""gradcheck: measure why spectral normalization stabilizes GAN discriminators."""
__version__ = "0.1.0"
