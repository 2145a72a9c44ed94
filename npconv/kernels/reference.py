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

The backward pass (:func:`conv2d_backward`) runs the same loops again, in
the style of CS231n's ``conv_backward_naive``: every forward tap sends one
product to the input gradient and one to the weight gradient.

This is for teaching and for checking other kernels; it does about a million
multiplications a second.
"""

from __future__ import annotations

import numpy as np

from npconv.counts import Counts
from npconv.geometry import ConvGeometry
from npconv.gradients import GradCounts, Grads
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
    out: np.ndarray | None = None,
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
    out : None, or a C-contiguous, writeable (N, C_out, OH, OW) array of
        ``x.dtype`` not overlapping the operands (checked by the caller), written and returned

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
    y = np.empty(g.output_shape, dtype=x.dtype) if out is None else out
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


# ---------------------------------------------------------------------- backward


def conv2d_backward(
    grad_y: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    geometry: ConvGeometry,
    *,
    needs: frozenset[str],
    convention: str = "dense",
    count: bool = True,
    workspace_limit: int,
    out: Grads | None = None,
) -> tuple[Grads, GradCounts | None]:
    """The gradients of the loss with respect to ``x``, ``weight`` and the bias, in plain loops.

    The forward loops again (CS231n's ``conv_backward_naive``): for every
    forward tap, the input gradient gets ``grad_y * w`` at the input position
    the tap read, and the weight gradient gets ``grad_y * x`` at the tap's
    weight.  Every gradient element is a sum of such terms; as in the forward
    pass the first term starts the sum (``None`` marks an element no term has
    reached yet) and each further term costs one addition, counted on the
    line that does it.

    Under ``"dense"`` a tap on the padding multiplies a zero into the weight
    gradient and adds a term to the padded input gradient, which is then
    cropped to the input; under ``"effective"`` such a tap is skipped.

    Parameters
    ----------
    grad_y : (N, C_out, OH, OW) float array, the loss' gradient w.r.t. the output
    x : (N, C_in, H, W) float array of ``grad_y``'s dtype
    weight : (C_out, C_in / groups, KH, KW) float array
    geometry : the layer, validated against these shapes (``geometry.bias``:
        whether it has a bias)
    needs : the gradients to compute, a subset of ``{"input", "weight", "bias"}``
        (``"bias"`` is ignored for a layer without bias)
    convention : ``"dense"`` or ``"effective"``
    count : return the counts
    workspace_limit : bytes the list copies of one image and of the gradients may take
    out : checked arrays to write the gradients into (``None`` entries: allocated), or None

    Returns
    -------
    grads : :class:`~npconv.gradients.Grads`, ``None`` for a gradient not computed
    counts : :class:`~npconv.gradients.GradCounts`, or None when ``count`` is false
    """
    skip_padding = convention == "effective"
    g = geometry
    height, width = g.height, g.width
    kernel_h, kernel_w = g.kernel_h, g.kernel_w
    stride_h, stride_w = g.stride
    dilation_h, dilation_w = g.dilation
    (pad_top, pad_bottom), (pad_left, pad_right) = g.padding
    in_per_group, out_per_group = g.in_channels_per_group, g.out_channels_per_group
    out_height, out_width = g.out_height, g.out_width
    want_input, want_weight = "input" in needs, "weight" in needs
    want_bias = "bias" in needs and g.bias

    # The input gradient is summed on the padded input, whose padding is cropped at the end.
    padded_h, padded_w = pad_top + height + pad_bottom, pad_left + width + pad_right
    listed = (g.out_channels * out_height * out_width  # grad_y of one image
              + (g.in_channels * height * width if want_weight else 0)  # x of one image
              + (g.in_channels * padded_h * padded_w if want_input else 0)  # its padded gradient
              + (weight.size if want_weight else 0))  # the weight gradient
    workspace = listed * _BYTES_PER_LISTED_FLOAT
    ensure_workspace_fits(workspace, workspace_limit,
                          f"one image, its gradients and the weight gradient as Python floats "
                          f"({listed:,} values)")
    w = weight.tolist()
    out = Grads(None, None, None) if out is None else out
    grad_x = None
    if want_input:
        grad_x = np.empty(g.input_shape, dtype=x.dtype) if out.input is None else out.input
    grad_w = [[[[None] * kernel_w for _ in range(kernel_h)] for _ in range(in_per_group)]
              for _ in range(g.out_channels)] if want_weight else None
    grad_b = [None] * g.out_channels if want_bias else None
    input_mults = input_adds = input_padded = 0
    weight_mults = weight_adds = weight_padded = 0
    bias_adds = 0

    for n in range(g.batch):
        grads = grad_y[n].tolist()
        image = x[n].tolist() if want_weight else None
        if want_input:
            padded_grad = [[[None] * padded_w for _ in range(padded_h)] for _ in range(g.in_channels)]
        for co in range(g.out_channels):
            group = co // out_per_group
            for oh in range(out_height):
                for ow in range(out_width):
                    dy = grads[co][oh][ow]
                    if want_bias:
                        if grad_b[co] is None:
                            grad_b[co] = dy
                        else:
                            grad_b[co] += dy
                            bias_adds += 1
                    if not (want_input or want_weight):
                        continue
                    for ci in range(in_per_group):
                        c = group * in_per_group + ci
                        for kh in range(kernel_h):
                            ih = oh * stride_h - pad_top + kh * dilation_h
                            for kw in range(kernel_w):
                                iw = ow * stride_w - pad_left + kw * dilation_w
                                inside = 0 <= ih < height and 0 <= iw < width
                                if not inside and skip_padding:
                                    continue
                                if want_input:
                                    term = dy * w[co][ci][kh][kw]
                                    input_mults += 1
                                    if not inside:
                                        input_padded += 1
                                    row = padded_grad[c][ih + pad_top]
                                    if row[iw + pad_left] is None:
                                        row[iw + pad_left] = term
                                    else:
                                        row[iw + pad_left] += term
                                        input_adds += 1
                                if want_weight:
                                    pixel = image[c][ih][iw] if inside else 0.0
                                    term = dy * pixel
                                    weight_mults += 1
                                    if not inside:
                                        weight_padded += 1
                                    taps = grad_w[co][ci][kh]
                                    if taps[kw] is None:
                                        taps[kw] = term
                                    else:
                                        taps[kw] += term
                                        weight_adds += 1
        if want_input:  # crop the padding; a position no tap reached has gradient 0
            for c in range(g.in_channels):
                for ih in range(height):
                    row = padded_grad[c][ih + pad_top]
                    for iw in range(width):
                        total = row[iw + pad_left]
                        grad_x[n, c, ih, iw] = 0.0 if total is None else total

    def as_array(sums, shape, into):
        if sums is None:
            return None
        values = np.array(sums, dtype=float).reshape(shape)
        if into is None:
            return values.astype(x.dtype)
        into[...] = values
        return into

    def zero_if_unreached(sums):
        if isinstance(sums, list):
            return [zero_if_unreached(s) for s in sums]
        return 0.0 if sums is None else sums

    grads = Grads(
        grad_x,
        None if grad_w is None else as_array(zero_if_unreached(grad_w), weight.shape, out.weight),
        None if grad_b is None else as_array(zero_if_unreached(grad_b), (g.out_channels,), out.bias),
    )
    if not count:
        return grads, None
    counts = GradCounts(
        Counts(input_mults, input_adds, convention, NAME, input_padded, workspace) if want_input else None,
        Counts(weight_mults, weight_adds, convention, NAME, weight_padded, workspace) if want_weight else None,
        Counts(0, bias_adds, convention, NAME, 0, workspace) if want_bias else None,
        convention, NAME,
    )
    return grads, counts
