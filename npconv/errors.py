"""Exceptions raised for invalid layers and arrays.

Every message has the same three parts: the argument, what was expected and
what arrived, e.g. ``stride: expected a positive int or a pair of positive
ints, got 0``.  Pure Python: importing this module imports nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class ConvArgumentError(ValueError):
    """An argument of a convolution (or of a formula) is invalid.

    Attributes
    ----------
    argument : str
        Name of the offending argument as the caller wrote it (``"stride"``,
        ``"weight"``, ``"--input"``, ...).
    expected : str
        What would have been accepted.
    got : str
        What arrived, already formatted for the message.
    """

    def __init__(self, argument: str, expected: str, got: str):
        self.argument = argument
        self.expected = expected
        self.got = got
        super().__init__(f"{argument}: expected {expected}, got {got}")

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
