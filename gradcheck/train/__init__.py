"""GAN training: data sets and sample-quality metrics (``data``), generators, training, tracking.

Training is a producer of checkpoints; tracking runs the probe pipeline on each checkpoint.
"""
