"""Closed-form formulas for a convolution layer, each with its working shown.

Every function takes a validated :class:`~npconv.geometry.ConvGeometry` and
returns a :class:`Quantity`: the value, the formula in symbols and the same
formula with the layer's numbers substituted, e.g. ``str(params(g))`` is
``(5 x 5 x 3 + 1) x 256 = 19,456``, and the expression tree both come from.

One general formula covers standard, grouped, depthwise (``groups == C_in``,
``C_out = m * C_in``) and pointwise (1x1) layers.  :func:`params`,
:func:`mults`, :func:`adds` and :func:`flops` also take a
:class:`~npconv.geometry.SeparableGeometry`, whose counts are the sums of its
depthwise and pointwise parts (``separable_params`` and friends are the same
functions under their older names).  Symbols::

    N batch, C_in / C_out channels, g groups, H x W input, KH x KW kernel,
    S stride, D dilation, P_top/P_bottom/P_left/P_right padding, OH x OW output

Counting semantics are those of :mod:`npconv.counts`:

* ``dense`` mults = N x OH x OW x C_out x KH x KW x C_in/g -- every tap of
  every window, padded zeros included;
* ``effective`` mults = N x C_out x C_in/g x T_H x T_W, where T_H is the sum
  over output rows of the kernel rows that land on real input (and T_W the
  same along W) -- a tap is real iff its row and its column both are, so the
  count factors per axis;
* adds = mults with a bias, mults - (outputs that have at least one product)
  without one: summing T terms takes T - 1 additions.

Pure Python integers throughout: importing this module imports neither NumPy
nor Numba.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

from npconv._expr import (
    Difference,
    Expr,
    Floor,
    Group,
    Leaf,
    Number,
    Product,
    Ratio,
    Sum,
    format_number,
    product,
    run_sum,
)
from npconv.counts import CONVENTIONS
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry


@dataclass(frozen=True)
class Quantity:
    """A number with its working: ``formula`` in symbols, ``working`` with numbers.

    ``details`` holds the sub-quantities the working refers to (e.g. the
    effective tap sums ``T_H`` and ``T_W``); ``note`` a sentence of context;
    ``expr`` the expression tree ``value`` and ``working`` were computed and
    rendered from, whose leaves carry the formula's symbols (what
    :func:`npconv.expressions.compare` sets hand-written arithmetic against).
    ``int(q)`` gives the value of an integer quantity.
    """

    label: str
    value: Number
    formula: str
    working: str
    details: tuple[Quantity, ...] = field(default=())
    note: str = ""
    expr: Expr | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, label: str, expr: Expr, *, details: tuple[Quantity, ...] = (),
           formula: str | None = None, note: str = "") -> Quantity:
        """Evaluate and render ``expr``, and keep it."""
        return cls(label, expr.value(), formula or expr.symbols(), expr.numbers(), details, note, expr)

    def __str__(self) -> str:
        shown = format_number(self.value)
        return shown if self.working == shown else f"{self.working} = {shown}"

    def __int__(self) -> int:
        if isinstance(self.value, Fraction) and self.value.denominator != 1:
            raise TypeError(f"{self.label} = {self.value} is not an integer")
        return int(self.value)

    __index__ = __int__

    def leaf(self, symbol: str | None = None) -> Leaf:
        """This quantity as a named number inside a larger expression."""
        return Leaf(self.value, symbol or self.label)

    def to_dict(self) -> dict[str, object]:
        value = self.value
        if isinstance(value, Fraction):
            value = int(value) if value.denominator == 1 else float(value)
        result: dict[str, object] = {
            "value": value,
            "formula": self.formula,
            "working": str(self),
        }
        if self.details:
            result["details"] = {d.label: d.to_dict() for d in self.details}
        if self.note:
            result["note"] = self.note
        return result


# ---------------------------------------------------------------------- symbols


def _axis_symbol(base: str, pair: tuple[int, int], axis: int) -> str:
    """``S`` when both axes agree, else ``S_H`` / ``S_W``."""
    return base if pair[0] == pair[1] else f"{base}_{'HW'[axis]}"


def _batch(g: ConvGeometry) -> Leaf | None:
    """``N`` as a factor, left out of the working when it is 1."""
    return None if g.batch == 1 else Leaf(g.batch, "N")


def _channels_per_group(g: ConvGeometry) -> Leaf:
    return Leaf(g.in_channels_per_group, "C_in" if g.groups == 1 else "C_in/g")


def _out_channels(g: ConvGeometry) -> Leaf:
    """``C_out``; for a depthwise layer ``C_in`` (or ``m x C_in`` with a depth multiplier)."""
    if g.groups > 1 and g.is_depthwise:
        return Leaf(g.out_channels, "C_in" if g.depth_multiplier == 1 else "m x C_in")
    return Leaf(g.out_channels, "C_out")


def _check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ConvArgumentError("convention", f"one of {', '.join(map(repr, CONVENTIONS))}", repr(convention))
    return convention


# ---------------------------------------------------------------------- output size


def _output_length(g: ConvGeometry, axis: int) -> Quantity:
    size, size_sym = (g.height, "H") if axis == 0 else (g.width, "W")
    kernel = g.kernel_h if axis == 0 else g.kernel_w
    kernel_sym = "KH" if axis == 0 else "KW"
    before_sym, after_sym = ("P_top", "P_bottom") if axis == 0 else ("P_left", "P_right")
    before, after = g.padding[axis]
    stride = Leaf(g.stride[axis], _axis_symbol("S", g.stride, axis))
    dilation = g.dilation[axis]
    padded = [Leaf(size, size_sym), Leaf(before, before_sym), Leaf(after, after_sym)]
    if dilation == 1:
        # floor((H + P_top + P_bottom - KH) / S) + 1: the textbook form
        span: Expr = Difference(Sum(*padded), Leaf(kernel, kernel_sym))
    else:
        reach = Product(Leaf(dilation, _axis_symbol("D", g.dilation, axis)),
                        Group(Difference(Leaf(kernel, kernel_sym), Leaf(1, "1"))))
        span = Difference(Difference(Sum(*padded), reach), Leaf(1, "1"))
    expr = Sum(Floor(Ratio(Group(span), stride)), Leaf(1, "1"))
    label = "OH" if axis == 0 else "OW"
    quantity = Quantity.of(label, expr)
    if quantity.value != (g.out_height if axis == 0 else g.out_width):
        raise AssertionError("formulas and geometry disagree on the output size")  # pragma: no cover
    return quantity


def output_height(g: ConvGeometry) -> Quantity:
    """``OH = floor((H + P_top + P_bottom - D x (KH - 1) - 1) / S) + 1``."""
    return _output_length(g, 0)


def output_width(g: ConvGeometry) -> Quantity:
    """``OW = floor((W + P_left + P_right - D x (KW - 1) - 1) / S) + 1``."""
    return _output_length(g, 1)


def _out_leaves(g: ConvGeometry) -> tuple[Leaf, Leaf]:
    return Leaf(g.out_height, "OH"), Leaf(g.out_width, "OW")


# ---------------------------------------------------------------------- parameters


def params(g: ConvGeometry | SeparableGeometry, bias: bool | None = None) -> Quantity:
    """Learnable parameters: ``(KH x KW x C_in/g + 1) x C_out`` (``+ 1`` only with a bias).

    ``bias`` overrides the geometry's own bias flag.  A separable layer's are
    its parts' under its bias convention (``bias`` does not apply to it).
    """
    if isinstance(g, SeparableGeometry):
        if bias is not None:
            raise ConvArgumentError("bias", "None for a separable layer (its parts carry their biases)",
                                    repr(bias))
        return _sum_of_parts("params", params(g.depthwise), params(g.pointwise),
                             note=f"bias convention: {g.bias_convention}")
    with_bias = g.bias if bias is None else bias
    per_filter: Expr = Product(Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW"), _channels_per_group(g))
    if with_bias:
        per_filter = Sum(per_filter, Leaf(1, "1"))
    expr = Product(Group(per_filter), _out_channels(g))
    return Quantity.of("params", expr, note="with bias" if with_bias else "no bias")


# ---------------------------------------------------------------------- effective taps


def valid_taps_per_output(size: int, kernel: int, stride: int, pad_before: int,
                          dilation: int, out_length: int) -> list[int]:
    """For each output position along one axis, how many kernel taps land on real input.

    Output ``o`` reads input ``o * stride - pad_before + k * dilation`` for
    ``k = 0 .. kernel - 1``; the valid ``k`` form the range
    ``[ceil((pad_before - o * stride) / dilation), floor((size - 1 - o * stride + pad_before) / dilation)]``
    clipped to ``[0, kernel - 1]``.
    """
    counts = []
    for o in range(out_length):
        start = o * stride - pad_before
        first = max(0, -(start // dilation))
        last = min(kernel - 1, (size - 1 - start) // dilation)
        counts.append(max(0, last - first + 1))
    return counts


def valid_tap_runs(size: int, kernel: int, stride: int, pad_before: int,
                   dilation: int, out_length: int) -> list[tuple[int, int]]:
    """:func:`valid_taps_per_output` as runs ``(taps, outputs in a row)``, in O(kernel) steps.

    The first valid tap of output ``o`` is at most ``v`` from
    ``o = ceil((pad_before - v x dilation) / stride)`` on, and the last is at
    most ``w`` from ``o = ceil((size + pad_before - (w + 1) x dilation) / stride)``
    on; between consecutive such edges (``v = 0 .. kernel - 1``,
    ``w = -1 .. kernel - 2``) the count is constant.  So a layer whose output
    has billions of positions along an axis is counted as fast as a small one.
    """
    edges = {0}
    for v in range(kernel):
        edges.add(-((v * dilation - pad_before) // stride))
    for w in range(-1, kernel - 1):
        edges.add(-(((w + 1) * dilation - size - pad_before) // stride))
    starts = sorted(e for e in edges if 0 <= e < out_length)
    runs: list[tuple[int, int]] = []
    for begin, end in zip(starts, [*starts[1:], out_length], strict=True):
        (taps,) = valid_taps_per_output(size, kernel, stride, pad_before - begin * stride, dilation, 1)
        if runs and runs[-1][0] == taps:
            runs[-1] = (taps, runs[-1][1] + end - begin)
        else:
            runs.append((taps, end - begin))
    return runs


def _tap_sums(g: ConvGeometry) -> tuple[Quantity, Quantity, Quantity, Quantity]:
    """``T_H, T_W`` (valid taps summed over output rows/columns) and ``R_H, R_W``
    (output rows/columns that see at least one real input pixel)."""
    result = []
    reached = []
    for axis, (size, kernel, out, symbol, what) in enumerate(
        ((g.height, g.kernel_h, g.out_height, "H", "row"), (g.width, g.kernel_w, g.out_width, "W", "column"))
    ):
        runs = valid_tap_runs(size, kernel, g.stride[axis], g.padding[axis][0], g.dilation[axis], out)
        result.append(Quantity.of(
            f"T_{symbol}", run_sum(runs, "taps"),
            formula=f"sum over output {what}s of the kernel {what}s that land on real input",
        ))
        reached.append(Quantity.of(
            f"R_{symbol}", run_sum([(int(t > 0), n) for t, n in runs], "reached"),
            formula=f"output {what}s with at least one kernel {what} on real input",
        ))
    return result[0], result[1], reached[0], reached[1]


# ---------------------------------------------------------------------- mults, adds, flops


def mults(g: ConvGeometry | SeparableGeometry, convention: str = "dense") -> Quantity:
    """Scalar multiplications: dense ``N x OH x OW x C_out x KH x KW x C_in/g``,
    effective ``N x C_out x C_in/g x T_H x T_W`` (a separable layer: its parts' sum)."""
    if isinstance(g, SeparableGeometry):
        return _sum_of_parts("mults", mults(g.depthwise, convention), mults(g.pointwise, convention))
    if _check_convention(convention) == "dense":
        oh, ow = _out_leaves(g)
        expr = product(_batch(g), oh, ow, _out_channels(g),
                       Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW"), _channels_per_group(g))
        return Quantity.of("mults", expr, note="dense: every tap, padded zeros included")
    t_h, t_w, _, _ = _tap_sums(g)
    expr = product(_batch(g), _out_channels(g), _channels_per_group(g), t_h.leaf(), t_w.leaf())
    return Quantity.of("mults", expr, details=(t_h, t_w), note="effective: only taps on real input")


def outputs(g: ConvGeometry, convention: str = "dense") -> Quantity:
    """Outputs that sum at least one product: all ``N x OH x OW x C_out`` under
    ``dense``; ``N x C_out x R_H x R_W`` under ``effective``."""
    if _check_convention(convention) == "dense":
        oh, ow = _out_leaves(g)
        return Quantity.of("outputs", product(_batch(g), oh, ow, _out_channels(g)))
    _, _, r_h, r_w = _tap_sums(g)
    expr = product(_batch(g), _out_channels(g), r_h.leaf(), r_w.leaf())
    return Quantity.of("outputs", expr, details=(r_h, r_w),
                       note="outputs whose window touches real input")


def adds(g: ConvGeometry | SeparableGeometry, convention: str = "dense") -> Quantity:
    """Scalar additions: ``mults`` with a bias, ``mults - outputs`` without (a separable layer:
    its parts' sum)."""
    if isinstance(g, SeparableGeometry):
        return _sum_of_parts("adds", adds(g.depthwise, convention), adds(g.pointwise, convention))
    m = mults(g, convention)
    if g.bias:
        return Quantity.of("adds", m.leaf("mults"), formula="mults",
                           note="with bias: each product is added to a sum that starts at the bias")
    reached = outputs(g, convention)
    expr = Difference(m.leaf("mults"), reached.leaf("outputs"))
    return Quantity.of("adds", expr, details=(reached,),
                       note="no bias: summing T products per output takes T - 1 additions")


def flops(g: ConvGeometry | SeparableGeometry, convention: str = "dense") -> Quantity:
    """``mults + adds`` (a separable layer: its parts' sum)."""
    if isinstance(g, SeparableGeometry):
        return _sum_of_parts("FLOPs", flops(g.depthwise, convention), flops(g.pointwise, convention))
    m, a = mults(g, convention), adds(g, convention)
    return Quantity.of("FLOPs", Sum(m.leaf("mults"), a.leaf("adds")))


def padded_mults(g: ConvGeometry) -> Quantity:
    """Multiplications by a padding zero in dense counting: ``dense - effective``."""
    dense, effective = mults(g, "dense"), mults(g, "effective")
    return Quantity.of("padded mults", Difference(dense.leaf("dense mults"), effective.leaf("effective mults")))


def im2col_workspace_bytes(g: ConvGeometry, itemsize: int = 4) -> Quantity:
    """Bytes of the im2col column matrix for the whole batch:
    ``(C_in x KH x KW) x (N x OH x OW) x itemsize``."""
    oh, ow = _out_leaves(g)
    rows = Group(Product(Leaf(g.in_channels, "C_in"), Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW")))
    cols = Group(Product(Leaf(g.batch, "N"), oh, ow))
    return Quantity.of("im2col workspace bytes", Product(rows, cols, Leaf(itemsize, "itemsize")))


# ---------------------------------------------------------------------- separable layers


def _sum_of_parts(label: str, dw: Quantity, pw: Quantity, note: str = "") -> Quantity:
    dw_part = dataclasses.replace(dw, label=f"depthwise {dw.label}")
    pw_part = dataclasses.replace(pw, label=f"pointwise {pw.label}")
    expr = Sum(dw_part.leaf(), pw_part.leaf())
    return Quantity.of(label, expr, details=(dw_part, pw_part), note=note)


#: The separable layer's counts under their older names: the same functions.
separable_params = params
separable_mults = mults
separable_adds = adds
separable_flops = flops


def ratio(label: str, numerator: Quantity, denominator: Quantity) -> Quantity:
    """``numerator / denominator`` as an exact fraction, with the working shown."""
    return Quantity.of(label, Ratio(numerator.leaf(), denominator.leaf()),
                       formula=f"{numerator.label} / {denominator.label}")


def mobilenet_reduction(s: SeparableGeometry) -> Quantity:
    """``m / C_out + m / (KH x KW)``: separable over standard mults (MobileNet, Howard et al. 2017).

    Exact for dense counts and a standard layer with the same input, output,
    stride, padding and dilation; ``m`` is the depth multiplier.
    """
    dw = s.depthwise
    m = Leaf(s.depth_multiplier, "m") if s.depth_multiplier != 1 else Leaf(1, "1")
    expr = Sum(
        Ratio(m, Leaf(s.pointwise.out_channels, "C_out")),
        Ratio(m, Group(Product(Leaf(dw.kernel_h, "KH"), Leaf(dw.kernel_w, "KW")))),
    )
    return Quantity.of("reduction", expr, note="separable / standard multiplications (dense)")


# ---------------------------------------------------------------------- other layers of a network
#
# Used by :mod:`npconv.network`.  A linear layer needs no formula of its own: it
# is a 1x1 convolution of a 1x1 input (``ConvGeometry.from_layer((N, F_in, 1, 1),
# F_out, 1)``), so :func:`params`, :func:`mults` and :func:`adds` apply as they are.
# A pooling window is described by a depthwise geometry (``groups == C``) whose
# taps have no weights.


def batch_norm_params(channels: int) -> Quantity:
    """Learnable parameters of a batch-norm layer: ``2 x C`` (a scale and a shift per channel)."""
    return Quantity.of("params", Product(Leaf(2, "2"), Leaf(channels, "C")),
                       note="gamma and beta per channel")


def batch_norm_buffers(channels: int) -> Quantity:
    """Running statistics of a batch-norm layer: ``2 x C`` (mean and variance per channel).

    PyTorch keeps them as buffers, not parameters (Keras calls them
    non-trainable parameters).
    """
    return Quantity.of("buffers", Product(Leaf(2, "2"), Leaf(channels, "C")),
                       note="running mean and variance per channel")


def elements(shape: tuple[int, ...]) -> Quantity:
    """Elements of an activation: ``N x C x H x W`` (``N x F`` when flat, ``N x C x L``, or ``N x D1 x
    D2 ...``; ``N`` left out when 1).

    One operation per element: a batch-norm's scale or shift at inference, a
    residual addition.
    """
    symbols = {4: ("N", "C", "H", "W"), 3: ("N", "C", "L"), 2: ("N", "F")}.get(
        len(shape), ("N", *(f"D{axis}" for axis in range(1, len(shape))))[:len(shape)])
    leaves = [Leaf(size, symbol) for size, symbol in zip(shape, symbols, strict=True)]
    if shape and shape[0] == 1 and len(leaves) > 1:
        leaves = leaves[1:]
    return Quantity.of("elements", product(*leaves) if leaves else Leaf(1, "1"))


def elementwise_sum_adds(shape: tuple[int, ...], terms: int) -> Quantity:
    """Adding ``terms`` tensors of ``shape`` element by element: ``(terms - 1) x elements``.

    Two terms (a residual addition) take one addition per element: :func:`elements`.
    """
    per_element = elements(shape)
    if terms == 2:
        return per_element
    expr = Product(Group(Difference(Leaf(terms, "inputs"), Leaf(1, "1"))), per_element.expr)
    return Quantity.of("adds", expr, note="summing T tensors takes T - 1 additions per element")


def parameters_read(count: int) -> Quantity:
    """Learnable numbers an operation outside npconv's counts reads (PyTorch's ``numel`` of them)."""
    return Quantity.of("params", Leaf(count, "parameters read"))


def pooling_window_ops(g: ConvGeometry) -> Quantity:
    """``N x OH x OW x C x (KH x KW - 1)``: combining the taps of every pooling window.

    The additions of an average pool, or the comparisons of a max pool;
    dense (every tap of the window, padding included).  ``g`` is the window
    as a depthwise geometry (``groups == C``).
    """
    oh, ow = _out_leaves(g)
    taps = Group(Difference(Product(Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW")), Leaf(1, "1")))
    expr = product(_batch(g), oh, ow, Leaf(g.out_channels, "C"), taps)
    return Quantity.of("window ops", expr, note="KH x KW taps per window take KH x KW - 1 operations")
