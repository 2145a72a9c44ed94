"""A layer question as people write it: ``14x14x3``, ``5``, ``1x2``, ``same``.

:class:`Question` holds the hyper-parameters of the course-problem kind of
question -- an input, a kernel, a number of filters, stride, padding,
dilation, groups, depth multiplier and a bias convention -- and builds the
standard and the depthwise-separable layer they describe.  The command line
reads a question from its layer flags (``--input 14x14x3``), a claims file
from its ``[question]`` table (``input = "14x14x3"``); both go through
:meth:`Question.from_text`, so both read shapes the same way and name the
flag or key a bad value came from.

Pure Python: importing this module imports neither NumPy nor Numba.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from npconv.errors import ConvArgumentError, cut, echo
from npconv.geometry import BIAS_CONVENTIONS, DEFAULT_BIAS_CONVENTION, ConvGeometry, Pair, SeparableGeometry
from npconv.limits import MAX_NUMBER_DIGITS, MAX_SIZE

# x, X, the times sign, * or a comma; the spaces around them are stripped from the fields (a split on
# ``\s*[x]\s*`` would backtrack quadratically over a long run of spaces)
_SEPARATORS = re.compile(r"[x\u00d7X*,]")

#: The keys of a question, in the order of the command line's layer flags.
QUESTION_KEYS = ("input", "kernel", "filters", "stride", "padding", "dilation", "groups",
                 "depth_multiplier", "bias")

#: Values of the keys a question may leave out (``input``, ``kernel`` and ``filters`` are required).
OPTIONAL_DEFAULTS = {"stride": "1", "padding": "0", "dilation": "1", "groups": "1",
                     "depth_multiplier": "1", "bias": DEFAULT_BIAS_CONVENTION}

#: Geometry argument names -> the question key a value came from.
_GEOMETRY_KEYS = {
    "batch": "input",
    "in_channels": "input",
    "height": "input",
    "width": "input",
    "out_channels": "filters",
    "kernel": "kernel",
    "stride": "stride",
    "padding": "padding",
    "dilation": "dilation",
    "groups": "groups",
    "depth_multiplier": "depth_multiplier",
    "bias": "bias",
}


def flag_name(key: str) -> str:
    """The command-line flag of a question key: ``depth_multiplier -> --depth-multiplier``."""
    return "--" + key.replace("_", "-")


def _ints(text: str, name: str, expected: str) -> list[int]:
    """The ints of ``14x14x3`` (or ``1,2``); each field at most :data:`MAX_NUMBER_DIGITS` digits (a layer's
    sizes are bounded far below that by :data:`npconv.limits.MAX_SIZE`, which the geometry checks)."""
    fields = [field.strip() for field in _SEPARATORS.split(text)]
    if any(len(field.lstrip("+-")) > MAX_NUMBER_DIGITS and field.lstrip("+-").isdigit() for field in fields):
        raise ConvArgumentError(name, f"{expected} (ints of at most {MAX_NUMBER_DIGITS} digits)", echo(text))
    try:
        return [int(f) for f in fields]
    except ValueError:
        raise ConvArgumentError(name, expected, echo(text)) from None


def parse_input(text: str, name: str = "--input") -> tuple[tuple[int, int, int, int], str]:
    """``"14x14x3"`` (H x W x C) or ``"2x3x14x14"`` (N x C x H x W) -> NCHW and how it was read."""
    expected = "H x W x C such as 14x14x3, or N x C x H x W such as 8x3x224x224"
    numbers = _ints(text, name, expected)
    if len(numbers) == 3:
        h, w, c = numbers
        shape = (1, c, h, w)
        reading = f"H x W x C: height {h}, width {w}, {c} channel{'s' * (c != 1)}, batch N = 1"
    elif len(numbers) == 4:
        shape = tuple(numbers)
        n, c, h, w = shape
        reading = f"N x C x H x W (NCHW): batch N = {n}, {c} channel{'s' * (c != 1)}, height {h}, width {w}"
    else:
        raise ConvArgumentError(name, expected, echo(text))
    return shape, f"Read {name} {cut(text.strip())} as {reading}."


def parse_pair(text: str, name: str) -> tuple[int, int]:
    """``"2"`` or ``"2x1"`` (along H x along W)."""
    expected = "an int, or two ints HxW such as 2x1"
    numbers = _ints(text, name, expected)
    if len(numbers) == 1:
        return numbers[0], numbers[0]
    if len(numbers) == 2:
        return numbers[0], numbers[1]
    raise ConvArgumentError(name, expected, echo(text))


def parse_padding(text: str, name: str = "--padding") -> str | tuple[Pair, Pair]:
    """``"1"``, ``"1x2"`` (H x W), ``"top,bottom,left,right"``, ``"same"`` or ``"valid"``."""
    if text.strip().lower() in ("same", "valid"):
        return text.strip().lower()
    expected = "an int, PHxPW such as 1x2, top,bottom,left,right such as 0,1,0,1, 'same' or 'valid'"
    numbers = _ints(text, name, expected)
    if len(numbers) == 1:
        return (numbers[0],) * 2, (numbers[0],) * 2
    if len(numbers) == 2:
        return (numbers[0],) * 2, (numbers[1],) * 2
    if len(numbers) == 4:
        return (numbers[0], numbers[1]), (numbers[2], numbers[3])
    raise ConvArgumentError(name, expected, echo(text))


def parse_int(text: str, name: str) -> int:
    """``"256"`` -> 256."""
    numbers = _ints(text, name, "an int")
    if len(numbers) != 1:
        raise ConvArgumentError(name, "an int", echo(text))
    return numbers[0]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_text(value: object, name: str) -> str:
    """A flag's string, or a claims file's int, string, list of ints or pair of pairs
    (``padding = [[1, 1], [1, 1]]``, as a network file writes it), as text to parse."""
    if isinstance(value, str):
        return value
    if _is_int(value):
        return str(value)
    if isinstance(value, list) and value and all(_is_int(v) for v in value):
        return ",".join(map(str, value))
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(pair, list) and len(pair) == 2 and all(_is_int(v) for v in pair) for pair in value)):
        return ",".join(str(v) for pair in value for v in pair)  # top,bottom,left,right
    raise ConvArgumentError(name, "an int, a string such as \"14x14x3\", a list of ints or, for padding, "
                            "[[top, bottom], [left, right]]", echo(value))


@dataclass(frozen=True)
class Question:
    """The hyper-parameters of a standard and a depthwise-separable layer.

    ``input_shape`` is NCHW; ``padding`` is ``"same"``, ``"valid"`` or
    ``((top, bottom), (left, right))``; ``bias`` a key of
    :data:`~npconv.geometry.BIAS_CONVENTIONS` (the standard layer has a bias
    unless it is ``"none"``).  Validation happens in :meth:`layers`.
    """

    input_shape: tuple[int, int, int, int]
    kernel: Pair
    filters: int
    stride: Pair = (1, 1)
    padding: str | tuple[Pair, Pair] = ((0, 0), (0, 0))
    dilation: Pair = (1, 1)
    groups: int = 1
    depth_multiplier: int = 1
    bias: str = DEFAULT_BIAS_CONVENTION

    @classmethod
    def from_text(cls, values: Mapping[str, object],
                  name: Callable[[str], str] = flag_name) -> tuple[Question, str]:
        """Parse ``values`` (question key -> text, int or list of ints) and validate the layers.

        Keys missing from ``values`` take :data:`OPTIONAL_DEFAULTS`.  Errors
        name the offending key as ``name(key)`` (a flag by default).  Returns
        the question and a sentence saying how the input was read.
        """
        values = {**OPTIONAL_DEFAULTS, **values}
        text = {key: _as_text(values[key], name(key)) for key in QUESTION_KEYS if key in values}
        for key in QUESTION_KEYS:
            if key not in text:
                raise ConvArgumentError(name(key), f"a value for {key!r} (it has no default)", "none")
        input_shape, reading = parse_input(text["input"], name("input"))
        bias = text["bias"].strip().lower()
        if bias not in BIAS_CONVENTIONS:
            raise ConvArgumentError(name("bias"), f"one of {', '.join(map(repr, BIAS_CONVENTIONS))}",
                                    echo(text["bias"]))
        question = cls(
            input_shape=input_shape,
            kernel=parse_pair(text["kernel"], name("kernel")),
            filters=parse_int(text["filters"], name("filters")),
            stride=parse_pair(text["stride"], name("stride")),
            padding=parse_padding(text["padding"], name("padding")),
            dilation=parse_pair(text["dilation"], name("dilation")),
            groups=parse_int(text["groups"], name("groups")),
            depth_multiplier=parse_int(text["depth_multiplier"], name("depth_multiplier")),
            bias=bias,
        )
        question._check_sizes(name)
        question.layers(name)
        return question, reading

    def _check_sizes(self, name: Callable[[str], str]) -> None:
        """Every size written -- input, kernel, filters, groups, depth multiplier, and the depthwise
        outputs they make -- at most :data:`~npconv.limits.MAX_SIZE`, so that every count prints
        (strides, padding and dilation are bounded by the geometry)."""
        sizes = {"input": self.input_shape, "kernel": self.kernel, "filters": (self.filters,),
                 "groups": (self.groups,), "depth_multiplier": (self.depth_multiplier,)}
        for key, values in sizes.items():
            if any(value > MAX_SIZE for value in values):
                raise ConvArgumentError(name(key), f"sizes of at most {MAX_SIZE:,}", echo(values if len(values) > 1
                                                                                          else values[0]))
        if self.input_shape[1] * self.depth_multiplier > MAX_SIZE:
            raise ConvArgumentError(name("depth_multiplier"), f"a multiplier that leaves at most {MAX_SIZE:,} "
                                    f"depthwise outputs ({self.input_shape[1]} channels x multiplier)",
                                    echo(self.depth_multiplier))

    def layers(self, name: Callable[[str], str] = flag_name) -> tuple[ConvGeometry, SeparableGeometry]:
        """The standard and the separable layer; errors name ``name(key)``."""
        if self.input_shape[0] < 1:  # a layer may take an empty batch; a question about none has no answer
            raise ConvArgumentError(name("input"), "a batch N >= 1", f"N = {self.input_shape[0]}")
        names = {argument: name(key) for argument, key in _GEOMETRY_KEYS.items()}
        shared = dict(stride=self.stride, padding=self.padding, dilation=self.dilation, argument_names=names)
        standard = ConvGeometry.from_layer(self.input_shape, self.filters, self.kernel, groups=self.groups,
                                           bias=BIAS_CONVENTIONS[self.bias][1], **shared)
        separable = SeparableGeometry.from_layer(self.input_shape, self.filters, self.kernel,
                                                 depth_multiplier=self.depth_multiplier, bias=self.bias,
                                                 **shared)
        return standard, separable

    def replace(self, **changes: object) -> Question:
        """A copy with some fields changed (not validated until :meth:`layers`)."""
        return dataclasses.replace(self, **changes)

    def input_text(self) -> str:
        """The input as people write it: ``14x14x3`` (H x W x C), with ``N = 8`` when batched."""
        n, c, h, w = self.input_shape
        return f"{h}x{w}x{c}" + (f" (N = {n})" if n != 1 else "")
