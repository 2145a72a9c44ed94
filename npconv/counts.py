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

A fast algorithm changes the count itself, so it counts under a convention of
its own (:data:`ALGORITHM_CONVENTIONS`): ``"winograd"`` (products in the
transform domain plus the transforms' own multiplications and additions) and
``"fft"`` (products in the frequency domain; the FFTs run inside a library).
Their counts also carry

``stages``
    the count split by stage (:class:`Stage`), each flagged ``measured`` or
    not: the measured stages sum to ``mults`` and ``adds``;
``estimated_mults``, ``estimated_adds``
    work done where no tally can reach (inside ``numpy.fft``), taken from a
    standard operation-count formula and *never* included in ``mults`` or
    ``adds``: the sum of the stages flagged ``measured=False``;
``algorithm``
    which variant ran, e.g. ``"F(4x4,3x3)"`` or ``"rfft2 72x72"``.

Pure Python: importing this module imports nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Conventions of the layer: what the closed forms of :mod:`npconv.formulas` (``mults``, ``adds``)
#: count, and what the reference, im2col and direct kernels execute.
CONVENTIONS = ("dense", "effective")

#: Conventions of a fast algorithm: its own count, not the layer's (closed forms in
#: :mod:`npconv.formulas`, ``winograd_counts`` and ``fft_counts``).
ALGORITHM_CONVENTIONS = ("winograd", "fft")

#: Every convention a kernel may count in.
ALL_CONVENTIONS = CONVENTIONS + ALGORITHM_CONVENTIONS


@dataclass(frozen=True)
class Stage:
    """One stage of a fast algorithm's count: its multiplications and additions.

    ``measured`` is True when the kernel tallied the stage where it ran it
    (from the operations or GEMM shapes it executed), False when the work runs
    inside a library and the numbers come from an operation-count formula
    (an *estimate*).
    """

    name: str
    mults: int
    adds: int
    measured: bool = True

    @property
    def flops(self) -> int:
        return self.mults + self.adds


@dataclass(frozen=True, repr=False)
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
    stages: tuple[Stage, ...] = ()
    estimated_mults: int = 0
    estimated_adds: int = 0
    algorithm: str = ""

    def __post_init__(self) -> None:
        if self.convention not in ALL_CONVENTIONS:
            raise ValueError(f"convention: expected one of {ALL_CONVENTIONS}, got {self.convention!r}")
        if self.stages:
            measured = [s for s in self.stages if s.measured]
            estimated = [s for s in self.stages if not s.measured]
            sums = (sum(s.mults for s in measured), sum(s.adds for s in measured),
                    sum(s.mults for s in estimated), sum(s.adds for s in estimated))
            if sums != (self.mults, self.adds, self.estimated_mults, self.estimated_adds):
                raise ValueError(f"stages: the measured stages must sum to mults, adds and the estimated "
                                 f"ones to estimated_mults, estimated_adds; got {sums}")
        elif self.estimated_mults or self.estimated_adds:
            raise ValueError("estimated_mults, estimated_adds: expected the estimated stages they sum")

    def __repr__(self) -> str:
        """The layer-convention fields always; a fast algorithm's only when it set them."""
        shown = ["mults", "adds", "convention", "method", "padded_mults", "workspace_bytes"]
        shown += [f for f in ("stages", "estimated_mults", "estimated_adds", "algorithm") if getattr(self, f)]
        return f"Counts({', '.join(f'{f}={getattr(self, f)!r}' for f in shown)})"

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (KeyError if the kernel had none)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def flops(self) -> int:
        """``mults + adds``."""
        return self.mults + self.adds

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "flops": self.flops}


class Totals:
    """The totals of counts made of parts (a separable call's two parts, a backward call's gradients):
    ``mults``, ``adds``, ``flops`` and ``padded_mults`` are the parts' sums, ``workspace_bytes`` the
    largest part's (parts run one after the other, or share one workspace that each reports).  A
    subclass defines :meth:`summed`, the parts that are summed, and ``convention`` and ``method``
    (fields, or :class:`OfTwoParts`'s)."""

    def summed(self) -> list:
        raise NotImplementedError

    @property
    def mults(self) -> int:
        return sum(part.mults for part in self.summed())

    @property
    def adds(self) -> int:
        return sum(part.adds for part in self.summed())

    @property
    def flops(self) -> int:
        return self.mults + self.adds

    @property
    def padded_mults(self) -> int:
        return sum(part.padded_mults for part in self.summed())

    @property
    def workspace_bytes(self) -> int:
        return max((part.workspace_bytes for part in self.summed()), default=0)

    def totals_dict(self) -> dict[str, object]:
        """The totals, as the first keys of a ``to_dict``."""
        return {"mults": self.mults, "adds": self.adds, "flops": self.flops, "padded_mults": self.padded_mults,
                "workspace_bytes": self.workspace_bytes, "convention": self.convention, "method": self.method}


class OfTwoParts(Totals):
    """Totals of a depthwise part and a pointwise part, whose convention and method are the
    depthwise part's (a pointwise 1x1 layer has no padding, so both parts agree)."""

    depthwise: object
    pointwise: object

    def summed(self) -> list:
        return [self.depthwise, self.pointwise]

    @property
    def convention(self) -> str:
        return self.depthwise.convention

    @property
    def method(self) -> str:
        return self.depthwise.method


@dataclass(frozen=True)
class SeparableCounts(OfTwoParts):
    """Counts of a depthwise-separable call: its two parts and their sums."""

    depthwise: Counts
    pointwise: Counts

    def to_dict(self) -> dict[str, object]:
        return {**self.totals_dict(), "depthwise": self.depthwise.to_dict(), "pointwise": self.pointwise.to_dict()}
