"""Workloads: a benchmark layer with its random operands, and the calls every contestant makes.

:class:`ConvWorkload` (a standard, possibly grouped layer) and
:class:`SeparableWorkload` (depthwise then pointwise) make the npconv call
(:meth:`npconv_call`, fast or counting) and PyTorch's on the same numbers
(:meth:`torch_call`), and know their closed-form counts
(:mod:`npconv.quantities`).  :func:`select_layers` picks layers of the
benchmark set by name; :func:`separable_counterpart` pairs a standard layer
with its depthwise-separable counterpart.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

import npconv
from npconv import kernels, quantities
from npconv.counts import SeparableCounts
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.layerset import BENCHMARK_LAYERS

DTYPES = ("float32", "float64")


def _normalised(name: str) -> str:
    return "".join(name.lower().split())


def select_layers(text: str, argument: str = "layers") -> dict[str, ConvGeometry]:
    """Layers of the set named in ``text``: comma-separated, case and spaces ignored.

    A name may be shortened to a prefix that names one layer (``resnet``,
    ``large``); ``all`` selects the whole set.
    """
    by_key = {_normalised(name): name for name in BENCHMARK_LAYERS}
    expected = (f"comma-separated names from the layer set ({', '.join(BENCHMARK_LAYERS)}; case and "
                f"spaces ignored, a unique prefix such as 'resnet' will do) or 'all'")
    chosen: list[str] = []
    for token in text.split(","):
        key = _normalised(token)
        if key == "all":
            chosen.extend(BENCHMARK_LAYERS)
            continue
        matches = [name for k, name in by_key.items() if k == key] or [
            name for k, name in by_key.items() if key and k.startswith(key)]
        if len(matches) != 1:
            problem = "matches none" if not matches else f"matches {len(matches)}: {', '.join(matches)}"
            raise ConvArgumentError(argument, expected, f"{text!r} ({token.strip()!r} {problem})")
        chosen.append(matches[0])
    return {name: BENCHMARK_LAYERS[name] for name in dict.fromkeys(chosen)}


def check_dtype(dtype: object, argument: str = "dtype") -> np.dtype:
    """``"float32"`` or ``"float64"`` (or the NumPy dtype) as a dtype."""
    if str(dtype) not in DTYPES:
        raise ConvArgumentError(argument, " or ".join(DTYPES), repr(dtype))
    return np.dtype(str(dtype))


def separable_counterpart(standard: ConvGeometry) -> tuple[ConvGeometry, SeparableGeometry]:
    """The ungrouped standard layer and the depthwise-separable layer with ``standard``'s input and output.

    The separable layer has ``standard``'s kernel, stride, padding and
    dilation on its depthwise part (depth multiplier 1) and, when
    ``standard`` has a bias, one on its pointwise part (Keras' convention).
    """
    separable = SeparableGeometry.from_layer(
        standard.input_shape, standard.out_channels, (standard.kernel_h, standard.kernel_w),
        stride=standard.stride, padding=standard.padding_argument, dilation=standard.dilation,
        bias="keras" if standard.bias else "none",
    )
    return separable.standard_equivalent(), separable


# ---------------------------------------------------------------------- workloads


def _random(rng: np.random.Generator, shape: tuple[int, ...] | None, dtype: np.dtype) -> np.ndarray | None:
    """Random normal numbers drawn in ``dtype`` itself (no float64 array first, then a cast)."""
    return None if shape is None else rng.standard_normal(shape, dtype=dtype)


def operand_arrays(geometry: ConvGeometry | SeparableGeometry, dtype: object) -> list[tuple[str, object, np.dtype]]:
    """``(name, shape, dtype)`` of the random operands a workload of ``geometry`` holds (None: absent)."""
    dtype = np.dtype(dtype)
    if isinstance(geometry, SeparableGeometry):
        dw, pw = geometry.depthwise, geometry.pointwise
        shapes = {"x": dw.input_shape, "depthwise weight": dw.weight_shape, "pointwise weight": pw.weight_shape,
                  "depthwise bias": dw.bias_shape, "pointwise bias": pw.bias_shape}
    else:
        shapes = {"x": geometry.input_shape, "weight": geometry.weight_shape, "bias": geometry.bias_shape}
    return [(name, shape, dtype) for name, shape in shapes.items()]


def output_arrays(geometry: ConvGeometry | SeparableGeometry, dtype: object) -> list[tuple[str, object, np.dtype]]:
    """What one call on ``geometry`` allocates for its result: the output (and a separable layer's
    depthwise output, alive while the pointwise part runs)."""
    dtype = np.dtype(dtype)
    if isinstance(geometry, SeparableGeometry):
        return [("the depthwise output", geometry.depthwise.output_shape, dtype),
                ("the output", geometry.output_shape, dtype)]
    return [("the output", geometry.output_shape, dtype)]


def _torch_padding(geometry: ConvGeometry) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """``conv2d``'s symmetric ``padding`` and, for asymmetric padding, the ``F.pad`` to apply first."""
    (top, bottom), (left, right) = geometry.padding
    if top == bottom and left == right:
        return (top, left), None
    return (0, 0), (left, right, top, bottom)


def _torch_conv(torch: ModuleType, geometry: ConvGeometry) -> Callable:
    """``f(x, weight, bias)``: PyTorch's conv2d for ``geometry`` (asymmetric padding through ``F.pad``)."""
    functional = torch.nn.functional
    padding, pad_first = _torch_padding(geometry)
    options = dict(stride=geometry.stride, padding=padding, dilation=geometry.dilation, groups=geometry.groups)
    if pad_first is None:
        return lambda x, w, b: functional.conv2d(x, w, b, **options)
    return lambda x, w, b: functional.conv2d(functional.pad(x, pad_first), w, b, **options)


class _Workload:
    """What every workload knows from its geometry alone: the closed-form counts."""

    geometry: ConvGeometry | SeparableGeometry

    def formula_counts(self, convention: str) -> tuple[int, int]:
        """Closed-form ``(mults, adds)`` under ``convention``."""
        counted = quantities.counts(self.geometry, convention)
        return counted["mults"], counted["adds"]

    def formula_counts_of(self, counts) -> tuple[int, int]:
        """Closed-form ``(mults, adds)`` a run's counts must equal, in the convention(s) it ran in
        (a fast algorithm's own: :func:`npconv.quantities.counts_of_run`)."""
        counted = quantities.counts_of_run(self.geometry, counts)
        return counted["mults"], counted["adds"]

    @property
    def dense_mults(self) -> int:
        return self.formula_counts("dense")[0]


class ConvWorkload(_Workload):
    """A standard (possibly grouped) layer with random operands: the calls every contestant makes."""

    kind = "standard"

    def __init__(self, geometry: ConvGeometry, dtype: object = "float32", seed: int = 0):
        self.geometry = geometry
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.x = _random(rng, geometry.input_shape, self.dtype)
        self.weight = _random(rng, geometry.weight_shape, self.dtype)
        self.bias = _random(rng, geometry.bias_shape, self.dtype)

    def npconv_call(self, method: str, count: bool = False) -> Callable[[], object]:
        """``npconv.conv2d`` on these operands: the output, or ``(y, counts)`` when ``count``."""
        g = self.geometry
        return lambda: npconv.conv2d(self.x, self.weight, self.bias, stride=g.stride, padding=g.padding,
                                     dilation=g.dilation, groups=g.groups, method=method, count=count)

    def torch_call(self, torch: ModuleType) -> Callable[[], object]:
        """``torch.nn.functional.conv2d`` on the same numbers (tensors share the arrays' memory)."""
        conv = _torch_conv(torch, self.geometry)
        x, w, b = (None if a is None else torch.from_numpy(a) for a in (self.x, self.weight, self.bias))
        return lambda: conv(x, w, b)

    def describe(self) -> str:
        return self.geometry.describe()



class SeparableWorkload(_Workload):
    """A depthwise-separable layer with random operands (depthwise, then pointwise)."""

    kind = "separable"

    def __init__(self, geometry: SeparableGeometry, dtype: object = "float32", seed: int = 0):
        self.geometry = geometry
        self.dtype = np.dtype(dtype)
        dw, pw = geometry.depthwise, geometry.pointwise
        rng = np.random.default_rng(seed)
        self.x = _random(rng, dw.input_shape, self.dtype)
        self.depthwise_weight = _random(rng, dw.weight_shape, self.dtype)
        self.pointwise_weight = _random(rng, pw.weight_shape, self.dtype)
        self.depthwise_bias = _random(rng, dw.bias_shape, self.dtype)
        self.pointwise_bias = _random(rng, pw.bias_shape, self.dtype)

    def part_methods(self, method: str) -> tuple[str, str]:
        """The methods the depthwise and the pointwise part run by: ``method``, or for a part a fast
        algorithm cannot run, :data:`FALLBACK_METHOD`."""
        return tuple(method if kernels.supports(method, part) is None else FALLBACK_METHOD
                     for part in (self.geometry.depthwise, self.geometry.pointwise))

    def npconv_call(self, method: str, count: bool = False) -> Callable[[], object]:
        """``npconv.separable_conv2d`` on these operands -- or, when ``method`` cannot run one of
        the parts (Winograd and a 1x1 pointwise part), its two parts each by :meth:`part_methods`."""
        dw = self.geometry.depthwise
        spatial = dict(stride=dw.stride, padding=dw.padding, dilation=dw.dilation)
        dw_method, pw_method = self.part_methods(method)
        if dw_method == pw_method:
            return lambda: npconv.separable_conv2d(
                self.x, self.depthwise_weight, self.pointwise_weight, self.depthwise_bias, self.pointwise_bias,
                **spatial, method=method, count=count)

        def by_parts():
            hidden = npconv.depthwise_conv2d(self.x, self.depthwise_weight, self.depthwise_bias, **spatial,
                                             method=dw_method, count=count)
            hidden, dw_counts = hidden if count else (hidden, None)
            y = npconv.pointwise_conv2d(hidden, self.pointwise_weight, self.pointwise_bias, method=pw_method,
                                        count=count)
            return (y[0], SeparableCounts(dw_counts, y[1])) if count else y

        return by_parts

    def torch_call(self, torch: ModuleType) -> Callable[[], object]:
        """Two ``conv2d`` calls: depthwise (``groups = C_in``), then pointwise (1x1)."""
        depthwise = _torch_conv(torch, self.geometry.depthwise)
        pointwise = _torch_conv(torch, self.geometry.pointwise)
        x, dw_w, pw_w, dw_b, pw_b = (None if a is None else torch.from_numpy(a) for a in (
            self.x, self.depthwise_weight, self.pointwise_weight, self.depthwise_bias, self.pointwise_bias))
        return lambda: pointwise(depthwise(x, dw_w, dw_b), pw_w, pw_b)


    def describe(self) -> str:
        dw, pw = self.geometry.depthwise, self.geometry.pointwise
        return (f"depthwise {dw.kernel_h}x{dw.kernel_w} on {dw.in_channels} channels (multiplier "
                f"{dw.depth_multiplier}, bias {'yes' if dw.bias else 'no'}) + pointwise 1x1 to "
                f"{pw.out_channels} (bias {'yes' if pw.bias else 'no'})")



#: What runs the part of a separable layer that a fast algorithm cannot (a 1x1 layer is a GEMM as it is).
FALLBACK_METHOD = "im2col"

Workload = ConvWorkload | SeparableWorkload


