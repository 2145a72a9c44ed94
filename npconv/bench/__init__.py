"""Benchmark runner behind ``npconv bench`` and the pytest-benchmark suite in ``bench/``.

Every contestant is timed in this one process, with one thread count set for
all of them (Numba's, BLAS's through threadpoolctl, and PyTorch's):

* each npconv method of :func:`npconv.available_methods` (whatever is
  installed at run time), through the public API;
* PyTorch's ``torch.nn.functional.conv2d``, when torch can be imported;
* NumPy's GEMM (``a @ b`` on square matrices of :data:`GEMM_SIZE`, in the
  benchmark's dtype) as the machine's practical peak;
* ``np.copyto`` of :data:`COPY_BYTES` as its practical memory bandwidth, against
  which memory-bound layers (depthwise) are read as bytes moved per second.

Timing policy (:mod:`npconv.bench.timing`): each call is made once untimed (a Numba
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

Where to look:

* :mod:`npconv.bench.workloads` -- the layers and their operands, the calls;
* :mod:`npconv.bench.machine` -- threads, the environment, optional imports;
* :mod:`npconv.bench.timing` -- warm-up, interleaved samples, statistics;
* :mod:`npconv.bench.report` -- the results and :func:`run_benchmark`;
* :mod:`npconv.bench.rendering` -- the tables and the plot.
"""

from npconv.bench.machine import (
    BUSY_LOAD_PER_CORE,
    Environment,
    check_threads,
    import_pyplot,
    import_torch,
    max_threads,
    thread_limits,
)
from npconv.bench.rendering import ProgressLine, plot_format, plot_report, render_separable, render_text
from npconv.bench.report import (
    COPY_BYTES,
    GEMM_SIZE,
    SEED_LAYER,
    TORCH,
    BenchReport,
    ContestantResult,
    CopyBandwidth,
    GemmPeak,
    LayerReport,
    Progress,
    SeparablePair,
    SeparableReport,
    Settings,
    Skipped,
    measure_copy,
    measure_gemm,
    measure_method,
    measure_torch,
    run_benchmark,
    select_methods,
    skip_reason,
    slow_method_limit,
)
from npconv.bench.timing import (
    DEFAULT_REPEATS,
    MIN_SAMPLE_SECONDS,
    WARM_UP_SECONDS,
    Timing,
    check_repeats,
    time_interleaved,
)
from npconv.bench.workloads import (
    DTYPES,
    ConvWorkload,
    SeparableWorkload,
    Workload,
    check_dtype,
    select_layers,
    separable_counterpart,
)
from npconv.layerset import BENCHMARK_LAYERS
from npconv.render import format_seconds

__all__ = [
    "BENCHMARK_LAYERS", "BUSY_LOAD_PER_CORE", "COPY_BYTES", "DEFAULT_REPEATS", "DTYPES", "GEMM_SIZE", "MIN_SAMPLE_SECONDS",
    "SEED_LAYER", "TORCH", "WARM_UP_SECONDS", "BenchReport", "ContestantResult", "ConvWorkload", "CopyBandwidth", "Environment",
    "GemmPeak", "LayerReport", "Progress", "ProgressLine", "SeparablePair", "SeparableReport",
    "SeparableWorkload", "Settings", "Skipped", "Timing", "Workload", "check_dtype", "check_repeats",
    "check_threads", "format_seconds", "import_pyplot", "import_torch", "max_threads", "measure_copy", "measure_gemm",
    "measure_method", "measure_torch", "plot_format", "plot_report", "render_separable", "render_text", "run_benchmark",
    "select_layers", "select_methods", "separable_counterpart", "skip_reason", "slow_method_limit",
    "thread_limits", "time_interleaved",
]
