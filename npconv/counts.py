"""What a kernel reports when it runs in counting mode.

Counting semantics (the same in every kernel and in :mod:`npconv.formulas`):

``mults``
    scalar multiplications executed.
``adds``
    scalar additions executed.  Each output is a sum of terms -- its products,
    plus the bias when there is one -- and summing ``T`` terms takes ``T - 1``
    additions (the first term starts the sum).  So ``adds == mults`` with a
    bias, and ``adds == mults - outputs`` without one.
``flops``
    ``mults + adds``.  For a dot-product kernel the number of MACs is ``mults``.
``convention``
    ``"dense"``: every tap of every window was multiplied, padded zeros
    included (what the textbook formula and im2col + GEMM execute);
    ``"effective"``: only taps that land on real input were multiplied (what a
    direct kernel that skips the padding executes).
``padded_mults``
    how many of ``mults`` multiplied a padding zero (0 under ``effective``).
``workspace_bytes``
    the most memory the kernel held at once besides the output and its
    operands (im2col's column matrix, the reference kernel's list copy of an
    image), as allocated, not estimated.

Pure Python: importing this module imports nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CONVENTIONS = ("dense", "effective")


@dataclass(frozen=True)
class Counts:
    """Measured operation counts of one convolution call.

    Only a kernel that tallies operations where it executes them creates one.
    """

    mults: int
    adds: int
    convention: str
    method: str
    padded_mults: int = 0
    workspace_bytes: int = 0

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention: expected one of {CONVENTIONS}, got {self.convention!r}")

    @property
    def flops(self) -> int:
        """``mults + adds``."""
        return self.mults + self.adds

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "flops": self.flops}


@dataclass(frozen=True)
class SeparableCounts:
    """Counts of a depthwise-separable call: its two parts and their sums."""

    depthwise: Counts
    pointwise: Counts

    @property
    def mults(self) -> int:
        return self.depthwise.mults + self.pointwise.mults

    @property
    def adds(self) -> int:
        return self.depthwise.adds + self.pointwise.adds

    @property
    def flops(self) -> int:
        return self.mults + self.adds

    @property
    def padded_mults(self) -> int:
        return self.depthwise.padded_mults + self.pointwise.padded_mults

    @property
    def workspace_bytes(self) -> int:
        """The larger part's workspace: the parts run one after the other."""
        return max(self.depthwise.workspace_bytes, self.pointwise.workspace_bytes)

    @property
    def convention(self) -> str:
        """The parts' convention (a pointwise 1x1 layer has no padding, so both agree)."""
        return self.depthwise.convention

    @property
    def method(self) -> str:
        return self.depthwise.method

    def to_dict(self) -> dict[str, object]:
        return {
            "mults": self.mults,
            "adds": self.adds,
            "flops": self.flops,
            "padded_mults": self.padded_mults,
            "workspace_bytes": self.workspace_bytes,
            "convention": self.convention,
            "method": self.method,
            "depthwise": self.depthwise.to_dict(),
            "pointwise": self.pointwise.to_dict(),
        }
