"""Benchmark runner behind ``npconv bench`` and the pytest-benchmark suite in ``bench/``.

Every contestant is timed in this one process, with one thread count set for
all of them (Numba's, BLAS's through threadpoolctl, and PyTorch's):

* each npconv method of :func:`npconv.available_methods` (whatever is
  installed at run time), through the public API;
* PyTorch's ``torch.nn.functional.conv2d``, when torch can be imported;
* NumPy's GEMM (``a @ b`` on square matrices of :data:`GEMM_SIZE`, in the
  benchmark's dtype) as the machine's practical peak.

Timing policy (see ``design.md``): each call is made once untimed (a Numba
method compiles on its first call), then repeated for
:data:`WARM_UP_SECONDS` (at least once more: thread pools wake, caches and
PyTorch's per-shape primitives fill), whose fastest call sizes the samples --
a sample repeats a fast call until it lasts :data:`MIN_SAMPLE_SECONDS`, as
:meth:`timeit.Timer.autorange` does -- and then ``repeats`` samples are
taken.  A result reports the median time per call and its spread (the
interquartile range and min-max of the samples).  The counting call
(``count=True``) is sampled interleaved with the fast one (``count=False``),
so that drift on a shared machine hits both alike.

Counts are *measured*: GFLOP/s of an npconv method is the mults + adds its
counting call tallied, divided by the fast call's median time.  The closed
forms of :mod:`npconv.formulas` only check the tally.  PyTorch counts
nothing, so its GFLOP/s uses the dense formula and says so.

The layers timed are :data:`~npconv.layerset.BENCHMARK_LAYERS` or ad-hoc
geometries; :class:`ConvWorkload` and :class:`SeparableWorkload` hold a
layer's random operands and make the calls, for this module and ``bench/``
alike.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

import npconv
from npconv import kernels, quantities, render
from npconv.counts import Counts, SeparableCounts
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.layerset import BENCHMARK_LAYERS
from npconv.render import format_seconds, percent, significant

#: Samples per contestant unless asked otherwise: ``npconv bench`` on the default set takes under
#: a minute on 2 cores (the budget is 3), most of it in the reference kernel and the largest layers.
DEFAULT_REPEATS = 9

#: A sample repeats a call until it lasts this long, so that microsecond calls are timed reliably.
MIN_SAMPLE_SECONDS = 0.02

#: Each call is repeated untimed for this long (at least once) before its samples are taken.
WARM_UP_SECONDS = 0.2

#: Side of the square GEMM that stands for the machine's peak: about 0.1 s in float32 on 2 cores.
GEMM_SIZE = 2048

DTYPES = ("float32", "float64")

#: The layer whose time bounds the interpreted methods': an interpreted method is timed only on
#: layers it runs about as fast as this one (:func:`npconv.kernels.too_slow`).  The reference
#: kernel is plain Python, for teaching: on the benchmark set that is the seed layer alone.
SEED_LAYER = "seed 5x5"

#: Above this 1-minute load average per core at the start, the report warns that times are noisy.
BUSY_LOAD_PER_CORE = 0.25

#: The contestant name of PyTorch's ``torch.nn.functional.conv2d``.
TORCH = "torch"


def slow_method_limit() -> int:
    """Most dense mults per call an interpreted method is timed on: the seed layer's."""
    return quantities.counts(BENCHMARK_LAYERS[SEED_LAYER], "dense")["mults"]


def skip_reason(method: str, dense_mults: int) -> str | None:
    """Why ``method`` is not timed on a layer of ``dense_mults``, or None when it is."""
    limit = slow_method_limit()
    budget = kernels.estimated_seconds(method, limit)
    if budget is not None and kernels.too_slow(method, dense_mults, budget) is not None:
        return (f"{method} is timed only on layers of at most {limit:,} dense mults (the {SEED_LAYER} "
                f"layer); this one has {dense_mults:,}")
    return None


# ---------------------------------------------------------------------- choosing layers and methods


def _normalised(name: str) -> str:
    return "".join(name.lower().split())


def select_layers(text: str, argument: str = "layers") -> dict[str, ConvGeometry]:
    """Layers of the set named in ``text``: comma-separated, case and spaces ignored.

    A name may be shortened to a prefix that names one layer (``resnet``,
    ``large``); ``all`` selects the whole set.
    """
    by_key = {_normalised(name): name for name in BENCHMARK_LAYERS}
    expected = (f"comma-separated names from the layer set ({', '.join(BENCHMARK_LAYERS)}; case and "
                f"spaces ignored, a unique prefix such as 'resnet' will do) or 'all'")
    chosen: list[str] = []
    for token in text.split(","):
        key = _normalised(token)
        if key == "all":
            chosen.extend(BENCHMARK_LAYERS)
            continue
        matches = [name for k, name in by_key.items() if k == key] or [
            name for k, name in by_key.items() if key and k.startswith(key)]
        if len(matches) != 1:
            problem = "matches none" if not matches else f"matches {len(matches)}: {', '.join(matches)}"
            raise ConvArgumentError(argument, expected, f"{text!r} ({token.strip()!r} {problem})")
        chosen.append(matches[0])
    return {name: BENCHMARK_LAYERS[name] for name in dict.fromkeys(chosen)}


def select_methods(text: str | None, argument: str = "methods") -> tuple[str, ...]:
    """npconv methods named in ``text`` (comma-separated), or every available one for None."""
    available = npconv.available_methods()
    if text is None:
        return available
    chosen = [token.strip().lower() for token in text.split(",") if token.strip()]
    unknown = [m for m in chosen if m not in available]
    if unknown or not chosen:
        raise ConvArgumentError(
            argument,
            f"comma-separated npconv methods from those available here: {', '.join(available)} "
            f"(PyTorch is always timed when installed)",
            repr(text),
        )
    return tuple(dict.fromkeys(chosen))


def max_threads() -> int:
    """The most threads Numba can run here (``NUMBA_NUM_THREADS``, all cores by default)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


def check_threads(threads: object, argument: str = "threads") -> int:
    """``threads`` as an int from 1 to :func:`max_threads`."""
    limit = max_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= limit:
        raise ConvArgumentError(argument, f"an int from 1 to {limit} (this machine's threads)", repr(threads))
    return threads


def check_dtype(dtype: object, argument: str = "dtype") -> np.dtype:
    """``"float32"`` or ``"float64"`` (or the NumPy dtype) as a dtype."""
    if str(dtype) not in DTYPES:
        raise ConvArgumentError(argument, " or ".join(DTYPES), repr(dtype))
    return np.dtype(str(dtype))


def check_repeats(repeats: object, argument: str = "repeats") -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConvArgumentError(argument, "a positive int", repr(repeats))
    return repeats


def separable_counterpart(standard: ConvGeometry) -> tuple[ConvGeometry, SeparableGeometry]:
    """The ungrouped standard layer and the depthwise-separable layer with ``standard``'s input and output.

    The separable layer has ``standard``'s kernel, stride, padding and
    dilation on its depthwise part (depth multiplier 1) and, when
    ``standard`` has a bias, one on its pointwise part (Keras' convention).
    """
    separable = SeparableGeometry.from_layer(
        standard.input_shape, standard.out_channels, (standard.kernel_h, standard.kernel_w),
        stride=standard.stride, padding=standard.padding_argument, dilation=standard.dilation,
        bias="keras" if standard.bias else "none",
    )
    return separable.standard_equivalent(), separable


# ---------------------------------------------------------------------- optional contestants


def import_torch() -> tuple[ModuleType | None, str]:
    """``(torch, version)`` or ``(None, "PyTorch not available (why)")``."""
    try:
        import torch
        import torch.nn.functional  # the conv2d contestant
    except ImportError as error:
        return None, f"PyTorch not available ({error})"
    return torch, torch.__version__


def import_pyplot(argument: str = "plot") -> ModuleType:
    """matplotlib's pyplot on the file-only Agg backend, or a clear error naming ``argument``."""
    try:
        import matplotlib
    except ImportError as error:
        raise ConvArgumentError(
            argument, "matplotlib installed: pip install 'npconv[plot]' (or pip install matplotlib)",
            f"{error}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


# ---------------------------------------------------------------------- threads and environment


def _numpy_blas_pools() -> list[dict]:
    """threadpoolctl's records of the BLAS NumPy calls (falling back to every BLAS loaded)."""
    from threadpoolctl import threadpool_info

    blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    return [info for info in blas if "numpy" in info.get("filepath", "")] or blas


@contextmanager
def thread_limits(threads: int, torch: ModuleType | None = None) -> Iterator[dict[str, int | None]]:
    """Run every contestant with ``threads`` threads; yield the counts actually in force.

    Sets Numba's (``numba.set_num_threads``), every BLAS and OpenMP pool's
    (threadpoolctl, which also covers the libraries torch loaded) and
    torch's (``torch.set_num_threads``); restores them on exit.
    """
    import numba
    from threadpoolctl import threadpool_limits

    previous_numba = numba.get_num_threads()
    previous_torch = torch.get_num_threads() if torch is not None else None
    numba.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            pools = _numpy_blas_pools()
            yield {
                "numba": numba.get_num_threads(),
                "blas": pools[0]["num_threads"] if pools else None,
                "torch": torch.get_num_threads() if torch is not None else None,
            }
    finally:
        numba.set_num_threads(previous_numba)
        if torch is not None:
            torch.set_num_threads(previous_torch)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _numpy_blas() -> str:
    """``"scipy-openblas 0.3.31 (openblas, SkylakeX)"`` from ``numpy.show_config`` and threadpoolctl."""
    name = version = ""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name, version = blas.get("name", ""), blas.get("version", "")
    except Exception:  # older NumPy without mode="dicts", or a build that does not say
        pass
    pools = _numpy_blas_pools()
    if pools:
        pool = pools[0]
        name = name or pool.get("prefix", "")
        version = version or pool.get("version") or ""
        detail = ", ".join(str(pool[k]) for k in ("internal_api", "architecture") if pool.get(k))
        return f"{name} {version} ({detail})".replace("  ", " ").strip()
    return f"{name} {version}".strip() or "unknown BLAS"


@dataclass(frozen=True)
class Environment:
    """What the numbers were measured on."""

    cpu: str
    cores: int
    python: str
    numpy: str
    blas: str
    numba: str
    torch: str
    threads: Mapping[str, int | None]
    #: the 1-minute load average when the run started (None where the OS does not say)
    load_average: float | None = None

    @property
    def busy(self) -> bool:
        """Other processes were using a good share of the CPU: the times will be noisy."""
        return self.load_average is not None and self.load_average > BUSY_LOAD_PER_CORE * self.cores

    @classmethod
    def collect(cls, threads: Mapping[str, int | None], torch_version: str) -> Environment:
        import numba

        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        try:
            load_average = os.getloadavg()[0]
        except (AttributeError, OSError):
            load_average = None
        return cls(_cpu_model(), cores, platform.python_version(), np.__version__, _numpy_blas(),
                   numba.__version__, torch_version, dict(threads), load_average)

    def describe(self) -> str:
        """Two lines: the machine and libraries, and the thread counts in force."""
        names = {"numba": "Numba", "blas": "BLAS", "torch": "PyTorch"}
        threads = ", ".join(f"{names.get(name, name)} {count}" for name, count in self.threads.items()
                            if count is not None)
        return (f"Environment: {self.cpu}, {self.cores} cores | Python {self.python} | NumPy {self.numpy}, "
                f"BLAS {self.blas} | Numba {self.numba} | PyTorch {self.torch}\n"
                f"Threads: {threads}" + ("" if self.load_average is None else
                                         f" | load average {self.load_average:.2f} at the start"))

    def to_json_dict(self) -> dict[str, object]:
        return {"cpu": self.cpu, "cores": self.cores, "python": self.python, "numpy": self.numpy,
                "blas": self.blas, "numba": self.numba, "torch": self.torch, "threads": dict(self.threads),
                "load_average": self.load_average}


# ---------------------------------------------------------------------- workloads


def _random(rng: np.random.Generator, shape: tuple[int, ...] | None, dtype: np.dtype) -> np.ndarray | None:
    return None if shape is None else rng.standard_normal(shape).astype(dtype)


def _torch_padding(geometry: ConvGeometry) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """``conv2d``'s symmetric ``padding`` and, for asymmetric padding, the ``F.pad`` to apply first."""
    (top, bottom), (left, right) = geometry.padding
    if top == bottom and left == right:
        return (top, left), None
    return (0, 0), (left, right, top, bottom)


def _torch_conv(torch: ModuleType, geometry: ConvGeometry) -> Callable:
    """``f(x, weight, bias)``: PyTorch's conv2d for ``geometry`` (asymmetric padding through ``F.pad``)."""
    functional = torch.nn.functional
    padding, pad_first = _torch_padding(geometry)
    options = dict(stride=geometry.stride, padding=padding, dilation=geometry.dilation, groups=geometry.groups)
    if pad_first is None:
        return lambda x, w, b: functional.conv2d(x, w, b, **options)
    return lambda x, w, b: functional.conv2d(functional.pad(x, pad_first), w, b, **options)


class _Workload:
    """What every workload knows from its geometry alone: the closed-form counts."""

    geometry: ConvGeometry | SeparableGeometry

    def formula_counts(self, convention: str) -> tuple[int, int]:
        """Closed-form ``(mults, adds)`` under ``convention``."""
        counted = quantities.counts(self.geometry, convention)
        return counted["mults"], counted["adds"]

    @property
    def dense_mults(self) -> int:
        return self.formula_counts("dense")[0]


class ConvWorkload(_Workload):
    """A standard (possibly grouped) layer with random operands: the calls every contestant makes."""

    kind = "standard"

    def __init__(self, geometry: ConvGeometry, dtype: object = "float32", seed: int = 0):
        self.geometry = geometry
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.x = _random(rng, geometry.input_shape, self.dtype)
        self.weight = _random(rng, geometry.weight_shape, self.dtype)
        self.bias = _random(rng, geometry.bias_shape, self.dtype)

    def npconv_call(self, method: str, count: bool = False) -> Callable[[], object]:
        """``npconv.conv2d`` on these operands: the output, or ``(y, counts)`` when ``count``."""
        g = self.geometry
        return lambda: npconv.conv2d(self.x, self.weight, self.bias, stride=g.stride, padding=g.padding,
                                     dilation=g.dilation, groups=g.groups, method=method, count=count)

    def torch_call(self, torch: ModuleType) -> Callable[[], object]:
        """``torch.nn.functional.conv2d`` on the same numbers (tensors share the arrays' memory)."""
        conv = _torch_conv(torch, self.geometry)
        x, w, b = (None if a is None else torch.from_numpy(a) for a in (self.x, self.weight, self.bias))
        return lambda: conv(x, w, b)

    def describe(self) -> str:
        return self.geometry.describe()



class SeparableWorkload(_Workload):
    """A depthwise-separable layer with random operands (depthwise, then pointwise)."""

    kind = "separable"

    def __init__(self, geometry: SeparableGeometry, dtype: object = "float32", seed: int = 0):
        self.geometry = geometry
        self.dtype = np.dtype(dtype)
        dw, pw = geometry.depthwise, geometry.pointwise
        rng = np.random.default_rng(seed)
        self.x = _random(rng, dw.input_shape, self.dtype)
        self.depthwise_weight = _random(rng, dw.weight_shape, self.dtype)
        self.pointwise_weight = _random(rng, pw.weight_shape, self.dtype)
        self.depthwise_bias = _random(rng, dw.bias_shape, self.dtype)
        self.pointwise_bias = _random(rng, pw.bias_shape, self.dtype)

    def npconv_call(self, method: str, count: bool = False) -> Callable[[], object]:
        """``npconv.separable_conv2d`` on these operands."""
        dw = self.geometry.depthwise
        return lambda: npconv.separable_conv2d(
            self.x, self.depthwise_weight, self.pointwise_weight, self.depthwise_bias, self.pointwise_bias,
            stride=dw.stride, padding=dw.padding, dilation=dw.dilation, method=method, count=count)

    def torch_call(self, torch: ModuleType) -> Callable[[], object]:
        """Two ``conv2d`` calls: depthwise (``groups = C_in``), then pointwise (1x1)."""
        depthwise = _torch_conv(torch, self.geometry.depthwise)
        pointwise = _torch_conv(torch, self.geometry.pointwise)
        x, dw_w, pw_w, dw_b, pw_b = (None if a is None else torch.from_numpy(a) for a in (
            self.x, self.depthwise_weight, self.pointwise_weight, self.depthwise_bias, self.pointwise_bias))
        return lambda: pointwise(depthwise(x, dw_w, dw_b), pw_w, pw_b)


    def describe(self) -> str:
        dw, pw = self.geometry.depthwise, self.geometry.pointwise
        return (f"depthwise {dw.kernel_h}x{dw.kernel_w} on {dw.in_channels} channels (multiplier "
                f"{dw.depth_multiplier}, bias {'yes' if dw.bias else 'no'}) + pointwise 1x1 to "
                f"{pw.out_channels} (bias {'yes' if pw.bias else 'no'})")



Workload = ConvWorkload | SeparableWorkload


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


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class ContestantResult:
    """One contestant on one layer: its fast-call timing and the work it did.

    For an npconv method ``counts`` were tallied by one ``count=True`` call
    and ``counting_timing`` times that call; ``formula_mults`` and
    ``formula_adds`` are the closed forms under the counts' convention, kept
    only to check the tally.  For PyTorch, which counts nothing, ``counts``
    is None and the work is the dense formula.
    """

    contestant: str
    timing: Timing
    formula_mults: int
    formula_adds: int
    counts: Counts | SeparableCounts | None = None
    counting_timing: Timing | None = None

    @property
    def flops(self) -> int:
        """Measured mults + adds (the dense formula's for PyTorch)."""
        return self.counts.flops if self.counts is not None else self.formula_mults + self.formula_adds

    @property
    def mults(self) -> int:
        return self.counts.mults if self.counts is not None else self.formula_mults

    @property
    def measured(self) -> bool:
        return self.counts is not None

    @property
    def flops_source(self) -> str:
        if self.counts is None:
            return "dense formula (PyTorch does not count)"
        return f"measured ({self.counts.convention})"

    @property
    def gflops(self) -> float:
        """``flops / median seconds / 1e9``."""
        return self.flops / self.timing.median / 1e9

    @property
    def counts_match_formula(self) -> bool | None:
        if self.counts is None:
            return None
        return (self.counts.mults, self.counts.adds) == (self.formula_mults, self.formula_adds)

    @property
    def counting_over_fast(self) -> float | None:
        """Median time of the counting call over the fast call's (issue 3's target: <= 1.3)."""
        if self.counting_timing is None:
            return None
        return self.counting_timing.median / self.timing.median

    def to_json_dict(self) -> dict[str, object]:
        return {
            "contestant": self.contestant,
            "timing": self.timing.to_json_dict(),
            "mults": self.mults,
            "flops": self.flops,
            "flops_source": self.flops_source,
            "gflops": self.gflops,
            "counts": None if self.counts is None else self.counts.to_dict(),
            "formula": {"convention": self.counts.convention if self.counts is not None else "dense",
                        "mults": self.formula_mults, "adds": self.formula_adds},
            "counts_match_formula": self.counts_match_formula,
            "counting_timing": None if self.counting_timing is None else self.counting_timing.to_json_dict(),
            "counting_over_fast": self.counting_over_fast,
        }


def measure_method(workload: Workload, method: str, repeats: int) -> ContestantResult:
    """Time ``method``'s fast call and its counting call on ``workload``; keep the measured counts."""
    fast = workload.npconv_call(method)
    counting = workload.npconv_call(method, count=True)
    fast()  # warm-up: a Numba method compiles on its first call
    _, counts = counting()  # the measured counts (and the counting variant's warm-up)
    fast_timing, counting_timing = time_interleaved([fast, counting], repeats)
    mults, adds = workload.formula_counts(counts.convention)
    return ContestantResult(method, fast_timing, mults, adds, counts, counting_timing)


def measure_torch(workload: Workload, torch: ModuleType, repeats: int) -> ContestantResult:
    """Time PyTorch on ``workload``; its work is the dense formula (it counts nothing)."""
    call = workload.torch_call(torch)
    with torch.no_grad():
        call()
        (timing,) = time_interleaved([call], repeats)
    mults, adds = workload.formula_counts("dense")
    return ContestantResult(TORCH, timing, mults, adds)


@dataclass(frozen=True)
class GemmPeak:
    """NumPy's ``a @ b`` on ``size`` x ``size`` matrices: the machine's practical peak."""

    size: int
    dtype: str
    timing: Timing

    @property
    def flops(self) -> int:
        """``n^3`` mults and ``n^2 (n - 1)`` adds, counted as for a convolution without bias."""
        n = self.size
        return n**3 + n * n * (n - 1)

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.median / 1e9

    def fraction(self, result: ContestantResult) -> float:
        """``result``'s GFLOP/s over this GEMM's: the fraction of the practical peak."""
        return result.gflops / self.gflops

    def to_json_dict(self) -> dict[str, object]:
        return {"size": self.size, "dtype": self.dtype, "flops": self.flops, "gflops": self.gflops,
                "timing": self.timing.to_json_dict()}


def measure_gemm(dtype: object = "float32", repeats: int = DEFAULT_REPEATS, size: int = GEMM_SIZE) -> GemmPeak:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    call = lambda: a @ b  # noqa: E731
    call()
    (timing,) = time_interleaved([call], repeats)
    return GemmPeak(size, np.dtype(dtype).name, timing)


# ---------------------------------------------------------------------- reports


@dataclass(frozen=True)
class Skipped:
    """A contestant left out of a layer, and why."""

    contestant: str
    reason: str

    def to_json_dict(self) -> dict[str, str]:
        return {"contestant": self.contestant, "reason": self.reason}


@dataclass(frozen=True)
class LayerReport:
    """Every contestant on one layer."""

    name: str
    workload: ConvWorkload
    results: tuple[ContestantResult, ...]
    skipped: tuple[Skipped, ...] = ()

    @property
    def torch(self) -> ContestantResult | None:
        return next((r for r in self.results if r.contestant == TORCH), None)

    def ratio_to_torch(self, result: ContestantResult) -> float | None:
        """Median time over PyTorch's (lower is faster; the headline number)."""
        baseline = self.torch
        return None if baseline is None else result.timing.median / baseline.timing.median

    def to_json_dict(self, gemm: GemmPeak | None = None) -> dict[str, object]:
        """Every result, with its fraction of ``gemm``'s rate and its time over PyTorch's."""
        results = []
        for result in self.results:
            entry = result.to_json_dict()
            entry["fraction_of_gemm_peak"] = None if gemm is None else gemm.fraction(result)
            entry["time_ratio_to_torch"] = self.ratio_to_torch(result)
            results.append(entry)
        w = self.workload
        return {"name": self.name, "description": w.describe(), "geometry": w.geometry.to_dict(),
                "formula": {c: dict(zip(("mults", "adds"), w.formula_counts(c), strict=True))
                            for c in ("dense", "effective")},
                "results": results, "skipped": [s.to_json_dict() for s in self.skipped]}


@dataclass(frozen=True)
class SeparablePair:
    """One contestant on a standard layer and on its depthwise-separable counterpart."""

    standard: ContestantResult
    separable: ContestantResult

    @property
    def contestant(self) -> str:
        return self.standard.contestant

    @property
    def mult_ratio(self) -> float:
        """Separable mults over standard mults (measured for npconv methods)."""
        return self.separable.mults / self.standard.mults

    @property
    def time_ratio(self) -> float:
        """Separable median time over standard median time."""
        return self.separable.timing.median / self.standard.timing.median

    def to_json_dict(self) -> dict[str, object]:
        return {"contestant": self.contestant, "mult_ratio": self.mult_ratio, "time_ratio": self.time_ratio,
                "mults_source": self.standard.flops_source,
                "standard": self.standard.to_json_dict(), "separable": self.separable.to_json_dict()}


@dataclass(frozen=True)
class SeparableReport:
    """Every contestant on a standard layer and its separable counterpart: do fewer mults mean faster?"""

    name: str
    standard: ConvWorkload
    separable: SeparableWorkload
    pairs: tuple[SeparablePair, ...]
    skipped: tuple[Skipped, ...] = ()

    def to_json_dict(self) -> dict[str, object]:
        return {"name": self.name,
                "standard": {"description": self.standard.describe(), "geometry": self.standard.geometry.to_dict()},
                "separable": {"description": self.separable.describe(),
                              "geometry": self.separable.geometry.to_dict()},
                "pairs": [p.to_json_dict() for p in self.pairs],
                "skipped": [s.to_json_dict() for s in self.skipped]}


@dataclass(frozen=True)
class Settings:
    dtype: str
    repeats: int
    threads: int
    min_sample_seconds: float = MIN_SAMPLE_SECONDS
    warm_up_seconds: float = WARM_UP_SECONDS

    def to_json_dict(self) -> dict[str, object]:
        return {"dtype": self.dtype, "repeats": self.repeats, "threads": self.threads,
                "warm_up_seconds": self.warm_up_seconds,
                "min_sample_seconds": self.min_sample_seconds, "timer": "time.perf_counter",
                "statistic": "median seconds per call; spread = interquartile range / median"}


@dataclass(frozen=True)
class BenchReport:
    """Everything one ``npconv bench`` run measured."""

    environment: Environment
    settings: Settings
    torch_status: str
    gemm: GemmPeak | None
    layers: tuple[LayerReport, ...] = ()
    separable: tuple[SeparableReport, ...] = ()
    wall_seconds: float = 0.0
    methods: tuple[str, ...] = field(default=())

    @property
    def torch_available(self) -> bool:
        return not self.torch_status.startswith("PyTorch not available")

    def fraction_of_peak(self, result: ContestantResult) -> float | None:
        """GFLOP/s over the GEMM's (None without a GEMM measurement)."""
        return None if self.gemm is None else self.gemm.fraction(result)

    def to_json_dict(self) -> dict[str, object]:
        return {
            "npconv_version": npconv.__version__,
            "environment": self.environment.to_json_dict(),
            "settings": self.settings.to_json_dict(),
            "methods": list(self.methods),
            "torch_available": self.torch_available,
            "torch": self.torch_status,
            "gemm_peak": None if self.gemm is None else self.gemm.to_json_dict(),
            "layers": [layer.to_json_dict(self.gemm) for layer in self.layers],
            "separable": [report.to_json_dict() for report in self.separable],
            "wall_seconds": self.wall_seconds,
        }


# ---------------------------------------------------------------------- running


Progress = Callable[[str], None]


def _contestants(workload: Workload, methods: Sequence[str], torch: ModuleType | None) -> tuple[
        list[str], list[Skipped]]:
    """The contestants that run on ``workload`` (PyTorch first), and those skipped with the reason."""
    run = [TORCH] if torch is not None else []
    skipped = []
    for method in methods:
        reason = skip_reason(method, workload.dense_mults)
        if reason is None:
            run.append(method)
        else:
            skipped.append(Skipped(method, reason))
    return run, skipped


def _measure(workload: Workload, contestant: str, torch: ModuleType | None, repeats: int) -> ContestantResult:
    if contestant == TORCH:
        return measure_torch(workload, torch, repeats)
    return measure_method(workload, contestant, repeats)


def run_benchmark(
    layers: Mapping[str, ConvGeometry] | None = None,
    *,
    methods: Sequence[str] | None = None,
    threads: int | None = None,
    dtype: object = "float32",
    repeats: int = DEFAULT_REPEATS,
    separable: Mapping[str, tuple[ConvGeometry, SeparableGeometry]] | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Time ``methods`` (default: all available) and PyTorch on ``layers`` beside NumPy's GEMM.

    ``layers`` defaults to the whole benchmark set.  With ``separable`` (name
    -> (standard, separable) layers) it times those pairs instead and skips
    the GEMM.  ``threads`` defaults to :func:`max_threads`.  ``progress`` is
    called with a line before each measurement.
    """
    start = time.perf_counter()
    dtype = check_dtype(dtype)
    repeats = check_repeats(repeats)
    threads = check_threads(max_threads() if threads is None else threads)
    methods = tuple(npconv.available_methods() if methods is None else methods)
    for method in methods:
        kernels.load(method)  # an unknown name fails here, before any timing
    if separable is None and layers is None:
        layers = BENCHMARK_LAYERS
    torch, torch_status = import_torch()
    say = progress or (lambda message: None)

    plans: list[tuple[str, list[Workload], list[str], list[Skipped]]] = []
    for name, geometry in (layers or {}).items():
        workload = ConvWorkload(geometry, dtype)
        plans.append((name, [workload], *_contestants(workload, methods, torch)))
    for name, (standard, separable_geometry) in (separable or {}).items():
        pair = [ConvWorkload(standard, dtype), SeparableWorkload(separable_geometry, dtype)]
        largest = max(pair, key=lambda w: w.dense_mults)
        plans.append((name, pair, *_contestants(largest, methods, torch)))
    steps = sum(len(workloads) * len(run) for _, workloads, run, _ in plans) + (separable is None)

    with thread_limits(threads, torch) as threads_in_force:
        environment = Environment.collect(threads_in_force, torch_status)
        step = 0
        gemm = None
        if separable is None:
            step += 1
            say(f"[{step}/{steps}] NumPy GEMM {GEMM_SIZE}x{GEMM_SIZE} {dtype.name} (the peak)")
            gemm = measure_gemm(dtype, repeats)
        layer_reports, separable_reports = [], []
        for name, workloads, run, skipped in plans:
            results: list[list[ContestantResult]] = []
            for workload in workloads:
                results.append([])
                for contestant in run:
                    step += 1
                    say(f"[{step}/{steps}] {name}{'' if len(workloads) == 1 else ' ' + workload.kind}: "
                        f"{contestant}")
                    results[-1].append(_measure(workload, contestant, torch, repeats))
            if len(workloads) == 1:
                layer_reports.append(LayerReport(name, workloads[0], tuple(results[0]), tuple(skipped)))
            else:
                pairs = tuple(SeparablePair(s, p) for s, p in zip(*results, strict=True))
                separable_reports.append(SeparableReport(name, *workloads, pairs, tuple(skipped)))

    return BenchReport(environment, Settings(dtype.name, repeats, threads), torch_status, gemm,
                       tuple(layer_reports), tuple(separable_reports), time.perf_counter() - start, methods)


# ---------------------------------------------------------------------- text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return render.table([header, *rows], "lr")


def _counts_cell(result: ContestantResult) -> str:
    if result.counts is None:
        return "-"
    if result.counts_match_formula:
        return f"{result.counts.convention} = formula"
    return (f"{result.counts.convention} {result.counts.mults:,} != formula {result.formula_mults:,} "
            "MISMATCH")


def _skipped_lines(skipped: Sequence[Skipped]) -> list[str]:
    return [f"  (not timed: {s.reason})" for s in skipped]


def _header_lines(report: BenchReport) -> list[str]:
    s = report.settings
    lines = [f"npconv bench: {s.dtype}, median of {s.repeats} sample{'s' * (s.repeats != 1)} per contestant "
             f"after {s.warm_up_seconds:g} s of warm-up (a sample repeats a call for at least "
             f"{s.min_sample_seconds * 1e3:g} ms)",
             report.environment.describe()]
    if report.environment.busy:
        lines.append(f"Warning: other processes were using the CPU (load average "
                     f"{report.environment.load_average:.2f} on {report.environment.cores} cores): times are "
                     "noisy, multithreaded ones (PyTorch's, the GEMM) most; rerun on a quiet machine.")
    if not report.torch_available:
        lines.append(f"{report.torch_status}: no PyTorch rows and no ratio to it; "
                     "pip install 'npconv[compare]' to add them.")
    return lines


def render_text(report: BenchReport) -> str:
    """The layer tables (or the separable table) for people."""
    lines = _header_lines(report)
    if report.gemm is not None:
        g = report.gemm
        lines.append(f"GEMM peak: NumPy {g.dtype} {g.size}x{g.size} @ {g.size}x{g.size} in "
                     f"{format_seconds(g.timing.median)} (spread {percent(g.timing.relative_iqr)}) = "
                     f"{significant(g.gflops)} GFLOP/s")
    if report.layers:
        lines += ["", "Per layer: median time per call of the fast path (count=False); spread = interquartile "
                  "range / median;", "GFLOP/s = mults + adds measured by one count=True call / median time; "
                  "of peak = GFLOP/s / GEMM's;", "count/fast = median time with count=True over without; "
                  "time / torch = median over PyTorch's (lower is faster)."]
    any_torch_formula = False
    for layer in report.layers:
        w = layer.workload
        dense, effective = w.formula_counts("dense")[0], w.formula_counts("effective")[0]
        lines += ["", f"{layer.name}: {w.describe()}",
                  f"  formula mults: dense {dense:,}" + (f", effective {effective:,}" if effective != dense else
                                                         " (dense = effective: no padding reaches a tap)")]
        rows = []
        for result in layer.results:
            ratio = layer.ratio_to_torch(result)
            peak = report.fraction_of_peak(result)
            any_torch_formula |= not result.measured
            rows.append([
                result.contestant,
                format_seconds(result.timing.median),
                percent(result.timing.relative_iqr),
                significant(result.gflops) + ("" if result.measured else "*"),
                "-" if peak is None else percent(peak),
                _counts_cell(result),
                "-" if result.counting_over_fast is None else f"{result.counting_over_fast:.2f}",
                "-" if ratio is None else significant(ratio),
            ])
        lines += _table(["method", "median", "spread", "GFLOP/s", "of peak", "counts (measured)", "count/fast",
                         "time / torch"], rows)
        lines += _skipped_lines(layer.skipped)
    if report.separable:
        lines += ["", *render_separable(report.separable)]
    if any_torch_formula:
        lines += ["", "* PyTorch counts nothing: its GFLOP/s uses the dense formula."]
    lines += ["", f"Wall time: {report.wall_seconds:.1f} s"]
    return "\n".join(lines)


def _times(ratio: float, fewer: str, more: str) -> str:
    return f"{1 / ratio:.3g}x {fewer}" if ratio <= 1 else f"{ratio:.3g}x {more}"


def render_separable(reports: Sequence[SeparableReport]) -> list[str]:
    """Do fewer multiplications mean faster?  One table per standard / separable pair."""
    lines = ["Does fewer multiplications mean faster?  Separable over standard, per contestant: mults "
             "(measured by",
             "each npconv method in its own counting convention) and median time (fast path).  Lower is "
             "fewer / faster."]
    for report in reports:
        lines += ["", f"{report.name}: standard {report.standard.describe()}",
                  f"  separable: {report.separable.describe()}"]
        rows = []
        for pair in report.pairs:
            rows.append([
                pair.contestant,
                format_seconds(pair.standard.timing.median),
                format_seconds(pair.separable.timing.median),
                f"{pair.mult_ratio:.3g}" + ("" if pair.standard.measured else "*"),
                f"{pair.time_ratio:.3g}",
                f"{_times(pair.mult_ratio, 'fewer mults', 'more mults')}, "
                f"{_times(pair.time_ratio, 'faster', 'slower')}",
            ])
        lines += _table(["method", "standard", "separable", "mults sep/std", "time sep/std", "reading"], rows)
        lines += _skipped_lines(report.skipped)
    if any(not p.standard.measured for r in reports for p in r.pairs):
        lines += ["", "* PyTorch counts nothing: its mult ratio is the dense formula's."]
    return lines


# ---------------------------------------------------------------------- plot


def _chart_data(report: BenchReport) -> tuple[list[tuple[str, dict[str, float], dict[str, float]]], str, str]:
    """Per group: (name, contestant -> bar value, contestant -> tick value); the y label; the title."""
    if report.separable:
        groups = [(r.name, {p.contestant: p.time_ratio for p in r.pairs},
                   {p.contestant: p.mult_ratio for p in r.pairs}) for r in report.separable]
        return (groups, "separable time / standard time",
                "Does fewer multiplications mean faster?\nbars: time ratio (below 1: separable is faster); "
                "black ticks: mult ratio")
    if report.torch_available:
        groups = [(layer.name, {r.contestant: layer.ratio_to_torch(r) for r in layer.results
                                if r.contestant != TORCH}, {}) for layer in report.layers]
        return groups, "median time / PyTorch's", "npconv vs PyTorch conv2d (below 1: faster than PyTorch)"
    groups = [(layer.name, {r.contestant: report.fraction_of_peak(r) for r in layer.results}, {})
              for layer in report.layers]
    return groups, "GFLOP/s / NumPy GEMM's", "npconv vs the GEMM peak (1: as fast as a GEMM; no PyTorch)"


def plot_report(report: BenchReport, path: str, pyplot: ModuleType | None = None) -> None:
    """Bars per layer and method on a log scale, drawn from the line at 1.

    The line at 1 is PyTorch (time / PyTorch's), or the GEMM peak when
    PyTorch is missing; with ``--separable`` it is "as fast as the standard
    layer", and a black tick marks each method's measured mult ratio.
    """
    pyplot = pyplot or import_pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    groups, ylabel, title = _chart_data(report)
    contestants = list(dict.fromkeys(c for _, bars, _ in groups for c in bars))
    values = [v for _, bars, ticks in groups for v in (*bars.values(), *ticks.values())] or [1.0]
    figure, axes = pyplot.subplots(figsize=(max(6.5, 1.5 * len(groups) + 2.5), 4.8), layout="constrained")
    width = 0.8 / max(1, len(contestants))
    for i, contestant in enumerate(contestants):
        xs = [g for g, (_, bars, _) in enumerate(groups) if contestant in bars]
        offsets = [x - 0.4 + width * (i + 0.5) for x in xs]
        ys = [groups[g][1][contestant] for g in xs]
        drawn = axes.bar(offsets, [y - 1 for y in ys], width, bottom=1, label=contestant)
        axes.bar_label(drawn, labels=[f"{y:.2g}" if y < 100 else f"{y:,.0f}" for y in ys], fontsize=8, padding=2)
        ticks = [(x, groups[g][2][contestant]) for x, g in zip(offsets, xs, strict=True) if contestant in groups[g][2]]
        for x, tick in ticks:
            axes.hlines(tick, x - width / 2, x + width / 2, color="black", linewidth=2,
                        label="mult ratio (separable / standard)" if i == 0 and x == ticks[0][0] else None)
    axes.axhline(1, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_ylim(min(*values, 1) / 2.5, max(*values, 1) * 2.5)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xticks(range(len(groups)), [name for name, _, _ in groups])
    axes.set_ylabel(ylabel + " (log scale)")
    s, env = report.settings, report.environment
    axes.set_title(f"{title}\n{s.dtype}, {s.threads} threads, {env.cpu}", fontsize=10)
    axes.legend(fontsize=8, title="method", title_fontsize=8)
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


class ProgressLine:
    """Progress messages on ``stream`` (stderr): one line rewritten in place on a terminal, plain lines otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()

    def __call__(self, message: str) -> None:
        self.stream.write("\r\033[K" + message if self.interactive else message + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Clear the line on a terminal, so that the report starts on a clean one."""
        if self.interactive:
            self.stream.write("\r\033[K")
            self.stream.flush()
