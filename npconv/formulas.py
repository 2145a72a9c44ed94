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

Size: this is the one place for closed forms (no other module writes a formula), and every
form carries its working, so the file is long by design; its sections -- forward counts, the
separable layer, the backward pass, the fast algorithms -- are headed and independent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

from npconv._expr import (
    Difference,
    Elided,
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
from npconv.geometry import ConvGeometry, SeparableGeometry, first_touch_starts, tap_output_range
from npconv.gradients import GRADIENTS, parse_needs, separable_needs


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


def _floor_sum(n: int, m: int, a: int, b: int) -> int:
    """``sum(floor((a * i + b) / m) for i in range(n))`` for ``m >= 1`` and any ints ``a, b``, in
    O(log) steps (the Euclid-like reduction of AtCoder Library's ``floor_sum``)."""
    if n <= 0:
        return 0
    total = 0
    quotient, a = divmod(a, m)  # floor division: a and b now in [0, m)
    total += quotient * n * (n - 1) // 2
    quotient, b = divmod(b, m)
    total += quotient * n
    while True:
        if a >= m:
            total += n * (n - 1) // 2 * (a // m)
            a %= m
        if b >= m:
            total += n * (b // m)
            b %= m
        top = a * n + b
        if top < m:
            return total
        n, b = divmod(top, m)
        m, a = a, m


def _window_counts(outer: int, inner: int, step: int, spacing: int, low: int, high: int,
                   reached: bool = False) -> int:
    """``sum over j in [0, outer) of #{i in [0, inner): low - j*step <= i*spacing <= high - j*step}``,
    or with ``reached`` the number of ``j`` whose count is not 0 -- exactly, in O(log) steps.

    Along one axis of a layer, an output ``o`` and a tap ``k`` meet real input when
    ``0 <= o*stride - pad + k*dilation <= size - 1``; with ``j = o, i = k`` (``step = stride``,
    ``spacing = dilation``, ``low = pad``, ``high = size - 1 + pad``) the sum is T, the valid taps
    summed over outputs, and ``reached`` counts the outputs that see any input (R); with
    ``j = k, i = o`` it is T again, summed the other way.  The bounds of ``i``,
    ``lo_j = ceil((low - j*step) / spacing)`` and ``hi_j = floor((high - j*step) / spacing)``, fall
    with ``j``; the clipping to ``[0, inner)`` splits ``j`` into at most four ranges, on each of
    which the count is ``inner``, ``inner - lo_j``, ``hi_j + 1`` or ``hi_j - lo_j + 1`` -- sums of
    floors of linear functions, each one :func:`_floor_sum`.
    """
    def floor_high(first: int, last: int) -> int:  # sum of hi_j over j in [first, last]
        return _floor_sum(last - first + 1, spacing, step, high - last * step)

    def floor_neg_low(first: int, last: int) -> int:  # sum of -lo_j = floor((j*step - low) / spacing)
        return _floor_sum(last - first + 1, spacing, step, first * step - low)

    last_j = outer - 1
    upper_clipped = (high - (inner - 1) * spacing) // step  # j <= this: hi_j >= inner - 1
    lower_clipped = -(-low // step)  # j >= this: lo_j <= 0
    any_high = high // step  # j <= this: hi_j >= 0
    any_low = -(-(low - (inner - 1) * spacing) // step)  # j >= this: lo_j <= inner - 1

    total = 0
    # both ends clipped: every i counts
    first, last = max(0, lower_clipped), min(last_j, upper_clipped)
    if first <= last:
        total += (last - first + 1) * (1 if reached else inner)
    # only the upper end clipped: inner - lo_j, positive from any_low on
    first, last = max(0, any_low), min(last_j, upper_clipped, lower_clipped - 1)
    if first <= last:
        total += (last - first + 1) * (1 if reached else inner) + (0 if reached else floor_neg_low(first, last))
    # only the lower end clipped: hi_j + 1, positive up to any_high
    first, last = max(0, upper_clipped + 1, lower_clipped), min(last_j, any_high)
    if first <= last:
        total += (last - first + 1) + (0 if reached else floor_high(first, last))
    # neither clipped: hi_j - lo_j + 1 >= 0, at least 1 when the window spans a whole spacing
    first, last = max(0, upper_clipped + 1), min(last_j, lower_clipped - 1)
    if first <= last:
        if reached and high - low >= spacing:
            total += last - first + 1
        else:  # each count is 0 or 1 when reached matters here, so the sum is the number reached
            total += (last - first + 1) + floor_high(first, last) + floor_neg_low(first, last)
    return total


def valid_tap_total(size: int, kernel: int, stride: int, pad_before: int, dilation: int, out_length: int,
                    reached: bool = False) -> int:
    """``sum(valid_taps_per_output(...))`` -- or, with ``reached``, the outputs with at least one valid
    tap -- in O(log) steps, whatever the kernel and output sizes (:func:`_window_counts`)."""
    return _window_counts(out_length, kernel, stride, dilation, pad_before, size - 1 + pad_before, reached)


#: Kernels up to this size have their tap runs listed (O(kernel) edges, :func:`valid_tap_runs`); a
#: larger kernel's working shows the first and last outputs' taps and sums the rest in closed form.
RUNS_LISTED_UP_TO_KERNEL = 1024

#: A working lists at most this many runs; a longer one shows the first and last
#: :data:`RUNS_SHOWN_AT_EACH_END` and sums the ones between in one bracketed term.
MOST_RUNS_SHOWN = 12
RUNS_SHOWN_AT_EACH_END = 4


def _merged(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for taps, count in pairs:
        if runs and runs[-1][0] == taps:
            runs[-1] = (taps, runs[-1][1] + count)
        else:
            runs.append((taps, count))
    return runs


def _summed_runs(head: list[tuple[int, int]], tail: list[tuple[int, int]], total: int, out_length: int,
                 symbol: str, what: str) -> Expr:
    """``head + [n more rows: S] + tail``: the runs at each end and, between them, the rest in one term
    whose value is what the runs shown leave of ``total`` (so the working adds up, exactly)."""
    shown = sum(taps * count for taps, count in (*head, *tail))
    outputs_shown = sum(count for _, count in (*head, *tail))
    middle = Elided(total - shown, out_length - outputs_shown, f"{what}s")
    return Sum(run_sum(head, symbol), middle, run_sum(tail, symbol))


def _tap_working(size: int, kernel: int, stride: int, pad_before: int, dilation: int, out_length: int,
                 reached: bool, what: str) -> Expr:
    """The run sum whose value is T (or, with ``reached``, R) along one axis, summarised when long."""
    symbol = "reached" if reached else "taps"
    total = valid_tap_total(size, kernel, stride, pad_before, dilation, out_length, reached)

    def mark(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return _merged([(int(taps > 0), n) for taps, n in runs]) if reached else runs

    if kernel <= RUNS_LISTED_UP_TO_KERNEL:
        runs = mark(valid_tap_runs(size, kernel, stride, pad_before, dilation, out_length))
        if len(runs) <= MOST_RUNS_SHOWN:
            return run_sum(runs, symbol)
        ends = RUNS_SHOWN_AT_EACH_END
        return _summed_runs(runs[:ends], runs[-ends:], total, out_length, symbol, what)
    ends = RUNS_SHOWN_AT_EACH_END
    if out_length <= 2 * ends:
        return run_sum(mark(_merged([(taps, 1) for taps in valid_taps_per_output(
            size, kernel, stride, pad_before, dilation, out_length)])), symbol)

    def taps_at(first: int, count: int) -> list[tuple[int, int]]:
        taps = valid_taps_per_output(size, kernel, stride, pad_before - first * stride, dilation, count)
        return mark(_merged([(t, 1) for t in taps]))

    return _summed_runs(taps_at(0, ends), taps_at(out_length - ends, ends), total, out_length, symbol, what)


def _tap_sums(g: ConvGeometry) -> tuple[Quantity, Quantity, Quantity, Quantity]:
    """``T_H, T_W`` (valid taps summed over output rows/columns) and ``R_H, R_W``
    (output rows/columns that see at least one real input pixel), exact in O(log) steps; their
    working lists the runs of equal counts, summarised when long."""
    result = []
    reached = []
    for axis, (size, kernel, out, symbol, what) in enumerate(
        ((g.height, g.kernel_h, g.out_height, "H", "row"), (g.width, g.kernel_w, g.out_width, "W", "column"))
    ):
        axis_layer = (size, kernel, g.stride[axis], g.padding[axis][0], g.dilation[axis], out)
        result.append(Quantity.of(
            f"T_{symbol}", _tap_working(*axis_layer, reached=False, what=what),
            formula=f"sum over output {what}s of the kernel {what}s that land on real input",
        ))
        reached.append(Quantity.of(
            f"R_{symbol}", _tap_working(*axis_layer, reached=True, what=what),
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


class UndefinedRatio(ConvArgumentError):
    """A ratio whose denominator is 0: a layer none of whose taps lands on real input counts no
    effective multiplications, and nothing divided by it is a number."""


def ratio(label: str, numerator: Quantity, denominator: Quantity) -> Quantity:
    """``numerator / denominator`` as an exact fraction, with the working shown.

    Raises :class:`UndefinedRatio` (naming ``label``) when the denominator is 0.
    """
    if denominator.value == 0:
        raise UndefinedRatio(label, f"a {denominator.label} that is not 0, to divide by",
                             "0: no tap of the layer lands on real input")
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


# ---------------------------------------------------------------------- backward pass
#
# The gradients of a layer, counted as npconv.gradients describes: the input and the weight
# gradient each take one product per forward tap (every tap under "dense", the real ones under
# "effective"), and each gradient element summing T terms takes T - 1 additions.  So
# adds = mults - (elements that get at least one term), and the work is in counting those
# elements: per axis, in O(kernel) steps, whatever the size of the layer.


def _axis_of(g: ConvGeometry, axis: int) -> tuple[int, int, int, int, int, int, str, str]:
    """(size, kernel, stride, dilation, pad_before, outputs, "H"/"W", "row"/"column") of one axis."""
    if axis == 0:
        return (g.height, g.kernel_h, g.stride[0], g.dilation[0], g.padding[0][0], g.out_height, "H", "row")
    return (g.width, g.kernel_w, g.stride[1], g.dilation[1], g.padding[1][0], g.out_width, "W", "column")


def reached_padded_positions(g: ConvGeometry, axis: int) -> Quantity:
    """``U_H`` (``axis`` 0) or ``U_W``: padded rows (columns) that at least one tap reaches.

    Tap ``k`` of output ``o`` reaches padded row ``o x S + k x D``; counted by the rows each
    kernel row reaches first (:func:`npconv.geometry.first_touch_starts`):
    ``min(q, KH) x OH + max(KH - q, 0) x min(OH, D / gcd(S, D))`` with ``q = S / gcd(S, D)``.
    """
    _, kernel, stride, dilation, _, out, symbol, what = _axis_of(g, axis)
    starts = first_touch_starts(out, kernel, stride, dilation)
    return Quantity.of(
        f"U_{symbol}", run_sum([(out - start, 1) for start in starts], "first"),
        formula=f"sum over kernel {what}s of the padded {what}s each is the first to reach",
        note=f"padded {what}s o x S + k x D that some tap reaches",
    )


def reached_input_positions(g: ConvGeometry, axis: int) -> Quantity:
    """``V_H`` (``axis`` 0) or ``V_W``: input rows (columns) that at least one real tap reaches.

    The padded rows each kernel row reaches first (see :func:`reached_padded_positions`),
    counted only where they are real input rows.
    """
    size, kernel, stride, dilation, pad, out, symbol, what = _axis_of(g, axis)
    firsts = []
    for k, start in enumerate(first_touch_starts(out, kernel, stride, dilation)):
        lo, hi = tap_output_range(size, k, stride, pad, dilation, out)
        firsts.append((max(0, hi - max(lo, start)), 1))
    return Quantity.of(
        f"V_{symbol}", run_sum(firsts, "first"),
        formula=f"sum over kernel {what}s of the input {what}s each is the first to reach",
        note=f"input {what}s that some tap on real input reaches",
    )


def real_kernel_positions(g: ConvGeometry, axis: int) -> Quantity:
    """``K'_H`` (``axis`` 0) or ``K'_W``: kernel rows (columns) that land on real input for at least one
    output row (column)."""
    size, kernel, stride, dilation, pad, out, symbol, what = _axis_of(g, axis)
    real = sum(1 for k in range(kernel) if len(range(*tap_output_range(size, k, stride, pad, dilation, out))))
    return Quantity.of(f"K'_{symbol}", Leaf(real, f"K'_{symbol}"),
                       formula=f"kernel {what}s that land on real input for some output {what}",
                       note=f"of K{symbol} = {kernel}")


def _check_gradient(wrt: object) -> str:
    if not isinstance(wrt, str) or wrt not in GRADIENTS:
        raise ConvArgumentError("wrt", f"one of {', '.join(map(repr, GRADIENTS))}", repr(wrt))
    return wrt


def _no_bias_gradient(label: str) -> Quantity:
    return Quantity.of(label, Leaf(0, "0"), note="the layer has no bias, so no bias gradient")


def _per_part(label: str, function, s: SeparableGeometry, wrt: str, convention: str) -> Quantity:
    """``function`` of both parts of a separable layer, summed.  Each part's ``"input"`` gradient is
    the gradient of that part's input: the pointwise part's is the depthwise output's."""
    return _sum_of_parts(label, function(s.depthwise, wrt, convention), function(s.pointwise, wrt, convention),
                         note=f"both parts' {wrt} gradients")


def backward_mults(g: ConvGeometry | SeparableGeometry, wrt: str, convention: str = "dense") -> Quantity:
    """Multiplications of one gradient: the forward ``mults`` for ``"input"`` and ``"weight"``, 0 for
    ``"bias"``.

    Every forward tap ``x[n, c, ih, iw] x weight[co, ci, kh, kw]`` gives one product to each:
    ``grad_y x weight`` to the input gradient at ``(n, c, ih, iw)``, ``grad_y x x`` to the
    weight gradient at ``(co, ci, kh, kw)``.  For a separable layer, the sum of its parts'
    (``"input"``: the pointwise part's input gradient, which the depthwise part's needs, and the
    depthwise part's).
    """
    label = f"{_check_gradient(wrt)} gradient mults"
    _check_convention(convention)
    if isinstance(g, SeparableGeometry):
        return _per_part(label, backward_mults, g, wrt, convention)
    if wrt == "bias":
        if not g.bias:
            return _no_bias_gradient(label)
        return Quantity.of(label, Leaf(0, "0"), note="the bias gradient sums grad_y: no products")
    forward = mults(g, convention)
    factor = "weight" if wrt == "input" else "input"
    return dataclasses.replace(
        forward, label=label,
        note=f"{forward.note}; one product grad_y x {factor} per forward tap, as many as forward",
    )


def backward_adds(g: ConvGeometry | SeparableGeometry, wrt: str, convention: str = "dense") -> Quantity:
    """Additions of one gradient: its products minus the gradient elements that get a term.

    * input, dense: ``mults - N x C_in x U_H x U_W`` (summed on the padded input, then cropped);
    * input, effective: ``mults - N x C_in x V_H x V_W``;
    * weight, dense: ``mults - C_out x C_in/g x KH x KW``; effective: ``K'_H x K'_W`` taps
      (0 reached weights for an empty batch);
    * bias: ``C_out x (N x OH x OW - 1)`` (0 for an empty batch), in either convention;
    * a separable layer: the sum of its parts'.
    """
    label = f"{_check_gradient(wrt)} gradient adds"
    _check_convention(convention)
    if isinstance(g, SeparableGeometry):
        return _per_part(label, backward_adds, g, wrt, convention)
    if wrt == "bias":
        if not g.bias:
            return _no_bias_gradient(label)
        if g.batch == 0:
            return Quantity.of(label, Leaf(0, "0"), note="an empty batch: nothing to sum")
        oh, ow = _out_leaves(g)
        terms = Group(Difference(product(_batch(g), oh, ow), Leaf(1, "1")))
        return Quantity.of(label, Product(Leaf(g.out_channels, "C_out"), terms),
                           note="each bias sums grad_y over N x OH x OW positions")
    m = backward_mults(g, wrt, convention)
    if wrt == "input":
        if convention == "dense":
            per_axis = (reached_padded_positions(g, 0), reached_padded_positions(g, 1))
            where = "padded input positions some tap reaches (summed there, then cropped)"
        else:
            per_axis = (reached_input_positions(g, 0), reached_input_positions(g, 1))
            where = "input positions some real tap reaches"
        reached_expr = product(_batch(g) if g.batch != 0 else Leaf(0, "N"), Leaf(g.in_channels, "C_in"),
                               per_axis[0].leaf(), per_axis[1].leaf())
    else:
        if convention == "dense":
            per_axis = ()
            taps: tuple[Expr, ...] = (Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW"))
            where = "weights (every tap gets N x OH x OW terms)"
        else:
            per_axis = (real_kernel_positions(g, 0), real_kernel_positions(g, 1))
            taps = (per_axis[0].leaf(), per_axis[1].leaf())
            where = "weights whose tap lands on real input"
        reached_expr = (product(_out_channels(g), _channels_per_group(g), *taps) if g.batch
                        else Leaf(0, "0 (empty batch)"))
    reached = Quantity.of(f"reached {wrt} gradient elements", reached_expr, details=per_axis, note=where)
    expr = Difference(m.leaf("mults"), reached.leaf("reached"))
    return Quantity.of(label, expr, details=(m, reached),
                       note="summing T terms takes T - 1 additions: mults - elements that get a term")


def backward_flops(g: ConvGeometry | SeparableGeometry, wrt: str, convention: str = "dense") -> Quantity:
    """``mults + adds`` of one gradient."""
    m, a = backward_mults(g, wrt, convention), backward_adds(g, wrt, convention)
    return Quantity.of(f"{wrt} gradient FLOPs", Sum(m.leaf("mults"), a.leaf("adds")))


def _computed(g: ConvGeometry, needs: object) -> tuple[str, ...]:
    """The gradients computed for ``needs``, in order (no bias gradient without a bias)."""
    wanted = parse_needs(needs)
    return tuple(name for name in GRADIENTS if name in wanted and (name != "bias" or g.bias))


def _gradient_total(label: str, per_gradient, g: ConvGeometry | SeparableGeometry, convention: str,
                    needs: object) -> Quantity:
    """``per_gradient`` summed over the gradients ``needs`` computes.

    A separable layer's ``needs`` are its own (``"weight"``: both weights), and each part computes
    what :func:`npconv.gradients.separable_needs` says: the pointwise part's input gradient
    whenever the depthwise part computes anything.
    """
    if isinstance(g, SeparableGeometry):
        dw_needs, pw_needs = separable_needs(parse_needs(needs))
        return _sum_of_parts(label, _gradient_total(label, per_gradient, g.depthwise, convention, dw_needs),
                             _gradient_total(label, per_gradient, g.pointwise, convention, pw_needs),
                             note="the pointwise part's input gradient is the depthwise output's gradient")
    computed = _computed(g, needs)
    parts = [per_gradient(g, name, convention) for name in computed]
    if not parts:
        return Quantity.of(label, Leaf(0, "0"), note="no gradient asked for")
    expr = parts[0].leaf() if len(parts) == 1 else Sum(*(p.leaf() for p in parts))
    return Quantity.of(label, expr, details=tuple(parts), note=f"gradients: {', '.join(computed)}")


def backward_mults_total(g: ConvGeometry | SeparableGeometry, convention: str = "dense",
                         needs: object = GRADIENTS) -> Quantity:
    """Multiplications of the gradients in ``needs`` (the bias gradient only for a layer with a bias).

    ``needs`` as in :func:`npconv.conv2d_backward` (for a separable layer, as in
    :func:`npconv.separable_conv2d_backward`).
    """
    return _gradient_total("backward mults", backward_mults, g, convention, needs)


def backward_adds_total(g: ConvGeometry | SeparableGeometry, convention: str = "dense",
                        needs: object = GRADIENTS) -> Quantity:
    """Additions of the gradients in ``needs``."""
    return _gradient_total("backward adds", backward_adds, g, convention, needs)


def _training_step(label: str, forward: Quantity, backward: Quantity) -> Quantity:
    forward = dataclasses.replace(forward, label=f"forward {forward.label}")
    expr = Sum(forward.leaf(), backward.leaf())
    details: tuple[Quantity, ...] = (forward, backward)
    if forward.value:
        passes = Quantity.of("forward passes", Ratio(Sum(forward.leaf(), backward.leaf()), forward.leaf()),
                             formula=f"({forward.label} + {backward.label}) / {forward.label}")
        details += (passes,)
    return Quantity.of(label, expr, details=details, note=(
        "a training step runs the layer forward, then its gradients: the input and the weight "
        "gradient each take one product per forward tap, so a step costs about three forward "
        "passes (two for a first layer, which needs no input gradient)"
    ))


def training_step_mults(g: ConvGeometry | SeparableGeometry, convention: str = "dense",
                        needs: object = GRADIENTS) -> Quantity:
    """Forward plus backward multiplications of one training step (``needs``: the gradients computed)."""
    return _training_step("training step mults", mults(g, convention), backward_mults_total(g, convention, needs))


def training_step_adds(g: ConvGeometry | SeparableGeometry, convention: str = "dense",
                       needs: object = GRADIENTS) -> Quantity:
    """Forward plus backward additions of one training step."""
    return _training_step("training step adds", adds(g, convention), backward_adds_total(g, convention, needs))


#: The separable layer's backward counts under their older names: the same functions.
separable_backward_mults_total = backward_mults_total
separable_backward_adds_total = backward_adds_total
separable_training_step_mults = training_step_mults

# ---------------------------------------------------------------------- fast algorithms: Winograd and FFT
#
# The counts above belong to the layer: every tap of every window (dense) or the taps that land on
# real input (effective).  A fast algorithm changes the count itself -- that is its point -- so it
# is counted under a convention of its own (npconv.counts.ALGORITHM_CONVENTIONS), and its closed
# forms below give exactly what its kernel executes and tallies (npconv.kernels.winograd,
# npconv.kernels.fft).  Symbols, beyond those of the module docstring::
#
#     m x m output tile, r x r filter, alpha = m + r - 1 transform size,
#     T_H = ceil(OH / m), T_W = ceil(OW / m) tiles, Q = T_W + 1 tile columns computed per tile row,
#     K_X, A_X: the mults and adds of one application of transform matrix X (see
#     transform_cost), H_f x W_f the FFT size, L = H_f x W_f, F = H_f x (W_f / 2 + 1) bins.


def _frac(*values: object) -> tuple[Fraction, ...]:
    return tuple(Fraction(v) for v in values)


@dataclass(frozen=True)
class WinogradTransform:
    """Winograd's minimal filtering F(m x m, r x r): ``Y = A^T [(G g G^T) * (B^T d B)] A``.

    ``d`` is an ``alpha x alpha`` input tile, ``g`` an ``r x r`` filter, ``*``
    the elementwise product of the two ``alpha x alpha`` transforms, ``Y`` the
    ``m x m`` output tile of the cross-correlation of ``d`` with ``g`` (the
    layer's operation, not a flipped convolution).  Matrices are exact
    fractions, rows of ``B^T`` (``alpha x alpha``), ``G`` (``alpha x r``) and
    ``A^T`` (``m x alpha``); those of Lavin & Gray (2016), interpolation
    points 0, +-1 (and +-2 for m = 4) and infinity.
    """

    m: int
    r: int
    input_matrix: tuple[tuple[Fraction, ...], ...]  # B^T
    filter_matrix: tuple[tuple[Fraction, ...], ...]  # G
    output_matrix: tuple[tuple[Fraction, ...], ...]  # A^T

    @property
    def alpha(self) -> int:
        return self.m + self.r - 1

    @property
    def name(self) -> str:
        return f"F({self.m}x{self.m},{self.r}x{self.r})"


WINOGRAD_TRANSFORMS: dict[int, WinogradTransform] = {
    2: WinogradTransform(
        2, 3,
        input_matrix=(_frac(1, 0, -1, 0), _frac(0, 1, 1, 0), _frac(0, -1, 1, 0), _frac(0, 1, 0, -1)),
        filter_matrix=(_frac(1, 0, 0), _frac("1/2", "1/2", "1/2"), _frac("1/2", "-1/2", "1/2"), _frac(0, 0, 1)),
        output_matrix=(_frac(1, 1, 1, 0), _frac(0, 1, -1, -1)),
    ),
    4: WinogradTransform(
        4, 3,
        input_matrix=(_frac(4, 0, -5, 0, 1, 0), _frac(0, -4, -4, 1, 1, 0), _frac(0, 4, -4, -1, 1, 0),
                      _frac(0, -2, -1, 2, 1, 0), _frac(0, 2, -1, -2, 1, 0), _frac(0, 4, 0, -5, 0, 1)),
        filter_matrix=(_frac("1/4", 0, 0), _frac("-1/6", "-1/6", "-1/6"), _frac("-1/6", "1/6", "-1/6"),
                       _frac("1/24", "1/12", "1/6"), _frac("1/24", "-1/12", "1/6"), _frac(0, 0, 1)),
        output_matrix=(_frac(1, 1, 1, 1, 1, 0), _frac(0, 1, -1, 2, -2, 0), _frac(0, 1, 1, 4, 4, 0),
                       _frac(0, 1, -1, 8, -8, 1)),
    ),
}


def combination_terms(row: tuple[Fraction, ...]) -> list[tuple[int, Fraction]]:
    """The nonzero terms ``(index, coefficient)`` of one row, in the order a kernel sums them.

    ``+1`` terms first, then the other constants, then ``-1``: the sum starts
    from a plain copy whenever the row has a ``+1``, so that every ``+-1``
    after it is one addition or subtraction and every other constant one
    multiplication (and one addition).
    """
    terms = [(j, c) for j, c in enumerate(row) if c != 0]
    return sorted(terms, key=lambda term: 0 if term[1] == 1 else 2 if term[1] == -1 else 1)


def row_cost(row: tuple[Fraction, ...]) -> tuple[int, int]:
    """``(mults, adds)`` of one row's combination, summed as :func:`combination_terms` orders it:
    ``nonzeros - 1`` additions, one multiplication per constant other than +-1, and one more when
    the first term is a -1 (the sum then starts from a negated copy)."""
    terms = combination_terms(row)
    mults = sum(1 for _, c in terms if abs(c) != 1) + (terms[0][1] == -1)
    return mults, len(terms) - 1


def transform_cost(matrix: tuple[tuple[Fraction, ...], ...], symbol: str) -> tuple[Quantity, Quantity]:
    """``K`` and ``A``: the mults and adds of applying ``matrix`` once (every row's combination),
    with the per-row working shown, e.g. ``K_B = 2 + 2 + 2 + 2 + 2 + 2 = 12``."""
    costs = [row_cost(row) for row in matrix]
    mults = Quantity.of(f"K_{symbol}", run_sum([(k, 1) for k, _ in costs], "row"),
                        formula=f"multiplications by a constant other than +-1, summed over the rows of {symbol}")
    adds = Quantity.of(f"A_{symbol}", run_sum([(a, 1) for _, a in costs], "row"),
                       formula=f"nonzero coefficients - 1, summed over the rows of {symbol}")
    return mults, adds


def winograd_unsupported(g: ConvGeometry) -> str | None:
    """Why Winograd F(m x m, 3 x 3) cannot run ``g``, or None: it needs a 3x3 kernel, stride 1 and
    dilation 1 (any padding, groups and depth multiplier)."""
    problems = []
    if (g.kernel_h, g.kernel_w) != (3, 3):
        problems.append(f"a {g.kernel_h}x{g.kernel_w} kernel")
    if g.stride != (1, 1):
        problems.append(f"stride {g.stride[0]}" if g.stride[0] == g.stride[1] else f"stride {g.stride}")
    if g.dilation != (1, 1):
        problems.append(f"dilation {g.dilation[0]}" if g.dilation[0] == g.dilation[1]
                        else f"dilation {g.dilation}")
    return None if not problems else "a layer with " + ", ".join(problems)


def _winograd_transform(g: ConvGeometry, m: int) -> WinogradTransform:
    if m not in WINOGRAD_TRANSFORMS:
        raise ConvArgumentError("m", f"an output tile size among {sorted(WINOGRAD_TRANSFORMS)}", repr(m))
    problem = winograd_unsupported(g)
    if problem is not None:
        raise ConvArgumentError("g", "a 3x3 kernel, stride 1 and dilation 1 for Winograd F(m x m, 3 x 3)",
                                problem)
    return WINOGRAD_TRANSFORMS[m]


def winograd_tiles(g: ConvGeometry, m: int) -> tuple[Quantity, Quantity]:
    """``T_H = ceil(OH / m)`` and ``T_W = ceil(OW / m)``: the output tiles along each axis.

    The last tile of a row or column may be partial: its outputs beyond
    ``OH`` (``OW``) are computed from zeros and dropped, and counted.
    """
    tiles = []
    for symbol, out, out_symbol in (("T_H", g.out_height, "OH"), ("T_W", g.out_width, "OW")):
        # ceil(OH / m) = floor((OH + m - 1) / m)
        expr = Floor(Ratio(Group(Sum(Leaf(out, out_symbol), Leaf(m - 1, "m - 1"))), Leaf(m, "m")))
        tiles.append(Quantity.of(symbol, expr, formula=f"ceil({out_symbol} / m)"))
    return tiles[0], tiles[1]


@dataclass(frozen=True)
class AlgorithmCounts:
    """A fast algorithm's closed-form counts, stage by stage, with the working.

    ``stages`` maps a stage name (the same names the kernel's
    :class:`~npconv.counts.Stage` records carry) to its ``(mults, adds)``
    quantities; ``measured`` says for each stage whether the kernel tallies
    it (True) or the numbers are an operation-count estimate (False).
    ``details`` are the sub-quantities the working refers to.
    """

    convention: str
    algorithm: str
    stages: dict[str, tuple[Quantity, Quantity]]
    measured: dict[str, bool]
    details: tuple[Quantity, ...] = ()

    def _total(self, label: str, which: int, measured: bool) -> Quantity:
        parts = [(name, q[which]) for name, q in self.stages.items() if self.measured[name] == measured]
        if not parts:
            return Quantity(label, 0, "0", "0")
        expr = Sum(*(q.leaf(name) for name, q in parts)) if len(parts) > 1 else parts[0][1].leaf(parts[0][0])
        return Quantity.of(label, expr, details=tuple(q for _, q in parts))

    @property
    def mults(self) -> Quantity:
        """Multiplications the kernel executes and tallies: the measured stages."""
        return self._total("mults", 0, True)

    @property
    def adds(self) -> Quantity:
        return self._total("adds", 1, True)

    @property
    def estimated_mults(self) -> Quantity:
        """Multiplications inside library calls, from the operation-count formula (0 for Winograd)."""
        return self._total("estimated mults", 0, False)

    @property
    def estimated_adds(self) -> Quantity:
        return self._total("estimated adds", 1, False)

    def to_dict(self) -> dict[str, object]:
        return {
            "convention": self.convention,
            "algorithm": self.algorithm,
            "mults": self.mults.to_dict(),
            "adds": self.adds.to_dict(),
            "estimated_mults": self.estimated_mults.to_dict(),
            "estimated_adds": self.estimated_adds.to_dict(),
            "stages": {name: {"mults": m.to_dict(), "adds": a.to_dict(), "measured": self.measured[name]}
                       for name, (m, a) in self.stages.items()},
            "details": {d.label: d.to_dict() for d in self.details},
        }


#: Winograd's stages, in the order the kernel runs them (the names its counts carry).
WINOGRAD_STAGES = ("filter transform", "input transform", "transform-domain products", "output transform",
                   "bias")


def winograd_counts(g: ConvGeometry, m: int) -> AlgorithmCounts:
    """What ``method="winograd"`` with ``m x m`` output tiles executes, stage by stage.

    The output is cut into ``T_H x T_W`` tiles, and every pass runs over
    ``Q = T_W + 1`` tile columns per tile row: the kernel lays each tile row
    of a channel out contiguously, and the column its last tile shares with
    the next row (see ``npconv.kernels.winograd``) costs one unused tile
    column, computed and dropped.  Counting is dense over that tiled,
    zero-padded input: padding zeros, the zeros of partial tiles and the
    unused column are transformed and multiplied like any value.

    Every transform is applied separably, rows then columns, as sparse linear
    combinations (:func:`transform_cost`: a ``+-1`` coefficient is an addition
    or subtraction, any other constant one multiplication):

    * filter transform, ``U = G g G^T``, on every call (nothing is cached: the
      weights may change between calls): ``K_G x C_out x C_in/g x (r + alpha)``
      mults (the row pass makes ``alpha`` rows of ``r`` values, the column pass
      ``alpha`` values of each of the ``alpha`` rows), the same with ``A_G`` for
      adds; nothing for an empty batch;
    * input transform, ``V = B^T d B``: the row pass runs once per tile row over
      ``m x Q`` padded columns (whole padded rows, shared by neighbouring
      tiles), the column pass per tile: ``K_B x N x C_in x T_H x Q x (m + alpha)``;
    * transform-domain products, one GEMM per transform position and group,
      ``(C_out/g x C_in/g) @ (C_in/g x N T_H Q)``:
      ``alpha^2 x N x T_H x Q x C_out x C_in/g`` mults and
      ``alpha^2 x N x T_H x Q x C_out x (C_in/g - 1)`` adds;
    * output transform, ``Y = A^T M A``, per tile and output channel:
      ``K_A x (alpha + m) x N x T_H x Q x C_out``;
    * bias, added in the output transform's last pass to every computed
      output: ``N x C_out x m^2 x T_H x Q`` adds.
    """
    t = _winograd_transform(g, m)
    alpha, r = t.alpha, t.r
    t_h, t_w = winograd_tiles(g, m)
    k_g, a_g = transform_cost(t.filter_matrix, "G")
    k_b, a_b = transform_cost(t.input_matrix, "B")
    k_a, a_a = transform_cost(t.output_matrix, "A")
    columns = Quantity.of("Q", Sum(t_w.leaf(), Leaf(1, "1")), formula="T_W + 1",
                          note="tile columns computed per tile row, the last one unused")
    n, c_in, c_out, cg = Leaf(g.batch, "N"), Leaf(g.in_channels, "C_in"), _out_channels(g), _channels_per_group(g)
    alpha_leaf, m_leaf, r_leaf = Leaf(alpha, "alpha"), Leaf(m, "m"), Leaf(r, "r")
    tiles = (t_h.leaf(), columns.leaf())

    def per(cost: Quantity, *factors: Expr) -> Quantity:
        return Quantity.of(cost.label.replace("K_", "mults with K_").replace("A_", "adds with A_"),
                           Product(cost.leaf(), *factors))

    def zero(label: str, note: str = "") -> Quantity:
        return Quantity(label, 0, "0", "0", note=note)

    filter_size = (c_out, cg, Group(Sum(r_leaf, alpha_leaf)))
    input_size = (n, c_in, *tiles, Group(Sum(m_leaf, alpha_leaf)))
    output_size = (Group(Sum(alpha_leaf, m_leaf)), n, *tiles, c_out)
    square = Product(alpha_leaf, alpha_leaf)
    products = Quantity.of("products", Product(square, n, *tiles, c_out, cg))
    if g.in_channels_per_group == 1:
        product_adds = zero("adds", "C_in/g = 1: a product per output, nothing to sum")
    else:
        product_adds = Quantity.of("adds", Product(square, n, *tiles, c_out, Group(Difference(cg, Leaf(1, "1")))))
    bias_adds = (Quantity.of("bias adds", Product(n, c_out, Product(m_leaf, m_leaf), *tiles)) if g.bias
                 else zero("bias adds", "no bias"))
    if g.batch == 0:
        filter_stage = (zero("mults", "an empty batch: nothing is run"), zero("adds"))
    else:
        filter_stage = (per(k_g, *filter_size), per(a_g, *filter_size))
    stages = {
        "filter transform": filter_stage,
        "input transform": (per(k_b, *input_size), per(a_b, *input_size)),
        "transform-domain products": (products, product_adds),
        "output transform": (per(k_a, *output_size), per(a_a, *output_size)),
        "bias": (zero("bias mults"), bias_adds),
    }
    return AlgorithmCounts("winograd", t.name, stages, dict.fromkeys(stages, True),
                           details=(t_h, t_w, columns, k_g, a_g, k_b, a_b, k_a, a_a))


def winograd_mults(g: ConvGeometry, m: int) -> Quantity:
    """Winograd F(m x m, 3 x 3)'s multiplications: the sum of :func:`winograd_counts`' stages."""
    return winograd_counts(g, m).mults


def winograd_adds(g: ConvGeometry, m: int) -> Quantity:
    return winograd_counts(g, m).adds


# ---------------------------------------------------------------------- FFT


#: Prime factors of the FFT sizes chosen: numpy.fft (pocketfft) is fastest on such sizes.
FFT_RADICES = (2, 3, 5)


def fft_length(n: int) -> int:
    """The smallest ``L >= n`` whose prime factors are all in :data:`FFT_RADICES`."""
    length = max(1, n)
    while True:
        rest = length
        for p in FFT_RADICES:
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return length
        length += 1


def fft_unsupported(g: ConvGeometry) -> str | None:
    """Why FFT convolution cannot run ``g``, or None: it needs stride 1 (any kernel, padding,
    dilation and groups)."""
    if g.stride != (1, 1):
        return f"a layer with stride {g.stride[0] if g.stride[0] == g.stride[1] else g.stride}"
    return None


def fft_shape(g: ConvGeometry) -> tuple[int, int]:
    """``(H_f, W_f)``: the FFT size, the padded input ``H + P_top + P_bottom`` (and along W)
    rounded up by :func:`fft_length`.

    A circular correlation of that length equals the zero-padded one on every
    output kept: output ``o`` reads padded positions ``o .. o + D x (K - 1)``,
    all below the padded length, so nothing wraps around.
    """
    return (fft_length(g.height + sum(g.padding[0])), fft_length(g.width + sum(g.padding[1])))


def _log2(value: int) -> Fraction:
    """``log2(value)`` to 6 decimals, as an exact fraction (the estimate needs no more)."""
    import math

    return Fraction(round(math.log2(value) * 10**6), 10**6)


#: FFT stages, in the order the kernel runs them.
FFT_STAGES = ("filter DFT", "input FFT", "frequency-domain products", "frequency-domain accumulation",
              "inverse FFT", "bias")


def _fft_estimate(label: str, real_rows: Expr, real_length: int, complex_columns: Expr,
                  complex_length: int) -> tuple[Quantity, Quantity]:
    """The estimated ``(mults, adds)`` of ``real_rows`` real FFTs of ``real_length`` points and
    ``complex_columns`` complex FFTs of ``complex_length`` points (see :func:`fft_counts`)."""
    w_log = Leaf(_log2(real_length), "log2 W_f")
    h_log = Leaf(_log2(complex_length), "log2 H_f")
    real_w, complex_h = Leaf(real_length, "W_f"), Leaf(complex_length, "H_f")
    result = []
    for kind, real_factor, complex_factor in (("mults", Leaf(1, "1"), Leaf(2, "2")),
                                              ("adds", Leaf(Fraction(3, 2), "1.5"), Leaf(3, "3"))):
        expr = Sum(Product(real_rows, real_factor, real_w, w_log),
                   Product(complex_columns, complex_factor, complex_h, h_log))
        q = Quantity.of(f"estimated {kind}", expr, note=f"{label}: an operation-count estimate, not a tally")
        result.append(dataclasses.replace(q, value=round(q.value)))
    return result[0], result[1]


def fft_counts(g: ConvGeometry) -> AlgorithmCounts:
    """What ``method="fft"`` executes (measured stages) and what its FFTs cost (estimated stages).

    Measured, from the shapes of the complex products the kernel makes:

    * frequency-domain products: for every bin of the ``F = H_f x (W_f/2 + 1)``
      of a real 2-D FFT, every image, output channel and input channel of its
      group, one complex product, counted as NumPy and the BLAS it calls
      execute it, ``(a + bi)(c + di) = (ac - bd) + (ad + bc)i``: 4 real mults
      and 2 real adds (not the 3-mult, 5-add form, a separate BLAS routine
      NumPy does not call): ``4 x N x C_out x C_in/g x F`` mults and ``2 x`` that
      product count adds;
    * frequency-domain accumulation: summing the ``C_in/g`` products of a bin
      takes ``C_in/g - 1`` complex additions, 2 real adds each;
    * bias: ``N x C_out x OH x OW`` adds, on the output.

    * filter DFT, on every call (nothing is cached): a filter has only ``KH x KW``
      taps in its ``H_f x W_f`` plane, so its spectrum is a direct DFT by matrix
      products, rows (real taps times complex twiddles: two real GEMMs,
      ``2 x C_out x C_in/g x KH x KW x (W_f/2 + 1)`` mults and
      ``2 x C_out x C_in/g x KH x (KW - 1) x (W_f/2 + 1)`` adds) then columns
      (one complex GEMM per column frequency: ``C_out x C_in/g x KH x F``
      complex products, 4 mults and 2 adds each, and
      ``C_out x C_in/g x (KH - 1) x F`` complex additions, 2 adds each);

    Estimated (the transforms run inside ``scipy.fft`` or ``numpy.fft``, where
    no tally reaches), from the standard operation count of a radix-2
    Cooley-Tukey FFT: ``L/2 x log2 L`` butterflies of one complex multiplication (4 mults,
    2 adds) and two complex additions (4 adds), so ``2 L log2 L`` mults and
    ``3 L log2 L`` adds for ``L`` complex points (FFTW's ``5 L log2 L`` flops),
    half that, ``L log2 L`` and ``1.5 L log2 L``, for ``L`` real points.  The
    kernel transforms rows (real, ``W_f`` points) and then columns (complex,
    ``H_f`` points, ``W_f/2 + 1`` of them), and only the rows that are not all
    zero (or, inverse, that it keeps):

    * input FFT: ``N x C_in`` planes of ``H`` rows;
    * inverse FFT: ``N x C_out`` planes, of which ``OH`` rows are kept.

    Each estimate is rounded to whole operations.  pocketfft's mixed-radix
    transforms of these sizes do not execute exactly this count: these stages
    are labelled estimated and never added to the measured ``mults``, ``adds``.
    """
    problem = fft_unsupported(g)
    if problem is not None:
        raise ConvArgumentError("g", "a stride-1 layer for FFT convolution", problem)
    h_f, w_f = fft_shape(g)
    half = w_f // 2 + 1
    bins = Quantity.of("F", Product(Leaf(h_f, "H_f"), Group(Sum(Floor(Ratio(Leaf(w_f, "W_f"), Leaf(2, "2"))),
                                                                 Leaf(1, "1")))))
    half_leaf = Leaf(half, "(W_f/2 + 1)")
    n, c_in, c_out, cg = Leaf(g.batch, "N"), Leaf(g.in_channels, "C_in"), _out_channels(g), _channels_per_group(g)
    stages: dict[str, tuple[Quantity, Quantity]] = {}

    def zero(label: str, note: str = "") -> Quantity:
        return Quantity(label, 0, "0", "0", note=note)

    kh, kw, filters = Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW"), (c_out, cg)
    if g.batch == 0:
        stages["filter DFT"] = (zero("mults", "an empty batch: nothing is run"), zero("adds"))
    else:
        bins_leaf = bins.leaf()
        one = Leaf(1, "1")
        stages["filter DFT"] = (
            Quantity.of("mults", Sum(Product(Leaf(2, "2"), *filters, kh, kw, half_leaf),
                                     Product(Leaf(4, "4"), *filters, kh, bins_leaf))),
            Quantity.of("adds", Sum(Product(Leaf(2, "2"), *filters, kh, Group(Difference(kw, one)), half_leaf),
                                    Product(Leaf(2, "2"), *filters, kh, bins_leaf),
                                    Product(Leaf(2, "2"), *filters, Group(Difference(kh, one)), bins_leaf))),
        )
    stages["input FFT"] = _fft_estimate("input FFT", Product(n, c_in, Leaf(g.height, "H")), w_f,
                                        Product(n, c_in, half_leaf), h_f)
    complex_products = Product(n, c_out, cg, bins.leaf())
    stages["frequency-domain products"] = (
        Quantity.of("mults", Product(Leaf(4, "4"), complex_products)),
        Quantity.of("adds", Product(Leaf(2, "2"), complex_products)),
    )
    if g.in_channels_per_group == 1:
        accumulation = zero("adds", "C_in/g = 1: one product per bin, nothing to sum")
    else:
        accumulation = Quantity.of("adds", Product(Leaf(2, "2"), n, c_out, Group(Difference(cg, Leaf(1, "1"))),
                                                   bins.leaf()))
    stages["frequency-domain accumulation"] = (zero("mults"), accumulation)
    oh, ow = _out_leaves(g)
    stages["inverse FFT"] = _fft_estimate("inverse FFT", Product(n, c_out, oh), w_f, Product(n, c_out, half_leaf), h_f)
    bias_adds = Quantity.of("bias adds", product(n, c_out, oh, ow)) if g.bias else zero("bias adds", "no bias")
    stages["bias"] = (zero("bias mults"), bias_adds)
    estimated = ("input FFT", "inverse FFT")
    return AlgorithmCounts("fft", f"rfft2 {h_f}x{w_f}", stages, {k: k not in estimated for k in stages},
                           details=(bins,))


# ---------------------------------------------------------------------- the fast methods by name

#: The output tile ``method="winograd"`` uses: F(2x2,3x3), measured the faster on the benchmark set
#: (see ``npconv.kernels.winograd.default_tile``).
WINOGRAD_DEFAULT_TILE = 2

#: ``method=`` name -> its output tile ``m``, for the Winograd methods.
WINOGRAD_METHOD_TILES = {"winograd": WINOGRAD_DEFAULT_TILE, "winograd2": 2, "winograd4": 4}

#: The methods whose counts are their own, each with its convention.
ALGORITHM_METHODS = {**dict.fromkeys(WINOGRAD_METHOD_TILES, "winograd"), "fft": "fft"}


def algorithm_unsupported(g: ConvGeometry, method: str) -> str | None:
    """Why the fast ``method`` cannot run ``g``, or None."""
    if method == "fft":
        return fft_unsupported(g)
    return winograd_unsupported(g)


def algorithm_counts(g: ConvGeometry, method: str, algorithm: str = "") -> AlgorithmCounts:
    """The closed-form counts of fast ``method`` (a key of :data:`ALGORITHM_METHODS`) on ``g``.

    ``algorithm``, when given (``Counts.algorithm`` of a run, e.g. ``"F(4x4,3x3)"``), says which
    Winograd tile ran, whatever the method's name.
    """
    if method not in ALGORITHM_METHODS:
        raise ConvArgumentError("method", f"one of {', '.join(map(repr, ALGORITHM_METHODS))}", repr(method))
    if method == "fft":
        return fft_counts(g)
    tiles = {t.name: m for m, t in WINOGRAD_TRANSFORMS.items()}
    return winograd_counts(g, tiles.get(algorithm, WINOGRAD_METHOD_TILES[method]))
