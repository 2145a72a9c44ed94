"""im2col + GEMM kernel: each convolution lowered to matrix products on NumPy's BLAS.

The lowering ("im2col") copies every receptive field of the input into a
column of a matrix, so that the convolution becomes one matrix product per
image and group::

    cols[n, g]  : (C_in/g x KH x KW, OH x OW)     rows ordered (c, kh, kw), like the weight
    W[g]        : (C_out/g, C_in/g x KH x KW)      the weight, reshaped (no copy)
    y[n, g]     = W[g] @ cols[n, g]  : (C_out/g, OH x OW)

The product lands in NCHW as it is: ``y[n]`` viewed as ``(groups, C_out/g,
OH x OW)`` *is* the GEMM's output, so ``np.matmul(..., out=)`` writes the
result in place -- no transpose, no copy.  Grouped and depthwise layers are
one batched ``np.matmul`` over the stacked group matrices.  A 1x1, stride-1,
unpadded layer needs no lowering at all: ``x[n]`` viewed as
``(groups, C_in/g, H x W)`` already is the column matrix.

How the column matrix is built, and why.  Padding is applied once, into a
zero-bordered copy of the rows a chunk needs; the column matrix is then a
strided *view* of that copy (shape ``(images, C_in, KH, KW, rows, OW)``,
strides from stride and dilation), and one ``np.copyto`` materialises it.
Measured against a Numba gather that pads on the fly (``prange`` over
image x channel x kernel row, contiguous row copies), on the chunks this
kernel uses (float32, 2-core machine, idle): resnet 3x3 0.15 ms vs 0.29 ms
on one thread and 0.23 ms on two; large 7x7 0.14 vs 0.26 / 0.23 ms; stem s2
0.27 vs 0.53 / 0.37 ms; the seed layer 12 vs 14 us.  NumPy's strided copy
wins everywhere and needs no compilation, so there is no Numba here.

Threads.  Splitting each chunk's copy between two Python threads (NumPy
releases the GIL) was slower than one thread (resnet 3x3: 0.40 vs 0.31 ms
per chunk): the hand-off costs more than half a copy saves, and after each
GEMM the BLAS's own worker threads are still spinning on the other core.
What pays is sharing out whole chunks: on a layer of at least
:data:`PARALLEL_MIN_MULTS` multiplications, each of the BLAS's thread count
of workers (this thread and the pool of :mod:`npconv.kernels._threads`)
lowers, multiplies and adds the bias for its own contiguous run of chunks,
with buffers of its own, its GEMMs on one BLAS thread
(:class:`~npconv.kernels._threads.blas_single_threaded`).  The workers meet
once, at the end; the lowering runs on both cores, and a thin GEMM (64 rows
for resnet 3x3) no longer splits across threads.  Measured against the
chunks run one after the other with a two-thread BLAS (float32, 2 threads,
time over PyTorch's): resnet 3x3 1.49 vs 3.23, large 7x7 2.30 vs 4.03, stem
s2 2.36 vs 3.54, pointwise 1x1 0.92 vs 1.26 (a loaded machine; the ratios
move together).

Reused buffers.  The column and padded buffers come from
:data:`workspace_pool` (keyed by shape and dtype, thread-safe, at most
:data:`POOL_MAX_BYTES` idle and never more than the process-wide workspace
limit) and go back to it at the end of the call: a fresh buffer of a few
megabytes costs up to milliseconds of page faults on these virtual
machines.  The padded copy's borders are rewritten for every chunk, so a
reused buffer's old contents are never read.

The bias.  Each chunk's bias is added right after its GEMM, while the
chunk's output is still in cache (about 5% of the time of resnet 3x3).
NumPy's ``matmul`` has no ``beta``, so the bias cannot initialise the
output; appending a row of ones to the column matrix would put it inside
the GEMM but would execute (and so count) one multiplication by 1 per
output, and break the column matrix's layout per group.

Bounded workspace.  The column matrix is ``KH x KW`` times the input
(``formulas.im2col_workspace_bytes``).  The batch is processed in chunks of
whole images, or, when one image is too large, of output rows of one image,
each chunk no larger than the workspace limit -- and no larger than
:data:`CHUNK_TARGET_BYTES`, so that the lowered chunk is still in cache when
the GEMM reads it.  A layer whose smallest chunk (one image, one output row)
does not fit is refused before anything is allocated.  The reduction
dimension ``C_in/g x KH x KW`` is never split.

Counting (convention ``"dense"`` only: a GEMM multiplies every entry,
padded zeros included).  For every ``np.matmul`` made, ``batch x M x K x N``
multiplications are taken from the shapes of the operands passed, and
``batch x M x N x (K - 1)`` accumulation additions, plus one addition per
output element for the bias.  ``padded_mults``: each entry of a column
matrix that was copied from the zero border is multiplied by the ``C_out/g``
weights of its group; the number of such entries is read off the lowering
itself, by applying the same window view to masks of the rows and columns
that were filled from the input.  ``workspace_bytes`` is the size of the
buffers used (column matrix and padded copy, once per worker, plus a
contiguous copy of the weight when it was not contiguous), whether fresh or
taken from the pool.  The counts do not depend on the number of workers.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import as_strided

from npconv.counts import Counts
from npconv.geometry import ConvGeometry, first_touch_starts
from npconv.gradients import GradCounts, Grads
from npconv.kernels._threads import blas_single_threaded, blas_threads, in_parallel, shares
from npconv.memory import ensure_workspace_fits, format_bytes, get_workspace_limit

NAME = "im2col"
#: Conventions this kernel can execute: a GEMM multiplies the padded zeros too.
CONVENTIONS = ("dense",)
#: Runs on NumPy's BLAS: no interpreter's rate limits the layers it runs.
MULTS_PER_SECOND = None

#: Largest workspace chunk aimed for, even when the workspace limit allows more:
#: a chunk this size is still in the 32 MiB L3 cache (and mostly in the L2) when
#: the GEMM packs it.  Chosen by timing the benchmark layers (see bench/im2col_split.py).
CHUNK_TARGET_BYTES = 4 * 2**20

#: Most bytes of idle workspace kept for reuse (and never more than the process-wide workspace limit).
POOL_MAX_BYTES = 64 * 2**20

#: A layer whose GEMMs make fewer multiplications than this runs on one worker thread: below
#: it, sharing the chunks out costs more than it saves.
PARALLEL_MIN_MULTS = 2**24


class WorkspacePool:
    """Idle work buffers kept between calls, keyed by ``(shape, dtype)``.

    A fresh multi-megabyte buffer costs page faults on first touch (up to
    milliseconds on a virtual machine); a call that finds a buffer of its
    shape here reuses it.  :meth:`take` removes the buffer from the pool, so
    concurrent calls never share one (thread-safe); :meth:`give` puts it back,
    evicting the least recently returned buffers so that the idle bytes stay
    within ``min(POOL_MAX_BYTES, process-wide workspace limit)``.  Buffers are
    the kernel's own: never returned to a caller, never holding results.
    """

    def __init__(self, max_bytes: int = POOL_MAX_BYTES):
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._idle: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
        self.idle_bytes = 0

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A buffer of ``shape`` and ``dtype`` (contents undefined): a pooled one, else a new one."""
        key = (tuple(shape), np.dtype(dtype))
        with self._lock:
            buffers = self._idle.get(key)
            if buffers:
                buffer = buffers.pop()
                if not buffers:
                    del self._idle[key]
                self.idle_bytes -= buffer.nbytes
                return buffer
        return np.empty(shape, dtype)

    def give(self, buffer: np.ndarray) -> None:
        """Return ``buffer`` (from :meth:`take`) for reuse, unless it alone exceeds the bound."""
        bound = min(self.max_bytes, get_workspace_limit())
        if buffer.nbytes > bound:
            return
        key = (buffer.shape, buffer.dtype)
        with self._lock:
            while self._idle and self.idle_bytes + buffer.nbytes > bound:
                _, oldest = self._idle.popitem(last=False)
                self.idle_bytes -= sum(b.nbytes for b in oldest)
            self._idle.setdefault(key, []).append(buffer)
            self._idle.move_to_end(key)
            self.idle_bytes += buffer.nbytes

    def clear(self) -> None:
        """Drop every idle buffer."""
        with self._lock:
            self._idle.clear()
            self.idle_bytes = 0


#: The kernel's buffers (column matrix chunks, padded copies), reused across calls.
workspace_pool = WorkspacePool()


class Plan:
    """How one layer is run: the chunking and the buffers' shapes, decided before allocating.

    Attributes
    ----------
    images_per_chunk, rows_per_chunk : chunk size, in images and output rows
        (``rows_per_chunk < OH`` only with one image per chunk)
    lowered : False for the 1x1 stride-1 unpadded layer whose input is
        already the column matrix
    padded : whether a zero-bordered copy of the input rows is built
    gathered : the padded copy of even one output row's input would not fit
        in the workspace limit (a tiny input with padding or dilation far wider
        than it: the copy spans the whole padded rows, of which a few columns
        are read), so the column matrix is filled tap by tap from the input
        itself, zeros elsewhere: only what is read is copied
    workspace_bytes : the buffers' total size (column matrix, padded copy,
        contiguous weight copy)
    """

    __slots__ = ("col_bytes", "g", "gathered", "images_per_chunk", "lowered", "pad_bytes", "padded",
                 "rows_per_chunk", "weight_copy_bytes", "workers", "workspace_bytes")

    def __init__(self, g: ConvGeometry, x: np.ndarray, weight: np.ndarray, workspace_limit: int,
                 target_bytes: int = CHUNK_TARGET_BYTES, workers: int = 1):
        self.g = g
        itemsize = x.dtype.itemsize
        self.weight_copy_bytes = 0 if weight.flags.c_contiguous else weight.nbytes
        self.padded = g.has_padding
        self.gathered = False
        self.lowered = not _is_column_matrix_already(g, x)
        batch, out_height = g.batch, g.out_height
        if not self.lowered:
            # no workspace; chunk only so that the bias is added while the output is in cache
            # (and so that every worker has a chunk)
            output_image_bytes = g.out_channels * out_height * g.out_width * itemsize
            largest = min(target_bytes // output_image_bytes, math.ceil(batch / max(1, workers)))
            self.images_per_chunk = _even_chunks(batch, largest)
            self.rows_per_chunk = out_height
            self.col_bytes = self.pad_bytes = 0
        else:
            row_bytes = g.in_channels * g.kernel_h * g.kernel_w * g.out_width * itemsize
            padded_row_bytes = g.in_channels * _padded_width(g) * itemsize if self.padded else 0
            room = workspace_limit - self.weight_copy_bytes
            # where the padded copy of one output row's input would not fit in the limit, gather instead
            # (only then: the padded copy and one strided copy are faster where both fit)
            if self.padded and room < row_bytes + _input_rows(g, 1) * padded_row_bytes:
                self.gathered, padded_row_bytes = True, 0  # no padded copy: see _Lowering._gather

            def chunk_bytes(images: int, rows: int) -> int:
                return images * (rows * row_bytes + _input_rows(g, rows) * padded_row_bytes)

            # as many workers as the limit holds a smallest chunk for, each with its own buffers,
            # and chunks small enough that every worker has one
            workers = max(1, min(workers, room // max(1, chunk_bytes(1, 1))))
            budget = min(room // workers, target_bytes,
                         math.ceil(chunk_bytes(batch, out_height) / workers) if workers > 1 else target_bytes)
            image_bytes = chunk_bytes(1, out_height)
            if image_bytes <= budget:
                images, rows = _even_chunks(batch, budget // image_bytes), out_height
            else:
                # one image per chunk; chunk_bytes(1, r) is affine in r
                fixed = chunk_bytes(1, 1) - row_bytes - g.stride[0] * padded_row_bytes
                per_row = row_bytes + g.stride[0] * padded_row_bytes
                images, rows = 1, _even_chunks(out_height, max(1, (budget - fixed) // per_row))
                if rows == 1:
                    smallest = chunk_bytes(1, 1) + self.weight_copy_bytes
                    ensure_workspace_fits(
                        smallest, workspace_limit,
                        f"the column matrix of one image and one output row "
                        f"({g.in_channels} x {g.kernel_h} x {g.kernel_w} x {g.out_width} values"
                        f"{', with its zero-padded input rows' if self.padded and not self.gathered else ''}"
                        f"{', and a contiguous copy of the weight' if self.weight_copy_bytes else ''}:"
                        f" {smallest:,} bytes)",
                    )
            self.images_per_chunk, self.rows_per_chunk = images, rows
            self.col_bytes = images * rows * row_bytes
            self.pad_bytes = images * _input_rows(g, rows) * padded_row_bytes
        self.workers = max(1, min(workers, self.chunks))
        self.workspace_bytes = self.workers * (self.col_bytes + self.pad_bytes) + self.weight_copy_bytes
        ensure_workspace_fits(
            self.workspace_bytes, workspace_limit,
            f"the im2col workspace ({self.workspace_bytes:,} bytes: a column matrix of "
            f"{format_bytes(self.col_bytes)} for {self.images_per_chunk} image(s) x "
            f"{self.rows_per_chunk} output row(s){f', for each of {self.workers} workers' if self.workers > 1 else ''})",
        )

    @property
    def chunks(self) -> int:
        """How many (images, rows) chunks the batch is processed in."""
        g = self.g
        return math.ceil(g.batch / self.images_per_chunk) * math.ceil(g.out_height / self.rows_per_chunk)


def _even_chunks(total: int, largest: int) -> int:
    """The chunk size <= ``largest`` that splits ``total`` into the fewest, most equal chunks."""
    pieces = math.ceil(total / max(1, min(largest, total)))
    return math.ceil(total / pieces)


def _padded_width(g: ConvGeometry) -> int:
    return g.padding[1][0] + g.width + g.padding[1][1]


def _input_rows(g: ConvGeometry, out_rows: int) -> int:
    """Rows of the (padded) input that ``out_rows`` consecutive output rows read."""
    return (out_rows - 1) * g.stride[0] + (g.kernel_h - 1) * g.dilation[0] + 1


def _is_column_matrix_already(g: ConvGeometry, x: np.ndarray) -> bool:
    """True for a 1x1, stride-1, unpadded layer whose image rows are BLAS-ready as they are.

    ``x[n]`` viewed as ``(C_in, H x W)`` needs unit stride along W, rows of
    ``W`` contiguous, and a positive channel stride covering a whole image
    plane; any other layout is copied by the lowering instead.
    """
    if (g.kernel_h, g.kernel_w) != (1, 1) or g.stride != (1, 1) or g.has_padding:
        return False
    itemsize = x.itemsize
    _, channel_stride, row_stride, column_stride = x.strides
    plane = g.height * g.width * itemsize
    return (column_stride == itemsize and (g.height == 1 or row_stride == g.width * itemsize)
            and channel_stride >= plane)


class _Lowering:
    """Builds the column matrix of one chunk into reused buffers, and counts its padded entries."""

    def __init__(self, x: np.ndarray, plan: Plan, count: bool):
        g = plan.g
        self.x, self.g, self.plan, self.count = x, g, plan, count
        self.padded_entries = 0
        self.out_width = g.out_width
        self.stack = (g.groups, g.in_channels_per_group * g.kernel_h * g.kernel_w)
        self.taps = (g.in_channels, g.kernel_h, g.kernel_w)
        if not plan.lowered:
            self.stack = (g.groups, g.in_channels_per_group, g.height * g.width)
            return
        (sh, sw), (dh, dw) = g.stride, g.dilation
        # window view strides, in units of the source's (image, channel, row, column) strides
        self.step = (dh, dw, sh, sw)
        self.cols = workspace_pool.take((plan.col_bytes // x.itemsize,), x.dtype)
        self.buffers = [self.cols]
        if plan.gathered:
            self.column_ranges = [_valid_range(kw * dw - g.padding[1][0], sw, g.width, 0, g.out_width)
                                  for kw in range(g.kernel_w)]
        elif plan.padded:
            self.padded_input = workspace_pool.take(
                (plan.images_per_chunk, g.in_channels, _input_rows(g, plan.rows_per_chunk), _padded_width(g)),
                x.dtype,
            )
            self.buffers.append(self.padded_input)
            if count:
                # the window view's (tap column, output column) entries on the buffer's real columns
                self.real_taps_w = _entries_on(g.padding[1][0], g.width, g.kernel_w, dw, sw, g.out_width)

    def release(self) -> None:
        """Return the buffers to the pool (the column matrices returned are then invalid)."""
        if self.plan.lowered:
            for buffer in self.buffers:
                workspace_pool.give(buffer)
            self.buffers = []

    def __call__(self, n0: int, n1: int, r0: int, r1: int) -> np.ndarray:
        """The column matrices of images ``n0:n1``, output rows ``r0:r1``.

        Returns an array ``(n1 - n0, groups, C_in/g x KH x KW, (r1 - r0) x OW)``:
        a view of ``x`` when no lowering is needed, else a view of the
        reused column buffer.
        """
        images, rows = n1 - n0, r1 - r0
        if not self.plan.lowered:
            return self.x[n0:n1].reshape(images, *self.stack)
        shape = (images, *self.taps, rows, self.out_width)
        if self.plan.gathered:
            cols = self._gather(self.cols[: math.prod(shape)].reshape(shape), n0, n1, r0, r1)
            return cols.reshape(images, *self.stack, rows * self.out_width)
        cols = self.cols[: math.prod(shape)].reshape(shape)
        dh, dw, sh, sw = self.step
        if self.plan.padded:
            source = self._fill_padded(n0, n1, r0, r1)
            if self.count:
                self._count_padded(n0, n1, r0, r1)
            base, offset = self.padded_input, 0
        else:
            source = self.x[n0:n1, :, r0 * sh:]
            base, offset = self.x, n0 * self.x.strides[0] + r0 * sh * self.x.strides[2]
        s0, s1, s2, s3 = source.strides
        strides = (s0, s1, dh * s2, dw * s3, sh * s2, sw * s3)
        if base.flags.c_contiguous:
            windows = _view(base, offset, shape, strides)
        else:
            windows = as_strided(source, shape, strides, writeable=False)
        np.copyto(cols, windows)
        return cols.reshape(images, *self.stack, rows * self.out_width)

    def _fill_padded(self, n0: int, n1: int, r0: int, r1: int) -> np.ndarray:
        """Copy the input rows that output rows ``r0:r1`` of images ``n0:n1`` read into the
        zero-bordered buffer; returns the part of the buffer filled."""
        g = self.g
        (top, _), (left, _) = g.padding
        width = g.width
        rows_in = _input_rows(g, r1 - r0)
        buffer = self.padded_input[: n1 - n0]
        a, b = self._input_span(r0, r1)
        first = r0 * g.stride[0]
        if a < b:
            buffer[:, :, a:b, left: left + width] = self.x[n0:n1, :, first + a - top: first + b - top]
            if left:
                buffer[:, :, a:b, :left] = 0
            if left + width < buffer.shape[3]:
                buffer[:, :, a:b, left + width:] = 0
        if a:
            buffer[:, :, :a] = 0
        if b < rows_in:
            buffer[:, :, b:rows_in] = 0
        return buffer[:, :, :rows_in]

    def _input_span(self, r0: int, r1: int) -> tuple[int, int]:
        """Rows ``[a, b)`` of the padded buffer that hold input rows (the rest is zero) for output rows ``r0:r1``."""
        g = self.g
        top = g.padding[0][0]
        rows_in = _input_rows(g, r1 - r0)
        first = r0 * g.stride[0]  # first padded-input row read
        # buffer rows [a, b) hold input rows [first + a - top, first + b - top)
        a = min(max(top - first, 0), rows_in)
        return a, max(min(top + g.height - first, rows_in), a)

    def _count_padded(self, n0: int, n1: int, r0: int, r1: int) -> None:
        """Tally the column-matrix entries of this chunk copied from the zero border."""
        g = self.g
        a, b = self._input_span(r0, r1)
        real_taps_h = _entries_on(a, b - a, g.kernel_h, g.dilation[0], g.stride[0], r1 - r0)
        taps = g.kernel_h * g.kernel_w * (r1 - r0) * g.out_width
        self.padded_entries += (n1 - n0) * g.in_channels * (taps - real_taps_h * self.real_taps_w)

    def _gather(self, cols: np.ndarray, n0: int, n1: int, r0: int, r1: int) -> np.ndarray:
        """Fill ``cols`` (images, C_in, KH, KW, rows, OW) for output rows ``r0:r1`` from the input itself:
        zeros, then for each tap the block of outputs whose input pixel exists, as one strided copy.

        Only the taps that reach the input are visited, so a kernel far larger than its input costs
        what it reads, not what it spans.
        """
        g = self.g
        (sh, sw), (dh, dw) = g.stride, g.dilation
        top, left = g.padding[0][0], g.padding[1][0]
        cols[...] = 0
        real = 0
        for kh in range(g.kernel_h):
            rows = _valid_range(kh * dh - top, sh, g.height, r0, r1)
            if rows is None:
                continue
            lo, hi = rows
            ih = lo * sh - top + kh * dh
            for kw, columns in enumerate(self.column_ranges):
                if columns is None:
                    continue
                c_lo, c_hi = columns
                iw = c_lo * sw - left + kw * dw
                cols[:, :, kh, kw, lo - r0: hi - r0, c_lo: c_hi] = self.x[
                    n0:n1, :, ih: ih + (hi - lo - 1) * sh + 1: sh, iw: iw + (c_hi - c_lo - 1) * sw + 1: sw]
                real += (hi - lo) * (c_hi - c_lo)
        if self.count:
            taps = g.kernel_h * g.kernel_w * (r1 - r0) * g.out_width
            self.padded_entries += (n1 - n0) * g.in_channels * (taps - real)
        return cols


def _view(base: np.ndarray, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """A read-only view of the C-contiguous ``base``'s memory from byte ``offset``, with ``shape`` and
    (byte) ``strides``.

    The ``np.ndarray`` constructor costs 0.5 us where ``as_strided`` costs 6 us (a small layer's
    whole lowering is about 10 us); it also checks that the view stays inside ``base``.
    """
    view = np.ndarray(shape, base.dtype, base, offset, strides)
    view.flags.writeable = False
    return view


def _valid_range(offset: int, stride: int, size: int, first: int, end: int) -> tuple[int, int] | None:
    """The outputs ``o`` in ``[first, end)`` whose input ``o * stride + offset`` lies in ``[0, size)``,
    as ``(lo, hi)``, or None when there is none."""
    lo = max(first, -(offset // stride))  # the first o with o * stride + offset >= 0
    hi = min(end, max(first, -((offset - size) // stride)))  # ... < size
    return (lo, hi) if lo < hi else None


def _entries_on(first: int, size: int, kernel: int, dilation: int, stride: int, outputs: int) -> int:
    """Entries ``(k, o)`` of one axis of the lowering's window view, which reads buffer element
    ``k * dilation + o * stride``, that land on the buffer's real elements ``[first, first + size)``.

    Python integers, one range per tap: the counting mode's tally of the padded entries a chunk
    copied costs a few microseconds, not the NumPy calls of a mask seen through the view (which
    made counting 15-30% slower than the fast path on the seed layer).
    """
    if size <= 0:
        return 0
    total = 0
    for k in range(kernel):
        outs = _valid_range(k * dilation - first, stride, size, 0, outputs)
        if outs is not None:
            total += outs[1] - outs[0]
    return total


def _convolve(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, plan: Plan, *,
              count: bool, stage_times: dict[str, float] | None = None, out: np.ndarray | None = None):
    """Run ``plan``: returns ``y`` (``out`` when given) and the tallies ``(mults, adds, padded_mults)``.

    ``stage_times``, when a dict, accumulates seconds spent in ``"lower"``,
    ``"gemm"`` and ``"bias"`` (for ``bench/im2col_split.py``).
    """
    g = plan.g
    batch, groups, out_per_group = g.batch, g.groups, g.out_channels_per_group
    out_height, out_width = g.out_height, g.out_width
    weights = np.ascontiguousarray(weight).reshape(groups, out_per_group, -1)
    y = np.empty((batch, g.out_channels, out_height, out_width), dtype=x.dtype) if out is None else out
    # y[n] as (groups, C_out/g, OH, OW): a row chunk of it is the GEMM output as it is
    y_groups = y.reshape(batch, groups, out_per_group, out_height, out_width)
    bias_column = None if bias is None else bias.reshape(groups, out_per_group, 1)
    chunks = [(n0, min(n0 + plan.images_per_chunk, batch), r0, min(r0 + plan.rows_per_chunk, out_height))
              for n0 in range(0, batch, plan.images_per_chunk)
              for r0 in range(0, out_height, plan.rows_per_chunk)]
    timed = stage_times is not None
    if plan.workers == 1:
        results = [_multiply_chunks(x, plan, count, weights, bias_column, y_groups, chunks, timed)]
    else:
        parts = [(chunks[lo:hi], timed) for lo, hi in shares(len(chunks), plan.workers)]
        with blas_single_threaded():
            results = in_parallel(_multiply_chunks, x, plan, count, weights, bias_column, y_groups, parts=parts)
    mults = adds = padded_entries = 0
    for worker_mults, worker_adds, worker_padded, times in results:
        mults, adds, padded_entries = mults + worker_mults, adds + worker_adds, padded_entries + worker_padded
        for stage, seconds in times.items():
            stage_times[stage] = stage_times.get(stage, 0.0) + seconds
    return y, (mults, adds, padded_entries * weights.shape[1])


#: Most plans kept by :func:`plan_for` (a plan is a few hundred bytes; the cache is emptied when full).
PLAN_CACHE_SIZE = 64

_plans: dict[tuple, Plan] = {}


def plan_for(g: ConvGeometry, x: np.ndarray, weight: np.ndarray, workspace_limit: int) -> Plan:
    """The :class:`Plan` of a call, made once per layer and memory layout and then reused.

    A plan depends only on the geometry, the dtype, whether the input is already the column
    matrix (its strides, for a 1x1 layer), whether the weight is contiguous, the workspace limit
    and the worker count; making one costs about 12 us of Python, 7% of PyTorch's time on the
    seed layer.  Plans are never changed after they are made, so threads share them.
    """
    workers = workers_for(g)
    key = (g, x.dtype, x.strides if g.kernel_h == g.kernel_w == 1 else None, weight.flags.c_contiguous,
           workspace_limit, workers)
    plan = _plans.get(key)
    if plan is None:
        plan = Plan(g, x, weight, workspace_limit, workers=workers)
        if len(_plans) >= PLAN_CACHE_SIZE:
            _plans.clear()
        _plans[key] = plan
    return plan


def workers_for(g: ConvGeometry) -> int:
    """Worker threads for a layer: the BLAS's thread count (at most one per CPU: the pool has one
    thread per CPU but the caller's), or 1 for a layer too small to share out."""
    mults = g.batch * g.out_channels * g.out_height * g.out_width * g.in_channels_per_group * g.kernel_h * g.kernel_w
    return min(blas_threads(), os.cpu_count() or 1) if mults >= PARALLEL_MIN_MULTS else 1


def _multiply_chunks(x: np.ndarray, plan: Plan, count: bool, weights: np.ndarray, bias_column: np.ndarray | None,
                     y_groups: np.ndarray, chunks: list[tuple[int, int, int, int]], timed: bool):
    """Lower, multiply and add the bias into ``y_groups`` for each ``(n0, n1, r0, r1)`` of ``chunks``,
    with buffers of this worker's own; returns ``(mults, adds, padded column entries, stage seconds)``."""
    _, groups, out_per_group, _, _ = y_groups.shape
    stage_times: dict[str, float] = {}
    mults = adds = 0
    lower = _Lowering(x, plan, count)
    try:
        for n0, n1, r0, r1 in chunks:
            started = time.perf_counter() if timed else 0.0
            cols = lower(n0, n1, r0, r1)
            out = y_groups[n0:n1, :, :, r0:r1].reshape(n1 - n0, groups, out_per_group, -1)
            if timed:
                lowered = time.perf_counter()
            np.matmul(weights, cols, out=out)
            if timed:
                multiplied = time.perf_counter()
            # the product just made: (groups, M, K) @ (images, groups, K, N), from the operands' shapes
            images, stack, reduction, columns = cols.shape
            products = images * stack * weights.shape[1] * columns  # output elements written
            mults += products * reduction
            adds += products * (reduction - 1)
            if bias_column is not None:
                np.add(out, bias_column, out=out)
                adds += products
            if timed:
                finished = time.perf_counter()
                stage_times["lower"] = stage_times.get("lower", 0.0) + lowered - started
                stage_times["gemm"] = stage_times.get("gemm", 0.0) + multiplied - lowered
                stage_times["bias"] = stage_times.get("bias", 0.0) + finished - multiplied
    finally:
        lower.release()
    return mults, adds, lower.padded_entries, stage_times


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
    """Compute ``y[n, co, oh, ow]`` for a validated layer by im2col + GEMM.

    Parameters
    ----------
    x : (N, C_in, H, W) float32 or float64 array, any memory layout
    weight : (C_out, C_in / groups, KH, KW) array of ``x``'s dtype
    bias : (C_out,) array or None
    geometry : the layer, validated against these shapes
    convention : ``"dense"``, the only one a GEMM executes
    count : return the counts tallied from the GEMMs made
    workspace_limit : bytes the column matrix chunk, padded copy and weight
        copy may take together
    out : None, or a C-contiguous, writeable (N, C_out, OH, OW) array of
        ``x.dtype`` not overlapping the operands (checked by the caller): the
        GEMMs write into it

    Returns
    -------
    y : (N, C_out, OH, OW) C-contiguous array of ``x.dtype`` (``out`` when given)
    counts : :class:`~npconv.counts.Counts`, or None when ``count`` is false

    Raises
    ------
    ConvMemoryError
        naming ``workspace_limit`` when even one image and one output row
        do not fit, before anything is allocated.
    """
    if geometry.batch == 0:  # an empty batch: no chunk to plan, nothing to lower or multiply
        y = np.empty(geometry.output_shape, dtype=x.dtype) if out is None else out
        return y, (Counts(0, 0, convention, NAME) if count else None)
    plan = plan_for(geometry, x, weight, workspace_limit)
    y, (mults, adds, padded_mults) = _convolve(x, weight, bias, plan, count=count, out=out)
    if not count:
        return y, None
    return y, Counts(mults, adds, convention, NAME, padded_mults, plan.workspace_bytes)


# ---------------------------------------------------------------------- backward
#
# The gradients as matrix products, with the forward lowering reused:
#
#     weight:  dW[g]      = sum over chunks of  grad_y[chunk, g] @ cols[chunk, g].T  : (C_out/g, C_in/g x KH x KW)
#                            (a chunk of several images copied image-minor, so that its GEMM reduces
#                            over all their output pixels at once)
#     input:   dcols[g]    = W[g].T @ grad_y[chunk, g]                         : (C_in/g x KH x KW, images x OH x OW)
#              grad_x[n]   = col2im(dcols[n]): each tap's (OH, OW) block of dcols scattered to the
#                            positions it read, summed on the zero-padded input, then cropped
#     bias:    grad_b      = grad_y summed over (N, OH, OW)
#
# Counting is dense, as in forward: the GEMMs' shapes give the products and their accumulation
# additions; col2im adds a tap's block where an earlier tap has already put a term and *assigns*
# it where this tap is the first (npconv.geometry.first_touch_starts: one assigned rectangle and
# at most two added ones per tap), so a padded position with T terms costs T - 1 additions, never
# "0 + term"; the weight gradient's chunks are summed, the first one written, the others added.


class _InputGradientPlan:
    """Chunks and buffers of the input gradient: images, then groups, then channels of one group.

    Attributes
    ----------
    images, groups, channels : chunk size in images, groups, and input channels per group (a chunk
        is either whole groups of whole images' channels or part of one group of one image)
    lowered : False for a 1x1, stride-1, unpadded layer, whose GEMM writes the gradient itself
    padded : whether col2im sums on a zero-bordered buffer (the layer has padding); otherwise it
        sums on the (zeroed) gradient itself
    reach : (rows, columns) of the padded input that taps reach
    workspace_bytes : column-gradient chunk plus padded buffer
    """

    def __init__(self, g: ConvGeometry, itemsize: int, budget: int, limit: int, fixed: int):
        self.g = g
        taps = g.kernel_h * g.kernel_w
        self.lowered = (g.kernel_h, g.kernel_w) != (1, 1) or g.stride != (1, 1) or g.has_padding
        self.padded = g.has_padding
        self.reach = ((g.out_height - 1) * g.stride[0] + (g.kernel_h - 1) * g.dilation[0] + 1,
                      (g.out_width - 1) * g.stride[1] + (g.kernel_w - 1) * g.dilation[1] + 1)
        per_channel = 0
        if self.lowered:
            per_channel += taps * g.out_height * g.out_width * itemsize
        if self.padded:
            per_channel += self.reach[0] * self.reach[1] * itemsize
        self.per_channel = per_channel
        # several images at once: their grad_y copied image-minor, for one GEMM per group
        grad_image = g.out_channels * g.out_height * g.out_width * itemsize if self.lowered else 0
        per_group, groups = g.in_channels_per_group, g.groups
        room = max(0, budget - fixed)
        image = per_channel * g.in_channels
        if image <= room or per_channel == 0:
            self.images = _even_chunks(g.batch, room // (image + grad_image) if image else g.batch)
            self.groups, self.channels = groups, per_group
        elif per_channel * per_group <= room:
            self.images, self.channels = 1, per_group
            self.groups = _even_chunks(groups, room // (per_channel * per_group))
        else:
            ensure_workspace_fits(
                per_channel + fixed, limit,
                f"the input gradient's smallest chunk, one input channel of one image "
                f"({taps} x {g.out_height} x {g.out_width} column-gradient values"
                f"{' and its zero-padded gradient' if self.padded else ''}: {per_channel:,} bytes"
                f"{f', besides {fixed:,} bytes of contiguous copies' if fixed else ''})",
            )
            self.images, self.groups = 1, 1
            self.channels = _even_chunks(per_group, room // per_channel)
        self.transposed_bytes = self.images * grad_image if self.images > 1 else 0
        self.workspace_bytes = self.images * self.groups * self.channels * per_channel + self.transposed_bytes
        ensure_workspace_fits(
            self.workspace_bytes + fixed, limit,
            f"the input gradient's workspace ({self.workspace_bytes + fixed:,} bytes: column gradients "
            f"and padded sums of {self.images} image(s) x {self.groups * self.channels} channel(s))",
        )

    def chunks(self):
        """``(n0, n1, g0, g1, c0, c1)``: images, groups, and channels within each group."""
        g = self.g
        for n0 in range(0, g.batch, self.images):
            for g0 in range(0, g.groups, self.groups):
                for c0 in range(0, g.in_channels_per_group, self.channels):
                    yield (n0, min(n0 + self.images, g.batch), g0, min(g0 + self.groups, g.groups),
                           c0, min(c0 + self.channels, g.in_channels_per_group))


class _WeightGradientPlan:
    """Chunks of the weight gradient: whole images, or output rows of one image (as forward).

    Provides what :class:`_Lowering` reads from a forward :class:`Plan` (``g``, ``lowered``,
    ``padded``, ``images_per_chunk``, ``rows_per_chunk``, ``col_bytes``).  A chunk of several
    images is multiplied in one GEMM per group, reducing over all its images' output pixels:
    its column matrix and its ``grad_y`` are copied image-minor first (``transposed_bytes``), so
    that tiny images make one large product rather than many small ones.  ``sum_bytes``: the
    buffer a chunk's product is made in before it is added to the previous chunks'.
    """

    def __init__(self, g: ConvGeometry, x: np.ndarray, budget: int, limit: int, fixed: int):
        self.g = g
        itemsize = x.dtype.itemsize
        self.padded = g.has_padding
        self.gathered = False
        self.lowered = not _is_column_matrix_already(g, x)
        reduction = g.in_channels_per_group * g.kernel_h * g.kernel_w
        self.sum_bytes = g.out_channels * reduction * itemsize
        row_bytes = padded_row_bytes = 0
        columns_row = g.in_channels * g.kernel_h * g.kernel_w * g.out_width * itemsize
        if self.lowered:
            row_bytes = columns_row
            padded_row_bytes = g.in_channels * _padded_width(g) * itemsize if self.padded else 0
        grad_row = g.out_channels * g.out_width * itemsize

        def lowered_bytes(rows: int) -> int:
            return rows * row_bytes + (_input_rows(g, rows) * padded_row_bytes if padded_row_bytes else 0)

        room = max(0, budget - fixed - self.sum_bytes)
        out_height = g.out_height
        image = lowered_bytes(out_height)
        per_image = image + out_height * (columns_row + grad_row)  # with the image-minor copies
        if image <= room or not self.lowered:
            images, rows = _even_chunks(g.batch, max(1, room // per_image)), out_height
        else:
            smallest = lowered_bytes(1)
            if smallest > room:
                ensure_workspace_fits(
                    smallest + self.sum_bytes + fixed, limit,
                    f"the weight gradient's smallest chunk, the column matrix of one image and one "
                    f"output row ({g.in_channels} x {g.kernel_h} x {g.kernel_w} x {g.out_width} values"
                    f"{', with its zero-padded input rows' if self.padded else ''}) and a product of "
                    f"{g.out_channels} x {reduction} values: {smallest + self.sum_bytes:,} bytes"
                    f"{f', besides {fixed:,} bytes of contiguous copies' if fixed else ''}",
                )
            per_row = lowered_bytes(2) - smallest
            images, rows = 1, _even_chunks(out_height, 1 + (room - smallest) // max(1, per_row))
        self.images_per_chunk, self.rows_per_chunk = images, rows
        self.col_bytes = images * rows * row_bytes
        self.transposed_bytes = images * rows * (columns_row + grad_row) if images > 1 else 0
        self.workspace_bytes = images * lowered_bytes(rows) + self.transposed_bytes + self.sum_bytes
        ensure_workspace_fits(
            self.workspace_bytes + fixed, limit,
            f"the weight gradient's workspace ({self.workspace_bytes + fixed:,} bytes: column matrix "
            f"and products of {images} image(s) x {rows} output row(s))",
        )


def _input_gradient(grad_y: np.ndarray, weight: np.ndarray, plan: _InputGradientPlan, count: bool,
                    grad_x: np.ndarray | None = None):
    """``grad_x`` by GEMMs and col2im (into ``grad_x`` when given); returns it and the tallies (mults, adds, padded_mults)."""
    g = plan.g
    groups, per_group, out_per_group = g.groups, g.in_channels_per_group, g.out_channels_per_group
    kernel_h, kernel_w, out_height, out_width = g.kernel_h, g.kernel_w, g.out_height, g.out_width
    taps = kernel_h * kernel_w
    (sh, sw), (dh, dw) = g.stride, g.dilation
    (top, _), (left, _) = g.padding
    dtype = grad_y.dtype
    # a position that no tap reaches has gradient 0
    if grad_x is None:
        grad_x = np.zeros(g.input_shape, dtype=dtype)
    else:
        grad_x.fill(0)
    # W[g].T as a view: each (C_in/g x KH x KW, C_out/g) matrix is Fortran-ordered, as BLAS takes it
    weight_t = weight.reshape(groups, out_per_group, per_group * taps).transpose(0, 2, 1)
    dy = grad_y.reshape(g.batch, groups, out_per_group, out_height * out_width)
    starts_h = first_touch_starts(out_height, kernel_h, sh, dh)
    starts_w = first_touch_starts(out_width, kernel_w, sw, dw)
    if plan.lowered:
        column_buffer = np.empty(plan.images * plan.groups * plan.channels * taps * out_height * out_width, dtype)
    if plan.transposed_bytes:
        transposed = np.empty(plan.transposed_bytes // dtype.itemsize, dtype)
    if plan.padded:
        rows, columns = plan.reach
        padded_buffer = np.empty(plan.images * plan.groups * plan.channels * rows * columns, dtype)
        real_h = np.zeros(rows, dtype=np.int64)
        real_h[top: top + g.height] = 1
        real_w = np.zeros(columns, dtype=np.int64)
        real_w[left: left + g.width] = 1
    mults = adds = padded_mults = 0
    for n0, n1, g0, g1, c0, c1 in plan.chunks():
        images, channels = n1 - n0, (g1 - g0) * (c1 - c0)
        first_channel = g0 * per_group + c0  # the chunk's channels are contiguous in grad_x
        target = grad_x[n0:n1, first_channel: first_channel + channels]
        w_t = weight_t[g0:g1, c0 * taps: c1 * taps]
        if not plan.lowered:  # 1x1, stride 1, no padding: the GEMM output is the gradient
            out = target.reshape(images, g1 - g0, c1 - c0, -1)
            np.matmul(w_t, dy[n0:n1, g0:g1], out=out)
            mults += out.size * out_per_group
            adds += out.size * (out_per_group - 1)
            continue
        # image-minor: the chunk's images side by side, so that one GEMM per group covers them all
        pixels = images * out_height * out_width
        if images > 1:
            grads = transposed[: (g1 - g0) * out_per_group * pixels].reshape(g1 - g0, out_per_group, images, -1)
            np.copyto(grads, dy[n0:n1, g0:g1].transpose(1, 2, 0, 3))
            grads = grads.reshape(g1 - g0, out_per_group, pixels)
        else:
            grads = dy[n0, g0:g1]
        column_grads = column_buffer[: channels * taps * pixels].reshape(g1 - g0, (c1 - c0) * taps, pixels)
        np.matmul(w_t, grads, out=column_grads)
        # the product just made: (groups, M, K) @ (groups, K, N), from the operands' shapes
        mults += column_grads.size * out_per_group
        adds += column_grads.size * (out_per_group - 1)
        blocks = column_grads.reshape(channels, kernel_h, kernel_w, images, out_height, out_width)
        if plan.padded:
            sums = padded_buffer[: channels * images * rows * columns].reshape(channels, images, rows, columns)
            sums.fill(0)
        else:
            sums = target.transpose(1, 0, 2, 3)  # (channels, images, H, W), a view of grad_x
        for kh in range(kernel_h):
            at_h, first_h = slice(kh * dh, kh * dh + (out_height - 1) * sh + 1, sh), starts_h[kh]
            for kw in range(kernel_w):
                at_w, first_w = slice(kw * dw, kw * dw + (out_width - 1) * sw + 1, sw), starts_w[kw]
                reached, block = sums[:, :, at_h, at_w], blocks[:, kh, kw]
                # this tap is the first to reach rows >= first_h and columns >= first_w: assign there
                reached[:, :, first_h:, first_w:] = block[:, :, first_h:, first_w:]
                for earlier in ((slice(None, first_h), slice(None)), (slice(first_h, None), slice(None, first_w))):
                    part = reached[(Ellipsis, *earlier)]
                    if part.size:
                        np.add(part, block[(Ellipsis, *earlier)], out=part)
                        adds += part.size
                if count and plan.padded:
                    real = int(real_h[at_h].sum()) * int(real_w[at_w].sum())
                    padded_mults += images * channels * (out_height * out_width - real) * out_per_group
        if plan.padded:  # crop the padding (rows and columns beyond the reach stay 0)
            bottom, right = min(rows, top + g.height), min(columns, left + g.width)
            if bottom > top and right > left:
                target[:, :, : bottom - top, : right - left] = sums[:, :, top:bottom, left:right].transpose(1, 0, 2, 3)
    return grad_x, (mults, adds, padded_mults)


def _weight_gradient(grad_y: np.ndarray, x: np.ndarray, plan: _WeightGradientPlan, count: bool,
                     grad_w: np.ndarray | None = None):
    """``grad_w`` by GEMMs on the forward lowering (into ``grad_w`` when given); returns it and the tallies."""
    g = plan.g
    groups, out_per_group = g.groups, g.out_channels_per_group
    out_height, out_width = g.out_height, g.out_width
    reduction = g.in_channels_per_group * g.kernel_h * g.kernel_w
    dtype = grad_y.dtype
    given = grad_w
    grad_w = (np.empty((groups, out_per_group, reduction), dtype=dtype) if given is None
              else given.reshape(groups, out_per_group, reduction))
    chunk_sum = np.empty_like(grad_w)
    dy = grad_y.reshape(g.batch, groups, out_per_group, out_height, out_width)
    if plan.transposed_bytes:
        transposed = np.empty(plan.transposed_bytes // dtype.itemsize, dtype=dtype)
    lower = _Lowering(x, plan, count)
    try:
        mults, adds = _weight_gradient_chunks(lower, dy, grad_w, chunk_sum, transposed if plan.transposed_bytes
                                              else None)
    finally:
        lower.release()
    return (grad_w.reshape(g.weight_shape) if given is None else given,
            (mults, adds, lower.padded_entries * out_per_group))


def _weight_gradient_chunks(lower: _Lowering, dy: np.ndarray, grad_w: np.ndarray, chunk_sum: np.ndarray,
                            transposed: np.ndarray | None) -> tuple[int, int]:
    """Sum the chunks' products into ``grad_w``; returns ``(mults, adds)``."""
    plan, g = lower.plan, lower.g
    groups, out_per_group, out_height = g.groups, g.out_channels_per_group, g.out_height
    reduction = grad_w.shape[-1]
    mults = adds = 0
    first = True
    for n0 in range(0, g.batch, plan.images_per_chunk):
        n1 = min(n0 + plan.images_per_chunk, g.batch)
        images = n1 - n0
        for r0 in range(0, out_height, plan.rows_per_chunk):
            r1 = min(r0 + plan.rows_per_chunk, out_height)
            cols = lower(n0, n1, r0, r1)  # (images, groups, C_in/g x KH x KW, rows x OW)
            pixels = cols.shape[-1]
            if images == 1:
                grads, columns = dy[n0, :, :, r0:r1].reshape(groups, out_per_group, pixels), cols[0]
            else:  # image-minor copies, so that one GEMM per group reduces over all the chunk's pixels
                grads = transposed[: groups * out_per_group * images * pixels].reshape(
                    groups, out_per_group, images, pixels)
                np.copyto(grads, dy[n0:n1, :, :, r0:r1].reshape(images, groups, out_per_group, pixels)
                          .transpose(1, 2, 0, 3))
                columns = transposed[grads.size: grads.size + groups * reduction * images * pixels].reshape(
                    groups, reduction, images, pixels)
                np.copyto(columns, cols.transpose(1, 2, 0, 3))
                grads = grads.reshape(groups, out_per_group, images * pixels)
                columns = columns.reshape(groups, reduction, images * pixels)
            # the first chunk's product is the gradient so far; later ones are added to it
            out = grad_w if first else chunk_sum
            np.matmul(grads, columns.swapaxes(-1, -2), out=out)
            # the product just made: (groups, M, K) @ (groups, K, N), from the operands' shapes
            terms = columns.shape[-1]
            mults += out.size * terms
            adds += out.size * (terms - 1)
            if not first:
                np.add(grad_w, chunk_sum, out=grad_w)
                adds += grad_w.size
            first = False
    return mults, adds


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
    """The gradients of a validated layer by GEMMs, col2im and the forward lowering.

    Parameters
    ----------
    grad_y : (N, C_out, OH, OW) float array, any memory layout
    x : (N, C_in, H, W) array of ``grad_y``'s dtype (read only for the weight gradient)
    weight : (C_out, C_in / groups, KH, KW) array (read only for the input gradient)
    geometry, needs, convention, count : see :mod:`npconv.kernels`; ``convention`` is
        ``"dense"``, the only one a GEMM executes
    workspace_limit : bytes the chunks' buffers and contiguous copies of the operands may
        take; the input gradient is chunked over images, then groups, then input channels,
        the weight gradient over images, then output rows
    out : checked C-contiguous arrays to write the gradients into (``None`` entries: allocated), or None

    Returns
    -------
    grads : :class:`~npconv.gradients.Grads`
    counts : :class:`~npconv.gradients.GradCounts`, or None when ``count`` is false

    Raises
    ------
    ConvMemoryError
        naming ``workspace_limit`` when a gradient's smallest chunk does not fit, before
        anything is allocated.
    """
    g = geometry
    want_input, want_weight = "input" in needs, "weight" in needs
    want_bias = "bias" in needs and g.bias
    dtype = grad_y.dtype
    out = Grads(None, None, None) if out is None else out
    if g.batch == 0:
        def zeros(wanted, given, shape):
            if not wanted:
                return None
            if given is None:
                return np.zeros(shape, dtype)
            given.fill(0)
            return given
        grads = Grads(zeros(want_input, out.input, g.input_shape), zeros(want_weight, out.weight, g.weight_shape),
                      zeros(want_bias, out.bias, g.out_channels))
        zero = Counts(0, 0, convention, NAME)
        return grads, (GradCounts(zero if want_input else None, zero if want_weight else None,
                                  zero if want_bias else None, convention, NAME) if count else None)
    # plan everything (and refuse what does not fit) before allocating anything
    budget = min(workspace_limit, CHUNK_TARGET_BYTES)
    copies = {"grad_y": 0 if grad_y.flags.c_contiguous else grad_y.nbytes}
    if want_input:
        copies["weight"] = 0 if weight.flags.c_contiguous else weight.nbytes
    ensure_workspace_fits(sum(copies.values()), workspace_limit,
                          f"contiguous copies of {' and '.join(name for name, n in copies.items() if n)}")
    fixed = sum(copies.values())
    input_plan = _InputGradientPlan(g, dtype.itemsize, budget, workspace_limit, fixed) if want_input else None
    weight_plan = _WeightGradientPlan(g, x, budget, workspace_limit, copies["grad_y"]) if want_weight else None
    grad_y = np.ascontiguousarray(grad_y)
    grad_x = grad_w = grad_b = None
    counts: dict[str, Counts] = {}
    if want_input:
        grad_x, (mults, adds, padded) = _input_gradient(grad_y, np.ascontiguousarray(weight), input_plan, count,
                                                        out.input)
        counts["input"] = Counts(mults, adds, convention, NAME, padded, input_plan.workspace_bytes + fixed)
    if want_weight:
        grad_w, (mults, adds, padded) = _weight_gradient(grad_y, x, weight_plan, count, out.weight)
        counts["weight"] = Counts(mults, adds, convention, NAME, padded,
                                  weight_plan.workspace_bytes + copies["grad_y"])
    if want_bias:
        grad_b = grad_y.sum(axis=(0, 2, 3), out=out.bias)
        # a reduction of N x OH x OW terms into each of C_out sums, from the shapes reduced
        terms = grad_y.size // g.out_channels
        counts["bias"] = Counts(0, g.out_channels * (terms - 1), convention, NAME, 0, copies["grad_y"])
    grads = Grads(grad_x, grad_w, grad_b)
    if not count:
        return grads, None
    return grads, GradCounts(counts.get("input"), counts.get("weight"), counts.get("bias"), convention, NAME)
