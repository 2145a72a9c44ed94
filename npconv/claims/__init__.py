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

Where to look: :mod:`~npconv.claims.answers` (the quantities and their
right answers), :mod:`~npconv.claims.written` (written values and
arithmetic), :mod:`~npconv.claims.sheets` (claims files and inline
claims), :mod:`~npconv.claims.readings` (the reading search and the
verdict), :mod:`~npconv.claims.report` (the report, its text and JSON).
"""

from npconv.claims.answers import (
    COUNT_KINDS,
    LENGTH_KINDS,
    MEASURES,
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
from npconv.claims.readings import (
    DIMENSIONS,
    HOLDS,
    MAX_CHANGES,
    READING,
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
    "COUNT_KINDS", "DIMENSIONS", "EXIT_ALL_HOLD", "EXIT_ERROR", "EXIT_ONLY_UNDER_READINGS",
    "EXIT_SOME_WRONG", "HOLDS", "LENGTH_KINDS", "MAX_CHANGES", "MEASURES", "PARTS", "PART_KINDS",
    "QUANTITIES", "QUANTITY_HELP", "RATIO_KINDS", "READING", "SHAPE_KINDS", "WRONG", "Answer", "Change",
    "Claim", "ClaimsFileError", "ExpressionCheck", "Reading", "Report", "Setting", "Sheet", "Verdict",
    "Written", "answer", "check", "describe_question", "is_typo", "judge", "load_sheet", "make_claim",
    "parse_sheet", "parse_written", "render_text", "sheet_from_strings", "to_json_dict",
]
