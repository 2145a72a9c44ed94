"""Grade hand-computed answers: claims about a layer, each given a verdict with its reasons, and a score.

A *claim* names a quantity of a question (``standard.params``,
``separable.mults``, ``standard.output`` ...), gives the value written for it
and, optionally, the arithmetic written for it (``"(5*5*3+1)*254"``).
:func:`check` gives every claim the verdict of the cheapest explanation of
what it writes (:mod:`~npconv.claims.readings`):

``holds``
    right for the question as asked;
``holds under another reading`` (``holds if``)
    right only under a reading of the question the rules allow -- another
    padding, the other bias convention -- or with a value carried from
    another claim, named;
``slip``
    a number copied wrong that the claim writes, arithmetic that does not
    give the value written, a value rounded beyond the tolerance, working
    missing where it is required;
``wrong``
    a classic misconception (:mod:`~npconv.claims.misconceptions`, named and
    explained), a wrong value in the working, a reading the rules do not
    allow, or nothing explains it;
``not answered``
    a question of an exercise sheet with no value written: no credit, and
    its right value is not shown (:mod:`~npconv.claims.exercises`).

Written working comes first: it is evaluated, and read by algebra as the
formula's symbols (:mod:`~npconv.claims.algebra`), so a reading it
contradicts is never the verdict.  The right value as asked, with its
working, is always given (to the grader; not in the report of a question not answered).  The teacher's rules (:mod:`~npconv.claims.rules`)
set the tolerance, the readings allowed, whether working is required and what
each verdict earns in the score (:mod:`~npconv.claims.report`).

Claims come from a TOML claims file (:func:`load_sheet`) or from
``QUANTITY=VALUE`` strings (:func:`sheet_from_strings`).  Pure Python (and
SymPy, imported when working is compared).

Where to look: :mod:`~npconv.claims.answers` (the quantities and their
right answers), :mod:`~npconv.claims.written` (written values and
arithmetic), :mod:`~npconv.claims.sheets` (claims files and inline
claims), :mod:`~npconv.claims.readings` (the search and the verdict),
:mod:`~npconv.claims.report` (the report, its score, its text and JSON),
:mod:`~npconv.claims.exercises` (exercise sheets: questions without values, a
student's answers graded against the teacher's sheet, the model answers).
"""

from npconv.claims.answers import (
    COUNT_KINDS,
    LENGTH_KINDS,
    PART_KINDS,
    PARTS,
    QUANTITIES,
    QUANTITY_HELP,
    RATIO_KINDS,
    SHAPE_KINDS,
    Answer,
    Setting,
    answer,
)
from npconv.claims.misconceptions import CATALOGUE, Misconception
from npconv.claims.readings import (
    COSTS,
    HOLDS,
    MAX_CHANGES,
    NOT_ANSWERED,
    READING,
    SLIP,
    VERDICTS,
    WRONG,
    Change,
    Reading,
    Verdict,
    is_typo,
    judge,
)
from npconv.claims.report import (
    EXIT_ALL_HOLD,
    EXIT_ERROR,
    EXIT_ONLY_UNDER_READINGS,
    EXIT_SOME_WRONG,
    Report,
    check,
    describe_question,
    render_text,
    to_json_dict,
)
from npconv.claims.rules import DEFAULT_READINGS, QUESTION_READINGS, Rules
from npconv.claims.sheets import (
    ClaimsFileError,
    Sheet,
    load_sheet,
    make_claim,
    parse_sheet,
    sheet_from_strings,
)
from npconv.claims.written import Claim, ExpressionCheck, Written, parse_written

__all__ = [
    "CATALOGUE",
    "COSTS",
    "COUNT_KINDS",
    "DEFAULT_READINGS",
    "EXIT_ALL_HOLD",
    "EXIT_ERROR",
    "EXIT_ONLY_UNDER_READINGS",
    "EXIT_SOME_WRONG",
    "HOLDS",
    "LENGTH_KINDS",
    "MAX_CHANGES",
    "NOT_ANSWERED",

    "PARTS",
    "PART_KINDS",
    "QUANTITIES",
    "QUANTITY_HELP",
    "QUESTION_READINGS",
    "RATIO_KINDS",
    "READING",
    "SHAPE_KINDS",
    "SLIP",
    "VERDICTS",
    "WRONG",
    "Answer",
    "Change",
    "Claim",
    "ClaimsFileError",
    "ExpressionCheck",
    "Misconception",
    "Reading",
    "Report",
    "Rules",
    "Setting",
    "Sheet",
    "Verdict",
    "Written",
    "answer",
    "check",
    "describe_question",
    "is_typo",
    "judge",
    "load_sheet",
    "make_claim",
    "parse_sheet",
    "parse_written",
    "render_text",
    "sheet_from_strings",
    "to_json_dict",
]
