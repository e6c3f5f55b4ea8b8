"""Duoscale trainer: a one-step diffusion super-resolution student distilled from a
ResShift teacher, co-learned with a diffusion downsampler and two discriminators."""

__version__ = "0.1.0"
