"""Direct kernel: the reference loops compiled with Numba, parallel and vectorised.

The same cross-correlation as :mod:`npconv.kernels.reference`, with the loops
rearranged for speed but the arithmetic unchanged: every output is its bias
(if any) plus its products taken in the order ``ci, kh, kw``, and a tap that
falls on the padding is *skipped*, never multiplied -- no padded copy of the
input is made.  So this kernel executes the **effective** count.

Loop order.  One parallel task computes one output row ``y[n, co, oh, :]``
(``N * C_out * OH`` tasks keep both cores busy even for ``N = 1``).  Within a
task, for each tap ``(ci, kh, kw)`` whose input row ``ih`` exists, the
innermost loop runs along the output row over exactly the columns ``ow`` whose
input column ``iw = ow * stride_w + kw * dilation_w - pad_left`` exists::

    y[n, co, oh, lo:hi] += w[co, ci, kh, kw] * x[n, c, ih, lo*sw + off : hi*sw + off : sw]

That innermost loop is contiguous at stride 1 and free of bounds checks and
branches, so LLVM vectorises it.  A pointwise (1x1, stride 1, unpadded) layer
is a matrix product; it gets its own loop over blocks of output channels and
pixels that reuses each input load for several output channels.

Counting.  Each kernel exists in two compiled variants with the same loop
nest: ``*_fast`` returns the output only; ``*_counting`` also tallies, at the
place each innermost loop runs, its trip count ``hi - lo`` -- the
multiplications that loop executes -- and how many of them added to a sum
already begun.  Summing ``T`` terms takes ``T - 1`` additions (see
:mod:`npconv.counts`): without a bias, the first term that reaches an output
*starts* its sum (``y = w * x``, no addition), and the kernel executes exactly
that.  The tallies are per-task partial sums that Numba's ``prange``
reduction combines, so they do not depend on the thread count.

Compilation happens on first use of ``method="direct"`` (this module is
imported only then) and is cached on disk (``cache=True``), per dtype.
float32 stays float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from npconv.counts import Counts
from npconv.geometry import ConvGeometry
from npconv.memory import ensure_workspace_fits

NAME = "direct"
#: Conventions this kernel can execute; the first is its default.
CONVENTIONS = ("effective",)

#: Input channels whose products one pass over an output row sums before
#: touching the row: the row is loaded and stored once per 8 products, not
#: once per product, which is what bounds a direct kernel's speed.
CHANNEL_BLOCK = 8

# Index arithmetic in the innermost loops is unsigned (np.uint64): Numba
# checks a signed index for wraparound (a negative index counts from the end),
# and that check keeps LLVM from vectorising the loop.


@njit(cache=True, inline="always")
def _products_8(y, y_at, x, x_at, x_step, plane, w, w_at, length, begin):
    """``y[y_at + i] (+)= sum_c w[w_at + c] * x[x_at + c * plane + i * x_step]`` over 8 channels c.

    ``begin``: the sums start here (assign, 7 additions per element) rather
    than continue (8 additions).
    """
    t0, t1, t2, t3 = w[w_at], w[w_at + 1], w[w_at + 2], w[w_at + 3]
    t4, t5, t6, t7 = w[w_at + 4], w[w_at + 5], w[w_at + 6], w[w_at + 7]
    x0 = x_at
    x1 = x0 + plane
    x2 = x1 + plane
    x3 = x2 + plane
    x4 = x3 + plane
    x5 = x4 + plane
    x6 = x5 + plane
    x7 = x6 + plane
    for i in range(length):
        j = i * x_step
        total = (t0 * x[x0 + j] + t1 * x[x1 + j] + t2 * x[x2 + j] + t3 * x[x3 + j]
                 + t4 * x[x4 + j] + t5 * x[x5 + j] + t6 * x[x6 + j] + t7 * x[x7 + j])
        if begin:
            y[y_at + i] = total
        else:
            y[y_at + i] += total


@njit(cache=True, inline="always")
def _products_1(y, y_at, x, x_at, x_step, tap, length, begin):
    """``y[y_at + i] (+)= tap * x[x_at + i * x_step]`` (0 or 1 addition per element)."""
    for i in range(length):
        if begin:
            y[y_at + i] = tap * x[x_at + i * x_step]
        else:
            y[y_at + i] += tap * x[x_at + i * x_step]


@njit(cache=True, inline="always")
def _row(x, w, bias, n, co, oh, layer, columns, y, counting):
    """Compute output row ``y[n, co, oh, :]`` (flat arrays); return its (mults, adds) when counting.

    ``x`` is the flat (N, C_in, H, W) input, ``w`` the flat weight transposed
    to (C_out, KH, KW, C_in/g) so that a channel block's taps are adjacent,
    ``y`` the flat (N, C_out, OH, OW) output.  ``layer`` = (N, C_in, H, W,
    C_out, OH, OW, KH, KW, stride_h, stride_w, pad_top, dilation_h,
    C_in/g, C_out/g).  ``columns[kw]`` = (lo, hi, offset): the output
    columns ``[lo, hi)`` whose input column ``ow * stride_w + offset`` for
    tap ``kw`` exists.
    """
    (_, in_channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
     stride_h, stride_w, pad_top, dilation_h, in_per_group, out_per_group) = layer
    first_channel = (co // out_per_group) * in_per_group
    plane = np.uint64(height * width)
    x_step = np.uint64(stride_w)
    y_row = np.uint64(((n * out_channels + co) * out_height + oh) * out_width)
    mults = 0
    adds = 0

    has_bias = bias.shape[0] > 0
    start = bias[co] if has_bias else 0.0
    for i in range(np.uint64(out_width)):
        y[y_row + i] = start  # unreached outputs keep this
    starting = not has_bias  # the first tap row that reaches an output starts its sum

    c = 0
    while c < in_per_group:
        block = CHANNEL_BLOCK if in_per_group - c >= CHANNEL_BLOCK else 1
        x_channel = (n * in_channels + first_channel + c) * height
        for kh in range(kernel_h):
            ih = oh * stride_h - pad_top + kh * dilation_h
            if ih < 0 or ih >= height:
                continue  # a padded row: skipped, not multiplied
            x_row = (x_channel + ih) * width
            w_tap = ((co * kernel_h + kh) * kernel_w) * in_per_group + c
            # Columns right of ``begun`` already hold a term in this tap row.  The
            # valid range [lo, hi) slides left as kw grows, so everything right of
            # the previous range's start is begun and everything left of it is not.
            begun = out_width
            for kw in range(kernel_w):
                lo, hi, offset = columns[kw, 0], columns[kw, 1], columns[kw, 2]
                if hi > lo:
                    split = min(hi, begun) if starting else lo
                    x_at = np.uint64(x_row + lo * stride_w + offset)
                    w_at = np.uint64(w_tap + kw * in_per_group)
                    fresh, rest = np.uint64(split - lo), np.uint64(hi - split)
                    if block == CHANNEL_BLOCK:
                        _products_8(y, y_row + np.uint64(lo), x, x_at, x_step, plane, w, w_at, fresh, True)
                        _products_8(y, y_row + np.uint64(split), x, x_at + fresh * x_step, x_step, plane,
                                    w, w_at, rest, False)
                    else:
                        _products_1(y, y_row + np.uint64(lo), x, x_at, x_step, w[w_at], fresh, True)
                        _products_1(y, y_row + np.uint64(split), x, x_at + fresh * x_step, x_step,
                                    w[w_at], rest, False)
                    if counting:
                        mults += block * (hi - lo)
                        adds += block * (hi - lo) - (split - lo)
                    begun = lo
            starting = False
        c += block
    return mults, adds


@njit(parallel=True, cache=True, fastmath={"contract"})
def _rows_fast(x, w, bias, layer, columns, y):
    batch, out_channels, out_height = layer[0], layer[4], layer[5]
    for task in prange(batch * out_channels * out_height):
        n, rest = divmod(np.int64(task), out_channels * out_height)
        co, oh = divmod(rest, out_height)
        _row(x, w, bias, n, co, oh, layer, columns, y, False)


@njit(parallel=True, cache=True, fastmath={"contract"})
def _rows_counting(x, w, bias, layer, columns, y):
    batch, out_channels, out_height = layer[0], layer[4], layer[5]
    mults = 0
    adds = 0
    for task in prange(batch * out_channels * out_height):
        n, rest = divmod(np.int64(task), out_channels * out_height)
        co, oh = divmod(rest, out_height)
        m, a = _row(x, w, bias, n, co, oh, layer, columns, y, True)
        mults += m
        adds += a
    return mults, adds


def _column_ranges(g: ConvGeometry) -> np.ndarray:
    """(KW, 3) int64: for each tap column kw, the output columns [lo, hi) it reaches and its offset."""
    stride, dilation, pad_left = g.stride[1], g.dilation[1], g.padding[1][0]
    ranges = np.empty((g.kernel_w, 3), dtype=np.int64)
    for kw in range(g.kernel_w):
        offset = kw * dilation - pad_left
        lo = max(0, -(offset // stride))  # first ow with ow * stride + offset >= 0
        hi = min(g.out_width, max(0, -((offset - g.width) // stride)))  # ... < width
        ranges[kw] = lo, max(lo, hi), offset
    return ranges


def _contiguous(array: np.ndarray, name: str, limit: int) -> tuple[np.ndarray, int]:
    """``array`` C-contiguous, and the bytes copied to make it so (workspace)."""
    if array.flags.c_contiguous:
        return array, 0
    ensure_workspace_fits(array.nbytes, limit, f"a C-contiguous copy of {name}, shape {array.shape},")
    return np.ascontiguousarray(array), array.nbytes


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    geometry: ConvGeometry,
    *,
    convention: str = "effective",
    count: bool = False,
    workspace_limit: int,
) -> tuple[np.ndarray, Counts | None]:
    """Compute ``y[n, co, oh, ow]`` for a validated layer with the compiled loops.

    Parameters
    ----------
    x : (N, C_in, H, W) float32 or float64 array, any memory layout
    weight : (C_out, C_in / groups, KH, KW) array of ``x.dtype``
    bias : (C_out,) array or None
    geometry : the layer, validated against these shapes
    convention : ``"effective"`` (padded taps are skipped, so that is what runs)
    count : run the counting variant and return its tallies
    workspace_limit : bytes that contiguous copies of non-contiguous operands may take

    Returns
    -------
    y : (N, C_out, OH, OW) array of ``x.dtype``
    counts : :class:`~npconv.counts.Counts` (``padded_mults`` is 0), or None
    """
    g = geometry
    x, x_copied = _contiguous(x, "x", workspace_limit)
    ensure_workspace_fits(weight.nbytes, workspace_limit, f"the transposed weight, shape {weight.shape},")
    w = np.ascontiguousarray(np.moveaxis(weight, 1, 3))  # (C_out, KH, KW, C_in/g)
    bias = np.zeros(0, dtype=x.dtype) if bias is None else np.ascontiguousarray(bias)
    y = np.empty(g.output_shape, dtype=x.dtype)
    if y.size == 0:
        tallies = (0, 0)
    else:
        layer = (g.batch, g.in_channels, g.height, g.width, g.out_channels, g.out_height, g.out_width,
                 g.kernel_h, g.kernel_w, g.stride[0], g.stride[1], g.padding[0][0], g.dilation[0],
                 g.in_channels_per_group, g.out_channels_per_group)
        args = (x.reshape(-1), w.reshape(-1), bias, layer, _column_ranges(g), y.reshape(-1))
        tallies = _rows_counting(*args) if count else _rows_fast(*args)
    if not count:
        return y, None
    mults, adds = (int(t) for t in tallies)
    return y, Counts(mults, adds, "effective", NAME, 0, x_copied + w.nbytes)
