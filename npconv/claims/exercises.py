"""Exercise sheets: questions with hidden answers, a student's answers graded against them, the model answers.

An *exercise sheet* is a claims file (:mod:`~npconv.claims.sheets`) whose ``[[claim]]`` tables are
questions: each has an ``id`` (``"1a"``), a ``quantity`` and the question's wording ``ask``, and no
``value``.  Its answers are nowhere in the file: they are npconv's own (:func:`~npconv.claims.answers.answer`),
so they cannot be typed wrong.  A student answers a question by writing ``value = ...`` (and, if they
like or the rules require it, ``expression = "..."``, the working) into a copy of the sheet; the copy
is a claims file like any other, graded by :func:`~npconv.claims.report.check`, a question left
without a value is ``not answered``.

:func:`answered_against` grades a student's file against the teacher's sheet, so the question and the
rules are the teacher's whatever the copy says; :func:`model_answers` fills every question with its
right value and working, and :func:`sheet_to_toml` writes a sheet back as a claims file (the model
answers, which ``npconv check`` grades 100%).  Pure Python.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

from npconv.claims.answers import SHAPE_KINDS, Setting, answer, split_quantity
from npconv.claims.sheets import ClaimsFileError, Sheet, make_claim
from npconv.claims.written import Claim

__all__ = ["answered_against", "model_answers", "sheet_to_toml"]


def model_answers(sheet: Sheet) -> Sheet:
    """``sheet`` with every claim's value and working replaced by npconv's right answer as asked."""
    claims = []
    for claim in sheet.claims:
        right = answer(claim.quantity, Setting(sheet.question, sheet.counting))
        is_shape = split_quantity(claim.quantity)[1] in SHAPE_KINDS
        expression = "" if is_shape or right.quantity is None else right.quantity.working
        value: object = right.text if isinstance(right.value, (tuple, Fraction)) else right.value
        if expression == right.text:  # a value with nothing to work out (C_out channels, a given size)
            expression = ""
        claims.append(make_claim(claim.number, claim.quantity, value, expression, None,
                                 sheet.question.input_shape[0], lambda key, n=claim.number: f"claim[{n}].{key}",
                                 claim.id, claim.ask))
    return dataclasses.replace(sheet, claims=tuple(claims))


def answered_against(exercise: Sheet, answers: Sheet) -> Sheet:
    """The exercise sheet with the answers of ``answers`` (a student's copy) written in, matched by id.

    The question, the rules and the title are the exercise's.  Refused (a
    :class:`~npconv.claims.sheets.ClaimsFileError` naming the answers file) when the copy states
    another question, answers an id the exercise does not ask, or answers it as another quantity.
    """
    source = answers.source or "answers"
    theirs, ours = _question_table(answers), _question_table(exercise)
    for key, value in ours.items():
        if theirs[key] != value:
            raise ClaimsFileError(source, f"question.{key}", f"the exercise's question as handed out "
                                  f"({key} = {value} in {exercise.source or 'the exercise'})", theirs[key])
    asked = {claim.id: claim for claim in exercise.claims}
    if "" in asked:
        number = asked[""].number
        raise ClaimsFileError(exercise.source or "exercise", f"claim[{number}].id",
                              "an id on every question of an exercise sheet", "none")
    given: dict[str, Claim] = {}
    for claim in answers.claims:
        if claim.id not in asked:
            raise ClaimsFileError(source, f"claim[{claim.number}].id",
                                  f"an id of the exercise's questions ({', '.join(asked)})", repr(claim.id))
        if claim.quantity != asked[claim.id].quantity:
            raise ClaimsFileError(source, f"claim[{claim.number}].quantity",
                                  f"{asked[claim.id].quantity!r}, as question {claim.id} asks", repr(claim.quantity))
        given[claim.id] = claim
    claims = []
    for question in exercise.claims:
        reply = given.get(question.id)
        if reply is None:
            claims.append(question)
        else:
            claims.append(dataclasses.replace(question, written=reply.written, expression=reply.expression,
                                              note=reply.note))
    return dataclasses.replace(exercise, claims=tuple(claims))


# ---------------------------------------------------------------------- writing a sheet back


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def _pair(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _padding(padding: object) -> str:
    if isinstance(padding, str):
        return padding
    (top, bottom), (left, right) = padding
    if top == bottom and left == right:
        return _pair((top, left))
    return f"{top},{bottom},{left},{right}"


def _question_table(sheet: Sheet) -> dict[str, str]:
    """The ``[question]`` table of ``sheet``, each value as TOML text."""
    q = sheet.question
    return {"input": _string(q.input_text()), "kernel": _string(_pair(q.kernel)), "filters": str(q.filters),
            "stride": _string(_pair(q.stride)), "padding": _string(_padding(q.padding)),
            "dilation": _string(_pair(q.dilation)), "groups": str(q.groups),
            "depth_multiplier": str(q.depth_multiplier), "bias": _string(q.bias),
            "counting": _string(sheet.counting)}


def sheet_to_toml(sheet: Sheet, header: str = "", comments: dict[int, str] | None = None) -> str:
    """``sheet`` as a claims file that reads back to the same sheet: ``header`` in comment lines on top,
    ``comments`` (claim number -> text) in a comment line above each claim's value."""
    comments = comments or {}
    rules = sheet.rules
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if sheet.title:
        lines += [f"title = {_string(sheet.title)}"]
    lines += ["", "[question]", *(f"{key} = {value}" for key, value in _question_table(sheet).items()), ""]
    tolerance = rules.tolerance if isinstance(rules.tolerance, str) else f"{float(rules.tolerance) * 100:g}%"
    lines += ["[rules]", f"tolerance = {_string(tolerance)}",
              f"readings = [{', '.join(map(_string, rules.readings))}]",
              f"working = {_string('required' if rules.working_required else 'optional')}",
              f"slip_credit = {float(rules.slip_credit):g}", f"reading_credit = {float(rules.reading_credit):g}"]
    for claim in sheet.claims:
        lines += ["", "[[claim]]"]
        if claim.id:
            lines.append(f"id = {_string(claim.id)}")
        lines.append(f"quantity = {_string(claim.quantity)}")
        if claim.ask:
            lines.append(f"ask = {_string(claim.ask)}")
        if claim.number in comments:
            lines.append(f"# {comments[claim.number]}")
        if claim.written is not None:
            value = claim.written.value
            lines.append(f"value = {value if isinstance(value, int) else _string(claim.written.text)}")
        if claim.expression:
            lines.append(f"expression = {_string(claim.expression)}")
        if claim.note:
            lines.append(f"note = {_string(claim.note)}")
    return "\n".join(lines) + "\n"
