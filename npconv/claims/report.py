"""``npconv check``'s report: every verdict of a sheet (:func:`check` -> :class:`Report`), as text for
people (:func:`render_text`) and as data (:func:`to_json_dict`), and the exit status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from npconv import render
from npconv._expr import format_number
from npconv.claims.readings import (
    HOLDS,
    MAX_CHANGES,
    READING,
    WRONG,
    Verdict,
    carried_notes,
    json_value,
    judge,
)
from npconv.claims.sheets import Sheet

#: Exit statuses of ``npconv check`` (2 is a usage or claims-file error, as for every command).
EXIT_ALL_HOLD, EXIT_SOME_WRONG, EXIT_ERROR, EXIT_ONLY_UNDER_READINGS = 0, 1, 2, 3


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
            notes = carried_notes(verdict, sheet.claims)
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
            "right": {"value": json_value(v.right.value), "text": v.right.text, "working": v.right.working},
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
