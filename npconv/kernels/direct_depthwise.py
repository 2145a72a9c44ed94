"""The direct kernel's depthwise path: ``groups == C_in``, any depth multiplier, built for bandwidth.

A depthwise layer (``groups == C_in``, ``C_out = m * C_in``) computes each
output plane ``y[n, co]`` from one input plane ``x[n, co // m]`` and one
``KH x KW`` filter ``w[co, 0]``: a few multiplications per value read, so its
speed is that of reading the input and writing the output.  So one task
computes one whole ``(image, output channel)`` plane, whose input and output
planes stay in L1/L2 while it runs (the planes are split between threads,
:func:`~npconv.kernels._threads.run_tasks`), in three parts:

* **interior** -- the output rows ``[oh_lo, oh_hi)`` and columns
  ``[ow_lo, ow_hi)`` all of whose taps land on real input.  For a 3x3 filter
  (dilation 1 and stride 1 or 2 along the row) the nine weights sit in
  registers and each output is stored once with its nine products
  (:func:`_fused_3x3`); otherwise the row segment is built one tap at a time
  (:func:`_tap`), its first tap assigning.  Either way the loop runs along the
  row, without branches, and LLVM vectorises it at stride 1 (with FMA:
  ``fastmath`` is limited to contraction, so NaN and inf propagate);
* **border rows** -- rows some of whose kernel rows fall on the padding: for a
  3x3 filter at stride 1 with two real kernel rows, six products per output,
  each stored once (:func:`_fused_2x3`); otherwise their interior columns one
  real tap at a time along the row (:func:`_tap`), their border columns one
  output at a time over exactly its real taps (:func:`_border`);
* **border columns** of the interior rows.  With one padded column either
  side at stride 1 (the common "same" 3x3 layer), the row passes above sum
  them too, as short trees of products (``edges``): that took 12-18% off the
  benchmark layer's time against the column pass.  Otherwise they are
  computed down the column, three kernel rows of one tap column per pass
  (:func:`_column_taps`): summed one output at a time, their products were a
  chain of dependent multiply-adds that cost as much as the whole interior.

Taps on the padding are skipped, never multiplied: this executes the
**effective** count.  The vector loops index 1-D row views: with signed
offsets into a flat array Numba checks each index for wraparound, which kept
LLVM off the vector path, and with unsigned (np.uint64) flat offsets the 3x3
loop still ran 5x slower than on row views (measured).  The scalar loops
(border columns and outputs) use unsigned flat offsets.

Counting.  One compiled entry point, :func:`_planes`, with a ``counting``
flag tested once per row segment, column pass or border output, never per
product: with it on, each loop's trip count is tallied where the loop runs
(products per element times elements); off, the tallies are skipped, and the
two modes compute the same outputs because they are the same code.  Summing ``T``
terms takes ``T - 1`` additions: without a bias the first product assigns
the sum, with one the bias is a term (``T`` products, ``T`` additions); an
output no tap reaches is the bias or 0 and costs nothing.  The tallies are
per-plane sums added up per thread and then over the threads, so they do
not depend on the thread count.

The operands reach the compiled code always as read-only views and the
output always as a writable C-contiguous array, so the entry point compiles
once per dtype (float32, float64), cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from npconv.counts import Counts
from npconv.geometry import ConvGeometry
from npconv.kernels._threads import run_tasks
from npconv.memory import ensure_workspace_fits

NAME = "direct"


@njit(cache=True, inline="always")
def _tap(y_row, x_row, x_step, t, begin):
    """``y_row[i] (=|+=) t * x_row[i * x_step]`` along the row segment ``y_row`` (1-D views)."""
    if x_step == 1:
        if begin:
            for i in range(y_row.shape[0]):
                y_row[i] = t * x_row[i]
        else:
            for i in range(y_row.shape[0]):
                y_row[i] += t * x_row[i]
    elif begin:
        for i in range(y_row.shape[0]):
            y_row[i] = t * x_row[i * x_step]
    else:
        for i in range(y_row.shape[0]):
            y_row[i] += t * x_row[i * x_step]


@njit(cache=True, fastmath={"contract"})
def _fused_3x3(y, y_at, y_step, x, x_at, x_gap, x_down, x_step, rows, length, t, start, has_bias, edges):
    """``rows`` row segments of ``length`` outputs of a 3x3 filter, each output stored once.

    The segments start at ``y[y_at + r * y_step]``; their kernel rows' input at
    ``x[x_at + r * x_down + k * x_gap]``, ``k = 0, 1, 2`` (tap column 0, dilation 1 along the
    row); ``x_step``: the stride along the row, 1 or 2 (a literal in the loop, so LLVM sees
    which elements are read); ``t``: the nine weights, row-major; ``start``: the bias, added
    when ``has_bias``; ``edges``: also each row's two border outputs, one padded column either
    side at stride 1 (tap columns 1, 2 on the left, 0, 1 on the right: six products each, summed
    as three pairs).  Positions np.uint64.  A function of its own (not inlined), so that the
    nine weights stay in registers; one loop per case, so that none tests anything per element.
    """
    t0, t1, t2, t3, t4, t5, t6, t7, t8 = t
    span = (length - np.uint64(1)) * x_step + np.uint64(3)  # input elements a segment reads per kernel row
    for r in range(rows):
        y_row = y[y_at + r * y_step:y_at + r * y_step + length]
        at = x_at + r * x_down
        x0 = x[at:at + span]
        x1 = x[at + x_gap:at + x_gap + span]
        x2 = x[at + 2 * x_gap:at + 2 * x_gap + span]
        if edges:  # the row's two border outputs: tap columns 1, 2 on the left, 0, 1 on the right
            left = (t1 * x0[0] + t2 * x0[1]) + (t4 * x1[0] + t5 * x1[1]) + (t7 * x2[0] + t8 * x2[1])
            e = length
            right = (t0 * x0[e] + t1 * x0[e + 1]) + (t3 * x1[e] + t4 * x1[e + 1]) + (t6 * x2[e] + t7 * x2[e + 1])
            y[y_at + r * y_step - 1] = left + start if has_bias else left
            y[y_at + r * y_step + length] = right + start if has_bias else right
        if x_step == 1 and has_bias:
            for i in range(length):
                y_row[i] = (t0 * x0[i] + t1 * x0[i + 1] + t2 * x0[i + 2] + t3 * x1[i] + t4 * x1[i + 1]
                            + t5 * x1[i + 2] + t6 * x2[i] + t7 * x2[i + 1] + t8 * x2[i + 2]) + start
        elif x_step == 1:
            for i in range(length):
                y_row[i] = (t0 * x0[i] + t1 * x0[i + 1] + t2 * x0[i + 2] + t3 * x1[i] + t4 * x1[i + 1]
                            + t5 * x1[i + 2] + t6 * x2[i] + t7 * x2[i + 1] + t8 * x2[i + 2])
        elif has_bias:
            for i in range(length):
                j = 2 * i
                y_row[i] = (t0 * x0[j] + t1 * x0[j + 1] + t2 * x0[j + 2] + t3 * x1[j] + t4 * x1[j + 1]
                            + t5 * x1[j + 2] + t6 * x2[j] + t7 * x2[j + 1] + t8 * x2[j + 2]) + start
        else:
            for i in range(length):
                j = 2 * i
                y_row[i] = (t0 * x0[j] + t1 * x0[j + 1] + t2 * x0[j + 2] + t3 * x1[j] + t4 * x1[j + 1]
                            + t5 * x1[j + 2] + t6 * x2[j] + t7 * x2[j + 1] + t8 * x2[j + 2])


@njit(cache=True, fastmath={"contract"})
def _fused_2x3(y_row, x0, x1, u, start, has_bias, edges):
    """A border row of a 3x3 filter at stride 1 with two real kernel rows, each output stored once.

    ``x0``, ``x1``: the two kernel rows' input (1-D views, tap column 0 of the first interior
    output first, ``interior + 2`` elements); ``u``: their six weights, row-major; ``start``: the
    bias, added when ``has_bias``.  ``y_row`` is the row's interior segment, or with ``edges``
    the whole row: the interior plus one border output either side, whose real taps are tap
    columns 1, 2 (left) and 0, 1 (right) -- four products each.
    """
    u0, u1, u2, u3, u4, u5 = u
    length = y_row.shape[0] - 2 if edges else y_row.shape[0]
    lead = 1 if edges else 0
    if edges:
        left = (u1 * x0[0] + u2 * x0[1]) + (u4 * x1[0] + u5 * x1[1])
        right = (u0 * x0[length] + u1 * x0[length + 1]) + (u3 * x1[length] + u4 * x1[length + 1])
        y_row[0] = left + start if has_bias else left
        y_row[length + 1] = right + start if has_bias else right
    if has_bias:
        for i in range(length):
            y_row[lead + i] = ((u0 * x0[i] + u1 * x0[i + 1] + u2 * x0[i + 2])
                               + (u3 * x1[i] + u4 * x1[i + 1] + u5 * x1[i + 2])) + start
    else:
        for i in range(length):
            y_row[lead + i] = ((u0 * x0[i] + u1 * x0[i + 1] + u2 * x0[i + 2])
                               + (u3 * x1[i] + u4 * x1[i + 1] + u5 * x1[i + 2]))


@njit(cache=True, inline="always")
def _column_taps(y, y_at, y_step, x, x_at, x_gap, x_step, t0, t1, t2, streams, length, begin):
    """Down a border column: ``y[y_at + i * y_step] (=|+=) sum_k t_k * x[x_at + k * x_gap + i * x_step]``
    over ``streams`` (1 or 3) kernel rows ``k``, for ``i < length`` (flat, np.uint64).  The
    outputs are independent sums, so the loop runs at the multiply-adds' throughput, not
    their latency."""
    if streams == 3:
        x1, x2 = x_at + x_gap, x_at + 2 * x_gap
        if begin:
            for i in range(length):
                j = i * x_step
                y[y_at + i * y_step] = t0 * x[x_at + j] + t1 * x[x1 + j] + t2 * x[x2 + j]
        else:
            for i in range(length):
                j = i * x_step
                y[y_at + i * y_step] += t0 * x[x_at + j] + t1 * x[x1 + j] + t2 * x[x2 + j]
    elif begin:
        for i in range(length):
            y[y_at + i * y_step] = t0 * x[x_at + i * x_step]
    else:
        for i in range(length):
            y[y_at + i * y_step] += t0 * x[x_at + i * x_step]


@njit(cache=True, inline="always")
def _border(x, x_plane, w, w_at, top, left, kh_lo, kh_hi, kw_lo, kw_hi, layer, start, has_bias):
    """One output summed over its real taps ``kh in [kh_lo, kh_hi)``, ``kw in [kw_lo, kw_hi)``.

    ``top``, ``left``: the input row and column of tap (0, 0) (may be negative: padding).
    Returns the output's value; no tap reached gives the bias or 0.
    """
    width, kernel_w, dilation_h, dilation_w = layer[3], layer[8], layer[13], layer[14]
    total = start
    first = not has_bias
    for kh in range(kh_lo, kh_hi):
        x_row = (top + kh * dilation_h) * width + left  # signed: left may be negative
        w_row = w_at + np.uint64(kh * kernel_w)
        for kw in range(kw_lo, kw_hi):
            product = w[w_row + np.uint64(kw)] * x[x_plane + np.uint64(x_row + kw * dilation_w)]
            if first:
                total = product
                first = False
            else:
                total += product
    return total


@njit(cache=True, fastmath={"contract"})
def _plane(x, w, bias, n, co, layer, rows, cols, y, counting):
    """Compute the output plane ``y[n, co]`` (flat arrays); return its (mults, adds) when counting.

    ``x``: the flat (N, C_in, H, W) input; ``w``: the flat (C_out, KH, KW) filters; ``bias``: the
    flat (C_out,) bias (zeros when the layer has none); ``y``: the flat (N, C_out, OH, OW)
    output.  ``layer`` = (N, C_in, H, W, C_out, OH, OW, KH, KW, stride_h, stride_w, pad_top,
    pad_left, dilation_h, dilation_w, multiplier, ow_lo, ow_hi, oh_lo, oh_hi, has_bias);
    ``[ow_lo, ow_hi)``: the output columns all of whose tap columns are real, ``[oh_lo, oh_hi)``
    the rows all of whose kernel rows are.  ``rows[oh]`` = (kh_lo, kh_hi): the real kernel rows
    of output row ``oh``; ``cols[ow]`` = (kw_lo, kw_hi), likewise.

    The three parts of the module docstring: the interior, the border rows, the border
    columns of the interior rows.
    """
    (_, channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
     stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, multiplier, ow_lo, ow_hi,
     oh_lo, oh_hi, has_bias) = layer
    x_plane = np.uint64((n * channels + co // multiplier) * height * width)
    y_plane = np.uint64((n * out_channels + co) * out_height * out_width)
    w_at = np.uint64(co * kernel_h * kernel_w)
    start = bias[co]
    x_step = np.uint64(stride_w)
    u_width = np.uint64(width)
    row_step = np.uint64(dilation_h * width)
    fused = kernel_h == 3 and kernel_w == 3 and dilation_w == 1 and stride_w <= 2
    taps = (w[w_at], w[w_at + 1], w[w_at + 2], w[w_at + 3], w[w_at + 4], w[w_at + 5],
            w[w_at + 6], w[w_at + 7], w[w_at + 8]) if fused else \
        (start, start, start, start, start, start, start, start, start)  # unused
    # the first interior column's input column for tap column 0 (>= 0 by construction)
    x_left = np.uint64(max(ow_lo * stride_w - pad_left, 0))
    # input elements a row segment reads for one tap column
    step_span = np.uint64(max(ow_hi - ow_lo - 1, 0) * stride_w + 1)
    mults = 0
    adds = 0
    fused_rows = fused and oh_hi > oh_lo and ow_hi > ow_lo
    # stride 1, one padded column each side: the interior rows' two border outputs are summed
    # in the row pass (6 products each), not down the columns
    edges = (fused_rows and stride_w == 1 and ow_lo == 1 and ow_hi == out_width - 1
             and cols[0, 0] == 1 and cols[0, 1] == 3 and cols[ow_hi, 0] == 0 and cols[ow_hi, 1] == 2)
    if fused_rows:  # the interior of the rows whose three kernel rows are real
        _fused_3x3(y, y_plane + np.uint64(oh_lo * out_width + ow_lo), np.uint64(out_width), x,
                   x_plane + np.uint64(oh_lo * stride_h - pad_top) * u_width + x_left, row_step,
                   np.uint64(stride_h) * u_width, x_step, np.uint64(oh_hi - oh_lo), np.uint64(ow_hi - ow_lo),
                   taps, start, has_bias, edges)
        if counting:
            mults += 9 * (oh_hi - oh_lo) * (ow_hi - ow_lo)
            adds += (9 if has_bias else 8) * (oh_hi - oh_lo) * (ow_hi - ow_lo)
            if edges:
                mults += 12 * (oh_hi - oh_lo)
                adds += (12 if has_bias else 10) * (oh_hi - oh_lo)
    for oh in range(out_height):
        y_row = y_plane + np.uint64(oh * out_width)
        kh_lo, kh_hi = rows[oh, 0], rows[oh, 1]
        top = oh * stride_h - pad_top
        interior = kh_hi > kh_lo and ow_hi > ow_lo
        pair = fused and stride_w == 1 and interior and kh_hi - kh_lo == 2 and not (oh_lo <= oh < oh_hi)
        if pair:  # a border row with two real kernel rows: six products per output, stored once
            x_row = x_plane + np.uint64(top + kh_lo * dilation_h) * u_width + x_left
            k = 3 * kh_lo
            lead = np.uint64(1 if edges else 0)
            span = step_span + np.uint64(2)
            _fused_2x3(y[y_row + np.uint64(ow_lo) - lead:y_row + np.uint64(ow_hi) + lead], x[x_row:x_row + span],
                       x[x_row + row_step:x_row + row_step + span],
                       (taps[k], taps[k + 1], taps[k + 2], taps[k + 3], taps[k + 4], taps[k + 5]),
                       start, has_bias, edges)
            if counting:
                mults += 6 * (ow_hi - ow_lo) + (8 if edges else 0)
                adds += (6 if has_bias else 5) * (ow_hi - ow_lo) + ((8 if has_bias else 6) if edges else 0)
        elif interior and not (fused_rows and oh_lo <= oh < oh_hi):  # one tap at a time
            y_seg = y[y_row + np.uint64(ow_lo):y_row + np.uint64(ow_hi)]
            begin = not has_bias
            if has_bias:
                y_seg[:] = start
            for kh in range(kh_lo, kh_hi):
                x_row = x_plane + np.uint64(top + kh * dilation_h) * u_width + x_left
                w_row = w_at + np.uint64(kh * kernel_w)
                for kw in range(kernel_w):
                    at = x_row + np.uint64(kw * dilation_w)
                    _tap(y_seg, x[at:at + step_span], x_step, w[w_row + np.uint64(kw)], begin)
                    begin = False
            if counting:
                products = (kh_hi - kh_lo) * kernel_w
                mults += products * (ow_hi - ow_lo)
                adds += (products if has_bias else products - 1) * (ow_hi - ow_lo)
        # the border: left and right of the interior, or the whole row when it has none
        for side in range(0 if oh_lo <= oh < oh_hi or (pair and edges) else 2):
            if side == 0:
                first, end = 0, ow_lo if interior else out_width
            else:
                first, end = ow_hi if interior else out_width, out_width
            for ow in range(first, end):
                kw_lo, kw_hi = cols[ow, 0], cols[ow, 1]
                y[y_row + np.uint64(ow)] = _border(x, x_plane, w, w_at, top, ow * stride_w - pad_left,
                                                   kh_lo, kh_hi, kw_lo, kw_hi, layer, start, has_bias)
                if counting:
                    products = (kh_hi - kh_lo) * (kw_hi - kw_lo)
                    mults += products
                    adds += products if has_bias else max(products - 1, 0)
    # the border columns of the rows whose kernel rows are all real, down the columns
    length = np.uint64(max(oh_hi - oh_lo, 0))
    y_step = np.uint64(out_width)
    x_down = np.uint64(stride_h) * u_width
    for side in range(2 if length > 0 and not edges else 0):
        if side == 0:
            first, end = 0, ow_lo if ow_hi > ow_lo else out_width
        else:
            first, end = ow_hi if ow_hi > ow_lo else out_width, out_width
        for ow in range(first, end):
            kw_lo, kw_hi = cols[ow, 0], cols[ow, 1]
            y_at = y_plane + np.uint64(oh_lo * out_width + ow)
            begin = not has_bias
            if has_bias or kw_hi == kw_lo:
                for i in range(length):
                    y[y_at + i * y_step] = start
            kh = 0
            while kh < kernel_h:  # kernel rows three at a time, then one at a time
                streams = 3 if kernel_h - kh >= 3 else 1
                x_row = (oh_lo * stride_h - pad_top + kh * dilation_h) * width + ow * stride_w - pad_left
                for kw in range(kw_lo, kw_hi):
                    w_tap = w_at + np.uint64(kh * kernel_w + kw)
                    t0 = w[w_tap]
                    t1 = w[w_tap + np.uint64(kernel_w)] if streams == 3 else t0
                    t2 = w[w_tap + np.uint64(2 * kernel_w)] if streams == 3 else t0
                    _column_taps(y, y_at, y_step, x, x_plane + np.uint64(x_row + kw * dilation_w), row_step,
                                 x_down, t0, t1, t2, streams, length, begin)
                    begin = False
                kh += streams
            if counting:
                products = kernel_h * (kw_hi - kw_lo)
                mults += products * (oh_hi - oh_lo)
                adds += (products if has_bias else max(products - 1, 0)) * (oh_hi - oh_lo)
    return mults, adds


@njit(cache=True, nogil=True)
def _planes(first, last, x, w, bias, layer, rows, cols, y, counting):
    """Planes ``first .. last - 1`` of the (image, output channel) planes; their summed (mults,
    adds) when counting, else zeros.  Releases the GIL: :func:`~npconv.kernels._threads.run_tasks` runs slices of the planes
    on threads."""
    out_channels = layer[4]
    mults = 0
    adds = 0
    for task in range(first, last):
        n, co = divmod(np.int64(task), out_channels)
        m, a = _plane(x, w, bias, n, co, layer, rows, cols, y, counting)
        mults += m
        adds += a
    return mults, adds


def _tap_ranges(size: int, kernel: int, stride: int, pad_before: int, dilation: int, out: int) -> np.ndarray:
    """(out, 2) int64: for each output along an axis, its real taps ``[k_lo, k_hi)`` (``k_lo == k_hi``: none).

    Output ``o`` reads input ``o * stride - pad_before + k * dilation``, real for ``0 <= ... < size``.
    """
    first = np.arange(out, dtype=np.int64) * stride - pad_before
    lo = np.clip(-(first // dilation), 0, kernel)  # ceil(-first / dilation)
    hi = np.clip((size - 1 - first) // dilation + 1, 0, kernel)
    return np.stack([lo, np.maximum(lo, hi)], axis=1)


def _full_range(ranges: np.ndarray, kernel: int) -> tuple[int, int]:
    """The outputs ``[lo, hi)`` all of whose ``kernel`` taps are real, from :func:`_tap_ranges` (an interval)."""
    full = np.flatnonzero((ranges[:, 0] == 0) & (ranges[:, 1] == kernel))
    return (int(full[0]), int(full[-1]) + 1) if full.size else (0, 0)


def read_only(array: np.ndarray) -> np.ndarray:
    """A flat read-only view of the C-contiguous ``array``.

    The direct kernels' entry points always get their inputs as read-only views: Numba
    compiles a separate variant for read-only and writable arrays, and a caller's read-only
    input would otherwise cost a second compilation.
    """
    view = array.reshape(-1).view()
    view.flags.writeable = False
    return view


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    geometry: ConvGeometry,
    *,
    count: bool = False,
    workspace_limit: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, Counts | None]:
    """A depthwise layer (``groups == C_in``) with the compiled plane loops; see the module docstring.

    Parameters
    ----------
    x : (N, C_in, H, W) float32 or float64 array, any memory layout
    weight : (m * C_in, 1, KH, KW) array of ``x.dtype``, m the depth multiplier
    bias : (m * C_in,) array or None
    geometry : the layer, validated against these shapes (``groups == in_channels``)
    count : run with the counting flag on and return its tallies
    workspace_limit : bytes that contiguous copies of the operands may take
    out : None, or a C-contiguous, writable (N, m * C_in, OH, OW) array of ``x.dtype`` to write
        into, checked by the caller (:func:`npconv.kernels.direct.conv2d`)

    Returns
    -------
    y : ``out``, or a new (N, m * C_in, OH, OW) array of ``x.dtype``
    counts : :class:`~npconv.counts.Counts` (effective convention), or None
    """
    g = geometry
    if g.groups != g.in_channels:
        raise ValueError(f"geometry: expected a depthwise layer (groups == in_channels), got groups {g.groups} "
                         f"and {g.in_channels} input channels")
    y = np.empty(g.output_shape, dtype=x.dtype) if out is None else out
    copied = sum(a.nbytes for a in (x, weight) if not a.flags.c_contiguous)
    if copied:
        ensure_workspace_fits(copied, workspace_limit, f"contiguous copies of the operands ({copied:,} bytes)")
    xs, ws = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    has_bias = bias is not None
    b = np.ascontiguousarray(bias) if has_bias else np.zeros(g.out_channels, dtype=x.dtype)
    tallies = (0, 0)
    if y.size:
        (pad_top, _), (pad_left, _) = g.padding
        rows = _tap_ranges(g.height, g.kernel_h, g.stride[0], pad_top, g.dilation[0], g.out_height)
        cols = _tap_ranges(g.width, g.kernel_w, g.stride[1], pad_left, g.dilation[1], g.out_width)
        ow_lo, ow_hi = _full_range(cols, g.kernel_w)
        oh_lo, oh_hi = _full_range(rows, g.kernel_h)
        layer = (g.batch, g.in_channels, g.height, g.width, g.out_channels, g.out_height, g.out_width,
                 g.kernel_h, g.kernel_w, g.stride[0], g.stride[1], pad_top, pad_left, g.dilation[0], g.dilation[1],
                 g.out_channels // g.in_channels, ow_lo, ow_hi, oh_lo, oh_hi, int(has_bias))
        tallies = run_tasks(_planes, g.batch * g.out_channels, read_only(xs), read_only(ws), read_only(b), layer,
                            rows, cols, y.reshape(-1), bool(count))
    if not count:
        return y, None
    return y, Counts(int(tallies[0]), int(tallies[1]), "effective", NAME, 0, copied)
