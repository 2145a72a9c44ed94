"""The verdict on a claim: the cheapest explanation of what was written, found by a bounded search.

An *explanation* of a claim's value is a set of changes to the question as asked, each with a
cost (:data:`COSTS`):

* a **reading** of the question the teacher allows (another padding, another bias convention --
  which parts of a separable layer carry a bias --, and, when allowed, dense or effective
  counting): cost 1, a right answer to an ambiguous question;
* a value **carried** from another claim into this one's working (error carried forward): 1.5;
* a **slip**: a number copied wrong (254 for the 256 filters, *written* in the claim), a value
  rounded beyond the rules' tolerance, arithmetic that does not give the value written: 2;
* a **misconception** of the catalogue (:mod:`npconv.claims.misconceptions`), or a number in the
  working that is none of the question's (a wrong intermediate value): 3;
* a copying slip nothing in the claim shows (a filter count or input size one keystroke away,
  never written): 4;
* a reading the rules do not allow: 5, reported and never credited.

The written working comes first: it is evaluated (an arithmetic slip when it does not give the
value written), and an explanation must then *be* the working -- the working, its numbers read as
the formula's symbols, equals the formula under that explanation by algebra
(:func:`npconv.claims.algebra.lift`).  So a reading the working contradicts (padding 1 where the
working writes ``14 - 5``) is never the verdict.  The verdict is the cheapest explanation's worst
change: :data:`HOLDS` (none), :data:`READING` (readings and carried values only), :data:`SLIP`, or
:data:`WRONG` (a misconception, a wrong value, a reading not allowed, or nothing explains it); the
right value as asked, with its working, is always given, and beside it the right value under the
readings the explanation uses.

The search is bounded by construction: candidate paddings are the plausible ones (0 up to 'same',
'full', and those that give an output length the claim writes), filter counts and input sizes only
those the claim writes or one keystroke away, at most two changes at once, and at most
:attr:`Rules.budget <npconv.claims.rules.Rules>` candidate settings evaluated per claim; a verdict
says when the budget stopped its search.

Size: the search (candidate changes, their combinations, the evaluation and the verdict)
is one algorithm whose steps share the cost order; its sections follow those steps.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from npconv import quantities as Q
from npconv._expr import Expr, format_number
from npconv.claims import misconceptions as M
from npconv.claims.algebra import MAX_ASSIGNMENTS, Budget, Lift, discrepancy, lift
from npconv.claims.answers import (
    _COUNTING_WORDS,
    COUNT_KINDS,
    LENGTH_KINDS,
    SHAPE_KINDS,
    Answer,
    Setting,
    answer,
)
from npconv.claims.rules import Rules
from npconv.claims.written import Claim, ExpressionCheck, Written, json_number
from npconv.counts import CONVENTIONS
from npconv.errors import ConvArgumentError
from npconv.expressions import normal_form
from npconv.formulas import Quantity
from npconv.geometry import same_padding
from npconv.question import Question

HOLDS, READING, SLIP, WRONG = "holds", "holds under another reading", "slip", "wrong"
VERDICTS = (HOLDS, READING, SLIP, WRONG)
#: The verdict of a question of an exercise sheet left unanswered (no value written): no search, no credit.
NOT_ANSWERED = "not answered"

#: What each kind of change costs an explanation; the cheapest explanation is the verdict.
COSTS = {"reading": 1.0, "carried": 1.5, "slip": 2.0, "misconception": 3.0, "wrong value": 3.0,
         "unseen slip": 4.0, "not allowed": 5.0}

#: The verdict each kind of change leads to (the worst change of an explanation decides).
SEVERITY = {"reading": READING, "carried": READING, "slip": SLIP, "unseen slip": SLIP,
            "misconception": WRONG, "wrong value": WRONG, "not allowed": WRONG}

#: Explanations change at most this many things at once (slips found in the working aside).
MAX_CHANGES = 2

#: Plausible symmetric paddings are 0 up to 'same', at most this many.
MAX_PADDINGS = 8


# ---------------------------------------------------------------------- changes and explanations


@dataclass(frozen=True)
class Change:
    """One way an explanation differs from the question as asked.

    ``dimension`` is ``padding``, ``bias``, ``counting``, ``filters``, ``input``, ``misconception``,
    ``carried``, ``swap``, ``rounded``, ``arithmetic`` or ``working``; ``kind`` a key of :data:`COSTS`.
    """

    dimension: str
    value: object
    description: str
    kind: str = "reading"

    @property
    def cost(self) -> float:
        return COSTS[self.kind]

    def to_json(self) -> dict[str, object]:
        return {"dimension": self.dimension, "value": json_value(self.value), "kind": self.kind,
                "description": self.description}


@dataclass(frozen=True)
class Reading:
    """An explanation: the changes, and the claim's value under them with its working."""

    changes: tuple[Change, ...]
    answer: Answer

    @property
    def cost(self) -> float:
        return sum(c.cost for c in self.changes)

    def describe(self) -> str:
        return "; ".join(change.description for change in self.changes)

    def to_json(self) -> dict[str, object]:
        return {
            "changes": [c.to_json() for c in self.changes],
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


# ---------------------------------------------------------------------- matching a value


def match(written: Written, value: object, rules: Rules) -> str | None:
    """``"exact"`` when ``value`` is what ``written`` says under the rules' tolerance, ``"rounded"``
    when it is only within the digits written (a slip under exact rules), else None."""
    if isinstance(written.value, tuple) or isinstance(value, tuple):
        return "exact" if written.value == value else None
    difference = abs(value - written.value)
    integer = Fraction(value).denominator == 1
    if difference == 0:
        return "exact"
    if rules.tolerance == "digits" or not integer:
        if difference <= written.tolerance:
            return "exact"
    elif rules.tolerance != "exact" and difference <= rules.tolerance * abs(value):
        return "exact"
    return "rounded" if difference <= written.tolerance else None


# ---------------------------------------------------------------------- candidate changes


_QUESTION_FIELDS = {"padding": "padding", "input": "input_shape", "bias": "bias", "filters": "filters"}


def _apply(setting: Setting, change: Change) -> Setting:
    if change.dimension in _QUESTION_FIELDS:
        question = setting.question.replace(**{_QUESTION_FIELDS[change.dimension]: change.value})
        return dataclasses.replace(setting, question=question)
    if change.dimension == "counting":
        return dataclasses.replace(setting, counting=change.value)
    return setting


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


def claim_numbers(claim: Claim) -> list[int]:
    """The integers a claim writes: its value's and its working's."""
    numbers = [int(v) for v in claim.written.numbers() if Fraction(v).denominator == 1]
    if claim.expression:
        numbers += [int(t.replace(",", "").replace("_", ""))
                    for t in re.findall(r"\d{1,3}(?:,\d{3})+|\d[\d_]*", claim.expression)]
    return numbers


_SPATIAL = {*SHAPE_KINDS, *LENGTH_KINDS, *COUNT_KINDS}
_BIAS_WORDS = {"keras": "bias keras (pointwise part only)", "torch": "bias torch (on both parts)"}


def _kind_of(claim: Claim) -> str:
    return claim.quantity if claim.part == "ratio" else claim.kind


def _reading_kind(rules: Rules, name: str) -> str:
    return "reading" if rules.allows(name) else "not allowed"


def _padding_changes(question: Question, claim: Claim, rules: Rules) -> Iterator[Change]:
    kind = _reading_kind(rules, "padding")
    _, _, h, w = question.input_shape
    spans = [d * (k - 1) + 1 for d, k in zip(question.dilation, question.kernel, strict=True)]
    same = [same_padding(size, k, s, d) for size, k, s, d in
            zip((h, w), question.kernel, question.stride, question.dilation, strict=True)]
    symmetric_same = same[0][0] == same[0][1] == same[1][0] == same[1][1]
    # plausible readings only: no padding up to 'same', 'same' itself and 'full' -- not whatever padding
    # would give the value written (that would explain any output size)
    values = list(range(min(max(same[0][0], same[1][0], 1), MAX_PADDINGS) + 1))
    if symmetric_same:
        values.append(same[0][0])
    values.append(max(spans) - 1)  # 'full'
    for p in dict.fromkeys(values):
        words = f"padding {p}"
        if symmetric_same and p == same[0][0]:
            words += " ('same')"
        elif p == max(spans) - 1 and p > 1:
            words += " ('full')"
        yield Change("padding", ((p, p), (p, p)), words, kind)
    if not symmetric_same:
        yield Change("padding", "same", "padding 'same'", kind)


def _bias_changes(question: Question, claim: Claim, rules: Rules) -> Iterator[Change]:
    if question.bias == "none" or claim.part not in ("depthwise", "separable", "ratio"):
        return  # keras and torch agree on the standard layer and the pointwise part
    other = "torch" if question.bias == "keras" else "keras"
    yield Change("bias", other, _BIAS_WORDS[other], _reading_kind(rules, "bias"))


def _counting_changes(question: Question, claim: Claim, rules: Rules, counting: str) -> Iterator[Change]:
    for convention in CONVENTIONS:
        if convention != counting:
            yield Change("counting", convention, _COUNTING_WORDS[convention], _reading_kind(rules, "counting"))


def _copy_changes(question: Question, claim: Claim, rules: Rules) -> Iterator[Change]:
    """Filter counts and input sizes copied wrong: those the claim writes (a slip), those one keystroke
    away that it does not (a slip nothing shows, only for a value written exactly)."""
    written = [n for n in claim_numbers(claim) if n >= 1]
    exact = claim.written.tolerance == 0
    if claim.part not in ("depthwise",) and claim.kind not in (*LENGTH_KINDS, "output_size") \
            and claim.quantity != "ratio.mobilenet":
        f = question.filters
        seen = [n for n in written if is_typo(n, f)]
        for n in dict.fromkeys(seen):
            yield Change("filters", n, f"{n} for the {f} filters (copying slip)", "slip")
        if exact:
            for n in (f - 1, f + 1, f - 2, f + 2):
                if n >= 1 and n not in seen:
                    yield Change("filters", n, f"{n} filters, not {f} (a copying slip?)", "unseen slip")
    if _kind_of(claim) in _SPATIAL:
        n, c, h, w = question.input_shape
        seen = [x for x in written if is_typo(x, h) and (h == w or x != w)]
        for x in dict.fromkeys(seen):
            shape = (n, c, x, x if h == w else w)
            yield Change("input", shape, f"{x} for the input's {h} (copying slip)", "slip")
        if exact:
            for x in (h - 1, h + 1):
                if x >= 1 and x not in seen:
                    shape = (n, c, x, x if h == w else w)
                    text = question.replace(input_shape=shape).input_text()
                    yield Change("input", shape, f"input {text}, not {question.input_text()} (a copying slip?)",
                                 "unseen slip")


def _misconception_changes(claim: Claim, rules: Rules) -> Iterator[Change]:
    family = "ratio" if claim.part == "ratio" else ("output" if claim.kind.startswith("output") else claim.kind)
    for m in M.CATALOGUE:
        if family in m.kinds:
            yield Change("misconception", m.name, m.title, "reading" if rules.allows(m.name) else "misconception")


def candidate_changes(question: Question, claim: Claim, rules: Rules, counting: str) -> list[list[Change]]:
    """Every candidate change of one claim, one list per dimension (none has two changes of a list)."""
    dimensions = []
    if _kind_of(claim) in _SPATIAL or claim.quantity in ("ratio.mults", "ratio.flops"):
        dimensions.append(list(_padding_changes(question, claim, rules)))
    if claim.kind in ("params", "adds", "flops") or claim.quantity in ("ratio.params", "ratio.flops"):
        dimensions.append(list(_bias_changes(question, claim, rules)))
    if claim.kind in COUNT_KINDS or claim.quantity in ("ratio.mults", "ratio.flops"):
        dimensions.append(list(_counting_changes(question, claim, rules, counting)))
    copies = list(_copy_changes(question, claim, rules))
    dimensions.append([c for c in copies if c.dimension == "filters"])
    dimensions.append([c for c in copies if c.dimension == "input"])
    dimensions.append(list(_misconception_changes(claim, rules)))
    return [d for d in dimensions if d]


def _combinations(dimensions: list[list[Change]]) -> list[tuple[Change, ...]]:
    """Every set of at most :data:`MAX_CHANGES` changes from distinct dimensions, cheapest first."""
    combos: list[tuple[Change, ...]] = [()]
    for level in range(1, MAX_CHANGES + 1):
        for chosen in itertools.combinations(dimensions, level):
            combos.extend(itertools.product(*chosen))
    order = {combo: i for i, combo in enumerate(combos)}
    return sorted(combos, key=lambda combo: (sum(c.cost for c in combo), order[combo]))


# ---------------------------------------------------------------------- the value under a set of changes


def _evaluate(claim: Claim, asked: Setting, changes: tuple[Change, ...]) -> tuple[Setting, Answer] | None:
    setting = asked
    for change in changes:
        setting = _apply(setting, change)
    try:
        layers = Q.Layers(*setting.question.layers())
    except ConvArgumentError:
        return None  # not a valid layer: no explanation
    misconception = next((M.BY_NAME[c.value] for c in changes if c.dimension == "misconception"), None)
    if misconception is None:
        try:
            return setting, answer(claim.quantity, setting)
        except ConvArgumentError:
            return None  # no value under this reading (a ratio over a layer that multiplies nothing)
    counted = claim.kind in COUNT_KINDS or claim.quantity in ("ratio.mults", "ratio.flops")
    if setting.counting != "dense" and counted:
        return None  # the catalogue's formulas count densely
    wrong = M.variant(layers, claim.part, claim.kind, misconception)
    if wrong is None:
        return None
    if isinstance(wrong, tuple):
        return setting, Answer(wrong, "x".join(map(str, wrong)), f"{misconception.title}: {'x'.join(map(str, wrong))}")
    q = Quantity.of(claim.kind, wrong)
    return setting, Answer(q.value, format_number(q.value), f"{q.formula} = {q}", q)


# ---------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict.

    ``kind`` is one of :data:`VERDICTS`; ``right`` the right value as asked, with its working;
    ``explanation`` the cheapest explanation found (None: nothing explains the value); ``under``
    the right value under the readings the explanation uses (None when it uses none); ``notes``
    sentences beside the verdict; ``stopped`` says the search budget ran out.
    """

    claim: Claim
    kind: str
    right: Answer
    explanation: Reading | None = None
    under: Answer | None = None
    expression: ExpressionCheck | None = None
    notes: tuple[str, ...] = ()
    stopped: bool = False
    evaluated: int = 0
    alternatives: tuple[Reading, ...] = field(default=())

    @property
    def changes(self) -> tuple[Change, ...]:
        return () if self.explanation is None else self.explanation.changes

    @property
    def readings(self) -> tuple[Reading, ...]:
        """The explanations of the same cost, when the verdict is :data:`READING`."""
        return (self.explanation, *self.alternatives) if self.kind == READING else ()

    def of_kind(self, *kinds: str) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind in kinds)

    def summary(self) -> str:
        """The explanation in one line, as the verdict table shows it."""
        parts = []
        for change in self.changes:
            text = change.description
            if change.kind == "not allowed":
                text = f"holds only under {text}, not allowed"
            parts.append(text)
        if self.under is not None and self.under.value != self.claim.written.value:
            readings = "; ".join(c.description for c in self.of_kind("reading") if c.dimension != "misconception")
            parts = [p if p != readings else f"{p} ({self.under.text})" for p in parts]
        if self.kind == WRONG and self.explanation is None:
            parts.append("no explanation found")
        return "; ".join(parts)


def _carried(claim: Claim, others: Mapping[Fraction | int, Claim], swap) -> Change | None:
    source = others.get(swap.written)
    if source is None or source.number == claim.number:
        return None
    return Change("carried", swap.written, f"{format_number(swap.written)} carried from claim {source.number}",
                  "carried")


_QUESTION_SYMBOLS = {"H", "W", "C_in", "C_out", "KH", "KW", "S", "S_H", "S_W", "D", "D_H", "D_W", "P_top",
                     "P_bottom", "P_left", "P_right", "N", "m", "C_in/g"}


def _swap_change(claim: Claim, swap, others: Mapping) -> Change:
    carried = _carried(claim, others, swap)
    if carried is not None:
        return carried
    symbols = set(swap.symbol.split(" = "))
    if symbols & _QUESTION_SYMBOLS and isinstance(swap.written, int) and isinstance(swap.value, int) \
            and is_typo(swap.written, swap.value):
        return Change("swap", swap.written, f"{swap} (copying slip)", "slip")
    return Change("swap", swap.written, str(swap), "wrong value")


def _keystroke(written: Written, value: object) -> bool:
    return (isinstance(written.value, int) and isinstance(value, int) and written.tolerance == 0
            and min(written.value, value) >= 100 and is_typo(written.value, value))


def _search(claim: Claim, asked: Setting, rules: Rules, target: Written, working: Expr | None,
            others: Mapping) -> tuple[list[tuple[Reading, Lift | None]], bool, int]:
    """Explanations of ``target`` (and of ``working``, when given), cheapest first; whether the budget
    stopped the search; how many settings were evaluated."""
    dimensions = candidate_changes(asked.question, claim, rules, asked.counting)
    found: list[tuple[Reading, Lift | None]] = []
    best = float("inf")
    evaluated = 0
    seen: set[object] = set()
    stopped = False
    algebra = Budget(10 * MAX_ASSIGNMENTS)  # readings of the working's numbers, over all candidates
    for combo in _combinations(dimensions):
        base = sum(c.cost for c in combo)
        if base > best:
            break
        if evaluated >= rules.budget:
            stopped = True
            break
        evaluated += 1
        result = _evaluate(claim, asked, combo)
        if result is None:
            continue
        got = result[1]
        key = (got.value, got.working, tuple(c.kind for c in combo))
        if key in seen:
            continue
        seen.add(key)
        if working is None:
            how = match(target, got.value, rules)
            if how is None and _keystroke(target, got.value) and all(c.kind == "reading" for c in combo):
                reading = Reading((*combo, Change("typo", target.value, f"{target.text} is one keystroke from "
                                                  f"{got.text} (a copying slip?)", "unseen slip")), got)
                found.append((reading, None))
                best = min(best, reading.cost)
                continue
            if how is None:
                continue
            if how == "rounded" and any(c.kind != "reading" for c in combo):
                continue  # a rounded value is read against the question, or an allowed reading of it, only
            extra = (Change("rounded", target.text, f"{target.text} is {got.text} rounded", "slip"),) \
                if how == "rounded" else ()
            reading = Reading((*combo, *extra), got)
            found.append((reading, None))
            best = min(best, reading.cost)
            continue
        if got.quantity is None or got.quantity.expr is None:
            continue
        exact = got.value == working.value()
        lifted = lift(working, got.quantity.expr, max_swaps=0, budget=algebra) if exact else None
        if lifted is None and base + COSTS["carried"] <= best and len(combo) <= 1 and algebra.left > 0:
            lifted = lift(working, got.quantity.expr, max_swaps=2, budget=algebra)
            if lifted is not None and not lifted.swaps:
                lifted = None  # the same formula but another value: a floor where the working has a ceil
        if lifted is None:
            continue
        swaps = tuple(_swap_change(claim, s, others) for s in lifted.swaps)
        reading = Reading((*combo, *swaps), got)
        found.append((reading, lifted))
        best = min(best, reading.cost)
    if working is not None:  # equal costs: the explanation whose working reads most like what was written
        mine = _tokens(normal_form(working).numbers())
        found.sort(key=lambda pair: (pair[0].cost, -difflib.SequenceMatcher(
            None, mine, _tokens(normal_form(pair[0].answer.quantity.expr).numbers()), autojunk=False).ratio()))
    else:
        found.sort(key=lambda pair: pair[0].cost)
    return found, stopped or algebra.left < 0, evaluated


def _tokens(text: str) -> list[str]:
    return re.findall(r"floor\(|ceil\(|[()+\-x/]|[\d,.]+", text)


def _readings_of(reading: Reading) -> tuple[str, ...]:
    return tuple(c.description for c in reading.changes if c.kind in ("reading", "not allowed", "misconception"))


def _verdict_kind(changes: Sequence[Change]) -> str:
    kinds = [SEVERITY[c.kind] for c in changes]
    return max(kinds, key=VERDICTS.index) if kinds else HOLDS


def judge(claim: Claim, question: Question, counting: str = "dense", rules: Rules | None = None,
          others: Mapping[Fraction | int, Claim] | None = None) -> Verdict:
    """The verdict on one claim (see the module docstring).  ``others`` maps the values written for
    the sheet's other claims to those claims (a number carried from one into another's working)."""
    rules = rules or Rules()
    others = others or {}
    asked = Setting(question, counting)
    right = answer(claim.quantity, asked)
    working = claim.parsed_expression()
    target = claim.written
    pre: list[Change] = []
    notes: list[str] = []
    if working is not None:
        evaluated_to = working.value()
        if match(claim.written, evaluated_to, Rules(tolerance="digits")) is None:
            pre.append(Change("arithmetic", evaluated_to, f"arithmetic slip ("
                              f"{format_number(evaluated_to)}, not {claim.written.text})", "slip"))
            target = Written(evaluated_to, format_number(evaluated_to))
    elif rules.working_required and claim.kind not in SHAPE_KINDS:
        pre.append(Change("working", None, "no working shown (the rules require it)", "slip"))

    found, stopped, evaluated = _search(claim, asked, rules, target, working, others)
    if working is not None and not found and match(target, right.value, rules) == "exact":
        # the working gives the right value but is not recognisably the formula: the value holds
        found = [(Reading((), right), None)]
    explanation = found[0][0] if found else None
    lifted = found[0][1] if found else None
    alternatives: tuple[Reading, ...] = ()
    if explanation is not None:  # other explanations as cheap, that read the question differently
        shown = {_readings_of(explanation)}
        for other, _ in found[1:]:
            if other.cost == explanation.cost and _readings_of(other) not in shown:
                shown.add(_readings_of(other))
                alternatives += (other,)

    changes = (*pre, *(explanation.changes if explanation else ()))
    kind = _verdict_kind(changes) if explanation is not None else WRONG
    if explanation is not None:
        explanation = Reading(changes, explanation.answer)
    elif pre:
        explanation = Reading(tuple(pre), right)

    under = None
    readings = [c for c in changes if c.kind == "reading" and c.dimension != "misconception"]
    if readings:
        setting = asked
        for change in readings:
            setting = _apply(setting, change)
        under = answer(claim.quantity, setting)

    check = None
    if working is not None:
        check = _expression_check(claim, working, right, lifted, explanation)
        if pre and pre[0].dimension == "arithmetic":
            coincidence = _coincidence(claim, asked, rules)
            if coincidence:
                notes.append(coincidence)
    if stopped:
        notes.append(f"the search stopped at its budget, after {evaluated:,} candidate readings; "
                     "explanations further out were not tried")
    return Verdict(claim, kind, right, explanation, under, check, tuple(notes), stopped, evaluated, alternatives)


def _coincidence(claim: Claim, asked: Setting, rules: Rules) -> str:
    """For an arithmetic slip: the value written, if an allowed reading the working does not use gives it."""
    for change in itertools.chain.from_iterable(candidate_changes(asked.question, claim, rules, asked.counting)):
        if change.kind != "reading" or change.dimension == "misconception":
            continue
        result = _evaluate(claim, asked, (change,))
        if result is not None and match(claim.written, result[1].value, rules) == "exact":
            return (f"{claim.written.text} is also the right value under {change.description}, "
                    "a reading the working does not use")
    return ""


def _expression_check(claim: Claim, working: Expr, right: Answer, lifted: Lift | None,
                      explanation: Reading | None) -> ExpressionCheck:
    value = working.value()
    formula = right.quantity.formula if right.quantity is not None else ""
    algebra = ""
    if lifted is not None:
        algebra = f"in symbols: {lifted.symbols}"
    elif right.quantity is not None and right.quantity.expr is not None:
        as_asked = lift(working, right.quantity.expr, max_swaps=0)
        if as_asked is not None:
            algebra = f"in symbols: {as_asked.symbols}: the formula {formula}"
        else:
            how = discrepancy(working, right.quantity.expr)
            algebra = f"not the formula {formula}" + (f": the formula {how}" if how else "")
    return ExpressionCheck(text=working.numbers(), value=value,
                           evaluates_to_written=match(claim.written, value, Rules(tolerance="digits")) is not None,
                           formula=formula, algebra=algebra)


def carried_values(claims: Sequence[Claim]) -> dict[Fraction | int, Claim]:
    """The numeric values written for claims -> the first claim that wrote each."""
    values: dict[Fraction | int, Claim] = {}
    for c in claims:
        if c.written is not None and not isinstance(c.written.value, tuple) and c.written.tolerance == 0:
            values.setdefault(c.written.value, c)
    return values


__all__ = [
    "COSTS",
    "HOLDS",
    "MAX_CHANGES",
    "NOT_ANSWERED",
    "READING",
    "SEVERITY",
    "SLIP",
    "VERDICTS",
    "WRONG",
    "Change",
    "Reading",
    "Verdict",
    "candidate_changes",
    "carried_values",
    "claim_numbers",
    "is_typo",
    "json_value",
    "judge",
    "match",
]
