"""Whole networks: an explicit sequence of layers, shapes inferred layer by layer, every layer counted.

A :class:`Network` is an input shape (NCHW) and a tuple of layers::

    from npconv.network import Network, Conv2d, BatchNorm, ReLU, GlobalAvgPool, Flatten, Linear

    net = Network("tiny", (1, 3, 8, 8), (
        Conv2d(16, 3, padding="same", bias=False), BatchNorm(), ReLU(),
        GlobalAvgPool(), Flatten(), Linear(10),
    ))
    net.totals().params          # 3 x 3 x 3 x 16 + 2 x 16 + (16 + 1) x 10 = 634

Layer kinds (``kind`` is the name used in TOML files and tables):

========================  ==================================================================
``conv2d``                :class:`Conv2d` -- ``torch.nn.Conv2d``: filters, kernel, stride,
                          padding (int, pair, per-side pairs, ``"same"``, ``"valid"``),
                          dilation, groups, bias
``depthwise``             :class:`Depthwise` -- groups = C_in, C_out = m x C_in
``pointwise``             :class:`Pointwise` -- 1x1, stride 1, no padding
``separable``             :class:`Separable` -- depthwise then pointwise, one row; bias
                          convention ``keras`` / ``torch`` / ``none``
``linear``                :class:`Linear` -- on a flat input (N, F); counted as the 1x1
                          convolution of a 1x1 input that it is
``batchnorm``             :class:`BatchNorm`
``maxpool``, ``avgpool``  :class:`MaxPool`, :class:`AvgPool` (stride defaults to the kernel)
``global_avgpool``        :class:`GlobalAvgPool` -- to (N, C, 1, 1)
``flatten``               :class:`Flatten` -- to (N, C x H x W)
``relu``                  :class:`ReLU` -- a marker: no parameters, nothing counted
``residual``              :class:`Residual` -- main path + shortcut (identity when empty),
                          added element-wise
========================  ==================================================================

Conventions (every number says what it counts, as in :mod:`npconv.counts`):

* **params** are learnable parameters: weights, biases, and batch-norm's scale
  and shift (2 per channel).  Batch-norm's running mean and variance are
  *buffers* (PyTorch's word), reported separately and never added to params.
* **mults** are the multiplications of the layers that multiply activations
  by weights -- convolutions and linear layers -- the "mult-adds" (MACs) of
  the papers; **adds** are their additions (bias included; summing T terms
  takes T - 1 additions), FLOPs = mults + adds.  Both in two conventions:
  *dense* (every tap, padded zeros included) and *effective* (only taps on
  real input).
* Everything else is listed apart, under *other* operations, dense, and is
  not part of mults: batch-norm at inference, folded to a scale and a shift,
  1 mult + 1 add per element; average pooling KH x KW - 1 adds per output and
  1 mult (by 1 / (KH x KW)); max pooling KH x KW - 1 comparisons per output;
  a residual addition 1 add per element; ReLU nothing.

Geometry comes from :class:`~npconv.geometry.ConvGeometry`, the counts of
weighted layers from :mod:`npconv.quantities` and those of the other layers
from :mod:`npconv.formulas`; this module only walks the layers.  Pure Python.
It is longer than most because each layer kind is a small class whose
``resolve`` says its shapes and counts, and all of them, the network that
resolves them and its standard rebuild are read together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from npconv import formulas as F
from npconv import quantities as Q
from npconv.counts import CONVENTIONS
from npconv.errors import ConvArgumentError
from npconv.formulas import Quantity
from npconv.geometry import BIAS_CONVENTIONS, DEFAULT_BIAS_CONVENTION, ConvGeometry, SeparableGeometry

Shape = tuple[int, ...]

#: Kinds whose multiplications are the headline ``mults`` (weights times activations).
WEIGHTED_KINDS = ("conv2d", "depthwise", "pointwise", "separable", "linear")

#: Operations outside the headline counts, per row: ``"mults"``, ``"adds"``, ``"comparisons"``.
OTHER_OPERATIONS = ("mults", "adds", "comparisons")


def _frozen(value: object) -> object:
    """Lists (as a TOML file gives them) become tuples, so layers compare and hash."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _positive_int(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConvArgumentError(argument, "a positive int", repr(value))
    return value


def _image_shape(shape: Shape, where: str, kind: str) -> Shape:
    if len(shape) != 4:
        raise ConvArgumentError(
            where, f"an image input (N, C, H, W) for a {kind} layer", f"the flat shape {shape}"
        )
    return shape


def _geometry_names(where: str, **renamed: str) -> dict[str, str]:
    """``ConvGeometry`` argument names -> ``layers[3].filters`` and so on, for error messages."""
    names = {key: f"{where}.{key}" for key in ("stride", "padding", "dilation", "groups", "bias", "kernel")}
    names.update(dict.fromkeys(("batch", "in_channels", "height", "width"), f"{where} (its input)"))
    names["out_channels"] = f"{where}.filters"
    names.update({key: f"{where}.{value}" for key, value in renamed.items()})
    return names


# ---------------------------------------------------------------------- what a layer counts


@dataclass(frozen=True)
class LayerCount:
    """One row of a network's table: a layer's shapes and its counted quantities.

    ``mults`` and ``adds`` (keyed by convention) are empty for layers that
    multiply no weights; ``other`` holds the dense operations outside the
    headline counts (keys from :data:`OTHER_OPERATIONS`).  ``geometry`` is
    the convolution a weighted layer runs (a linear layer's is 1x1 on a 1x1
    input) or a pooling layer's window; ``None`` otherwise.
    """

    path: str
    name: str
    kind: str
    input_shape: Shape
    output_shape: Shape
    geometry: ConvGeometry | SeparableGeometry | None = None
    params: Quantity | None = None
    buffers: Quantity | None = None
    mults: dict[str, Quantity] = field(default_factory=dict)
    adds: dict[str, Quantity] = field(default_factory=dict)
    other: dict[str, Quantity] = field(default_factory=dict)

    @property
    def is_weighted(self) -> bool:
        """A convolution or linear layer: its multiplications are in the headline ``mults``."""
        return bool(self.mults)

    def value(self, what: str, convention: str = "dense") -> int:
        """``params``, ``buffers``, ``mults``, ``adds`` or ``flops`` as an int (0 when absent)."""
        if what in ("params", "buffers"):
            quantity = getattr(self, what)
            return 0 if quantity is None else int(quantity)
        if what == "flops":
            return self.value("mults", convention) + self.value("adds", convention)
        quantity = getattr(self, what).get(convention)
        return 0 if quantity is None else int(quantity)

    def other_value(self, operation: str) -> int:
        quantity = self.other.get(operation)
        return 0 if quantity is None else int(quantity)


def _weighted_row(path: str, name: str, kind: str, geometry: ConvGeometry | SeparableGeometry,
                  input_shape: Shape | None = None, output_shape: Shape | None = None) -> LayerCount:
    return LayerCount(
        path, name, kind,
        input_shape or geometry.input_shape, output_shape or geometry.output_shape, geometry,
        params=Q.quantity(geometry, "params"),
        mults={c: Q.quantity(geometry, "mults", c) for c in CONVENTIONS},
        adds={c: Q.quantity(geometry, "adds", c) for c in CONVENTIONS},
    )


@dataclass(frozen=True)
class ResolvedResidual:
    """A residual block with its shapes known: the rows of both paths and of the addition."""

    main: tuple[ResolvedLayer, ...]
    shortcut: tuple[ResolvedLayer, ...]
    add: LayerCount

    @property
    def output_shape(self) -> Shape:
        return self.add.output_shape


ResolvedLayer = LayerCount | ResolvedResidual


def _rows(resolved: Sequence[ResolvedLayer]) -> Iterator[LayerCount]:
    """Flatten resolved layers into table rows: main path, shortcut, then the addition."""
    for item in resolved:
        if isinstance(item, ResolvedResidual):
            yield from _rows(item.main)
            yield from _rows(item.shortcut)
            yield item.add
        else:
            yield item


# ---------------------------------------------------------------------- layer kinds


@dataclass(frozen=True)
class Layer:
    """Base of the layer kinds.  ``name`` is optional: a default is made from the kind and position."""

    kind: ClassVar[str] = ""
    name: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _frozen(getattr(self, f.name)))

    def resolve(self, input_shape: Shape, where: str, name: str) -> ResolvedLayer:
        """This layer's row for ``input_shape``; errors name ``where`` (``layers[3]``)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Conv2d(Layer):
    """A standard (or grouped) convolution, as ``torch.nn.Conv2d``."""

    kind: ClassVar[str] = "conv2d"
    filters: int
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: object = 0
    dilation: int | tuple[int, int] = 1
    groups: int = 1
    bias: bool = True

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        geometry = ConvGeometry.from_layer(
            _image_shape(input_shape, where, self.kind), self.filters, self.kernel,
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
            bias=self.bias, argument_names=_geometry_names(where),
        )
        return _weighted_row(where, name, self.kind, geometry)


@dataclass(frozen=True)
class Depthwise(Layer):
    """Depthwise convolution: groups = C_in, ``depth_multiplier`` outputs per input channel."""

    kind: ClassVar[str] = "depthwise"
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: object = 0
    dilation: int | tuple[int, int] = 1
    depth_multiplier: int = 1
    bias: bool = True

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        channels = _image_shape(input_shape, where, self.kind)[1]
        multiplier = _positive_int(self.depth_multiplier, f"{where}.depth_multiplier")
        geometry = ConvGeometry.from_layer(
            input_shape, channels * multiplier, self.kernel, stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=channels, bias=self.bias,
            argument_names=_geometry_names(where, out_channels="depth_multiplier"),
        )
        return _weighted_row(where, name, self.kind, geometry)


@dataclass(frozen=True)
class Pointwise(Layer):
    """Pointwise (1x1, stride 1, unpadded) convolution over all channels."""

    kind: ClassVar[str] = "pointwise"
    filters: int
    bias: bool = True

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        geometry = ConvGeometry.from_layer(
            _image_shape(input_shape, where, self.kind), self.filters, 1, bias=self.bias,
            argument_names=_geometry_names(where),
        )
        return _weighted_row(where, name, self.kind, geometry)


@dataclass(frozen=True)
class Separable(Layer):
    """Depthwise-separable convolution (depthwise then pointwise) counted as one row.

    ``bias`` is a convention of :data:`npconv.geometry.BIAS_CONVENTIONS`:
    ``keras`` (pointwise bias only, the default), ``torch`` (both), ``none``.
    """

    kind: ClassVar[str] = "separable"
    filters: int
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: object = 0
    dilation: int | tuple[int, int] = 1
    depth_multiplier: int = 1
    bias: str = DEFAULT_BIAS_CONVENTION

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        geometry = SeparableGeometry.from_layer(
            _image_shape(input_shape, where, self.kind), self.filters, self.kernel,
            stride=self.stride, padding=self.padding, dilation=self.dilation,
            depth_multiplier=self.depth_multiplier, bias=self.bias,
            argument_names={**_geometry_names(where), "depth_multiplier": f"{where}.depth_multiplier"},
        )
        return _weighted_row(where, name, self.kind, geometry)

    def standard_equivalent(self) -> Conv2d:
        """The standard convolution with the same shapes, biased like the pointwise part."""
        return Conv2d(self.filters, self.kernel, self.stride, self.padding, self.dilation,
                      bias=BIAS_CONVENTIONS[self.bias][1], name=self.name)


@dataclass(frozen=True)
class Linear(Layer):
    """A fully connected layer on a flat input ``(N, F)``, as ``torch.nn.Linear``.

    Counted as what it is: a 1x1 convolution of a 1x1 input with ``F`` channels.
    """

    kind: ClassVar[str] = "linear"
    features: int
    bias: bool = True

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        if len(input_shape) != 2:
            raise ConvArgumentError(
                where, "a flat input (N, features) for a linear layer: put a flatten layer before it",
                f"shape {input_shape}",
            )
        batch, in_features = input_shape
        geometry = ConvGeometry.from_layer(
            (batch, in_features, 1, 1), self.features, 1, bias=self.bias,
            argument_names=_geometry_names(where, out_channels="features"),
        )
        return _weighted_row(where, name, self.kind, geometry, input_shape, (batch, self.features))


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation over the channels (axis 1), as ``torch.nn.BatchNorm2d`` / ``BatchNorm1d``.

    2 learnable parameters per channel (scale, shift) and 2 buffers (running
    mean, variance); at inference it folds to 1 mult + 1 add per element.
    """

    kind: ClassVar[str] = "batchnorm"

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        per_element = F.elements(input_shape)
        return LayerCount(
            where, name, self.kind, input_shape, input_shape,
            params=F.batch_norm_params(input_shape[1]), buffers=F.batch_norm_buffers(input_shape[1]),
            other={"mults": per_element, "adds": per_element},
        )


@dataclass(frozen=True)
class ReLU(Layer):
    """``max(x, 0)``: a marker that changes no shape; nothing is counted."""

    kind: ClassVar[str] = "relu"

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        return LayerCount(where, name, self.kind, input_shape, input_shape)


@dataclass(frozen=True)
class Flatten(Layer):
    """``(N, C, H, W) -> (N, C x H x W)``, as ``torch.nn.Flatten``."""

    kind: ClassVar[str] = "flatten"

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        features = 1
        for size in input_shape[1:]:
            features *= size
        return LayerCount(where, name, self.kind, input_shape, (input_shape[0], features))


@dataclass(frozen=True)
class _Pool(Layer):
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: object = 0

    def window(self, input_shape: Shape, where: str) -> ConvGeometry:
        """The pooling window as a depthwise geometry; ``stride`` defaults to the kernel (PyTorch)."""
        channels = _image_shape(input_shape, where, self.kind)[1]
        return ConvGeometry.from_layer(
            input_shape, channels, self.kernel, stride=self.kernel if self.stride is None else self.stride,
            padding=self.padding, groups=channels, argument_names=_geometry_names(where),
        )


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling, as ``torch.nn.MaxPool2d`` (padding never wins a max): KH x KW - 1 comparisons per output."""

    kind: ClassVar[str] = "maxpool"

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        window = self.window(input_shape, where)
        return LayerCount(where, name, self.kind, input_shape, window.output_shape, window,
                          other={"comparisons": F.pooling_window_ops(window)})


def _average_row(kind: str, window: ConvGeometry, where: str, name: str) -> LayerCount:
    """Average pooling: KH x KW - 1 adds per output and 1 mult by 1 / (KH x KW)."""
    return LayerCount(where, name, kind, window.input_shape, window.output_shape, window,
                      other={"adds": F.pooling_window_ops(window), "mults": F.elements(window.output_shape)})


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling, as ``torch.nn.AvgPool2d`` (padded zeros included in the average)."""

    kind: ClassVar[str] = "avgpool"

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        return _average_row(self.kind, self.window(input_shape, where), where, name)


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """Average over the whole image: ``(N, C, H, W) -> (N, C, 1, 1)``, as ``AdaptiveAvgPool2d(1)``."""

    kind: ClassVar[str] = "global_avgpool"

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        _, channels, height, width = _image_shape(input_shape, where, self.kind)
        window = ConvGeometry.from_layer(input_shape, channels, (height, width), groups=channels)
        return _average_row(self.kind, window, where, name)


@dataclass(frozen=True)
class Residual(Layer):
    """``main(x) + shortcut(x)``; an empty ``shortcut`` is the identity.

    Both paths must end in the same shape.  Layers inside are named
    ``<block>.<layer>`` (``layer2.0.conv1``).  Put a :class:`ReLU` after the
    block for ResNet's activation after the addition.
    """

    kind: ClassVar[str] = "residual"
    main: tuple[Layer, ...]
    shortcut: tuple[Layer, ...] = ()

    def resolve(self, input_shape: Shape, where: str, name: str) -> ResolvedResidual:
        main = _resolve_sequence(self.main, input_shape, f"{where}.main", f"{name}.")
        shortcut = _resolve_sequence(self.shortcut, input_shape, f"{where}.shortcut", f"{name}.")
        main_shape = main[-1].output_shape if main else input_shape
        shortcut_shape = shortcut[-1].output_shape if shortcut else input_shape
        if main_shape != shortcut_shape:
            raise ConvArgumentError(
                where, "main and shortcut paths that end in the same shape (add a 1x1 conv to the shortcut)",
                f"main {main_shape}, shortcut {shortcut_shape}",
            )
        add = LayerCount(f"{where}.add", f"{name}.add", "add", main_shape, main_shape,
                         other={"adds": F.elements(main_shape)})
        return ResolvedResidual(main, shortcut, add)


#: TOML ``kind`` -> layer class.
LAYER_KINDS: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (Conv2d, Depthwise, Pointwise, Separable, Linear, BatchNorm, ReLU, MaxPool, AvgPool,
                GlobalAvgPool, Flatten, Residual)
}


def _resolve_sequence(layers: Sequence[Layer], input_shape: Shape, where: str,
                      prefix: str = "") -> tuple[ResolvedLayer, ...]:
    resolved = []
    shape = input_shape
    for index, layer in enumerate(layers):
        here = f"{where}[{index}]"
        if not isinstance(layer, Layer):
            raise ConvArgumentError(here, f"a layer ({', '.join(LAYER_KINDS)})", repr(layer))
        if not isinstance(layer.name, str):
            raise ConvArgumentError(f"{here}.name", "a string", repr(layer.name))
        item = layer.resolve(shape, here, prefix + (layer.name or f"{layer.kind}_{index + 1}"))
        resolved.append(item)
        shape = item.output_shape
    return tuple(resolved)


# ---------------------------------------------------------------------- the network


@dataclass(frozen=True)
class NetworkTotals:
    """Sums over a network's rows; see the module docstring for the conventions."""

    params: int
    buffers: int
    #: convention -> sum over weighted layers
    mults: dict[str, int]
    adds: dict[str, int]
    #: layer kind -> dense mults of the weighted layers of that kind
    mults_by_kind: dict[str, int]
    #: layer kind -> params of the layers of that kind
    params_by_kind: dict[str, int]
    #: layer kind -> {operation: count} outside the headline counts
    other: dict[str, dict[str, int]]

    @property
    def flops(self) -> dict[str, int]:
        """``mults + adds`` per convention."""
        return {c: self.mults[c] + self.adds[c] for c in self.mults}


def network_totals(rows: Sequence[LayerCount]) -> NetworkTotals:
    """Add up ``rows``."""
    by_kind_mults: dict[str, int] = {}
    by_kind_params: dict[str, int] = {}
    other: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.is_weighted:
            by_kind_mults[row.kind] = by_kind_mults.get(row.kind, 0) + row.value("mults")
        if row.params is not None:
            by_kind_params[row.kind] = by_kind_params.get(row.kind, 0) + row.value("params")
        for operation in row.other:
            ops = other.setdefault(row.kind, {})
            ops[operation] = ops.get(operation, 0) + row.other_value(operation)
    return NetworkTotals(
        params=sum(row.value("params") for row in rows),
        buffers=sum(row.value("buffers") for row in rows),
        mults={c: sum(row.value("mults", c) for row in rows) for c in CONVENTIONS},
        adds={c: sum(row.value("adds", c) for row in rows) for c in CONVENTIONS},
        mults_by_kind=by_kind_mults,
        params_by_kind=by_kind_params,
        other=other,
    )


@dataclass(frozen=True)
class Network:
    """A named input shape ``(N, C, H, W)`` and a sequence of layers, validated on construction.

    Every layer's shape is inferred from the one before; an invalid layer
    raises :class:`~npconv.errors.ConvArgumentError` naming it by position
    (``layers[3].kernel``).
    """

    name: str
    input_shape: tuple[int, int, int, int]
    layers: tuple[Layer, ...]
    description: str = ""
    resolved: tuple[ResolvedLayer, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", _frozen(self.input_shape))
        object.__setattr__(self, "layers", _frozen(self.layers))
        shape = self.input_shape
        if (not isinstance(shape, tuple) or len(shape) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)):
            raise ConvArgumentError("input_shape", "(N, C, H, W): 4 positive ints", repr(shape))
        if not self.layers:
            raise ConvArgumentError("layers", "at least one layer", "none")
        resolved = _resolve_sequence(self.layers, shape, "layers")
        rows = list(_rows(resolved))
        seen: dict[str, str] = {}
        for row in rows:
            if row.name in seen:
                raise ConvArgumentError(f"{row.path}.name", "a name not used by another layer",
                                        f"{row.name!r}, already the name of {seen[row.name]}")
            seen[row.name] = row.path
        object.__setattr__(self, "resolved", resolved)

    @property
    def rows(self) -> tuple[LayerCount, ...]:
        """One row per layer (inside residual blocks too, plus each block's addition)."""
        return tuple(_rows(self.resolved))

    @property
    def output_shape(self) -> Shape:
        return self.resolved[-1].output_shape

    def totals(self) -> NetworkTotals:
        return network_totals(self.rows)


# ---------------------------------------------------------------------- standard rebuild


def _merged_name(depthwise: Layer, pointwise: Layer) -> str:
    """``block1.dw`` + ``block1.pw`` -> ``block1.conv``; otherwise ``dw+pw``; empty when unnamed."""
    if not (depthwise.name and pointwise.name):
        return ""
    dw_block, _, _ = depthwise.name.rpartition(".")
    pw_block, _, _ = pointwise.name.rpartition(".")
    if dw_block and dw_block == pw_block:
        return f"{dw_block}.conv"
    return f"{depthwise.name}+{pointwise.name}"


def _standard_layers(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    rebuilt: list[Layer] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, Separable):
            rebuilt.append(layer.standard_equivalent())
        elif isinstance(layer, Residual):
            rebuilt.append(dataclasses.replace(layer, main=_standard_layers(layer.main),
                                               shortcut=_standard_layers(layer.shortcut)))
        elif isinstance(layer, Depthwise):
            following = index + 1
            while following < len(layers) and isinstance(layers[following], BatchNorm | ReLU):
                following += 1
            pointwise = layers[following] if following < len(layers) else None
            if not isinstance(pointwise, Pointwise):
                rebuilt.append(layer)  # not a separable pair: kept as it is
            else:
                rebuilt.append(Conv2d(pointwise.filters, layer.kernel, layer.stride, layer.padding,
                                      layer.dilation, bias=pointwise.bias,
                                      name=_merged_name(layer, pointwise)))
                index = following
        else:
            rebuilt.append(layer)
        index += 1
    return tuple(rebuilt)


def to_standard(network: Network) -> Network:
    """The same network with standard convolutions of the same shapes in place of separable ones.

    A :class:`Separable` layer becomes a :class:`Conv2d` with its filters,
    kernel, stride, padding and dilation (biased like its pointwise part).  A
    :class:`Depthwise` layer followed -- possibly after batch-norm and ReLU
    layers -- by a :class:`Pointwise` one becomes one such :class:`Conv2d`:
    the batch-norm and ReLU between them go too, those after the pointwise
    layer stay (MobileNet's "Conv MobileNet", Howard et al. 2017, Table 4).
    """
    layers = _standard_layers(network.layers)
    if layers == network.layers:
        return network
    description = f"{network.description}, rebuilt with standard convolutions".lstrip(", ")
    return dataclasses.replace(network, name=f"{network.name} (standard)", layers=layers, description=description)
