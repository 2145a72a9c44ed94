"""What a claim writes: its value (exact, or to the digits written), the claim itself, and what its
written arithmetic shows (:class:`ExpressionCheck`: an arithmetic slip, the same formula with other
numbers, the formula under another reading).
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass
from fractions import Fraction

from npconv._expr import format_number
from npconv.claims.answers import SHAPE_KINDS, Number, Value, split_quantity
from npconv.errors import ConvArgumentError, echo
from npconv.expressions import parse_expression
from npconv.limits import MAX_EXPONENT, MAX_NUMBER_DIGITS

# ---------------------------------------------------------------------- written values


@dataclass(frozen=True)
class Written:
    """A value as written: exact (``19454``, ``12x12x254``) or to the precision written
    (``0.0439`` holds for anything within 0.00005, ``2.76M`` within 5,000)."""

    value: Value
    text: str
    tolerance: Fraction = Fraction(0)

    def matches(self, right: Value) -> bool:
        if isinstance(self.value, tuple) or isinstance(right, tuple):
            return self.value == right
        return abs(right - self.value) <= self.tolerance

    def numbers(self) -> tuple[Number, ...]:
        return self.value if isinstance(self.value, tuple) else (self.value,)

    def to_json(self) -> object:
        if isinstance(self.value, tuple):
            return list(self.value)
        return json_number(self.value)


def json_number(value: Number) -> int | float | str:
    """``value`` for JSON: an int, a float -- or, for a fraction beyond a float's range (which
    hand-written arithmetic can reach), its text as :func:`~npconv._expr.format_number` writes it."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return int(value)
        if value and not 1e-300 < abs(value) < 1e300:
            return format_number(value)
        return float(value)
    return value


_SCALES = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "%": Fraction(1, 100)}
_WRITTEN_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|[\d_]+(?:\.\d*)?|\.\d+)(?:[eE]([-+]?\d+))?\s*([kKMGB%]?)")
# spaces around a separator are stripped from the fields: ``\s*[x]\s*`` backtracks quadratically
_SHAPE_SPLIT = re.compile(r"[x\u00d7X*,]")

#: Longest text a number within the bounds can be written as: its digits, a comma every three, a
#: point, an exponent and a suffix.  Longer text is refused before any pattern reads it.
_LONGEST_NUMBER = MAX_NUMBER_DIGITS * 4 // 3 + 16

_BOUNDS = f"at most {MAX_NUMBER_DIGITS} digits and an exponent of at most {MAX_EXPONENT}"


def _written_number(text: str, expected: str, name: str) -> Written:
    stripped = text.strip()
    if len(stripped) > _LONGEST_NUMBER:
        raise ConvArgumentError(name, f"{expected}, with {_BOUNDS}", f"{len(stripped):,} characters")
    match = _WRITTEN_NUMBER.fullmatch(stripped)
    if match is None:
        raise ConvArgumentError(name, expected, echo(text))
    digits, exponent, suffix = match.groups()
    # Bounded before Decimal -> Fraction, which would build 10**exponent (1e999999999: a billion digits)
    if sum(c.isdigit() for c in digits) > MAX_NUMBER_DIGITS or (exponent and abs(int(exponent)) > MAX_EXPONENT):
        raise ConvArgumentError(name, f"{expected}, with {_BOUNDS}", echo(text))
    number = decimal.Decimal(digits.replace(",", "").replace("_", "") + (f"e{exponent}" if exponent else ""))
    scale = _SCALES[suffix]
    value = Fraction(number) * scale
    places = number.as_tuple().exponent
    exact = places >= 0 and "." not in digits and not exponent and suffix in ("", "%")
    tolerance = Fraction(0) if exact else Fraction(1, 2) * Fraction(10) ** places * scale
    return Written(int(value) if value.denominator == 1 else value, text.strip(), tolerance)


def parse_written(value: object, quantity: str, batch: int, name: str) -> Written:
    """A claim's ``value`` for ``quantity``: an int, a float, or a string such as
    ``"1,102"``, ``"2.76M"``, ``"4.4%"`` or, for shapes, ``"12x12x254"``."""
    kind = split_quantity(quantity)[1]
    if kind in SHAPE_KINDS:
        layout = "H x W" if kind == "output_size" else ("H x W x C" if batch == 1 else "N x H x W x C")
        sizes = 2 if kind == "output_size" else (3 if batch == 1 else 4)
        expected = f"a shape {layout} such as {'x'.join(['12'] * (sizes - 1) + ['256' if sizes > 2 else '12'])}"
        if isinstance(value, int) and not isinstance(value, bool) and kind == "output_size":
            return Written((value, value), str(value))
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            numbers = value
        elif isinstance(value, str):
            fields = [field.strip() for field in _SHAPE_SPLIT.split(value)]
            if len(fields) > sizes:
                raise ConvArgumentError(name, expected, echo(value))
            if any(len(field) > MAX_NUMBER_DIGITS for field in fields):
                raise ConvArgumentError(name, f"{expected}, sizes of at most {MAX_NUMBER_DIGITS} digits",
                                        echo(value))
            try:
                numbers = [int(field) for field in fields]
            except ValueError:
                raise ConvArgumentError(name, expected, echo(value)) from None
            if kind == "output_size" and len(numbers) == 1:
                numbers *= 2
        else:
            raise ConvArgumentError(name, expected, echo(value))
        if len(numbers) != sizes:
            raise ConvArgumentError(name, expected, echo(value))
        if any(_too_long(n) for n in numbers):
            raise ConvArgumentError(name, f"{expected}, sizes of at most {MAX_NUMBER_DIGITS} digits", echo(value))
        return Written(tuple(numbers), "x".join(map(str, numbers)))
    expected = "a number such as 1,102, 2.76M, 0.0439 or 4.4% (the arithmetic goes in 'expression')"
    if isinstance(value, bool):
        raise ConvArgumentError(name, expected, echo(value))
    if isinstance(value, float):
        return _written_number(repr(value), expected, name)
    if isinstance(value, str):
        value = _written_number(value, expected, name)
        if value.tolerance or isinstance(value.value, Fraction):
            return value
        value = value.value
    if isinstance(value, int):
        if _too_long(value):
            raise ConvArgumentError(name, f"{expected}, with {_BOUNDS}", echo(value))
        return Written(value, format_number(value))
    raise ConvArgumentError(name, expected, echo(value))


def _too_long(number: int) -> bool:
    """More than :data:`MAX_NUMBER_DIGITS` digits (10**100 has 101), told without printing it."""
    return abs(number) >= 10**MAX_NUMBER_DIGITS


# ---------------------------------------------------------------------- claims and sheets


@dataclass(frozen=True)
class Claim:
    """One line of an answer sheet: a quantity and what was written for it.

    ``written`` is None for a question of an exercise sheet not answered yet; ``id`` is the
    question's label on an exercise sheet (``"1a"``) and ``ask`` its wording, for the student.
    """

    number: int
    quantity: str
    written: Written | None
    expression: str = ""
    note: str = ""
    id: str = ""
    ask: str = ""

    @property
    def answered(self) -> bool:
        return self.written is not None

    @property
    def label(self) -> str:
        """The question's id, or its number when it has none."""
        return self.id or str(self.number)

    @property
    def part(self) -> str:
        return split_quantity(self.quantity)[0]

    @property
    def kind(self) -> str:
        return split_quantity(self.quantity)[1]

    def parsed_expression(self):
        return parse_expression(self.expression) if self.expression else None


@dataclass(frozen=True)
class ExpressionCheck:
    """What the arithmetic written for a claim shows: its value, and how it reads in the formula's
    symbols (``algebra``: ``"in symbols: KH x KW x C_in x C_out + C_out"``, or how it differs from the
    formula)."""

    text: str
    value: Number
    evaluates_to_written: bool
    formula: str
    algebra: str = ""

    def sentences(self, written: Written) -> list[str]:
        shown = format_number(self.value)
        if self.evaluates_to_written:
            lines = [f"{self.text} = {shown}, as written"]
        else:
            lines = [f"{self.text} = {shown}, not the {written.text} written: an arithmetic slip"]
        if self.algebra:
            lines.append(self.algebra)
        return lines

    def to_json(self, written: Written) -> dict[str, object]:
        return {
            "written": self.text,
            "value": json_number(self.value),
            "evaluates_to_written": self.evaluates_to_written,
            "formula": self.formula,
            "algebra": self.algebra,
            "sentences": self.sentences(written),
        }
