"""npconv: 2-D convolution from scratch, with kernels that count their own arithmetic.

Public API::

    npconv.conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                  method="reference", count=False,
                  workspace_limit=None)                 # -> y, or (y, counts)
    npconv.depthwise_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, ...)
    npconv.pointwise_conv2d(x, weight, bias=None, ...)
    npconv.separable_conv2d(x, depthwise_weight, pointwise_weight,
                            depthwise_bias=None, pointwise_bias=None,
                            stride=1, padding=0, dilation=1, ...)

    npconv.conv2d_backward(grad_y, x, weight, bias=None, stride=1, padding=0, dilation=1,
                           groups=1, method="reference", count=False,
                           needs=("input", "weight", "bias"),
                           workspace_limit=None)        # -> Grads, or (Grads, GradCounts)
    npconv.depthwise_conv2d_backward(...), npconv.pointwise_conv2d_backward(...),
    npconv.separable_conv2d_backward(..., hidden=None)   # the same wrappers, backward

    npconv.set_workspace_limit(nbytes)    # kernels' scratch memory, default 256 MiB

Layer geometry lives in :mod:`npconv.geometry`, closed-form counts in
:mod:`npconv.formulas`, the algorithms in :mod:`npconv.kernels`.

The convolution functions are imported on first access, so that
``import npconv.formulas`` and the command line do not pay for NumPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from npconv.errors import ConvArgumentError, ConvMemoryError, ConvTypeError

__version__ = "0.1.0"

__all__ = [
    "ConvArgumentError",
    "ConvMemoryError",
    "ConvTypeError",
    "available_methods",
    "conv2d",
    "conv2d_backward",
    "depthwise_conv2d",
    "depthwise_conv2d_backward",
    "get_workspace_limit",
    "pointwise_conv2d",
    "pointwise_conv2d_backward",
    "separable_conv2d",
    "separable_conv2d_backward",
    "set_workspace_limit",
]

_LAZY = {
    "conv2d": "npconv.api",
    "depthwise_conv2d": "npconv.api",
    "pointwise_conv2d": "npconv.api",
    "separable_conv2d": "npconv.api",
    "conv2d_backward": "npconv.api",
    "depthwise_conv2d_backward": "npconv.api",
    "pointwise_conv2d_backward": "npconv.api",
    "separable_conv2d_backward": "npconv.api",
    "available_methods": "npconv.kernels",
    "get_workspace_limit": "npconv.memory",
    "set_workspace_limit": "npconv.memory",
}

if TYPE_CHECKING:  # pragma: no cover
    from npconv.api import (
        conv2d,
        conv2d_backward,
        depthwise_conv2d,
        depthwise_conv2d_backward,
        pointwise_conv2d,
        pointwise_conv2d_backward,
        separable_conv2d,
        separable_conv2d_backward,
    )
    from npconv.kernels import available_methods
    from npconv.memory import get_workspace_limit, set_workspace_limit


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'npconv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
