"""Check hand-computed answers: claims about a layer, each given a verdict with its reasons.

A *claim* names a quantity of a question (``standard.params``,
``separable.mults``, ``standard.output`` ...), gives the value written for it
and, optionally, the arithmetic written for it (``"(5*5*3+1)*254"``).
:func:`check` gives every claim one of three verdicts:

``holds``
    the value is right for the question as asked;
``wrong``
    it is not, and no reading searched makes it right; the right value comes
    with its working (from :mod:`npconv.formulas`);
``holds under another reading``
    it is right if the question is read differently, and the reading is
    named: another padding or input size, another bias convention, FLOPs
    instead of mults (or MACs instead of FLOPs, or FLOPs as 2 x MACs),
    effective instead of dense counting, a filter count off by a typo, the
    inverse of a ratio -- or two of these at once.  Readings are searched,
    not looked up: every candidate reading is evaluated with the same
    formulas, and the ones with the fewest changes that make the value
    right are reported.

When the arithmetic is given, the check also says whether it evaluates to
the value written (an arithmetic slip if not), whether it is the right
formula (:func:`npconv.expressions.compare`), and under which reading, if
any, it is exactly the formula.

Claims come from a TOML claims file (:func:`load_sheet`) or from
``QUANTITY=VALUE`` strings (:func:`sheet_from_strings`).  Pure Python.
"""

from __future__ import annotations

import dataclasses
import decimal
import difflib
import itertools
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from npconv import formulas as F
from npconv import quantities as Q
from npconv import render
from npconv._expr import Leaf, Product, format_number
from npconv.counts import CONVENTIONS
from npconv.errors import ConvArgumentError
from npconv.expressions import Comparison, ExpressionError, compare, parse_expression
from npconv.formulas import Quantity
from npconv.geometry import BIAS_CONVENTIONS, ConvGeometry, SeparableGeometry
from npconv.question import QUESTION_KEYS, Question

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Number = int | Fraction
Value = Number | tuple[int, ...]

# ---------------------------------------------------------------------- the quantities

PARTS = Q.PARTS
SHAPE_KINDS = ("output", "output_size")
LENGTH_KINDS = ("output_height", "output_width")
COUNT_KINDS = ("mults", "macs", "adds", "flops")
PART_KINDS = (*SHAPE_KINDS, *LENGTH_KINDS, "params", *COUNT_KINDS)
RATIO_KINDS = Q.RATIO_KINDS

#: Every quantity a claim may name.
QUANTITIES = (*(f"{p}.{k}" for p in PARTS for k in PART_KINDS), *(f"ratio.{k}" for k in RATIO_KINDS))

QUANTITY_HELP = (
    "PART.KIND with PART standard, depthwise, pointwise or separable and KIND output (H x W x C), "
    "output_size (H x W), output_height, output_width, params, mults, macs (= mults), adds or flops "
    "(mults + adds); or ratio.params, ratio.mults, ratio.flops (separable / standard) or "
    "ratio.mobilenet (1 / C_out + 1 / (KH x KW))"
)

HOLDS, WRONG, READING = "holds", "wrong", "holds under another reading"

#: Exit statuses of ``npconv check`` (2 is a usage or claims-file error, as for every command).
EXIT_ALL_HOLD, EXIT_SOME_WRONG, EXIT_ERROR, EXIT_ONLY_UNDER_READINGS = 0, 1, 2, 3


def _split(quantity: str) -> tuple[str, str]:
    part, kind = quantity.split(".")
    return part, kind


# ---------------------------------------------------------------------- how a claim is read


@dataclass(frozen=True)
class Setting:
    """One reading of a question: the layer, the counting convention, and what is counted.

    ``measure`` is empty for the quantity the claim names, or an entry of
    :data:`MEASURES` that replaces it (``"flops"`` for a claim about mults).
    """

    question: Question
    counting: str = "dense"
    measure: str = ""


#: Alternative measures: name -> how a reading that uses it is described.
MEASURES = {
    "flops": "FLOPs (mults + adds), not mults",
    "mults": "MACs (mults only), not FLOPs",
    "2 x mults": "FLOPs counted as 2 x MACs",
    "inverse": "the inverse ratio, standard / separable",
}

_COUNTING_WORDS = {
    "dense": "dense counting (padded zeros multiplied)",
    "effective": "effective counting (only taps on real input)",
}


# ---------------------------------------------------------------------- right answers


@dataclass(frozen=True)
class Answer:
    """The value of a quantity under one setting, with its working.

    ``quantity`` is the formula's :class:`~npconv.formulas.Quantity` for
    numbers (None for shapes); ``working`` the whole derivation as one line.
    """

    value: Value
    text: str
    working: str
    quantity: Quantity | None = None


def _from_quantity(q: Quantity) -> Answer:
    working = str(q) if q.formula == q.working else f"{q.formula} = {q}"
    return Answer(q.value, format_number(q.value), working, q)


def _lengths_working(layer: ConvGeometry) -> str:
    oh, ow = F.output_height(layer), F.output_width(layer)
    if oh.working == ow.working:
        return f"OH = OW = {oh.formula} = {oh}"
    return f"OH = {oh.formula} = {oh}; OW = {ow.formula} = {ow}"


def _shape_answer(layers: Q.Layers, part: str, kind: str) -> Answer:
    if kind in LENGTH_KINDS:
        return _from_quantity(Q.of_part(layers, part, kind))
    spatial = layers.spatial(part)
    n, channels, oh, ow = layers.part(part).output_shape
    if kind == "output_size":
        return Answer((oh, ow), f"{oh}x{ow}", _lengths_working(spatial))
    if part == "depthwise":
        symbol = "C_in" if layers.separable.depth_multiplier == 1 else "m x C_in"
    else:
        symbol = "C_out"
    value = (oh, ow, channels) if n == 1 else (n, oh, ow, channels)
    return Answer(value, "x".join(map(str, value)),
                  f"{_lengths_working(spatial)}; channels {symbol} = {channels}")


def answer(quantity: str, setting: Setting) -> Answer:
    """The value of ``quantity`` (a name of :data:`QUANTITIES`) under ``setting``, with its working.

    Raises :class:`~npconv.errors.ConvArgumentError` when the setting is not a valid layer.
    """
    layers = Q.Layers(*setting.question.layers())
    part, kind = _split(quantity)
    if part == "ratio":
        return _from_quantity(Q.ratio(layers, kind, setting.counting, setting.measure == "inverse"))
    if kind in SHAPE_KINDS or kind in LENGTH_KINDS:
        return _shape_answer(layers, part, kind)
    if setting.measure == "2 x mults":
        macs = Q.of_part(layers, part, "mults", setting.counting)
        return _from_quantity(Quantity.of("FLOPs", Product(Leaf(2, "2"), macs.leaf("MACs"))))
    return _from_quantity(Q.of_part(layers, part, setting.measure or kind, setting.counting))


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
        return _json_number(self.value)


def _json_number(value: Number) -> int | float:
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else float(value)
    return value


_SCALES = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "%": Fraction(1, 100)}
_WRITTEN_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|[\d_]+(?:\.\d*)?|\.\d+)(?:[eE]([-+]?\d+))?\s*([kKMGB%]?)")
_SHAPE_SPLIT = re.compile(r"\s*[x\u00d7X*,]\s*")


def _written_number(text: str, expected: str, name: str) -> Written:
    match = _WRITTEN_NUMBER.fullmatch(text.strip())
    if match is None:
        raise ConvArgumentError(name, expected, repr(text))
    digits, exponent, suffix = match.groups()
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
    kind = _split(quantity)[1]
    if kind in SHAPE_KINDS:
        layout = "H x W" if kind == "output_size" else ("H x W x C" if batch == 1 else "N x H x W x C")
        sizes = 2 if kind == "output_size" else (3 if batch == 1 else 4)
        expected = f"a shape {layout} such as {'x'.join(['12'] * (sizes - 1) + ['256' if sizes > 2 else '12'])}"
        if isinstance(value, int) and not isinstance(value, bool) and kind == "output_size":
            return Written((value, value), str(value))
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            numbers = value
        elif isinstance(value, str):
            try:
                numbers = [int(v) for v in _SHAPE_SPLIT.split(value.strip())]
            except ValueError:
                raise ConvArgumentError(name, expected, repr(value)) from None
            if kind == "output_size" and len(numbers) == 1:
                numbers *= 2
        else:
            raise ConvArgumentError(name, expected, repr(value))
        if len(numbers) != sizes:
            raise ConvArgumentError(name, expected, repr(value))
        return Written(tuple(numbers), "x".join(map(str, numbers)))
    expected = "a number such as 1,102, 2.76M, 0.0439 or 4.4% (the arithmetic goes in 'expression')"
    if isinstance(value, bool):
        raise ConvArgumentError(name, expected, repr(value))
    if isinstance(value, float):
        return _written_number(repr(value), expected, name)
    if isinstance(value, str):
        value = _written_number(value, expected, name)
        if value.tolerance or isinstance(value.value, Fraction):
            return value
        value = value.value
    if isinstance(value, int):
        return Written(value, format_number(value))
    raise ConvArgumentError(name, expected, repr(value))


# ---------------------------------------------------------------------- claims and sheets


@dataclass(frozen=True)
class Claim:
    """One line of an answer sheet."""

    number: int
    quantity: str
    written: Written
    expression: str = ""
    note: str = ""

    @property
    def part(self) -> str:
        return _split(self.quantity)[0]

    @property
    def kind(self) -> str:
        return _split(self.quantity)[1]

    def parsed_expression(self):
        return parse_expression(self.expression) if self.expression else None


@dataclass(frozen=True)
class Sheet:
    """A question and the claims made about it."""

    question: Question
    claims: tuple[Claim, ...]
    counting: str = "dense"
    input_reading: str = ""
    title: str = ""
    source: str = ""


def _check_quantity(text: object, name: str) -> str:
    if not isinstance(text, str):
        raise ConvArgumentError(name, f"a quantity name: {QUANTITY_HELP}", repr(text))
    quantity = text.strip().lower().replace("-", "_")
    if quantity not in QUANTITIES:
        close = difflib.get_close_matches(quantity, QUANTITIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConvArgumentError(name, f"a quantity name: {QUANTITY_HELP}", repr(text) + hint)
    return quantity


def make_claim(number: int, quantity: object, value: object, expression: object, note: object,
               batch: int, name: Callable[[str], str]) -> Claim:
    """Validate one claim; errors name ``name(key)`` for the key at fault."""
    quantity = _check_quantity(quantity, name("quantity"))
    written = parse_written(value, quantity, batch, name("value"))
    if expression is None:
        expression = ""
    if not isinstance(expression, str):
        raise ConvArgumentError(name("expression"), "a string of arithmetic such as \"(5*5*3+1)*256\"",
                                repr(expression))
    if expression.strip():
        if _split(quantity)[1] in SHAPE_KINDS:
            raise ConvArgumentError(name("expression"), f"no expression for a shape ({quantity})",
                                    repr(expression))
        try:
            parse_expression(expression).value()
        except ExpressionError as error:
            raise ConvArgumentError(name("expression"), "arithmetic such as \"(5*5*3+1)*256\"",
                                    f"{expression!r} ({error})") from None
        except ZeroDivisionError:
            raise ConvArgumentError(name("expression"), "arithmetic without a division by zero",
                                    repr(expression)) from None
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise ConvArgumentError(name("note"), "a string", repr(note))
    return Claim(number, quantity, written, expression.strip(), note.strip())


def _check_counting(value: object, name: str) -> str:
    if value not in CONVENTIONS:
        raise ConvArgumentError(name, f"one of {', '.join(map(repr, CONVENTIONS))}", repr(value))
    return value


_INLINE_CLAIM = "QUANTITY=VALUE or QUANTITY=EXPRESSION=VALUE such as separable.params=15+1024=1102"


def sheet_from_strings(question: Question, claims: Sequence[str], counting: str = "dense",
                       input_reading: str = "", name: str = "--claim") -> Sheet:
    """Claims written ``QUANTITY=VALUE`` or ``QUANTITY=EXPRESSION=VALUE`` (errors name ``name``)."""
    parsed = []
    for number, text in enumerate(claims, start=1):
        fields = text.split("=")
        if len(fields) not in (2, 3) or not all(f.strip() for f in fields):
            raise ConvArgumentError(name, f"{_INLINE_CLAIM}", repr(text))
        expression = fields[1] if len(fields) == 3 else None
        parsed.append(make_claim(number, fields[0], fields[-1].strip(), expression, None,
                                 question.input_shape[0], lambda key, t=text: f"{name} {t!r}: {key}"))
    return Sheet(question, tuple(parsed), _check_counting(counting, "--counting"), input_reading)


# ---------------------------------------------------------------------- claims files


class ClaimsFileError(ConvArgumentError):
    """A claims file that cannot be used: ``FILE:LINE: key: expected ..., got ...``.

    A TOML syntax error reads ``FILE:LINE:COLUMN: invalid TOML: <what the parser says>``.
    """

    def __init__(self, location: str, argument: str, expected: str, got: str, syntax: str = ""):
        super().__init__(argument, expected, got)
        self.location = location
        self.syntax = syntax

    def __str__(self) -> str:
        if self.syntax:
            return f"{self.location}: invalid TOML: {self.syntax}"
        return f"{self.location}: {super().__str__()}"


class _KeyLines:
    """Where each key of a TOML file is written: ``[table]``, ``[[array]]`` and ``key = ...`` lines."""

    _HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    _KEY = re.compile(r"\s*(?:\"([^\"]+)\"|'([^']+)'|([A-Za-z0-9_-]+))\s*=")

    def __init__(self, text: str):
        self.lines: dict[tuple[str, int | None, str], int] = {}
        table: tuple[str, int | None] = ("", None)
        counts: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                if header.group(1) == "[[":
                    counts[header.group(2)] = counts.get(header.group(2), 0) + 1
                    table = (header.group(2), counts[header.group(2)])
                else:
                    table = (header.group(2), None)
                self.lines.setdefault((*table, ""), number)
                continue
            key = self._KEY.match(line)
            if key:
                self.lines.setdefault((*table, next(g for g in key.groups() if g)), number)

    def line(self, table: str, index: int | None, key: str) -> int | None:
        """The line of ``key`` in ``[table]`` (or the ``index``-th ``[[table]]``), else of its header."""
        return self.lines.get((table, index, key)) or self.lines.get((table, index, ""))


_TOP_KEYS = ("title", "question", "claim")
_CLAIM_KEYS = ("quantity", "value", "expression", "note")
_QUESTION_FILE_KEYS = (*QUESTION_KEYS, "counting")


def parse_sheet(text: str, source: str = "<claims>") -> Sheet:
    """Read a claims file's text (see ``examples/answer_sheet.toml``).

    Raises :class:`ClaimsFileError` naming ``source:line`` and the key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        location = f"{source}:{where.group(1)}:{where.group(2)}" if where else source
        detail = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise ClaimsFileError(location, "TOML", "valid TOML", repr(detail), syntax=detail) from None
    lines = _KeyLines(text)

    def fail(table: str, index: int | None, key: str, error: ConvArgumentError) -> ClaimsFileError:
        line = lines.line(table, index, key)
        return ClaimsFileError(f"{source}:{line}" if line else source, error.argument, error.expected, error.got)

    def refuse(table: str, index: int | None, key: str, argument: str, expected: str, got: str):
        return fail(table, index, key, ConvArgumentError(argument, expected, got))

    for key in data:
        if key not in _TOP_KEYS:
            raise refuse("", None, key, key, f"a key among {', '.join(_TOP_KEYS)}", "an unknown key")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise refuse("", None, "title", "title", "a string", repr(title))

    table = data.get("question")
    if not isinstance(table, dict):
        raise refuse("", None, "question", "question",
                     "a [question] table with input, kernel and filters", repr(table) if table else "none")
    for key in table:
        if key not in _QUESTION_FILE_KEYS:
            raise refuse("question", None, key, f"question.{key}",
                          f"a key among {', '.join(_QUESTION_FILE_KEYS)}", "an unknown key")
    try:
        question, reading = Question.from_text(
            {k: v for k, v in table.items() if k != "counting"}, name=lambda key: f"question.{key}")
        counting = _check_counting(table.get("counting", "dense"), "question.counting")
    except ConvArgumentError as error:
        raise fail("question", None, error.argument.removeprefix("question."), error) from None

    entries = data.get("claim")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise refuse("", None, "claim", "claim", "one or more [[claim]] tables", repr(entries) if entries else "none")
    claims = []
    for number, entry in enumerate(entries, start=1):
        for key in entry:
            if key not in _CLAIM_KEYS:
                raise refuse("claim", number, key, f"claim[{number}].{key}",
                             f"a key among {', '.join(_CLAIM_KEYS)}", "an unknown key")
        for key in ("quantity", "value"):
            if key not in entry:
                raise refuse("claim", number, "", f"claim[{number}].{key}", f"a {key!r} key", "none")
        try:
            claims.append(make_claim(number, entry["quantity"], entry["value"], entry.get("expression"),
                                     entry.get("note"), question.input_shape[0],
                                     lambda key, n=number: f"claim[{n}].{key}"))
        except ConvArgumentError as error:
            raise fail("claim", number, error.argument.rsplit(".", 1)[-1], error) from None
    return Sheet(question, tuple(claims), counting, reading.replace("Read input", "Read question.input"),
                 title, source)


def load_sheet(path: str | Path, name: str = "FILE") -> Sheet:
    """Read and parse a claims file; a missing or unreadable file is reported naming ``name``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConvArgumentError(name, "a readable TOML claims file", f"{str(path)!r} ({reason})") from None
    return parse_sheet(text, str(path))


# ---------------------------------------------------------------------- the reading search


@dataclass(frozen=True)
class Change:
    """One way a reading differs from the question as asked."""

    dimension: str
    value: object
    description: str


@dataclass(frozen=True)
class Reading:
    """A setting other than the question as asked, and the claim's value under it."""

    changes: tuple[Change, ...]
    answer: Answer

    def describe(self) -> str:
        return "; ".join(change.description for change in self.changes)

    def to_json(self) -> dict[str, object]:
        return {
            "changes": {c.dimension: _json_value(c.value) for c in self.changes},
            "description": self.describe(),
            "value": _json_value(self.answer.value),
            "working": self.answer.working,
        }


def _json_value(value: object) -> object:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, Fraction):
        return _json_number(value)
    return value


_QUESTION_FIELDS = {"padding": "padding", "input": "input_shape", "bias": "bias", "filters": "filters"}


def _apply(setting: Setting, change: Change) -> Setting:
    if change.dimension in _QUESTION_FIELDS:
        question = setting.question.replace(**{_QUESTION_FIELDS[change.dimension]: change.value})
        return dataclasses.replace(setting, question=question)
    return dataclasses.replace(setting, **{change.dimension: change.value})


def _spans(question: Question) -> tuple[int, int]:
    return tuple(d * (k - 1) + 1 for d, k in zip(question.dilation, question.kernel, strict=True))


def _padding_changes(setting: Setting, claim: Claim) -> Iterator[Change]:
    for p in range(max(_spans(setting.question))):
        yield Change("padding", ((p, p), (p, p)), f"padding {p}")
    yield Change("padding", "same", "padding 'same'")


def _input_changes(setting: Setting, claim: Claim) -> Iterator[Change]:
    n, c, h, w = setting.question.input_shape
    reach = 2 * (max(_spans(setting.question)) - 1) + 1
    for delta in sorted(range(-reach, reach + 1), key=lambda d: (abs(d), d)):
        if delta and min(h, w) + delta >= 1:
            shape = (n, c, h + delta, w + delta)
            yield Change("input", shape, f"input {setting.question.replace(input_shape=shape).input_text()}")


_BIAS_WORDS = {"keras": "bias keras (pointwise part only)", "torch": "bias torch (on both parts)",
               "none": "no bias"}


def _bias_changes(setting: Setting, claim: Claim) -> Iterator[Change]:
    for name in BIAS_CONVENTIONS:
        if claim.part == "standard":  # keras and torch agree on the standard layer: it has a bias
            yield Change("bias", name, "no bias" if name == "none" else "with bias")
        else:
            yield Change("bias", name, _BIAS_WORDS[name])


def _counting_changes(setting: Setting, claim: Claim) -> Iterator[Change]:
    for convention in CONVENTIONS:
        yield Change("counting", convention, _COUNTING_WORDS[convention])


_ALTERNATIVE_MEASURES = {"mults": ("flops",), "macs": ("flops",), "flops": ("mults", "2 x mults")}


def _measure_changes(setting: Setting, claim: Claim) -> Iterator[Change]:
    alternatives = ("inverse",) if claim.part == "ratio" else _ALTERNATIVE_MEASURES.get(claim.kind, ())
    for measure in alternatives:
        yield Change("measure", measure, MEASURES[measure])


def is_typo(a: int, b: int) -> bool:
    """``a`` and ``b`` differ by one keystroke: a digit changed, added, dropped, or two neighbours swapped."""
    x, y = str(a), str(b)
    if x == y:
        return False
    if len(x) == len(y):
        diffs = [i for i in range(len(x)) if x[i] != y[i]]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and x[diffs[0]] == y[diffs[1]] and x[diffs[1]] == y[diffs[0]])
    shorter, longer = sorted((x, y), key=len)
    return len(longer) == len(shorter) + 1 and any(longer[:i] + longer[i + 1:] == shorter
                                                   for i in range(len(longer)))


def _claim_numbers(claim: Claim) -> list[int]:
    """The integers a claim writes: its value's and its expression's."""
    numbers = [int(v) for v in claim.written.numbers() if Fraction(v).denominator == 1]
    if claim.expression:
        numbers += [int(t.replace(",", "")) for t in re.findall(r"\d{1,3}(?:,\d{3})+|\d+", claim.expression)]
    return numbers


def _filter_changes(setting: Setting, claim: Claim) -> Iterator[Change]:
    filters = setting.question.filters
    written = [n for n in _claim_numbers(claim) if is_typo(n, filters)]
    for count in dict.fromkeys([*written, filters - 1, filters + 1, filters - 2, filters + 2]):
        if count >= 1:
            yield Change("filters", count, f"{count} filters, not {filters}")


_SPATIAL = {*SHAPE_KINDS, *LENGTH_KINDS, *COUNT_KINDS, "ratio.mults", "ratio.flops"}
_COUNTED = {*COUNT_KINDS, "ratio.mults", "ratio.flops"}


@dataclass(frozen=True)
class _Dimension:
    """A way of reading a question differently: which claims it can affect, and its candidates."""

    name: str
    affects: Callable[[Claim], bool]
    changes: Callable[[Setting, Claim], Iterable[Change]]


def _kind_key(claim: Claim) -> str:
    return claim.quantity if claim.part == "ratio" else claim.kind


#: In order of preference: when several readings hold, the first is reported first.
DIMENSIONS = (
    _Dimension("padding", lambda c: _kind_key(c) in _SPATIAL, _padding_changes),
    _Dimension("input", lambda c: _kind_key(c) in _SPATIAL, _input_changes),
    _Dimension("bias", lambda c: _kind_key(c) in {"params", "adds", "flops", "ratio.params", "ratio.flops"},
               _bias_changes),
    _Dimension("counting", lambda c: _kind_key(c) in _COUNTED, _counting_changes),
    _Dimension("measure", lambda c: c.part == "ratio" or c.kind in _ALTERNATIVE_MEASURES, _measure_changes),
    _Dimension("filters", lambda c: c.part != "depthwise" and c.kind not in LENGTH_KINDS
               and c.quantity != "ratio.mobilenet" and c.kind != "output_size", _filter_changes),
)

#: Readings change at most this many things at once.
MAX_CHANGES = 2


def _candidate_readings(setting: Setting, claim: Claim) -> Iterator[tuple[int, tuple[Change, ...]]]:
    """``(level, changes)``: the question as asked (level 0), then one change, then two."""
    yield 0, ()
    per_dimension = []
    for dimension in DIMENSIONS:
        if dimension.affects(claim):
            changes = [c for c in dimension.changes(setting, claim) if _apply(setting, c) != setting]
            per_dimension.append(changes)
    for level in range(1, MAX_CHANGES + 1):
        for dimensions in itertools.combinations(per_dimension, level):
            for changes in itertools.product(*dimensions):
                yield level, changes


@dataclass(frozen=True)
class ExpressionCheck:
    """What the arithmetic written for a claim shows."""

    text: str
    value: Number
    evaluates_to_written: bool
    comparison: Comparison | None
    formula: str
    reading: Reading | None = None
    carried: tuple[str, ...] = ()

    def sentences(self, written: Written) -> list[str]:
        shown = format_number(self.value)
        if self.evaluates_to_written:
            lines = [f"{self.text} = {shown}, as written"]
        else:
            lines = [f"{self.text} = {shown}, not the {written.text} written: an arithmetic slip"]
        if self.comparison is not None:
            lines.append(f"it is {self.comparison.describe(self.formula)}")
        if self.reading is not None:
            lines.append(f"it is the formula under the reading {self.reading.describe()}: "
                         f"{self.reading.answer.quantity}")
        lines += self.carried
        return lines

    def to_json(self, written: Written) -> dict[str, object]:
        return {
            "written": self.text,
            "value": _json_number(self.value),
            "evaluates_to_written": self.evaluates_to_written,
            "formula": self.formula,
            "comparison": None if self.comparison is None else {
                "kind": self.comparison.kind,
                "numbers": [dataclasses.asdict(s) for s in self.comparison.swaps],
                "edits": list(self.comparison.edits),
            },
            "formula_under_reading": None if self.reading is None else self.reading.to_json(),
            "sentences": self.sentences(written),
        }


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict: ``kind`` is :data:`HOLDS`, :data:`WRONG` or :data:`READING`."""

    claim: Claim
    kind: str
    right: Answer
    readings: tuple[Reading, ...] = ()
    expression: ExpressionCheck | None = None

    @property
    def near_miss(self) -> str:
        """For a wrong integer value one keystroke from the right one, a sentence saying so."""
        written, right = self.claim.written.value, self.right.value
        if self.kind == WRONG and isinstance(written, int) and isinstance(right, int) and is_typo(written, right):
            return (f"{format_number(written)} is one keystroke from the right {format_number(right)}: "
                    "a copying slip?")
        return ""


def _same_formula(expression, quantity: Quantity | None) -> Comparison | None:
    if expression is None or quantity is None:
        return None
    return compare(expression, quantity.expr)


def _reading_key(setting: Setting, layers: tuple[ConvGeometry, SeparableGeometry], part: str) -> tuple:
    """What a claim about ``part`` can see of a setting: readings with equal keys are one reading.

    ``padding 2`` and ``padding 'same'`` resolve alike; ``keras`` and ``torch`` both put a bias on
    the standard layer and on the pointwise part.
    """
    standard, separable = layers
    depthwise_bias, pointwise_bias = BIAS_CONVENTIONS[setting.question.bias]
    bias = {"standard": pointwise_bias, "depthwise": depthwise_bias, "pointwise": pointwise_bias}.get(
        part, (depthwise_bias, pointwise_bias))
    shape = (standard.input_shape, standard.weight_shape, standard.stride, standard.padding, standard.dilation,
             separable.depthwise.out_channels)
    return shape, bias, setting.counting, setting.measure


def judge(claim: Claim, question: Question, counting: str = "dense") -> Verdict:
    """The verdict on one claim, with the reading search and the expression check."""
    asked = Setting(question, counting)
    expression = claim.parsed_expression()
    right = answer(claim.quantity, asked)
    matches: list[Reading] = []
    formula_reading: Reading | None = None
    formula_found = expression is None or right.quantity is None
    match_level = None
    seen: set[object] = set()
    for level, changes in _candidate_readings(asked, claim):
        if match_level is not None and level > match_level and formula_found:
            break
        setting = asked
        for change in changes:
            setting = _apply(setting, change)
        try:
            layers = setting.question.layers()
        except ConvArgumentError:
            continue  # not a valid layer: no reading
        key = _reading_key(setting, layers, claim.part)
        if key in seen:
            continue
        seen.add(key)
        result = answer(claim.quantity, setting)
        if (match_level is None or level == match_level) and claim.written.matches(result.value):
            match_level = level
            matches.append(Reading(changes, result))
        if not formula_found:
            comparison = _same_formula(expression, result.quantity)
            if comparison is not None and comparison.kind == "same":
                formula_found = True
                if level:
                    formula_reading = Reading(changes, result)

    check = None
    if expression is not None:
        value = expression.value()
        check = ExpressionCheck(
            text=expression.numbers(), value=value, evaluates_to_written=claim.written.matches(value),
            comparison=_same_formula(expression, right.quantity),
            formula=right.quantity.formula if right.quantity else "", reading=formula_reading,
        )
    if match_level == 0:
        return Verdict(claim, HOLDS, right, (), check)
    if matches:
        return Verdict(claim, READING, right, tuple(matches), check)
    return Verdict(claim, WRONG, right, (), check)


def _carried_notes(verdict: Verdict, others: Sequence[Claim]) -> tuple[str, ...]:
    """Numbers of a same-form expression that are values written for other claims."""
    check = verdict.expression
    if check is None or check.comparison is None:
        return ()
    notes = []
    for written in dict.fromkeys(swap.written for swap in check.comparison.swaps):
        source = next((c for c in others if c.number != verdict.claim.number and c.written.text == written), None)
        if source is not None:
            notes.append(f"{written} is the value written for claim {source.number} ({source.quantity})")
    return tuple(notes)


# ---------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Report:
    """Every verdict of a sheet."""

    sheet: Sheet
    verdicts: tuple[Verdict, ...]

    @property
    def exit_status(self) -> int:
        """:data:`EXIT_SOME_WRONG` if any claim is wrong, else :data:`EXIT_ONLY_UNDER_READINGS` if
        any holds only under another reading, else :data:`EXIT_ALL_HOLD`."""
        kinds = {v.kind for v in self.verdicts}
        if WRONG in kinds:
            return EXIT_SOME_WRONG
        return EXIT_ONLY_UNDER_READINGS if READING in kinds else EXIT_ALL_HOLD

    def counts(self) -> dict[str, int]:
        return {kind: sum(v.kind == kind for v in self.verdicts) for kind in (HOLDS, WRONG, READING)}

    def readings_summary(self) -> dict[str, list[int]]:
        """Each reading that makes a claim hold -> the claims it makes hold (first readings only)."""
        summary: dict[str, list[int]] = {}
        for v in self.verdicts:
            if v.readings:
                summary.setdefault(v.readings[0].describe(), []).append(v.claim.number)
        return summary


def check(sheet: Sheet) -> Report:
    """Judge every claim of ``sheet``."""
    verdicts = []
    for claim in sheet.claims:
        verdict = judge(claim, sheet.question, sheet.counting)
        if verdict.expression is not None:
            notes = _carried_notes(verdict, sheet.claims)
            verdict = dataclasses.replace(verdict,
                                          expression=dataclasses.replace(verdict.expression, carried=notes))
        verdicts.append(verdict)
    return Report(sheet, tuple(verdicts))


def describe_question(sheet: Sheet) -> str:
    """``input 14x14x3, 5x5 kernels, 256 filters, stride 1, padding 0, ...``: the question as asked."""
    q = sheet.question
    parts = [f"input {q.input_text()}", *render.layer_phrases(q.layers()[0])]
    if q.groups != 1:
        parts.append(f"groups {q.groups}")
    if q.depth_multiplier != 1:
        parts.append(f"depth multiplier {q.depth_multiplier}")
    parts += [f"bias {q.bias}", f"{sheet.counting} counting"]
    return ", ".join(parts)


def _table(report: Report) -> list[str]:
    header = ("#", "claim", "written", "verdict", "right value", "expression", "reading that makes it hold")
    rows = [header]
    for v in report.verdicts:
        expression = ""
        if v.expression is not None:
            expression = "ok" if v.expression.evaluates_to_written else f"gives {format_number(v.expression.value)}"
        verdict = {HOLDS: "holds", WRONG: "wrong", READING: "holds if"}[v.kind]
        reading = v.readings[0].describe() if v.readings else ""
        rows.append((str(v.claim.number), v.claim.quantity, v.claim.written.text, verdict, v.right.text,
                     expression, reading))
    return render.table(rows, "rl")


def _details(verdict: Verdict) -> list[str]:
    claim = verdict.claim
    indent = " " * 6
    lines = [f"  {claim.number:>2}  {claim.quantity} = {claim.written.text}"]

    def item(label: str, texts: Sequence[str]) -> None:
        for i, text in enumerate(texts):
            lines.append(f"{indent}{(label if i == 0 else '').ljust(13)}{text}")

    if claim.note:
        item("written as:", [claim.note])
    item("right:", [verdict.right.working])
    if verdict.readings:
        first, *others = verdict.readings
        item("holds under:", [f"{first.describe()}: {first.answer.working}"])
        if others:
            item("also under:", ["; ".join(f"{r.describe()}" for r in others)])
    elif verdict.kind == WRONG:
        item("no reading:", [f"none of the readings searched (up to {MAX_CHANGES} changes) gives "
                             f"{claim.written.text}"])
        if verdict.near_miss:
            item("near miss:", [verdict.near_miss])
    if verdict.expression is not None:
        item("arithmetic:", verdict.expression.sentences(claim.written))
    return lines


def render_text(report: Report) -> str:
    """The verdict table, a summary, and each claim's working."""
    sheet = report.sheet
    lines = ["npconv check: " + (sheet.title or (sheet.source or "claims")), ""]
    if sheet.input_reading:
        lines.append(sheet.input_reading)
    lines.append(f"Question: {describe_question(sheet)}.")
    lines += ["", *_table(report), ""]
    counts = report.counts()
    lines.append(f"{counts[HOLDS]} {'holds' if counts[HOLDS] == 1 else 'hold'}, {counts[WRONG]} wrong, "
                 f"{counts[READING]} {'holds' if counts[READING] == 1 else 'hold'} under another reading.")
    for reading, numbers in report.readings_summary().items():
        lines.append(f"  {reading}: claim{'s' * (len(numbers) > 1)} {', '.join(map(str, numbers))}")
    status = report.exit_status
    meaning = {EXIT_ALL_HOLD: "every claim holds", EXIT_SOME_WRONG: "some claim is wrong",
               EXIT_ONLY_UNDER_READINGS: "no claim is wrong, but some hold only under another reading"}
    lines += [f"Exit status {status}: {meaning[status]}.", "", "Details"]
    for verdict in report.verdicts:
        lines += _details(verdict)
    return "\n".join(lines)


def to_json_dict(report: Report) -> dict[str, object]:
    """Every verdict as JSON-ready data."""
    sheet = report.sheet
    q = sheet.question
    claims = []
    for v in report.verdicts:
        claims.append({
            "number": v.claim.number,
            "quantity": v.claim.quantity,
            "written": v.claim.written.to_json(),
            "written_text": v.claim.written.text,
            "note": v.claim.note,
            "verdict": v.kind,
            "right": {"value": _json_value(v.right.value), "text": v.right.text, "working": v.right.working},
            "readings": [r.to_json() for r in v.readings],
            "near_miss": v.near_miss,
            "expression": None if v.expression is None else v.expression.to_json(v.claim.written),
        })
    return {
        "source": sheet.source,
        "title": sheet.title,
        "question": {
            "input_shape_nchw": list(q.input_shape),
            "kernel": list(q.kernel),
            "filters": q.filters,
            "stride": list(q.stride),
            "padding": q.layers()[0].to_dict()["padding"],
            "dilation": list(q.dilation),
            "groups": q.groups,
            "depth_multiplier": q.depth_multiplier,
            "bias": q.bias,
            "counting": sheet.counting,
            "description": describe_question(sheet),
        },
        "claims": claims,
        "summary": {**report.counts(), "readings": report.readings_summary()},
        "exit_status": report.exit_status,
    }


__all__ = [
    "DIMENSIONS", "EXIT_ALL_HOLD", "EXIT_ERROR", "EXIT_ONLY_UNDER_READINGS", "EXIT_SOME_WRONG", "HOLDS",
    "MEASURES", "QUANTITIES", "READING", "WRONG", "Answer", "Claim", "ClaimsFileError", "Reading",
    "Report", "Setting", "Sheet", "Verdict", "Written", "answer", "check", "is_typo", "judge",
    "load_sheet", "parse_sheet", "parse_written", "render_text", "sheet_from_strings", "to_json_dict",
]
