"""Independent oracles and the tolerance policy used to compare kernels with them.

* :func:`scipy_conv2d`: ``scipy.signal.correlate2d`` per (image, output
  channel, input channel) on an explicitly zero-padded input with an
  explicitly dilated kernel, then strided by slicing -- no code shared with
  npconv's kernels.
* :func:`torch_conv2d`: ``torch.nn.functional.conv2d`` after ``F.pad`` (torch
  itself has no asymmetric padding and no "same" for stride > 1).
* :func:`numpy_conv2d`: every product formed by NumPy broadcasting, then
  summed -- the oracle for NaN and infinity, in either counting convention
  (``dense`` multiplies the padding's zeros, ``effective`` leaves those
  products out; see :mod:`npconv.api`).  It holds the whole product array,
  so it is for small layers.

Tolerance policy (:func:`assert_conv_close`): a sum of ``L`` products computed
in floating point with unit roundoff ``u`` is within ``L * u * sum(|x_i w_i|)``
of the exact sum.  Each output element is checked against the float64 oracle
with that bound, ``sum(|x_i w_i|)`` taken from the oracle run on ``|x|`` and
``|w|``, for ``u`` of the result's dtype: float64 results must be near exact,
float32 ones within their own rounding, growing with the reduction length.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from npconv import formulas
from npconv.geometry import ConvGeometry


def dilate_kernel(w: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    """Insert ``dilation - 1`` zeros between the taps of the last two axes."""
    dh, dw = dilation
    kh, kw = w.shape[-2:]
    out = np.zeros((*w.shape[:-2], dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=w.dtype)
    out[..., ::dh, ::dw] = w
    return out


def scipy_conv2d(x, w, b, g: ConvGeometry) -> np.ndarray:
    """Grouped cross-correlation from SciPy's 2-D correlate, in float64."""
    x = np.asarray(x, dtype=np.float64)
    w = dilate_kernel(np.asarray(w, dtype=np.float64), g.dilation)
    xp = np.pad(x, ((0, 0), (0, 0), g.padding[0], g.padding[1]))
    y = np.zeros(g.output_shape)
    cg, og = g.in_channels_per_group, g.out_channels_per_group
    for n in range(g.batch):
        for co in range(g.out_channels):
            group = co // og
            acc = sum(
                signal.correlate2d(xp[n, group * cg + ci], w[co, ci], mode="valid")
                for ci in range(cg)
            )
            y[n, co] = acc[:: g.stride[0], :: g.stride[1]][: g.out_height, : g.out_width]
            if b is not None:
                y[n, co] += float(b[co])
    return y


def torch_conv2d(x, w, b, g: ConvGeometry) -> np.ndarray:
    """The same layer through PyTorch (float64)."""
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    xt = F.pad(xt, (g.padding[1][0], g.padding[1][1], g.padding[0][0], g.padding[0][1]))
    wt = torch.from_numpy(np.asarray(w, dtype=np.float64))
    bt = None if b is None else torch.from_numpy(np.asarray(b, dtype=np.float64))
    return F.conv2d(xt, wt, bt, stride=g.stride, dilation=g.dilation, groups=g.groups).numpy()


def assert_conv_close(actual, x, w, b, g: ConvGeometry, oracle=scipy_conv2d) -> None:
    """Check ``actual`` against ``oracle`` within the rounding bound of the module docstring."""
    expected = oracle(x, w, b, g)
    magnitude = oracle(np.abs(x), np.abs(w), None if b is None else np.abs(b), g)
    terms = g.in_channels_per_group * g.kernel_h * g.kernel_w + (b is not None)
    unit = np.finfo(actual.dtype).eps
    bound = (terms + 1) * unit * magnitude + np.finfo(np.float64).tiny
    error = np.abs(actual.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(error - bound), error.shape) if error.size else None
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert np.all(error <= bound), (
        f"max error {error.max():.3g} exceeds bound at {worst}: "
        f"got {actual[worst]!r}, expected {expected[worst]!r}, bound {bound[worst]:.3g}"
    )


def assert_counts_equal_formulas(counts, g: ConvGeometry, method: str, convention: str) -> None:
    """Measured counts equal the closed forms exactly, in the convention the kernel executed."""
    assert (counts.method, counts.convention) == (method, convention)
    assert counts.mults == formulas.mults(g, convention).value
    assert counts.adds == formulas.adds(g, convention).value
    assert counts.flops == formulas.flops(g, convention).value
    assert counts.padded_mults == (formulas.padded_mults(g).value if convention == "dense" else 0)


def numpy_conv2d(x, w, b, g: ConvGeometry, convention: str = "dense") -> np.ndarray:
    """The layer in float64 with NumPy's IEEE semantics, products of padded taps kept or left out."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    (top, bottom), (left, right) = g.padding
    (sh, sw), (dh, dw) = g.stride, g.dilation
    span = (dh * (g.kernel_h - 1) + 1, dw * (g.kernel_w - 1) + 1)
    out = (slice(None, g.out_height * sh, sh), slice(None, g.out_width * sw, sw),
           slice(None, None, dh), slice(None, None, dw))

    def windows(a):  # (..., OH, OW, KH, KW): the taps of every output, strided and dilated
        view = np.lib.stride_tricks.sliding_window_view(a, span, axis=(-2, -1))
        return view[(Ellipsis, *out)]

    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    real = np.pad(np.ones((g.height, g.width), dtype=bool), ((top, bottom), (left, right)))
    groups, cg, og = g.groups, g.in_channels_per_group, g.out_channels_per_group
    taps = windows(padded).reshape(g.batch, groups, 1, cg, g.out_height, g.out_width, g.kernel_h, g.kernel_w)
    weights = w.reshape(1, groups, og, cg, 1, 1, g.kernel_h, g.kernel_w)
    with np.errstate(invalid="ignore", over="ignore"):
        products = taps * weights  # (N, groups, C_out/g, C_in/g, OH, OW, KH, KW)
        if convention == "effective":
            products = np.where(windows(real), products, 0.0)
        y = products.sum(axis=(3, 6, 7)).reshape(g.output_shape)
        if b is not None:
            y = y + np.asarray(b, dtype=np.float64)[:, None, None]
    return y


def reference_conv2d(x, w, b, g: ConvGeometry) -> np.ndarray:
    """npconv's reference kernel (Python loops, double-precision sums) run in float64."""
    import npconv

    def as64(a):
        return None if a is None else np.asarray(a, dtype=np.float64)

    return npconv.conv2d(as64(x), as64(w), as64(b), g.stride, g.padding, g.dilation, g.groups,
                         method="reference")
