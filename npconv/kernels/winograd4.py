"""``method="winograd4"``: Winograd F(4x4,3x3) for 3x3 stride-1 layers (see :mod:`npconv.kernels.winograd`)."""

from npconv.kernels import winograd

NAME = "winograd4"
#: The one convention this kernel executes: its own transform-domain count.
CONVENTIONS = ("winograd",)
#: Compiled NumPy operations and BLAS calls, not interpreted loops.
MULTS_PER_SECOND = None
SUPPORTED = "3x3 kernels at stride 1 and dilation 1 (any padding, groups, depth multiplier)"

supports = winograd.supports
conv2d = winograd.with_tile(NAME, 4)
