"""``method="winograd4"``: Winograd F(4x4,3x3) for 3x3 stride-1 layers (see :mod:`npconv.kernels.winograd`)."""

from npconv.kernels.winograd import SUPPORTED, variant

__all__ = ["CONVENTIONS", "NAME", "SUPPORTED", "conv2d", "supports"]

NAME, CONVENTIONS, supports, conv2d = variant("winograd4", 4)
