"""Timing: interleaved samples after warm-up, and their statistics.

Each call is made once untimed by the caller (a Numba method compiles on its
first call), then :func:`time_interleaved` repeats it for
:data:`WARM_UP_SECONDS` (at least once), sizes its samples from the fastest
warm-up call -- a sample repeats a fast call until it lasts
:data:`MIN_SAMPLE_SECONDS`, as :meth:`timeit.Timer.autorange` does -- and
takes ``repeats`` samples of every call in turn, so that drift on a shared
machine hits them alike.  :class:`Timing` gives the median and the spread.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from npconv.errors import ConvArgumentError

#: Samples per contestant unless asked otherwise: ``npconv bench`` on the default set takes under
#: a minute on 2 cores (the budget is 3), most of it in the reference kernel and the largest layers.
DEFAULT_REPEATS = 9

#: A sample repeats a call until it lasts this long, so that microsecond calls are timed reliably.
MIN_SAMPLE_SECONDS = 0.02

#: Each call is repeated untimed for this long (at least once) before its samples are taken.
WARM_UP_SECONDS = 0.2


def check_repeats(repeats: object, argument: str = "repeats") -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConvArgumentError(argument, "a positive int", repr(repeats))
    return repeats


# ---------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Seconds per call of ``repeats`` samples, each the mean of ``calls_per_sample`` calls."""

    samples: tuple[float, ...]
    calls_per_sample: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartile (both the median for a single sample)."""
        if len(self.samples) < 2:
            return self.median, self.median
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q1, q3

    @property
    def relative_iqr(self) -> float:
        """Interquartile range over the median: the spread shown in the table."""
        q1, q3 = self.quartiles
        return (q3 - q1) / self.median

    def to_json_dict(self) -> dict[str, object]:
        q1, q3 = self.quartiles
        return {"median_s": self.median, "q1_s": q1, "q3_s": q3, "min_s": min(self.samples),
                "max_s": max(self.samples), "samples_s": list(self.samples),
                "calls_per_sample": self.calls_per_sample}


def time_interleaved(calls: Sequence[Callable[[], object]], repeats: int) -> list[Timing]:
    """Time each of ``calls`` (called once already) in interleaved samples; one :class:`Timing` each.

    Each call is first repeated for :data:`WARM_UP_SECONDS` (at least once);
    its fastest time there sizes its samples to :data:`MIN_SAMPLE_SECONDS`.
    """
    numbers = []
    for call in calls:
        fastest, warm_up_end = math.inf, time.perf_counter() + WARM_UP_SECONDS
        while fastest == math.inf or time.perf_counter() < warm_up_end:
            start = time.perf_counter()
            call()
            fastest = min(fastest, time.perf_counter() - start)
        numbers.append(max(1, math.ceil(MIN_SAMPLE_SECONDS / max(fastest, 1e-9))))
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, number, taken in zip(calls, numbers, samples, strict=True):
            start = time.perf_counter()
            for _ in range(number):
                call()
            taken.append((time.perf_counter() - start) / number)
    return [Timing(tuple(taken), number) for taken, number in zip(samples, numbers, strict=True)]


