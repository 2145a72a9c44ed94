"""The reading search: the ways a question can be read differently, and the verdict on a claim.

:func:`judge` evaluates the claim under the question as asked, then under
every reading of one change, then of two (:data:`DIMENSIONS`, in order of
preference), with the same formulas, and reports the fewest changes that
make the value right; where arithmetic is written it also finds the reading
under which it is exactly the formula.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from npconv._expr import format_number
from npconv.claims.answers import (
    _COUNTING_WORDS,
    COUNT_KINDS,
    LENGTH_KINDS,
    MEASURES,
    SHAPE_KINDS,
    Answer,
    Setting,
    answer,
)
from npconv.claims.written import Claim, ExpressionCheck, json_number
from npconv.counts import CONVENTIONS
from npconv.errors import ConvArgumentError
from npconv.expressions import Comparison, compare
from npconv.formulas import Quantity
from npconv.geometry import BIAS_CONVENTIONS, ConvGeometry, SeparableGeometry
from npconv.question import Question

HOLDS, WRONG, READING = "holds", "wrong", "holds under another reading"


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
            "changes": {c.dimension: json_value(c.value) for c in self.changes},
            "description": self.describe(),
            "value": json_value(self.answer.value),
            "working": self.answer.working,
        }


def json_value(value: object) -> object:
    if isinstance(value, tuple):
        return [json_value(v) for v in value]
    if isinstance(value, Fraction):
        return json_number(value)
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


def carried_notes(verdict: Verdict, others: Sequence[Claim]) -> tuple[str, ...]:
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
