"""The benchmark's results and the run that measures them: :func:`run_benchmark` -> :class:`BenchReport`.

A :class:`ContestantResult` is one contestant on one layer: its fast call's
timing and the work it did -- the counts an npconv method's counting call
*measured* (the closed forms only check them), or, for PyTorch, which counts
nothing, the dense formula.  :class:`LayerReport`, :class:`SeparableReport`
and :class:`BenchReport` gather them with the GEMM peak
(:class:`GemmPeak`), the copy bandwidth (:class:`CopyBandwidth`), the
settings and the environment.  A layer whose arithmetic intensity is below
the machine's balance (GEMM FLOP/s over copy bytes/s) is memory-bound
(depthwise layers): its results are also read as bytes moved per second,
a fraction of the copy's.  Interpreted methods
run only on layers no larger than the seed layer (:func:`skip_reason`, from
:func:`npconv.kernels.too_slow`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

import npconv
from npconv import kernels, quantities
from npconv.bench.machine import Environment, check_threads, import_torch, max_threads, thread_limits
from npconv.bench.timing import (
    DEFAULT_REPEATS,
    MIN_SAMPLE_SECONDS,
    WARM_UP_SECONDS,
    Timing,
    check_repeats,
    time_interleaved,
)
from npconv.bench.workloads import (
    ConvWorkload,
    SeparableWorkload,
    Workload,
    check_dtype,
    operand_arrays,
    output_arrays,
)
from npconv.counts import Counts, SeparableCounts
from npconv.errors import ConvMemoryError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.layerset import BENCHMARK_LAYERS
from npconv.memory import array_bytes, ensure_arrays_fit

#: Side of the square GEMM that stands for the machine's peak: about 0.1 s in float32 on 2 cores.
GEMM_SIZE = 2048

#: Bytes of the array copied for the memory-bandwidth reference: far beyond any cache (32 MiB of L3
#: here), so that the copy runs at the speed of memory.
COPY_BYTES = 256 * 2**20

#: The layer whose time bounds the interpreted methods': an interpreted method is timed only on
#: layers it runs about as fast as this one (:func:`npconv.kernels.too_slow`).  The reference
#: kernel is plain Python, for teaching: on the benchmark set that is the seed layer alone.
SEED_LAYER = "seed 5x5"

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



def select_methods(text: str | None, argument: str = "methods") -> tuple[str, ...]:
    """npconv methods named in ``text`` (comma-separated), or every one for None -- the fast
    algorithms too, timed on the layers they run (:func:`npconv.kernels.all_methods`)."""
    available = kernels.all_methods()
    if text is None:
        return available
    return kernels.choose_methods(text, available, argument, "comma-separated npconv methods from those "
                                  "available here:", "PyTorch is always timed when installed")


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
        """Median time of the counting call over the fast call's (the cost of counting)."""
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
    mults, adds = workload.formula_counts_of(counts)
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
    a = rng.standard_normal((size, size), dtype=np.dtype(dtype))
    b = rng.standard_normal((size, size), dtype=np.dtype(dtype))
    call = lambda: a @ b  # noqa: E731
    call()
    (timing,) = time_interleaved([call], repeats)
    return GemmPeak(size, np.dtype(dtype).name, timing)


@dataclass(frozen=True)
class CopyBandwidth:
    """``np.copyto`` of ``nbytes`` between two arrays: the machine's practical memory bandwidth.

    A copy reads ``nbytes`` and writes ``nbytes``: ``bytes_moved`` counts both,
    as :meth:`LayerReport.bytes_moved` counts a layer's reads and writes.
    """

    nbytes: int
    timing: Timing

    @property
    def bytes_moved(self) -> int:
        return 2 * self.nbytes

    @property
    def gbps(self) -> float:
        """Bytes moved per second, in GB/s (10^9 bytes)."""
        return self.bytes_moved / self.timing.median / 1e9

    def to_json_dict(self) -> dict[str, object]:
        return {"nbytes": self.nbytes, "bytes_moved": self.bytes_moved, "gbps": self.gbps,
                "timing": self.timing.to_json_dict()}


def measure_copy(repeats: int = DEFAULT_REPEATS, nbytes: int = COPY_BYTES) -> CopyBandwidth:
    """Time ``np.copyto(destination, source)`` on two ``nbytes`` arrays (both touched first)."""
    source = np.ones(nbytes // 4, dtype=np.float32)
    destination = np.zeros_like(source)  # np.zeros may map lazily: the first copy below touches it
    call = lambda: np.copyto(destination, source)  # noqa: E731
    call()
    (timing,) = time_interleaved([call], repeats)
    return CopyBandwidth(source.nbytes, timing)


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

    @property
    def bytes_moved(self) -> int:
        """Bytes a call must move at least: the input, weight and bias read once, the output written once."""
        w = self.workload
        return sum(a.nbytes for a in (w.x, w.weight, w.bias) if a is not None) \
            + array_bytes(w.geometry.output_shape, w.dtype)

    @property
    def arithmetic_intensity(self) -> float:
        """Dense mults + adds per byte moved."""
        return sum(self.workload.formula_counts("dense")) / self.bytes_moved

    def bandwidth_bound(self, gemm: GemmPeak | None, copy: CopyBandwidth | None) -> bool | None:
        """Whether memory, not arithmetic, bounds the layer's time: a depthwise layer (``groups ==
        C_in``, a handful of FLOP per byte), or one whose arithmetic intensity is below the machine
        balance (GEMM FLOP/s over copy bytes/s, as measured in this run).  None without both
        references."""
        if gemm is None or copy is None:
            return None
        g = self.workload.geometry
        depthwise = g.groups == g.in_channels and g.groups > 1
        return depthwise or self.arithmetic_intensity < gemm.gflops / copy.gbps

    def gbps(self, result: ContestantResult) -> float:
        """:attr:`bytes_moved` over ``result``'s median time, GB/s."""
        return self.bytes_moved / result.timing.median / 1e9

    def to_json_dict(self, gemm: GemmPeak | None = None, copy: CopyBandwidth | None = None) -> dict[str, object]:
        """Every result, with its fraction of ``gemm``'s rate, of ``copy``'s bandwidth and its time
        over PyTorch's."""
        results = []
        for result in self.results:
            entry = result.to_json_dict()
            entry["fraction_of_gemm_peak"] = None if gemm is None else gemm.fraction(result)
            entry["gbps"] = self.gbps(result)
            entry["fraction_of_copy_bandwidth"] = None if copy is None else self.gbps(result) / copy.gbps
            entry["time_ratio_to_torch"] = self.ratio_to_torch(result)
            results.append(entry)
        w = self.workload
        return {"name": self.name, "description": w.describe(), "geometry": w.geometry.to_dict(),
                "bytes_moved": self.bytes_moved, "arithmetic_intensity": self.arithmetic_intensity,
                "bandwidth_bound": self.bandwidth_bound(gemm, copy),
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
    #: contestants whose separable layer ran a part by another method, and why
    notes: tuple[Skipped, ...] = ()

    def to_json_dict(self) -> dict[str, object]:
        return {"name": self.name, "notes": [n.to_json_dict() for n in self.notes],
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
    copy: CopyBandwidth | None = None

    @property
    def torch_available(self) -> bool:
        return not self.torch_status.startswith("PyTorch not available")

    def fraction_of_peak(self, result: ContestantResult) -> float | None:
        """GFLOP/s over the GEMM's (None without a GEMM measurement)."""
        return None if self.gemm is None else self.gemm.fraction(result)

    def fraction_of_bandwidth(self, layer: LayerReport, result: ContestantResult) -> float | None:
        """``result``'s bytes moved per second over the copy's (None without a copy measurement)."""
        return None if self.copy is None else layer.gbps(result) / self.copy.gbps

    def to_json_dict(self) -> dict[str, object]:
        return {
            "npconv_version": npconv.__version__,
            "environment": self.environment.to_json_dict(),
            "settings": self.settings.to_json_dict(),
            "methods": list(self.methods),
            "torch_available": self.torch_available,
            "torch": self.torch_status,
            "gemm_peak": None if self.gemm is None else self.gemm.to_json_dict(),
            "copy_bandwidth": None if self.copy is None else self.copy.to_json_dict(),
            "layers": [layer.to_json_dict(self.gemm, self.copy) for layer in self.layers],
            "separable": [report.to_json_dict() for report in self.separable],
            "wall_seconds": self.wall_seconds,
        }


# ---------------------------------------------------------------------- running


Progress = Callable[[str], None]


def _contestants(workloads: Sequence[Workload], methods: Sequence[str], torch: ModuleType | None) -> tuple[
        list[str], list[Skipped]]:
    """The contestants that run on every one of ``workloads`` (PyTorch first), and those skipped
    with the reason (the interpreted ones sized by the largest workload)."""
    run = [TORCH] if torch is not None else []
    skipped = []
    largest = max(workloads, key=lambda w: w.dense_mults)
    for method in methods:
        reason = skip_reason(method, largest.dense_mults) or next(
            (r for r in (unsupported_reason(method, w) for w in workloads) if r is not None), None)
        if reason is None:
            run.append(method)
        else:
            skipped.append(Skipped(method, reason))
    return run, skipped


def _layers_of(workload: Workload) -> tuple[ConvGeometry, ...]:
    g = workload.geometry
    return (g.depthwise, g.pointwise) if isinstance(g, SeparableGeometry) else (g,)


def unsupported_reason(method: str, workload: Workload) -> str | None:
    """Why a fast algorithm is not timed on ``workload`` (it runs no layer of it), or None."""
    problems = [kernels.supports(method, layer) for layer in _layers_of(workload)]
    if all(p is None for p in problems) or any(p is None for p in problems):
        return None
    return f"{method} runs {kernels.declaration(method).supported} only, not {problems[0]}"


def part_notes(methods: Sequence[str], workload: SeparableWorkload) -> list[Skipped]:
    """The contestants that run one part of ``workload`` by another method (see ``part_methods``)."""
    notes = []
    for method in methods:
        parts = workload.part_methods(method)
        for part, by in zip(("depthwise", "pointwise"), parts, strict=True):
            if by != method:
                problem = kernels.supports(method, getattr(workload.geometry, part))
                notes.append(Skipped(method, f"its {part} part ran by {by}: {method} cannot run {problem}"))
    return notes


def _measure(workload: Workload, contestant: str, torch: ModuleType | None, repeats: int) -> ContestantResult:
    if contestant == TORCH:
        return measure_torch(workload, torch, repeats)
    return measure_method(workload, contestant, repeats)


def _ensure_workloads_fit(layers: Mapping[str, ConvGeometry],
                          separable: Mapping[str, tuple[ConvGeometry, SeparableGeometry]], dtype: np.dtype,
                          gemm: bool) -> None:
    """Refuse, before any operand is drawn, a benchmark whose arrays would not fit in memory.

    Every layer's random operands are made before the timing starts and held to its end; one call's
    output is alive at a time (the largest is counted), and so are the GEMM's three matrices.  The
    error names the layer with the most operand bytes.
    """
    geometries = [(name, g) for name, g in layers.items()]
    geometries += [(name, g) for name, pair in separable.items() for g in pair]
    if not geometries:
        return
    arrays = [(f"{name}: {array}", shape, kind) for name, g in geometries for array, shape, kind in
              operand_arrays(g, dtype)]
    outputs = max((output_arrays(g, dtype) for _, g in geometries),
                  key=lambda found: sum(array_bytes(shape, kind) for _, shape, kind in found))
    if gemm:
        arrays += [(f"the GEMM's {m}", (GEMM_SIZE, GEMM_SIZE), dtype) for m in ("a", "b", "a @ b")]
        arrays += [(f"the copy's {m}", (COPY_BYTES // 4,), np.dtype(np.float32)) for m in ("source", "destination")]

    def operand_bytes(named: tuple[str, ConvGeometry | SeparableGeometry]) -> int:
        return sum(array_bytes(shape, kind) for _, shape, kind in operand_arrays(named[1], dtype) if shape)

    largest = max(geometries, key=operand_bytes)[0]
    ensure_arrays_fit([*arrays, *outputs], f"the random {dtype.name} operands of every layer timed and one "
                      "call's output", f"layer {largest!r}")


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
    methods = tuple(kernels.all_methods() if methods is None else methods)
    for method in methods:
        kernels.load(method)  # an unknown name fails here, before any timing
    if separable is None and layers is None:
        layers = BENCHMARK_LAYERS
    _ensure_workloads_fit(layers or {}, separable or {}, dtype, gemm=separable is None)
    torch, torch_status = import_torch()
    say = progress or (lambda message: None)

    plans: list[tuple[str, list[Workload], list[str], list[Skipped]]] = []
    for name, geometry in (layers or {}).items():
        workload = ConvWorkload(geometry, dtype)
        plans.append((name, [workload], *_contestants([workload], methods, torch)))
    for name, (standard, separable_geometry) in (separable or {}).items():
        pair = [ConvWorkload(standard, dtype), SeparableWorkload(separable_geometry, dtype)]
        plans.append((name, pair, *_contestants(pair, methods, torch)))
    steps = sum(len(workloads) * len(run) for _, workloads, run, _ in plans) + 2 * (separable is None)

    with thread_limits(threads, torch) as threads_in_force:
        environment = Environment.collect(threads_in_force, torch_status)
        step = 0
        gemm = copy = None
        if separable is None:
            step += 1
            say(f"[{step}/{steps}] NumPy GEMM {GEMM_SIZE}x{GEMM_SIZE} {dtype.name} (the peak)")
            gemm = measure_gemm(dtype, repeats)
            step += 1
            say(f"[{step}/{steps}] np.copyto of {COPY_BYTES // 2**20} MiB (the memory bandwidth)")
            copy = measure_copy(repeats)
        layer_reports, separable_reports = [], []
        for name, workloads, run, skipped in plans:
            results: dict[str, list[ContestantResult]] = {}
            refused: dict[str, str] = {}
            for workload in workloads:
                for contestant in run:
                    step += 1
                    if contestant in refused:
                        continue
                    say(f"[{step}/{steps}] {name}{'' if len(workloads) == 1 else ' ' + workload.kind}: "
                        f"{contestant}")
                    try:
                        results.setdefault(contestant, []).append(_measure(workload, contestant, torch, repeats))
                    except ConvMemoryError as error:  # e.g. FFT's filter spectra over the workspace limit
                        refused[contestant] = f"{contestant} refused the layer: {error}"
            skipped += [Skipped(c, reason) for c, reason in refused.items()]
            kept = [c for c in run if c not in refused]
            if len(workloads) == 1:
                layer_reports.append(LayerReport(name, workloads[0], tuple(results[c][0] for c in kept),
                                                 tuple(skipped)))
            else:
                pairs = tuple(SeparablePair(*results[c]) for c in kept)
                notes = tuple(part_notes([c for c in kept if c != TORCH], workloads[1]))
                separable_reports.append(SeparableReport(name, *workloads, pairs, tuple(skipped), notes))

    return BenchReport(environment, Settings(dtype.name, repeats, threads), torch_status, gemm,
                       tuple(layer_reports), tuple(separable_reports), time.perf_counter() - start, methods, copy)


