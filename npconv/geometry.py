"""Layer geometry: the one place that validates a 2-D convolution and knows its shapes.

Conventions are PyTorch's (``torch.nn.functional.conv2d``):

* input ``x`` is NCHW: ``(N, C_in, H, W)``;
* ``weight`` is ``(C_out, C_in / groups, KH, KW)``; ``bias`` is ``(C_out,)``;
* the operation is cross-correlation;
* ``stride`` and ``dilation`` are an int or a pair ``(along H, along W)``;
  dilation 1 means no dilation;
* ``padding`` is an int, a pair ``(ph, pw)`` (the same on both sides of an
  axis), an explicit per-side pair of pairs ``((top, bottom), (left, right))``,
  ``"valid"`` (no padding) or ``"same"``.

The ``"same"`` rule, for every stride: the output has ``ceil(H / stride)``
rows, the total padding along H is
``max((OH - 1) * stride + dilation * (KH - 1) + 1 - H, 0)``, the top gets
``total // 2`` and the bottom the rest -- so an odd extra pixel goes to the
bottom (and, along W, to the right).  This is TensorFlow/Keras' rule; for
stride 1 it is exactly PyTorch's ``padding="same"``.

Output size along one axis (PyTorch's formula)::

    OH = floor((H + pad_top + pad_bottom - dilation * (KH - 1) - 1) / stride) + 1

This module is pure Python (no NumPy) so that formulas and the command line
stay cheap to import.  It is the one place that validates a layer and knows
its shapes (a project rule), so it is longer than most: the argument
normalisers, ConvGeometry and SeparableGeometry belong together.

Size: the one place that validates a layer and derives its shapes (every kernel, formula and
command relies on it), so every rule about a layer's arguments -- and its error message -- is here.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from npconv.errors import ConvArgumentError, ConvTypeError, arguments_named, echo
from npconv.limits import MAX_SIZE

Pair = tuple[int, int]

#: Bias conventions of a depthwise-separable layer: (depthwise has bias, pointwise has bias).
#: ``keras``: like ``keras.layers.SeparableConv2D`` (bias on the pointwise part only);
#: ``torch``: two ``torch.nn.Conv2d`` layers (bias on both); ``none``: no bias at all.
BIAS_CONVENTIONS: dict[str, tuple[bool, bool]] = {
    "keras": (False, True),
    "torch": (True, True),
    "none": (False, False),
}
DEFAULT_BIAS_CONVENTION = "keras"

PADDING_RULES = ("same", "valid")

#: Largest stride, dilation or padding accepted (2**31 - 1, :data:`npconv.limits.MAX_SIZE`).  The
#: kernels index with 64-bit integers (Numba's int64, NumPy's strides in bytes); this bound keeps
#: products of a step and an array stride from overflowing them, and no layer that fits in memory
#: needs a larger step.  (Sizes are bounded where a person writes them: flags, claims and network
#: files; the formulas take a layer of any size.)
MAX_STEP = MAX_SIZE

#: Layers already validated by :meth:`ConvGeometry.from_shapes`, by their typed arguments
#: (:func:`_plain_key`): a call that repeats a layer (a training loop, a benchmark) skips the
#: checks, which cost more than a small layer's convolution.  Only successes are kept, so every
#: refusal is raised again; the geometry is immutable, so sharing it is safe.
_VALIDATED: dict = {}
_VALIDATED_MAX = 1024


def _plain_key(value: object) -> object:
    """``value`` as a hashable key that tells apart what validation tells apart, or None.

    Only exact ``int``, ``bool``, ``str``, ``None``, types and tuples of those qualify, each
    tagged with its type (``True == 1`` and ``np.int64(1) == 1`` in Python, but validation may
    refuse one and not the other); anything else (a list, a float, an object with ``__index__``)
    gives None: not memoised, validated every time.
    """
    kind = type(value)
    if kind is tuple:
        parts = []
        for item in value:
            part = _plain_key(item)
            if part is None:
                return None
            parts.append(part)
        return (tuple, *parts)
    if kind is int or kind is bool or kind is str or value is None or kind is type:
        return (kind, value)
    return None


_FIELD_NAMES = {
    "batch": "batch",
    "in_channels": "in_channels",
    "height": "height",
    "width": "width",
    "out_channels": "out_channels",
    "kernel": "kernel",
    "stride": "stride",
    "padding": "padding",
    "dilation": "dilation",
    "groups": "groups",
    "bias": "bias",
}


def _show(value: object) -> str:
    """Format a received value for an error message, briefly."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (int, float)):
        return f"{type(value).__name__} of shape {tuple(shape)}"
    return echo(value, 80)


def _as_int(value: object, argument: str, expected: str) -> int:
    """``value`` as a Python int; bools, floats, strings and arrays are refused."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise ConvTypeError(argument, expected, _show(value))
    try:
        return operator.index(value)
    except TypeError:  # a NumPy array: its type has __index__, which only 0-d arrays of old NumPy honour
        raise ConvTypeError(argument, expected, _show(value)) from None


def _is_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def as_pair(value: object, argument: str, minimum: int) -> Pair:
    """Normalise an int or a pair of ints, each ``>= minimum``, to a pair."""
    if minimum == 1:
        expected = "a positive int or a pair of positive ints (along H, along W)"
    else:
        expected = f"an int >= {minimum} or a pair of ints >= {minimum} (along H, along W)"
    if _is_sequence(value):
        if len(value) != 2:
            raise ConvArgumentError(argument, expected, _show(value))
        pair = (_as_int(value[0], argument, expected), _as_int(value[1], argument, expected))
    else:
        number = _as_int(value, argument, expected)
        pair = (number, number)
    if min(pair) < minimum:
        raise ConvArgumentError(argument, expected, _show(value))
    if max(pair) > MAX_STEP:
        raise ConvArgumentError(argument, f"{expected}, at most {MAX_STEP:,}", _show(value))
    return pair


def normalize_padding(padding: object, argument: str = "padding") -> str | tuple[Pair, Pair]:
    """Normalise a padding argument to ``"same"``, ``"valid"`` or ``((top, bottom), (left, right))``."""
    expected = (
        "an int >= 0, a pair (ph, pw), explicit ((top, bottom), (left, right)), "
        "'same' or 'valid'"
    )
    if isinstance(padding, str):
        rule = padding.lower()
        if rule not in PADDING_RULES:
            raise ConvArgumentError(argument, expected, _show(padding))
        return rule
    if _is_sequence(padding):
        if len(padding) == 4 and not any(_is_sequence(p) for p in padding):
            raise ConvArgumentError(
                argument,
                expected + " (4 flat numbers are ambiguous: torch.nn.functional.pad "
                "orders them (left, right, top, bottom))",
                _show(padding),
            )
        if len(padding) != 2:
            raise ConvArgumentError(argument, expected, _show(padding))
        per_axis = tuple(as_pair(p, argument, minimum=0) for p in padding)
        return per_axis[0], per_axis[1]
    (ph, pw) = as_pair(padding, argument, minimum=0)
    return (ph, ph), (pw, pw)


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> Pair:
    """Padding ``(before, after)`` that gives ``ceil(size / stride)`` outputs.

    The odd extra pixel, when the total is odd, goes after (bottom/right).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_output_length(size: int, kernel: int, stride: int, padding: Pair, dilation: int) -> int:
    """Number of output positions along one axis (PyTorch's formula)."""
    return (size + padding[0] + padding[1] - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvGeometry:
    """A validated 2-D convolution layer: every shape a kernel or formula needs.

    Construct it with :meth:`from_shapes` (array shapes, as the public API
    does) or :meth:`from_layer` (layer hyper-parameters, as formulas and the
    command line do).  Direct construction validates too.  ``stride``,
    ``padding`` and ``dilation`` accept every form described in the module
    docstring and are stored normalised: pairs, and ``padding`` as
    ``((top, bottom), (left, right))`` with ``"same"``/``"valid"`` resolved
    (the rule that was asked for is kept in :attr:`padding_rule`).

    Errors name the fields (``kernel`` for ``kernel_h`` and ``kernel_w``);
    the constructors' ``argument_names`` map those names to the caller's
    (``"x"``, ``"--kernel"``), through :func:`npconv.errors.arguments_named`.
    """

    batch: int
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel_h: int
    kernel_w: int
    stride: Pair = (1, 1)
    padding: tuple[Pair, Pair] = ((0, 0), (0, 0))
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = False
    padding_rule: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__

        sizes = {
            "batch": (self.batch, 0),
            "in_channels": (self.in_channels, 1),
            "height": (self.height, 1),
            "width": (self.width, 1),
            "out_channels": (self.out_channels, 1),
            "kernel_h": (self.kernel_h, 1),
            "kernel_w": (self.kernel_w, 1),
        }
        for attribute, (value, minimum) in sizes.items():
            key = "kernel" if attribute.startswith("kernel") else attribute
            expected = f"{attribute} as an int >= {minimum}"
            number = _as_int(value, key, expected)
            if number < minimum:
                raise ConvArgumentError(key, expected, _show(value))
            set_(self, attribute, number)
        if not isinstance(self.bias, bool):
            raise ConvTypeError("bias", "True or False", _show(self.bias))

        groups = _as_int(self.groups, "groups", "a positive int")
        if groups < 1:
            raise ConvArgumentError("groups", "a positive int", _show(self.groups))
        if self.in_channels % groups or self.out_channels % groups:
            raise ConvArgumentError(
                "groups",
                f"a divisor of both in_channels ({self.in_channels}) and "
                f"out_channels ({self.out_channels})",
                str(groups),
            )
        set_(self, "groups", groups)

        stride = as_pair(self.stride, "stride", minimum=1)
        dilation = as_pair(self.dilation, "dilation", minimum=1)
        set_(self, "stride", stride)
        set_(self, "dilation", dilation)

        padding = normalize_padding(self.padding, "padding")
        if padding == "valid":
            rule, padding = "valid", ((0, 0), (0, 0))
        elif padding == "same":
            rule = "same"
            padding = (
                same_padding(self.height, self.kernel_h, stride[0], dilation[0]),
                same_padding(self.width, self.kernel_w, stride[1], dilation[1]),
            )
        else:
            rule = "explicit"
        set_(self, "padding", padding)
        set_(self, "padding_rule", rule)

        for axis, size, kernel, dil, (before, after) in (
            ("height", self.height, self.kernel_h, dilation[0], padding[0]),
            ("width", self.width, self.kernel_w, dilation[1], padding[1]),
        ):
            span = dil * (kernel - 1) + 1
            if span > size + before + after:
                raise ConvArgumentError(
                    "kernel",
                    f"a kernel whose dilated {axis} dilation x (kernel - 1) + 1 fits the "
                    f"padded input {axis} {size} + {before} + {after} = {size + before + after}",
                    f"kernel {axis} {kernel} with dilation {dil}, spanning {span}",
                )

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_shapes(
        cls,
        input_shape: Sequence[int],
        weight_shape: Sequence[int],
        bias_shape: Sequence[int] | None = None,
        *,
        stride: object = 1,
        padding: object = 0,
        dilation: object = 1,
        groups: object = 1,
        argument_names: Mapping[str, str] | None = None,
    ) -> ConvGeometry:
        """Geometry of ``conv2d(x, weight, bias, ...)`` from the arrays' shapes.

        Errors name ``x``, ``weight`` and ``bias`` (or the names given in
        ``argument_names`` under the keys ``x``, ``weight``, ``bias`` and the
        hyper-parameter names).
        """
        key = _plain_key((cls, input_shape, weight_shape, bias_shape, stride, padding, dilation, groups,
                          None if argument_names is None else tuple(sorted(argument_names.items()))))
        if key is not None:
            known = _VALIDATED.get(key)
            if known is not None:
                return known
        geometry = cls._validated_from_shapes(input_shape, weight_shape, bias_shape, stride=stride,
                                              padding=padding, dilation=dilation, groups=groups,
                                              argument_names=argument_names)
        if key is not None:
            if len(_VALIDATED) >= _VALIDATED_MAX:
                _VALIDATED.clear()
            _VALIDATED[key] = geometry
        return geometry

    @classmethod
    def _validated_from_shapes(cls, input_shape, weight_shape, bias_shape, *, stride, padding, dilation,
                               groups, argument_names) -> ConvGeometry:
        """:meth:`from_shapes` without its memo: every check run."""
        names = {"x": "x", "weight": "weight", "bias": "bias", **_FIELD_NAMES}
        names.update(argument_names or {})
        x_name, w_name, b_name = names["x"], names["weight"], names["bias"]
        input_shape, weight_shape = tuple(input_shape), tuple(weight_shape)
        if len(input_shape) != 4:
            raise ConvArgumentError(
                x_name, "a 4-D array (N, C_in, H, W)", f"shape {input_shape}"
            )
        if len(weight_shape) != 4:
            raise ConvArgumentError(
                w_name, "a 4-D array (C_out, C_in / groups, KH, KW)", f"shape {weight_shape}"
            )
        # C_in first: groups and the weight are checked against it, and an x without channels
        # is what is wrong then, not them.  These checks come before the constructor's own (which
        # then always pass) because here the message can name the array whose shape is wrong.
        in_channels = _as_int(input_shape[1], x_name, "in_channels as an int >= 1")
        if in_channels < 1:
            raise ConvArgumentError(x_name, "in_channels as an int >= 1", _show(in_channels))
        groups_value = _as_int(groups, names["groups"], "a positive int")
        if groups_value < 1 or in_channels % groups_value:
            raise ConvArgumentError(
                names["groups"], f"a positive divisor of the {in_channels} input channels of {x_name}",
                _show(groups),
            )
        per_group = in_channels // groups_value
        if weight_shape[1] != per_group:
            raise ConvArgumentError(
                w_name,
                f"shape (C_out, C_in / groups, KH, KW) with C_in / groups = "
                f"{in_channels} / {groups_value} = {per_group}",
                f"shape {weight_shape}",
            )
        if weight_shape[0] < 1 or weight_shape[0] % groups_value:
            raise ConvArgumentError(
                w_name,
                f"a number of output channels (first axis) that is a positive multiple of "
                f"groups = {groups_value}",
                f"shape {weight_shape}",
            )
        if bias_shape is not None and tuple(bias_shape) != (weight_shape[0],):
            raise ConvArgumentError(
                b_name, f"shape (C_out,) = ({weight_shape[0]},) or None", f"shape {tuple(bias_shape)}"
            )
        field_names = {
            "batch": x_name,
            "in_channels": x_name,
            "height": x_name,
            "width": x_name,
            "out_channels": w_name,
            "kernel": w_name,
            **{k: names[k] for k in ("stride", "padding", "dilation", "groups")},
        }
        with arguments_named(field_names):
            return cls(
                batch=input_shape[0],
                in_channels=in_channels,
                height=input_shape[2],
                width=input_shape[3],
                out_channels=weight_shape[0],
                kernel_h=weight_shape[2],
                kernel_w=weight_shape[3],
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups_value,
                bias=bias_shape is not None,
            )

    @classmethod
    def from_layer(
        cls,
        input_shape: Sequence[int],
        out_channels: int,
        kernel_size: object,
        *,
        stride: object = 1,
        padding: object = 0,
        dilation: object = 1,
        groups: int = 1,
        bias: bool = False,
        argument_names: Mapping[str, str] | None = None,
    ) -> ConvGeometry:
        """Geometry from layer hyper-parameters, as in ``torch.nn.Conv2d``.

        ``input_shape`` is NCHW ``(N, C_in, H, W)``; ``kernel_size`` an int
        or a pair ``(KH, KW)``.
        """
        names = {
            **_FIELD_NAMES,
            **dict.fromkeys(("batch", "in_channels", "height", "width"), "input_shape"),
            "kernel": "kernel_size",
        }
        names.update(argument_names or {})
        if not _is_sequence(input_shape) or len(input_shape) != 4:
            raise ConvArgumentError(
                names["batch"], "a shape (N, C_in, H, W) of 4 ints", _show(input_shape)
            )
        with arguments_named(names):
            kernel_h, kernel_w = as_pair(kernel_size, "kernel", minimum=1)
            return cls(
                batch=input_shape[0],
                in_channels=input_shape[1],
                height=input_shape[2],
                width=input_shape[3],
                out_channels=out_channels,
                kernel_h=kernel_h,
                kernel_w=kernel_w,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
            )

    # ------------------------------------------------------------------ derived shapes

    @property
    def out_height(self) -> int:
        return conv_output_length(self.height, self.kernel_h, self.stride[0], self.padding[0], self.dilation[0])

    @property
    def out_width(self) -> int:
        return conv_output_length(self.width, self.kernel_w, self.stride[1], self.padding[1], self.dilation[1])

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """``(N, C_in, H, W)``."""
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """``(C_out, C_in / groups, KH, KW)``."""
        return (self.out_channels, self.in_channels_per_group, self.kernel_h, self.kernel_w)

    @property
    def bias_shape(self) -> tuple[int] | None:
        """``(C_out,)`` when the layer has a bias, else ``None``."""
        return (self.out_channels,) if self.bias else None

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """``(N, C_out, OH, OW)``."""
        return (self.batch, self.out_channels, self.out_height, self.out_width)

    @property
    def in_channels_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_channels_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def is_depthwise(self) -> bool:
        """One group per input channel (``groups == C_in``), any depth multiplier."""
        return self.groups == self.in_channels

    @property
    def depth_multiplier(self) -> int:
        """Output channels per input channel of a depthwise layer (``C_out / C_in``)."""
        if not self.is_depthwise:
            raise ValueError("depth_multiplier is defined for depthwise layers only")
        return self.out_channels_per_group

    @property
    def is_pointwise(self) -> bool:
        """A 1x1 kernel over all channels (``groups == 1``)."""
        return self.kernel_h == 1 and self.kernel_w == 1 and self.groups == 1

    @property
    def has_padding(self) -> bool:
        return any(self.padding[0]) or any(self.padding[1])

    @property
    def padding_argument(self) -> str | tuple[Pair, Pair]:
        """The padding as it was asked for: ``"same"``/``"valid"`` or the explicit pairs."""
        return self.padding_rule if self.padding_rule in PADDING_RULES else self.padding

    def replace(self, **changes: object) -> ConvGeometry:
        """A copy with some fields changed (validated again; ``"same"`` re-resolved)."""
        changes.setdefault("padding", self.padding_argument)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        """The layer as JSON-ready data: the one layout of a layer in every ``--json``."""
        return {
            "input_shape_nchw": list(self.input_shape),
            "weight_shape": list(self.weight_shape),
            "output_shape_nchw": list(self.output_shape),
            "kernel": [self.kernel_h, self.kernel_w],
            "filters": self.out_channels,
            "stride": list(self.stride),
            "padding": {"rule": self.padding_rule, "top_bottom": list(self.padding[0]),
                        "left_right": list(self.padding[1])},
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias,
        }

    def describe(self) -> str:
        """One line: ``input 1x3x14x14 (NCHW), kernel 5x5, 256 filters, stride 1, ...``."""
        (pt, pb), (pl, pr) = self.padding
        if pt == pb == pl == pr:
            pad = str(pt)
        elif pt == pb and pl == pr:
            pad = f"({pt}, {pl})"
        else:
            pad = f"((top {pt}, bottom {pb}), (left {pl}, right {pr}))"
        if self.padding_rule in PADDING_RULES:
            pad = f"'{self.padding_rule}' = {pad}"

        def pair(p: Pair) -> str:
            return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"

        return (
            f"input {'x'.join(map(str, self.input_shape))} (NCHW), kernel "
            f"{self.kernel_h}x{self.kernel_w}, {self.out_channels} filters, stride "
            f"{pair(self.stride)}, padding {pad}, dilation {pair(self.dilation)}, groups "
            f"{self.groups}, bias {'yes' if self.bias else 'no'}"
        )


@dataclass(frozen=True)
class SeparableGeometry:
    """A depthwise-separable layer: a depthwise conv followed by a pointwise (1x1) conv.

    The depthwise part has ``groups = C_in`` and ``C_in * depth_multiplier``
    outputs and carries the stride, padding and dilation; the pointwise part
    maps those channels to ``out_channels`` with a 1x1 kernel, stride 1, no
    padding.
    """

    depthwise: ConvGeometry
    pointwise: ConvGeometry

    def __post_init__(self) -> None:
        dw, pw = self.depthwise, self.pointwise
        if not dw.is_depthwise:
            raise ConvArgumentError("depthwise", "a layer with groups == in_channels", dw.describe())
        if not pw.is_pointwise or pw.stride != (1, 1) or pw.has_padding:
            raise ConvArgumentError("pointwise", "a 1x1, stride 1, unpadded layer", pw.describe())
        expected_input = (dw.batch, dw.out_channels, dw.out_height, dw.out_width)
        if pw.input_shape != expected_input:
            raise ConvArgumentError(
                "pointwise", f"input shape {expected_input} (the depthwise output)", str(pw.input_shape)
            )

    @classmethod
    def from_layer(
        cls,
        input_shape: Sequence[int],
        out_channels: int,
        kernel_size: object,
        *,
        stride: object = 1,
        padding: object = 0,
        dilation: object = 1,
        depth_multiplier: int = 1,
        bias: str = DEFAULT_BIAS_CONVENTION,
        argument_names: Mapping[str, str] | None = None,
    ) -> SeparableGeometry:
        """Separable layer from hyper-parameters; ``bias`` is a key of :data:`BIAS_CONVENTIONS`."""
        names = dict(argument_names or {})
        if bias not in BIAS_CONVENTIONS:
            raise ConvArgumentError(
                names.get("bias", "bias"), f"one of {', '.join(map(repr, BIAS_CONVENTIONS))}", _show(bias)
            )
        dw_bias, pw_bias = BIAS_CONVENTIONS[bias]
        multiplier_name = names.get("depth_multiplier", "depth_multiplier")
        multiplier = _as_int(depth_multiplier, multiplier_name, "a positive int")
        if multiplier < 1:
            raise ConvArgumentError(multiplier_name, "a positive int", _show(depth_multiplier))
        # validates input, kernel, stride, padding, dilation and out_channels once, by their names
        standard = ConvGeometry.from_layer(
            input_shape, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, argument_names=names,
        )
        depthwise = standard.replace(
            out_channels=standard.in_channels * multiplier, groups=standard.in_channels, bias=dw_bias
        )
        pointwise = ConvGeometry.from_layer(depthwise.output_shape, out_channels, 1, bias=pw_bias)
        return cls(depthwise, pointwise)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return self.depthwise.input_shape

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return self.pointwise.output_shape

    @property
    def depth_multiplier(self) -> int:
        return self.depthwise.depth_multiplier

    @property
    def bias_convention(self) -> str:
        """The :data:`BIAS_CONVENTIONS` key that matches the parts' biases.

        ``"depthwise-only"`` when only the depthwise part has a bias (no common
        convention, but a valid layer).
        """
        parts = (self.depthwise.bias, self.pointwise.bias)
        for name, convention in BIAS_CONVENTIONS.items():
            if convention == parts:
                return name
        return "depthwise-only"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready data: both parts' :meth:`ConvGeometry.to_dict`, the depth multiplier and the bias convention."""
        return {"depthwise": self.depthwise.to_dict(), "pointwise": self.pointwise.to_dict(),
                "depth_multiplier": self.depth_multiplier, "bias_convention": self.bias_convention}

    def standard_equivalent(self, bias: bool | None = None) -> ConvGeometry:
        """The standard convolution with the same input and output shapes.

        ``bias`` defaults to whether the pointwise part has one.
        """
        return self.depthwise.replace(
            out_channels=self.pointwise.out_channels,
            groups=1,
            bias=self.pointwise.bias if bias is None else bias,
        )


# ---------------------------------------------------------------------- the taps along one axis
#
# Along one axis a layer has O outputs, a kernel of K taps, stride s, dilation d and padding
# p_before.  Output o, tap k reads padded position o * s + k * d, which is input position
# o * s + k * d - p_before.  The backward pass sums, at every position, the terms of the taps
# that reach it; these two functions say which taps reach what.


def tap_output_range(size: int, kernel_index: int, stride: int, pad_before: int, dilation: int,
                     out_length: int) -> Pair:
    """The outputs ``[lo, hi)`` for which tap ``kernel_index`` lands on real input (``lo == hi``: none).

    Output ``o`` reads input ``o * stride - pad_before + kernel_index * dilation``, which is real
    for ``0 <= ... < size``: a contiguous range of ``o``.
    """
    offset = kernel_index * dilation - pad_before
    lo = min(out_length, max(0, -(offset // stride)))  # first o with o * stride + offset >= 0
    hi = min(out_length, max(0, -((offset - size) // stride)))  # first o with ... >= size
    return lo, max(lo, hi)


def first_touch_starts(out_length: int, kernel: int, stride: int, dilation: int) -> list[int]:
    """For each tap ``k``, the first output from which on ``k`` is the first tap to reach its position.

    Taps are taken in order ``k = 0, 1, ...``; tap ``k`` at output ``o`` reaches position
    ``o * stride + k * dilation``.  An earlier tap ``k' < k`` reaches the same position at
    output ``o' = o + (k - k') * dilation / stride``, which exists iff ``stride`` divides
    ``(k - k') * dilation`` and ``o' < out_length``.  With ``q = stride / gcd(stride, dilation)``
    the divisible differences are the multiples of ``q``, the nearest earlier such tap is
    ``k - q``, at ``j = q * dilation / stride = dilation / gcd(stride, dilation)`` outputs
    further on.  So tap ``k`` reaches a position first exactly for the outputs
    ``o >= max(0, out_length - j)`` when ``k >= q``, and for every output when ``k < q``.
    Returns those starts, one per tap.

    A position's first tap is the only one whose term may *start* its sum: every later tap adds
    to it, which is how a scatter (col2im, the direct kernel's input gradient) executes exactly
    ``T - 1`` additions for ``T`` terms.  In 2-D, taps ``(kh, kw)`` taken in row-major order,
    the taps reaching a position ``(ph, pw)`` are the pairs of the taps reaching ``ph`` along H
    and ``pw`` along W, a product set, whose first pair in row-major order is the pair of the
    per-axis first taps: so tap ``(kh, kw)`` is first exactly on the rectangle of outputs
    ``[start_h[kh], OH) x [start_w[kw], OW)``.
    """
    q = stride // math.gcd(stride, dilation)
    later = max(0, out_length - dilation // math.gcd(stride, dilation))
    return [0 if k < q else later for k in range(kernel)]
