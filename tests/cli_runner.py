"""Run the ``npconv`` command in-process and capture what it printed; bound the time it may take."""

from __future__ import annotations

import contextlib
import io
import signal
from collections.abc import Iterator

from npconv.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``npconv *argv``, argparse's own exits included."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def run_captured(*argv: str) -> tuple[int, str, str]:
    """:func:`run` without pytest's ``capsys`` (for Hypothesis tests, which may not take it)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


class Hang(AssertionError):
    """A call ran past its time budget."""


@contextlib.contextmanager
def within(seconds: float, what: str = "the call") -> Iterator[None]:
    """Fail with :class:`Hang` if the block runs longer than ``seconds`` (SIGALRM: main thread, POSIX).

    A signal interrupts a blocking system call too (opening a FIFO, reading /dev/zero), so a
    regression that hangs fails here instead of stalling the suite.
    """
    def expire(signum, frame):
        raise Hang(f"{what} took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
