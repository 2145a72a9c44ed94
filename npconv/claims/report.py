"""``npconv check``'s report: every verdict of a sheet (:func:`check` -> :class:`Report`), its score, as
text for people (:func:`render_text`) and as data (:func:`to_json_dict`), and the exit status.

The **score** is what a teacher would write at the top of the sheet: each claim earns 1 if it holds,
``reading_credit`` (default 1) if it holds only under a reading the rules allow, ``slip_credit``
(default 1/2) for a slip -- a number copied wrong, arithmetic that does not give the value written,
a value rounded beyond the tolerance, working missing where it is required -- and 0 when it is wrong
(a misconception, a wrong value, a reading the rules do not allow, or no explanation).  The score is
the sum over the claims, out of the number of claims.  A question of an exercise sheet left unanswered
is ``not answered``: it earns 0, counts in the number of claims, and its right value is not shown (the
teacher's model answers are :func:`npconv.claims.exercises.model_answers`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction

from npconv import render
from npconv._expr import format_number
from npconv.claims import misconceptions as M
from npconv.claims.answers import Setting, answer
from npconv.claims.readings import (
    HOLDS,
    NOT_ANSWERED,
    READING,
    SLIP,
    VERDICTS,
    WRONG,
    Change,
    Verdict,
    carried_values,
    claim_numbers,
    json_value,
    judge,
)
from npconv.claims.rules import Rules
from npconv.claims.sheets import Sheet
from npconv.claims.written import Written
from npconv.errors import EXIT_DISAGREES, EXIT_OK, EXIT_ONLY_UNDER_READINGS, EXIT_USAGE

#: Exit statuses of ``npconv check`` (see :data:`npconv.errors.EXIT_STATUSES`).
EXIT_ALL_HOLD, EXIT_SOME_WRONG, EXIT_ERROR = EXIT_OK, EXIT_DISAGREES, EXIT_USAGE

_SHORT = {HOLDS: "holds", READING: "holds if", SLIP: "slip", WRONG: "wrong", NOT_ANSWERED: "not answered"}
_KINDS = (*VERDICTS, NOT_ANSWERED)


# ---------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Report:
    """Every verdict of a sheet, under the rules it was graded by."""

    sheet: Sheet
    verdicts: tuple[Verdict, ...]
    rules: Rules = field(default_factory=Rules)

    @property
    def exit_status(self) -> int:
        """:data:`EXIT_SOME_WRONG` if any claim is wrong or has a slip, else
        :data:`EXIT_ONLY_UNDER_READINGS` if any holds only under a reading or is not answered, else
        :data:`EXIT_ALL_HOLD`."""
        kinds = {v.kind for v in self.verdicts}
        if kinds & {WRONG, SLIP}:
            return EXIT_SOME_WRONG
        return EXIT_ONLY_UNDER_READINGS if kinds & {READING, NOT_ANSWERED} else EXIT_ALL_HOLD

    def counts(self) -> dict[str, int]:
        return {kind: sum(v.kind == kind for v in self.verdicts) for kind in _KINDS}

    def credit(self, verdict: Verdict) -> Fraction:
        """What one claim earns (see the module docstring)."""
        return {HOLDS: Fraction(1), READING: self.rules.reading_credit, SLIP: self.rules.slip_credit,
                WRONG: Fraction(0), NOT_ANSWERED: Fraction(0)}[verdict.kind]

    @property
    def score(self) -> Fraction:
        return sum((self.credit(v) for v in self.verdicts), Fraction(0))

    def grouped(self) -> dict[str, dict[str, list[int]]]:
        """``readings`` / ``slips`` / ``misconceptions`` / ``not allowed`` -> what -> the claims it concerns."""
        groups: dict[str, dict[str, list[int]]] = {"readings": {}, "slips": {}, "misconceptions": {},
                                                  "not allowed": {}}
        for v in self.verdicts:
            readings = "; ".join(c.description for c in v.of_kind("reading"))
            if readings:
                groups["readings"].setdefault(readings, []).append(v.claim.number)
            for change in v.changes:
                if change.kind in ("slip", "unseen slip"):
                    group = _slip_group(change)
                elif change.kind in ("misconception", "wrong value"):
                    group = change.description if change.kind == "misconception" else "a wrong value in the working"
                    groups["misconceptions"].setdefault(group, []).append(v.claim.number)
                    continue
                elif change.kind == "not allowed":
                    groups["not allowed"].setdefault(change.description, []).append(v.claim.number)
                    continue
                else:
                    continue
                numbers = groups["slips"].setdefault(group, [])
                if v.claim.number not in numbers:
                    numbers.append(v.claim.number)
        return groups


def _slip_group(change: Change) -> str:
    return {"arithmetic": "arithmetic", "rounded": "rounded", "working": "no working"}.get(change.dimension,
                                                                                        "copying")


def check(sheet: Sheet, rules: Rules | None = None) -> Report:
    """Judge every claim of ``sheet`` under ``rules`` (default: the sheet's own).  Claims that write
    the same thing are judged once."""
    rules = rules or sheet.rules
    others = carried_values(sheet.claims)
    judged: dict[tuple, Verdict] = {}
    verdicts = []
    for claim in sheet.claims:
        if not claim.answered:
            verdicts.append(Verdict(claim, NOT_ANSWERED, answer(claim.quantity, Setting(sheet.question,
                                                                                       sheet.counting))))
            continue
        # the values of other claims its working writes (carried into it) are part of what it says
        written = set(claim_numbers(dataclasses.replace(claim, written=Written(0, "0")))) if claim.expression \
            else set()
        context = {k: c for k, c in others.items() if c.number != claim.number and k in written}
        key = (claim.quantity, claim.written, claim.expression, tuple((k, c.number) for k, c in context.items()))
        if key not in judged:
            judged[key] = judge(claim, sheet.question, sheet.counting, rules, context)
        verdicts.append(replace(judged[key], claim=claim))
    return Report(sheet, tuple(verdicts), rules)


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
    header = ("#", "claim", "written", "verdict", "right value", "working gives", "explanation")
    rows = [header]
    for v in report.verdicts:
        if not v.claim.answered:  # the right value stays hidden: the model answers are the teacher's
            rows.append((v.claim.label, v.claim.quantity, "-", _SHORT[v.kind], "", "", ""))
            continue
        gives = "" if v.expression is None else format_number(v.expression.value)
        rows.append((v.claim.label, v.claim.quantity, v.claim.written.text, _SHORT[v.kind], v.right.text,
                     gives, v.summary()))
    return render.table(rows, "rlllrr" + "l")


def _credit_text(value: Fraction) -> str:
    return "full credit" if value == 1 else ("no credit" if value == 0 else f"{_number(value)} credit each")


def _number(value: Fraction) -> str:
    return f"{float(value):g}"


def score_line(report: Report) -> str:
    """``Score 7.5 / 11 (68%): 1 holds, 4 hold under an allowed reading (full credit), ...``."""
    counts, total = report.counts(), len(report.verdicts)
    score = report.score
    percent = f"{float(score) / total:.0%}" if total else "-"
    parts = [f"{counts[HOLDS]} {'holds' if counts[HOLDS] == 1 else 'hold'}",
             f"{counts[READING]} {'holds' if counts[READING] == 1 else 'hold'} only under an allowed reading "
             f"({_credit_text(report.rules.reading_credit)})",
             f"{counts[SLIP]} {'slip' if counts[SLIP] == 1 else 'slips'} ({_credit_text(report.rules.slip_credit)})",
             f"{counts[WRONG]} wrong"]
    if counts[NOT_ANSWERED]:
        parts.append(f"{counts[NOT_ANSWERED]} not answered")
    return f"Score {_number(score)} / {total} ({percent}): " + ", ".join(parts) + "."


def _claims(numbers: Sequence[int], labels: dict[int, str] | None = None) -> str:
    labels = labels or {}
    return f"claim{'s' * (len(numbers) > 1)} {', '.join(labels.get(n, str(n)) for n in numbers)}"


def _details(verdict: Verdict) -> list[str]:
    claim = verdict.claim
    indent = " " * 6
    lines = [f"  {claim.label:>2}  {claim.quantity} = {claim.written.text}"]

    def item(label: str, texts: Sequence[str]) -> None:
        for i, text in enumerate(texts):
            lines.append(f"{indent}{(label if i == 0 else '').ljust(13)}{text}")

    if claim.ask:
        item("question:", [claim.ask])
    if claim.note:
        item("written as:", [claim.note])
    item("right:", [verdict.right.working])
    summary = verdict.summary()
    item("verdict:", [f"{_SHORT[verdict.kind]}" + (f": {summary}" if summary else "")])
    if verdict.under is not None:
        readings = "; ".join(c.description for c in verdict.of_kind("reading") if c.dimension != "misconception")
        item("under it:", [f"{readings}: {verdict.under.working}"])
    for change in verdict.changes:
        if change.dimension == "misconception":
            m = M.BY_NAME[change.value]
            item("the mistake:", [f"{m.title}: {m.explanation}"])
    explained = verdict.explanation
    if explained is not None and explained.changes and explained.answer is not verdict.right \
            and any(c.kind in ("misconception", "not allowed") for c in explained.changes):
        item("it gives:", [explained.answer.working])
    if verdict.expression is not None:
        item("working:", verdict.expression.sentences(claim.written))
    if verdict.alternatives:
        item("or:", ["; ".join(r.describe() for r in verdict.alternatives)])
    if verdict.kind == WRONG and verdict.explanation is None:
        item("searched:", [f"no reading, slip or misconception searched (up to two at once, "
                           f"{verdict.evaluated:,} settings) gives {claim.written.text}"])
    item("note:", list(verdict.notes))
    return lines


def render_text(report: Report) -> str:
    """The verdict table, the score and summary, and each claim's working."""
    sheet = report.sheet
    lines = ["npconv check: " + (sheet.title or (sheet.source or "claims")), ""]
    if sheet.input_reading:
        lines.append(sheet.input_reading)
    lines.append(f"Question: {describe_question(sheet)}.")
    lines.append(f"Rules: {report.rules.describe()}.")
    lines += ["", *_table(report), "", score_line(report)]
    labels = {"readings": "reading", "slips": "slip", "misconceptions": "mistake", "not allowed": "not allowed"}
    ids = {v.claim.number: v.claim.label for v in report.verdicts}
    for group, entries in report.grouped().items():
        for what, numbers in entries.items():
            lines.append(f"  {labels[group]}: {what}: {_claims(numbers, ids)}")
    unanswered = [v.claim.number for v in report.verdicts if v.kind == NOT_ANSWERED]
    if unanswered:
        lines.append(f"  not answered: {_claims(unanswered, ids)}")
    status = report.exit_status
    kinds = {v.kind for v in report.verdicts}
    unsettled = " or are not answered" if NOT_ANSWERED in kinds and READING in kinds else ""
    meaning = {EXIT_ALL_HOLD: "every claim holds", EXIT_SOME_WRONG: "some claim is wrong or has a slip",
               EXIT_ONLY_UNDER_READINGS: "no claim is wrong or slipped, but some hold only under a reading"
                                         + unsettled}
    if NOT_ANSWERED in kinds and READING not in kinds:
        meaning[EXIT_ONLY_UNDER_READINGS] = "no claim is wrong or slipped, but some are not answered"
    lines += [f"Exit status {status}: {meaning[status]}.", "", "Details"]
    for verdict in report.verdicts:
        if verdict.kind != NOT_ANSWERED and (verdict.kind != HOLDS or verdict.expression is not None
                                             or verdict.notes):
            lines += _details(verdict)
    return "\n".join(lines)


def to_json_dict(report: Report) -> dict[str, object]:
    """Every verdict as JSON-ready data."""
    sheet = report.sheet
    q = sheet.question
    claims: list[dict[str, object]] = []
    for v in report.verdicts:
        if not v.claim.answered:  # nothing to grade, and the right value stays hidden
            claims.append({"number": v.claim.number, "id": v.claim.id, "ask": v.claim.ask,
                           "quantity": v.claim.quantity, "written": None, "verdict": v.kind, "credit": 0.0})
            continue
        claims.append({
            "number": v.claim.number,
            "id": v.claim.id,
            "ask": v.claim.ask,
            "quantity": v.claim.quantity,
            "written": v.claim.written.to_json(),
            "written_text": v.claim.written.text,
            "note": v.claim.note,
            "verdict": v.kind,
            "credit": float(report.credit(v)),
            "summary": v.summary(),
            "right": {"value": json_value(v.right.value), "text": v.right.text, "working": v.right.working},
            "under_reading": None if v.under is None else {
                "value": json_value(v.under.value), "text": v.under.text, "working": v.under.working},
            "explanation": None if v.explanation is None else v.explanation.to_json(),
            "readings": [r.to_json() for r in v.readings],
            "expression": None if v.expression is None else v.expression.to_json(v.claim.written),
            "notes": list(v.notes),
            "search": {"evaluated": v.evaluated, "stopped_by_budget": v.stopped},
        })
    counts = report.counts()
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
        "rules": report.rules.to_json(),
        "claims": claims,
        "summary": {**counts, "score": float(report.score), "out_of": len(report.verdicts),
                    **report.grouped()},
        "exit_status": report.exit_status,
    }
