"""FFT kernel: stride-1 convolution of any kernel size as products in the frequency domain.

By the convolution theorem a circular correlation is a product of spectra, so
each output plane is, for an ``H_f x W_f`` FFT (``npconv.formulas.fft_shape``:
the padded input, rounded up to a size numpy.fft is fast on),

    Y[n, co] = irfft2( sum over ci of X[n, ci] * K[co, ci] )

one complex product per frequency bin, image, output channel and input channel
of its group -- the same count for a 3x3 and an 11x11 kernel.  How the layer
becomes a circular correlation that needs no padded copy of the input: the
input is transformed as it is (zero-filled up to ``H_f x W_f``), and tap
``(kh, kw)`` of the kernel is placed at ``(P_top - kh D_H, P_left - kw D_W)``
modulo ``(H_f, W_f)``, flipped and shifted so that the circular convolution's
output ``(oh, ow)`` *is* the layer's: it reads input
``oh - P_top + kh D_H``, which wraps onto the zero fill exactly when it lies
in the padding, because ``H_f >= H + P_top + P_bottom``.  Dilation is that
placement; groups and depthwise layers multiply each group's spectra only.

The images' transforms are FFT calls (``scipy.fft`` when SciPy is installed,
several times faster here, else ``numpy.fft``), rows then columns, each along
the last axis, and skip what is known to be zero or not kept: an image's
``H`` rows (not ``H_f``), and on the way back all but the ``OH`` output rows.
A filter has only ``KH x KW`` taps in its plane: its spectrum is a direct DFT
of the taps by matrix products (:func:`_filter_spectrum`), which the BLAS
runs faster than an FFT of the mostly-zero plane.
The frequency-domain products of a bin are a matrix product, ``(C_out/g x
C_in/g) @ (C_in/g x images)``, one batched ``np.matmul`` on complex arrays
for every bin and group (a broadcast product when a group has one input
channel).  All in ``x.dtype`` (complex64 for float32).

Layers: stride 1 (:func:`supports`); any kernel size, padding, dilation,
groups, depth multiplier.

Counting (convention ``"fft"``, closed forms ``npconv.formulas.fft_counts``),
honestly split: the filter DFT, the frequency-domain products and their
accumulation are *measured*, from the shapes of the matrix products made,
each complex product counted as the 4 real mults and 2 real adds that NumPy
and its BLAS execute (and each complex addition as 2 real adds); the bias one
addition per output.  The images' FFTs run inside the FFT library, where no
tally reaches: their cost is *estimated* from the standard radix-2 count for
the transforms the kernel asked for, and reported apart, in
``Counts.estimated_mults`` and ``estimated_adds`` and in stages flagged
``measured=False`` -- never added to ``mults`` and ``adds``.  The filter
spectra are computed, and counted, on every call (nothing is cached).
``padded_mults`` is 0: a frequency-domain product does not multiply a
padding zero.

Bounded workspace: the filter spectra are held for the whole call, the
spectra of the images a chunk at a time (whole images), within the workspace
limit and :data:`CHUNK_TARGET_BYTES`; the estimate (``Counts.workspace_bytes``)
counts every buffer this kernel allocates and the arrays the transforms
return, and a layer whose filter spectra and one image do not fit is refused
before anything is allocated.

Rounding: each output mixes every input value of its plane through the
transforms, so the error grows with ``log2(H_f W_f)`` and with the size of the
whole plane, not of one window (see tests/test_fast_methods.py).
"""

from __future__ import annotations

import math
import time

import numpy as np

from npconv import formulas
from npconv.counts import Counts, Stage
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry
from npconv.kernels._threads import blas_single_threaded, blas_threads, in_parallel, shares
from npconv.memory import ensure_workspace_fits, format_bytes

NAME = "fft"
#: The one convention this kernel executes.
CONVENTIONS = ("fft",)
#: Compiled NumPy operations, FFT and BLAS calls, not interpreted loops.
MULTS_PER_SECOND = None

#: Largest chunk of image spectra aimed for (the filter spectrum comes on top).
CHUNK_TARGET_BYTES = 16 * 2**20

SUPPORTED = "stride 1 (any kernel size, padding, dilation, groups, depth multiplier)"


def supports(geometry: ConvGeometry) -> str | None:
    """Why this kernel cannot run ``geometry`` (e.g. ``"a layer with stride 2"``), or None when it can."""
    return formulas.fft_unsupported(geometry)


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


class Plan:
    """FFT size, chunking and buffer sizes of one call, decided before allocating.

    Buffers, ``F = H_f x (W_f/2 + 1)`` bins, ``f = C_out x C_in/g`` filters, ``n``
    images per chunk (complex values are two reals):

    * for the whole call, the filter DFT: its twiddles, the row spectra
      ``(f, KH, W_f/2 + 1)`` twice (and their real and imaginary parts as the
      GEMMs return them), the spectra per bin ``(F, f)``, a contiguous copy of
      the weight when it is not;
    * per chunk: the input rows' spectra ``(n, C_in, H, W_f/2 + 1)`` (and the
      rows zero-filled to ``W_f`` inside the transform), the column buffer, its
      transform and the spectra per bin, ``(n, C_in, F)`` each; the products
      per bin and per plane, the inverse column transform, ``(n, C_out, F)``
      each, the kept rows' spectra ``(n, C_out, OH, W_f/2 + 1)`` and their
      inverse ``(n, C_out, OH, W_f)`` real.
    """

    def __init__(self, g: ConvGeometry, itemsize: int, workspace_limit: int,
                 target_bytes: int = CHUNK_TARGET_BYTES, workers: int = 1):
        self.g = g
        #: threads the matrix products are shared out to (the FFTs use as many ``workers``)
        self.workers = workers
        self.fft_h, self.fft_w = formulas.fft_shape(g)
        half = self.half = self.fft_w // 2 + 1
        bins = self.bins = self.fft_h * half
        real, cplx = itemsize, 2 * itemsize
        filters = g.out_channels * g.in_channels_per_group
        kh, kw = g.kernel_h, g.kernel_w
        self.filter_bytes = (kw * half * 2 * real + self.fft_h * kh * cplx + filters * kh * kw * real
                             + filters * kh * half * (2 * cplx + 2 * real) + bins * filters * cplx)

        def chunk_bytes(images: int) -> int:
            inputs = g.in_channels * ((g.height * half + 3 * bins) * cplx + g.height * self.fft_w * real)
            outputs = g.out_channels * ((3 * bins + g.out_height * half) * cplx + g.out_height * self.fft_w * real)
            return images * (inputs + outputs)

        self.chunk_bytes = chunk_bytes
        budget = min(workspace_limit, target_bytes + self.filter_bytes) - self.filter_bytes
        images = _even_chunks(g.batch, max(1, budget // chunk_bytes(1)))
        smallest = self.filter_bytes + chunk_bytes(1)
        ensure_workspace_fits(
            smallest, workspace_limit,
            f"the FFT workspace of one image ({self.fft_h}x{self.fft_w} spectra of {g.in_channels} input "
            f"and {g.out_channels} output channels) with the filter spectra "
            f"({filters:,} filters: {format_bytes(self.filter_bytes)}): {smallest:,} bytes",
        )
        self.images_per_chunk = images
        self.workspace_bytes = self.filter_bytes + chunk_bytes(images)
        ensure_workspace_fits(self.workspace_bytes, workspace_limit,
                              f"the FFT workspace ({self.workspace_bytes:,} bytes for {images} image(s))")


def _even_chunks(total: int, largest: int) -> int:
    pieces = math.ceil(total / max(1, min(largest, total)))
    return math.ceil(total / pieces)


class _Clock:
    def __init__(self, times: dict[str, float] | None):
        self.times = times
        self.last = time.perf_counter() if times is not None else 0.0

    def __call__(self, stage: str) -> None:
        if self.times is not None:
            now = time.perf_counter()
            self.times[stage] = self.times.get(stage, 0.0) + now - self.last
            self.last = now


def _backend():
    """``(name, rfft, fft, ifft, irfft)``: scipy.fft when SciPy is installed, else numpy.fft.

    scipy.fft transforms a batch of lines several times faster than numpy.fft
    here (it vectorises across lines) and can split a batch across threads;
    both compute the same transforms, so the output agrees to rounding and the
    counts are the same.  Each call returns a new array.
    """
    try:
        import scipy.fft as sf
    except ImportError:  # pragma: no cover - the test extra installs SciPy
        return ("numpy.fft", lambda a, n: np.fft.rfft(a, n=n, axis=-1), lambda a: np.fft.fft(a, axis=-1),
                lambda a: np.fft.ifft(a, axis=-1), lambda a, n: np.fft.irfft(a, n=n, axis=-1))
    return ("scipy.fft",
            lambda a, n: sf.rfft(a, n=n, axis=-1, workers=blas_threads()),
            lambda a: sf.fft(a, axis=-1, overwrite_x=True, workers=blas_threads()),
            lambda a: sf.ifft(a, axis=-1, overwrite_x=True, workers=blas_threads()),
            lambda a, n: sf.irfft(a, n=n, axis=-1, workers=blas_threads()))


def _filter_spectrum(weight: np.ndarray, plan: Plan) -> tuple[np.ndarray, tuple[int, int]]:
    """Every filter's spectrum, per bin: ``(F, groups, C_out/g, C_in/g)`` complex, bins ordered
    (column frequency, row frequency); and the real ``(mults, adds)`` it took.

    A filter has ``KH x KW`` taps in an ``H_f x W_f`` plane, so its spectrum is
    computed as a direct DFT of its taps, rows then columns, by matrix
    products (which the BLAS runs many times faster than a transform of the
    mostly-zero plane): tap ``(kh, kw)`` sits at ``(P_top - kh D_H, P_left -
    kw D_W)`` modulo the FFT size (see the module docstring), so

        rows[f, kh, w]   = sum_kw w[kh, kw] exp(-2 pi i w_f c_kw / W_f)   two real GEMMs
        K[w_f, h_f, f]   = sum_kh exp(-2 pi i h_f r_kh / H_f) rows[f, kh, w_f]   one complex GEMM per w_f

    counted from the products' shapes like every GEMM: real products for the
    rows, complex products (4 mults, 2 adds) and complex additions (2 adds)
    for the columns.
    """
    g = plan.g
    (top, _), (left, _) = g.padding
    dh, dw = g.dilation
    real = weight.dtype
    cdtype = np.result_type(real, np.complex64)
    filters = g.out_channels * g.in_channels_per_group
    kh, kw = g.kernel_h, g.kernel_w
    column_positions = np.array([(left - k * dw) % plan.fft_w for k in range(kw)], dtype=np.float64)
    row_positions = np.array([(top - k * dh) % plan.fft_h for k in range(kh)], dtype=np.float64)
    angle_w = -2 * np.pi * np.outer(column_positions, np.arange(plan.half)) / plan.fft_w  # (KW, W_f/2 + 1)
    cos_w, sin_w = np.cos(angle_w).astype(real), np.sin(angle_w).astype(real)
    twiddle_h = np.exp(-2j * np.pi * np.outer(np.arange(plan.fft_h), row_positions) / plan.fft_h).astype(cdtype)
    taps = np.ascontiguousarray(weight).reshape(filters, kh, kw)
    by_column = np.empty((plan.half, kh, filters), cdtype)
    spectra = np.empty((plan.half, plan.fft_h, filters), cdtype)

    def part(f0: int, f1: int) -> None:  # filters f0:f1, rows then columns
        rows = taps[f0:f1].reshape(-1, kw)
        by_column[:, :, f0:f1].real = (rows @ cos_w).reshape(f1 - f0, kh, plan.half).transpose(2, 1, 0)
        by_column[:, :, f0:f1].imag = (rows @ sin_w).reshape(f1 - f0, kh, plan.half).transpose(2, 1, 0)
        np.matmul(twiddle_h, by_column[:, :, f0:f1], out=spectra[:, :, f0:f1])  # (W_f/2 + 1, H_f, f1 - f0)

    in_parallel(part, parts=shares(filters, plan.workers))
    mults = 2 * filters * kh * kw * plan.half + 4 * plan.half * plan.fft_h * kh * filters
    adds = (2 * filters * kh * (kw - 1) * plan.half + 2 * plan.half * plan.fft_h * kh * filters
            + 2 * plan.half * plan.fft_h * (kh - 1) * filters)
    return spectra.reshape(plan.bins, g.groups, g.out_channels_per_group, g.in_channels_per_group), (mults, adds)


def _bin_products(kernel_spectra: np.ndarray, spectra: np.ndarray, out: np.ndarray, b0: int, b1: int) -> None:
    """Bins ``b0:b1``: per bin and group ``(C_out/g x C_in/g) @ (C_in/g x images)``, complex (a
    broadcast product for one input channel per group)."""
    if spectra.shape[2] == 1:
        np.multiply(kernel_spectra[b0:b1], spectra[b0:b1], out=out[b0:b1])
    else:
        np.matmul(kernel_spectra[b0:b1], spectra[b0:b1], out=out[b0:b1])


def _convolve(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, plan: Plan,
              stage_times: dict[str, float] | None = None,
              out: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Run ``plan``: ``y`` and the measured ``(mults, adds)`` of each measured stage.

    ``stage_times``, when a dict, accumulates seconds in ``"filter"``, ``"input"``,
    ``"products"`` and ``"inverse"``.
    """
    clock = _Clock(stage_times)
    _, rfft, fft, ifft, irfft = _backend()
    g = plan.g
    groups, per_in, per_out = g.groups, g.in_channels_per_group, g.out_channels_per_group
    out_height, out_width, height = g.out_height, g.out_width, g.height
    kernel_spectra, filter_counts = _filter_spectrum(weight, plan)  # (F, g, C_out/g, C_in/g)
    clock("filter")
    y = np.empty(g.output_shape, x.dtype) if out is None else out
    bias_column = None if bias is None else bias.reshape(g.out_channels, 1, 1)
    cdtype = kernel_spectra.dtype
    chunk = plan.images_per_chunk
    columns_in = np.empty((chunk, g.in_channels, plan.half, plan.fft_h), cdtype)
    per_bin_in = np.empty((plan.bins, groups, per_in, chunk), cdtype)
    per_bin_out = np.empty((plan.bins, groups, per_out, chunk), cdtype)
    columns_out = np.empty((chunk, g.out_channels, plan.half, plan.fft_h), cdtype)
    products = accumulations = bias_adds = 0
    for n0 in range(0, g.batch, chunk):
        n1 = min(n0 + chunk, g.batch)
        images = n1 - n0
        # the input's row spectra (its H rows, zero-filled to W_f), then the column transforms
        columns = columns_in[:images]
        columns[..., :height] = rfft(x[n0:n1], plan.fft_w).transpose(0, 1, 3, 2)
        columns[..., height:] = 0  # the zero fill (the previous chunk's transform may have overwritten it)
        spectra = fft(columns)
        by_bin = per_bin_in[..., :images]
        np.copyto(by_bin, spectra.reshape(images, groups, per_in, plan.bins).transpose(3, 1, 2, 0))
        clock("input")
        # per bin and group: (C_out/g x C_in/g) @ (C_in/g x images), complex
        out = per_bin_out[..., :images]
        in_parallel(_bin_products, kernel_spectra, by_bin, out, parts=shares(plan.bins, plan.workers))
        stack = plan.bins * groups
        products += stack * per_out * per_in * images
        accumulations += stack * per_out * (per_in - 1) * images
        planes = columns_out[:images]
        np.copyto(planes.reshape(images, groups, per_out, plan.bins), out.transpose(3, 1, 2, 0))
        clock("products")
        # inverse: column transforms, then the row transforms of the OH rows kept
        rows = irfft(ifft(planes)[..., :out_height].transpose(0, 1, 3, 2), plan.fft_w)
        if bias_column is None:
            np.copyto(y[n0:n1], rows[..., :out_width])
        else:
            np.add(rows[..., :out_width], bias_column, out=y[n0:n1])
            bias_adds += y[n0:n1].size
        clock("inverse")
    return y, {"filter DFT": filter_counts, "frequency-domain products": (4 * products, 2 * products),
               "frequency-domain accumulation": (0, 2 * accumulations), "bias": (0, bias_adds)}


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    geometry: ConvGeometry,
    *,
    convention: str = "fft",
    count: bool = True,
    workspace_limit: int,
    stage_times: dict[str, float] | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, Counts | None]:
    """Compute ``y[n, co, oh, ow]`` for a validated stride-1 layer by FFT.

    Parameters
    ----------
    x : (N, C_in, H, W) float32 or float64 array, any memory layout
    weight : (C_out, C_in / groups, KH, KW) array of ``x``'s dtype
    bias : (C_out,) array or None
    geometry : the layer, validated against these shapes; :func:`supports` it
    convention : ``"fft"``, the only one this kernel executes
    count : return the counts (measured products, estimated transforms)
    workspace_limit : bytes the spectra may take
    stage_times : when a dict, seconds per stage are added to it (for the bench script)
    out : None, or a C-contiguous, writeable (N, C_out, OH, OW) array of
        ``x.dtype`` not overlapping the operands (checked by the caller), written and returned

    Returns
    -------
    y : (N, C_out, OH, OW) C-contiguous array of ``x.dtype``
    counts : :class:`~npconv.counts.Counts` (``estimated_mults``/``estimated_adds`` for the FFTs), or None

    Raises
    ------
    ConvArgumentError
        naming ``method`` for a layer with a stride other than 1.
    ConvMemoryError
        naming ``workspace_limit`` when the filter spectrum and one image's do not fit.
    """
    check_supported(geometry)
    estimates = formulas.fft_counts(geometry)
    if geometry.batch == 0:
        y = np.empty(geometry.output_shape, dtype=x.dtype) if out is None else out
        nothing = dict.fromkeys(("filter DFT", "frequency-domain products", "frequency-domain accumulation",
                                 "bias"), (0, 0))
        return y, (_counts(estimates, nothing, 0) if count else None)
    plan = Plan(geometry, x.itemsize, workspace_limit, workers=blas_threads())
    if plan.workers == 1:
        y, measured = _convolve(x, weight, bias, plan, stage_times, out)
    else:  # the matrix products are many small ones: on the kernel's threads, one BLAS thread each
        with blas_single_threaded():
            y, measured = _convolve(x, weight, bias, plan, stage_times, out)
    return y, (_counts(estimates, measured, plan.workspace_bytes) if count else None)


def _counts(estimates: formulas.AlgorithmCounts, measured: dict[str, tuple[int, int]],
            workspace_bytes: int) -> Counts:
    """The measured tallies, in stage order beside the estimated transform stages."""
    stages = []
    for name in formulas.FFT_STAGES:
        if name in measured:
            stages.append(Stage(name, *measured[name]))
        else:  # inside numpy.fft: the operation-count formula's numbers, flagged as such
            mults, adds = estimates.stages[name]
            stages.append(Stage(name, int(mults), int(adds), measured=False))
    return Counts(
        sum(s.mults for s in stages if s.measured), sum(s.adds for s in stages if s.measured), "fft", NAME,
        workspace_bytes=workspace_bytes, stages=tuple(stages),
        estimated_mults=sum(s.mults for s in stages if not s.measured),
        estimated_adds=sum(s.adds for s in stages if not s.measured),
        algorithm=estimates.algorithm,
    )
