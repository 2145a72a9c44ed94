"""Memory checks made before allocating, so that a layer too large is refused, not OOM-killed.

Pure Python.  Every allocation that grows with the layer (the output, a
kernel's workspace) is estimated first and checked with :func:`ensure_fits`.
"""

from __future__ import annotations

import os

from npconv.errors import ConvMemoryError

#: Share of the machine's RAM one allocation may take.
MAX_FRACTION_OF_RAM = 0.5


def physical_memory_bytes() -> int | None:
    """Total RAM of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


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
            f"{memory / 2**30:.1f} GiB of RAM ({limit / 2**30:.1f} GiB)",
            f"{nbytes / 2**30:,.1f} GiB needed",
        )
