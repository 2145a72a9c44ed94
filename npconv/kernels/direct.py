"""Direct kernel: the reference loops compiled with Numba, vectorised and run on every core.

The same cross-correlation as :mod:`npconv.kernels.reference`, with the loops
rearranged for speed: a tap that falls on the padding is *skipped*, never
multiplied, and no padded copy of the input is made -- so this kernel
executes the **effective** count.  Products are summed in a different order
than the reference's, so results agree with it to rounding, not bit for bit;
``fastmath`` is limited to contraction (FMA), so NaN and inf still propagate.

Three loop nests (:func:`choose_loop`, :data:`LOOPS`):

``planes`` (resnet-like layers, large kernels, 1x1)
    one task per (image, group, block of :data:`PLANE_BLOCK` output
    channels, band of output rows); the interior of each output plane is
    summed by blocks of up to 3 x 3 taps (8 input channels for a 1x1 kernel)
    in one contiguous, branch-free loop along each row, so the output row is
    loaded and stored once per block, which is what bounds a direct kernel's
    speed; border columns are summed as strips down the rows, border rows by
    the row pass (:func:`_pass`, blocks of "streams"), each over the taps on
    real input only.  See its section below.
``pixels`` (short or strided rows and at least 16 output channels a group: the
    seed and stem layers) vectorises along output channels instead
    (:func:`_pixels`).
``depthwise`` (groups == C_in, any multiplier): one plane per task, in
    :mod:`npconv.kernels.direct_depthwise`.

The flat arrays' geometry is passed as ``layer`` = (N, C_in, H, W, C_out, OH,
OW, KH, KW, stride_h, stride_w, pad_top, dilation_h, C_in/g, C_out/g), and
``columns[kw]`` = (lo, hi, offset): the output columns ``[lo, hi)`` whose input
column ``ow * stride_w + offset`` for tap column ``kw`` exists
(:func:`_column_ranges`).

Counting.  Each loop nest has one compiled entry point with a ``counting``
flag.  With the flag on, it tallies, where each innermost loop runs, the
multiplications that loop executes (its trip count times the products per
element) and the additions; with it off (the fast path) the tallies are
skipped -- the flag is tested once per vector loop, not per product, so the
fast path does not pay for counting, and the two modes cannot compute
different outputs because they are the same code.  Summing ``T`` terms
takes ``T - 1`` additions (see :mod:`npconv.counts`): without a bias, the
first term or block that reaches an output *starts* its sum (an assignment,
no addition), and the kernel executes exactly that.

Threads.  The tasks are split between Numba's thread count of Python threads
(:func:`~npconv.kernels._threads.run_tasks`; the entry points release the GIL), each task writing
only its own outputs; the tallies are the per-task sums, so they do not
depend on the thread count.  Threads rather than ``prange``: a ``prange``
loop compiles the nest it calls a second time.

Compilation happens on first use of ``method="direct"`` (this module is
imported only then) and is cached on disk (``cache=True``), once per dtype:
the inputs always reach the compiled code as read-only views
(:func:`~npconv.kernels.direct_depthwise.read_only`), so a caller's read-only array compiles nothing more;
float32 stays float32.

Size: one module for forward and backward, which share the row pass, the
task runner and the layer tuple; the sections are headed.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import njit

from npconv.counts import Counts
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, first_touch_starts, tap_output_range
from npconv.gradients import GradCounts, Grads
from npconv.kernels import direct_depthwise
from npconv.kernels._threads import run_tasks
from npconv.kernels.direct_depthwise import read_only
from npconv.memory import ensure_workspace_fits

NAME = "direct"
#: Conventions this kernel can execute; the first is its default.
CONVENTIONS = ("effective",)
#: Compiled (Numba): no interpreter's rate limits the layers it runs.
MULTS_PER_SECOND = None

#: Input channels whose products one pass over an output row sums before
#: touching the row: the row is loaded and stored once per 8 products, not
#: once per product, which is what bounds a direct kernel's speed.
CHANNEL_BLOCK = 8

# Index arithmetic in the innermost loops is unsigned (np.uint64): Numba
# checks a signed index for wraparound (a negative index counts from the end),
# and that check keeps LLVM from vectorising the loop.
#
# A "pass" adds the products of several *streams* -- input rows that share
# the output row: 8 input channels at the same (kh, kw), or, for the last
# channels of a group (depthwise layers have only one), up to 3 kernel rows
# of one channel -- so the output row is loaded and stored once per stream
# block.  ``_streams_K`` sums K streams: element ``i`` of the output segment
# gets ``sum_k w[w_at + k * w_step] * x[x_at + k * x_gap + i]`` (contiguous;
# a single stream may also be read at a stride ``x_step``), and
# ``begin`` says whether that starts the sum (K - 1 additions) or continues it
# (K additions).  Weights are read into locals first so that the loop does
# not reload them (LLVM cannot prove ``y`` and ``w`` do not overlap).


@njit(cache=True, inline="always")
def _streams_8(y, y_at, x, x_at, x_gap, w, w_at, w_step, length, begin):
    t0, t1, t2, t3 = w[w_at], w[w_at + w_step], w[w_at + 2 * w_step], w[w_at + 3 * w_step]
    t4, t5, t6, t7 = w[w_at + 4 * w_step], w[w_at + 5 * w_step], w[w_at + 6 * w_step], w[w_at + 7 * w_step]
    x1 = x_at + x_gap
    x2 = x1 + x_gap
    x3 = x2 + x_gap
    x4 = x3 + x_gap
    x5 = x4 + x_gap
    x6 = x5 + x_gap
    x7 = x6 + x_gap
    for i in range(length):
        total = (t0 * x[x_at + i] + t1 * x[x1 + i] + t2 * x[x2 + i] + t3 * x[x3 + i]
                 + t4 * x[x4 + i] + t5 * x[x5 + i] + t6 * x[x6 + i] + t7 * x[x7 + i])
        if begin:
            y[y_at + i] = total
        else:
            y[y_at + i] += total


@njit(cache=True, inline="always")
def _streams_3(y, y_at, x, x_at, x_gap, w, w_at, w_step, length, begin):
    t0, t1, t2 = w[w_at], w[w_at + w_step], w[w_at + 2 * w_step]
    x1 = x_at + x_gap
    x2 = x1 + x_gap
    for i in range(length):
        total = t0 * x[x_at + i] + t1 * x[x1 + i] + t2 * x[x2 + i]
        if begin:
            y[y_at + i] = total
        else:
            y[y_at + i] += total


@njit(cache=True, inline="always")
def _streams_2(y, y_at, x, x_at, x_gap, w, w_at, w_step, length, begin):
    t0, t1 = w[w_at], w[w_at + w_step]
    x1 = x_at + x_gap
    for i in range(length):
        total = t0 * x[x_at + i] + t1 * x[x1 + i]
        if begin:
            y[y_at + i] = total
        else:
            y[y_at + i] += total


@njit(cache=True, inline="always")
def _streams_1(y, y_at, x, x_at, x_step, w, w_at, length, begin):
    t0 = w[w_at]
    for i in range(length):
        if begin:
            y[y_at + i] = t0 * x[x_at + i * x_step]
        else:
            y[y_at + i] += t0 * x[x_at + i * x_step]


@njit(cache=True, inline="always")
def _streams(streams, y, y_at, x, x_at, x_gap, x_step, w, w_at, w_step, length, begin):
    # Blocks of streams run at stride 1 only (see _pass), where a contiguous
    # loop over up to 9 arrays still vectorises; a runtime stride would make
    # LLVM give up on them.
    if streams == 8:
        _streams_8(y, y_at, x, x_at, x_gap, w, w_at, w_step, length, begin)
    elif streams == 3:
        _streams_3(y, y_at, x, x_at, x_gap, w, w_at, w_step, length, begin)
    elif streams == 2:
        _streams_2(y, y_at, x, x_at, x_gap, w, w_at, w_step, length, begin)
    else:
        _streams_1(y, y_at, x, x_at, x_step, w, w_at, length, begin)


@njit(cache=True, fastmath={"contract"})
def _pass(streams, y, y_row, x, x_row, x_gap, x_step, w, w_tap, w_kw, w_step, columns, starting, counting):
    """Add one stream block's products for every tap column kw to an output row.

    ``x_row`` / ``w_tap``: the first stream's input row and its weight at
    kw = 0; ``w_kw``: weight step from one kw to the next.  ``starting``: no
    term has reached this row yet (no bias, first block).  Returns the
    (mults, adds) executed when counting.
    """
    mults = 0
    adds = 0
    # Columns right of ``begun`` already hold a term.  The valid range [lo, hi)
    # slides left as kw grows, so everything right of the previous range's
    # start is begun and everything left of it is not.
    begun = columns[0, 1]
    for kw in range(columns.shape[0]):
        lo, hi, offset = columns[kw, 0], columns[kw, 1], columns[kw, 2]
        if hi == lo:
            continue
        split = min(hi, begun) if starting else lo
        fresh = np.uint64(split - lo)
        x_at = np.uint64(x_row + offset) + np.uint64(lo) * x_step
        w_at = np.uint64(w_tap + kw * w_kw)
        if fresh > 0:
            _streams(streams, y, y_row + np.uint64(lo), x, x_at, x_gap, x_step, w, w_at, w_step, fresh, True)
        _streams(streams, y, y_row + np.uint64(split), x, x_at + fresh * x_step, x_gap, x_step,
                 w, w_at, w_step, np.uint64(hi - split), False)
        if counting:
            mults += streams * (hi - lo)
            adds += streams * (hi - lo) - (split - lo)
        begun = lo
    return mults, adds


@njit(cache=True, fastmath={"contract"})
def _pixels(x, w, bias, n, oh, group, layer, columns, acc, y, counting):
    """Compute ``y[n, group's channels, oh, :]`` pixel by pixel, vectorised over output channels.

    For each output pixel, each valid tap ``(ci, kh, kw)`` multiplies one input
    value by the group's ``C_out/g`` weights of that tap, which are contiguous
    in ``w`` -- the flat weight transposed to (groups, C_in/g, KH, KW, C_out/g)
    -- and accumulates into ``acc`` (C_out/g values, in L1); the pixel's sums
    are then stored into the NCHW output.  The vector loop is as long as the
    output channels, however short the output rows and whatever the stride.
    Other arguments as in the module docstring.  Returns (mults, adds) when counting.
    """
    (_, in_channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
     stride_h, stride_w, pad_top, dilation_h, in_per_group, out_per_group) = layer
    outs = np.uint64(out_per_group)
    first_channel = group * in_per_group
    has_bias = bias.shape[0] > 0
    top = oh * stride_h - pad_top
    kh_first = max(0, -(top // dilation_h))
    kh_end = min(kernel_h, max(0, -((top - height) // dilation_h)))
    plane = np.uint64(out_height * out_width)
    y_pixel = np.uint64(((n * out_channels + group * out_per_group) * out_height + oh) * out_width)
    mults = 0
    adds = 0
    for ow in range(out_width):
        starting = True
        if has_bias:
            for j in range(outs):
                acc[j] = bias[group * out_per_group + j]
            starting = False
        for ci in range(in_per_group):
            x_channel = (n * in_channels + first_channel + ci) * height
            for kh in range(kh_first, kh_end):
                x_row = (x_channel + top + kh * dilation_h) * width
                w_row = ((group * in_per_group + ci) * kernel_h + kh) * kernel_w
                for kw in range(kernel_w):
                    if ow < columns[kw, 0] or ow >= columns[kw, 1]:
                        continue  # a padded column: skipped, not multiplied
                    value = x[np.uint64(x_row + ow * stride_w + columns[kw, 2])]
                    w_at = np.uint64(w_row + kw) * outs
                    if starting:
                        for j in range(outs):
                            acc[j] = value * w[w_at + j]
                    else:
                        for j in range(outs):
                            acc[j] += value * w[w_at + j]
                    if counting:
                        mults += out_per_group
                        adds += 0 if starting else out_per_group
                    starting = False
        if starting:
            for j in range(outs):
                acc[j] = 0.0  # no tap reached this output
        for j in range(outs):
            y[y_pixel + np.uint64(ow) + j * plane] = acc[j]
    return mults, adds


@njit(cache=True, nogil=True)
def _pixel_tasks(first, last, x, w, bias, layer, columns, y, counting):
    """The (image, output row, group) tasks ``[first, last)`` of :func:`_pixels`; their summed
    (mults, adds) when counting, else zeros (run by :func:`~npconv.kernels._threads.run_tasks`)."""
    out_height, groups = layer[5], layer[4] // layer[14]
    mults = 0
    adds = 0
    acc = np.empty(layer[14], dtype=y.dtype)
    for task in range(first, last):
        n, rest = divmod(np.int64(task), out_height * groups)
        oh, group = divmod(rest, groups)
        m, a = _pixels(x, w, bias, n, oh, group, layer, columns, acc, y, counting)
        mults += m
        adds += a
    return mults, adds


# ---------------------------------------------------------------------- planes
#
# The third loop nest, for standard layers with rows to vectorise along: one parallel task per
# (image, group, block of PLANE_BLOCK output channels, band of output rows).  For each input
# channel of the group (outermost, so that its plane stays in L1 while the block's output
# rows, in L2, pass by), for each output channel of the block, the *interior* -- the output
# rows all of whose kernel rows, and the columns all of whose tap columns, land on real input
# -- is computed by blocks of taps (3 kernel rows x 3 tap columns, fewer at the kernel's edge):
# one contiguous, branch-free loop along each interior row sums a block's 9 products per
# element, so the output row is loaded and stored once per 9 products, which is what bounds a
# direct kernel's speed (LLVM vectorises the loop with FMA; at column stride and dilation 1
# only, other layers take the per-row path below).  The few border columns of those rows are
# summed apart over the taps that land on real input, and the border rows go through the row
# nest's passes (:func:`_pass`), which skip the padded columns tap by tap.  No padded zero is
# ever multiplied: the nest executes the effective count, tallied where its loops run.

#: Output channels one "planes" task computes: their rows share each input plane while it is in L1.
PLANE_BLOCK = 16

#: Output elements of a task's channel block that a band of rows keeps within (about 256 KiB of
#: float32, half an L2), so that the block's rows stay in L2 while the input channels pass.
BAND_ELEMENTS = 65536


@njit(cache=True, fastmath={"contract"})
def _block_33(y, ya, y_step, x, xa, x_step, k_step, w, wa, w_row, rows, length, begin):
    """``rows`` output rows += a block of 3 kernel rows x 3 adjacent tap columns, row by row.

    Output row ``r`` starts at ``ya + r * y_step`` and reads input rows ``xa + r * x_step + kh *
    k_step`` (kh = 0, 1, 2) at columns ``+ 0, 1, 2``; weights ``w[wa + kh * w_row + kw]``;
    ``length`` elements per row.  ``begin``: the products start the outputs' sums (assignment)
    instead of adding to them.

    Written so that LLVM vectorises the inner loop: unsigned indices; the column step the
    constant 1, so that the output row is checked for overlap against 3 input ranges (one per
    input row) -- a runtime step made 9, and two output rows per loop 12 against 2, beyond
    LLVM's limit of 8 checks (it kept the loop scalar); each kernel row's products summed
    before the rows' sums are added (three short chains of dependent FMAs, not one of nine);
    ``begin`` tested outside the loop (inside, LLVM made masked stores of it, which are slow).
    The loop over rows is inside, so that a call costs little against its products.
    """
    one, two = np.uint64(1), np.uint64(2)
    m1, m2 = wa + w_row, wa + two * w_row
    w0, w1, w2 = w[wa], w[wa + one], w[wa + two]
    w3, w4, w5 = w[m1], w[m1 + one], w[m1 + two]
    w6, w7, w8 = w[m2], w[m2 + one], w[m2 + two]
    for r in range(rows):
        r0 = xa + r * x_step
        r1 = r0 + k_step
        r2 = r1 + k_step
        y0 = ya + r * y_step
        if begin:
            for i in range(length):
                y[y0 + i] = ((w0 * x[r0 + i] + w1 * x[r0 + one + i] + w2 * x[r0 + two + i])
                             + (w3 * x[r1 + i] + w4 * x[r1 + one + i] + w5 * x[r1 + two + i])
                             + (w6 * x[r2 + i] + w7 * x[r2 + one + i] + w8 * x[r2 + two + i]))
        else:
            for i in range(length):
                y[y0 + i] += ((w0 * x[r0 + i] + w1 * x[r0 + one + i] + w2 * x[r0 + two + i])
                              + (w3 * x[r1 + i] + w4 * x[r1 + one + i] + w5 * x[r1 + two + i])
                              + (w6 * x[r2 + i] + w7 * x[r2 + one + i] + w8 * x[r2 + two + i]))


@njit(cache=True, fastmath={"contract"})
def _block_13(y, ya, y_step, x, xa, x_step, w, wa, rows, length, begin):
    """As :func:`_block_33` for 1 kernel row x 3 tap columns."""
    one, two = np.uint64(1), np.uint64(2)
    w0, w1, w2 = w[wa], w[wa + one], w[wa + two]
    for r in range(rows):
        r0 = xa + r * x_step
        y0 = ya + r * y_step
        if begin:
            for i in range(length):
                y[y0 + i] = w0 * x[r0 + i] + w1 * x[r0 + one + i] + w2 * x[r0 + two + i]
        else:
            for i in range(length):
                y[y0 + i] += w0 * x[r0 + i] + w1 * x[r0 + one + i] + w2 * x[r0 + two + i]


@njit(cache=True, fastmath={"contract"})
def _block_31(y, ya, y_step, x, xa, x_step, k_step, w, wa, w_row, rows, length, begin):
    """As :func:`_block_33` for 3 kernel rows x 1 tap column."""
    two = np.uint64(2)
    w0, w1, w2 = w[wa], w[wa + w_row], w[wa + two * w_row]
    for r in range(rows):
        r0 = xa + r * x_step
        r1 = r0 + k_step
        r2 = r1 + k_step
        y0 = ya + r * y_step
        if begin:
            for i in range(length):
                y[y0 + i] = w0 * x[r0 + i] + w1 * x[r1 + i] + w2 * x[r2 + i]
        else:
            for i in range(length):
                y[y0 + i] += w0 * x[r0 + i] + w1 * x[r1 + i] + w2 * x[r2 + i]


@njit(cache=True, fastmath={"contract"})
def _block_11(y, ya, y_step, x, xa, x_step, w, wa, rows, length, begin):
    """As :func:`_block_33` for a single tap."""
    w0 = w[wa]
    for r in range(rows):
        r0 = xa + r * x_step
        y0 = ya + r * y_step
        if begin:
            for i in range(length):
                y[y0 + i] = w0 * x[r0 + i]
        else:
            for i in range(length):
                y[y0 + i] += w0 * x[r0 + i]


@njit(cache=True, fastmath={"contract"})
def _block_channels(y, ya, y_step, x, xa, x_rows, c_gap, w, wa, rows, length, begin):
    """As :func:`_block_11` for 8 input channels at once (a 1x1 kernel): input channel ``k``'s row
    ``r`` starts at ``xa + k * c_gap + r * x_rows``, its weight is ``w[wa + k]``."""
    w0, w1, w2, w3 = w[wa], w[wa + np.uint64(1)], w[wa + np.uint64(2)], w[wa + np.uint64(3)]
    w4, w5, w6, w7 = w[wa + np.uint64(4)], w[wa + np.uint64(5)], w[wa + np.uint64(6)], w[wa + np.uint64(7)]
    for r in range(rows):
        r0 = xa + r * x_rows
        r1 = r0 + c_gap
        r2 = r1 + c_gap
        r3 = r2 + c_gap
        r4 = r3 + c_gap
        r5 = r4 + c_gap
        r6 = r5 + c_gap
        r7 = r6 + c_gap
        y0 = ya + r * y_step
        if begin:
            for i in range(length):
                y[y0 + i] = (((w0 * x[r0 + i] + w1 * x[r1 + i]) + (w2 * x[r2 + i] + w3 * x[r3 + i]))
                             + ((w4 * x[r4 + i] + w5 * x[r5 + i]) + (w6 * x[r6 + i] + w7 * x[r7 + i])))
        else:
            for i in range(length):
                y[y0 + i] += (((w0 * x[r0 + i] + w1 * x[r1 + i]) + (w2 * x[r2 + i] + w3 * x[r3 + i]))
                              + ((w4 * x[r4 + i] + w5 * x[r5 + i]) + (w6 * x[r6 + i] + w7 * x[r7 + i])))


@njit(cache=True, fastmath={"contract"})
def _border_column(y, ya, y_step, x, xa, x_rows, k_step, w, wa, w_row, kernel_h, kw0, kw1, rows, begin):
    """One border column of ``rows`` interior rows += its taps on real input, the tap columns
    ``[kw0, kw1)`` (of every kernel row), one tap at a time down the column.

    Output row ``r``'s element is ``y[ya + r * y_step]``; tap ``(kh, kw)`` reads
    ``x[xa + r * x_rows + kh * k_step + kw - kw0]`` and ``w[wa + kh * w_row + kw - kw0]``.
    ``begin``: the first tap starts the sums.
    """
    for kh in range(kernel_h):
        for kw in range(kw1 - kw0):
            wt = w[wa + kh * w_row + kw]
            x0 = xa + kh * k_step + kw
            if begin and kh == 0 and kw == 0:
                for r in range(rows):
                    y[ya + r * y_step] = wt * x[x0 + r * x_rows]
            else:
                for r in range(rows):
                    y[ya + r * y_step] += wt * x[x0 + r * x_rows]


@njit(cache=True, fastmath={"contract"})
def _plane_task(x, w, bias, n, group, block, band, layer, plan, columns, column_taps, y, counting):
    """One task of the planes nest: output channels ``block`` of ``group``, rows ``band``, image ``n``.

    ``w`` is the flat weight in its own layout (C_out, C_in/g, KH, KW); ``layer``, ``columns`` as
    in the module docstring; ``column_taps[ow]``: the tap columns ``[first, end)`` whose input column for output column ``ow`` is real; ``plan`` = (first interior column,
    end of the interior columns, first interior row, end of the interior rows, rows per band,
    bands, whether interior rows run by tap blocks: stride and dilation 1 along columns).
    (mults, adds) when counting.
    """
    (_, in_channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
     stride_h, stride_w, pad_top, dilation_h, in_per_group, out_per_group) = layer
    inner_lo, inner_hi, rows_lo, rows_hi, band_rows, _, fused = plan
    co_first = group * out_per_group + block * PLANE_BLOCK
    co_end = min(co_first + PLANE_BLOCK, (group + 1) * out_per_group)
    oh_first = band * band_rows
    oh_end = min(oh_first + band_rows, out_height)
    has_bias = bias.shape[0] > 0
    for co in range(co_first, co_end):
        start = bias[co] if has_bias else 0.0
        y_at = np.uint64(((n * out_channels + co) * out_height + oh_first) * out_width)
        for i in range(np.uint64((oh_end - oh_first) * out_width)):
            y[y_at + i] = start  # unreached outputs keep this
    inner = np.uint64(max(0, inner_hi - inner_lo))
    left_end = inner_lo if inner > 0 else out_width  # border columns: [0, left_end) and [right, OW)
    right = inner_hi if inner > 0 else out_width
    w_row = np.uint64(kernel_w)
    x_step = np.uint64(stride_w)
    row_gap = dilation_h * width
    blocks = stride_w == 1  # blocks of kernel rows need contiguous input rows (see _streams)
    # the fused rows: those all of whose kernel rows are real, a range (see _plane_plan)
    fused_first = max(oh_first, rows_lo)
    fused_rows = np.uint64(max(0, min(oh_end, rows_hi) - fused_first) if fused else 0)
    y_step = np.uint64(out_width)
    x_rows = np.uint64(stride_h * width)
    k_step = np.uint64(row_gap)
    mults = 0
    adds = 0
    # a 1x1 kernel has one tap: blocks of 8 input channels make the products per output row
    channel_blocks = kernel_h == 1 and kernel_w == 1 and fused
    c_gap = np.uint64(height * width)
    ci = 0
    while ci < in_per_group:
        starting = not has_bias and ci == 0  # the first term to reach an output starts its sum
        x_channel = (n * in_channels + group * in_per_group + ci) * height
        if channel_blocks and in_per_group - ci >= 8:
            # only the interior of a 1x1 kernel's output reads real input
            for co in range(co_first, co_end):
                if fused_rows > 0 and inner > 0:
                    xa = np.uint64((x_channel + fused_first * stride_h - pad_top) * width + inner_lo + columns[0, 2])
                    ya = np.uint64(((n * out_channels + co) * out_height + fused_first) * out_width + inner_lo)
                    _block_channels(y, ya, y_step, x, xa, x_rows, c_gap, w, np.uint64(co * in_per_group + ci),
                                    fused_rows, inner, starting)
                    if counting:
                        mults += 8 * np.int64(fused_rows) * inner
                        adds += (7 if starting else 8) * np.int64(fused_rows) * inner
            ci += 8
            continue
        ci += 1
        for co in range(co_first, co_end):
            w_channel = (co * in_per_group + ci - 1) * kernel_h * kernel_w
            y_channel = (n * out_channels + co) * out_height
            if fused_rows > 0:
                # the rows every kernel row of which is real: interior columns by tap blocks
                x_top = (x_channel + fused_first * stride_h - pad_top) * width
                y_top = (y_channel + fused_first) * out_width
                first = starting
                kh = 0
                while kh < kernel_h and inner > 0:
                    tall = kernel_h - kh >= 3
                    kw = 0
                    while kw < kernel_w:
                        wide = kernel_w - kw >= 3
                        xa = np.uint64(x_top + kh * row_gap + inner_lo + columns[kw, 2])
                        wa = np.uint64(w_channel + kh * kernel_w + kw)
                        ya = np.uint64(y_top + inner_lo)
                        if tall and wide:
                            _block_33(y, ya, y_step, x, xa, x_rows, k_step, w, wa, w_row, fused_rows, inner, first)
                        elif tall:
                            _block_31(y, ya, y_step, x, xa, x_rows, k_step, w, wa, w_row, fused_rows, inner, first)
                        elif wide:
                            _block_13(y, ya, y_step, x, xa, x_rows, w, wa, fused_rows, inner, first)
                        else:
                            _block_11(y, ya, y_step, x, xa, x_rows, w, wa, fused_rows, inner, first)
                        if counting:
                            taps = (3 if tall else 1) * (3 if wide else 1)
                            mults += np.int64(fused_rows) * taps * inner
                            adds += np.int64(fused_rows) * (taps - 1 if first else taps) * inner
                        first = False
                        kw += 3 if wide else 1
                    kh += 3 if tall else 1
                ow = 0
                while ow < out_width:  # the border columns: [0, left_end) and [right, OW)
                    if ow == left_end:
                        ow = right
                        if ow >= out_width:
                            break
                    kw0, kw1 = column_taps[ow, 0], column_taps[ow, 1]
                    ow += 1
                    if kw1 == kw0:
                        continue  # no tap of this column lands on real input
                    xa = np.uint64(x_top + ow - 1 + columns[kw0, 2])
                    wa = np.uint64(w_channel + kw0)
                    _border_column(y, np.uint64(y_top + ow - 1), y_step, x, xa, x_rows, k_step, w, wa, w_row,
                                   np.uint64(kernel_h), np.uint64(kw0), np.uint64(kw1), fused_rows, starting)
                    if counting:
                        terms = kernel_h * (kw1 - kw0)
                        mults += np.int64(fused_rows) * terms
                        adds += np.int64(fused_rows) * (terms - 1 if starting else terms)
            for oh in range(oh_first, oh_end):
                if fused_first <= oh < fused_first + np.int64(fused_rows):
                    continue
                # one row, kernel rows of one channel in blocks of up to 3, padded columns
                # skipped tap by tap
                top = oh * stride_h - pad_top
                y_row = (y_channel + oh) * out_width
                kh = max(0, -(top // dilation_h))
                kh_end = min(kernel_h, max(0, -((top - height) // dilation_h)))
                first = starting
                while kh < kh_end:
                    streams = min(3, kh_end - kh) if blocks else 1
                    x_row = (x_channel + top + kh * dilation_h) * width
                    m, a = _pass(streams, y, np.uint64(y_row), x, x_row, np.uint64(row_gap), x_step, w,
                                 w_channel + kh * kernel_w, 1, w_row, columns, first, counting)
                    mults += m
                    adds += a
                    first = False
                    kh += streams
    return mults, adds


@njit(cache=True, nogil=True)
def _plane_tasks(first, last, x, w, bias, layer, plan, columns, column_taps, y, counting):
    """The tasks ``[first, last)`` of :func:`_plane_task`; (mults, adds) as :func:`_pixel_tasks`."""
    out_channels, out_per_group = layer[4], layer[14]
    groups = out_channels // out_per_group
    blocks = (out_per_group + PLANE_BLOCK - 1) // PLANE_BLOCK
    bands = plan[5]
    mults = 0
    adds = 0
    for task in range(first, last):
        n, rest = divmod(np.int64(task), groups * blocks * bands)
        group, rest = divmod(rest, blocks * bands)
        block, band = divmod(rest, bands)
        m, a = _plane_task(x, w, bias, n, group, block, band, layer, plan, columns, column_taps, y, counting)
        mults += m
        adds += a
    return mults, adds


def _plane_plan(g: ConvGeometry, columns: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """The planes nest's ``plan`` tuple and ``column_taps`` table (see :func:`_plane_task`)."""
    inner_lo = int(columns[:, 0].max())
    inner_hi = int(columns[:, 1].min())
    blocks = -(-g.out_channels_per_group // PLANE_BLOCK)
    band_rows = max(2, BAND_ELEMENTS // (min(PLANE_BLOCK, g.out_channels_per_group) * max(1, g.out_width)))
    bands = -(-g.out_height // band_rows)
    # fewer tasks than four per thread: split the rows further so that every core has work
    tasks = g.batch * g.groups * blocks
    wanted = -(-4 * numba.get_num_threads() // tasks)
    if bands < wanted:
        band_rows = max(2, -(-g.out_height // wanted))
        bands = -(-g.out_height // band_rows)
    rows = _axis_ranges(g, 0)
    fused = g.stride[1] == 1 and g.dilation[1] == 1
    plan = (inner_lo, inner_hi, int(rows[:, 0].max()), int(rows[:, 1].min()), band_rows, bands, fused)
    taps = np.zeros((g.out_width, 2), dtype=np.int64)
    for ow in range(g.out_width):
        valid = [kw for kw in range(g.kernel_w) if columns[kw, 0] <= ow < columns[kw, 1]]
        if valid:
            taps[ow] = valid[0], valid[-1] + 1
    return plan, taps


@functools.lru_cache(maxsize=256)
def _column_ranges(g: ConvGeometry) -> np.ndarray:
    """(KW, 3) int64: for each tap column kw, the output columns [lo, hi) it reaches and its offset.

    Remembered per layer (a geometry is immutable and hashable): the loop costs more than a small
    layer's convolution.  The array is shared between calls: read it, never write it (it stays
    writeable so that the compiled nests see one array type).
    """
    stride, dilation, pad_left = g.stride[1], g.dilation[1], g.padding[1][0]
    ranges = np.empty((g.kernel_w, 3), dtype=np.int64)
    for kw in range(g.kernel_w):
        offset = kw * dilation - pad_left
        lo = max(0, -(offset // stride))  # first ow with ow * stride + offset >= 0
        hi = min(g.out_width, max(0, -((offset - g.width) // stride)))  # ... < width
        ranges[kw] = lo, max(lo, hi), offset
    return ranges


def _contiguous(array: np.ndarray) -> tuple[np.ndarray, int]:
    """``array`` C-contiguous, and the bytes copied to make it so (workspace, checked by the caller)."""
    if array.flags.c_contiguous:
        return array, 0
    return np.ascontiguousarray(array), array.nbytes


#: Dense products (an upper bound of those executed, used only to decide) below which the pixels
#: nest runs on the calling thread rather than the task runner's threads.
SMALL_LAYER_MULTS = 4_000_000


#: The loop nests: "planes" vectorises along output rows with a block of output channels per
#: task, by blocks of taps; "pixels" along output channels; "depthwise" (groups == C_in only)
#: runs one plane per task (:mod:`npconv.kernels.direct_depthwise`).
LOOPS = ("planes", "pixels", "depthwise")


def choose_loop(g: ConvGeometry) -> str:
    """The loop nest that runs ``g`` fastest (measured on the benchmark layers, float32).

    Depthwise layers (groups == C_in, any depth multiplier) have their own loops.  When a group
    has at least 16 output channels and the rows are short or strided, or there are few input
    channels (the seed and stem layers), vectorising over output channels (pixels) is fastest.
    Otherwise planes, whose blocks of taps (of input channels, for a 1x1 kernel) make the most
    products per load and store of an output row (resnet 3x3, large 7x7, pointwise 1x1).
    """
    if g.groups == g.in_channels:
        return "depthwise"
    short_or_strided = g.out_width < 32 or g.stride[1] > 1 or g.in_channels_per_group < CHANNEL_BLOCK
    if g.out_channels_per_group >= 16 and short_or_strided:
        return "pixels"
    return "planes"


def _check_out(out: np.ndarray, g: ConvGeometry, dtype: np.dtype) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise ConvArgumentError("out", "a NumPy array", type(out).__name__)
    if out.shape != g.output_shape or out.dtype != dtype:
        raise ConvArgumentError("out", f"an array of shape {g.output_shape} and dtype {dtype}",
                                f"shape {out.shape} and dtype {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ConvArgumentError("out", "a C-contiguous, writable array", "a non-contiguous or read-only one")
    return out


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    geometry: ConvGeometry,
    *,
    convention: str = "effective",
    count: bool = False,
    workspace_limit: int,
    loop: str | None = None,
    out: np.ndarray | None = None,
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
    workspace_limit : bytes that contiguous copies of the operands may take
    loop : one of :data:`LOOPS` to force a loop nest (tests; ``"depthwise"`` needs
        groups == C_in); default :func:`choose_loop`
    out : (N, C_out, OH, OW) C-contiguous writable array of ``x.dtype`` to write the result
        into (it is returned); default a new array

    Returns
    -------
    y : ``out``, or a new (N, C_out, OH, OW) array of ``x.dtype``
    counts : :class:`~npconv.counts.Counts` (``padded_mults`` is 0), or None
    """
    g = geometry
    loop = choose_loop(g) if loop is None else loop
    if loop not in LOOPS or (loop == "depthwise" and g.groups != g.in_channels):
        raise ValueError(f"loop: expected one of {LOOPS} (depthwise only where groups == in_channels), got {loop!r}")
    out = None if out is None else _check_out(out, g, x.dtype)
    if loop == "depthwise":
        return direct_depthwise.conv2d(x, weight, bias, g, count=count, workspace_limit=workspace_limit, out=out)
    y = np.empty(g.output_shape, dtype=x.dtype) if out is None else out
    if loop == "pixels":
        split = weight.reshape(g.groups, g.out_channels_per_group, *weight.shape[1:])
        w = np.moveaxis(split, 1, 4)  # (groups, C_in/g, KH, KW, C_out/g)
    else:
        w = weight  # (C_out, C_in/g, KH, KW): a (co, ci) pair's taps are adjacent
    # both copies are alive at once: the workspace limit bounds their sum, checked before either is made
    weight_name = "the weight" if loop == "planes" else "the transposed weight"
    copies = {name: a.nbytes for name, a in (("x", x), (weight_name, w)) if not a.flags.c_contiguous}
    if copies:
        ensure_workspace_fits(sum(copies.values()), workspace_limit,
                              f"contiguous copies of {' and '.join(copies)} ({sum(copies.values()):,} bytes)")
    x, x_copied = _contiguous(x)
    w, w_copied = _contiguous(w)
    bias = np.zeros(0, dtype=x.dtype) if bias is None else np.ascontiguousarray(bias)
    if y.size == 0:
        tallies = (0, 0)
    else:
        layer = (g.batch, g.in_channels, g.height, g.width, g.out_channels, g.out_height, g.out_width,
                 g.kernel_h, g.kernel_w, g.stride[0], g.stride[1], g.padding[0][0], g.dilation[0],
                 g.in_channels_per_group, g.out_channels_per_group)
        columns = _column_ranges(g)
        arrays = (read_only(x), read_only(w), read_only(bias))
        if loop == "planes":
            plan, column_taps = _plane_plan(g, columns)
            blocks = -(-g.out_channels_per_group // PLANE_BLOCK)
            tallies = run_tasks(_plane_tasks, g.batch * g.groups * blocks * plan[5], *arrays, layer, plan,
                                 columns, column_taps, y.reshape(-1), count)
        else:
            tasks = g.batch * g.out_height * g.groups
            if y.size * g.in_channels_per_group * g.kernel_h * g.kernel_w < SMALL_LAYER_MULTS:
                # a small layer (the seed's 1.9M products) runs on the calling thread: handing
                # tasks to the pool and waiting for them costs more than the work saved
                tallies = _pixel_tasks(0, tasks, *arrays, layer, columns, y.reshape(-1), count)
            else:
                tallies = run_tasks(_pixel_tasks, tasks, *arrays, layer, columns, y.reshape(-1), count)
    if not count:
        return y, None
    mults, adds = (int(t) for t in tallies)
    return y, Counts(mults, adds, "effective", NAME, 0, x_copied + w_copied)


# ---------------------------------------------------------------------- backward
#
# The gradients as gathers: every gradient element is summed by exactly one parallel task, so
# tasks never write to the same memory and need no atomics or private copies.  Taps on the
# padding are skipped, as in forward: this is the effective count.  Two loop nests per gradient,
# as in forward (choose_backward_loops):
#
# * Input gradient, "rows": one task per input plane (n, c), row by row.  The taps that reach
#   row ih are the pairs (kernel row kh, output channel co) with
#   oh = (ih + pad_top - kh * dilation_h) / stride_h a whole output row; for a tap column kw the
#   row's columns ow * stride_w + offset[kw] get grad_y[n, co, oh, ow] * w[co, ci, kh, kw] for
#   the outputs [lo, hi) whose column is real.  Pairs are taken in blocks of 8, 3 or 1
#   ("streams", as in forward): a block's products are summed before the row is loaded and
#   stored.  The row's first block is the first to reach each position from the first tap
#   column on (npconv.geometry.first_touch_starts): there it assigns, elsewhere it adds, so T
#   terms cost T - 1 additions.
# * Input gradient, "pixels": one task per (image, group), pixel by pixel, vectorised over the
#   group's input channels: each reaching tap and output channel adds grad_y times C_in/g
#   contiguous weights to the pixel's sums, 4 output channels at a time after the first term.
# * Weight gradient, "rows": one task per weight row (co, ci): for each tap (kh, kw) the dot
#   products, over the images and the output rows whose input row is real, of a grad_y row
#   segment and the input row it was multiplied with.  Dots are reductions: they are compiled
#   with reassociation allowed (LLVM then vectorises them), which changes the order of the sum
#   (results agree with the reference to rounding), not what is summed.
# * Weight gradient, "pixels": one task per (input channel, kernel row), vectorised over the
#   group's output channels: each output pixel multiplies one input value by C_out/g contiguous
#   values of grad_y transposed to channels-last, 4 output pixels at a time after the first.
# * Bias gradient: NumPy's sum of grad_y per output channel.
#
# One compiled entry point per gradient (the loop nest a flag), run on Numba's thread count of
# threads (run_tasks), with a ``counting`` flag tested outside the innermost loops; the arrays are flat, C-contiguous and writable, so
# each entry point compiles once per dtype.  Blocks of streams and the first term's assignment
# have one variant each, to keep compilation short.


@njit(cache=True, inline="always")
def _gather_8(dx, dx_at, gy, g_at, g_gap, w, w_at, w_gap, length, begin):
    t0, t1, t2, t3 = w[w_at], w[w_at + w_gap], w[w_at + 2 * w_gap], w[w_at + 3 * w_gap]
    t4, t5, t6, t7 = w[w_at + 4 * w_gap], w[w_at + 5 * w_gap], w[w_at + 6 * w_gap], w[w_at + 7 * w_gap]
    g1 = g_at + g_gap
    g2 = g1 + g_gap
    g3 = g2 + g_gap
    g4 = g3 + g_gap
    g5 = g4 + g_gap
    g6 = g5 + g_gap
    g7 = g6 + g_gap
    for i in range(length):
        total = (t0 * gy[g_at + i] + t1 * gy[g1 + i] + t2 * gy[g2 + i] + t3 * gy[g3 + i]
                 + t4 * gy[g4 + i] + t5 * gy[g5 + i] + t6 * gy[g6 + i] + t7 * gy[g7 + i])
        if begin:
            dx[dx_at + i] = total
        else:
            dx[dx_at + i] += total


@njit(cache=True, inline="always")
def _gather_3(dx, dx_at, gy, g_at, g_gap, w, w_at, w_gap, length, begin):
    t0, t1, t2 = w[w_at], w[w_at + w_gap], w[w_at + 2 * w_gap]
    g1 = g_at + g_gap
    g2 = g1 + g_gap
    for i in range(length):
        total = t0 * gy[g_at + i] + t1 * gy[g1 + i] + t2 * gy[g2 + i]
        if begin:
            dx[dx_at + i] = total
        else:
            dx[dx_at + i] += total


@njit(cache=True, inline="always")
def _gather_1(dx, dx_at, dx_step, gy, g_at, w, w_at, length, begin):
    t0 = w[w_at]
    if dx_step == 1:
        for i in range(length):
            if begin:
                dx[dx_at + i] = t0 * gy[g_at + i]
            else:
                dx[dx_at + i] += t0 * gy[g_at + i]
    else:
        for i in range(length):
            if begin:
                dx[dx_at + i * dx_step] = t0 * gy[g_at + i]
            else:
                dx[dx_at + i * dx_step] += t0 * gy[g_at + i]


@njit(cache=True, inline="always")
def _gather(streams, dx, dx_at, dx_step, gy, g_at, g_gap, w, w_at, w_gap, length, begin):
    # Blocks of streams run at stride 1 only (the caller sees to it), where their loop reads and
    # writes contiguous memory; a strided row is added one stream at a time.
    if streams == 8:
        _gather_8(dx, dx_at, gy, g_at, g_gap, w, w_at, w_gap, length, begin)
    elif streams == 3:
        _gather_3(dx, dx_at, gy, g_at, g_gap, w, w_at, w_gap, length, begin)
    else:
        _gather_1(dx, dx_at, dx_step, gy, g_at, w, w_at, length, begin)


@njit(cache=True, fastmath={"contract"})
def _input_gradient_plane(gy, w, n, c, layer, reach_h, kh_step, columns, starts_w, dx, counting):
    """Compute ``dx[n, c]`` row by row (flat arrays); return its (mults, adds) when counting.

    ``layer`` as in the module docstring; ``reach_h[ih]`` = (first kernel row reaching input row ``ih``,
    how many do), the reaching rows being ``first, first + kh_step, ...``; ``columns[kw]`` =
    (lo, hi, offset): the output columns ``[lo, hi)`` whose input column
    ``ow * stride_w + offset`` for tap column ``kw`` is real; ``starts_w[kw]``: the first output
    column from which on tap column ``kw`` is the first to reach its input column.  A block of
    streams is 8, 3 or 1 output channels at one kernel row or, when a group has fewer than 3
    output channels (depthwise), kernel rows of one output channel, from the last (lowest output
    row) up; at stride 1 only, one stream at a time otherwise.
    """
    (_, in_channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
     stride_h, stride_w, pad_top, dilation_h, in_per_group, out_per_group) = layer
    oh_step = kh_step * dilation_h // stride_h  # output rows from one reaching kernel row to the next
    group = c // in_per_group
    ci = c - group * in_per_group
    plane = out_height * out_width
    by_channel = out_per_group >= 3
    if by_channel:  # blocks of output channels at one kernel row
        g_gap, w_gap = plane, in_per_group * kernel_h * kernel_w
    else:  # blocks of kernel rows of one output channel, last first so that grad_y rows ascend
        g_gap, w_gap = oh_step * out_width, -kh_step * kernel_w
    step = np.uint64(stride_w)
    blocks = stride_w == 1
    mults = 0
    adds = 0
    for ih in range(height):
        row = np.uint64(((n * in_channels + c) * height + ih) * width)
        for i in range(np.uint64(width)):
            dx[row + i] = 0.0  # a column no tap reaches keeps 0
        kh_first, kh_rows = reach_h[ih, 0], reach_h[ih, 1]
        outer, inner = (kh_rows, out_per_group) if by_channel else (out_per_group, kh_rows)
        first = True  # the row's first block: it is the first to reach each column it reaches
        for a in range(outer):
            b = 0
            while b < inner:
                streams = 1
                if blocks:
                    streams = 8 if inner - b >= 8 else (3 if inner - b >= 3 else 1)
                if by_channel:
                    kh, co = kh_first + a * kh_step, group * out_per_group + b
                else:
                    kh, co = kh_first + (kh_rows - 1 - b) * kh_step, group * out_per_group + a
                oh = (ih + pad_top - kh * dilation_h) // stride_h
                g_row = np.uint64((co * out_height + oh) * out_width + n * out_channels * plane)
                w_row = ((co * in_per_group + ci) * kernel_h + kh) * kernel_w
                for kw in range(kernel_w):
                    lo, hi, offset = columns[kw, 0], columns[kw, 1], columns[kw, 2]
                    if hi == lo:
                        continue
                    # the first block assigns where this tap column is the first to reach, adds elsewhere
                    split = min(hi, max(lo, starts_w[kw])) if first else hi
                    dx_at = row + np.uint64(offset + lo * stride_w)
                    if split > lo:
                        _gather(streams, dx, dx_at, step, gy, g_row + np.uint64(lo), np.uint64(g_gap),
                                w, w_row + kw, w_gap, np.uint64(split - lo), False)
                    if hi > split:
                        _gather(streams, dx, dx_at + np.uint64(split - lo) * step, step, gy,
                                g_row + np.uint64(split), np.uint64(g_gap), w, w_row + kw, w_gap,
                                np.uint64(hi - split), True)
                    if counting:
                        mults += streams * (hi - lo)
                        adds += streams * (hi - lo) - (hi - split)
                first = False
                b += streams
    return mults, adds


@njit(cache=True, fastmath={"contract"})
def _input_gradient_pixels(gy, w_t, n, group, layer, reach_h, kh_step, reach_w, acc, dx, counting):
    """Compute ``dx[n, group's channels]`` pixel by pixel, vectorised over input channels.

    For each input pixel, each tap ``(kh, kw)`` that reaches it from output ``(oh, ow)`` and
    each output channel ``co`` of the group multiplies ``grad_y[n, co, oh, ow]`` by the group's
    ``C_in/g`` weights of that tap and channel, contiguous in ``w_t`` -- the flat weight
    transposed to (groups, KH, KW, C_out/g, C_in/g) -- and sums into ``acc`` (C_in/g values),
    which is then stored into the NCHW gradient.  The first term starts the sums; after it, 4
    output channels' products are summed before ``acc`` is loaded and stored.  ``reach_h`` and
    ``kh_step`` as in :func:`_input_gradient_plane`; ``reach_w[iw, kw]``: the output column
    whose tap column ``kw`` reads input column ``iw``, or -1.
    """
    (_, in_channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
     stride_h, _, pad_top, dilation_h, in_per_group, out_per_group) = layer
    ins = np.uint64(in_per_group)
    plane = np.uint64(height * width)
    out_plane = out_height * out_width
    mults = 0
    adds = 0
    for ih in range(height):
        kh_first, kh_rows = reach_h[ih, 0], reach_h[ih, 1]
        dx_pixel = np.uint64(((n * in_channels + group * in_per_group) * height + ih) * width)
        for iw in range(width):
            starting = True
            for j in range(kh_rows):
                kh = kh_first + j * kh_step
                oh = (ih + pad_top - kh * dilation_h) // stride_h
                g_row = ((n * out_channels + group * out_per_group) * out_height + oh) * out_width
                for kw in range(kernel_w):
                    ow = reach_w[iw, kw]
                    if ow < 0:
                        continue
                    w_at = np.uint64(((group * kernel_h + kh) * kernel_w + kw) * out_per_group) * ins
                    g_at = g_row + ow
                    co = 0
                    while co < out_per_group:
                        if starting:  # the pixel's first term starts its sums
                            streams = 1
                            v0 = gy[g_at]
                            for i in range(ins):
                                acc[i] = v0 * w_t[w_at + i]
                        elif out_per_group - co >= 4:
                            streams = 4
                            v0, v1 = gy[g_at], gy[g_at + out_plane]
                            v2, v3 = gy[g_at + 2 * out_plane], gy[g_at + 3 * out_plane]
                            w1 = w_at + ins
                            w2 = w1 + ins
                            w3 = w2 + ins
                            for i in range(ins):
                                # the sum before acc is read: LLVM vectorises that order
                                total = v0 * w_t[w_at + i] + v1 * w_t[w1 + i] + v2 * w_t[w2 + i] + v3 * w_t[w3 + i]
                                acc[i] += total
                        else:
                            streams = 1
                            v0 = gy[g_at]
                            for i in range(ins):
                                acc[i] += v0 * w_t[w_at + i]
                        if counting:
                            mults += streams * in_per_group
                            adds += (streams - 1 if starting else streams) * in_per_group
                        starting = False
                        w_at += np.uint64(streams) * ins
                        g_at += streams * out_plane
                        co += streams
            if starting:
                for i in range(ins):
                    acc[i] = 0.0  # no tap reaches this pixel
            for i in range(ins):
                dx[dx_pixel + np.uint64(iw) + i * plane] = acc[i]
    return mults, adds


@njit(cache=True, nogil=True)
def _input_gradient(first, last, gy, w, layer, reach_h, kh_step, columns, starts_w, reach_w, dx, counting,
                    pixels):
    """Tasks ``first .. last - 1`` of the input gradient: one per plane (n, c) for the rows nest, per
    (image, group) for the pixels nest (``pixels``; ``w`` then transposed as
    :func:`_input_gradient_pixels` reads it); the summed (mults, adds) when counting, else zeros."""
    in_channels, in_per_group = layer[1], layer[13]
    groups = in_channels // in_per_group
    mults = 0
    adds = 0
    for task in range(first, last):
        if pixels:
            n, group = divmod(np.int64(task), groups)
            acc = np.empty(in_per_group, dtype=dx.dtype)
            m, a = _input_gradient_pixels(gy, w, n, group, layer, reach_h, kh_step, reach_w, acc, dx, counting)
        else:
            n, c = divmod(np.int64(task), in_channels)
            m, a = _input_gradient_plane(gy, w, n, c, layer, reach_h, kh_step, columns, starts_w, dx, counting)
        mults += m
        adds += a
    return mults, adds


@njit(cache=True, fastmath={"contract", "reassoc"})
def _weight_gradient_dots(gy, x, co, ci, layer, rows, columns, dw, counting):
    """``dw[co, ci, :, :]``: for each tap (kh, kw), the dot products, over the images and the output
    rows whose input row is real, of a grad_y row segment and the input row it multiplied;
    (mults, adds) when counting.  ``rows[kh]`` = (lo, hi): the output rows whose input row for
    kernel row ``kh`` is real; ``columns`` as in :func:`_input_gradient_plane`."""
    (batch, in_channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
     stride_h, stride_w, pad_top, dilation_h, in_per_group, out_per_group) = layer
    c = (co // out_per_group) * in_per_group + ci
    step = np.uint64(stride_w)
    mults = 0
    adds = 0
    for kh in range(kernel_h):
        oh_lo, oh_hi = rows[kh, 0], rows[kh, 1]
        for kw in range(kernel_w):
            lo, hi, offset = columns[kw, 0], columns[kw, 1], columns[kw, 2]
            length = np.uint64(hi - lo)
            total = 0.0  # a weight whose tap never lands on real input has gradient 0
            started = False
            if batch > 0 and oh_hi > oh_lo and length > 0:
                for n in range(batch):
                    for oh in range(oh_lo, oh_hi):
                        g_at = np.uint64(((n * out_channels + co) * out_height + oh) * out_width + lo)
                        ih = oh * stride_h - pad_top + kh * dilation_h
                        x_at = np.uint64(((n * in_channels + c) * height + ih) * width + offset + lo * stride_w)
                        dot = gy[g_at] * x[x_at]  # the first product starts the dot
                        for i in range(np.uint64(1), length):
                            dot += gy[g_at + i] * x[x_at + i * step]
                        if started:
                            total += dot
                        else:
                            total = dot
                            started = True
                if counting:
                    terms = batch * (oh_hi - oh_lo) * (hi - lo)
                    mults += terms
                    adds += terms - 1
            dw[((co * in_per_group + ci) * kernel_h + kh) * kernel_w + kw] = total
    return mults, adds


@njit(cache=True, fastmath={"contract"})
def _weight_gradient_pixels(gy_t, x, c, kh, layer, rows, columns, acc, begun, dw, counting):
    """``dw[group's co, ci, kh, :]``, vectorised over output channels; (mults, adds) when counting.

    For every image and output row whose input row is real for ``kh``, every tap column ``kw``
    and output column ``ow`` on real input multiplies ``x[n, c, ih, iw]`` by the group's
    ``C_out/g`` values of ``grad_y`` at that output pixel, contiguous in ``gy_t`` -- grad_y
    transposed to (N, OH, OW, C_out) -- into the sums ``acc[kw, :]``, stored at the end.  The
    first term starts each sum; after it, 4 output pixels' products are summed before ``acc`` is
    loaded and stored.  ``rows``, ``columns`` as in :func:`_weight_gradient_dots`.
    """
    (batch, in_channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
     stride_h, stride_w, pad_top, dilation_h, in_per_group, out_per_group) = layer
    outs = np.uint64(out_per_group)
    group = c // in_per_group
    ci = c - group * in_per_group
    for kw in range(kernel_w):
        begun[kw] = False
        for j in range(outs):
            acc[np.uint64(kw) * outs + j] = 0.0  # a tap never on real input has gradient 0
    mults = 0
    adds = 0
    for n in range(batch):
        for oh in range(rows[kh, 0], rows[kh, 1]):
            ih = oh * stride_h - pad_top + kh * dilation_h
            x_row = ((n * in_channels + c) * height + ih) * width
            g_row = np.uint64((n * out_height + oh) * out_width * out_channels + group * out_per_group)
            for kw in range(kernel_w):
                lo, hi, offset = columns[kw, 0], columns[kw, 1], columns[kw, 2]
                sums = np.uint64(kw) * outs
                ow = lo
                while ow < hi:
                    x_at = x_row + ow * stride_w + offset
                    g_at = g_row + np.uint64(ow * out_channels)
                    if not begun[kw]:  # the first term starts the sums
                        streams = 1
                        v0 = x[x_at]
                        for j in range(outs):
                            acc[sums + j] = v0 * gy_t[g_at + j]
                    elif hi - ow >= 4:
                        streams = 4
                        v0, v1 = x[x_at], x[x_at + stride_w]
                        v2, v3 = x[x_at + 2 * stride_w], x[x_at + 3 * stride_w]
                        g1 = g_at + np.uint64(out_channels)
                        g2 = g1 + np.uint64(out_channels)
                        g3 = g2 + np.uint64(out_channels)
                        for j in range(outs):
                            # the sum before acc is read: LLVM vectorises that order
                            total = v0 * gy_t[g_at + j] + v1 * gy_t[g1 + j] + v2 * gy_t[g2 + j] + v3 * gy_t[g3 + j]
                            acc[sums + j] += total
                    else:
                        streams = 1
                        v0 = x[x_at]
                        for j in range(outs):
                            acc[sums + j] += v0 * gy_t[g_at + j]
                    if counting:
                        mults += streams * out_per_group
                        adds += (streams if begun[kw] else streams - 1) * out_per_group
                    begun[kw] = True
                    ow += streams
    for kw in range(kernel_w):
        for j in range(out_per_group):
            dw[(((group * out_per_group + j) * in_per_group + ci) * kernel_h + kh) * kernel_w + kw] = \
                acc[kw * out_per_group + j]
    return mults, adds


@njit(cache=True, nogil=True)
def _weight_gradient(first, last, gy, gy_t, x, layer, rows, columns, dw, counting, pixels):
    """Tasks ``first .. last - 1`` of the weight gradient: one per weight row (co, ci) for the dots
    nest, per (input channel, kernel row) for the pixels nest (``pixels``, reading ``gy_t``); the
    summed (mults, adds) when counting, else zeros."""
    kernel_h, kernel_w, in_per_group, out_per_group = layer[7], layer[8], layer[13], layer[14]
    mults = 0
    adds = 0
    for task in range(first, last):
        if pixels:
            c, kh = divmod(np.int64(task), kernel_h)
            acc = np.empty(kernel_w * out_per_group, dtype=dw.dtype)
            begun = np.empty(kernel_w, dtype=np.bool_)
            m, a = _weight_gradient_pixels(gy_t, x, c, kh, layer, rows, columns, acc, begun, dw, counting)
        else:
            co, ci = divmod(np.int64(task), in_per_group)
            m, a = _weight_gradient_dots(gy, x, co, ci, layer, rows, columns, dw, counting)
        mults += m
        adds += a
    return mults, adds


def _kernel_ready(array: np.ndarray, name: str, limit: int) -> tuple[np.ndarray, int]:
    """``array`` flat, C-contiguous and writable (one compiled variant), and the bytes copied."""
    if array.flags.c_contiguous and array.flags.writeable:
        return array.reshape(-1), 0
    ensure_workspace_fits(array.nbytes, limit, f"a contiguous copy of {name}, {array.nbytes:,} bytes,")
    return np.array(array, order="C").reshape(-1), array.nbytes


def _axis_ranges(g: ConvGeometry, axis: int) -> np.ndarray:
    """(K, 3) int64 along ``axis``: for each tap, the outputs [lo, hi) it reaches on real input and
    its offset ``k * dilation - pad_before``."""
    size, kernel = (g.height, g.kernel_h) if axis == 0 else (g.width, g.kernel_w)
    out = g.out_height if axis == 0 else g.out_width
    stride, dilation, pad = g.stride[axis], g.dilation[axis], g.padding[axis][0]
    ranges = np.empty((kernel, 3), dtype=np.int64)
    for k in range(kernel):
        ranges[k] = (*tap_output_range(size, k, stride, pad, dilation, out), k * dilation - pad)
    return ranges


def _reaching_taps(g: ConvGeometry, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Which taps reach each input position along ``axis``, from which output.

    Returns ``outputs`` (size, K) int64: the output whose tap ``k`` reads input position ``p``,
    or -1; and ``first_count`` (size, 2): the first reaching tap and how many reach -- an
    arithmetic progression of step ``stride / gcd(stride, dilation)``, since a tap reaches ``p``
    when ``p + pad_before - k * dilation`` is a multiple of the stride (periodic in ``k``) and
    its quotient an output (an interval of ``k``).
    """
    size, kernel = (g.height, g.kernel_h) if axis == 0 else (g.width, g.kernel_w)
    out = g.out_height if axis == 0 else g.out_width
    stride, dilation, pad = g.stride[axis], g.dilation[axis], g.padding[axis][0]
    reach = np.arange(size)[:, None] + pad - np.arange(kernel)[None, :] * dilation
    reaching = (reach >= 0) & (reach % stride == 0) & (reach // stride < out)
    outputs = np.where(reaching, reach // stride, -1).astype(np.int64)
    first_count = np.stack([np.argmax(reaching, axis=1), reaching.sum(axis=1)], axis=1).astype(np.int64)
    return outputs, first_count


def choose_backward_loops(g: ConvGeometry) -> tuple[str, str]:
    """The loop nests of the input and the weight gradient: ``"rows"`` or ``"pixels"``.

    Pixels vectorise over a group's channels -- input channels for the input gradient, output
    channels for the weight gradient -- whatever the rows' length and stride, and need 8 of
    them; they were faster on every benchmark layer that has them (float32, one thread: resnet
    3x3 input gradient 46 vs 122 ms, weight 67 vs 179 ms; the small network's 32-channel 4x4
    layer 0.9 vs 7.9 ms and 2.3 vs 17 ms).  Rows vectorise along image rows, for the layers
    with fewer channels per group (depthwise, the stem and seed layers' 3 input channels).
    """
    input_loop = "pixels" if g.in_channels_per_group >= CHANNEL_BLOCK else "rows"
    weight_loop = "pixels" if g.out_channels_per_group >= CHANNEL_BLOCK else "rows"
    return input_loop, weight_loop


def conv2d_backward(
    grad_y: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    geometry: ConvGeometry,
    *,
    needs: frozenset[str],
    convention: str = "effective",
    count: bool = False,
    workspace_limit: int,
    loops: tuple[str, str] | None = None,
    out: Grads | None = None,
) -> tuple[Grads, GradCounts | None]:
    """The gradients of a validated layer with the compiled gathers (see the section comment).

    Parameters
    ----------
    grad_y : (N, C_out, OH, OW) float32 or float64 array, any memory layout
    x : (N, C_in, H, W) array of ``grad_y``'s dtype (read only for the weight gradient)
    weight : (C_out, C_in / groups, KH, KW) array (read only for the input gradient)
    geometry, needs, count : see :mod:`npconv.kernels`
    convention : ``"effective"`` (padded taps are skipped)
    workspace_limit : bytes that contiguous and transposed copies of the operands may take
    loops : ``(input loop, weight loop)``, each ``"rows"`` or ``"pixels"``, to force the loop
        nests (tests); default :func:`choose_backward_loops`
    out : checked C-contiguous arrays to write the gradients into (``None`` entries: allocated), or None

    Returns
    -------
    grads : :class:`~npconv.gradients.Grads` of ``grad_y``'s dtype
    counts : :class:`~npconv.gradients.GradCounts`, or None when ``count`` is false
    """
    g = geometry
    want_input, want_weight = "input" in needs, "weight" in needs
    want_bias = "bias" in needs and g.bias
    dtype = grad_y.dtype
    out = Grads(None, None, None) if out is None else out
    layer = (g.batch, g.in_channels, g.height, g.width, g.out_channels, g.out_height, g.out_width,
             g.kernel_h, g.kernel_w, g.stride[0], g.stride[1], g.padding[0][0], g.dilation[0],
             g.in_channels_per_group, g.out_channels_per_group)
    input_loop, weight_loop = choose_backward_loops(g) if loops is None else loops
    want_pixels = (want_input and input_loop == "pixels", want_weight and weight_loop == "pixels")
    # every copy is checked before the first is made
    copies = [(grad_y, "grad_y", True), (weight, "weight", want_input and not want_pixels[0]),
              (x, "x", want_weight)]
    needed = sum(a.nbytes for a, _, used in copies if used and not (a.flags.c_contiguous and a.flags.writeable))
    needed += weight.nbytes * want_pixels[0] + grad_y.nbytes * want_pixels[1]  # the transposed copies
    ensure_workspace_fits(needed, workspace_limit,
                          f"contiguous and transposed copies of the operands, {needed:,} bytes,")
    gy, gy_copied = _kernel_ready(grad_y, "grad_y", workspace_limit)
    columns = _axis_ranges(g, 1)
    grad_x = grad_w = grad_b = None
    counts: dict[str, Counts] = {}
    if want_input:
        grad_x = np.empty(g.input_shape, dtype=dtype) if out.input is None else out.input
        if want_pixels[0]:
            split = weight.reshape(g.groups, g.out_channels_per_group, g.in_channels_per_group, g.kernel_h, g.kernel_w)
            w = np.ascontiguousarray(split.transpose(0, 3, 4, 1, 2)).reshape(-1)  # (groups, KH, KW, C_out/g, C_in/g)
            w_copied = weight.nbytes
        else:
            w, w_copied = _kernel_ready(weight, "weight", workspace_limit)
        tallies = (0, 0)
        if grad_x.size:
            _, reach_h = _reaching_taps(g, 0)
            reach_w, _ = _reaching_taps(g, 1)
            kh_step = g.stride[0] // math.gcd(g.stride[0], g.dilation[0])
            starts_w = np.array(first_touch_starts(g.out_width, g.kernel_w, g.stride[1], g.dilation[1]), np.int64)
            tasks = g.batch * (g.groups if want_pixels[0] else g.in_channels)
            tallies = run_tasks(_input_gradient, tasks, gy, w, layer, reach_h, kh_step, columns, starts_w,
                                 reach_w, grad_x.reshape(-1), count, want_pixels[0])
        counts["input"] = Counts(int(tallies[0]), int(tallies[1]), "effective", NAME, 0, gy_copied + w_copied)
    if want_weight:
        xs, x_copied = _kernel_ready(x, "x", workspace_limit)
        grad_w = np.empty(g.weight_shape, dtype=dtype) if out.weight is None else out.weight
        rows = _axis_ranges(g, 0)[:, :2].copy()
        gy_t = gy
        if want_pixels[1]:
            gy_t = np.ascontiguousarray(gy.reshape(g.output_shape).transpose(0, 2, 3, 1)).reshape(-1)
        tasks = g.in_channels * g.kernel_h if want_pixels[1] else g.out_channels * g.in_channels_per_group
        tallies = run_tasks(_weight_gradient, tasks, gy, gy_t, xs, layer, rows, columns, grad_w.reshape(-1), count,
                             want_pixels[1])
        copied = (gy_t.nbytes if want_pixels[1] else gy_copied) + x_copied
        counts["weight"] = Counts(int(tallies[0]), int(tallies[1]), "effective", NAME, 0, copied)
    if want_bias:
        # a sum per output channel, by NumPy: a reduction of N x OH x OW terms into each of C_out
        # sums, counted from the shape reduced (compiling a loop for it would cost more than it runs)
        grad_b = gy.reshape(g.output_shape).sum(axis=(0, 2, 3), out=out.bias)
        terms = g.batch * g.out_height * g.out_width
        counts["bias"] = Counts(0, g.out_channels * (terms - 1) if terms else 0, "effective", NAME, 0, gy_copied)
    grads = Grads(grad_x, grad_w, grad_b)
    if not count:
        return grads, None
    return grads, GradCounts(counts.get("input"), counts.get("weight"), counts.get("bias"), "effective", NAME)
