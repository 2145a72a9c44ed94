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
wins everywhere, needs no compilation and no thread pool (which, on a shared
machine, stalled for milliseconds), so there is no Numba here.  Splitting
the copy between two Python threads (NumPy releases the GIL) gained nothing
at these chunk sizes either.

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
buffers allocated (column matrix and padded copy, plus a contiguous copy of
the weight when it was not contiguous).
"""

from __future__ import annotations

import math
import time

import numpy as np
from numpy.lib.stride_tricks import as_strided

from npconv.counts import Counts
from npconv.geometry import ConvGeometry
from npconv.memory import ensure_workspace_fits, format_bytes

NAME = "im2col"
#: Conventions this kernel can execute: a GEMM multiplies the padded zeros too.
CONVENTIONS = ("dense",)
#: Runs on NumPy's BLAS: no interpreter's rate limits the layers it runs.
MULTS_PER_SECOND = None

#: Largest workspace chunk aimed for, even when the workspace limit allows more:
#: a chunk this size is still in the 32 MiB L3 cache (and mostly in the L2) when
#: the GEMM packs it.  Chosen by timing the benchmark layers (see bench/im2col_split.py).
CHUNK_TARGET_BYTES = 4 * 2**20


class Plan:
    """How one layer is run: the chunking and the buffers' shapes, decided before allocating.

    Attributes
    ----------
    images_per_chunk, rows_per_chunk : chunk size, in images and output rows
        (``rows_per_chunk < OH`` only with one image per chunk)
    lowered : False for the 1x1 stride-1 unpadded layer whose input is
        already the column matrix
    padded : whether a zero-bordered copy of the input rows is built
    workspace_bytes : the buffers' total size (column matrix, padded copy,
        contiguous weight copy)
    """

    __slots__ = ("col_bytes", "g", "images_per_chunk", "lowered", "pad_bytes", "padded",
                 "rows_per_chunk", "weight_copy_bytes", "workspace_bytes")

    def __init__(self, g: ConvGeometry, x: np.ndarray, weight: np.ndarray, workspace_limit: int,
                 target_bytes: int = CHUNK_TARGET_BYTES):
        self.g = g
        itemsize = x.dtype.itemsize
        self.weight_copy_bytes = 0 if weight.flags.c_contiguous else weight.nbytes
        self.padded = g.has_padding
        self.lowered = not _is_column_matrix_already(g, x)
        batch, out_height = g.batch, g.out_height
        if not self.lowered:
            # no workspace; chunk only so that the bias is added while the output is in cache
            output_image_bytes = g.out_channels * out_height * g.out_width * itemsize
            self.images_per_chunk = _even_chunks(batch, target_bytes // output_image_bytes)
            self.rows_per_chunk = out_height
            self.col_bytes = self.pad_bytes = 0
        else:
            row_bytes = g.in_channels * g.kernel_h * g.kernel_w * g.out_width * itemsize
            padded_row_bytes = g.in_channels * _padded_width(g) * itemsize if self.padded else 0

            def chunk_bytes(images: int, rows: int) -> int:
                return images * (rows * row_bytes + _input_rows(g, rows) * padded_row_bytes)

            budget = min(workspace_limit, target_bytes) - self.weight_copy_bytes
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
                        f"{', with its zero-padded input rows' if self.padded else ''}"
                        f"{', and a contiguous copy of the weight' if self.weight_copy_bytes else ''}:"
                        f" {smallest:,} bytes)",
                    )
            self.images_per_chunk, self.rows_per_chunk = images, rows
            self.col_bytes = images * rows * row_bytes
            self.pad_bytes = images * _input_rows(g, rows) * padded_row_bytes
        self.workspace_bytes = self.col_bytes + self.pad_bytes + self.weight_copy_bytes
        ensure_workspace_fits(
            self.workspace_bytes, workspace_limit,
            f"the im2col workspace ({self.workspace_bytes:,} bytes: a column matrix of "
            f"{format_bytes(self.col_bytes)} for {self.images_per_chunk} image(s) x "
            f"{self.rows_per_chunk} output row(s))",
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
        self.cols = np.empty(plan.col_bytes // x.itemsize, dtype=x.dtype)
        if plan.padded:
            self.padded_input = np.empty(
                (plan.images_per_chunk, g.in_channels, _input_rows(g, plan.rows_per_chunk), _padded_width(g)),
                dtype=x.dtype,
            )
            if count:
                # which padded-input columns hold input, seen through the lowering's window view
                real = np.zeros(_padded_width(g), dtype=np.uint8)
                real[g.padding[1][0]: g.padding[1][0] + g.width] = 1
                self.real_taps_w = int(_windows(real, g.kernel_w, g.out_width, dw, sw).sum())

    def __call__(self, n0: int, n1: int, r0: int, r1: int) -> np.ndarray:
        """The column matrices of images ``n0:n1``, output rows ``r0:r1``.

        Returns an array ``(n1 - n0, groups, C_in/g x KH x KW, (r1 - r0) x OW)``:
        a view of ``x`` when no lowering is needed, else a view of the
        reused column buffer.
        """
        images, rows = n1 - n0, r1 - r0
        if not self.plan.lowered:
            return self.x[n0:n1].reshape(images, *self.stack)
        dh, dw, sh, sw = self.step
        shape = (images, *self.taps, rows, self.out_width)
        if self.plan.padded:
            source = self._fill_padded(n0, n1, r0, r1)
            s0, s1, s2, s3 = source.strides
            windows = np.ndarray(shape, source.dtype, source, 0, (s0, s1, dh * s2, dw * s3, sh * s2, sw * s3))
        else:
            source = self.x[n0:n1, :, r0 * sh:]
            s0, s1, s2, s3 = source.strides
            windows = as_strided(source, shape, (s0, s1, dh * s2, dw * s3, sh * s2, sw * s3), writeable=False)
        cols = self.cols[: windows.size].reshape(shape)
        np.copyto(cols, windows)
        return cols.reshape(images, *self.stack, rows * self.out_width)

    def _fill_padded(self, n0: int, n1: int, r0: int, r1: int) -> np.ndarray:
        """Copy the input rows that output rows ``r0:r1`` read into the zero-bordered buffer."""
        g = self.g
        (top, _), (left, _) = g.padding
        height, width = g.height, g.width
        rows_in = _input_rows(g, r1 - r0)
        buffer = self.padded_input[: n1 - n0]
        first = r0 * g.stride[0]  # first padded-input row read
        # buffer rows [a, b) hold input rows [first + a - top, first + b - top); the rest is zero
        a = min(max(top - first, 0), rows_in)
        b = max(min(top + height - first, rows_in), a)
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
        if self.count:
            real = np.zeros(rows_in, dtype=np.uint8)
            real[a:b] = 1
            real_taps_h = int(_windows(real, g.kernel_h, r1 - r0, g.dilation[0], g.stride[0]).sum())
            taps = g.kernel_h * g.kernel_w * (r1 - r0) * g.out_width
            self.padded_entries += (n1 - n0) * g.in_channels * (taps - real_taps_h * self.real_taps_w)
        return buffer


def _windows(mask: np.ndarray, kernel: int, outputs: int, dilation: int, stride: int) -> np.ndarray:
    """``mask`` seen through one axis of the lowering's view: ``[k, o] = mask[k * dilation + o * stride]``."""
    (step,) = mask.strides
    return np.ndarray((kernel, outputs), mask.dtype, mask, 0, (dilation * step, stride * step))


def _convolve(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, plan: Plan, *,
              count: bool, stage_times: dict[str, float] | None = None):
    """Run ``plan``: returns ``y`` and the tallies ``(mults, adds, padded_mults)``.

    ``stage_times``, when a dict, accumulates seconds spent in ``"lower"``,
    ``"gemm"`` and ``"bias"`` (for ``bench/im2col_split.py``).
    """
    g = plan.g
    batch, groups, out_per_group = g.batch, g.groups, g.out_channels_per_group
    out_height, out_width = g.out_height, g.out_width
    images_per_chunk, rows_per_chunk = plan.images_per_chunk, plan.rows_per_chunk
    weights = np.ascontiguousarray(weight).reshape(groups, out_per_group, -1)
    y = np.empty((batch, g.out_channels, out_height, out_width), dtype=x.dtype)
    # y[n] as (groups, C_out/g, OH, OW): a row chunk of it is the GEMM output as it is
    y_groups = y.reshape(batch, groups, out_per_group, out_height, out_width)
    bias_column = None if bias is None else bias.reshape(groups, out_per_group, 1)
    lower = _Lowering(x, plan, count)
    timed = stage_times is not None
    mults = adds = 0
    for n0 in range(0, batch, images_per_chunk):
        n1 = min(n0 + images_per_chunk, batch)
        for r0 in range(0, out_height, rows_per_chunk):
            r1 = min(r0 + rows_per_chunk, out_height)
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
    return y, (mults, adds, lower.padded_entries * weights.shape[1])


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

    Returns
    -------
    y : (N, C_out, OH, OW) C-contiguous array of ``x.dtype``
    counts : :class:`~npconv.counts.Counts`, or None when ``count`` is false

    Raises
    ------
    ConvMemoryError
        naming ``workspace_limit`` when even one image and one output row
        do not fit, before anything is allocated.
    """
    if geometry.batch == 0:  # an empty batch: no chunk to plan, nothing to lower or multiply
        return np.empty(geometry.output_shape, dtype=x.dtype), (Counts(0, 0, convention, NAME) if count else None)
    plan = Plan(geometry, x, weight, workspace_limit)
    y, (mults, adds, padded_mults) = _convolve(x, weight, bias, plan, count=count)
    if not count:
        return y, None
    return y, Counts(mults, adds, convention, NAME, padded_mults, plan.workspace_bytes)
