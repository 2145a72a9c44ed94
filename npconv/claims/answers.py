"""The quantities a claim may name, the readings of a question, and the right answer under each.

A claim names ``PART.KIND`` (:data:`QUANTITIES`); :func:`answer` gives its
value under a :class:`Setting` -- the question as asked, or read another way
(another counting convention) -- with
its working, from :mod:`npconv.quantities`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from npconv import formulas as F
from npconv import quantities as Q
from npconv._expr import format_number
from npconv.formulas import Quantity
from npconv.geometry import ConvGeometry
from npconv.question import Question

Number = int | Fraction
Value = Number | tuple[int, ...]

# ---------------------------------------------------------------------- the quantities

PARTS = Q.PARTS
SHAPE_KINDS = ("output", "output_size")
LENGTH_KINDS = ("output_height", "output_width")
COUNT_KINDS = ("mults", "macs", "adds", "flops")
PART_KINDS = (*SHAPE_KINDS, *LENGTH_KINDS, "params", *COUNT_KINDS)
RATIO_KINDS = Q.RATIO_KINDS

#: Every quantity a claim may name.
QUANTITIES = (*(f"{p}.{k}" for p in PARTS for k in PART_KINDS), *(f"ratio.{k}" for k in RATIO_KINDS))

QUANTITY_HELP = (
    "PART.KIND with PART standard, depthwise, pointwise or separable and KIND output (H x W x C), "
    "output_size (H x W), output_height, output_width, params, mults, macs (= mults), adds or flops "
    "(mults + adds); or ratio.params, ratio.mults, ratio.flops (separable / standard) or "
    "ratio.mobilenet (1 / C_out + 1 / (KH x KW))"
)


def split_quantity(quantity: str) -> tuple[str, str]:
    part, kind = quantity.split(".")
    return part, kind


# ---------------------------------------------------------------------- how a claim is read


@dataclass(frozen=True)
class Setting:
    """One reading of a question: the layer and the counting convention.  (Other ways of counting --
    FLOPs for mults, the inverse ratio -- are misconceptions of :mod:`npconv.claims.misconceptions`.)"""

    question: Question
    counting: str = "dense"


_COUNTING_WORDS = {
    "dense": "dense counting (padded zeros multiplied)",
    "effective": "effective counting (only taps on real input)",
}


# ---------------------------------------------------------------------- right answers


@dataclass(frozen=True)
class Answer:
    """The value of a quantity under one setting, with its working.

    ``quantity`` is the formula's :class:`~npconv.formulas.Quantity` for
    numbers (None for shapes); ``working`` the whole derivation as one line.
    """

    value: Value
    text: str
    working: str
    quantity: Quantity | None = None


def _from_quantity(q: Quantity) -> Answer:
    working = str(q) if q.formula == q.working else f"{q.formula} = {q}"
    return Answer(q.value, format_number(q.value), working, q)


def _lengths_working(layer: ConvGeometry) -> str:
    oh, ow = F.output_height(layer), F.output_width(layer)
    if oh.working == ow.working:
        return f"OH = OW = {oh.formula} = {oh}"
    return f"OH = {oh.formula} = {oh}; OW = {ow.formula} = {ow}"


def _shape_answer(layers: Q.Layers, part: str, kind: str) -> Answer:
    if kind in LENGTH_KINDS:
        return _from_quantity(Q.of_part(layers, part, kind))
    spatial = layers.spatial(part)
    n, channels, oh, ow = layers.part(part).output_shape
    if kind == "output_size":
        return Answer((oh, ow), f"{oh}x{ow}", _lengths_working(spatial))
    if part == "depthwise":
        symbol = "C_in" if layers.separable.depth_multiplier == 1 else "m x C_in"
    else:
        symbol = "C_out"
    value = (oh, ow, channels) if n == 1 else (n, oh, ow, channels)
    return Answer(value, "x".join(map(str, value)),
                  f"{_lengths_working(spatial)}; channels {symbol} = {channels}")


def answer(quantity: str, setting: Setting) -> Answer:
    """The value of ``quantity`` (a name of :data:`QUANTITIES`) under ``setting``, with its working.

    Raises :class:`~npconv.errors.ConvArgumentError` when the setting is not a valid layer.
    """
    layers = Q.Layers(*setting.question.layers())
    part, kind = split_quantity(quantity)
    if part == "ratio":
        return _from_quantity(Q.ratio(layers, kind, setting.counting))
    if kind in SHAPE_KINDS or kind in LENGTH_KINDS:
        return _shape_answer(layers, part, kind)
    return _from_quantity(Q.of_part(layers, part, kind, setting.counting))
