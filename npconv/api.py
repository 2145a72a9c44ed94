"""Public convolution functions: one general primitive and thin named wrappers.

All functions follow ``torch.nn.functional.conv2d``'s layout and argument
meanings (see :mod:`npconv.geometry`) and add two arguments:

``method``
    the algorithm, a name from :func:`npconv.kernels.available_methods`
    (``"reference"``: plain Python loops).
``count``
    ``False`` returns the output only; ``True`` returns ``(y, counts)`` with
    the operations the kernel executed, in its default convention;
    ``"dense"`` or ``"effective"`` asks for that convention (an error if the
    method cannot execute it), as do ``"winograd"`` and ``"fft"``, the fast
    algorithms' own.  See :mod:`npconv.counts` for what is counted.
``workspace_limit``
    bytes the kernel may allocate besides the output (``None``: the
    process-wide limit, see :mod:`npconv.memory`).  A kernel that can works
    in chunks that fit; otherwise the call is refused before allocating.
``out``
    ``None`` (a new output array), or an array the caller owns that the
    result is written into and that is returned (NumPy's convention), so
    that a loop can reuse one buffer: it must have the output's shape and
    dtype (NumPy's promotion of the operands', native byte order), be
    C-contiguous and writeable, and share no memory with an operand; anything
    else is refused, naming ``out``, before any work.  The kernels write into
    it directly (no copy).  On an error raised while running (a NaN under
    ``np.errstate(invalid="raise")``) its contents are undefined.

Arrays must be float32 or float64, of either byte order (a big-endian
operand is converted to native order, exactly).  Integer, boolean and
complex arrays are refused rather than converted (a silent cast could
truncate or drop the imaginary part), as are masked arrays with masked
entries (the convolution has no rule for a missing value; an unmasked one is
used as its data).  Operands of different float dtypes are promoted as NumPy
promotes them -- float32 with float64 gives float64 -- and the output has
that dtype; the copies this makes count against ``workspace_limit``.  Any
memory layout is accepted (views, Fortran order, negative strides, read-only
arrays); operands are never modified.  A batch of 0 images gives an empty
output of shape ``(0, C_out, OH, OW)`` and counts of 0.

NaN and infinity propagate by IEEE arithmetic (``0 * inf = nan``,
``inf - inf = nan``), with no error raised.  Where they meet the padding,
the two counting conventions are two different sums, and the output follows
the one the kernel executes:

* ``dense`` (``"reference"`` by default, ``"im2col"``): every padded tap
  multiplies a zero, so a NaN or infinite weight over the padding makes the
  output NaN.  This is the definition of a zero-padded convolution, what
  ``np.pad`` followed by a correlation and ``torch.nn.functional.conv2d``
  compute.
* ``effective`` (``"direct"``; ``"reference"`` with ``count="effective"``):
  padded taps are not in the sum, so the same weight leaves those outputs
  finite, and an output whose window sees only padding is its bias (or 0).

For finite operands both conventions give the same values (to rounding).
The fast algorithms mix values before multiplying: ``"winograd*"`` combines a
whole input tile, ``"fft"`` a whole image plane, so a NaN or infinity there
makes every output of that tile (plane) NaN.
``"im2col"`` multiplies with NumPy's ``matmul`` and so reports an invalid
operation as NumPy does: a ``RuntimeWarning``, or ``FloatingPointError``
under ``np.errstate(invalid="raise")``.

The backward functions (:func:`conv2d_backward` and its wrappers) take the
forward operands, ``grad_y = dL/dy`` first, and ``needs=`` (the gradients
to compute); they return the gradients, with their counts when ``count`` is
not False.  What is computed and counted: :mod:`npconv.gradients`.  Their
``out=`` is a :class:`~npconv.gradients.Grads` (or a sequence in its order)
of arrays the gradients are written into, ``None`` for a gradient to
allocate; each array is checked as the forward ``out`` is, by its field's
name (``out.weight``), and must share no memory with another.  A gradient
that is not computed (not in ``needs``, or a layer without bias) takes
``None``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import sys
from typing import Any

import numpy as np

from npconv import kernels
from npconv.counts import ALGORITHM_CONVENTIONS, ALL_CONVENTIONS, Counts, SeparableCounts
from npconv.errors import ConvArgumentError, ConvTypeError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.gradients import (
    GRADIENTS,
    GradCounts,
    Grads,
    SeparableGradCounts,
    SeparableGrads,
    parse_needs,
    separable_needs,
)
from npconv.memory import ensure_arrays_fit, ensure_fits, ensure_workspace_fits, resolve_workspace_limit

#: Operands that may be ``None`` (absent).
_OPTIONAL_OPERANDS = frozenset({"bias", "depthwise_bias", "pointwise_bias"})


def _dtype_hint(name: str, dtype: np.dtype) -> str:
    """How to make ``dtype`` acceptable, never suggesting a cast that loses precision."""
    if dtype.kind in "iub":
        return f"; convert it yourself, e.g. {name}.astype(np.float64)"
    if dtype.kind == "c":
        return "; complex convolution is not supported"
    if dtype.kind == "f" and dtype.itemsize < 4:
        return f"; convert it with {name}.astype(np.float32) (exact: every {dtype.name} is a float32)"
    if dtype.kind == "f":
        return f"; {dtype.name} is not supported: {name}.astype(np.float64) rounds it to double precision"
    return ""


def _as_array(name: str, value: Any) -> np.ndarray:
    """``value`` as an ndarray of a float kind (any width or byte order, checked by the caller).

    A masked array is refused when any entry is masked: the convolution has no rule for a missing
    value, and using the data under the mask would silently ignore it.  An object that cannot be
    turned into an array (a PyTorch tensor that requires grad, a GPU tensor) is refused with the
    reason.
    """
    masked_arrays = sys.modules.get("numpy.ma")  # not imported: no masked array exists (and importing costs)
    if masked_arrays is not None and isinstance(value, masked_arrays.MaskedArray):
        masked = int(masked_arrays.count_masked(value))
        if masked:
            raise ConvTypeError(name, f"an array without masked entries (fill them first, e.g. "
                                f"{name}.filled(0.0); a convolution has no rule for a missing value)",
                                f"a masked array with {masked:,} masked entr{'y' if masked == 1 else 'ies'}")
        value = masked_arrays.getdata(value)
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: torch's "requires grad"
        hint = ""
        if type(value).__module__.startswith("torch"):
            hint = f" (for a PyTorch tensor: {name}.detach().cpu().numpy())"
        reason = " ".join(str(exc).split())
        raise ConvTypeError(name, "an array of floats" + hint, f"{type(value).__name__} ({reason})") from None


def _operands(workspace_limit: object, **named: Any) -> tuple[dict[str, np.ndarray | None], int]:
    """Each named operand as an ndarray of one common native float dtype, and the bytes copied to get there.

    ``None`` stays ``None`` for an optional operand (an absent bias) and is
    refused for the others.  float32 and float64 of either byte order are
    accepted; the common dtype is NumPy's promotion of theirs, in native byte
    order, so a big-endian operand is converted without loss.  The copies that
    conversion makes (a float32 operand promoted to float64, a big-endian one
    swapped) are part of the call's workspace: checked against
    ``workspace_limit`` (None: the process-wide one) and the RAM share before
    they are made.
    """
    arrays: dict[str, np.ndarray | None] = {}
    for name, value in named.items():
        if value is None:
            if name not in _OPTIONAL_OPERANDS:
                raise ConvTypeError(name, "an array of floats", "None")
            arrays[name] = None
            continue
        array = _as_array(name, value)
        if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
            raise ConvTypeError(name, "a float32 or float64 array" + _dtype_hint(name, array.dtype),
                                f"dtype {array.dtype}")
        arrays[name] = array
    present = [a for a in arrays.values() if a is not None]
    common = np.result_type(*present).newbyteorder("=")
    copies = [(name, a.shape, common) for name, a in arrays.items() if a is not None and a.dtype != common]
    copied = 0
    if copies:
        limit = resolve_workspace_limit(workspace_limit)
        names = ", ".join(name for name, _, _ in copies)
        what = f"the {common.name} copies of {names} (operands of mixed dtype or byte order are converted)"
        copied = ensure_arrays_fit(copies, what, copies[0][0])
        ensure_workspace_fits(copied, limit, what, "workspace_limit")
    return {k: None if a is None else a.astype(common, copy=False) for k, a in arrays.items()}, copied


def _as_float_arrays(**named: Any) -> dict[str, np.ndarray | None]:
    """:func:`_operands` under the process-wide workspace limit, without the bytes copied."""
    return _operands(None, **named)[0]


def _check_out(out: object, shape: tuple[int, ...], dtype: np.dtype, operands: dict[str, np.ndarray | None],
               name: str = "out") -> np.ndarray | None:
    """``out`` (None or a caller's output array) checked against the output ``shape`` and ``dtype``.

    Refused, naming ``name``: anything but an ndarray, another shape or dtype,
    a non-C-contiguous or read-only array, and one sharing memory with any of
    ``operands`` (the kernels read the operands while writing the output).
    """
    if out is None:
        return None
    expected = f"None or a writeable C-contiguous {dtype.name} array of shape {shape} sharing no memory with the operands"
    if not isinstance(out, np.ndarray):
        raise ConvTypeError(name, expected, type(out).__name__)
    if out.shape != tuple(shape):
        raise ConvArgumentError(name, f"an array of the output's shape {tuple(shape)}", f"shape {out.shape}")
    if out.dtype != dtype:
        described = out.dtype.name if out.dtype.isnative else f"{out.dtype.str} (non-native byte order)"
        raise ConvTypeError(name, f"an array of the output's dtype {dtype.name} (native byte order)",
                            f"dtype {described}")
    if not out.flags.c_contiguous:
        raise ConvArgumentError(name, "a C-contiguous array (the kernels write it in place)",
                                f"an array with strides {out.strides}")
    if not out.flags.writeable:
        raise ConvArgumentError(name, "a writeable array", "a read-only array")
    for operand, array in operands.items():
        if array is not None and _overlaps(out, array):
            raise ConvArgumentError(name, "an array sharing no memory with the operands (the kernels read them "
                                          "while writing the output)", f"an array overlapping {operand}")
    return out


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` share memory (counted as sharing when the exact answer is too costly)."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10**6))
    except np.exceptions.TooHardError:
        return True


@functools.cache
def _takes_out(function) -> bool:
    """Whether a kernel's ``function`` (``conv2d``, ``conv2d_backward``) takes ``out=`` (every built-in one does)."""
    try:
        return "out" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _check_output_fits(geometry: ConvGeometry, dtype: np.dtype) -> None:
    shape = geometry.output_shape
    ensure_fits(math.prod(shape) * dtype.itemsize, f"the output, shape {shape} of {dtype.name},")


def _counting(count: object) -> tuple[bool, str | None]:
    """Parse ``count``: (are counts wanted, requested convention or None for the default)."""
    if isinstance(count, (bool, np.bool_)):
        return bool(count), None
    if isinstance(count, str) and count in ALL_CONVENTIONS:
        return True, count
    algorithms = ", ".join(map(repr, ALGORITHM_CONVENTIONS))
    raise ConvArgumentError("count", f"False, True, 'dense' or 'effective', or a fast algorithm's own "
                                     f"convention ({algorithms})", repr(count))


def _run(method: object, count: object, workspace_limit: object, x: np.ndarray, weight: np.ndarray,
         bias: np.ndarray | None, geometry: ConvGeometry, part: str = "",
         copied: int = 0, out: np.ndarray | None = None) -> tuple[np.ndarray, Counts | None]:
    """Run ``method``'s kernel; counts are None unless ``count`` asks for them.

    ``part`` names the layer in an error (``"the pointwise part"``).  ``copied``: bytes this call
    already allocated converting the operands; the kernel gets what is left of the workspace limit
    (the limit bounds their sum), and its counts include them.  ``out``: a checked output array
    (:func:`_check_out`) the kernel writes into, or None.
    """
    wanted, convention = _counting(count)
    kernel = kernels.load(method)
    problem = kernels.supports(method, geometry)
    if problem is not None:
        names = [repr(m) for m in kernels.available_methods()]
        general = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        raise ConvArgumentError(
            "method",
            f"a method that runs {part or 'this layer'}: {method!r} runs {kernel.SUPPORTED} only "
            f"({general} run every layer)",
            f"{method!r} for {part + ', ' if part else ''}{problem}",
        )
    limit = max(0, resolve_workspace_limit(workspace_limit) - copied)
    _check_output_fits(geometry, x.dtype)
    if convention is None:
        convention = kernel.CONVENTIONS[0]
    elif convention not in kernel.CONVENTIONS:
        raise ConvArgumentError(
            "count",
            f"a convention that method {kernel.NAME!r} executes "
            f"({', '.join(map(repr, kernel.CONVENTIONS))})",
            repr(count),
        )
    if out is None:
        y, counts = kernel.conv2d(x, weight, bias, geometry, convention=convention, count=wanted,
                                  workspace_limit=limit)
    elif _takes_out(kernel.conv2d):
        y, counts = kernel.conv2d(x, weight, bias, geometry, convention=convention, count=wanted,
                                  workspace_limit=limit, out=out)
    else:  # a kernel registered without out=: its result is copied
        y, counts = kernel.conv2d(x, weight, bias, geometry, convention=convention, count=wanted,
                                  workspace_limit=limit)
        np.copyto(out, y)
        y = out
    if counts is not None and copied:
        counts = dataclasses.replace(counts, workspace_bytes=counts.workspace_bytes + copied)
    return y, counts


def _channels(x: np.ndarray) -> int:
    """Input channels of ``x``; 1 for a wrongly shaped ``x``, which the geometry then reports."""
    return x.shape[1] if x.ndim == 4 else 1


def _convolve(arrays: dict[str, np.ndarray | None], stride: object, padding: object, dilation: object,
              groups: object, method: object, count: object, workspace_limit: object, copied: int = 0,
              out: object = None):
    """:func:`conv2d` on operands already converted by :func:`_operands` (``copied`` bytes)."""
    x, weight, bias = arrays["x"], arrays["weight"], arrays["bias"]
    geometry = ConvGeometry.from_shapes(
        x.shape, weight.shape, None if bias is None else bias.shape,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )
    out = _check_out(out, geometry.output_shape, x.dtype, {"x": x, "weight": weight, "bias": bias})
    y, counts = _run(method, count, workspace_limit, x, weight, bias, geometry, copied=copied, out=out)
    return y if counts is None else (y, counts)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           method="reference", count=False, workspace_limit=None, out=None):
    """Grouped, strided, padded, dilated 2-D cross-correlation (the general primitive).

    Parameters
    ----------
    x : array (N, C_in, H, W), float32 or float64
    weight : array (C_out, C_in / groups, KH, KW)
    bias : array (C_out,) or None
    stride, dilation : int or (along H, along W), each >= 1
    padding : int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same"
        (for stride > 1, "same" gives ceil(H / stride) rows and puts an odd
        extra pixel at the bottom/right)
    groups : int dividing C_in and C_out
    method : algorithm name, see :func:`npconv.kernels.available_methods`; the fast
        algorithms run only some layers: ``"winograd"`` (``"winograd2"``: F(2x2,3x3),
        ``"winograd4"``: F(4x4,3x3)) 3x3 kernels at stride 1 and dilation 1, ``"fft"``
        stride 1
    count : False, True, "dense", "effective", "winograd" or "fft" (see module docstring)
    workspace_limit : int bytes or None (see module docstring)
    out : None or array (N, C_out, OH, OW) of the result's dtype, C-contiguous,
        writeable, sharing no memory with the operands: written and returned
        (see module docstring)

    Returns
    -------
    y : array (N, C_out, OH, OW) (``out`` when given), or ``(y, counts)`` when ``count`` is not False
    """
    arrays, copied = _operands(workspace_limit, x=x, weight=weight, bias=bias)
    return _convolve(arrays, stride, padding, dilation, groups, method, count, workspace_limit, copied, out)


def depthwise_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1,
                     method="reference", count=False, workspace_limit=None, out=None):
    """Depthwise convolution: each input channel convolved with its own filters.

    ``weight`` is ``(C_in * m, 1, KH, KW)`` for depth multiplier ``m``: output
    channel ``c * m + j`` is input channel ``c`` convolved with filter
    ``c * m + j``.  This is :func:`conv2d` with ``groups = C_in``.
    """
    arrays, copied = _operands(workspace_limit, x=x, weight=weight, bias=bias)
    return _convolve(arrays, stride, padding, dilation, _channels(arrays["x"]), method, count, workspace_limit,
                     copied, out)


def _check_pointwise_weight(weight: np.ndarray, name: str) -> None:
    if weight.ndim != 4 or weight.shape[2:] != (1, 1):
        raise ConvArgumentError(name, "a 1x1 kernel of shape (C_out, C_in, 1, 1)", f"shape {weight.shape}")


def pointwise_conv2d(x, weight, bias=None, method="reference", count=False, workspace_limit=None, out=None):
    """Pointwise (1x1) convolution: at every pixel, a weighted sum over all channels.

    ``weight`` is ``(C_out, C_in, 1, 1)``.  This is :func:`conv2d` with a 1x1
    kernel, stride 1 and no padding.
    """
    arrays, copied = _operands(workspace_limit, x=x, weight=weight, bias=bias)
    _check_pointwise_weight(arrays["weight"], "weight")
    return _convolve(arrays, 1, 0, 1, 1, method, count, workspace_limit, copied, out)


def _separable_geometry(x, dw_w, pw_w, dw_b, pw_b, stride, padding, dilation) -> SeparableGeometry:
    """The separable layer of these (validated float) arrays; errors name the separable arguments."""
    depthwise = ConvGeometry.from_shapes(
        x.shape, dw_w.shape, None if dw_b is None else dw_b.shape,
        stride=stride, padding=padding, dilation=dilation, groups=_channels(x),
        argument_names={"weight": "depthwise_weight", "bias": "depthwise_bias"},
    )
    _check_pointwise_weight(pw_w, "pointwise_weight")
    pointwise = ConvGeometry.from_shapes(
        depthwise.output_shape, pw_w.shape, None if pw_b is None else pw_b.shape,
        argument_names={"x": "the depthwise output", "weight": "pointwise_weight", "bias": "pointwise_bias"},
    )
    return SeparableGeometry(depthwise, pointwise)


def separable_conv2d(x, depthwise_weight, pointwise_weight, depthwise_bias=None,
                     pointwise_bias=None, stride=1, padding=0, dilation=1,
                     method="reference", count=False, workspace_limit=None, out=None):
    """Depthwise-separable convolution: :func:`depthwise_conv2d` then :func:`pointwise_conv2d`.

    Parameters
    ----------
    x : array (N, C_in, H, W)
    depthwise_weight : array (C_in * m, 1, KH, KW), depth multiplier m
    pointwise_weight : array (C_out, C_in * m, 1, 1)
    depthwise_bias : array (C_in * m,) or None (None in the Keras convention)
    pointwise_bias : array (C_out,) or None
    stride, padding, dilation : apply to the depthwise part, as in :func:`conv2d`
    method, count, workspace_limit : as in :func:`conv2d`
    out : None or array (N, C_out, OH, OW): the final (pointwise) output, as in
        :func:`conv2d` (the depthwise output is the kernel's own)

    Returns
    -------
    y : array (N, C_out, OH, OW) (``out`` when given), or ``(y, counts)`` with a
        :class:`~npconv.counts.SeparableCounts` (depthwise, pointwise and sums)
    """
    a, copied = _operands(workspace_limit, x=x, depthwise_weight=depthwise_weight,
                          pointwise_weight=pointwise_weight, depthwise_bias=depthwise_bias,
                          pointwise_bias=pointwise_bias)
    x, dw_w, pw_w, dw_b, pw_b = a.values()
    layer = _separable_geometry(x, dw_w, pw_w, dw_b, pw_b, stride, padding, dilation)
    depthwise, pointwise = layer.depthwise, layer.pointwise
    out = _check_out(out, pointwise.output_shape, x.dtype, a)
    # the depthwise output is alive while the pointwise one is made: both must fit at once
    hidden_bytes = math.prod(depthwise.output_shape) * x.dtype.itemsize
    ensure_fits(hidden_bytes + math.prod(pointwise.output_shape) * x.dtype.itemsize,
                f"the output, shape {pointwise.output_shape} of {x.dtype.name}, with the depthwise output, "
                f"shape {depthwise.output_shape},")
    hidden, dw_counts = _run(method, count, workspace_limit, x, dw_w, dw_b, layer.depthwise,
                             "the depthwise part", copied)
    y, pw_counts = _run(method, count, workspace_limit, hidden, pw_w, pw_b, layer.pointwise,
                        "the pointwise part", copied, out)
    if dw_counts is None:
        return y
    return y, SeparableCounts(dw_counts, pw_counts)


# ---------------------------------------------------------------------- backward
#
# The gradients of a loss L with respect to a convolution's operands, given grad_y = dL/dy.
# What is computed and counted: see npconv.gradients.


def _backward_convention(kernel, count: object) -> tuple[bool, str]:
    """Parse ``count`` for ``kernel``: (are counts wanted, the convention to execute)."""
    wanted, convention = _counting(count)
    if convention is None:
        return wanted, kernel.CONVENTIONS[0]
    if convention not in kernel.CONVENTIONS:
        raise ConvArgumentError(
            "count",
            f"a convention that method {kernel.NAME!r} executes "
            f"({', '.join(map(repr, kernel.CONVENTIONS))})",
            repr(count),
        )
    return wanted, convention


def _check_grad_y(grad_y: np.ndarray, geometry: ConvGeometry, name: str = "grad_y") -> None:
    if grad_y.shape != geometry.output_shape:
        raise ConvArgumentError(
            name, f"the layer's output shape (N, C_out, OH, OW) = {geometry.output_shape}",
            f"shape {grad_y.shape}",
        )


def _check_grads_out(out: object, fields: tuple[str, ...], shapes: dict[str, tuple[int, ...] | None],
                     dtype: np.dtype, operands: dict[str, np.ndarray | None]) -> tuple[np.ndarray | None, ...]:
    """A backward ``out=`` checked: one array or None per gradient in ``fields``.

    ``out`` is None, or a sequence (a :class:`~npconv.gradients.Grads` or
    :class:`~npconv.gradients.SeparableGrads`) with one entry per field.
    ``shapes[field]`` is the gradient's shape, or None when it is not
    computed (that entry must be None).  Each array is checked as
    :func:`_check_out` checks the forward output, named ``out.<field>``,
    against the operands and the other entries.
    """
    if out is None:
        return (None,) * len(fields)
    expected = f"None or a sequence of {len(fields)} arrays or None, ({', '.join(fields)})"
    if isinstance(out, (np.ndarray, str, bytes)) or not isinstance(out, (tuple, list)):
        raise ConvTypeError("out", expected, type(out).__name__)
    if len(out) != len(fields):
        raise ConvArgumentError("out", expected, f"a sequence of {len(out)}")
    checked: dict[str, np.ndarray | None] = {}
    for field, array in zip(fields, out, strict=True):
        name, shape = f"out.{field}", shapes[field]
        if shape is None:
            if array is not None:
                raise ConvArgumentError(name, "None: this gradient is not computed (not in needs, or no bias)",
                                        type(array).__name__)
            checked[field] = None
            continue
        others = {**operands, **{f"out.{k}": v for k, v in checked.items()}}
        checked[field] = _check_out(array, shape, dtype, others, name)
    return tuple(checked[field] for field in fields)


def _gradient_shapes(geometry: ConvGeometry, needs: frozenset[str]) -> dict[str, tuple[int, ...] | None]:
    """The shape of each gradient ``needs`` computes, None for one it does not (or a layer without bias)."""
    return {"input": geometry.input_shape if "input" in needs else None,
            "weight": geometry.weight_shape if "weight" in needs else None,
            "bias": geometry.bias_shape if "bias" in needs else None}


def _run_backward(method: object, count: object, needs: frozenset[str], workspace_limit: object,
                  grad_y: np.ndarray, x: np.ndarray, weight: np.ndarray, geometry: ConvGeometry,
                  out: Grads | None = None):
    """Run ``method``'s backward kernel: ``(Grads, GradCounts | None)``.

    ``out``: checked arrays (:func:`_check_grads_out`) the kernel writes the gradients into, or None.
    """
    kernel = kernels.load(method)
    if not hasattr(kernel, "conv2d_backward"):
        raise ConvArgumentError("method", "a method with a backward pass", repr(method))
    wanted, convention = _backward_convention(kernel, count)
    limit = resolve_workspace_limit(workspace_limit)
    dtype = x.dtype
    for name, shape in _gradient_shapes(geometry, needs).items():
        if shape is not None:
            ensure_fits(math.prod(shape) * dtype.itemsize, f"the {name} gradient, shape {shape} of {dtype.name},")
    if out is None or not any(a is not None for a in out):
        return kernel.conv2d_backward(grad_y, x, weight, geometry, needs=needs, convention=convention,
                                      count=wanted, workspace_limit=limit)
    if _takes_out(kernel.conv2d_backward):
        return kernel.conv2d_backward(grad_y, x, weight, geometry, needs=needs, convention=convention,
                                      count=wanted, workspace_limit=limit, out=out)
    # a kernel registered without out=: its gradients are copied
    grads, counts = kernel.conv2d_backward(grad_y, x, weight, geometry, needs=needs, convention=convention,
                                           count=wanted, workspace_limit=limit)
    written = []
    for given, computed in zip(out, grads, strict=True):
        if given is not None:
            np.copyto(given, computed)
        written.append(computed if given is None else given)
    return Grads(*written), counts


def _differentiate(arrays: dict[str, np.ndarray | None], stride: object, padding: object,
                   dilation: object, groups: object, method: object, count: object, needs: object,
                   workspace_limit: object, out: object = None):
    """:func:`conv2d_backward` on operands already converted by :func:`_as_float_arrays`."""
    grad_y, x, weight, bias = arrays["grad_y"], arrays["x"], arrays["weight"], arrays["bias"]
    geometry = ConvGeometry.from_shapes(
        x.shape, weight.shape, None if bias is None else bias.shape,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )
    _check_grad_y(grad_y, geometry)
    wanted = parse_needs(needs)
    shapes = _gradient_shapes(geometry, wanted)
    out = _check_grads_out(out, GRADIENTS, shapes, x.dtype, arrays)
    grads, counts = _run_backward(method, count, wanted, workspace_limit, grad_y, x, weight, geometry,
                                  Grads(*out))
    return grads if counts is None else (grads, counts)


def conv2d_backward(grad_y, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    method="reference", count=False, needs=("input", "weight", "bias"),
                    workspace_limit=None, out=None):
    """Gradients of :func:`conv2d`: given ``grad_y = dL/dy``, return ``dL/dx``, ``dL/dweight``, ``dL/dbias``.

    Parameters
    ----------
    grad_y : array (N, C_out, OH, OW), the forward output's shape
    x, weight : the forward operands (any memory layout; not modified)
    bias : array (C_out,) or None -- says whether the layer has a bias; its
        values are not needed
    stride, padding, dilation, groups : as in :func:`conv2d`
    method : algorithm name, see :func:`npconv.kernels.available_methods`
    count : False, True, "dense" or "effective", as in :func:`conv2d`
    needs : the gradients to compute: a subset of ``("input", "weight",
        "bias")``, or one of those names.  The others are ``None`` and are
        neither computed nor counted.  ``"bias"`` for a layer without bias
        (``bias=None``) is ignored: that gradient is ``None``, so the default
        suits layers with and without bias.  The first layer of a network
        needs no input gradient: ``needs=("weight", "bias")``.
    workspace_limit : int bytes or None, as in :func:`conv2d`
    out : None, or ``Grads(input, weight, bias)`` (any sequence in that order)
        of arrays to write the gradients into -- each C-contiguous,
        writeable, of the gradient's shape and dtype, sharing no memory with
        the operands or each other -- and ``None`` where a gradient is to be
        allocated or is not computed (see module docstring).  The returned
        gradients are those arrays.

    Operands follow :func:`conv2d`'s dtype rules (float32 or float64, mixed
    dtypes promoted: ``grad_y`` takes part) and the gradients have that
    dtype.  An empty batch gives an empty input gradient and zero weight and
    bias gradients, with counts of 0.

    Returns
    -------
    grads : :class:`~npconv.gradients.Grads` ``(input, weight, bias)``, or
        ``(grads, counts)`` with a :class:`~npconv.gradients.GradCounts` (one
        :class:`~npconv.counts.Counts` per computed gradient and their totals)
        when ``count`` is not False.  The counts equal
        ``npconv.formulas.backward_mults`` / ``backward_adds``.
    """
    arrays = _as_float_arrays(grad_y=grad_y, x=x, weight=weight, bias=bias)
    return _differentiate(arrays, stride, padding, dilation, groups, method, count, needs, workspace_limit, out)


def depthwise_conv2d_backward(grad_y, x, weight, bias=None, stride=1, padding=0, dilation=1,
                              method="reference", count=False, needs=("input", "weight", "bias"),
                              workspace_limit=None, out=None):
    """Gradients of :func:`depthwise_conv2d` (``groups = C_in``); arguments as in :func:`conv2d_backward`."""
    arrays = _as_float_arrays(grad_y=grad_y, x=x, weight=weight, bias=bias)
    return _differentiate(arrays, stride, padding, dilation, _channels(arrays["x"]), method, count, needs,
                          workspace_limit, out)


def pointwise_conv2d_backward(grad_y, x, weight, bias=None, method="reference", count=False,
                              needs=("input", "weight", "bias"), workspace_limit=None, out=None):
    """Gradients of :func:`pointwise_conv2d` (a 1x1 kernel); arguments as in :func:`conv2d_backward`."""
    arrays = _as_float_arrays(grad_y=grad_y, x=x, weight=weight, bias=bias)
    _check_pointwise_weight(arrays["weight"], "weight")
    return _differentiate(arrays, 1, 0, 1, 1, method, count, needs, workspace_limit, out)


def separable_conv2d_backward(grad_y, x, depthwise_weight, pointwise_weight, depthwise_bias=None,
                              pointwise_bias=None, stride=1, padding=0, dilation=1, method="reference",
                              count=False, needs=("input", "weight", "bias"), workspace_limit=None,
                              hidden=None, out=None):
    """Gradients of :func:`separable_conv2d`: the pointwise part's backward, then the depthwise part's.

    Parameters
    ----------
    grad_y : array (N, C_out, OH, OW)
    x, depthwise_weight, pointwise_weight, depthwise_bias, pointwise_bias,
    stride, padding, dilation : as in :func:`separable_conv2d` (the biases
        only say whether each part has one)
    method, count, workspace_limit : as in :func:`conv2d_backward`
    needs : as in :func:`conv2d_backward`; ``"weight"`` means both weights,
        ``"bias"`` both biases (where present)
    hidden : array (N, C_in * m, OH, OW) or None: the depthwise output of the
        forward pass, which the pointwise weight gradient needs.  When absent
        (and that gradient is needed) it is recomputed with ``method``, and
        the recomputation's counts are reported apart, in
        ``counts.hidden_recompute``, not in the gradient counts.
    out : None, or a :class:`~npconv.gradients.SeparableGrads` (any sequence
        in its order) of arrays to write the gradients into, each checked as
        in :func:`conv2d_backward`, ``None`` for one to allocate or not
        computed.  The depthwise output's gradient, an intermediate, is
        always allocated.

    Returns
    -------
    grads : :class:`~npconv.gradients.SeparableGrads` ``(input,
        depthwise_weight, pointwise_weight, depthwise_bias, pointwise_bias)``,
        or ``(grads, counts)`` with a
        :class:`~npconv.gradients.SeparableGradCounts`
    """
    operands = dict(grad_y=grad_y, x=x, depthwise_weight=depthwise_weight, pointwise_weight=pointwise_weight,
                    depthwise_bias=depthwise_bias, pointwise_bias=pointwise_bias)
    if hidden is not None:  # hidden=None is an absent operand, not a missing one
        operands["hidden"] = hidden
    a = _as_float_arrays(**operands)
    grad_y, x, dw_w, pw_w, dw_b, pw_b = (a[k] for k in list(operands)[:6])
    layer = _separable_geometry(x, dw_w, pw_w, dw_b, pw_b, stride, padding, dilation)
    _check_grad_y(grad_y, layer.pointwise)
    if "hidden" in a:
        _check_grad_y(a["hidden"], layer.depthwise, "hidden")
    dw_needs, pw_needs = separable_needs(parse_needs(needs))
    dw_shapes, pw_shapes = _gradient_shapes(layer.depthwise, dw_needs), _gradient_shapes(layer.pointwise, pw_needs)
    out = _check_grads_out(out, SeparableGrads._fields,
                           {"input": dw_shapes["input"], "depthwise_weight": dw_shapes["weight"],
                            "pointwise_weight": pw_shapes["weight"], "depthwise_bias": dw_shapes["bias"],
                            "pointwise_bias": pw_shapes["bias"]}, x.dtype, a)
    out_input, out_dw_w, out_pw_w, out_dw_b, out_pw_b = out
    kernel = kernels.load(method)
    _backward_convention(kernel, count)  # refuse a bad count before any work
    hidden, recompute = a.get("hidden"), None
    if hidden is None and "weight" in pw_needs:
        hidden, recompute = _run(method, count, workspace_limit, x, dw_w, dw_b, layer.depthwise)
    elif hidden is None:
        # Without the pointwise weight gradient only hidden's shape matters: kernels read the
        # forward input only for the weight gradient.
        hidden = np.broadcast_to(np.zeros((), x.dtype), layer.depthwise.output_shape)
    pw_grads, pw_counts = _run_backward(method, count, pw_needs, workspace_limit, grad_y, hidden, pw_w,
                                        layer.pointwise, Grads(None, out_pw_w, out_pw_b))
    if dw_needs:
        dw_grads, dw_counts = _run_backward(method, count, dw_needs, workspace_limit, pw_grads.input, x, dw_w,
                                            layer.depthwise, Grads(out_input, out_dw_w, out_dw_b))
    else:
        dw_grads, dw_counts = Grads(None, None, None), None
    grads = SeparableGrads(dw_grads.input, dw_grads.weight, pw_grads.weight, dw_grads.bias, pw_grads.bias)
    if pw_counts is None:
        return grads
    if dw_counts is None:
        dw_counts = GradCounts(None, None, None, pw_counts.convention, pw_counts.method)
    return grads, SeparableGradCounts(dw_counts, pw_counts, recompute)
