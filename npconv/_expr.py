"""Tiny arithmetic expressions that evaluate and render themselves two ways.

The formulas build their results from these nodes so that the value printed
and the working printed beside it come from the same tree and cannot drift
apart: ``(5 x 5 x 3 + 1) x 256`` is both rendered and evaluated from one
:class:`Product`.  Each node renders with numbers substituted
(:meth:`Expr.numbers`) or with its symbols (:meth:`Expr.symbols`).
Pure Python; values are ints, or :class:`fractions.Fraction` for ratios.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import floor

Number = int | Fraction

_ATOM, _PRODUCT, _SUM = 3, 2, 1


def format_number(value: Number) -> str:
    """``19456 -> '19,456'``; fractions as a decimal with 4 significant digits."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return f"{value.numerator:,}"
        return f"{float(value):.4g}"
    return f"{value:,}"


class Expr:
    precedence = _ATOM

    def value(self) -> Number:
        raise NotImplementedError

    def numbers(self) -> str:
        raise NotImplementedError

    def symbols(self) -> str:
        raise NotImplementedError

    def _wrap(self, child: Expr, render: str, tighter_than: int) -> str:
        text = getattr(child, render)()
        return f"({text})" if child.precedence < tighter_than else text


@dataclass(frozen=True)
class Leaf(Expr):
    """A named number, e.g. ``Leaf(5, "KH")``."""

    number: Number
    symbol: str

    def value(self) -> Number:
        return self.number

    def numbers(self) -> str:
        return format_number(self.number)

    def symbols(self) -> str:
        return self.symbol


class _Chain(Expr):
    joiner = ""

    def __init__(self, *parts: Expr):
        if not parts:
            raise ValueError("an expression chain needs at least one part")
        self.parts = parts

    def numbers(self) -> str:
        return self.joiner.join(self._wrap(p, "numbers", self.precedence) for p in self.parts)

    def symbols(self) -> str:
        return self.joiner.join(self._wrap(p, "symbols", self.precedence) for p in self.parts)


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


class Difference(Expr):
    precedence = _SUM

    def __init__(self, left: Expr, right: Expr):
        self.left, self.right = left, right

    def value(self) -> Number:
        return self.left.value() - self.right.value()

    def _render(self, how: str) -> str:
        # the right operand of "-" needs parentheses already at equal precedence
        return f"{self._wrap(self.left, how, _SUM)} - {self._wrap(self.right, how, _PRODUCT)}"

    def numbers(self) -> str:
        return self._render("numbers")

    def symbols(self) -> str:
        return self._render("symbols")


class Ratio(Expr):
    """Exact division ``left / right`` (a :class:`Fraction`)."""

    precedence = _PRODUCT

    def __init__(self, left: Expr, right: Expr):
        self.left, self.right = left, right

    def value(self) -> Number:
        return Fraction(self.left.value(), self.right.value())

    def _render(self, how: str) -> str:
        return f"{self._wrap(self.left, how, _PRODUCT)} / {self._wrap(self.right, how, _ATOM)}"

    def numbers(self) -> str:
        return self._render("numbers")

    def symbols(self) -> str:
        return self._render("symbols")


class Group(Expr):
    """``(inner)``: parentheses kept for readability, e.g. ``(5 x 5 x 1) x 3``."""

    def __init__(self, inner: Expr):
        self.inner = inner

    def value(self) -> Number:
        return self.inner.value()

    def numbers(self) -> str:
        return f"({self.inner.numbers()})"

    def symbols(self) -> str:
        return f"({self.inner.symbols()})"


class Floor(Expr):
    """``floor(inner)``."""

    def __init__(self, inner: Expr):
        self.inner = inner

    def value(self) -> Number:
        return floor(self.inner.value())

    def numbers(self) -> str:
        return f"floor({self.inner.numbers()})"

    def symbols(self) -> str:
        return f"floor({self.inner.symbols()})"


def product(*parts: Expr | None) -> Expr:
    """A product of the parts that are not ``None`` (a lone part is returned as is)."""
    kept = [p for p in parts if p is not None]
    return kept[0] if len(kept) == 1 else Product(*kept)


def run_length_sum(values: list[int], symbol: str) -> Expr:
    """``[4, 5, 5, 5, 4] -> 4 + 5 x 3 + 4``: a sum with repeated runs collapsed.

    Used to show a sum over output positions without listing every term.
    """
    runs: list[list[int]] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    if not runs:
        return Leaf(0, symbol)
    terms = [Leaf(v, symbol) if n == 1 else Product(Leaf(v, symbol), Leaf(n, "count")) for v, n in runs]
    return terms[0] if len(terms) == 1 else Sum(*terms)
