"""Tiny arithmetic expressions that evaluate and render themselves two ways.

The formulas build their results from these nodes so that the value printed
and the working printed beside it come from the same tree and cannot drift
apart: ``(5 x 5 x 3 + 1) x 256`` is both rendered and evaluated from one
:class:`Product`.  Each node renders with numbers substituted
(:meth:`Expr.numbers`) or with its symbols (:meth:`Expr.symbols`).
Pure Python; values are ints, or :class:`fractions.Fraction` for ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from math import floor

Number = int | Fraction

_ATOM, _PRODUCT, _SUM = 3, 2, 1


#: Ints of more digits than this are shown in scientific notation: Python refuses to turn an int of
#: more than 4,300 digits into text (and takes quadratic time to), and nobody reads such a number.
_MOST_DIGITS_WRITTEN = 1_000


def _decimal_exponent(value: Fraction) -> int:
    """``floor(log10(value))`` for a positive ``value``, exactly, without turning it into text or a float."""
    guess = math.floor((value.numerator.bit_length() - value.denominator.bit_length()) * math.log10(2))
    while Fraction(10) ** guess > value:
        guess -= 1
    while Fraction(10) ** (guess + 1) <= value:
        guess += 1
    return guess


def _scientific(value: Fraction) -> str:
    """``value`` as ``1.235e+4999``: 4 significant digits, for numbers too long or too large for a float."""
    if value == 0:
        return "0"
    sign, size = ("-" if value < 0 else ""), abs(value)
    exponent = _decimal_exponent(size)
    mantissa = float(size / Fraction(10) ** exponent)
    shown = f"{mantissa:.4g}"
    if shown.startswith("10"):  # rounding carried into the next power of ten
        shown, exponent = "1", exponent + 1
    return f"{sign}{shown}e{exponent:+d}"


def format_number(value: Number) -> str:
    """``19456 -> '19,456'``; fractions as a decimal with 4 significant digits.

    Numbers of more than 1,000 digits, and fractions beyond a float's range,
    are written ``1.235e+4999``: every number prints, whatever its size.
    """
    if isinstance(value, Fraction) and value.denominator == 1:
        value = value.numerator
    if isinstance(value, int):
        if value.bit_length() > _MOST_DIGITS_WRITTEN * 3.32:  # more than ~1,000 digits
            return _scientific(Fraction(value))
        return f"{value:,}"
    if value and not 1e-300 < abs(value) < 1e300:
        return _scientific(value)
    return f"{float(value):.4g}"


class Expr:
    """A node; subclasses define :meth:`value` and :meth:`render`."""

    precedence = _ATOM

    def value(self) -> Number:
        raise NotImplementedError

    def render(self, how: str) -> str:
        """``how`` is ``"numbers"`` (values substituted) or ``"symbols"``."""
        raise NotImplementedError

    def numbers(self) -> str:
        return self.render("numbers")

    def symbols(self) -> str:
        return self.render("symbols")

    def _wrap(self, child: Expr, how: str, tighter_than: int) -> str:
        text = child.render(how)
        return f"({text})" if child.precedence < tighter_than else text


@dataclass(frozen=True)
class Leaf(Expr):
    """A named number, e.g. ``Leaf(5, "KH")``."""

    number: Number
    symbol: str

    def value(self) -> Number:
        return self.number

    def render(self, how: str) -> str:
        return format_number(self.number) if how == "numbers" else self.symbol


class _Chain(Expr):
    joiner = ""

    def __init__(self, *parts: Expr):
        if not parts:
            raise ValueError("an expression chain needs at least one part")
        self.parts = parts

    def render(self, how: str) -> str:
        return self.joiner.join(self._wrap(p, how, self.precedence) for p in self.parts)


class Product(_Chain):
    precedence = _PRODUCT
    joiner = " x "

    def value(self) -> Number:
        result: Number = 1
        for part in self.parts:
            result *= part.value()
        return result


class Sum(_Chain):
    precedence = _SUM
    joiner = " + "

    def value(self) -> Number:
        return sum((part.value() for part in self.parts), 0)


class _Binary(Expr):
    """``left OP right``; each side is parenthesised below its own precedence threshold."""

    operator = ""
    left_threshold = right_threshold = _ATOM

    def __init__(self, left: Expr, right: Expr):
        self.left, self.right = left, right

    def render(self, how: str) -> str:
        left = self._wrap(self.left, how, self.left_threshold)
        right = self._wrap(self.right, how, self.right_threshold)
        return f"{left} {self.operator} {right}"


class Difference(_Binary):
    precedence = _SUM
    operator = "-"
    # the right operand of "-" needs parentheses already at equal precedence: a - (b + c)
    left_threshold, right_threshold = _SUM, _PRODUCT

    def value(self) -> Number:
        return self.left.value() - self.right.value()


class Ratio(_Binary):
    """Exact division ``left / right`` (a :class:`Fraction`)."""

    precedence = _PRODUCT
    operator = "/"
    left_threshold, right_threshold = _PRODUCT, _ATOM

    def value(self) -> Number:
        return Fraction(self.left.value(), self.right.value())


class _Wrapper(Expr):
    """``template`` around one inner expression."""

    template = "{}"

    def __init__(self, inner: Expr):
        self.inner = inner

    def render(self, how: str) -> str:
        return self.template.format(self.inner.render(how))


class Group(_Wrapper):
    """``(inner)``: parentheses kept for readability, e.g. ``(5 x 5 x 1) x 3``."""

    template = "({})"

    def value(self) -> Number:
        return self.inner.value()


class Floor(_Wrapper):
    """``floor(inner)``."""

    template = "floor({})"

    def value(self) -> Number:
        return floor(self.inner.value())


@dataclass(frozen=True)
class Elided(Expr):
    """The middle of a long sum, shown as one term: ``[99,992 more rows: 9,999,600,010]``.

    ``number`` is the exact sum of the terms left out (so the working still
    adds up), ``count`` how many ``what`` they cover.
    """

    number: Number
    count: int
    what: str

    def value(self) -> Number:
        return self.number

    def render(self, how: str) -> str:
        if how == "numbers":
            return f"[{format_number(self.count)} more {self.what}: {format_number(self.number)}]"
        return "..."


def product(*parts: Expr | None) -> Expr:
    """A product of the parts that are not ``None`` (a lone part is returned as is)."""
    kept = [p for p in parts if p is not None]
    return kept[0] if len(kept) == 1 else Product(*kept)


def run_sum(pairs: list[tuple[int, int]], symbol: str) -> Expr:
    """``[(4, 1), (5, 2), (5, 1), (4, 1)] -> 4 + 5 x 3 + 4``: the sum of ``value x count`` pairs,
    neighbours of equal value merged."""
    runs: list[list[int]] = []
    for v, n in pairs:
        if runs and runs[-1][0] == v:
            runs[-1][1] += n
        else:
            runs.append([v, n])
    if not runs:
        return Leaf(0, symbol)
    terms = [Leaf(v, symbol) if n == 1 else Product(Leaf(v, symbol), Leaf(n, "count")) for v, n in runs]
    return terms[0] if len(terms) == 1 else Sum(*terms)
