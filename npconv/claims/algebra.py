"""A student's written working compared with a formula by algebra, not as text.

``(14-5+2*0)/1+1`` is the output-size formula, ``5*5*3*256+256`` the parameter count,
``10*10*256*75`` the multiplication count: each number written stands for a symbol of the formula
(14 for ``H``, 75 for ``KH x KW x C_in``), and with the numbers read as those symbols the working
and the formula are the same rational function of the symbols.  :func:`lift` finds that reading of
the numbers; a number that stands for no symbol of its value may be a *swap* (``254 where C_out =
256``), named by the symbol it replaces.  :func:`discrepancy` says in symbols how a working that is
not the formula differs from it (``without the factor C_in``).

How: candidate readings of the numbers are screened by evaluating both sides, exactly, at two
random points of the symbols (Schwartz-Zippel), and the survivor is proved with SymPy
(``cancel(working - formula) == 0``).  ``floor`` and ``ceil`` are read as their argument (the
CS231n form ``(H - K + 2P) / S + 1`` writes no floor; the values are compared separately).  Symbols
worth 0 or 1 are read as the numbers 0 and 1: a term ``+ 2 x P`` with ``P = 0`` may be left out, a
factor ``/ S`` with ``S = 1`` too.  Pure Python and SymPy (imported on first use).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

from npconv._expr import Expr, Leaf, Number, _Binary, _Chain, _Wrapper, format_number
from npconv.expressions import normal_form

#: Readings of the numbers tried per comparison at most (the search is bounded by construction).
MAX_ASSIGNMENTS = 400


class Budget:
    """Readings of the numbers that may still be tried, shared by the comparisons of one search."""

    def __init__(self, left: int):
        self.left = left

    def spend(self) -> bool:
        """Take one; False when none is left."""
        self.left -= 1
        return self.left >= 0

_PAIRS = (("KH", "KW"), ("OH", "OW"), ("H", "W"), ("P_top", "P_bottom"), ("P_left", "P_right"),
          ("P_top", "P_left"), ("S_H", "S_W"), ("D_H", "D_W"))
_NUMERIC = re.compile(r"[\d,.]+")


@dataclass(frozen=True)
class Swap:
    """A number written where the formula has a symbol of another value."""

    written: Number
    symbol: str
    value: Number

    def __str__(self) -> str:
        return f"{format_number(self.written)} where {self.symbol} = {format_number(self.value)}"


@dataclass(frozen=True)
class Lift:
    """A reading of a working's numbers as the formula's symbols; ``symbols`` is the working in them."""

    swaps: tuple[Swap, ...]
    symbols: str


# ---------------------------------------------------------------------- the formula's symbols


def _leaves(expr: Expr) -> Iterator[Leaf]:
    if isinstance(expr, Leaf):
        yield expr
    elif isinstance(expr, _Chain):
        for part in expr.parts:
            yield from _leaves(part)
    elif isinstance(expr, _Binary):
        yield from _leaves(expr.left)
        yield from _leaves(expr.right)
    elif isinstance(expr, _Wrapper):
        yield from _leaves(expr.inner)


def _is_constant(leaf: Leaf) -> bool:
    return leaf.number in (0, 1) or bool(_NUMERIC.fullmatch(leaf.symbol))


class _Symbols:
    """The formula's symbols, those of equal value in a pair (KH and KW, P_top and P_bottom) merged."""

    def __init__(self, formula: Expr):
        values: dict[str, Number] = {}
        for leaf in _leaves(formula):
            if not _is_constant(leaf):
                values.setdefault(leaf.symbol, leaf.number)
        parent = {name: name for name in values}

        def root(name: str) -> str:
            while parent[name] != name:
                name = parent[name]
            return name

        for a, b in _PAIRS:
            if a in values and b in values and values[a] == values[b]:
                parent[root(b)] = root(a)
        groups: dict[str, list[str]] = {}
        for name in values:
            groups.setdefault(root(name), []).append(name)
        self.canonical = {name: root(name) for name in values}
        self.value = {name: values[name] for name in groups}
        self.shown = {name: " = ".join(members) for name, members in groups.items()}
        rng = random.Random(20240517)
        self.points = [{name: Fraction(rng.randrange(10**6, 10**9)) for name in groups} for _ in range(2)]
        self.composites: dict[Number, list[tuple[str, ...]]] = {}
        for node in _products(formula):
            factors = [self.canonical[p.symbol] for p in node.parts if isinstance(p, Leaf) and not _is_constant(p)]
            for size in range(2, min(len(factors), 7) + 1):
                for combo in itertools.combinations(sorted(factors), size):
                    value = 1
                    for name in combo:
                        value *= self.value[name]
                    bucket = self.composites.setdefault(value, [])
                    if combo not in bucket:
                        bucket.append(combo)


def _products(expr: Expr) -> Iterator[_Chain]:
    if isinstance(expr, _Chain):
        if " x " in expr.joiner:
            yield expr
        for part in expr.parts:
            yield from _products(part)
    elif isinstance(expr, _Binary):
        yield from _products(expr.left)
        yield from _products(expr.right)
    elif isinstance(expr, _Wrapper):
        yield from _products(expr.inner)


# ---------------------------------------------------------------------- evaluating at a point


def _evaluate(expr: Expr, leaf_value: Callable[[Leaf], Fraction]) -> Fraction:
    """``expr`` with each leaf's value from ``leaf_value``, floors and ceilings read as their argument."""
    if isinstance(expr, Leaf):
        return leaf_value(expr)
    if isinstance(expr, _Chain):
        values = [_evaluate(p, leaf_value) for p in expr.parts]
        if " x " in expr.joiner:
            result = Fraction(1)
            for v in values:
                result *= v
            return result
        return sum(values, Fraction(0))
    if isinstance(expr, _Binary):
        left, right = _evaluate(expr.left, leaf_value), _evaluate(expr.right, leaf_value)
        return left - right if expr.operator == "-" else left / right
    return _evaluate(expr.inner, leaf_value)


Reading = tuple  # ("const", n) | ("sym", name) | ("mono", (names...))


def _reading_value(reading: Reading, point: dict[str, Fraction]) -> Fraction:
    kind, what = reading
    if kind == "const":
        return Fraction(what)
    if kind == "sym":
        return point[what]
    result = Fraction(1)
    for name in what:
        result *= point[name]
    return result


def _to_sympy(expr: Expr, leaf_value: Callable[[Leaf], object]):
    if isinstance(expr, Leaf):
        return leaf_value(expr)
    if isinstance(expr, _Chain):
        parts = [_to_sympy(p, leaf_value) for p in expr.parts]
        if " x " in expr.joiner:
            result = 1
            for p in parts:
                result = result * p
            return result
        result = 0
        for p in parts:
            result = result + p
        return result
    if isinstance(expr, _Binary):
        left, right = _to_sympy(expr.left, leaf_value), _to_sympy(expr.right, leaf_value)
        return left - right if expr.operator == "-" else left / right
    return _to_sympy(expr.inner, leaf_value)


@cache
def _sympy():
    import sympy

    return sympy


def _sympy_reading(reading: Reading):
    sympy = _sympy()
    kind, what = reading
    if kind == "const":
        return sympy.Rational(str(what))
    if kind == "sym":
        return sympy.Symbol(what)
    return sympy.Mul(*(sympy.Symbol(n) for n in what))


def _formula_sympy(formula: Expr, symbols: _Symbols):
    sympy = _sympy()
    return _to_sympy(formula, lambda leaf: sympy.Rational(str(leaf.number)) if _is_constant(leaf)
                     else sympy.Symbol(symbols.canonical[leaf.symbol]))


# ---------------------------------------------------------------------- lifting a working onto a formula


class _Comparison:
    def __init__(self, written: Expr, formula: Expr):
        self.written, self.formula = normal_form(written), normal_form(formula)
        self.symbols = _Symbols(self.formula)
        self.leaves = list(_leaves(self.written))
        self.index = {id(leaf): i for i, leaf in enumerate(self.leaves)}
        self.targets = []
        for point in self.symbols.points:
            try:
                self.targets.append(_evaluate(self.formula, lambda leaf, p=point: Fraction(leaf.number)
                                              if _is_constant(leaf) else p[self.symbols.canonical[leaf.symbol]]))
            except ZeroDivisionError:
                self.targets.append(None)

    def candidates(self, leaf: Leaf) -> list[Reading]:
        n = leaf.number
        found: list[Reading] = []
        if n not in (0, 1):
            found += [("sym", name) for name, v in self.symbols.value.items() if v == n]
            found += [("mono", combo) for combo in self.symbols.composites.get(n, [])]
        return [*found, ("const", n)]

    def holds(self, readings: list[Reading]) -> bool:
        for point, target in zip(self.symbols.points, self.targets, strict=True):
            if target is None:
                return False
            try:
                value = _evaluate(self.written, lambda leaf, p=point: _reading_value(readings[self.index[id(leaf)]], p))
            except ZeroDivisionError:
                return False
            if value != target:
                return False
        sympy = _sympy()
        mine = _to_sympy(self.written, lambda leaf: _sympy_reading(readings[self.index[id(leaf)]]))
        return sympy.cancel(mine - _formula_sympy(self.formula, self.symbols)) == 0

    def rendered(self, readings: list[Reading]) -> str:
        """The working with its numbers shown as the symbols read (KH x KW for a merged 5 x 5)."""
        seen: dict[str, int] = {}

        def name(canonical: str) -> str:
            members = self.symbols.shown[canonical].split(" = ")
            seen[canonical] = seen.get(canonical, -1) + 1
            return members[seen[canonical] % len(members)]

        def shown(reading: Reading) -> str:
            kind, what = reading
            if kind == "const":
                return format_number(what)
            if kind == "sym":
                return name(what)
            return "(" + " x ".join(map(name, what)) + ")"

        return _substitute(self.written, lambda leaf: Leaf(leaf.number, shown(readings[self.index[id(leaf)]])))\
            .symbols()


def _substitute(expr: Expr, replace: Callable[[Leaf], Expr]) -> Expr:
    if isinstance(expr, Leaf):
        return replace(expr)
    if isinstance(expr, _Chain):
        return type(expr)(*(_substitute(p, replace) for p in expr.parts))
    if isinstance(expr, _Binary):
        return type(expr)(_substitute(expr.left, replace), _substitute(expr.right, replace))
    return type(expr)(_substitute(expr.inner, replace))


def lift(written: Expr, formula: Expr, max_swaps: int = 2, budget: Budget | None = None) -> Lift | None:
    """A reading of ``written``'s numbers as ``formula``'s symbols under which the two are equal, with
    the fewest swaps (at most ``max_swaps``), or None.  ``formula`` is an expression tree whose leaves
    carry symbols (:attr:`npconv.formulas.Quantity.expr`); ``budget`` bounds the readings tried."""
    budget = budget or Budget(5 * MAX_ASSIGNMENTS)
    c = _Comparison(written, formula)
    options = [c.candidates(leaf) for leaf in c.leaves]
    tried = 0
    for readings in itertools.product(*options):
        tried += 1
        if tried > MAX_ASSIGNMENTS or not budget.spend():
            break
        if c.holds(list(readings)):
            return Lift((), c.rendered(list(readings)))
    if max_swaps == 0:
        return None
    unmatched: dict[Number, list[int]] = {}
    for i, leaf in enumerate(c.leaves):
        if len(options[i]) == 1 and leaf.number not in (0, 1):
            unmatched.setdefault(leaf.number, []).append(i)
    targets = [name for name in c.symbols.value]
    for count in range(1, min(max_swaps, len(unmatched)) + 1):
        for numbers in itertools.combinations(unmatched, count):
            for names in itertools.product(targets, repeat=count):
                if any(c.symbols.value[name] == n for name, n in zip(names, numbers, strict=True)):
                    continue
                swapped = list(options)
                for name, n in zip(names, numbers, strict=True):
                    for i in unmatched[n]:
                        swapped[i] = [("sym", name)]
                for readings in itertools.islice(itertools.product(*swapped), 16):
                    tried += 1
                    if tried > 4 * MAX_ASSIGNMENTS or not budget.spend():
                        return None
                    if c.holds(list(readings)):
                        swaps = tuple(Swap(n, c.symbols.shown[name], c.symbols.value[name])
                                      for name, n in zip(names, numbers, strict=True))
                        return Lift(swaps, c.rendered(list(readings)))
    return None


def discrepancy(written: Expr, formula: Expr) -> str:
    """How ``written`` differs from ``formula`` in symbols, with its numbers read as the formula's
    symbols where their values agree: ``"without the factor C_in"``, ``"minus C_out"``, or ``""``
    when the difference is no single term or factor."""
    c = _Comparison(written, formula)
    readings = [c.candidates(leaf)[0] for leaf in c.leaves]
    sympy = _sympy()
    mine = _to_sympy(c.written, lambda leaf: _sympy_reading(readings[c.index[id(leaf)]]))
    theirs = _formula_sympy(c.formula, c.symbols)
    if theirs == 0:
        return ""

    def shown(term) -> str:
        return str(term).replace("**", "^").replace("*", " x ")

    quotient = sympy.factor(sympy.cancel(mine / theirs))
    numerator, denominator = sympy.fraction(quotient)
    if quotient != 1 and not numerator.has(sympy.Add) and not denominator.has(sympy.Add):
        if quotient.is_Number:
            return f"times {shown(quotient)}"
        if numerator.is_Number and denominator.free_symbols:
            return f"without the factor {shown(denominator)}" if numerator == 1 else f"times {shown(quotient)}"
        if denominator == 1:
            return f"with an extra factor {shown(numerator)}"
        return f"times {shown(quotient)}"
    difference = sympy.expand(mine - theirs)
    if difference != 0 and not difference.is_Add:
        if difference.could_extract_minus_sign():
            return f"minus {shown(-difference)}"
        return f"plus {shown(difference)}"
    return ""


__all__ = ["MAX_ASSIGNMENTS", "Budget", "Lift", "Swap", "discrepancy", "lift"]
