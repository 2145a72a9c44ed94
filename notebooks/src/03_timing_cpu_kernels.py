# %% [markdown]
# # 3. Timing CPU kernels
#
# npconv computes the same convolution three ways:
#
# - `method="reference"` — plain Python loops (notebook 1), written to be read;
# - `method="direct"` — the same loops compiled by Numba and run in parallel
#   on all cores, skipping the padding (it counts *effective* multiplications);
# - `method="im2col"` — copy every window into a column of a matrix, then one
#   matrix product (GEMM) on NumPy's BLAS (it counts *dense* multiplications).
#
# This notebook times them against each other, against PyTorch's
# `torch.nn.functional.conv2d` when PyTorch is installed (it runs without it),
# and against the machine's practical peak: NumPy's own float32 matrix product.
# Then it asks the question the course problem raises: separable convolution
# does far fewer multiplications — is it correspondingly faster?
#
# The timing is `npconv.bench`, the runner behind `npconv bench`:
#
# - every contestant runs in this one process, with one thread count for
#   Numba, BLAS and PyTorch;
# - each call is made once untimed, then repeated for a short warm-up; the
#   time reported is the **median** of a few samples (each sample repeats the
#   call for at least 20 ms), and the plots draw the **spread** of the samples
#   (a whisker from the fastest to the slowest) beside it;
# - the machine, the thread count and the **load average** when the run began
#   are printed with every table, and the notebook says so in its output when
#   other work was using the CPU (the numbers are then noisy);
# - **GFLOP/s** is the number of multiplications + additions that the kernel
#   itself *counted* in one `count=True` call, over the median time of the
#   fast call (`count=False`); PyTorch counts nothing, so its work is the dense
#   formula's, marked with `*`;
# - **of peak** is that rate over NumPy's GEMM rate, measured in the same run.
#
# **About the numbers.** They are from whatever machine executed this
# notebook, at that moment; on a shared machine they move from run to run.
# Compare contestants *within* one run (ratios), not with another run's table.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import npconv
from npconv import bench, formulas
from npconv.geometry import ConvGeometry

REPEATS = 5  # samples per contestant: enough for a median and a spread, and the notebook runs in minutes
torch, torch_status = bench.import_torch()
print("PyTorch:", torch_status)
print("npconv methods:", ", ".join(npconv.available_methods()))


def settle(most_seconds: float = 60) -> None:
    """Wait, up to ``most_seconds``, for the load average to fall below the busy threshold: it is a
    one-minute average, so a benchmark just run (the cell before) still counts in it for a while."""
    import os

    started = time.perf_counter()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    while (hasattr(os, "getloadavg") and os.getloadavg()[0] > bench.BUSY_LOAD_PER_CORE * cores
           and time.perf_counter() - started < most_seconds):
        time.sleep(2)

# %% [markdown]
# ## The first call of `method="direct"` compiles
#
# Numba compiles the direct kernel to machine code on its first call (one
# variant that counts and one that does not, per dtype) and caches the result
# on disk. On a fresh install that first call takes seconds to tens of
# seconds; after that, and in later sessions, it is fast. The benchmark makes
# every call once before timing it, so compilation never lands in the numbers —
# but here is what it costs, on a tiny layer:

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 3, 14, 14)).astype(np.float32)
w = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
for label in ("first call (compiles unless cached)", "second call"):
    start = time.perf_counter()
    npconv.conv2d(x, w, method="direct")
    npconv.conv2d(x, w, method="direct", count=True)
    print(f"{label:36}: {time.perf_counter() - start:8.3f} s (fast + counting variant)")

# %% [markdown]
# ## The reference loops, on a small layer
#
# Plain Python manages a few million multiplications a second, so the
# reference kernel is timed on a small layer only: 14x14x3 input, 16 filters
# of 5x5, padding 1. Everything else is timed there too, for scale.

# %%
small = ConvGeometry.from_layer((1, 3, 14, 14), 16, 5, padding=1, bias=True)
settle()
small_report = bench.run_benchmark({"small 5x5": small}, repeats=REPEATS)
print(bench.render_text(small_report))


def say_how_quiet(report) -> None:
    """The machine, the threads and the load the run began with; a warning when the CPU was busy."""
    env = report.environment
    print(f"machine: {env.cpu}, {env.cores} cores; threads: {report.settings.threads}; "
          f"NumPy's BLAS: {env.blas}")
    if env.load_average is None:
        print("load average: not known on this system")
    elif env.busy:
        print(f"WARNING: the load average was {env.load_average:.2f} on {env.cores} cores when timing began: "
              "other work was using the CPU (or had been, within the last minute: the load average is a "
              "one-minute average), so these times may be noisy and the multithreaded contestants suffer "
              "most. Re-run this notebook on a quiet machine before drawing conclusions.")
    else:
        print(f"load average {env.load_average:.2f} on {env.cores} cores when timing began: a quiet machine")




say_how_quiet(small_report)

# %%
layer = small_report.layers[0]
results = sorted(layer.results, key=lambda r: r.timing.median)
fig, ax = plt.subplots(figsize=(7, 2.8))
medians = np.array([r.timing.median for r in results]) * 1e3
spread = np.array([[r.timing.median - min(r.timing.samples), max(r.timing.samples) - r.timing.median]
                   for r in results]).T * 1e3
ax.barh([r.contestant for r in results], medians, xerr=spread, color="#4c72b0", capsize=3)
for i, r in enumerate(results):
    ax.text(max(r.timing.samples) * 1e3 * 1.15, i, f"{bench.format_seconds(r.timing.median)}", va="center")
ax.set_xscale("log")
ax.set_xlabel("median time per call, ms (log scale); whiskers: fastest to slowest sample")
ax.set_title(f"small 5x5 layer: {int(formulas.mults(small)):,} dense multiplications")
ax.set_xlim(right=ax.get_xlim()[1] * 10)
plt.show()

# %% [markdown]
# ## The benchmark layer set
#
# The same seven float32 layers are used for every speed comparison in the
# project (`npconv.layerset.BENCHMARK_LAYERS`): the course problem's 5x5 layer
# (padding 0, `seed 5x5`) and its padding-1 variant (`seed 5x5 p1`), a ResNet
# 3x3 layer, a stride-2 stem, a depthwise 3x3, a pointwise 1x1 and a large
# 7x7. The reference kernel is left out here (on the larger layers it would
# take minutes per call).

# %%
settle()  # the small layer's run above still weighs in the one-minute load average
report = bench.run_benchmark(methods=("direct", "im2col"), repeats=REPEATS)
print(bench.render_text(report))
say_how_quiet(report)

# %% [markdown]
# The left plot is each contestant's rate as a fraction of the GEMM peak
# (1 = as fast as a large matrix product, about the best a CPU does on this
# kind of arithmetic). A bar above 1 means the peak was measured at a busier
# moment than that layer — the machine is shared — or, for PyTorch, whose work
# is the dense formula's, that it did less arithmetic than the formula says.
# The right plot is each npconv method's time over PyTorch's on the same layer
# (below 1: faster than PyTorch); it is empty without PyTorch.

# %%
names = [layer.name for layer in report.layers]
contestants = list(dict.fromkeys(r.contestant for layer in report.layers for r in layer.results))
fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8))
width = 0.8 / len(contestants)
for i, contestant in enumerate(contestants):
    fractions, ratios, whiskers = [], [], []
    for layer in report.layers:
        result = next(r for r in layer.results if r.contestant == contestant)
        fractions.append(report.fraction_of_peak(result))
        ratio = layer.ratio_to_torch(result)
        ratios.append(ratio)
        # the contestant's own spread, over PyTorch's median: how far its samples ranged
        scale = ratio / result.timing.median if ratio is not None else 0.0
        whiskers.append((scale * (result.timing.median - min(result.timing.samples)),
                         scale * (max(result.timing.samples) - result.timing.median)))
    xs = np.arange(len(names)) + (i - (len(contestants) - 1) / 2) * width
    label = contestant + (" (dense formula)" if contestant == bench.TORCH else " (measured counts)")
    left.bar(xs, fractions, width, label=label)
    if contestant != bench.TORCH and torch is not None:
        right.bar(xs, ratios, width, yerr=np.array(whiskers).T, capsize=2, label=contestant, color=f"C{i}")
left.axhline(1, color="black", linewidth=0.8)
left.set_yscale("log")
left.set_ylabel("GFLOP/s / NumPy GEMM GFLOP/s (log)")
left.set_title(f"fraction of the GEMM peak ({report.gemm.gflops:.0f} GFLOP/s in this run)")
left.legend(fontsize=8)
if torch is not None:
    right.axhline(1, color="black", linewidth=0.8)
    right.set_yscale("log")
    right.set_ylabel("median time / PyTorch's median (log); whiskers: fastest to slowest sample")
    right.set_title("time relative to PyTorch (below 1: faster)")
    right.legend(fontsize=8)
else:
    right.text(0.5, 0.5, "PyTorch not installed:\npip install 'npconv[compare]'", ha="center", va="center",
               transform=right.transAxes)
    right.axis("off")
for ax in (left, right):
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.grid(alpha=0.3, axis="y", which="both")
load = report.environment.load_average
fig.suptitle(f"float32, {report.settings.threads} threads, {report.environment.cpu}"
             + ("" if load is None else f", load average {load:.2f} at the start"))
plt.show()

# %% [markdown]
# What to look for:
#
# - **im2col** spends its time in two places: building the column matrix (a
#   copy `KH x KW` times the size of the input) and the GEMM, which is the same
#   BLAS call as the peak. Where its bar falls well short of 1, the copy — or a
#   matrix too small to keep BLAS busy — is the cost. The pointwise 1x1 layer
#   needs no copy at all.
# - **direct** never copies, but its loops are hand-written Numba, not a tuned
#   BLAS: compare it with im2col layer by layer to see where each wins.
# - The **depthwise** layer does only 9 multiplications per input value it
#   reads (one 3x3 filter per channel), so moving memory, not arithmetic,
#   bounds it. Compare its bars with the pointwise layer's, which reads the
#   same input but does 128 multiplications per value. Remember this for the
#   next section.
# - **count/fast** (in the table) near 1 means counting costs (almost) nothing:
#   the tallies are kept per row or per matrix product, not per multiplication.
# - The **small** layers (the seed 5x5, and the small layer above) take
#   milliseconds or less: there, per-call overhead — starting threads, checking
#   arguments — weighs as much as the arithmetic, and a loaded machine hurts
#   multithreaded contestants most.
#
# ## Do fewer multiplications mean faster?
#
# Notebook 2 showed that a separable layer does `1/C_out + 1/K²` of a standard
# layer's multiplications. Below, each standard layer is timed against its
# depthwise-separable counterpart (same input and output shapes, a bias on the
# pointwise part), by every contestant. For each pair and contestant we plot:
#
# - x: separable mults / standard mults (measured by the kernel's counts;
#   PyTorch's from the dense formula),
# - y: separable time / standard time.
#
# On the dashed diagonal, time falls exactly as much as the multiplications.
# Above it, the separable layer saves less time than it saves multiplications;
# above the line at 1, it is slower than the standard layer.

# %%
standard_layers = {
    "course example 14x14x3, 5x5 -> 256": ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, bias=True),
    "56x56x32, 3x3 -> 64": ConvGeometry.from_layer((1, 32, 56, 56), 64, 3, padding=1, bias=True),
    "14x14x256, 3x3 -> 256": ConvGeometry.from_layer((1, 256, 14, 14), 256, 3, padding=1, bias=True),
    "28x28x64, 5x5 -> 128": ConvGeometry.from_layer((1, 64, 28, 28), 128, 5, padding=2, bias=True),
}
pairs = {name: bench.separable_counterpart(g) for name, g in standard_layers.items()}
settle()
separable_report = bench.run_benchmark(separable=pairs, methods=("direct", "im2col"), repeats=REPEATS)
print(bench.render_text(separable_report))
say_how_quiet(separable_report)

# %%
fig, ax = plt.subplots(figsize=(11, 6.5), layout="constrained")
markers = "osD^vP"
for j, pair_report in enumerate(separable_report.separable):
    for pair in pair_report.pairs:
        i = contestants.index(pair.contestant) if pair.contestant in contestants else len(contestants)
        ax.plot(pair.mult_ratio, pair.time_ratio, markers[j % len(markers)], color=f"C{i}", markersize=8,
                markerfacecolor="none" if pair.contestant == bench.TORCH else f"C{i}")
low = min(min(p.mult_ratio, p.time_ratio) for r in separable_report.separable for p in r.pairs) / 2
high = max(2, *(p.time_ratio for r in separable_report.separable for p in r.pairs)) * 1.5
ax.plot([low, high], [low, high], "--", color="gray")
ax.axhline(1, color="black", linewidth=0.8)
ax.text(low * 1.1, 1.05, "slower than the standard layer above this line", fontsize=8, va="bottom")
ax.text(high / 1.1, high / 1.3, "time ratio = mult ratio", fontsize=8, ha="right", va="top", rotation=45,
        color="gray")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlim(low, high)
ax.set_ylim(low, high)
ax.set_xlabel("separable mults / standard mults")
ax.set_ylabel("separable time / standard time")
ax.set_title("Do fewer multiplications mean faster?")
ax.grid(alpha=0.3, which="both")
legend_methods = [plt.Line2D([], [], linestyle="none", marker="o", color=f"C{i}", label=c,
                             markerfacecolor="none" if c == bench.TORCH else f"C{i}")
                  for i, c in enumerate(contestants)]
legend_layers = [plt.Line2D([], [], linestyle="none", marker=markers[j % len(markers)], color="gray",
                            label=r.name) for j, r in enumerate(separable_report.separable)]
first = ax.legend(handles=legend_methods, title="method (hollow: formula)", loc="upper left",
                  bbox_to_anchor=(1.02, 1), fontsize=8)
ax.add_artist(first)
ax.legend(handles=legend_layers, title="standard layer", loc="lower left", bbox_to_anchor=(1.02, 0), fontsize=8)
plt.show()

points = [p for r in separable_report.separable for p in r.pairs]
promised = sorted(1 / p.mult_ratio for p in points)
print(f"multiplications: the separable layers do {promised[0]:.1f}x to {promised[-1]:.1f}x fewer")
print(f"in this run, {sum(p.time_ratio > p.mult_ratio for p in points)} of {len(points)} points lie above "
      f"the diagonal (time fell less than the multiplications) and {sum(p.time_ratio > 1 for p in points)} "
      f"above 1 (the separable layer was slower)")

# %% [markdown]
# ## Reading the answer
#
# How far a point sits above the diagonal (on these log scales, the factor
# time ratio / mult ratio) is the gap between the saving the multiplication
# count promises and the saving the CPU delivered.
# A point can sit above the diagonal for the reasons the layer set showed:
#
# - the **depthwise** step does very little arithmetic per value it reads, so
#   it runs at a small fraction of the peak: each of its few multiplications
#   costs more time than one of the standard layer's many;
# - the separable layer makes **two passes** over memory (write the depthwise
#   output, read it back) and pays two calls' overhead, which weighs most on
#   small layers;
# - a standard layer is one large, regular matrix product — exactly what BLAS
#   and PyTorch are best at.
#
# A point can also sit *below* the diagonal: when the standard layer is the
# one a method handles badly (a small, awkward matrix product, say), the
# separable pair escapes that cost too.
#
# So "far fewer multiplications" does mean less arithmetic and fewer
# parameters, but "much faster" has to be measured, not assumed — on your
# machine, `npconv bench --separable` does it from the command line.
