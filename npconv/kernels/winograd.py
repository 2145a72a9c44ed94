"""Winograd kernel: 3x3 stride-1 convolution by minimal filtering, as batched GEMMs.

Winograd's minimal filtering F(m x m, 3 x 3) computes an ``m x m`` tile of
outputs from an ``alpha x alpha`` input tile (``alpha = m + 2``) with
``alpha^2`` products instead of ``9 m^2``: 16 instead of 36 for F(2x2,3x3)
(2.25x fewer), 36 instead of 144 for F(4x4,3x3) (4x fewer)::

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (matrices: npconv.formulas.WINOGRAD_TRANSFORMS)

Summed over input channels, the elementwise products become matrix products
(Lavin & Gray 2016): with ``U = G g G^T`` (the filter transform, per output
and input channel) and ``V = B^T d B`` (the input transform, per tile and
input channel), the transform of every output tile is, for each of the
``alpha^2`` transform positions ``(a, b)`` and each group,

    M[a, b] = U[a, b] @ V[a, b]     (C_out/g x C_in/g) @ (C_in/g x tiles)

one GEMM per position and group, all of them one batched ``np.matmul``; the
output transform ``A^T M A`` gives the tiles.  A depthwise layer (one input
channel per group) needs no sum: its "GEMM" is a broadcast product, executed
as one ``np.multiply`` with the same count.

The transforms are sparse linear combinations, executed as such: every output
of a transform is a sum of its nonzero coefficients times its inputs, one
vectorised NumPy operation per term over every tile and channel of a chunk,
so that a coefficient +-1 is an addition or a subtraction and any other
constant is one (counted) multiplication.  Each transform is applied
separably, rows then columns.

Memory layout, chosen so that every one of those operations runs on whole
contiguous buffers (NumPy is several times slower on strided views whose
rows are short).  The input is copied once into ``alpha`` row streams (row
``a`` of every tile of a tile row, so that the rows neighbouring tiles share
are copied twice), each with its columns split by phase: column ``s m + p``
at ``[p, s]``.  The row pass then combines whole streams, and column ``b`` of
tile ``s`` is phase ``b mod m`` at ``s + b div m``: the column pass is the
row pass's output shifted by 0 or 1, contiguous too, and shared by the tiles
side by side.  The price is one unused tile column per tile row (the shift
reads the next row there): every pass, the GEMMs included, runs over
``T_W + 1`` tile columns, and the counts say so.

Layers: 3x3 kernels, stride 1, dilation 1 (:func:`supports`); any padding
(asymmetric, ``"same"``), groups, depth multiplier.  The output is cut into
``ceil(OH / m) x ceil(OW / m)`` tiles; partial tiles at the bottom and right
are computed in full over zeros and the extra outputs dropped.

Method names (one module, three names): ``"winograd2"`` is F(2x2,3x3),
``"winograd4"`` is F(4x4,3x3), ``"winograd"`` takes the tile
:func:`default_tile` gives (F(2x2,3x3), the faster measured).

Counting (convention ``"winograd"``, closed forms
``npconv.formulas.winograd_counts``): each transform operation tallies the
size of the array it wrote (one multiplication or addition per element),
the GEMMs their ``positions x M x K x N`` products and ``positions x M x N x
(K - 1)`` additions from the operands' shapes, the bias one addition per
tiled output (it is added in the output transform's last pass).  The filter
transform runs, and is counted, on every call (nothing is cached between
calls: the weights may have changed).  Counting is dense over the tiled,
zero-padded input: padding zeros, and the zeros that fill partial tiles, are
transformed and multiplied like any value.  ``padded_mults`` is 0: a
transform-domain product mixes a whole tile, so no product is "the
multiplication of a padding zero".

Bounded workspace: the transformed tiles of a chunk (``alpha^2 / m^2`` times
its input, and as much again per output channel for ``M``) are built a chunk
at a time, whole images or rows of tiles of one image, within the workspace
limit and :data:`CHUNK_TARGET_BYTES`; a layer whose smallest chunk, one row
of tiles of one image, does not fit is refused before anything is allocated.

Rounding: every transform and product is a float operation in ``x.dtype``;
the transforms' constants (1/6, 1/24, 8, ...) make F(4x4,3x3) lose about a
decimal digit against direct summation in float32 (the README's table).

Size: one module for both tile sizes: the transforms, the batched GEMMs and their counting
are the same code parametrised by the tile.
"""

from __future__ import annotations

import math
import time

import numpy as np

from npconv import formulas
from npconv.counts import Counts, Stage
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry
from npconv.kernels._threads import blas_single_threaded, blas_threads, in_parallel
from npconv.memory import ensure_workspace_fits, format_bytes

NAME = "winograd"
#: The one convention this kernel executes: its own transform-domain count.
CONVENTIONS = ("winograd",)
#: Compiled NumPy operations and BLAS calls, not interpreted loops.
MULTS_PER_SECOND = None

#: Output tile sizes ``m`` of F(m x m, 3 x 3) and the method name of each.
TILE_METHODS = {2: "winograd2", 4: "winograd4"}

#: Largest workspace chunk aimed for, even when the workspace limit allows more: the
#: transformed tiles of a chunk are still in cache when the GEMMs and the output transform
#: read them.  Chosen by timing the benchmark layers (bench/winograd_fft.py).
CHUNK_TARGET_BYTES = 16 * 2**20

SUPPORTED = "3x3 kernels at stride 1 and dilation 1 (any padding, groups, depth multiplier)"


def supports(geometry: ConvGeometry) -> str | None:
    """Why this kernel cannot run ``geometry`` (e.g. ``"a layer with stride 2"``), or None when it can."""
    return formulas.winograd_unsupported(geometry)


def default_tile(geometry: ConvGeometry) -> int:
    """The output tile ``method="winograd"`` uses: 2, F(2x2,3x3), measured the faster on both 3x3
    stride-1 layers of the benchmark set (bench/winograd_fft.py, quiet machine, one interleaved run
    each: resnet 3x3 17.6 ms against F(4x4,3x3)'s 19.9 ms on one thread, 13.8 against 17.9 on two;
    depthwise 3x3 21.0 against 30.6 and 19.0 against 23.6).  F(4x4,3x3) makes 1.7x fewer products,
    but its transforms' constants cost a multiplication each, and in NumPy operations the
    transforms weigh as much as the GEMMs; it is kept as ``"winograd4"``.  The number is
    ``npconv.formulas.WINOGRAD_DEFAULT_TILE``, so that the closed forms know it."""
    return formulas.WINOGRAD_DEFAULT_TILE


def check_supported(geometry: ConvGeometry, method: str = NAME) -> None:
    """Raise a :class:`ConvArgumentError` naming ``method`` and what it runs, for a layer it cannot."""
    problem = supports(geometry)
    if problem is not None:
        raise ConvArgumentError(
            "method",
            f"a method that runs this layer: {method!r} runs {SUPPORTED} only "
            f"(method='im2col' or 'direct' run every layer)",
            f"{method!r} for {problem}",
        )


# ---------------------------------------------------------------------- planning


class Plan:
    """The tiling, the chunking and the buffers of one call, decided before allocating.

    Chunks are ``images_per_chunk`` whole images, or (one image at a time)
    ``tile_rows_per_chunk`` rows of tiles; ``workers`` threads (at most the
    ``workers`` asked for, and as many as the limit holds) each run a share
    of the chunks with buffers of their own.  Buffer shapes, per chunk of ``n``
    images and ``t`` tile rows, with ``q = T_W + 1`` tile columns computed
    (the last one unused, see the module docstring) and ``P = n t q``:

    ========== ========================================== ======================================
    buffer     shape                                      holds
    ========== ========================================== ======================================
    streams    (alpha, m, C_in, n, t, q)                  zero-padded input: row ``u m + a`` of
                                                          tile row ``u`` at ``[a]``, columns by phase
    rows       (m, C_in, n, t, q) + 1                     input transform, row pass, one row
    tiles      (alpha, alpha, C_in, P)                    V = B^T d B
    products   (alpha, alpha, C_out, P)                   M = U @ V per position and group
    half       (alpha, C_out, P)                          output transform, row pass, one row
    outputs    (m, C_out, P)                              one row of every tile's outputs
    scratch    (max(m C_in, alpha C_out), P)              a term times its constant
    ========== ========================================== ======================================

    plus, once per call, the filter transform ``(alpha, alpha, C_out, C_in/g)``
    and its row pass ``(alpha, C_out, C_in/g, 3)``.
    """

    def __init__(self, g: ConvGeometry, m: int, itemsize: int, workspace_limit: int,
                 target_bytes: int = CHUNK_TARGET_BYTES, workers: int = 1):
        self.g, self.m = g, m
        self.transform = formulas.WINOGRAD_TRANSFORMS[m]
        alpha = self.alpha = self.transform.alpha
        self.tiles_h = math.ceil(g.out_height / m)
        self.tiles_w = math.ceil(g.out_width / m)
        self.tile_columns = self.tiles_w + 1
        c_in, c_out = g.in_channels, g.out_channels
        self.filter_bytes = itemsize * (alpha * alpha + alpha * 3) * c_out * g.in_channels_per_group

        def chunk_bytes(images: int, tile_rows: int) -> int:
            tiles = images * tile_rows * self.tile_columns
            values = (alpha * m * c_in * tiles + m * c_in * tiles + 1 + alpha * alpha * (c_in + c_out) * tiles
                      + alpha * c_out * tiles + m * c_out * tiles + max(m * c_in, alpha * c_out) * tiles)
            return values * itemsize

        self.chunk_bytes = chunk_bytes
        smallest = chunk_bytes(1, 1) + self.filter_bytes
        ensure_workspace_fits(
            smallest, workspace_limit,
            f"the Winograd F({m}x{m},3x3) workspace of one row of tiles of one image "
            f"({self.tiles_w} tiles x {c_in} input and {c_out} output channels, transformed, "
            f"with the transformed filters: {smallest:,} bytes)",
        )
        # as many workers as the limit holds a smallest chunk for, each with its own buffers
        workers = max(1, min(workers, (workspace_limit - self.filter_bytes) // chunk_bytes(1, 1)))
        budget = min((workspace_limit - self.filter_bytes) // workers, target_bytes)
        image_bytes = chunk_bytes(1, self.tiles_h)
        if image_bytes <= budget:
            images, tile_rows = _even_chunks(g.batch, budget // image_bytes), self.tiles_h
        else:
            images = 1
            per_row = chunk_bytes(1, 2) - chunk_bytes(1, 1)
            fixed = chunk_bytes(1, 1) - per_row
            tile_rows = _even_chunks(self.tiles_h, max(1, (budget - fixed) // per_row))
        self.images_per_chunk, self.tile_rows_per_chunk = images, tile_rows
        self.workers = max(1, min(workers, self.chunks))
        self.workspace_bytes = self.workers * chunk_bytes(images, tile_rows) + self.filter_bytes
        ensure_workspace_fits(
            self.workspace_bytes, workspace_limit,
            f"the Winograd workspace ({self.workspace_bytes:,} bytes: {format_bytes(self.workspace_bytes)} "
            f"for {self.workers} worker(s), each {images} image(s) x {tile_rows} row(s) of tiles)",
        )

    @property
    def chunks(self) -> int:
        g = self.g
        return math.ceil(g.batch / self.images_per_chunk) * math.ceil(self.tiles_h / self.tile_rows_per_chunk)


def _even_chunks(total: int, largest: int) -> int:
    """The chunk size <= ``largest`` that splits ``total`` into the fewest, most equal chunks."""
    pieces = math.ceil(total / max(1, min(largest, total)))
    return math.ceil(total / pieces)


# ---------------------------------------------------------------------- sparse linear combinations


class _Tally:
    """Mults and adds per stage, from the sizes of the arrays each operation wrote."""

    def __init__(self) -> None:
        self.counts = {name: [0, 0] for name in formulas.WINOGRAD_STAGES}

    def add(self, stage: str, mults: int, adds: int) -> None:
        entry = self.counts[stage]
        entry[0] += mults
        entry[1] += adds

    def stages(self) -> tuple[Stage, ...]:
        return tuple(Stage(name, mults, adds) for name, (mults, adds) in self.counts.items())


def _row_terms(matrix, dtype: np.dtype) -> list[list[tuple[int, float, int]]]:
    """Per row of ``matrix``: its nonzero terms ``(index, constant in dtype, kind)`` in summing order,
    kind 1 for +1, -1 for -1, 0 for any other constant (see ``formulas.combination_terms``)."""
    rows = []
    for row in matrix:
        terms = []
        for j, c in formulas.combination_terms(row):
            kind = 1 if c == 1 else -1 if c == -1 else 0
            terms.append((j, dtype.type(c.numerator / c.denominator), kind))
        rows.append(terms)
    return rows


def _combine(terms, sources, target: np.ndarray, scratch: np.ndarray, *, accumulator: np.ndarray | None = None,
             bias: np.ndarray | None = None) -> tuple[int, int, int]:
    """``target = [bias +] sum(c * sources[j] for j, c in terms)``, one NumPy operation per term.

    ``sources[j]`` is an array of ``target``'s shape; ``scratch`` holds a term
    times its constant; partial sums go to ``accumulator`` when given (so that
    only the last operation writes to a strided ``target``).  Returns the
    ``(mults, adds, bias adds)`` executed, one per element written: a +1 first
    term costs nothing (the second term is added to it, or it is copied when
    alone), later +-1 terms one addition or subtraction, any other constant
    one multiplication (and one addition).
    """
    size = target.size
    mults = adds = bias_adds = 0
    last = len(terms) - 1
    sums = target if accumulator is None else accumulator
    j, constant, kind = terms[0]
    first = target if last == 0 else sums
    if kind == 1 and bias is None:
        running = sources[j]  # nothing to compute yet: the next term is added to it
        if last == 0:
            np.copyto(target, running)
    else:
        if kind == 1:
            np.add(sources[j], bias, out=first)
            bias_adds += size
        else:
            np.multiply(sources[j], constant, out=first)
            mults += size
            if bias is not None:
                np.add(first, bias, out=first)
                bias_adds += size
        running = first
    for k in range(1, last + 1):
        j, constant, kind = terms[k]
        out = target if k == last else sums
        if kind == 1:
            np.add(running, sources[j], out=out)
        elif kind == -1:
            np.subtract(running, sources[j], out=out)
        else:
            np.multiply(sources[j], constant, out=scratch)
            np.add(running, scratch, out=out)
            mults += size
        adds += size
        running = out
    return mults, adds, bias_adds


# ---------------------------------------------------------------------- the stages


def _filter_transform(weight: np.ndarray, plan: Plan, tally: _Tally) -> np.ndarray:
    """``U = G g G^T`` for every filter: ``(alpha^2, groups, C_out/g, C_in/g)``."""
    g, alpha = plan.g, plan.alpha
    dtype = weight.dtype
    terms = _row_terms(plan.transform.filter_matrix, dtype)
    c_out, per_group = g.out_channels, g.in_channels_per_group
    row_pass = np.empty((alpha, c_out, per_group, 3), dtype)
    scratch = np.empty((c_out, per_group, 3), dtype)
    transformed = np.empty((alpha, alpha, c_out, per_group), dtype)
    mults = adds = 0
    kernel_rows = [weight[:, :, j, :] for j in range(3)]
    for a in range(alpha):
        done = _combine(terms[a], kernel_rows, row_pass[a], scratch)
        mults, adds = mults + done[0], adds + done[1]
    for a in range(alpha):
        columns = [row_pass[a][..., j] for j in range(3)]
        for b in range(alpha):
            done = _combine(terms[b], columns, transformed[a, b], scratch[..., 0])
            mults, adds = mults + done[0], adds + done[1]
    tally.add("filter transform", mults, adds)
    return transformed.reshape(alpha * alpha, g.groups, g.out_channels_per_group, per_group)


class _Buffers:
    """The chunk buffers of :class:`Plan`, allocated once per call and viewed per chunk."""

    def __init__(self, plan: Plan, dtype: np.dtype):
        g, m, alpha = plan.g, plan.m, plan.alpha
        tiles = plan.images_per_chunk * plan.tile_rows_per_chunk * plan.tile_columns
        c_in, c_out = g.in_channels, g.out_channels
        self.streams = np.empty(alpha * m * c_in * tiles, dtype)
        self.rows = np.zeros(m * c_in * tiles + 1, dtype)  # + 1: read past the end for the unused column
        self.tiles = np.empty(alpha * alpha * c_in * tiles, dtype)
        self.products = np.empty(alpha * alpha * c_out * tiles, dtype)
        self.half = np.empty(alpha * c_out * tiles, dtype)
        self.outputs = np.empty(m * c_out * tiles, dtype)
        self.scratch = np.empty(max(m * c_in, alpha * c_out) * tiles, dtype)

    @staticmethod
    def view(buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return buffer[: math.prod(shape)].reshape(shape)


def _slots(pad: int, size: int, m: int, offset: int, slots: int) -> tuple[int, int]:
    """Slots ``[lo, hi)`` among ``slots`` whose padded position ``slot x m + offset`` is real input
    (input position ``slot x m + offset - pad`` in ``[0, size)``)."""
    lo = max(0, -(-(pad - offset) // m))
    hi = min(slots, -(-(pad + size - offset) // m))
    return lo, max(lo, hi)


def _fill_streams(x: np.ndarray, streams: np.ndarray, plan: Plan, n0: int, n1: int, t0: int) -> None:
    """Copy the input a chunk's tiles read into row streams, zero-padded, columns split by phase.

    ``streams[a, cp, c, i, u, s]`` is padded-input row ``(t0 + u) m + a``,
    column ``s m + cp`` of image ``n0 + i``, channel ``c``: row ``a`` of every
    tile of tile row ``u`` (the rows two vertically neighbouring tiles share
    are copied twice, so that the row pass reads each stream contiguously).
    """
    g, m = plan.g, plan.m
    (top, _), (left, _) = g.padding
    tile_rows, columns = streams.shape[4], streams.shape[5]
    chunk_top = top - t0 * m  # where the input's first row is, in padded rows of this chunk
    images = x[n0:n1].transpose(1, 0, 2, 3)
    for a in range(streams.shape[0]):
        r_lo, r_hi = _slots(chunk_top, g.height, m, a, tile_rows)
        for cp in range(m):
            target = streams[a, cp]
            c_lo, c_hi = _slots(left, g.width, m, cp, columns)
            if r_lo == r_hi or c_lo == c_hi:
                target[...] = 0
                continue
            row0, col0 = r_lo * m + a - chunk_top, c_lo * m + cp - left
            target[:, :, r_lo:r_hi, c_lo:c_hi] = images[:, :, row0: row0 + (r_hi - r_lo - 1) * m + 1: m,
                                                        col0: col0 + (c_hi - c_lo - 1) * m + 1: m]
            if r_lo:
                target[:, :, :r_lo] = 0
            if r_hi < tile_rows:
                target[:, :, r_hi:] = 0
            if c_lo:
                target[:, :, r_lo:r_hi, :c_lo] = 0
            if c_hi < columns:
                target[:, :, r_lo:r_hi, c_hi:] = 0


class _Clock:
    """Adds the time since the previous call to ``times[stage]``; does nothing without a dict."""

    def __init__(self, times: dict[str, float] | None):
        self.times = times
        self.last = time.perf_counter() if times is not None else 0.0

    def __call__(self, stage: str) -> None:
        if self.times is not None:
            now = time.perf_counter()
            self.times[stage] = self.times.get(stage, 0.0) + now - self.last
            self.last = now


#: Below this many values in a layer's transforms, it runs on the calling thread alone.
PARALLEL_MIN_VALUES = 1_000_000


def _input_transform(x: np.ndarray, buffers: _Buffers, plan: Plan, terms, chunk: tuple[int, int, int, int]
                     ) -> tuple[int, int]:
    """Fill and transform a chunk into ``V``; the ``(mults, adds)`` executed.

    For each row ``a'`` of ``B^T``: the row pass ``rows = sum_a B^T[a', a] stream[a]``
    (all ``m`` column phases of every tile), then the column pass
    ``V[a', b'] = sum_b B^T[b', b] (column b of every tile)``, column ``b`` being
    phase ``b mod m`` of the row pass, ``b div m`` tile columns on.
    """
    g, m, alpha, q = plan.g, plan.m, plan.alpha, plan.tile_columns
    n0, n1, t0, t1 = chunk
    images, tile_rows = n1 - n0, t1 - t0
    tiles = images * tile_rows * q
    c_in = g.in_channels
    plane = c_in * tiles
    streams = _Buffers.view(buffers.streams, (alpha, m, c_in, images, tile_rows, q))
    _fill_streams(x, streams, plan, n0, n1, t0)
    streams = streams.reshape(alpha, m * plane)
    rows = buffers.rows[: m * plane + 1]
    rows[-1] = 0  # read only for the unused column
    row_pass = rows[: m * plane]
    shifted = [rows[(b % m) * plane + b // m: (b % m + 1) * plane + b // m] for b in range(alpha)]
    v = _Buffers.view(buffers.tiles, (alpha, alpha, plane))
    mults = adds = 0
    for a in range(alpha):
        done = _combine(terms[a], streams, row_pass, buffers.scratch[: m * plane])
        mults, adds = mults + done[0], adds + done[1]
        for b in range(alpha):
            done = _combine(terms[b], shifted, v[a, b], buffers.scratch[:plane])
            mults, adds = mults + done[0], adds + done[1]
    return mults, adds


def _transform_products(filters: np.ndarray, buffers: _Buffers, plan: Plan, tiles: int) -> tuple[int, int]:
    """One GEMM per transform position and group, ``(C_out/g x C_in/g) @ (C_in/g x tiles)``, as
    one batched ``np.matmul``, or for one input channel per group (``K = 1``, depthwise) the
    broadcast product, nothing summed; the ``(mults, adds)`` from the operands' shapes."""
    g, positions = plan.g, plan.alpha * plan.alpha
    per_in, per_out = g.in_channels_per_group, g.out_channels_per_group
    v = _Buffers.view(buffers.tiles, (positions, g.groups, per_in, tiles))
    products = _Buffers.view(buffers.products, (positions, g.groups, per_out, tiles))
    if per_in == 1:
        np.multiply(filters, v, out=products)
    else:
        np.matmul(filters, v, out=products)
    stack = positions * g.groups
    return stack * per_out * per_in * tiles, stack * per_out * (per_in - 1) * tiles


def _output_transform(y: np.ndarray, buffers: _Buffers, plan: Plan, terms, bias: np.ndarray | None,
                      chunk: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """``Y = A^T M A`` for a chunk, written into ``y``; the ``(mults, adds, bias adds)`` executed.

    ``half = sum_a A^T[i, a] M[a]``, then ``Y[i, j] = sum_b A^T[j, b] half[b]``
    (the bias added in its first term), then output ``(u m + i, s m + j)`` of
    every tile ``(u, s)`` copied to ``y``, partial tiles cut at ``OH x OW``.
    """
    g, m, alpha, q = plan.g, plan.m, plan.alpha, plan.tile_columns
    n0, n1, t0, t1 = chunk
    images, tile_rows = n1 - n0, t1 - t0
    tiles = images * tile_rows * q
    c_out = g.out_channels
    products = _Buffers.view(buffers.products, (alpha, alpha * c_out * tiles))
    half = _Buffers.view(buffers.half, (alpha, c_out, tiles))
    outputs = _Buffers.view(buffers.outputs, (m, c_out, tiles))
    bias_column = None if bias is None else bias.reshape(c_out, 1)
    out = y[n0:n1, :, t0 * m: min(t1 * m, g.out_height)]
    tile_outputs = outputs.reshape(m, c_out, images, tile_rows, q)
    scratch = _Buffers.view(buffers.scratch, (c_out, tiles))
    mults = adds = bias_adds = 0
    for i in range(m):
        done = _combine(terms[i], products, half.reshape(-1), buffers.scratch[: alpha * c_out * tiles])
        mults, adds = mults + done[0], adds + done[1]
        for j in range(m):
            done = _combine(terms[j], half, outputs[j], scratch, bias=bias_column)
            mults, adds, bias_adds = mults + done[0], adds + done[1], bias_adds + done[2]
        rows_i = out[:, :, i::m]
        for j in range(m):
            cut = rows_i[:, :, :, j::m].transpose(1, 0, 2, 3)
            np.copyto(cut, tile_outputs[j, :, :, : cut.shape[2], : cut.shape[3]])
    return mults, adds, bias_adds


def _run_chunks(x: np.ndarray, filters: np.ndarray, bias: np.ndarray | None, y: np.ndarray, plan: Plan,
                chunks: list[tuple[int, int, int, int]], timed: bool) -> tuple[_Tally, dict[str, float]]:
    """Run ``chunks`` with buffers of their own (one worker's share); its tally and stage times."""
    dtype = x.dtype
    input_terms = _row_terms(plan.transform.input_matrix, dtype)
    output_terms = _row_terms(plan.transform.output_matrix, dtype)
    buffers = _Buffers(plan, dtype)
    tally, times = _Tally(), {}
    clock = _Clock(times if timed else None)
    for chunk in chunks:
        n0, n1, t0, t1 = chunk
        tiles = (n1 - n0) * (t1 - t0) * plan.tile_columns  # per channel, the unused tile column included
        tally.add("input transform", *_input_transform(x, buffers, plan, input_terms, chunk))
        clock("input")
        tally.add("transform-domain products", *_transform_products(filters, buffers, plan, tiles))
        clock("gemm")
        mults, adds, bias_adds = _output_transform(y, buffers, plan, output_terms, bias, chunk)
        tally.add("output transform", mults, adds)
        tally.add("bias", 0, bias_adds)
        clock("output")
    return tally, times


def _convolve(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, plan: Plan, tally: _Tally,
              stage_times: dict[str, float] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Run ``plan``, tallying into ``tally``.

    With ``plan.workers > 1`` the chunks are shared out in contiguous runs,
    one per worker thread (this one included), each worker's GEMMs on one
    BLAS thread (:class:`~npconv.kernels._threads.blas_single_threaded`): one
    batched ``np.matmul`` is one BLAS call per transform position and group,
    each too small to be worth waking BLAS worker threads for, and a worker
    that runs a whole chunk meets the others only once, at the end (on a busy
    machine every meeting costs up to a scheduler tick).  The counts do not
    depend on the number of workers; the output only to rounding, as the
    workers share the workspace limit, so chunks (and the GEMMs' shapes, by
    which the BLAS blocks its work) may differ.
    ``stage_times``, when a dict, accumulates seconds spent in ``"filter"``,
    ``"input"``, ``"gemm"`` and ``"output"``, summed over workers (for
    ``bench/winograd_fft.py``).
    """
    clock = _Clock(stage_times)
    g = plan.g
    filters = _filter_transform(weight, plan, tally)
    clock("filter")
    y = np.empty(g.output_shape, x.dtype) if out is None else out
    chunks = [(n0, min(n0 + plan.images_per_chunk, g.batch), t0, min(t0 + plan.tile_rows_per_chunk, plan.tiles_h))
              for n0 in range(0, g.batch, plan.images_per_chunk)
              for t0 in range(0, plan.tiles_h, plan.tile_rows_per_chunk)]
    timed = stage_times is not None
    if plan.workers == 1:
        results = [_run_chunks(x, filters, bias, y, plan, chunks, timed)]
    else:
        edges = [len(chunks) * k // plan.workers for k in range(plan.workers + 1)]
        shares = [chunks[edges[k]: edges[k + 1]] for k in range(plan.workers)]
        with blas_single_threaded():
            results = in_parallel(_run_chunks, x, filters, bias, y, plan, parts=[(share, timed) for share in shares])
    for worker_tally, times in results:
        for name, (mults, adds) in worker_tally.counts.items():
            tally.add(name, mults, adds)
        if timed:
            for stage, seconds in times.items():
                stage_times[stage] = stage_times.get(stage, 0.0) + seconds
    return y


def run(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geometry: ConvGeometry, m: int, method: str, *,
        count: bool, workspace_limit: int, target_bytes: int = CHUNK_TARGET_BYTES,
        stage_times: dict[str, float] | None = None, out: np.ndarray | None = None) -> tuple[np.ndarray, Counts | None]:
    """Winograd F(m x m, 3 x 3) on a validated layer; see :func:`conv2d`."""
    check_supported(geometry, method)
    algorithm = formulas.WINOGRAD_TRANSFORMS[m].name
    if geometry.batch == 0:  # an empty batch: nothing to transform or multiply
        y = np.empty(geometry.output_shape, dtype=x.dtype) if out is None else out
        return y, (Counts(0, 0, "winograd", method, stages=_Tally().stages(), algorithm=algorithm) if count else None)
    work = (m + 2) ** 2 * (geometry.in_channels + geometry.out_channels) * geometry.batch \
        * math.ceil(geometry.out_height / m) * (math.ceil(geometry.out_width / m) + 1)
    workers = blas_threads() if work >= PARALLEL_MIN_VALUES else 1
    plan = Plan(geometry, m, x.itemsize, workspace_limit, target_bytes, workers)
    tally = _Tally()
    y = _convolve(x, weight, bias, plan, tally, stage_times, out)
    if not count:
        return y, None
    stages = tally.stages()
    return y, Counts(sum(s.mults for s in stages), sum(s.adds for s in stages), "winograd", method,
                     workspace_bytes=plan.workspace_bytes, stages=stages, algorithm=algorithm)


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    geometry: ConvGeometry,
    *,
    convention: str = "winograd",
    count: bool = True,
    workspace_limit: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, Counts | None]:
    """Compute ``y[n, co, oh, ow]`` for a validated 3x3 stride-1 layer by Winograd minimal filtering.

    Parameters
    ----------
    x : (N, C_in, H, W) float32 or float64 array, any memory layout
    weight : (C_out, C_in / groups, 3, 3) array of ``x``'s dtype
    bias : (C_out,) array or None
    geometry : the layer, validated against these shapes; :func:`supports` it
    convention : ``"winograd"``, the only one this kernel executes
    count : return the counts tallied while running
    workspace_limit : bytes the transformed tiles of a chunk and the transformed filters may take
    out : None, or a C-contiguous, writeable (N, C_out, OH, OW) array of
        ``x.dtype`` not overlapping the operands (checked by the caller), written and returned

    Returns
    -------
    y : (N, C_out, OH, OW) C-contiguous array of ``x.dtype``
    counts : :class:`~npconv.counts.Counts` with a stage per transform, or None

    Raises
    ------
    ConvArgumentError
        naming ``method`` for a layer this kernel does not run (:func:`supports`).
    ConvMemoryError
        naming ``workspace_limit`` when even one row of tiles of one image does not fit.
    """
    return run(x, weight, bias, geometry, default_tile(geometry), NAME, count=count,
               workspace_limit=workspace_limit, out=out)


def with_tile(method: str, m: int):
    """The ``conv2d`` of the method that always uses ``m x m`` tiles."""

    def conv2d_m(x, weight, bias, geometry, *, convention: str = "winograd", count: bool = True,
                 workspace_limit: int, out: np.ndarray | None = None):
        return run(x, weight, bias, geometry, m, method, count=count, workspace_limit=workspace_limit, out=out)

    conv2d_m.__doc__ = f"Winograd F({m}x{m},3x3): :func:`npconv.kernels.winograd.conv2d` with {m}x{m} tiles."
    conv2d_m.__name__ = "conv2d"
    return conv2d_m
