"""Deterministic initialisation from a seed, with PyTorch's default scheme.

PyTorch's ``nn.Conv2d`` and ``nn.Linear`` initialise their weights with
``kaiming_uniform_(weight, a=sqrt(5))`` and their biases uniformly in
``(-1/sqrt(fan_in), 1/sqrt(fan_in))``.  The Kaiming bound is
``gain x sqrt(3 / fan_in)`` with ``gain = sqrt(2 / (1 + a^2))``; for
``a = sqrt(5)`` the gain is ``sqrt(1/3)``, so the weight bound is also
``1 / sqrt(fan_in)``.  ``fan_in`` is the number of inputs one output sums:
``C_in / groups x KH x KW`` for a convolution, ``in_features`` for a linear
layer.  Batch norm starts at scale 1 and shift 0.

The numbers come from a :class:`numpy.random.Generator`, so the same seed
gives the same network on every run -- but not the same numbers as
PyTorch's generator: to compare with PyTorch, copy the weights across
(:mod:`npconv.train.torch_twin`).
"""

from __future__ import annotations

import math

import numpy as np

#: PyTorch's default ``a`` for ``kaiming_uniform_`` in ``Conv2d`` and ``Linear``.
DEFAULT_NEGATIVE_SLOPE = math.sqrt(5)


def fan_in(weight_shape: tuple[int, ...]) -> int:
    """Inputs summed by one output: ``shape[1] x KH x KW`` (conv) or ``shape[1]`` (linear)."""
    return math.prod(weight_shape[1:])


def kaiming_uniform(rng: np.random.Generator, shape: tuple[int, ...], a: float = DEFAULT_NEGATIVE_SLOPE,
                    dtype: np.dtype = np.float32) -> np.ndarray:
    """Uniform in ``(-bound, bound)``, ``bound = sqrt(2 / (1 + a^2)) x sqrt(3 / fan_in)``."""
    gain = math.sqrt(2.0 / (1.0 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in(shape))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def bias_uniform(rng: np.random.Generator, size: int, weight_shape: tuple[int, ...],
                 dtype: np.dtype = np.float32) -> np.ndarray:
    """Uniform in ``(-1 / sqrt(fan_in), 1 / sqrt(fan_in))`` of the layer's weight."""
    bound = 1.0 / math.sqrt(fan_in(weight_shape))
    return rng.uniform(-bound, bound, size=size).astype(dtype)
