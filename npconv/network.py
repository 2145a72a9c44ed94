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

A network may also be a graph: each layer reads the output of the one before
unless it names what it reads, by the names of earlier layers (``"input"``
is the input).  The kinds that make graphs, and those a traced PyTorch model
(:func:`from_torch`) needs, sit beside the ones above:

========================  ==================================================================
``from``                  :class:`From` -- a marker (no row): the next layer reads ``source``
``add``                   :class:`Add` -- element-wise sum of ``inputs`` (a residual addition)
``concat``                :class:`Concat` -- ``inputs`` joined along ``axis``; nothing counted
``reuse``                 :class:`Reuse` -- the layer ``source`` applied again with its weights:
                          mults per call, parameters once
``pad``                   :class:`Pad` -- explicit padding, any of PyTorch's modes; a copy
``dropout``               :class:`Dropout` -- the identity at inference
``activation``            :class:`Activation` -- ReLU6, GELU, SiLU, ...: a marker, like ReLU
``reshape``               :class:`Reshape` -- the same elements in another shape
``uncounted``             :class:`Uncounted` -- an operation npconv does not count, with its
                          traced shape; the totals list these by name with their calls
========================  ==================================================================

::

    Network("branches", (1, 3, 8, 8), (
        Conv2d(8, 3, padding=1, name="stem"), Conv2d(4, 1, name="b1"),
        From("stem"), Conv2d(4, 3, padding=1, name="b2"),
        Concat(("b1", "b2"), name="mix"),
    ))

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
  a residual addition 1 add per element (an :class:`Add` of T inputs, T - 1); ReLU and
  the other activations nothing; concatenation, padding, reshapes and dropout nothing.
* A row reads ``inputs`` (row names); a :class:`Reuse` row ``shares`` another's
  parameters; an :class:`Uncounted` row's ``operation`` is in no count, and
  :attr:`NetworkTotals.uncounted` lists them.

Geometry comes from :class:`~npconv.geometry.ConvGeometry`, the counts of
weighted layers from :mod:`npconv.quantities` and those of the other layers
from :mod:`npconv.formulas`; this module only walks the layers.  Pure Python.
It is longer than most because each layer kind is a small class whose
``resolve`` says its shapes and counts, and all of them, the network that
resolves them and its standard rebuild are read together.

Size: one module for the network description because every layer kind, the graph's
nodes (From, Add, Concat, ...) and the resolution that counts them share one small protocol
(:class:`Layer` resolving to :class:`LayerCount` rows); the kinds are short and headed by section.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from npconv import formulas as F
from npconv import quantities as Q
from npconv.counts import CONVENTIONS
from npconv.errors import ConvArgumentError, echo
from npconv.formulas import Quantity
from npconv.geometry import (
    BIAS_CONVENTIONS,
    DEFAULT_BIAS_CONVENTION,
    ConvGeometry,
    SeparableGeometry,
    normalize_padding,
)

Shape = tuple[int, ...]

#: What a layer names to read the input of its sequence (the network's, or a residual path's).
NETWORK_INPUT = "input"

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
        raise ConvArgumentError(argument, "a positive int", echo(value))
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
    #: names of the rows whose outputs this row reads (``"input"``: the network's input)
    inputs: tuple[str, ...] = ()
    #: a :class:`Reuse` row: the name of the row whose parameters it applies again (its own are not counted)
    shares: str = ""
    #: an :class:`Uncounted` row: the operation npconv does not count, as the tracer named it
    operation: str = ""
    #: the layer this row was resolved from (for a :class:`Reuse` row, the layer it applies again)
    layer: Layer | None = field(default=None, compare=False, repr=False)

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
    #: the name of the row whose output the block reads
    input_name: str = NETWORK_INPUT

    @property
    def output_shape(self) -> Shape:
        return self.add.output_shape


@dataclass(frozen=True)
class ResolvedFrom:
    """A :class:`From` marker with its source known: no row, the next layer reads ``source``."""

    source: str
    output_shape: Shape | None


ResolvedLayer = LayerCount | ResolvedResidual | ResolvedFrom


def _rows(resolved: Sequence[ResolvedLayer]) -> Iterator[LayerCount]:
    """Flatten resolved layers into table rows: main path, shortcut, then the addition."""
    for item in resolved:
        if isinstance(item, ResolvedResidual):
            yield from _rows(item.main)
            yield from _rows(item.shortcut)
            yield item.add
        elif isinstance(item, LayerCount):
            yield item


def _output_name(item: ResolvedLayer) -> str:
    """The row whose output a resolved item hands on."""
    if isinstance(item, ResolvedResidual):
        return item.add.name
    if isinstance(item, ResolvedFrom):
        return item.source
    return item.name


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

    def resolve(self, input_shape: Shape, where: str, name: str,
                input_name: str = NETWORK_INPUT) -> ResolvedResidual:
        """Both paths on ``input_shape``; ``input_name`` is the row the block reads (for the rows' inputs)."""
        main = _resolve_sequence(self.main, input_shape, f"{where}.main", f"{name}.", input_name)
        shortcut = _resolve_sequence(self.shortcut, input_shape, f"{where}.shortcut", f"{name}.", input_name)
        main_shape = main[-1].output_shape if main else input_shape
        shortcut_shape = shortcut[-1].output_shape if shortcut else input_shape
        if main_shape != shortcut_shape:
            raise ConvArgumentError(
                where, "main and shortcut paths that end in the same shape (add a 1x1 conv to the shortcut)",
                f"main {main_shape}, shortcut {shortcut_shape}",
            )
        added = tuple(_output_name(path[-1]) if path else input_name for path in (main, shortcut))
        add = LayerCount(f"{where}.add", f"{name}.add", "add", main_shape, main_shape,
                         other={"adds": F.elements(main_shape)}, inputs=added)
        return ResolvedResidual(main, shortcut, add, input_name)


# ---------------------------------------------------------------------- graphs: layers that name their inputs
#
# A sequence of layers is a chain: each layer reads the output of the one before.  The kinds
# below make it a directed acyclic graph without changing the kinds above: a layer's name (its
# ``name``, or the default ``<kind>_<position>``) is how later layers refer to its output, and
# ``"input"`` names the sequence's input.  Names are looked up among the earlier layers of the
# same sequence (a residual block, named by its own name, hands on its addition's output).


def _names(value: object, argument: str, least: int = 0) -> tuple[str, ...]:
    if (not isinstance(value, tuple) or len(value) < least
            or not all(isinstance(v, str) and v for v in value)):
        expected = f"{'at least ' + str(least) + ' ' if least else ''}names of earlier layers (or 'input')"
        raise ConvArgumentError(argument, f"a sequence of {expected}", repr(value))
    return value


def _shape_of(value: object, argument: str) -> Shape:
    if (not isinstance(value, tuple)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise ConvArgumentError(argument, "a shape: a sequence of ints >= 0", repr(value))
    return value


@dataclass(frozen=True)
class From(Layer):
    """Not a layer but a marker: the next layer reads the output of ``source`` instead of the previous one.

    No row, nothing counted.  ``From("stem"), Conv2d(16, 3, name="b2")`` starts a branch at
    ``stem``; a later :class:`Add` or :class:`Concat` joins branches.
    """

    kind: ClassVar[str] = "from"
    source: str


@dataclass(frozen=True)
class Add(Layer):
    """Element-wise sum of the outputs of ``inputs`` (two or more, of one shape): a residual addition.

    Counted as a residual block's addition: (inputs - 1) adds per element, outside ``mults``.
    """

    kind: ClassVar[str] = "add"
    inputs: tuple[str, ...]

    def resolve_inputs(self, shapes: tuple[Shape, ...], where: str, name: str) -> LayerCount:
        if len(shapes) < 2:
            raise ConvArgumentError(f"{where}.inputs", "two or more names to add", repr(self.inputs))
        if len(set(shapes)) != 1:
            raise ConvArgumentError(where, "inputs of one shape (npconv adds without broadcasting)",
                                    ", ".join(f"{n} {s}" for n, s in zip(self.inputs, shapes, strict=True)))
        return LayerCount(where, name, self.kind, shapes[0], shapes[0],
                          other={"adds": F.elementwise_sum_adds(shapes[0], len(shapes))})


@dataclass(frozen=True)
class Concat(Layer):
    """The outputs of ``inputs`` joined along ``axis`` (1: channels), as ``torch.cat``: a copy, nothing counted."""

    kind: ClassVar[str] = "concat"
    inputs: tuple[str, ...]
    axis: int = 1

    def resolve_inputs(self, shapes: tuple[Shape, ...], where: str, name: str) -> LayerCount:
        rank = len(shapes[0])
        if isinstance(self.axis, bool) or not isinstance(self.axis, int) or not -rank <= self.axis < rank:
            raise ConvArgumentError(f"{where}.axis", f"an axis of the {rank}-D inputs (-{rank} to {rank - 1})",
                                    repr(self.axis))
        axis = self.axis % rank
        if any(len(shape) != rank or shape[:axis] + shape[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]
               for shape in shapes):
            raise ConvArgumentError(where, f"inputs whose shapes differ along axis {axis} only",
                                    ", ".join(f"{n} {s}" for n, s in zip(self.inputs, shapes, strict=True)))
        joined = (*shapes[0][:axis], sum(shape[axis] for shape in shapes), *shapes[0][axis + 1:])
        return LayerCount(where, name, self.kind, shapes[0], joined)


@dataclass(frozen=True)
class Reuse(Layer):
    """The layer named ``source`` applied again, with the same weights (a module called twice in PyTorch).

    Its multiplications count again, per call; its parameters (and buffers) do not: the row
    says whose they are (``shares``).
    """

    kind: ClassVar[str] = "reuse"
    source: str


#: Padding modes of :class:`Pad`, as ``torch.nn.functional.pad`` names them.
PAD_MODES = ("constant", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class Pad(Layer):
    """Explicit padding ``((top, bottom), (left, right))`` (or an int, or a pair), as ``torch.nn.functional.pad``.

    A copy: nothing counted.  A convolution after it sees the padded values as real input, so
    its dense and effective counts agree -- as they should for ``reflect``, ``replicate`` and
    ``circular`` padding, whose values a kernel cannot skip.  (Zero padding is better written as
    the convolution's own ``padding``, which is what the PyTorch tracer does where it can.)
    """

    kind: ClassVar[str] = "pad"
    padding: object
    mode: str = "constant"
    value: float = 0.0

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        batch, channels, height, width = _image_shape(input_shape, where, self.kind)
        padding = normalize_padding(self.padding, f"{where}.padding")
        if isinstance(padding, str):
            raise ConvArgumentError(f"{where}.padding", "explicit amounts (an int, a pair, or per side)",
                                    repr(self.padding))
        if self.mode not in PAD_MODES:
            raise ConvArgumentError(f"{where}.mode", f"one of {', '.join(PAD_MODES)}", repr(self.mode))
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ConvArgumentError(f"{where}.value", "a number", repr(self.value))
        (top, bottom), (left, right) = padding
        if self.mode != "constant":
            largest = (height, width) if self.mode == "circular" else (height - 1, width - 1)
            if max(top, bottom) > largest[0] or max(left, right) > largest[1]:
                raise ConvArgumentError(f"{where}.padding",
                                        f"{self.mode} padding of at most {largest[0]} rows and {largest[1]} "
                                        f"columns on each side of a {height}x{width} input", repr(self.padding))
        return LayerCount(where, name, self.kind, input_shape,
                          (batch, channels, height + top + bottom, width + left + right))


@dataclass(frozen=True)
class Dropout(Layer):
    """Dropout with probability ``p``: the identity at inference, so nothing is counted."""

    kind: ClassVar[str] = "dropout"
    p: float = 0.5

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        if isinstance(self.p, bool) or not isinstance(self.p, int | float) or not 0 <= self.p <= 1:
            raise ConvArgumentError(f"{where}.p", "a probability from 0 to 1", repr(self.p))
        return LayerCount(where, name, self.kind, input_shape, input_shape)


#: Functions of :class:`Activation` (ReLU is :class:`ReLU`), as ``torch.nn.functional`` names them.
ACTIVATION_FUNCTIONS = (
    "relu6", "hardtanh", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "leaky_relu",
    "elu", "selu", "celu", "mish", "softplus", "softsign", "tanhshrink", "softmax", "log_softmax",
)


@dataclass(frozen=True)
class Activation(Layer):
    """An activation other than ReLU (``relu6``, ``gelu``, ``silu``, ...; :data:`ACTIVATION_FUNCTIONS`).

    A marker, like :class:`ReLU`: no parameters, no shape change, nothing counted.  Its row's
    kind is the function's name.
    """

    kind: ClassVar[str] = "activation"
    function: str

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        if self.function not in ACTIVATION_FUNCTIONS:
            hint = " (ReLU is the layer ReLU)" if self.function == "relu" else ""
            raise ConvArgumentError(f"{where}.function", f"one of {', '.join(ACTIVATION_FUNCTIONS)}{hint}",
                                    repr(self.function))
        return LayerCount(where, name, self.function, input_shape, input_shape)


@dataclass(frozen=True)
class Reshape(Layer):
    """The same elements in another ``shape`` (batch included), as ``Tensor.reshape``: nothing counted."""

    kind: ClassVar[str] = "reshape"
    shape: tuple[int, ...]

    def resolve(self, input_shape: Shape, where: str, name: str) -> LayerCount:
        shape = _shape_of(self.shape, f"{where}.shape")
        if int(F.elements(shape)) != int(F.elements(input_shape)):
            raise ConvArgumentError(f"{where}.shape", f"a shape with the {int(F.elements(input_shape)):,} "
                                    f"elements of its input {input_shape}", repr(self.shape))
        return LayerCount(where, name, self.kind, input_shape, shape)


@dataclass(frozen=True)
class Uncounted(Layer):
    """An operation npconv does not count, kept so that the graph and its shapes stay whole.

    ``operation`` names it (as the PyTorch tracer met it: ``torch.nn.functional.interpolate``,
    ``nn.Upsample``); ``inputs`` are the layers it reads (possibly none); ``output_shape`` is
    taken as given (``None``: not a single tensor, e.g. the tuple of ``torch.chunk``); ``params``
    the learnable numbers it reads, counted in params.  Its arithmetic is in no total: the
    totals list every uncounted operation with its number of calls.
    """

    kind: ClassVar[str] = "uncounted"
    operation: str
    inputs: tuple[str, ...] = ()
    output_shape: tuple[int, ...] | None = None
    params: int = 0

    def resolve_inputs(self, shapes: tuple[Shape | None, ...], where: str, name: str) -> LayerCount:
        if not isinstance(self.operation, str) or not self.operation:
            raise ConvArgumentError(f"{where}.operation", "the name of the operation", repr(self.operation))
        output = () if self.output_shape is None else _shape_of(self.output_shape, f"{where}.output_shape")
        if isinstance(self.params, bool) or not isinstance(self.params, int) or self.params < 0:
            raise ConvArgumentError(f"{where}.params", "an int >= 0", repr(self.params))
        first = shapes[0] if shapes and shapes[0] is not None else ()
        return LayerCount(where, name, self.kind, first, output, operation=self.operation,
                          params=F.parameters_read(self.params) if self.params else None)


#: Kinds that name all their inputs (``inputs``) instead of reading the previous layer's output.
MULTI_INPUT_KINDS = (Add, Concat, Uncounted)


#: TOML ``kind`` -> layer class.
LAYER_KINDS: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (Conv2d, Depthwise, Pointwise, Separable, Linear, BatchNorm, ReLU, MaxPool, AvgPool,
                GlobalAvgPool, Flatten, Residual,
                From, Add, Concat, Reuse, Pad, Dropout, Activation, Reshape, Uncounted)
}


@dataclass(frozen=True)
class _Scoped:
    """A name's output in a sequence: the row it comes from, its shape (None: not one tensor), its layer."""

    row: str
    shape: Shape | None
    layer: Layer | None = None
    #: for a plain layer (and a reuse of one): the row that owns its parameters
    owner: LayerCount | None = None


_AMBIGUOUS = _Scoped("", None)


def _lookup(scope: dict[str, _Scoped], reference: str, argument: str) -> _Scoped:
    found = scope.get(reference)
    if found is None:
        raise ConvArgumentError(argument, f"the name of an earlier layer of this sequence, or {NETWORK_INPUT!r}",
                                repr(reference))
    if found is _AMBIGUOUS:
        raise ConvArgumentError(argument, "a name that only one earlier layer has", repr(reference))
    return found


def _single_tensor(scoped: _Scoped, where: str) -> Shape:
    if scoped.shape is None:
        raise ConvArgumentError(where, "one tensor as input",
                                f"the output of {scoped.row}, which is not a single tensor")
    return scoped.shape


def _reused(layer: Reuse, scope: dict[str, _Scoped], current: _Scoped, where: str,
            name: str) -> tuple[LayerCount, _Scoped]:
    """A :class:`Reuse` row: the source's layer on the current input, its parameters not counted again."""
    source = _lookup(scope, _names((layer.source,), f"{where}.source")[0], f"{where}.source")
    if source.owner is None:
        raise ConvArgumentError(f"{where}.source", "the name of an earlier layer (not a marker, a merge or "
                                "a residual block) to apply again", repr(layer.source))
    row = source.layer.resolve(_single_tensor(current, where), where, name)
    if (row.value("params"), row.value("buffers")) != (source.owner.value("params"), source.owner.value("buffers")):
        raise ConvArgumentError(where, f"an input that {source.owner.name}'s weights fit (its input "
                                f"{source.owner.input_shape})", f"input {row.input_shape}")
    row = dataclasses.replace(row, params=None, buffers=None, shares=source.owner.name, inputs=(current.row,),
                              layer=source.layer)
    return row, _Scoped(row.name, row.output_shape, source.layer, source.owner)


def _resolve_sequence(layers: Sequence[Layer], input_shape: Shape, where: str,
                      prefix: str = "", input_name: str = NETWORK_INPUT) -> tuple[ResolvedLayer, ...]:
    """Resolve ``layers`` in order on ``input_shape``; ``input_name`` is the row the sequence reads."""
    resolved: list[ResolvedLayer] = []
    current = _Scoped(input_name, input_shape)
    scope = {NETWORK_INPUT: current}
    for index, layer in enumerate(layers):
        here = f"{where}[{index}]"
        if not isinstance(layer, Layer):
            raise ConvArgumentError(here, f"a layer ({', '.join(LAYER_KINDS)})", echo(layer))
        if not isinstance(layer.name, str):
            raise ConvArgumentError(f"{here}.name", "a string", echo(layer.name))
        local = layer.name or f"{layer.kind}_{index + 1}"
        if local == NETWORK_INPUT:
            raise ConvArgumentError(f"{here}.name", f"a name other than {NETWORK_INPUT!r}, which names the input",
                                    repr(local))
        name = prefix + local
        if isinstance(layer, From):
            current = _lookup(scope, _names((layer.source,), f"{here}.source")[0], f"{here}.source")
            resolved.append(ResolvedFrom(current.row, current.shape))
            continue
        if isinstance(layer, MULTI_INPUT_KINDS):
            least = 0 if isinstance(layer, Uncounted) else 1
            sources = [_lookup(scope, reference, f"{here}.inputs[{i}]")
                       for i, reference in enumerate(_names(layer.inputs, f"{here}.inputs", least))]
            shapes = tuple(s.shape if isinstance(layer, Uncounted) else _single_tensor(s, f"{here}.inputs[{i}]")
                           for i, s in enumerate(sources))
            item = dataclasses.replace(layer.resolve_inputs(shapes, here, name),
                                       inputs=tuple(s.row for s in sources), layer=layer)
            scoped = _Scoped(item.name, None if isinstance(layer, Uncounted) and layer.output_shape is None
                             else item.output_shape, layer)
        elif isinstance(layer, Reuse):
            item, scoped = _reused(layer, scope, current, here, name)
        elif isinstance(layer, Residual):
            item = layer.resolve(_single_tensor(current, here), here, name, input_name=current.row)
            scoped = _Scoped(_output_name(item), item.output_shape, layer)
        else:
            item = dataclasses.replace(layer.resolve(_single_tensor(current, here), here, name),
                                       inputs=(current.row,), layer=layer)
            scoped = _Scoped(item.name, item.output_shape, layer, item)
        resolved.append(item)
        scope[local] = scoped if local not in scope else _AMBIGUOUS
        current = scoped
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
    #: operation -> calls, of the :class:`Uncounted` rows: arithmetic in none of the totals above
    uncounted: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> dict[str, int]:
        """``mults + adds`` per convention."""
        return {c: self.mults[c] + self.adds[c] for c in self.mults}


def network_totals(rows: Sequence[LayerCount]) -> NetworkTotals:
    """Add up ``rows``."""
    by_kind_mults: dict[str, int] = {}
    by_kind_params: dict[str, int] = {}
    other: dict[str, dict[str, int]] = {}
    uncounted: dict[str, int] = {}
    for row in rows:
        if row.operation:
            uncounted[row.operation] = uncounted.get(row.operation, 0) + 1
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
        uncounted=uncounted,
    )


@dataclass(frozen=True)
class Network:
    """A named input shape ``(N, C, H, W)`` and a sequence of layers, validated on construction.

    Every layer's shape is inferred from its input's -- the layer before, or
    the layers it names (:class:`From`, :class:`Add`, :class:`Concat`) -- so
    the layers are a graph in topological order; an invalid layer raises
    :class:`~npconv.errors.ConvArgumentError` naming it by position
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
            raise ConvArgumentError("input_shape", "(N, C, H, W): 4 positive ints", echo(shape))
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


def _references(layers: Sequence[Layer]) -> set[str]:
    """The names that layers of a sequence read by name (sources and inputs)."""
    names: set[str] = set()
    for layer in layers:
        if isinstance(layer, From | Reuse):
            names.add(layer.source)
        elif isinstance(layer, MULTI_INPUT_KINDS):
            names.update(layer.inputs)
    return names


def _renamed(layer: Layer, renames: dict[str, str]) -> Layer:
    if isinstance(layer, From | Reuse) and layer.source in renames:
        return dataclasses.replace(layer, source=renames[layer.source])
    if isinstance(layer, MULTI_INPUT_KINDS) and renames.keys() & set(layer.inputs):
        return dataclasses.replace(layer, inputs=tuple(renames.get(n, n) for n in layer.inputs))
    return layer


def _separable_pairs(layers: Sequence[Layer], referenced: set[str]) -> dict[int, int]:
    """Depthwise position -> pointwise position of each pair to merge (batch-norm and activations between)."""
    pairs = {}
    for index, layer in enumerate(layers):
        if not isinstance(layer, Depthwise) or any(index in range(a, b) for a, b in pairs.items()):
            continue
        following = index + 1
        while following < len(layers) and isinstance(layers[following], BatchNorm | ReLU | Activation):
            following += 1
        read_elsewhere = any(between.name in referenced for between in layers[index:following])
        if following < len(layers) and isinstance(layers[following], Pointwise) and not read_elsewhere:
            pairs[index] = following
    return pairs


def _standard_layers(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    original = tuple(layers)
    referenced = _references(layers)
    if referenced:  # merging renumbers default names: pin them, so that references keep their layers
        layers = [layer if layer.name or isinstance(layer, From)
                  else dataclasses.replace(layer, name=f"{layer.kind}_{i + 1}") for i, layer in enumerate(layers)]
    pairs = _separable_pairs(layers, referenced)
    merged_names = {index: _merged_name(layers[index], layers[following]) for index, following in pairs.items()}
    taken = Counter(layer.name for layer in layers if layer.name) + Counter(merged_names.values())
    for index, merged in merged_names.items():
        if merged and taken[merged] > 1:  # block1.conv would not be unique (nn.Sequential's numbered layers)
            merged_names[index] = f"{layers[index].name}+{layers[pairs[index]].name}"
    renames: dict[str, str] = {}
    rebuilt: list[Layer] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, Separable):
            rebuilt.append(layer.standard_equivalent())
        elif isinstance(layer, Residual):
            rebuilt.append(dataclasses.replace(layer, main=_standard_layers(layer.main),
                                               shortcut=_standard_layers(layer.shortcut)))
        elif index in pairs:
            pointwise = layers[pairs[index]]
            rebuilt.append(Conv2d(pointwise.filters, layer.kernel, layer.stride, layer.padding,
                                  layer.dilation, bias=pointwise.bias, name=merged_names[index]))
            if pointwise.name in referenced:
                renames[pointwise.name] = merged_names[index]
            index = pairs[index]
        else:
            rebuilt.append(layer)  # a depthwise layer here is not a separable pair (or its middle is read)
        index += 1
    if len(rebuilt) == len(original) and all(
            type(new) is type(old) and (not isinstance(new, Residual) or new == old)
            for new, old in zip(rebuilt, original, strict=True)):
        return original  # nothing rebuilt (names pinned for nothing are dropped)
    return tuple(_renamed(layer, renames) for layer in rebuilt) if renames else tuple(rebuilt)


def to_standard(network: Network) -> Network:
    """The same network with standard convolutions of the same shapes in place of separable ones.

    A :class:`Separable` layer becomes a :class:`Conv2d` with its filters,
    kernel, stride, padding and dilation (biased like its pointwise part).  A
    :class:`Depthwise` layer followed -- possibly after batch-norm and
    activation layers -- by a :class:`Pointwise` one becomes one such
    :class:`Conv2d`: the batch-norm and activations between them go too, those
    after the pointwise layer stay (MobileNet's "Conv MobileNet", Howard et al.
    2017, Table 4).  In a graph, a pair whose depthwise part or middle another
    layer reads is kept; layers that read the pointwise part read the merged
    convolution.
    """
    layers = _standard_layers(network.layers)
    if layers == network.layers:
        return network
    description = f"{network.description}, rebuilt with standard convolutions".lstrip(", ")
    return dataclasses.replace(network, name=f"{network.name} (standard)", layers=layers, description=description)


# ---------------------------------------------------------------------- from PyTorch


def from_torch(module: object, input_shape: Sequence[int], name: str | None = None) -> Network:
    """The network a ``torch.nn.Module`` computes on an input of ``input_shape`` (N, C, H, W).

    Traced with ``torch.fx`` (or, where it cannot be traced symbolically, by
    running it with forward hooks); see :mod:`npconv.network_from_torch`, which
    imports PyTorch -- this module does not.
    """
    from npconv.network_from_torch import from_torch as traced

    return traced(module, input_shape, name)
