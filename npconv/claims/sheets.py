"""Answer sheets: a question and its claims, from a TOML claims file (:func:`load_sheet`,
:func:`parse_sheet`) or from ``QUANTITY=VALUE`` strings (:func:`sheet_from_strings`).  A bad file is
refused naming ``FILE:LINE`` and the key (:class:`ClaimsFileError`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from npconv import toml_file
from npconv.claims.answers import QUANTITIES, QUANTITY_HELP, SHAPE_KINDS, split_quantity
from npconv.claims.misconceptions import BY_NAME
from npconv.claims.rules import Rules, rules_from
from npconv.claims.written import Claim, parse_written
from npconv.counts import CONVENTIONS
from npconv.errors import ConvArgumentError, echo
from npconv.expressions import ExpressionError, parse_expression
from npconv.limits import MAX_CLAIMS
from npconv.question import QUESTION_KEYS, Question
from npconv.toml_file import TomlFileError


@dataclass(frozen=True)
class Sheet:
    """A question and the claims made about it."""

    question: Question
    claims: tuple[Claim, ...]
    counting: str = "dense"
    input_reading: str = ""
    title: str = ""
    source: str = ""
    rules: Rules = field(default_factory=Rules)


def _check_quantity(text: object, name: str) -> str:
    if not isinstance(text, str):
        raise ConvArgumentError(name, f"a quantity name: {QUANTITY_HELP}", echo(text))
    quantity = text.strip().lower().replace("-", "_")
    if quantity not in QUANTITIES:
        close = difflib.get_close_matches(quantity, QUANTITIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConvArgumentError(name, f"a quantity name: {QUANTITY_HELP}", echo(text) + hint)
    return quantity


def make_claim(number: int, quantity: object, value: object, expression: object, note: object,
               batch: int, name: Callable[[str], str], id: object = None, ask: object = None) -> Claim:
    """Validate one claim; errors name ``name(key)`` for the key at fault.  ``value`` None is a question
    not answered (of an exercise sheet), which may write no working either."""
    quantity = _check_quantity(quantity, name("quantity"))
    written = None if value is None else parse_written(value, quantity, batch, name("value"))
    if expression is None:
        expression = ""
    if not isinstance(expression, str):
        raise ConvArgumentError(name("expression"), "a string of arithmetic such as \"(5*5*3+1)*256\"",
                                echo(expression))
    if written is None and expression.strip():
        raise ConvArgumentError(name("value"), "the value the working written gives (a 'value' key beside "
                                "'expression')", "none")
    if expression.strip():
        if split_quantity(quantity)[1] in SHAPE_KINDS:
            raise ConvArgumentError(name("expression"), f"no expression for a shape ({quantity})",
                                    echo(expression))
        try:
            parse_expression(expression).value()
        except ExpressionError as error:
            raise ConvArgumentError(name("expression"), "arithmetic such as \"(5*5*3+1)*256\"",
                                    str(error)) from None
        except ZeroDivisionError:
            raise ConvArgumentError(name("expression"), "arithmetic without a division by zero",
                                    echo(expression)) from None
    texts = {}
    for key, text in (("note", note), ("id", id), ("ask", ask)):
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise ConvArgumentError(name(key), "a string", echo(text))
        texts[key] = text.strip()
    if len(texts["id"]) > MAX_ID_LENGTH or any(c.isspace() for c in texts["id"]):
        raise ConvArgumentError(name("id"), f"a label of at most {MAX_ID_LENGTH} characters without spaces "
                                "such as \"1a\"", echo(id))
    return Claim(number, quantity, written, expression.strip(), texts["note"], texts["id"], texts["ask"])


#: Longest question id of an exercise sheet (it is a column of the verdict table).
MAX_ID_LENGTH = 12


def _check_counting(value: object, name: str) -> str:
    if value not in CONVENTIONS:
        raise ConvArgumentError(name, f"one of {', '.join(map(repr, CONVENTIONS))}", echo(value))
    return value


_INLINE_CLAIM = "QUANTITY=VALUE or QUANTITY=EXPRESSION=VALUE such as separable.params=15+1024=1102"


def sheet_from_strings(question: Question, claims: Sequence[str], counting: str = "dense",
                       input_reading: str = "", name: str = "--claim", rules: Rules | None = None) -> Sheet:
    """Claims written ``QUANTITY=VALUE`` or ``QUANTITY=EXPRESSION=VALUE`` (errors name ``name``)."""
    if len(claims) > MAX_CLAIMS:
        raise ConvArgumentError(name, f"at most {MAX_CLAIMS} claims", f"{len(claims):,}")
    parsed = []
    for number, text in enumerate(claims, start=1):
        fields = text.split("=")
        if len(fields) not in (2, 3) or not all(f.strip() for f in fields):
            raise ConvArgumentError(name, f"{_INLINE_CLAIM}", echo(text))
        expression = fields[1] if len(fields) == 3 else None
        shown = echo(text, 40)
        parsed.append(make_claim(number, fields[0], fields[-1].strip(), expression, None,
                                 question.input_shape[0], lambda key, t=shown: f"{name} {t}: {key}"))
    return Sheet(question, tuple(parsed), _check_counting(counting, "--counting"), input_reading,
                 rules=rules or Rules())


# ---------------------------------------------------------------------- claims files


class ClaimsFileError(TomlFileError):
    """A claims file that cannot be used: ``FILE:LINE: key: expected ..., got ...``
    (see :mod:`npconv.toml_file`)."""


_TOP_KEYS = ("title", "question", "rules", "claim")
_CLAIM_KEYS = ("quantity", "value", "expression", "note", "id", "ask")
_QUESTION_FILE_KEYS = (*QUESTION_KEYS, "counting")


def parse_sheet(text: str, source: str = "<claims>") -> Sheet:
    """Read a claims file's text (see ``examples/answer_sheet.toml``).

    Raises :class:`ClaimsFileError` naming ``source:line`` and the key.
    """
    try:
        data = toml_file.loads(text, source)
    except TomlFileError as error:
        raise ClaimsFileError(error.location, error.argument, error.expected, error.got, error.syntax) from None
    lines = toml_file.KeyLines(text)

    def fail(table: str, index: int | None, key: str, error: ConvArgumentError) -> ClaimsFileError:
        path = ((table, None if index is None else index - 1),) if table else ()  # claims count from 1
        found = toml_file.error_at(source, lines.line(path, key), error)
        return ClaimsFileError(found.location, found.argument, found.expected, found.got)

    def refuse(table: str, index: int | None, key: str, argument: str, expected: str, got: str):
        return fail(table, index, key, ConvArgumentError(argument, expected, got))

    for key in data:
        if key not in _TOP_KEYS:
            raise refuse("", None, key, key, f"a key among {', '.join(_TOP_KEYS)}", "an unknown key")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise refuse("", None, "title", "title", "a string", echo(title))

    table = data.get("question")
    if not isinstance(table, dict):
        raise refuse("", None, "question", "question",
                     "a [question] table with input, kernel and filters", echo(table) if table else "none")
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

    rules_table = data.get("rules", {})
    if not isinstance(rules_table, dict):
        raise refuse("", None, "rules", "rules", "a [rules] table", echo(rules_table))
    try:
        rules = rules_from(rules_table, BY_NAME, lambda key: f"rules.{key}")
    except ConvArgumentError as error:
        raise fail("rules", None, error.argument.removeprefix("rules."), error) from None

    entries = data.get("claim")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise refuse("", None, "claim", "claim", "one or more [[claim]] tables", echo(entries) if entries else "none")
    if len(entries) > MAX_CLAIMS:
        raise refuse("claim", MAX_CLAIMS + 1, "", "claim", f"at most {MAX_CLAIMS} [[claim]] tables",
                     f"{len(entries):,}")
    claims: list[Claim] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        for key in entry:
            if key not in _CLAIM_KEYS:
                raise refuse("claim", number, key, f"claim[{number}].{key}",
                             f"a key among {', '.join(_CLAIM_KEYS)}", "an unknown key")
        if "quantity" not in entry:
            raise refuse("claim", number, "", f"claim[{number}].quantity", "a 'quantity' key", "none")
        if "value" not in entry and "id" not in entry:  # a question of an exercise sheet has an id
            raise refuse("claim", number, "", f"claim[{number}].value", "a 'value' key (or an 'id': a "
                         "question of an exercise sheet, which may be left unanswered)", "none")
        try:
            claims.append(make_claim(number, entry["quantity"], entry.get("value"), entry.get("expression"),
                                     entry.get("note"), question.input_shape[0],
                                     lambda key, n=number: f"claim[{n}].{key}", entry.get("id"), entry.get("ask")))
        except ConvArgumentError as error:
            raise fail("claim", number, error.argument.rsplit(".", 1)[-1], error) from None
        if claims[-1].id and claims[-1].id in seen:
            raise refuse("claim", number, "id", f"claim[{number}].id",
                         f"an id of its own (claim {seen[claims[-1].id]} has it)", echo(claims[-1].id))
        seen[claims[-1].id] = number
    return Sheet(question, tuple(claims), counting, reading.replace("Read input", "Read question.input"),
                 title, source, rules)


def load_sheet(path: str | Path, name: str = "FILE") -> Sheet:
    """Read and parse a claims file; a file that cannot be read (missing, not a regular file, too large,
    not UTF-8) is a :class:`~npconv.errors.FileError` naming ``name`` (:func:`npconv.files.read_text`)."""
    return parse_sheet(toml_file.read(path, name, "a readable TOML claims file"), str(path))
