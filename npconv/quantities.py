"""The quantities of a layer question, in one table: (part, quantity, convention) -> Quantity.

Every command that shows a closed form asks here -- ``explain`` for its
table and working, ``check`` for the right answer to a claim, ``measure``,
``model`` and ``bench`` for the counts a kernel's tally is checked against --
and none builds the table itself.  A *question* is a standard layer and the
depthwise-separable layer with the same input, kernel and output
(:class:`Layers`); its *parts* are::

    standard    the standard layer
    depthwise   the separable layer's depthwise part (it carries stride, padding, dilation)
    pointwise   its pointwise (1x1) part
    separable   the whole separable layer: each count the sum of its parts'

and its *quantities* (:data:`KINDS`) are the output lengths, the parameters
and the counted operations in a counting convention (``dense`` or
``effective``, see :mod:`npconv.counts`).  Each answer is a
:class:`~npconv.formulas.Quantity`: value, formula, working and the
expression tree they come from.

Pure Python: importing this module imports neither NumPy nor Numba.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from npconv import formulas as F
from npconv._expr import Leaf
from npconv.counts import ALGORITHM_CONVENTIONS
from npconv.formulas import Quantity
from npconv.geometry import ConvGeometry, SeparableGeometry

PARTS = ("standard", "depthwise", "pointwise", "separable")

#: Operations counted, in a counting convention.
COUNTED = ("mults", "adds", "flops")

#: Every quantity of a part: ``macs`` is another name of ``mults``.
KINDS = ("output_height", "output_width", "params", *COUNTED, "macs")

#: Ratios separable / standard (``mobilenet``: MobileNet's closed form of the mult ratio).
RATIO_KINDS = ("params", "mults", "flops", "mobilenet")

Layer = ConvGeometry | SeparableGeometry


@dataclass(frozen=True)
class Layers:
    """The standard and the depthwise-separable layer of one question."""

    standard: ConvGeometry
    separable: SeparableGeometry

    def part(self, name: str) -> Layer:
        """The layer of part ``name`` (one of :data:`PARTS`)."""
        if name == "standard":
            return self.standard
        if name == "separable":
            return self.separable
        return getattr(self.separable, name)

    def spatial(self, name: str) -> ConvGeometry:
        """Where ``name``'s stride, padding and dilation act: the standard layer, else the depthwise part."""
        return self.standard if name == "standard" else self.separable.depthwise


def quantity(layer: Layer, kind: str, convention: str = "dense") -> Quantity:
    """``kind`` (one of :data:`KINDS`) of ``layer`` under ``convention``.

    The output lengths of a separable layer are its depthwise part's; so are
    its pointwise part's (a 1x1 layer keeps its input's size).
    """
    if kind in ("output_height", "output_width"):
        spatial = layer.depthwise if isinstance(layer, SeparableGeometry) else layer
        return (F.output_height if kind == "output_height" else F.output_width)(spatial)
    if kind == "params":
        return F.params(layer)
    counter = {"mults": F.mults, "macs": F.mults, "adds": F.adds, "flops": F.flops}[kind]
    return counter(layer, convention)


def of_part(layers: Layers, part: str, kind: str, convention: str = "dense") -> Quantity:
    """``kind`` of ``part`` of a question (output lengths where its stride and padding act)."""
    if kind in ("output_height", "output_width"):
        return quantity(layers.spatial(part), kind)
    return quantity(layers.part(part), kind, convention)


def table(layers: Layers, conventions: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """part -> {"output_shape", "params", and per counted kind {convention: Quantity}}."""
    result: dict[str, dict[str, object]] = {}
    for part in PARTS:
        layer = layers.part(part)
        result[part] = {"output_shape": layer.output_shape, "params": quantity(layer, "params")}
        for kind in COUNTED:
            result[part][kind] = {c: quantity(layer, kind, c) for c in conventions}
    return result


def ratio(layers: Layers, kind: str, convention: str = "dense", inverse: bool = False) -> Quantity:
    """Separable over standard ``kind`` (one of :data:`RATIO_KINDS`); ``inverse``: standard over separable."""
    if kind == "mobilenet":
        reduction = F.mobilenet_reduction(layers.separable)
        if not inverse:
            return reduction
        return F.ratio("1 / reduction", Quantity.of("1", Leaf(1, "1")), reduction)
    sep = dataclasses.replace(quantity(layers.separable, kind, convention), label=f"separable {kind}")
    std = dataclasses.replace(quantity(layers.standard, kind, convention), label=f"standard {kind}")
    return F.ratio(f"{kind} ratio", std, sep) if inverse else F.ratio(f"{kind} ratio", sep, std)


def counts(layer: Layer, convention: str) -> dict[str, int]:
    """The closed-form ``{"mults", "adds"}`` of ``layer`` under ``convention``: what a kernel's tally must equal."""
    return {kind: int(quantity(layer, kind, convention)) for kind in ("mults", "adds")}


def counts_of_run(layer: Layer, run) -> dict[str, int]:
    """The closed-form ``{"mults", "adds"}`` that a run's :class:`~npconv.counts.Counts` must equal.

    A layer convention (``dense``, ``effective``) is the layer's count; a fast
    algorithm's (``winograd``, ``fft``) is its own closed form
    (:func:`npconv.formulas.algorithm_counts`, for the tile the run names).  A
    separable layer's run sums its parts, each in the convention it ran in.
    """
    if isinstance(layer, SeparableGeometry):
        parts = (counts_of_run(layer.depthwise, run.depthwise), counts_of_run(layer.pointwise, run.pointwise))
        return {kind: parts[0][kind] + parts[1][kind] for kind in ("mults", "adds")}
    if run.convention in ALGORITHM_CONVENTIONS:
        closed = F.algorithm_counts(layer, run.method, run.algorithm)
        return {"mults": int(closed.mults), "adds": int(closed.adds)}
    return counts(layer, run.convention)


# ---------------------------------------------------------------------- one training step

#: The gradients of a layer's backward pass (see :mod:`npconv.gradients`).
GRADIENTS = ("input", "weight", "bias")

#: The needs of a first layer: its input is data, so no input gradient.
FIRST_LAYER_NEEDS = ("weight", "bias")


def backward_table(layers: Layers, conventions: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """part -> {"forward", each gradient, "step", "first_layer_step"}: {convention: {"mults", "adds"}}.

    ``step`` is one training step of the part as an inner layer (forward plus every gradient);
    ``first_layer_step`` the same without the input gradient (a separable first layer still
    computes its pointwise part's input gradient, which the depthwise weights need).
    """
    result: dict[str, dict[str, object]] = {}
    for part in PARTS:
        layer = layers.part(part)
        rows: dict[str, object] = {
            "forward": {c: {"mults": F.mults(layer, c), "adds": F.adds(layer, c)} for c in conventions},
        }
        for wrt in GRADIENTS:
            rows[wrt] = {c: {"mults": F.backward_mults(layer, wrt, c), "adds": F.backward_adds(layer, wrt, c)}
                         for c in conventions}
        for name, needs in (("step", GRADIENTS), ("first_layer_step", FIRST_LAYER_NEEDS)):
            rows[name] = {c: {"mults": F.training_step_mults(layer, c, needs),
                              "adds": F.training_step_adds(layer, c, needs)} for c in conventions}
        result[part] = rows
    return result
