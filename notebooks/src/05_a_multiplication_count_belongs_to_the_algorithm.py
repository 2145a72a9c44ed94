# %% [markdown]
# # 5. A multiplication count belongs to the algorithm
#
# The course's formula for a convolution's multiplications,
# `OH x OW x C_out x KH x KW x C_in`, is the count of *one* algorithm: the
# textbook's, which multiplies every weight by every input value under it.
# npconv's reference loops, its im2col + GEMM and its direct loops all
# execute that count (dense, or effective when they skip the padding). Two
# other algorithms compute the same convolution with fewer multiplications:
#
# - **Winograd's minimal filtering** (`method="winograd2"`: F(2x2,3x3),
#   `"winograd4"`: F(4x4,3x3)) turns an m x m tile of outputs into
#   (m + 2)^2 products instead of 9 m^2 — 2.25x or 4x fewer — plus
#   transforms of the input tiles, the filters and the output, whose
#   constants other than +-1 cost a multiplication each;
# - **FFT convolution** (`method="fft"`) multiplies spectra: one complex
#   product per frequency bin, whatever the kernel size, plus the FFTs.
#
# Each counts what it executes, under a convention of its own (`"winograd"`,
# `"fft"`), where the work happens; the FFTs run inside a library, so their
# cost is an *estimate* from the standard operation count, kept apart from
# the measured numbers. This notebook runs one 3x3 layer by every method and
# measures three things for each — multiplications, time, error — then asks
# where each algorithm wins.
#
# **About the numbers:** times are from the machine that last executed the
# notebook, on a machine other people share; compare methods within one run.

# %%
import html

import matplotlib.pyplot as plt
import numpy as np

import npconv
from npconv import bench, formulas
from npconv.geometry import ConvGeometry
from npconv.layerset import BENCHMARK_LAYERS

REPEATS = 3  # samples per contestant: small, so the notebook runs in about a minute
METHODS = ("reference", "im2col", "winograd2", "winograd4", "fft")
torch, torch_status = bench.import_torch()
print("PyTorch:", torch_status)


class Table:
    """A small table that shows as HTML in a notebook and as aligned text elsewhere."""

    def __init__(self, header, rows):
        self.header, self.rows = header, [[str(cell) for cell in row] for row in rows]

    def _repr_html_(self):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self):
        widths = [max(len(r[i]) for r in [self.header, *self.rows]) for i in range(len(self.header))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                         for r in [self.header, *self.rows])


# %% [markdown]
# ## One layer, five methods: the multiplications each one executed
#
# A 3x3 layer small enough for the reference loops (plain Python, about a
# million multiplications a second): a 28x28 input of 16 channels, 16
# filters, padding 1, with a bias. Every method runs it with `count=True`
# and reports what it executed; each count is checked against its own
# closed form in `npconv.formulas` (the textbook's for the first two,
# `winograd_counts` and `fft_counts` for the others).

# %%
layer = ConvGeometry.from_layer((1, 16, 28, 28), 16, 3, padding=1, bias=True)
rng = np.random.default_rng(0)
x = rng.standard_normal(layer.input_shape).astype(np.float32)
w = rng.standard_normal(layer.weight_shape).astype(np.float32)
b = rng.standard_normal(layer.out_channels).astype(np.float32)
dense = int(formulas.mults(layer, "dense"))

runs = {}
for method in METHODS:
    y, counts = npconv.conv2d(x, w, b, padding=1, method=method, count=True)
    runs[method] = (y, counts)
    if counts.convention in ("dense", "effective"):
        closed = int(formulas.mults(layer, counts.convention)), int(formulas.adds(layer, counts.convention))
    else:
        expected = formulas.algorithm_counts(layer, method)
        closed = int(expected.mults), int(expected.adds)
    assert (counts.mults, counts.adds) == closed, method  # measured == formula, exactly

Table(["method", "convention", "algorithm", "mults (measured)", "vs dense", "adds (measured)",
       "estimated mults (FFTs)"],
      [[m, c.convention, c.algorithm or "textbook", f"{c.mults:,}", f"{dense / c.mults:.2f}x fewer"
        if c.mults < dense else f"{c.mults / dense:.2f}x", f"{c.adds:,}", f"{c.estimated_mults:,}"]
       for m, (_, c) in runs.items()])

# %% [markdown]
# Where a fast algorithm's multiplications go, stage by stage (each stage's
# count comes from what ran: the array sizes of the transforms' operations,
# the shapes of the GEMMs; the FFT stages marked estimated are not in the
# measured total). The products are what the algorithm saves on; the
# transforms are what it pays.

# %%
fig, ax = plt.subplots(figsize=(9, 3.2))
fast = ("winograd2", "winograd4", "fft")
bottom = np.zeros(len(fast))
stage_names = list(dict.fromkeys(s.name for m in fast for s in runs[m][1].stages))
for i, stage in enumerate(stage_names):
    values = np.array([next((s.mults for s in runs[m][1].stages if s.name == stage), 0) for m in fast], float)
    estimated = any(not s.measured for m in fast for s in runs[m][1].stages if s.name == stage)
    ax.barh(fast, values, left=bottom, color=f"C{i}", hatch="//" if estimated else None,
            label=stage + (" (estimated)" if estimated else ""))
    bottom += values
ax.axvline(dense, color="black", linestyle="--", label=f"dense count {dense:,}")
ax.set_xlabel("multiplications")
ax.set_title("multiplications by stage (hatched: estimated, inside the FFT library)")
ax.legend(fontsize=7, loc="lower right")
plt.show()

for m in fast:
    print(m, "|", ", ".join(f"{s.name}: {s.mults:,}" + ("" if s.measured else " (estimated)")
                            for s in runs[m][1].stages))

# %% [markdown]
# The same closed forms, with their working, are what `npconv explain
# --method winograd4` prints (here for the standard part of this layer):

# %%
f4 = formulas.winograd_counts(layer, 4)
for stage, (mults, _) in f4.stages.items():
    print(f"{stage:26} mults {mults.formula}\n{'':26}       = {mults}")
for detail in f4.details:
    print(f"  {detail.label} = {detail}   ({detail.formula})")

# %% [markdown]
# ## The error each algorithm makes
#
# All five compute the same convolution, but not with the same rounding:
# Winograd combines a whole input tile with constants like 1/6, 4, -5 and 8
# before it multiplies, FFT mixes a whole plane. Against the exact result
# (the reference loops in float64), the float32 error of each, as the
# largest error over the largest output:

# %%
as64 = [a.astype(np.float64) for a in (x, w, b)]
exact = npconv.conv2d(*as64, padding=1, method="im2col")
scale = np.abs(exact).max()
errors = {m: float(np.abs(y.astype(np.float64) - exact).max() / scale) for m, (y, _) in runs.items()}
errors_resnet = {}
resnet = BENCHMARK_LAYERS["resnet 3x3"]
xr = rng.standard_normal(resnet.input_shape).astype(np.float32)
wr = rng.standard_normal(resnet.weight_shape).astype(np.float32)
br = rng.standard_normal(resnet.out_channels).astype(np.float32)
exact_r = npconv.conv2d(xr.astype(np.float64), wr.astype(np.float64), br.astype(np.float64), padding=1,
                        method="im2col")
for m in METHODS[1:]:
    y = npconv.conv2d(xr, wr, br, padding=1, method=m)
    errors_resnet[m] = float(np.abs(y.astype(np.float64) - exact_r).max() / np.abs(exact_r).max())

fig, ax = plt.subplots(figsize=(8, 3))
xs = np.arange(len(METHODS))
ax.bar(xs - 0.2, [errors[m] for m in METHODS], 0.4, label="this layer (1x16x28x28)")
ax.bar(xs[1:] + 0.2, [errors_resnet[m] for m in METHODS[1:]], 0.4, label="resnet 3x3 (8x64x56x56)")
ax.axhline(np.finfo(np.float32).eps, color="black", linestyle=":", label="float32 machine epsilon")
ax.set_yscale("log")
ax.set_xticks(xs, METHODS)
ax.set_ylabel("max |error| / max |y|")
ax.set_title("float32 error against float64")
ax.legend(fontsize=8)
plt.show()
Table(["method", "this layer", "resnet 3x3"],
      [[m, f"{errors[m]:.1e}", f"{errors_resnet[m]:.1e}" if m in errors_resnet else "-"] for m in METHODS])

# %% [markdown]
# The reference loops sum in double precision and round once, so their
# float32 result is as good as float32 gets. im2col, F(2x2,3x3) and FFT are
# within a few ulps of the largest output; F(4x4,3x3) loses about a decimal
# digit — the price of its 4x fewer products — which is why libraries offer
# it for float32 inference and not always for training.
#
# ## The time each one takes
#
# Now the speed, timed as `npconv bench` times it (one process, one thread
# count, interleaved samples, medians), on the small layer and on the
# benchmark set's ResNet layer (without the reference loops there: about
# 900 million multiplications would take a quarter of an hour).

# %%
small_report = bench.run_benchmark({"small 3x3": layer}, methods=METHODS, repeats=REPEATS)
resnet_report = bench.run_benchmark({"resnet 3x3": resnet}, methods=METHODS[1:], repeats=REPEATS)
print(bench.render_text(resnet_report))


# %%
def points(report):
    (result_layer,) = report.layers
    return [(r.contestant, r.mults, r.timing.median, r.measured) for r in result_layer.results]


fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, report, title in ((axes[0], small_report, "small 3x3 layer"), (axes[1], resnet_report, "resnet 3x3")):
    for i, (name, mults, seconds, measured) in enumerate(points(report)):
        ax.scatter(mults, seconds * 1e3, s=60, color=f"C{i}", marker="o" if measured else "s")
        ax.annotate(name + ("" if measured else " (dense formula)"), (mults, seconds * 1e3),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("multiplications executed (measured; PyTorch: the dense formula)")
    ax.set_ylabel("median time per call, ms")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
fig.suptitle(f"fewer multiplications, faster? float32, {resnet_report.settings.threads} threads")
plt.show()

# %% [markdown]
# If fewer multiplications meant faster, the points would line up from the
# bottom left to the top right. Look where they fall instead. A
# multiplication inside a GEMM (im2col's, Winograd's products) runs near the
# machine's peak; a multiplication in Winograd's transforms is one element of
# a NumPy pass over every tile, paid mostly in memory traffic the count does
# not see; FFT's measured count leaves out its transforms, which are
# estimated. So the counts do not order the times: what a multiplication
# costs depends on where it runs. (On a machine other processes are using,
# the methods whose BLAS calls wait for worker threads — im2col's one large
# GEMM, PyTorch's threads — suffer most: read the load average in the
# header above before reading the ratios.)
#
# ## Where each wins
#
# Two sweeps, the same contestants in the same run each time: the number of
# channels of a 3x3 layer (Winograd's transforms cost per channel, its
# products per channel pair, so more channels favour it), and the kernel
# size at 32 channels (FFT's products do not grow with the kernel, im2col's
# do, as K^2). FFT sits out the channel sweep: at 128 channels its 16,384
# filter spectra alone (268 MiB) are over the default workspace limit, and it
# says so rather than allocating them.

# %%
def sweep(layers, methods):
    """Median seconds per call of each method on each layer, interleaved within a layer."""
    times = {m: [] for m in methods}
    with bench.thread_limits(bench.max_threads()):
        for g in layers:
            workload = bench.ConvWorkload(g)
            calls = [workload.npconv_call(m) for m in methods]
            for call in calls:
                call()  # warm-up
            for m, timing in zip(methods, bench.time_interleaved(calls, REPEATS), strict=True):
                times[m].append(timing.median)
    return times


channels = (4, 16, 64, 128)
by_channels = [ConvGeometry.from_layer((2, c, 56, 56), c, 3, padding=1, bias=True) for c in channels]
channel_times = sweep(by_channels, ("im2col", "winograd2", "winograd4"))
kernel_sizes = (3, 5, 7, 9)
by_kernel = [ConvGeometry.from_layer((2, 32, 64, 64), 32, k, padding=k // 2, bias=True) for k in kernel_sizes]
kernel_methods = ("im2col", "fft")
kernel_times = sweep(by_kernel, kernel_methods)

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for m, ts in channel_times.items():
    left.plot(channels, [t / base for t, base in zip(ts, channel_times["im2col"], strict=True)], "o-", label=m)
left.axhline(1, color="black", linewidth=0.8)
left.set_xscale("log", base=2)
left.set_xlabel("channels in = channels out (3x3, 2 x 56 x 56)")
left.set_ylabel("time / im2col's (below 1: faster)")
left.set_title("3x3 layers: Winograd against im2col")
left.legend(fontsize=8)
for m, ts in kernel_times.items():
    right.plot(kernel_sizes, [t / base for t, base in zip(ts, kernel_times["im2col"], strict=True)], "o-",
               label=m)
right.axhline(1, color="black", linewidth=0.8)
right.set_xlabel("kernel size K (K x K, 32 channels, 2 x 64 x 64, 'same' padding)")
right.set_ylabel("time / im2col's")
right.set_title("growing kernels: FFT against im2col")
right.legend(fontsize=8)
plt.show()

for name, ts, labels in (("channels", channel_times, channels), ("kernel", kernel_times, kernel_sizes)):
    for i, label in enumerate(labels):
        fastest = min(ts, key=lambda m, i=i: ts[m][i])
        print(f"{name} {label:>3}: fastest {fastest:10} ({', '.join(f'{m} {ts[m][i] * 1e3:.2f} ms' for m in ts)})")

# %% [markdown]
# What the sweeps say (the printout above is this run's evidence; on
# another machine, or another moment of a shared one, the crossings move):
#
# - **Winograd** needs channels. Its products are one GEMM per transform
#   position over all the channel pairs; its transforms are paid per channel.
#   With few channels (and on a depthwise layer, one channel per group) the
#   transforms dominate and im2col — one copy, one GEMM — can be faster; with
#   many, the 2.25x or 4x fewer products win. F(2x2,3x3)'s transforms are
#   additions only, F(4x4,3x3)'s are not, so which tile is faster depends on
#   how much the products weigh against the transforms: the more channels,
#   the more F(4x4,3x3)'s fewer products count.
# - **FFT** needs a large kernel (and images enough to share the filters'
#   spectra): its products do not grow with K, im2col's copy and GEMM grow as
#   K^2. Its weak point is the filters: one spectrum per output and input
#   channel pair, as large as an image's.
# - **The reference loops** execute the textbook count in Python: by far the
#   slowest, and the most accurate.
#
# A multiplication count, then, belongs to the algorithm that executes it:
# the layer has no single "number of multiplications", and the smallest
# count is not the fastest, nor the most accurate. `npconv explain --method
# winograd,fft` shows the counts with their working for any layer;
# `npconv bench` times every method on the layers it runs.
