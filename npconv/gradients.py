"""What a backward pass returns: the gradients, and the operations that computed them.

A convolution ``y = conv2d(x, weight, bias)`` has up to three gradients, named
as in ``needs=``:

``"input"``
    ``dL/dx``, shape of ``x`` -- what the layer below needs (the first layer
    of a network does not need it);
``"weight"``
    ``dL/dweight``, shape of ``weight``;
``"bias"``
    ``dL/dbias``, shape ``(C_out,)``; only for a layer that has a bias.

Each is a sum over the forward taps: for every forward product
``x[n, c, ih, iw] * weight[co, ci, kh, kw]`` that contributed to
``y[n, co, oh, ow]``, the input gradient gets ``grad_y[n, co, oh, ow] *
weight[co, ci, kh, kw]`` at ``(n, c, ih, iw)`` and the weight gradient gets
``grad_y[n, co, oh, ow] * x[n, c, ih, iw]`` at ``(co, ci, kh, kw)``; the bias
gradient sums ``grad_y`` over ``(n, oh, ow)``.  So the input and the weight
gradient each cost one multiplication per forward product: a training step
(forward, then both gradients) costs about three forward passes.

Counting semantics (as in :mod:`npconv.counts`: summing ``T`` terms takes
``T - 1`` additions; the first term starts the sum):

* ``dense`` counts every forward tap, padded zeros included, and sums the
  input gradient on the *padded* input (its padding is then cropped away);
* ``effective`` counts only taps that land on real input.

The closed forms are in :mod:`npconv.formulas` (``backward_mults``,
``backward_adds``, ``training_step_mults``).

Pure Python: importing this module imports nothing else from npconv but
:mod:`npconv.counts` and :mod:`npconv.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from npconv.counts import Counts, OfTwoParts, Totals
from npconv.errors import ConvArgumentError

#: The gradients a convolution has, in the order :class:`Grads` holds them.
GRADIENTS = ("input", "weight", "bias")


def parse_needs(needs: object, argument: str = "needs") -> frozenset[str]:
    """Validate ``needs``: one gradient name, or an iterable of them (a subset of :data:`GRADIENTS`).

    An empty iterable is accepted (nothing is computed).
    """
    expected = f"a gradient name or a collection of them, from {', '.join(map(repr, GRADIENTS))}"
    if isinstance(needs, str):
        names = (needs,)
    else:
        try:
            names = tuple(needs)  # type: ignore[arg-type]
        except TypeError:
            raise ConvArgumentError(argument, expected, repr(needs)) from None
    for name in names:
        if not isinstance(name, str) or name not in GRADIENTS:
            shown = repr(needs)
            raise ConvArgumentError(argument, expected, shown if len(shown) <= 80 else shown[:77] + "...")
    return frozenset(names)


def separable_needs(needs: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """What each part of a depthwise-separable layer must compute for ``needs``.

    ``needs`` names the layer's gradients: ``"input"`` (of ``x``),
    ``"weight"`` (both weights), ``"bias"`` (both biases, where present).
    Returns the depthwise part's and the pointwise part's needs: the
    pointwise part's *input* gradient is the depthwise output's gradient,
    wanted whenever anything of the depthwise part is.
    """
    depthwise = frozenset(needs)
    pointwise = set(needs - {"input"})
    if depthwise:
        pointwise.add("input")
    return depthwise, frozenset(pointwise)


class Grads(NamedTuple):
    """The gradients of a convolution: arrays, or ``None`` where not asked for (or no bias).

    Unpacks as ``grad_x, grad_weight, grad_bias = npconv.conv2d_backward(...)``.
    """

    input: Any
    weight: Any
    bias: Any


class SeparableGrads(NamedTuple):
    """The gradients of a depthwise-separable layer, named like its operands."""

    input: Any
    depthwise_weight: Any
    pointwise_weight: Any
    depthwise_bias: Any
    pointwise_bias: Any


@dataclass(frozen=True)
class GradCounts(Totals):
    """Measured operations of one backward call: a :class:`~npconv.counts.Counts` per gradient.

    ``input``, ``weight``, ``bias`` are ``None`` for a gradient that was not
    computed.  The totals sum the computed ones.  ``padded_mults`` of a
    gradient counts its products that involved the padding: for the input
    gradient, products summed on padded positions (then cropped); for the
    weight gradient, products with a padded zero of the input.
    """

    input: Counts | None
    weight: Counts | None
    bias: Counts | None
    convention: str
    method: str

    def __post_init__(self) -> None:
        for name in GRADIENTS:
            part = getattr(self, name)
            if part is not None and (part.convention, part.method) != (self.convention, self.method):
                raise ValueError(f"{name}: counts of {part.method}/{part.convention}, expected "
                                 f"{self.method}/{self.convention}")

    def parts(self) -> dict[str, Counts]:
        """The computed gradients' counts, by name."""
        return {name: part for name in GRADIENTS if (part := getattr(self, name)) is not None}

    def summed(self) -> list[Counts]:
        return list(self.parts().values())

    def to_dict(self) -> dict[str, object]:
        return {
            **self.totals_dict(),
            **{name: None if (part := getattr(self, name)) is None else part.to_dict() for name in GRADIENTS},
        }


@dataclass(frozen=True)
class SeparableGradCounts(OfTwoParts):
    """Counts of a depthwise-separable backward call: its two parts, and the forward recomputation.

    ``depthwise`` and ``pointwise`` are the parts' :class:`GradCounts`; the
    totals (``mults``, ``adds``, ``flops``) are theirs only.
    ``hidden_recompute`` counts the forward depthwise convolution run to
    recompute the depthwise output when it was not passed as ``hidden=``
    (``None`` otherwise): it is forward work, reported apart and never
    mixed into the gradient counts.
    """

    depthwise: GradCounts
    pointwise: GradCounts
    hidden_recompute: Counts | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            **self.totals_dict(),
            "depthwise": self.depthwise.to_dict(),
            "pointwise": self.pointwise.to_dict(),
            "hidden_recompute": None if self.hidden_recompute is None else self.hidden_recompute.to_dict(),
        }
