"""Direct kernel: the reference loops compiled with Numba, parallel and vectorised.

The same cross-correlation as :mod:`npconv.kernels.reference`, with the loops
rearranged for speed: a tap that falls on the padding is *skipped*, never
multiplied, and no padded copy of the input is made -- so this kernel
executes the **effective** count.

Loop order.  One parallel task computes one output row ``y[n, co, oh, :]``
(``N x OH x C_out`` tasks keep both cores busy even for ``N = 1``; the output
channel varies fastest, so neighbouring tasks read the same input rows).  The
kernel rows ``kh`` whose input row exists form a contiguous range, and for
each tap column ``kw`` the output columns whose input column exists form a
range ``[lo, hi)`` computed once per call.  The innermost loop runs along
that range of the output row::

    y[n, co, oh, lo:hi] += sum over a block of input rows r of  w_r * x_r[lo*sw + off : hi*sw + off : sw]

where the block ("streams") is 8 input channels at one ``(kh, kw)``, or, for
the channels left over (a depthwise layer has one per group), up to 3 kernel
rows of one channel.  Summing a block before touching the output row loads
and stores the row once per block instead of once per product, which is
what bounds a direct kernel's speed; at stride 1 the loop reads contiguous
memory, has no bounds checks or branches, and LLVM vectorises it (with FMA:
``fastmath`` is limited to contraction, so NaN and inf still propagate).
Products are summed in a different order than the reference's, so results
agree with it to rounding, not bit for bit.

Counting.  Each loop nest has one compiled entry point with a ``counting``
flag.  With the flag on, it tallies, where each innermost loop runs, the
multiplications that loop executes (its trip count times the products per
element) and the additions; with it off (the fast path) the tallies are
skipped -- the flag is tested once per vector loop, not per product, so the
fast path does not pay for counting, and the two modes cannot compute
different outputs because they are the same code.  Summing ``T`` terms
takes ``T - 1`` additions (see :mod:`npconv.counts`): without a bias, the
first term or block that reaches an output *starts* its sum (an assignment,
no addition), and the kernel executes exactly that.  The tallies are
per-task partial sums that Numba's ``prange`` reduction combines, so they
do not depend on the thread count.

Two loop nests.  The row loop above vectorises along output rows; when rows
are short or strided and a group has at least 16 output channels (the seed
and stem layers), :func:`_pixels` vectorises along output channels instead
(:func:`choose_loop`).

Compilation happens on first use of ``method="direct"`` (this module is
imported only then) and is cached on disk (``cache=True``), per dtype;
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
    # Blocks of streams run at stride 1 only (see _row), where a contiguous
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


@njit(cache=True, inline="always")
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
    y_row = np.uint64(((n * out_channels + co) * out_height + oh) * out_width)
    w_kw = in_per_group  # weight step from one kw to the next, and kh: kernel_w * in_per_group
    mults = 0
    adds = 0

    has_bias = bias.shape[0] > 0
    start = bias[co] if has_bias else 0.0
    for i in range(np.uint64(out_width)):
        y[y_row + i] = start  # unreached outputs keep this
    starting = not has_bias  # the first block that reaches an output starts its sum

    # The kernel rows that land inside the image: a contiguous range of kh.
    top = oh * stride_h - pad_top
    kh_first = max(0, -(top // dilation_h))
    kh_end = min(kernel_h, max(0, -((top - height) // dilation_h)))
    x_step = np.uint64(stride_w)
    blocks = stride_w == 1  # blocks of streams need contiguous input rows (see _streams)
    c = 0
    while c < in_per_group:
        x_channel = (n * in_channels + first_channel + c) * height
        wide = blocks and in_per_group - c >= CHANNEL_BLOCK
        kh = kh_first
        while kh < kh_end:
            if wide:  # 8 channels at a time, one kernel row after another
                streams, x_gap, w_step = CHANNEL_BLOCK, height * width, 1
            else:  # one channel, up to 3 kernel rows at a time (3x3 kernels are the common case)
                streams = min(3, kh_end - kh) if blocks else 1
                x_gap, w_step = dilation_h * width, kernel_w * in_per_group
            x_row = (x_channel + top + kh * dilation_h) * width
            w_tap = (co * kernel_h + kh) * kernel_w * in_per_group + c
            m, a = _pass(streams, y, y_row, x, x_row, np.uint64(x_gap), x_step, w, w_tap, w_kw,
                         np.uint64(w_step), columns, starting, counting)
            mults += m
            adds += a
            starting = False
            kh += 1 if wide else streams
        c += CHANNEL_BLOCK if wide else 1
    return mults, adds


@njit(parallel=True, cache=True)
def _rows(x, w, bias, layer, columns, y, counting):
    """All output rows in parallel; the summed (mults, adds) of the rows when counting, else zeros."""
    batch, out_channels, out_height = layer[0], layer[4], layer[5]
    mults = 0
    adds = 0
    for task in prange(batch * out_height * out_channels):
        # output channel fastest: neighbouring tasks read the same input rows
        n, rest = divmod(np.int64(task), out_height * out_channels)
        oh, co = divmod(rest, out_channels)
        m, a = _row(x, w, bias, n, co, oh, layer, columns, y, counting)
        mults += m
        adds += a
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
    Other arguments as in :func:`_row`.  Returns (mults, adds) when counting.
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


@njit(parallel=True, cache=True)
def _pixel_rows(x, w, bias, layer, columns, y, counting):
    """All (image, output row, group) tasks of :func:`_pixels` in parallel; (mults, adds) as :func:`_rows`."""
    batch, out_height, groups = layer[0], layer[5], layer[4] // layer[14]
    mults = 0
    adds = 0
    for task in prange(batch * out_height * groups):
        n, rest = divmod(np.int64(task), out_height * groups)
        oh, group = divmod(rest, groups)
        acc = np.empty(layer[14], dtype=y.dtype)
        m, a = _pixels(x, w, bias, n, oh, group, layer, columns, acc, y, counting)
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


def _contiguous(array: np.ndarray) -> tuple[np.ndarray, int]:
    """``array`` C-contiguous, and the bytes copied to make it so (workspace, checked by the caller)."""
    if array.flags.c_contiguous:
        return array, 0
    return np.ascontiguousarray(array), array.nbytes


#: The two loop nests: "rows" vectorises along output rows, "pixels" along output channels.
LOOPS = ("rows", "pixels")


def choose_loop(g: ConvGeometry) -> str:
    """The loop nest that runs ``g`` faster.

    Rows vectorise well when they are long, read contiguously (stride 1) and
    have 8 input channels to block; otherwise, when a group has at least 16
    output channels, vectorising over them is faster (the seed and stem
    layers).  Depthwise layers (one output channel per group) use rows.
    """
    short_or_strided = g.out_width < 32 or g.stride[1] > 1 or g.in_channels_per_group < CHANNEL_BLOCK
    return "pixels" if g.out_channels_per_group >= 16 and short_or_strided else "rows"


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
    loop : ``"rows"`` or ``"pixels"`` to force a loop nest (tests); default
        :func:`choose_loop`

    Returns
    -------
    y : (N, C_out, OH, OW) array of ``x.dtype``
    counts : :class:`~npconv.counts.Counts` (``padded_mults`` is 0), or None
    """
    g = geometry
    loop = choose_loop(g) if loop is None else loop
    if loop == "rows":
        kernel = _rows
        w = np.moveaxis(weight, 1, 3)  # (C_out, KH, KW, C_in/g)
    else:
        kernel = _pixel_rows
        split = weight.reshape(g.groups, g.out_channels_per_group, *weight.shape[1:])
        w = np.moveaxis(split, 1, 4)  # (groups, C_in/g, KH, KW, C_out/g)
    # both copies are alive at once: the workspace limit bounds their sum, checked before either is made
    copies = {name: a.nbytes for name, a in (("x", x), ("the transposed weight", w)) if not a.flags.c_contiguous}
    if copies:
        ensure_workspace_fits(sum(copies.values()), workspace_limit,
                              f"contiguous copies of {' and '.join(copies)} ({sum(copies.values()):,} bytes)")
    x, x_copied = _contiguous(x)
    w, w_copied = _contiguous(w)
    bias = np.zeros(0, dtype=x.dtype) if bias is None else np.ascontiguousarray(bias)
    y = np.empty(g.output_shape, dtype=x.dtype)
    if y.size == 0:
        tallies = (0, 0)
    else:
        layer = (g.batch, g.in_channels, g.height, g.width, g.out_channels, g.out_height, g.out_width,
                 g.kernel_h, g.kernel_w, g.stride[0], g.stride[1], g.padding[0][0], g.dilation[0],
                 g.in_channels_per_group, g.out_channels_per_group)
        tallies = kernel(x.reshape(-1), w.reshape(-1), bias, layer, _column_ranges(g), y.reshape(-1), count)
    if not count:
        return y, None
    mults, adds = (int(t) for t in tallies)
    return y, Counts(mults, adds, "effective", NAME, 0, x_copied + w_copied)
