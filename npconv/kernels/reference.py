"""Reference kernel: grouped, strided, padded, dilated 2-D cross-correlation in plain loops.

Written to be read next to :mod:`npconv.formulas`: the seven nested loops
below are the dense multiplication formula
``N x C_out x OH x OW x C_in/g x KH x KW`` written out as code, and every
scalar multiplication and addition is counted on the line that does it.

It executes either counting convention:

* ``"dense"``: a tap that falls on the padding multiplies a zero, as if the
  input had been padded with zeros (the textbook picture; what im2col does);
* ``"effective"``: such a tap is skipped (what a direct kernel does).

Both give the same output for finite inputs.  Arithmetic is done on Python
floats (IEEE double) and the result is stored in the input's dtype, so a
float32 result is the correctly rounded double-precision sum.

This is for teaching and for checking other kernels; it does about a million
multiplications a second.
"""

from __future__ import annotations

import numpy as np

from npconv.counts import Counts
from npconv.geometry import ConvGeometry
from npconv.memory import ensure_workspace_fits

#: Bytes a Python float in a list costs: the float object and the list's pointer to it.
_BYTES_PER_LISTED_FLOAT = 24 + 8

NAME = "reference"
#: Conventions this kernel can execute; the first is its default.
CONVENTIONS = ("dense", "effective")
#: Interpreted (plain Python): about this many multiplications a second, which decides the
#: layers it is too slow for (see :func:`npconv.kernels.too_slow`).
MULTS_PER_SECOND = 1_000_000


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    geometry: ConvGeometry,
    *,
    convention: str = "dense",
    count: bool = True,
    workspace_limit: int,
) -> tuple[np.ndarray, Counts | None]:
    """Compute ``y[n, co, oh, ow]`` for a validated layer.

    Parameters
    ----------
    x : (N, C_in, H, W) float array
    weight : (C_out, C_in / groups, KH, KW) float array, same dtype as ``x``
    bias : (C_out,) float array or None
    geometry : the layer, validated against these shapes
    convention : ``"dense"`` or ``"effective"`` (see module docstring)
    count : return the counts (the reference always tallies them; it costs
        little next to the interpreter's own overhead)
    workspace_limit : bytes the list copies of one image, the weight and the bias may take together

    Returns
    -------
    y : (N, C_out, OH, OW) array of ``x.dtype``
    counts : :class:`~npconv.counts.Counts`, or None when ``count`` is false
    """
    skip_padding = convention == "effective"
    g = geometry
    height, width = g.height, g.width
    kernel_h, kernel_w = g.kernel_h, g.kernel_w
    stride_h, stride_w = g.stride
    dilation_h, dilation_w = g.dilation
    pad_top, pad_left = g.padding[0][0], g.padding[1][0]
    in_per_group, out_per_group = g.in_channels_per_group, g.out_channels_per_group

    # Nested Python lists index far faster than NumPy scalars do.  The weight (and bias) are copied to
    # lists whole, one image at a time: the workspace is what those lists hold at once.
    image_elements = g.in_channels * height * width
    weight_elements = weight.size + (0 if bias is None else bias.size)
    workspace = (image_elements + weight_elements) * _BYTES_PER_LISTED_FLOAT
    ensure_workspace_fits(workspace, workspace_limit,
                          f"one image and the weight{'' if bias is None else ' and bias'} as Python floats "
                          f"({image_elements:,} + {weight_elements:,} values)")
    w = weight.tolist()
    b = None if bias is None else bias.tolist()
    y = np.empty(g.output_shape, dtype=x.dtype)
    mults = adds = padded_mults = 0

    out_height, out_width = g.out_height, g.out_width
    for n in range(g.batch):
        image = x[n].tolist()  # one image at a time keeps the list copy small
        for co in range(g.out_channels):
            group = co // out_per_group
            for oh in range(out_height):
                for ow in range(out_width):
                    # Summing T terms takes T - 1 additions: the first term
                    # (the bias, or else the first product) starts the sum.
                    total = None if b is None else b[co]
                    for ci in range(in_per_group):
                        channel = image[group * in_per_group + ci]
                        for kh in range(kernel_h):
                            ih = oh * stride_h - pad_top + kh * dilation_h
                            for kw in range(kernel_w):
                                iw = ow * stride_w - pad_left + kw * dilation_w
                                inside = 0 <= ih < height and 0 <= iw < width
                                if not inside and skip_padding:
                                    continue
                                pixel = channel[ih][iw] if inside else 0.0
                                term = pixel * w[co][ci][kh][kw]
                                mults += 1
                                if not inside:
                                    padded_mults += 1
                                if total is None:
                                    total = term
                                else:
                                    total += term
                                    adds += 1
                    y[n, co, oh, ow] = 0.0 if total is None else total

    counts = Counts(mults, adds, convention, NAME, padded_mults, workspace) if count else None
    return y, counts
