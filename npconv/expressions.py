"""Arithmetic written by hand: parse it, evaluate it, compare it with a formula's working.

A student writes ``(5*5*3+1)*254`` or ``12 x 12 x 254 x 5 x 5 x 3`` or
``floor((14-5)/1) + 1 + 1``; :func:`parse_expression` turns that into the
expression nodes of :mod:`npconv._expr` (so it evaluates exactly, with
fractions, and renders the way the formulas' working does), and
:func:`compare` says how it relates to a formula's expression tree
(:attr:`npconv.formulas.Quantity.expr`, whose working reads such as
``(5 x 5 x 3 + 1) x 256``):

* ``"same"``: the same formula with the same numbers (up to the order of
  factors and terms, redundant parentheses and ``+ 0`` terms);
* ``"same form"``: the same formula with some numbers different, each
  named by the symbol it stands for (``254 where C_out = 256``);
* ``"different form"``: another formula, with the token edits that turn the
  formula's working into what was written (``an extra "+ 1"``).

Accepted: integers (``1024``, ``1,024``, ``1_024``), decimals, ``+ -``,
``* x X`` and the times sign or a middle dot for times, ``/`` or the
division sign for division, parentheses, ``floor(...)``
and ``ceil(...)``.  Pure Python.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from npconv._expr import Difference, Expr, Floor, Group, Leaf, Product, Ratio, Sum, _Wrapper, format_number


class Ceil(_Wrapper):
    """``ceil(inner)``."""

    template = "ceil({})"

    def value(self) -> Fraction | int:
        return math.ceil(self.inner.value())


class ExpressionError(ValueError):
    """An expression that cannot be read; ``position`` is the 0-based column in the text."""

    def __init__(self, message: str, text: str, position: int):
        self.position = position
        super().__init__(f"{message} at column {position + 1} of {text!r}")


_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<number>\d{1,3}(?:,\d{3})+(?![\d,])|\d[\d_]*(?:\.\d+)?|\.\d+)"
    r"|(?P<function>floor|ceil)\s*\("
    r"|(?P<operator>[-+*/()x\u00d7X\u00b7\u00f7\u2212])"
    r")"
)
_OPERATOR_NAMES = {"*": "x", "\u00d7": "x", "X": "x", "\u00b7": "x", "x": "x", "\u00f7": "/", "\u2212": "-"}
_FUNCTIONS = {"floor": Floor, "ceil": Ceil}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """``(kind, token, column)`` for each token; kinds ``number``, ``function``, ``operator``, ``end``."""
    tokens = []
    position = 0
    stripped_end = len(text.rstrip())
    while position < stripped_end:
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = len(text) - len(text[position:].lstrip())
            raise ExpressionError(f"unexpected {text[column]!r}", text, column)
        kind = match.lastgroup
        token = match.group(kind)
        if kind == "operator":
            token = _OPERATOR_NAMES.get(token, token)
        tokens.append((kind, token, match.start(kind)))
        position = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over ``sum := product (('+' | '-') product)*``,
    ``product := atom (('x' | '/') atom)*``, ``atom := number | '(' sum ')' | function '(' sum ')'``.

    ``symbols`` (optional) names the numbers in order of appearance.
    """

    def __init__(self, text: str, symbols: list[str] | None = None):
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.symbols = symbols
        self.numbers_seen = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect_close(self) -> None:
        kind, token, column = self.take()
        if token != ")" or kind != "operator":
            raise ExpressionError("expected ')'", self.text, column)

    def parse(self) -> Expr:
        expr = self.sum()
        kind, token, column = self.peek()
        if kind != "end":
            raise ExpressionError(f"unexpected {token!r}", self.text, column)
        return expr

    def _chain(self, operand, chain: type, inverse: type, operators: tuple[str, str]) -> Expr:
        """``operand (op operand)*``, left-associative: ``operators[0]`` extends a ``chain``
        (sum, product), ``operators[1]`` makes an ``inverse`` node (difference, ratio)."""
        left = operand()
        while self.peek()[0] == "operator" and self.peek()[1] in operators:
            operator = self.take()[1]
            right = operand()
            if operator == operators[1]:
                left = inverse(left, right)
            elif isinstance(left, chain):
                left = chain(*left.parts, right)
            else:
                left = chain(left, right)
        return left

    def sum(self) -> Expr:
        return self._chain(self.product, Sum, Difference, ("+", "-"))

    def product(self) -> Expr:
        return self._chain(self.atom, Product, Ratio, ("x", "/"))

    def atom(self) -> Expr:
        kind, token, column = self.take()
        if kind == "number":
            value = Fraction(token.replace(",", "").replace("_", ""))
            number = int(value) if value.denominator == 1 else value
            symbol = token
            if self.symbols is not None and self.numbers_seen < len(self.symbols):
                symbol = self.symbols[self.numbers_seen]
            self.numbers_seen += 1
            return Leaf(number, symbol)
        if kind == "function":
            inner = self.sum()
            self.expect_close()
            return _FUNCTIONS[token](inner)
        if kind == "operator" and token == "(":
            inner = self.sum()
            self.expect_close()
            return Group(inner)
        raise ExpressionError("expected a number, '(' or floor(", self.text, column)


def parse_expression(text: str) -> Expr:
    """Parse hand-written arithmetic; raises :class:`ExpressionError` naming the column."""
    if not text.strip():
        raise ExpressionError("empty expression", text, 0)
    return _Parser(text).parse()


# ---------------------------------------------------------------------- normal form


def normal_form(expr: Expr) -> Expr:
    """The same arithmetic without parentheses nodes, with nested sums and products
    flattened and ``+ 0`` terms dropped, so that equal formulas render equally."""
    if isinstance(expr, Group):
        return normal_form(expr.inner)
    if isinstance(expr, (Sum, Product)):
        parts: list[Expr] = []
        for part in map(normal_form, expr.parts):
            parts.extend(part.parts if type(part) is type(expr) else [part])
        if isinstance(expr, Sum):
            parts = [p for p in parts if not (isinstance(p, Leaf) and p.number == 0)] or parts[:1]
        return parts[0] if len(parts) == 1 else type(expr)(*parts)
    if isinstance(expr, (Difference, Ratio)):
        return type(expr)(normal_form(expr.left), normal_form(expr.right))
    if isinstance(expr, _Wrapper):
        return type(expr)(normal_form(expr.inner))
    return expr


def _children(expr: Expr) -> list[Expr]:
    if isinstance(expr, (Sum, Product)):
        return list(expr.parts)
    if isinstance(expr, (Difference, Ratio)):
        return [expr.left, expr.right]
    if isinstance(expr, _Wrapper):
        return [expr.inner]
    return []


# ---------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class NumberSwap:
    """A number written where the formula has another: ``written`` for ``expected`` (``symbol``)."""

    written: str
    expected: str
    symbol: str

    def __str__(self) -> str:
        if self.symbol and self.symbol != self.expected:
            return f"{self.written} where {self.symbol} = {self.expected}"
        return f"{self.written} where the formula has {self.expected}"


@dataclass(frozen=True)
class Comparison:
    """How a written expression relates to a formula's working (see the module docstring)."""

    kind: str
    swaps: tuple[NumberSwap, ...] = ()
    edits: tuple[str, ...] = ()

    def describe(self, formula: str) -> str:
        """One sentence, naming ``formula`` (the formula in symbols)."""
        if self.kind == "same":
            return f"the formula {formula}, with the question's numbers"
        if self.kind == "same form":
            return f"the formula {formula}, but with " + ", ".join(map(str, self.swaps))
        return f"not the formula {formula}: " + "; ".join(self.edits)


def _match(written: Expr, formula: Expr) -> list[NumberSwap] | None:
    """Numbers that differ between two normal forms of the same shape, or None when the shapes differ.

    Terms of a sum and factors of a product may come in any order: equal
    children are paired first, the rest in order.
    """
    if isinstance(written, Leaf) and isinstance(formula, Leaf):
        if written.number == formula.number:
            return []
        return [NumberSwap(format_number(written.number), format_number(formula.number), formula.symbol)]
    if type(written) is not type(formula):
        return None
    mine, theirs = _children(written), _children(formula)
    if len(mine) != len(theirs):
        return None
    if isinstance(written, (Sum, Product)):
        rendered = [c.numbers() for c in theirs]
        unpaired = list(range(len(theirs)))
        order: list[int | None] = []
        for child in mine:
            same = next((i for i in unpaired if rendered[i] == child.numbers()), None)
            if same is not None:
                unpaired.remove(same)
            order.append(same)
        theirs = [theirs[i] if i is not None else theirs[unpaired.pop(0)] for i in order]
    swaps: list[NumberSwap] = []
    for a, b in zip(mine, theirs, strict=True):
        found = _match(a, b)
        if found is None:
            return None
        swaps += found
    return swaps


_RENDERED_TOKEN = re.compile(r"floor\(|ceil\(|[()+\-x/]|[\d,.]+")


def _edits(written: str, formula: str) -> tuple[str, ...]:
    """Token edits that turn ``formula`` into ``written`` (both rendered normal forms)."""
    mine, theirs = _RENDERED_TOKEN.findall(written), _RENDERED_TOKEN.findall(formula)

    def show(tokens: list[str]) -> str:
        return " ".join(tokens).replace("( ", "(").replace(" )", ")")

    edits = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, theirs, mine, autojunk=False).get_opcodes():
        if op == "insert":
            edits.append(f'an extra "{show(mine[j1:j2])}"')
        elif op == "delete":
            edits.append(f'no "{show(theirs[i1:i2])}"')
        elif op == "replace":
            edits.append(f'"{show(mine[j1:j2])}" where the formula has "{show(theirs[i1:i2])}"')
    return tuple(edits)


def compare(written: Expr, working: Expr) -> Comparison:
    """How ``written`` relates to ``working``: a formula's expression tree, whose leaves carry the
    formula's symbols (:attr:`npconv.formulas.Quantity.expr`)."""
    mine, theirs = normal_form(written), normal_form(working)
    swaps = _match(mine, theirs)
    if swaps is None:
        return Comparison("different form", edits=_edits(mine.numbers(), theirs.numbers()))
    return Comparison("same form", tuple(swaps)) if swaps else Comparison("same")
