"""The classic misconceptions about convolution arithmetic: one catalogue, each entry with the wrong
formula it leads to and the words that explain it to a student.

A :class:`Misconception` changes one ingredient of the closed forms -- the output length, the output
channels, the kernel volume, the bias, what is counted -- through a *hook* (:data:`HOOKS` names
them).  :func:`variant` evaluates a claim's quantity with the hook in place, as an expression tree
with the formulas' symbols (``floor((H + P_top + P_bottom - KH) / S)`` without its ``+ 1``), so that
``npconv check`` can both match a value against it and recognise it in a student's written working.

The kit below builds *dense* closed forms only (a misconception is looked for under dense counting);
without a hook it gives exactly :mod:`npconv.formulas`' values (``tests/test_check_table.py`` holds it
to that).  The right formulas live in :mod:`npconv.formulas`; the wrong ones live here.
Pure Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

from npconv import quantities as Q
from npconv._expr import Difference, Expr, Floor, Group, Leaf, Product, Ratio, Sum, product
from npconv.expressions import Ceil
from npconv.geometry import ConvGeometry

ONE = Leaf(1, "1")


@dataclass(frozen=True)
class Misconception:
    """One classic mistake: ``title`` names it in a student's words, ``explanation`` says what is right.

    ``kinds`` are the quantities it can explain (``output`` stands for every output length and shape);
    ``hooks`` replace ingredients of the closed forms (see :data:`HOOKS`).
    """

    name: str
    title: str
    explanation: str
    kinds: frozenset[str]
    hooks: Mapping[str, Callable] = field(default_factory=dict)


def _length(body: Callable[[Expr, Expr], Expr]) -> Callable:
    """A length hook from ``body(padded_minus_span, stride)``; ``padded_minus_span`` is ``H + P + P - K``."""
    return lambda size, before, after, span, stride: body(Group(Difference(Sum(size, before, after), span)), stride)


_OUTPUT = frozenset({"output"})
_COUNTS = frozenset({"mults", "macs", "adds", "flops"})
_WEIGHTS = frozenset({"params"}) | _COUNTS

#: The catalogue, in the order a tie between two misconceptions is broken.
CATALOGUE: tuple[Misconception, ...] = (
    # ----------------------------------------------------------------- output size
    Misconception(
        "padding_once", "P instead of 2P (padding counted on one side only)",
        "padding P is added on both sides, top and bottom: the padded height is H + 2P",
        _OUTPUT | _COUNTS,
        {"length": lambda size, before, after, span, stride:
            Sum(Floor(Ratio(Group(Difference(Sum(size, before), span)), stride)), ONE)}),
    Misconception(
        "forgot_plus_one", "forgot the + 1",
        "the windows are one more than the steps between them: OH = floor((H + 2P - K) / S) + 1",
        _OUTPUT | _COUNTS,
        {"length": _length(lambda span, s: Floor(Ratio(span, s)))}),
    Misconception(
        "plus_one_twice", "added the + 1 twice",
        "the + 1 (the first window) is added once: OH = floor((H + 2P - K) / S) + 1",
        _OUTPUT | _COUNTS,
        {"length": _length(lambda span, s: Sum(Floor(Ratio(span, s)), ONE, ONE))}),
    Misconception(
        "forgot_stride", "forgot to divide by the stride",
        "a stride S moves the window S pixels at a time: OH = floor((H + 2P - K) / S) + 1",
        _OUTPUT | _COUNTS,
        {"length": _length(lambda span, s: Sum(span, ONE))}),
    Misconception(
        "ceil_not_floor", "rounded up instead of down",
        "a window that would run past the edge is not computed: round (H + 2P - K) / S down (floor)",
        _OUTPUT | _COUNTS,
        {"length": _length(lambda span, s: Sum(Ceil(Ratio(span, s)), ONE))}),
    Misconception(
        "stride_on_kernel", "stride applied to the kernel (as a dilation would be)",
        "the stride spaces the windows, it does not spread the kernel: OH = floor((H + 2P - K) / S) + 1",
        _OUTPUT | _COUNTS,
        {"length": lambda size, before, after, span, stride:
            Difference(Sum(size, before, after), Product(stride, Group(Difference(span, ONE))))
            if isinstance(span, Leaf) else None}),
    Misconception(
        "kernel_not_subtracted", "did not subtract the kernel size",
        "the window must fit inside the padded input: OH = floor((H + 2P - K) / S) + 1",
        _OUTPUT | _COUNTS,
        {"length": lambda size, before, after, span, stride:
            Floor(Ratio(Group(Sum(size, before, after)), stride))}),
    Misconception(
        "dilation_ignored", "ignored the dilation",
        "a dilation D spreads a K-tap kernel over D x (K - 1) + 1 pixels",
        _OUTPUT | _COUNTS,
        {"span": lambda kernel, dilation: kernel}),
    # ----------------------------------------------------------------- channels and kernel volume
    Misconception(
        "c_out_equals_c_in", "output channels equal to input channels",
        "a standard (or pointwise) layer has one output channel per filter: C_out, not C_in",
        _OUTPUT | _WEIGHTS,
        {"channels": lambda g, part: Leaf(g.in_channels, "C_in") if part in ("standard", "pointwise") else None}),
    Misconception(
        "forgot_c_in", "forgot C_in in the kernel volume",
        "each filter spans every input channel: KH x KW x C_in weights, not KH x KW",
        _WEIGHTS,
        {"volume": lambda g, part: Product(Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW"))
            if part in ("standard", "pointwise") and g.in_channels_per_group > 1 else None}),
    Misconception(
        "kernel_side_not_area", "K instead of K x K",
        "a K x K kernel has K x K taps per channel (KH x KW), not K",
        _WEIGHTS,
        {"volume": lambda g, part: Product(Leaf(g.kernel_h, "KH"), _channels_per_group(g))
            if g.kernel_w > 1 else None}),
    Misconception(
        "depthwise_one_filter", "one filter for depthwise instead of C_in",
        "depthwise convolution has one K x K filter per input channel: C_in filters",
        _OUTPUT | _WEIGHTS,
        {"channels": lambda g, part: ONE if part == "depthwise" and g.out_channels > 1 else None}),
    Misconception(
        "depthwise_full_depth", "depthwise filters spanning every channel",
        "a depthwise filter sees one channel only: KH x KW weights, not KH x KW x C_in",
        _WEIGHTS,
        {"volume": lambda g, part: Product(Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW"),
                                           Leaf(g.in_channels, "C_in"))
            if part == "depthwise" and g.in_channels > 1 else None}),
    Misconception(
        "pointwise_kxk", "pointwise filters taken as K x K",
        "the pointwise part is a 1 x 1 convolution: 1 x 1 x C_in weights per filter",
        _WEIGHTS,
        {"pointwise_kernel": True}),
    # ----------------------------------------------------------------- bias
    Misconception(
        "bias_forgotten", "bias forgotten",
        "each filter has one bias: (KH x KW x C_in + 1) x C_out parameters",
        frozenset({"params"}),
        {"bias": lambda weights, out, positions, has_bias: Product(Group(weights), out) if has_bias else None}),
    Misconception(
        "bias_per_position", "bias counted per output position",
        "a filter's bias is one number, shared by all its output positions: + C_out, not + OH x OW x C_out",
        frozenset({"params"}),
        {"bias": lambda weights, out, positions, has_bias:
            Sum(Product(Group(weights), out), Product(*positions, out)) if has_bias else None}),
    Misconception(
        "bias_added", "a bias counted where the layer has none",
        "the question's layer has no bias here: (KH x KW x C_in) x C_out parameters",
        frozenset({"params"}),
        {"bias": lambda weights, out, positions, has_bias:
            Product(Group(Sum(weights, ONE)), out) if not has_bias else None}),
    # ----------------------------------------------------------------- what is counted
    Misconception(
        "mults_as_flops", "FLOPs counted where multiplications were asked (a factor 2)",
        "a multiply-accumulate is one multiplication and one addition: mults are half the FLOPs",
        frozenset({"mults", "macs"}),
        {"count": lambda kind, mults, flops: Product(Leaf(2, "2"), mults) if kind in ("mults", "macs") else None}),
    Misconception(
        "flops_as_macs", "MACs counted where FLOPs were asked (a factor 2)",
        "FLOPs count the additions too: mults + adds, about twice the multiply-accumulates",
        frozenset({"flops"}),
        {"count": lambda kind, mults, flops: mults if kind == "flops" else None}),
    Misconception(
        "flops_as_2macs", "FLOPs taken as 2 x MACs",
        "without a bias each output sums its products with one addition fewer: FLOPs = 2 x mults - outputs",
        frozenset({"flops"}),
        {"count": lambda kind, mults, flops: Product(Leaf(2, "2"), mults) if kind == "flops" else None}),
    Misconception(
        "bias_as_multiplication", "the bias counted as a multiplication",
        "the bias is added, not multiplied: OH x OW x C_out x KH x KW x C_in multiplications",
        frozenset({"mults", "macs"}),
        {"mults": lambda f: product(f["n"], *f["positions"], f["out"], Group(Sum(f["volume"], ONE)))
            if f["bias"] else None}),
    Misconception(
        "forgot_c_out_in_mults", "multiplications of one filter only (forgot C_out)",
        "every filter slides over the input: OH x OW x C_out x KH x KW x C_in multiplications",
        frozenset({"mults", "macs"}),
        {"mults": lambda f: product(f["n"], *f["positions"], f["volume"]) if f["out"].value() > 1 else None}),
    Misconception(
        "forgot_positions", "multiplications of one output position only (forgot OH x OW)",
        "the filter is applied at every output position: OH x OW x C_out x KH x KW x C_in multiplications",
        frozenset({"mults", "macs"}),
        {"mults": lambda f: product(f["n"], f["out"], f["volume"])}),
    # ----------------------------------------------------------------- separable layers and ratios
    Misconception(
        "depthwise_left_out", "left out the depthwise part",
        "a separable layer is depthwise then pointwise: its count is the sum of both parts",
        _WEIGHTS,
        {"separable": lambda dw, pw: pw}),
    Misconception(
        "pointwise_left_out", "left out the pointwise part",
        "a separable layer is depthwise then pointwise: its count is the sum of both parts",
        _WEIGHTS,
        {"separable": lambda dw, pw: dw}),
    Misconception(
        "inverse_ratio", "the inverse ratio (standard / separable)",
        "the ratio asked is separable / standard, a number below 1 (its inverse says how many times fewer)",
        frozenset({"ratio"}),
        {"ratio": lambda separable, standard: Ratio(standard, separable)}),
    Misconception(
        "mobilenet_k_not_k2", "1 / K instead of 1 / K^2 in the reduction",
        "the depthwise part saves a factor of the kernel's area: 1 / C_out + 1 / (KH x KW)",
        frozenset({"ratio"}),
        {"mobilenet_kernel": lambda kh, kw: kh}),
)

BY_NAME: Mapping[str, Misconception] = MappingProxyType({m.name: m for m in CATALOGUE})

#: The hooks a misconception may set, each replacing one ingredient of the closed forms.
HOOKS = ("length", "span", "channels", "volume", "pointwise_kernel", "bias", "count", "mults", "separable",
         "ratio", "mobilenet_kernel")


# ---------------------------------------------------------------------- the kit: dense closed forms with hooks


def _channels_per_group(g: ConvGeometry) -> Leaf:
    return Leaf(g.in_channels_per_group, "C_in" if g.groups == 1 else "C_in/g")


def _axis_symbol(base: str, pair: tuple[int, int], axis: int) -> str:
    return base if pair[0] == pair[1] else f"{base}_{'HW'[axis]}"


class _Kit:
    """The dense closed forms of one question with a misconception's hooks in place (none: the right ones)."""

    def __init__(self, layers: Q.Layers, hooks: Mapping[str, Callable]):
        self.layers, self.hooks = layers, hooks

    def _hook(self, name: str, *args):
        hook = self.hooks.get(name)
        return None if hook is None else hook(*args)

    def length(self, g: ConvGeometry, axis: int) -> Expr:
        size = Leaf(g.height, "H") if axis == 0 else Leaf(g.width, "W")
        kernel = Leaf(g.kernel_h, "KH") if axis == 0 else Leaf(g.kernel_w, "KW")
        names = ("P_top", "P_bottom") if axis == 0 else ("P_left", "P_right")
        before, after = (Leaf(p, n) for p, n in zip(g.padding[axis], names, strict=True))
        stride = Leaf(g.stride[axis], _axis_symbol("S", g.stride, axis))
        dilation = Leaf(g.dilation[axis], _axis_symbol("D", g.dilation, axis))
        span = self._hook("span", kernel, dilation)
        if span is None:
            span = kernel if dilation.number == 1 else Sum(Product(dilation, Group(Difference(kernel, ONE))), ONE)
        custom = self._hook("length", size, before, after, span, stride)
        if custom is not None:
            return custom
        return Sum(Floor(Ratio(Group(Difference(Sum(size, before, after), span)), stride)), ONE)

    def positions(self, part: str) -> tuple[Expr, Expr]:
        g = self.layers.spatial(part)
        oh, ow = self.length(g, 0), self.length(g, 1)
        return Leaf(oh.value(), "OH"), Leaf(ow.value(), "OW")

    def channels(self, g: ConvGeometry, part: str) -> Leaf:
        custom = self._hook("channels", g, part)
        if custom is not None:
            return custom
        if part == "depthwise":
            return Leaf(g.out_channels, "C_in" if g.depth_multiplier == 1 else "m x C_in")
        return Leaf(g.out_channels, "C_out")

    def volume(self, g: ConvGeometry, part: str) -> Expr:
        if part == "pointwise" and self.hooks.get("pointwise_kernel"):
            k = self.layers.standard
            return Product(Leaf(k.kernel_h, "KH"), Leaf(k.kernel_w, "KW"), _channels_per_group(g))
        custom = self._hook("volume", g, part)
        if custom is not None:
            return custom
        return Product(Leaf(g.kernel_h, "KH"), Leaf(g.kernel_w, "KW"), _channels_per_group(g))

    def params(self, part: str) -> Expr:
        if part == "separable":
            return self._separable("params")
        g = self.layers.part(part)
        weights, out = self.volume(g, part), self.channels(g, part)
        custom = self._hook("bias", weights, out, self.positions(part), g.bias)
        if custom is not None:
            return custom
        return Product(Group(Sum(weights, ONE) if g.bias else weights), out)

    def _factors(self, part: str) -> dict[str, object]:
        g = self.layers.part(part)
        return {"n": None if g.batch == 1 else Leaf(g.batch, "N"), "positions": self.positions(part),
                "out": self.channels(g, part), "volume": self.volume(g, part), "bias": g.bias}

    def mults(self, part: str) -> Expr:
        if part == "separable":
            return self._separable("mults")
        f = self._factors(part)
        custom = self._hook("mults", f)
        if custom is not None:
            return custom
        return product(f["n"], *f["positions"], f["out"], f["volume"])

    def adds(self, part: str) -> Expr:
        if part == "separable":
            return self._separable("adds")
        mults = Leaf(self.mults(part).value(), "mults")
        f = self._factors(part)
        if f["bias"]:
            return mults
        return Difference(mults, Leaf(product(f["n"], *f["positions"], f["out"]).value(), "outputs"))

    def flops(self, part: str) -> Expr:
        if part == "separable":
            return self._separable("flops")
        return Sum(Leaf(self.mults(part).value(), "mults"), Leaf(self.adds(part).value(), "adds"))

    def _separable(self, kind: str) -> Expr:
        dw = Leaf(getattr(self, kind)("depthwise").value(), f"depthwise {kind}")
        pw = Leaf(getattr(self, kind)("pointwise").value(), f"pointwise {kind}")
        custom = self._hook("separable", dw, pw)
        return custom if custom is not None else Sum(dw, pw)

    def count(self, part: str, kind: str) -> Expr:
        measured = "mults" if kind == "macs" else kind
        expr = getattr(self, measured)(part)
        mults = Leaf(self.mults(part).value(), "MACs" if kind == "flops" else "mults")
        custom = self._hook("count", kind, mults, expr)
        return custom if custom is not None else expr

    def ratio(self, kind: str) -> Expr:
        if kind == "mobilenet":
            s = self.layers.separable
            kh, kw = Leaf(s.depthwise.kernel_h, "KH"), Leaf(s.depthwise.kernel_w, "KW")
            area = self._hook("mobilenet_kernel", kh, kw) or Group(Product(kh, kw))
            m = Leaf(s.depth_multiplier, "m") if s.depth_multiplier != 1 else ONE
            return Sum(Ratio(m, Leaf(s.pointwise.out_channels, "C_out")), Ratio(m, area))
        separable = Leaf(self.count("separable", kind).value(), f"separable {kind}")
        standard = Leaf(self.count("standard", kind).value(), f"standard {kind}")
        custom = self._hook("ratio", separable, standard)
        return custom if custom is not None else Ratio(separable, standard)

    def shape(self, part: str, kind: str) -> tuple[int, ...]:
        g = self.layers.spatial(part)
        oh, ow = self.length(g, 0).value(), self.length(g, 1).value()
        if kind == "output_size":
            return oh, ow
        layer = self.layers.part(part)
        if part == "separable":
            channels = self.channels(layer.pointwise, "pointwise").value()
        else:
            channels = self.channels(layer, part).value()
        n = self.layers.standard.batch
        return (oh, ow, channels) if n == 1 else (n, oh, ow, channels)

    def quantity(self, part: str, kind: str) -> Expr | tuple[int, ...]:
        if part == "ratio":
            return self.ratio(kind)
        if kind in ("output", "output_size"):
            return self.shape(part, kind)
        if kind in ("output_height", "output_width"):
            return self.length(self.layers.spatial(part), 0 if kind == "output_height" else 1)
        if kind == "params":
            return self.params(part)
        return self.count(part, kind)


def _value(result: Expr | tuple[int, ...]) -> Fraction | int | tuple[int, ...]:
    return result if isinstance(result, tuple) else result.value()


def _valid(value: object) -> bool:
    if isinstance(value, tuple):
        return all(isinstance(v, int) and v >= 1 for v in value)
    return value > 0


def _family(kind: str, part: str) -> str:
    if part == "ratio":
        return "ratio"
    return "output" if kind.startswith("output") else kind


def right(layers: Q.Layers, part: str, kind: str) -> Expr | tuple[int, ...]:
    """The dense closed form of ``part.kind`` with no misconception (equal to :mod:`npconv.formulas`')."""
    return _Kit(layers, {}).quantity(part, kind)


def variant(layers: Q.Layers, part: str, kind: str, misconception: Misconception) -> Expr | tuple[int, ...] | None:
    """``part.kind`` as ``misconception`` computes it (dense counting), or None where it changes nothing
    or gives no valid layer (an output of no pixels, a fractional count)."""
    if _family(kind, part) not in misconception.kinds:
        return None
    try:
        wrong = _Kit(layers, misconception.hooks).quantity(part, kind)
        wrong_value = _value(wrong)
        if not _valid(wrong_value) or wrong_value == _value(right(layers, part, kind)):
            return None
    except (ZeroDivisionError, TypeError, ValueError):
        return None
    if part != "ratio" and not isinstance(wrong_value, (tuple, int)) and wrong_value.denominator != 1:
        return None
    return wrong
