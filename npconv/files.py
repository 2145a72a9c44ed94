"""Files a command reads or writes: the one reader of text files and the one writer of outputs.

:func:`read_text` reads a claims file or a network file: a regular file of at
most :data:`~npconv.limits.MAX_TEXT_FILE_BYTES`, UTF-8 with or without a
byte-order mark.  Anything else -- a missing path, a folder, a device such as
``/dev/zero`` or a FIFO (which would be read forever, or block), a file too
large, text in another encoding -- is refused with a
:class:`~npconv.errors.FileError` that names the argument and says why; a
file not in UTF-8 is reported at the line and column of its first byte that
is not (with what that byte is in Latin-1, the usual culprit).

:func:`check_output` validates an output path before any work starts (a
regular file, or a new one, in an existing folder that can be written to) and
:func:`write_atomically` writes it exactly there, whole or not at all: into a
temporary file beside it, renamed over it once complete.

Pure Python.
"""

from __future__ import annotations

import codecs
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from npconv.errors import ConvArgumentError, FileError, echo
from npconv.limits import MAX_TEXT_FILE_BYTES
from npconv.memory import format_bytes

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _path_text(path: object, argument: str, expected: str) -> str:
    """``path`` as text; not a path at all (empty, a NUL in it) is a bad value, not a file problem."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text or "\0" in text:
        raise ConvArgumentError(argument, expected, echo(path))
    return text


def _stat(text: str, argument: str, expected: str) -> os.stat_result | None:
    """``os.stat(text)``, or None when nothing is there; other failures are refused."""
    try:
        return os.stat(text)
    except FileNotFoundError:
        return None
    except OSError as error:  # a name too long, a path through a file, no permission
        raise FileError(argument, expected, f"{echo(text)} ({error.strerror or error})") from None


def _undecodable(data: bytes, error: UnicodeDecodeError) -> str:
    """Where the first byte that is not UTF-8 is, and what it is."""
    offset = error.start
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    byte = data[offset]
    return (f"byte 0x{byte:02x} at line {line}, column {column}, which is not UTF-8 "
            f"(in Latin-1 it is {bytes([byte]).decode('latin-1')!r}: save the file as UTF-8)")


def read_text(path: object, argument: str, what: str = "a text file",
              max_bytes: int = MAX_TEXT_FILE_BYTES) -> str:
    """The text of the regular file ``path``: UTF-8 (a byte-order mark is dropped), at most ``max_bytes``.

    Raises :class:`~npconv.errors.FileError` naming ``argument`` (``what``
    describes the file for the message: ``"a TOML claims file"``), or a
    :class:`~npconv.errors.ConvArgumentError` when ``path`` is no path at all.
    """
    expected = f"{what}: a readable, regular UTF-8 file of at most {format_bytes(max_bytes)}"
    text = _path_text(path, argument, expected)
    found = _stat(text, argument, expected)
    if found is None:
        raise FileError(argument, expected, f"{echo(text)} (no such file)")
    if not stat.S_ISREG(found.st_mode):
        raise FileError(argument, expected, f"{echo(text)} ({_kind(found.st_mode)})")
    if found.st_size > max_bytes:
        raise FileError(argument, expected, f"{echo(text)} ({format_bytes(found.st_size)})")
    try:
        # O_NONBLOCK: were the path swapped for a FIFO since the stat, opening it would block
        descriptor = os.open(text, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise FileError(argument, expected, f"{echo(text)} ({error.strerror or error})") from None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise FileError(argument, expected, f"{echo(text)} (not a regular file)")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileError(argument, expected, f"{echo(text)} (more than {format_bytes(max_bytes)})")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileError(argument, expected, f"{echo(text)} (UTF-16 text: save the file as UTF-8)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FileError(argument, expected, f"{echo(text)} ({_undecodable(data, error)})") from None


def check_output(path: object, argument: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file can be written there; else a
    :class:`~npconv.errors.FileError` naming ``argument`` (a
    :class:`~npconv.errors.ConvArgumentError` when it is no path at all: empty).

    A file can be written there when it is a regular file or does not exist, in
    an existing folder where a file can be created (tried: a temporary file is
    made and removed).  Call it before the work whose result goes there.
    """
    expected = "a file in an existing folder you may write to (a regular file, or a new one)"
    text = _path_text(path, argument, expected)
    found = _stat(text, argument, expected)
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise FileError(argument, expected, f"{echo(text)} ({_kind(found.st_mode)})")
    target = Path(text)
    folder = target.parent
    folder_found = _stat(str(folder), argument, expected)
    if folder_found is None or not stat.S_ISDIR(folder_found.st_mode):
        raise FileError(argument, expected, f"{echo(text)} (no folder {echo(str(folder))})")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{target.name}.", suffix=".probe"):
            pass
    except OSError as error:
        raise FileError(argument, expected, f"{echo(text)} (no file can be made in {echo(str(folder))}: "
                        f"{error.strerror or error})") from None
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | os.PathLike, write: Callable[[IO], None], argument: str,
                     binary: bool = False) -> None:
    """Write ``path`` whole or not at all: ``write(file)`` fills a temporary file beside it, which then
    replaces ``path``.

    The file gets the permissions a new file would (0o666 less the umask).
    An error while writing (a full disk) leaves ``path`` as it was and raises
    :class:`~npconv.errors.FileError` naming ``argument``.
    """
    target = Path(path)
    try:
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as error:
        raise FileError(argument, "an output file in a folder you may write to",
                        f"{echo(str(target))} ({error.strerror or error})") from None
    try:
        with os.fdopen(descriptor, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as error:
        raise FileError(argument, "an output file that can be written whole",
                        f"{echo(str(target))} ({error.strerror or error})") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


__all__ = ["check_output", "read_text", "write_atomically"]
