"""Exceptions raised for invalid layers and arrays.

Every message has the same three parts: the argument, what was expected and
what arrived, e.g. ``stride: expected a positive int or a pair of positive
ints, got 0``.  Pure Python: importing this module imports nothing else.
"""

from __future__ import annotations


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


class ConvTypeError(ConvArgumentError, TypeError):
    """An argument has the wrong type or dtype (also a :class:`TypeError`)."""


class ConvMemoryError(ConvArgumentError, MemoryError):
    """A layer's output or workspace would not fit in memory; refused before allocating."""
