"""Memory checks made before allocating, so that a layer too large is refused, not OOM-killed.

Pure Python.  Two limits:

* every allocation that grows with the layer (the output, a kernel's
  workspace) must fit in :data:`MAX_FRACTION_OF_RAM` of this machine's RAM
  (:func:`ensure_fits`);
* a kernel's *workspace* -- what it allocates besides the output, such as
  im2col's column matrix or the reference kernel's list copy of an image --
  must also fit in the workspace limit (:func:`ensure_workspace_fits`).  The
  limit is :data:`DEFAULT_WORKSPACE_LIMIT` unless changed for the process
  with :func:`set_workspace_limit` or for one call with the convolution
  functions' ``workspace_limit=`` argument.  A kernel that can work in chunks
  sizes them to the limit; one that cannot is refused with the estimate.
  The limit bounds the *sum* of what one call allocates besides its output:
  the kernel's buffers and copies, and the API's conversions of the operands
  (a float32 operand promoted to float64, a big-endian one to native order).

Every command checks what it is about to allocate with :func:`ensure_arrays_fit`
-- the arrays it is about to make, each in the dtype that will really be
allocated, summed -- before it makes any of them.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterable, Sequence

from npconv.errors import ConvArgumentError, ConvMemoryError

#: Share of the machine's RAM one allocation may take.
MAX_FRACTION_OF_RAM = 0.5

#: Workspace a kernel may allocate per call unless told otherwise: 256 MiB.
DEFAULT_WORKSPACE_LIMIT = 256 * 2**20

_workspace_limit = DEFAULT_WORKSPACE_LIMIT


def physical_memory_bytes() -> int | None:
    """Total RAM of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(nbytes: int) -> str:
    """``268435456`` -> ``"256.0 MiB"``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:,.1f} {unit}"
    return f"{nbytes:,} bytes"


def ensure_fits(nbytes: int, what: str, argument: str = "x") -> None:
    """Raise :class:`~npconv.errors.ConvMemoryError` if ``nbytes`` exceeds the allowed share of RAM.

    ``what`` describes the allocation for the message, e.g.
    ``"the output, shape (8, 64, 56, 56) of float32,"``.
    """
    memory = physical_memory_bytes()
    if memory is None:
        return
    limit = int(memory * MAX_FRACTION_OF_RAM)
    if nbytes > limit:
        raise ConvMemoryError(
            argument,
            f"{what} to fit in {MAX_FRACTION_OF_RAM:.0%} of this machine's "
            f"{format_bytes(memory)} of RAM ({format_bytes(limit)})",
            f"{format_bytes(nbytes)} needed",
        )


def _itemsize(dtype: object) -> int:
    """Bytes per element of ``dtype``: a NumPy dtype (or anything with ``itemsize``), or a name."""
    itemsize = getattr(dtype, "itemsize", None)
    if itemsize is None:
        itemsize = {"float32": 4, "float64": 8}.get(str(dtype))
    if not isinstance(itemsize, int):
        raise TypeError(f"no itemsize known for {dtype!r}")
    return itemsize


def array_bytes(shape: Sequence[int], dtype: object) -> int:
    """Bytes of an array of ``shape`` and ``dtype``, as an exact Python int (never an overflowing int64)."""
    return math.prod(int(size) for size in shape) * _itemsize(dtype)


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def ensure_arrays_fit(arrays: Iterable[tuple[str, Sequence[int] | None, object]], what: str,
                      argument: str = "x") -> int:
    """Refuse, before any is allocated, arrays whose sum does not fit in the allowed share of RAM.

    ``arrays`` are ``(name, shape, dtype)`` -- the dtype each will really be
    allocated in (a ``None`` shape is an absent array, such as no bias).  The
    message names ``argument``, says ``what`` they are and lists the largest.
    Returns the total in bytes.
    """
    sized = [(name, shape, array_bytes(shape, dtype), dtype) for name, shape, dtype in arrays if shape is not None]
    total = sum(nbytes for _, _, nbytes, _ in sized)
    largest = sorted(sized, key=lambda item: -item[2])[:3]
    listed = ", ".join(f"{name} {_shape_text(shape)} {getattr(dtype, 'name', dtype)}: {format_bytes(nbytes)}"
                       for name, shape, nbytes, dtype in largest)
    more = f" and {len(sized) - len(largest)} more" if len(sized) > len(largest) else ""
    ensure_fits(total, f"{what} ({listed}{more})", argument)
    return total


def check_workspace_limit(value: object, argument: str = "workspace_limit") -> int:
    """Validate a workspace limit given by a caller: a positive int of bytes."""
    try:
        nbytes = operator.index(value)
    except TypeError:
        raise ConvArgumentError(argument, "a positive int of bytes, e.g. 256 * 2**20", repr(value)) from None
    if isinstance(value, bool) or nbytes <= 0:
        raise ConvArgumentError(argument, "a positive int of bytes, e.g. 256 * 2**20", repr(value))
    return nbytes


def get_workspace_limit() -> int:
    """The process-wide workspace limit in bytes."""
    return _workspace_limit


def set_workspace_limit(nbytes: int | None) -> int:
    """Set the process-wide workspace limit (bytes); ``None`` restores the default.

    Returns the previous limit, so a caller can put it back.
    """
    global _workspace_limit
    previous = _workspace_limit
    _workspace_limit = DEFAULT_WORKSPACE_LIMIT if nbytes is None else check_workspace_limit(nbytes, "nbytes")
    return previous


def resolve_workspace_limit(value: object) -> int:
    """A call's ``workspace_limit=`` argument: None means the process-wide limit."""
    return get_workspace_limit() if value is None else check_workspace_limit(value)


def ensure_workspace_fits(nbytes: int, limit: int, what: str, argument: str = "workspace_limit") -> None:
    """Refuse a workspace of ``nbytes`` larger than ``limit`` (or than the RAM share).

    ``what`` describes the smallest workspace the kernel could work with, for
    the message, e.g. ``"the column matrix of one image and one output row"``.
    """
    if nbytes > limit:
        raise ConvMemoryError(
            argument,
            f"{what} to fit in the workspace limit of {format_bytes(limit)} "
            "(raise it with workspace_limit= or npconv.set_workspace_limit)",
            f"{format_bytes(nbytes)} needed",
        )
    ensure_fits(nbytes, what, argument)
