"""Run the ``npconv`` command in-process and capture what it printed."""

from __future__ import annotations

from npconv.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``npconv *argv``, argparse's own exits included."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err
