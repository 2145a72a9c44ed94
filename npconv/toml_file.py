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

:func:`read` reads such a file (through :func:`npconv.files.read_text`: a
regular UTF-8 file of bounded size, a byte-order mark dropped).  Before the
text reaches the parser, :func:`loads` bounds what would make it or its
readers recurse or stall: arrays and inline tables nested more than
:data:`~npconv.limits.MAX_TOML_NESTING` deep, and numbers of more than
:data:`~npconv.limits.MAX_NUMBER_DIGITS` digits (which ``tomllib`` would
convert to an int in quadratic time, or refuse with a bare ``ValueError``
beyond Python's 4,300 digits); after it, tables nested that deep through
dotted keys (``a.b.c...``).  Every pass over the text is linear in its length.

Pure Python (``tomllib``; the ``tomli`` backport before Python 3.11).
"""

from __future__ import annotations

import re
import sys

from npconv import files
from npconv.errors import ConvArgumentError
from npconv.limits import MAX_NUMBER_DIGITS, MAX_TOML_NESTING

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: A table's place: ``(("layers", 1), ("main", 0))`` is ``[[layers.main]]`` number 0 (from 0) inside
#: ``[[layers]]`` number 1; a plain ``[question]`` table is ``(("question", None),)``; the top level ``()``.
TablePath = tuple[tuple[str, int | None], ...]

# Linear: no two parts of either pattern can match the same characters (a header's name is checked
# after the match), so a long line costs one pass, never the cubic backtracking of overlapping ``\s*``.
_HEADER = re.compile(r"[ \t]*(\[\[?)([^\[\]#\n]*)\]")
_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")
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


def read(path: object, argument: str, what: str) -> str:
    """The text of the TOML file ``path`` (see :func:`npconv.files.read_text`); errors name ``argument``."""
    return files.read_text(path, argument, what)


# What the bounds' scan looks for next, by where it is: outside strings ("code"), inside each kind of
# string, inside a comment.  A string's delimiters and escapes are TOML's; only what tomllib accepts
# needs scanning right (it stops at the first error, before recursing any further).
_SCAN = {
    "code": re.compile(r'"""|\'\'\'|["\'#\[\]{}=,.\n]|[0-9][0-9_]*'),
    '"': re.compile(r'\\.|"|\n'),
    "'": re.compile(r"'|\n"),
    '"""': re.compile(r'\\.|"""', re.DOTALL),
    "'''": re.compile(r"'''"),
    "#": re.compile(r"\n"),
}


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _refuse(text: str, source: str, offset: int, expected: str, got: str) -> TomlFileError:
    line, column = _position(text, offset)
    return TomlFileError(f"{source}:{line}:{column}", "TOML", expected, got)


def _check_bounds(text: str, source: str) -> None:
    """Refuse arrays and inline tables nested deeper than :data:`MAX_TOML_NESTING`, keys of more parts
    (``a.b.c``: tomllib reads a dotted key in time quadratic in its parts), and numbers of more than
    :data:`MAX_NUMBER_DIGITS` digits, at ``source:LINE:COLUMN``; one pass over ``text``.

    A key's dots are those between two of ``= , [ ] { }`` and a line's end outside strings; a value
    has at most one there (a float, a time), so counting them bounds keys and headers alone.
    """
    mode, depth, dots, position = "code", 0, 0, 0
    while (found := _SCAN[mode].search(text, position)) is not None:
        token, position = found.group(), found.end()
        if mode != "code":
            if token in (mode, "\n"):  # the string or comment ends (a one-line string ends with the line)
                mode = "code"
            continue
        if token == ".":
            dots += 1
            if dots >= MAX_TOML_NESTING:
                raise _refuse(text, source, found.start(), f"keys of at most {MAX_TOML_NESTING} dotted parts",
                              "a longer one")
            continue
        if token in "=,\n[]{}":
            dots = 0
        if token in ('"""', "'''", '"', "'", "#"):
            mode = token
        elif token in "[{":
            depth += 1
            if depth > MAX_TOML_NESTING:
                raise _refuse(text, source, found.start(),
                              f"arrays and inline tables nested at most {MAX_TOML_NESTING} deep", f"level {depth}")
        elif token in "]}":
            depth = max(0, depth - 1)
        elif token[0].isdigit() and len(token.replace("_", "")) > MAX_NUMBER_DIGITS:
            raise _refuse(text, source, found.start(), f"numbers of at most {MAX_NUMBER_DIGITS} digits",
                          f"one of {len(token.replace('_', '')):,} digits")


def _check_depth(data: dict, source: str) -> None:
    """Refuse tables and arrays nested deeper than :data:`MAX_TOML_NESTING` (dotted keys nest tables
    without brackets); iterative, so that the check itself cannot recurse."""
    stack: list[tuple[object, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_TOML_NESTING:
            raise TomlFileError(source, "TOML", f"tables and arrays nested at most {MAX_TOML_NESTING} deep "
                                "(dotted keys count: a.b.c is 3 tables)", f"deeper at {path.lstrip('.')!r}")
        if isinstance(value, dict):
            stack.extend((v, depth + 1, f"{path}.{k}") for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(value))


def loads(text: str, source: str) -> dict:
    """``tomllib.loads(text)`` within the bounds (see the module docstring); a syntax error is a
    :class:`TomlFileError` naming ``source:LINE:COLUMN``."""
    _check_bounds(text, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        location = f"{source}:{where.group(1)}:{where.group(2)}" if where else source
        detail = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise TomlFileError(location, "TOML", "valid TOML", repr(detail), syntax=detail) from None
    _check_depth(data, source)
    return data


class KeyLines:
    """Where each table and each key of a TOML text is written (1-based lines)."""

    def __init__(self, text: str):
        self.lines: dict[tuple[TablePath, str], int] = {}
        latest: dict[tuple[str, ...], TablePath] = {}  # dotted header -> its latest table
        counts: dict[tuple[TablePath, str], int] = {}  # (parent, array) -> tables seen so far
        table: TablePath = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            names = tuple(name.strip() for name in header.group(2).split(".")) if header else ()
            if names and all(_HEADER_NAME.fullmatch(name) for name in names):
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
