"""Exceptions raised for invalid layers, arrays, files and flags, and the exit status of each.

Every message has the same three parts: the argument, what was expected and
what arrived, e.g. ``stride: expected a positive int or a pair of positive
ints, got 0``.  What arrived is the user's input, so it is echoed through
:func:`echo` (or cut by :func:`cut`): never longer than a line, however long
the input.

Each class carries the exit status the command line gives it
(:data:`EXIT_STATUSES` lists them all, for ``npconv --help`` and the README).
Pure Python: importing this module imports nothing else of npconv but its
bounds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from npconv.limits import ECHO_LENGTH

#: Exit statuses of every ``npconv`` command.
EXIT_OK = 0
#: a result disagrees: a claim is wrong (check), a measured count differs from its formula
#: (measure, model --measure), PyTorch's figures differ from npconv's (model --compare torch)
EXIT_DISAGREES = 1
#: a bad flag, a bad value in a claims or network file, input beyond a bound (argparse's own too)
EXIT_USAGE = 2
#: nothing is wrong, but not everything is settled: check -- some claims hold only under another
#: reading of the question, or some questions are not answered; model -- some operations were not counted (they are listed by name)
EXIT_UNSETTLED = 3
EXIT_ONLY_UNDER_READINGS = EXIT_UNCOUNTED = EXIT_UNSETTLED
#: refused for memory: the layer's arrays or a kernel's workspace would not fit (nothing allocated)
EXIT_MEMORY = 4
#: a file cannot be read or written: missing, not a regular file, too large, not UTF-8, or an
#: output in a folder that does not exist or cannot be written to
EXIT_FILE = 5
#: an optional package a flag needs is not installed (PyTorch for --compare torch, matplotlib for
#: --plot and animate)
EXIT_MISSING_DEPENDENCY = 6
#: interrupted with Ctrl-C (128 + SIGINT, as shells report it); train reports and saves what it trained
EXIT_INTERRUPTED = 130
#: the reader of the output went away (``npconv model vgg16 | head``): 128 + SIGPIPE, as shells report
#: a program that SIGPIPE stopped; nothing more is written
EXIT_BROKEN_PIPE = 141

#: status -> what it means, in order: the one list ``npconv --help`` and the README show.
EXIT_STATUSES = {
    EXIT_OK: "success (check: every claim holds)",
    EXIT_DISAGREES: "a result disagrees: a claim is wrong or has a slip (check), a measured count differs "
                    "from its formula (measure, model --measure), PyTorch disagrees (model --compare torch)",
    EXIT_USAGE: "a bad flag or a bad value in a claims, network or data file, or input beyond a bound; "
                "train: also a loss that stopped being finite (the last good weights are kept)",
    EXIT_UNSETTLED: "nothing is wrong, but not everything is settled: some claims hold only under "
                    "another reading or are not answered (check), some operations were not counted (model)",
    EXIT_MEMORY: "refused before allocating: the layer's arrays or a kernel's workspace would not fit",
    EXIT_FILE: "a file cannot be read or written (missing, not a regular file, too large, not UTF-8, "
               "or an output folder that does not exist or cannot be written to)",
    EXIT_MISSING_DEPENDENCY: "an optional package is missing (PyTorch for --compare torch, matplotlib "
                             "for --plot and animate)",
    EXIT_INTERRUPTED: "interrupted with Ctrl-C (train reports, and saves with --save, what it trained)",
    EXIT_BROKEN_PIPE: "the output's reader closed it (as head does): the rest is not written",
}


def cut(text: str, limit: int = ECHO_LENGTH) -> str:
    """``text``, or its first ``limit`` characters and how long it was: the one way input is shortened."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def echo(value: object, limit: int = ECHO_LENGTH) -> str:
    """``repr(value)`` cut to ``limit`` characters: how an error message shows what arrived.

    Safe for any value: an int too long for Python to print (more than 4,300
    digits) is described by its size, and a structure too deep to ``repr`` by
    its type.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4_000:
        return f"an int of about {int(value.bit_length() * 0.30103):,} digits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"
    return cut(text, limit)


class ConvArgumentError(ValueError):
    """An argument of a convolution (or of a formula, or a flag, or a key of a file) is invalid.

    Attributes
    ----------
    argument : str
        Name of the offending argument as the caller wrote it (``"stride"``,
        ``"weight"``, ``"--input"``, ...).
    expected : str
        What would have been accepted.
    got : str
        What arrived, already formatted for the message (and cut to a readable length).
    exit_status : int
        The command line's exit status for this kind of error (:data:`EXIT_USAGE`).
    """

    exit_status = EXIT_USAGE

    def __init__(self, argument: str, expected: str, got: str):
        self.argument = cut(argument)
        self.expected = expected
        self.got = cut(got, 2 * ECHO_LENGTH)
        super().__init__(f"{self.argument}: expected {expected}, got {self.got}")

    def renamed(self, argument: str) -> ConvArgumentError:
        """The same error (of the same class) about ``argument``."""
        return type(self)(argument, self.expected, self.got)


@contextmanager
def arguments_named(names: Mapping[str, str]) -> Iterator[None]:
    """Errors raised inside name their argument as the caller does: ``names`` maps the names a
    function uses (``kernel``) to the caller's (``--kernel``, ``layers[3].kernel``)."""
    try:
        yield
    except ConvArgumentError as error:
        if error.argument not in names or names[error.argument] == error.argument:
            raise
        raise error.renamed(names[error.argument]) from None


class ConvTypeError(ConvArgumentError, TypeError):
    """An argument has the wrong type or dtype (also a :class:`TypeError`)."""


class ConvMemoryError(ConvArgumentError, MemoryError):
    """A layer's output or workspace would not fit in memory; refused before allocating."""

    exit_status = EXIT_MEMORY


class FileError(ConvArgumentError):
    """A file that cannot be read or written (missing, not a regular file, too large, not UTF-8, an
    output folder that cannot be written to); refused before any work, where it can be."""

    exit_status = EXIT_FILE


class MissingDependencyError(ConvArgumentError):
    """An optional package a flag or function needs is not installed."""

    exit_status = EXIT_MISSING_DEPENDENCY
