"""TOML files written by hand (claims files, network files): errors that name ``FILE:LINE`` and the key.

:func:`loads` parses the text; :class:`KeyLines` knows on which line each
table (``[question]``, the n-th ``[[claim]]``, ``[[layers.main]]`` inside the
latest ``[[layers]]``) and each ``key = ...`` is written; :func:`error_at`
turns a :class:`~npconv.errors.ConvArgumentError` about a key into a
:class:`TomlFileError`, whose message is the one format of both kinds of
file::

    sheet.toml:11: claim[2].quantity: expected a quantity name ..., got ...
    net.toml:5: layers[0].filters: expected out_channels as an int >= 1, got 0
    net.toml:3:9: invalid TOML: <what the parser says>

Pure Python (``tomllib``; the ``tomli`` backport before Python 3.11).
"""

from __future__ import annotations

import re
import sys

from npconv.errors import ConvArgumentError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: A table's place: ``(("layers", 1), ("main", 0))`` is ``[[layers.main]]`` number 0 (from 0) inside
#: ``[[layers]]`` number 1; a plain ``[question]`` table is ``(("question", None),)``; the top level ``()``.
TablePath = tuple[tuple[str, int | None], ...]

_HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\s-]+?)\s*\]\]?")
_KEY = re.compile(r"\s*(?:\"([^\"]+)\"|'([^']+)'|([A-Za-z0-9_-]+))\s*=")
_PATH_PART = re.compile(r"([A-Za-z0-9_-]+)\[(\d+)\]")


class TomlFileError(ConvArgumentError):
    """A TOML file that cannot be used: ``FILE:LINE: key: expected ..., got ...``.

    A syntax error reads ``FILE:LINE:COLUMN: invalid TOML: <what the parser says>``.
    """

    def __init__(self, location: str, argument: str, expected: str, got: str, syntax: str = ""):
        super().__init__(argument, expected, got)
        self.location = location
        self.syntax = syntax

    def __str__(self) -> str:
        if self.syntax:
            return f"{self.location}: invalid TOML: {self.syntax}"
        return f"{self.location}: {super().__str__()}"


def loads(text: str, source: str) -> dict:
    """``tomllib.loads(text)``; a syntax error is a :class:`TomlFileError` naming ``source:LINE:COLUMN``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        location = f"{source}:{where.group(1)}:{where.group(2)}" if where else source
        detail = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise TomlFileError(location, "TOML", "valid TOML", repr(detail), syntax=detail) from None


class KeyLines:
    """Where each table and each key of a TOML text is written (1-based lines)."""

    def __init__(self, text: str):
        self.lines: dict[tuple[TablePath, str], int] = {}
        latest: dict[tuple[str, ...], TablePath] = {}  # dotted header -> its latest table
        counts: dict[tuple[TablePath, str], int] = {}  # (parent, array) -> tables seen so far
        table: TablePath = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                names = tuple(name.strip() for name in header.group(2).split("."))
                parent = latest.get(names[:-1], ()) if len(names) > 1 else ()
                if header.group(1) == "[[":
                    index = counts.get((parent, names[-1]), 0)
                    counts[(parent, names[-1])] = index + 1
                    table = (*parent, (names[-1], index))
                else:
                    table = (*parent, (names[-1], None))
                latest[names] = table
                self.lines.setdefault((table, ""), number)
                continue
            key = _KEY.match(line)
            if key:
                self.lines.setdefault((table, next(g for g in key.groups() if g)), number)

    def line(self, table: TablePath, key: str = "") -> int | None:
        """The line of ``key`` in ``table``, else of the table's header (None when neither is written)."""
        return self.lines.get((table, key)) or self.lines.get((table, ""))

    def line_of_path(self, path: str) -> int | None:
        """The line of a key named as in an error: ``layers[1].main[0].filters``, ``input_shape``."""
        table: list[tuple[str, int | None]] = []
        rest = path
        while match := _PATH_PART.match(rest):
            table.append((match.group(1), int(match.group(2))))
            rest = rest[match.end():].lstrip(".")
        line = self.line(tuple(table), rest.split(" ")[0])
        if line is None and table and not rest:  # inputs[1], an item of an array value: the line of the key
            line = self.line(tuple(table[:-1]), table[-1][0])
        return line


def located(source: str, line: int | None) -> str:
    """``source:line``, or ``source`` when the line is not known."""
    return f"{source}:{line}" if line else source


def error_at(source: str, line: int | None, error: ConvArgumentError) -> TomlFileError:
    """``error`` as a :class:`TomlFileError` at ``source:line``."""
    return TomlFileError(located(source, line), error.argument, error.expected, error.got)
