# %% [markdown]
# # 2. Separable convolution, counted
#
# A standard convolution mixes space and channels in one step: every output
# channel has a `K x K x C_in` filter. A **depthwise-separable** convolution
# splits that into two cheaper steps:
#
# 1. **depthwise** — one `K x K` filter per input channel, applied to that
#    channel alone (space, no channel mixing);
# 2. **pointwise** — a `1 x 1` convolution: at every pixel, a weighted sum over
#    the channels (channel mixing, no space).
#
# This notebook draws the two steps, then works the example of the course
# problem that started this project (a 14x14x3 input, 5x5 kernels, 256
# filters) with every number twice — from the closed-form formulas and from
# the multiplications the kernels counted while they ran — and then looks at
# padding, at the famous reduction `1/C_out + 1/K²`, and at the bias
# conventions.

# %%
import html

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import ConnectionPatch

import npconv
from npconv import formulas
from npconv.geometry import BIAS_CONVENTIONS, ConvGeometry, SeparableGeometry

rng = np.random.default_rng(0)


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
# ## Depthwise, then pointwise, pictured
#
# Three input channels (a disc, stripes, a square). The depthwise step gives each
# channel its own 3x3 filter — a vertical-edge filter, a blur, a horizontal-edge
# filter — so channel *c* of its output depends on channel *c* of the input
# only (the straight lines). The pointwise step then makes each of 4 output
# channels a weighted sum of all 3 depthwise channels, pixel by pixel (the
# crossing lines), with the weights of the 4x3 matrix at the bottom.

# %%
size = 24
r, c = np.mgrid[0:size, 0:size]
image = np.stack([
    ((r - 11.5) ** 2 + (c - 11.5) ** 2 < 60).astype(float),  # a disc
    (r // 4 % 2).astype(float),                              # horizontal stripes
    ((abs(r - 11.5) < 7) & (abs(c - 8.5) < 5)).astype(float),  # a square
])[None]  # NCHW: (1, 3, 24, 24)
sobel_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=float)
dw_weight = np.stack([sobel_x, np.full((3, 3), 1 / 9), sobel_x.T])[:, None]  # (C_in, 1, 3, 3)
pw_weight = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.5, -1.0, 0.0], [1.0, 1.0, -2.0]])[:, :, None, None]

hidden = npconv.depthwise_conv2d(image, dw_weight, padding=1)
out = npconv.pointwise_conv2d(hidden, pw_weight)
assert np.allclose(out, npconv.separable_conv2d(image, dw_weight, pw_weight, padding=1))
print("input", image.shape, "-> depthwise", hidden.shape, "-> pointwise", out.shape)

# %%
fig = plt.figure(figsize=(11, 8))
grid = fig.add_gridspec(4, 5, width_ratios=[1, 0.6, 1, 1.6, 1], wspace=0.3, hspace=0.4)


def panel(row, col, a, title, cmap="gray", **kw):
    ax = fig.add_subplot(grid[row, col])
    ax.imshow(a, cmap=cmap, **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return ax


def link(a, b, **kw):
    fig.add_artist(ConnectionPatch((1, 0.5), (0, 0.5), "axes fraction", "axes fraction", axesA=a, axesB=b,
                                   arrowstyle="-|>", color="#4c72b0", alpha=0.7, **kw))


names = ["disc", "stripes", "square"]
filters = ["vertical edges", "blur (all 1/9)", "horizontal edges"]
hidden_axes = []
for ch in range(3):
    a = panel(ch, 0, image[0, ch], f"input: {names[ch]}")
    k = panel(ch, 1, dw_weight[ch, 0], filters[ch], cmap="coolwarm", vmin=-2, vmax=2)
    h = panel(ch, 2, hidden[0, ch], f"depthwise out {ch}")
    link(a, k)
    link(k, h)
    hidden_axes.append(h)
m = panel(3, slice(1, 3), pw_weight[:, :, 0, 0].T, "pointwise weights w[o, c]\n(rows: depthwise channel c, "
          "columns: output o)", cmap="coolwarm", vmin=-2, vmax=2)
for (o, i), v in np.ndenumerate(pw_weight[:, :, 0, 0]):
    m.text(o, i, f"{v:g}", ha="center", va="center")
for o in range(4):
    terms = " + ".join(f"{v:g}·dw{i}" for i, v in enumerate(pw_weight[o, :, 0, 0]) if v)
    y_ax = panel(o, 4, out[0, o], f"output {o} = {terms}".replace("+ -", "- ").replace("1·", ""))
    for h in hidden_axes:
        link(h, y_ax, linewidth=0.6)
fig.suptitle("depthwise: channel c -> channel c (no mixing)              pointwise: every channel -> every output",
             fontsize=11)
plt.show()

# %% [markdown]
# A separable layer *is* a standard convolution — a restricted one. Its
# standard weight would be `W[o, c] = pointwise[o, c] x depthwise[c]`: every
# filter of the standard layer is a scaled copy of one spatial kernel per
# channel. Checked:

# %%
standard_weight = pw_weight[:, :, 0, 0][:, :, None, None] * dw_weight[:, 0][None]  # (4, 3, 3, 3)
same = np.allclose(npconv.conv2d(image, standard_weight, padding=1), out)
print("standard conv2d with W[o, c] = pw[o, c] * dw[c] gives the separable output:", same)

# %% [markdown]
# ## The worked example: every number twice
#
# The course problem: input 14x14x3, 5x5 kernels, 256 filters, stride 1, no
# padding. The standard layer has a bias; the separable one follows Keras'
# `SeparableConv2D` (a bias on the pointwise part only — see the last section).
#
# For each layer the table gives the value from `npconv.formulas` with its
# working, and then what came out of actually running the layer on random
# float32 data: the output's shape, the sizes of the weight and bias arrays that
# were passed, and the `mults` and `adds` each kernel **counted while it ran**
# (`count=True`). The reference kernel counts in plain Python loops; im2col
# counts from the matrix products it calls; direct counts inside its Numba loop.
# The direct kernel compiles on its first call (a few seconds on a fresh install).

# %%
standard = ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, bias=True)
separable = SeparableGeometry.from_layer((1, 3, 14, 14), 256, 5, bias="keras")
print(standard.describe())
print("depthwise:", separable.depthwise.describe())
print("pointwise:", separable.pointwise.describe())


def operands(g):
    """Random float32 x, weight and bias with the shapes of layer g."""
    x = rng.standard_normal(g.input_shape).astype(np.float32)
    w = rng.standard_normal(g.weight_shape).astype(np.float32)
    b = None if g.bias_shape is None else rng.standard_normal(g.bias_shape).astype(np.float32)
    return x, w, b


def run(g, method, count=True):
    """Run layer g (standard, depthwise or pointwise) through npconv.conv2d; (y, counts, parameters)."""
    x, w, b = operands(g)
    y, counts = npconv.conv2d(x, w, b, stride=g.stride, padding=g.padding_argument, dilation=g.dilation,
                              groups=g.groups, method=method, count=count)
    return y, counts, w.size + (0 if b is None else b.size)


def hwc(shape):
    _, c, h, w = shape
    return f"{h}x{w}x{c}"


METHODS = ("reference", "im2col", "direct")
parts = {"standard": standard, "depthwise": separable.depthwise, "pointwise": separable.pointwise}
measured = {name: {m: run(g, m) for m in METHODS} for name, g in parts.items()}

rows = []
for name, g in parts.items():
    runs = measured[name]
    y, _, n_params = runs["reference"]
    rows.append([name, "output", f"{formulas.output_height(g)} -> {hwc(g.output_shape)}", hwc(y.shape), "", ""])
    rows.append([name, "params", str(formulas.params(g)), f"{n_params:,}", "", ""])
    for what in ("mults", "adds"):
        rows.append([name, what, str(getattr(formulas, what)(g)),
                     *(f"{getattr(runs[m][1], what):,}" for m in METHODS)])
    for what in ("mults", "adds"):
        assert all(getattr(runs[m][1], what) == int(getattr(formulas, what)(g)) for m in METHODS)
sep_sum = {what: {m: sum(getattr(measured[p][m][1], what) for p in ("depthwise", "pointwise")) for m in METHODS}
           for what in ("mults", "adds")}
rows.append(["separable", "params", str(formulas.separable_params(separable)),
             f"{measured['depthwise']['reference'][2] + measured['pointwise']['reference'][2]:,}", "", ""])
for what in ("mults", "adds"):
    rows.append(["separable", what, str(getattr(formulas, f"separable_{what}")(separable)),
                 *(f"{sep_sum[what][m]:,}" for m in METHODS)])
Table(["layer", "quantity", "formula (working)", "measured: reference", "im2col", "direct"], rows)

# %% [markdown]
# Every measured number equals its formula (the cell asserts it). The ratio of
# the two layers' multiplications is the one the MobileNet paper gives
# (`1/C_out + 1/K²`, below), and the parameters shrink by about as much:

# %%
mults_ratio = formulas.ratio("mults", formulas.separable_mults(separable), formulas.mults(standard))
params_ratio = formulas.ratio("params", formulas.separable_params(separable), formulas.params(standard))
print(f"mults  separable / standard = {mults_ratio}  ({float(1 / mults_ratio.value):.1f}x fewer)")
print(f"MobileNet 1/C_out + 1/K^2   = {formulas.mobilenet_reduction(separable)}")
print(f"params separable / standard = {params_ratio}  ({float(1 / params_ratio.value):.1f}x fewer)")

# %% [markdown]
# ### Beside the answer sheet
#
# The course's answer sheet wrote its own numbers (they are in
# `examples/answer_sheet.toml`, with the working it wrote). Its output size,
# 12x12, is what a padding of 1 gives, so the table puts each of its numbers
# beside the right value without padding (the question as asked) and with
# `padding=1`, and evaluates the arithmetic the sheet wrote next to each
# number. `npconv check examples/answer_sheet.toml` grades the same sheet line
# by line (below the table).

# %%
sheet = [  # (quantity, what the sheet wrote, the arithmetic it wrote beside it)
    ("standard.output", "12x12x254", None),
    ("standard.params", 19454, "(5*5*3 + 1) * 254"),
    ("standard.mults", 2745600, "12*12*254*5*5*3"),
    ("separable.output", "12x12x256", None),
    ("depthwise.params", 15, "(5*5*1) * 3"),
    ("pointwise.params", 1024, "(1*1*3 + 1) * 256"),
    ("separable.params", 1102, "15 + 1024"),
    ("depthwise.mults", 10800, "12*12*3*5*5*1"),
    ("pointwise.mults", 110592, "12*12*256*1*1*3"),
    ("separable.mults", 121392, "10800 + 110592"),
]


def right_value(quantity, padding):
    s = SeparableGeometry.from_layer((1, 3, 14, 14), 256, 5, padding=padding, bias="keras")
    layers = {"standard": s.standard_equivalent(bias=True), "depthwise": s.depthwise,
              "pointwise": s.pointwise, "separable": s}
    layer, what = quantity.split(".")
    g = layers[layer]
    if what == "output":
        return hwc(g.output_shape)
    if layer == "separable":
        return int(getattr(formulas, f"separable_{what}")(g))
    return int(getattr(formulas, what)(g))


def shown(value):
    return f"{value:,}" if isinstance(value, int) else value


rows = []
for quantity, written, arithmetic in sheet:
    rights = [right_value(quantity, p) for p in (0, 1)]
    marks = ["holds" if written == v else shown(v) for v in rights]
    evaluated = "" if arithmetic is None else f"{arithmetic} = {eval(arithmetic):,}"
    rows.append([quantity, shown(written), evaluated, *marks])
Table(["quantity", "sheet wrote", "its arithmetic gives", "right (padding 0)", "right (padding 1)"], rows)

# %% [markdown]
# ### The sheet graded
#
# `npconv check` grades it as a careful teacher would: each line's working is
# evaluated and read as the formula's symbols first, then the cheapest
# explanation of what it wrote is the verdict -- **holds**, **holds if** (a
# reading of the question the rules allow: here padding 1), **slip** (a number
# copied wrong, arithmetic that does not give the value written) or **wrong**
# (a classic misconception, named) -- beside the right value as asked, with a
# score. A reading the working contradicts is never the verdict: line 1 writes
# `floor((14-5)/1) + 1 + 1`, so P = 0 and a second `+ 1`.

# %%
from pathlib import Path

from npconv import claims

sheet_file = next(p / "examples" / "answer_sheet.toml" for p in (Path.cwd(), *Path.cwd().parents)
                  if (p / "examples" / "answer_sheet.toml").is_file())
graded = claims.check(claims.load_sheet(sheet_file))
print(claims.render_text(graded).split("\n\nDetails")[0].split("\n\n", 2)[2])

# %% [markdown]
# ## Dense or effective: what counts under padding
#
# With padding some taps land on the zeros around the image. Two honest counts
# exist, and npconv always says which one it reports:
#
# - **dense** — every tap of every window, padded zeros included: the textbook
#   `OH x OW x C_out x KH x KW x C_in`, and what im2col + GEMM really executes
#   (it copies the zeros into its matrix and multiplies them);
# - **effective** — only taps on real input: what a direct loop that skips the
#   padding executes.
#
# The worked example with `padding="same"` (2 pixels for a 5x5 kernel; the
# output stays 14x14). The map shows, for each output pixel, how many of its 25
# kernel taps land on real input; the effective formula is the sum of that map
# (times `C_out x C_in`), and it factors into a row sum `T_H` times a column sum
# `T_W`.

# %%
padded = ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, padding="same", bias=True)
rows_taps = formulas.valid_taps_per_output(14, 5, 1, padded.padding[0][0], 1, padded.out_height)
cols_taps = formulas.valid_taps_per_output(14, 5, 1, padded.padding[1][0], 1, padded.out_width)
taps_map = np.outer(rows_taps, cols_taps)

fig, ax = plt.subplots(figsize=(5.2, 5))
ax.imshow(taps_map, cmap="Blues", vmin=0, vmax=25)
for (i, j), v in np.ndenumerate(taps_map):
    ax.text(j, i, v, ha="center", va="center", fontsize=7, color="white" if v > 15 else "black")
ax.set_title(f"kernel taps on real input per output pixel\n(5x5 kernel, 14x14 input, padding 2): "
             f"sum {taps_map.sum():,} of {25 * taps_map.size:,}", fontsize=10)
ax.set_xticks([])
ax.set_yticks([])
plt.show()

# %%
counted = {
    "reference, count='dense'": run(padded, "reference", "dense")[1],
    "reference, count='effective'": run(padded, "reference", "effective")[1],
    "im2col (dense)": run(padded, "im2col")[1],
    "direct (effective)": run(padded, "direct")[1],
}
for convention in ("dense", "effective"):
    q = formulas.mults(padded, convention)
    print(f"{convention:9} formula: {q}", *(f"   {d.label} = {d}" for d in q.details), sep="\n")
print("padded mults (dense - effective):", formulas.padded_mults(padded))
Table(["kernel", "convention", "mults", "of which on padding", "adds"],
      [[name, c.convention, f"{c.mults:,}", f"{c.padded_mults:,}", f"{c.adds:,}"] for name, c in counted.items()])

# %% [markdown]
# How much padding matters depends on the image: a 5x5 kernel with 2 pixels of
# padding wastes a large share of its taps on a 14x14 image and little on a
# 112x112 one. Lines are `effective / dense` from the formulas; dots are the
# counts measured by the direct kernel (effective) over im2col's (dense).

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.2))
sizes = [7, 14, 28, 56, 112]
for kernel in (3, 5, 7):
    pad = kernel // 2
    ratios, points = [], []
    for n in sizes:
        g = ConvGeometry.from_layer((1, 2, n, n), 2, kernel, padding=pad)
        ratios.append(formulas.mults(g, "effective").value / formulas.mults(g, "dense").value)
        points.append(run(g, "direct")[1].mults / run(g, "im2col")[1].mults)
    line, = ax.plot(sizes, ratios, label=f"{kernel}x{kernel} kernel, padding {pad}")
    ax.plot(sizes, points, "o", color=line.get_color())
ax.set_xscale("log")
ax.set_xticks(sizes, [f"{n}x{n}" for n in sizes])
ax.set_xlabel("input size")
ax.set_ylabel("effective mults / dense mults")
ax.set_title("Share of the dense count that multiplies real input ('same' padding)")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# ## The reduction 1/C_out + 1/K², over C_out and K
#
# Per output pixel, a standard layer does `K² x C_in x C_out` multiplications;
# a separable one `K² x C_in` (depthwise) plus `C_in x C_out` (pointwise).
# Divide:
#
# $$\frac{\text{separable}}{\text{standard}} = \frac{K^2 C_{in} + C_{in} C_{out}}{K^2 C_{in} C_{out}}
#   = \frac{1}{C_{out}} + \frac{1}{K^2}$$
#
# `C_in` cancels, and so does the image size (for dense counts). The curves are
# that formula; the dots are ratios of counts measured by running standard and
# separable layers through im2col on a small 12x12 input, with 3 input channels
# (circles) and 32 (crosses) — they fall on the same curve.


# %%
def measured_ratio(c_in, c_out, kernel):
    """Separable over standard multiplications, both counted by the im2col kernel."""
    s = SeparableGeometry.from_layer((1, c_in, 12, 12), c_out, kernel, bias="none")
    std = run(s.standard_equivalent(), "im2col")[1].mults
    x, dw, _ = operands(s.depthwise)
    _, pw, _ = operands(s.pointwise)
    _, counts = npconv.separable_conv2d(x, dw, pw, method="im2col", count=True)
    return counts.mults / std


fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
c_outs = np.geomspace(1, 1024, 200)
for kernel in (1, 3, 5, 7):
    line, = left.plot(c_outs, 1 / c_outs + 1 / kernel**2, label=f"K = {kernel}")
    for c_in, style in ((3, dict(marker="o", markersize=10, markerfacecolor="none")),
                        (32, dict(marker="x", markersize=6))):
        points = [(c, measured_ratio(c_in, c, kernel)) for c in (2, 8, 32, 128, 512)]
        left.plot(*zip(*points, strict=True), linestyle="none", color=line.get_color(), **style)
left.axhline(1, color="black", linewidth=0.8)
left.set_xscale("log")
left.set_yscale("log")
left.set_xlabel("output channels C_out")
left.set_ylabel("separable mults / standard mults")
left.set_title("over C_out: tends to 1/K² (dots: measured, C_in = 3 o, 32 x)")
left.legend()
left.grid(alpha=0.3, which="both")

kernels = np.arange(1, 12)
for c_out in (4, 32, 256):
    line, = right.plot(kernels, 1 / c_out + 1 / kernels**2, label=f"C_out = {c_out}")
    right.plot(kernels[::2], [measured_ratio(3, c_out, int(k)) for k in kernels[::2]], "o", color=line.get_color())
right.axhline(1, color="black", linewidth=0.8)
right.set_yscale("log")
right.set_xlabel("kernel size K (K x K)")
right.set_title("over K: tends to 1/C_out")
right.legend()
right.grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# Reading the plot: for the usual 3x3 kernels the separable layer costs a bit
# more than 1/9 of the standard one once there are more than a few dozen output
# channels; a bigger kernel saves more. With a 1x1 kernel "separating" only
# *adds* a depthwise step (the ratio is above 1). With padding and effective
# counting the ratio moves slightly off the curve, because padding trims the
# depthwise and standard parts but not the pointwise one.
#
# ## Bias conventions
#
# Libraries disagree about where a separable layer's biases go, and parameter
# counts disagree with them:
#
# - **keras** (npconv's default): bias on the pointwise part only, like Keras'
#   `SeparableConv2D` — a depthwise bias would be redundant, because the
#   pointwise step could absorb it;
# - **torch**: a bias on both parts, like two `torch.nn.Conv2d` layers;
# - **none**: no bias (common when batch-norm follows).
#
# A bias adds one parameter per output channel and one addition per output
# element: with a bias, summing `T` products plus the bias takes `T` additions
# (`adds == mults`); without, `T - 1`.

# %%
rows = []
for name in BIAS_CONVENTIONS:
    s = SeparableGeometry.from_layer((1, 3, 14, 14), 256, 5, bias=name)
    x, dw, db = operands(s.depthwise)
    _, pw, pb = operands(s.pointwise)
    _, counts = npconv.separable_conv2d(x, dw, pw, db, pb, method="im2col", count=True)
    n_params = sum(a.size for a in (dw, pw, db, pb) if a is not None)
    assert n_params == int(formulas.separable_params(s)) and counts.adds == int(formulas.separable_adds(s))
    rows.append([name, str(formulas.separable_params(s)), f"{n_params:,}",
                 str(formulas.separable_adds(s)), f"{counts.adds:,}"])
for bias in (True, False):
    g = standard.replace(bias=bias)
    _, counts, n_params = run(g, "im2col")
    rows.append([f"standard, {'with' if bias else 'no'} bias", str(formulas.params(g)), f"{n_params:,}",
                 str(formulas.adds(g)), f"{counts.adds:,}"])
Table(["layer", "params (formula)", "params (arrays passed)", "adds (formula)", "adds (counted)"], rows)

# %% [markdown]
# The answer sheet's 1,102 is the **torch** convention's count (75 + 1,024 + 3
# depthwise biases), though the parts it added up were Keras-style. When
# PyTorch is installed, its modules agree:

# %%
try:
    import torch
except ImportError:
    print("PyTorch is not installed: pip install 'npconv[compare]' to compare with torch.nn")
else:
    depthwise_layer = torch.nn.Conv2d(3, 3, 5, groups=3, bias=True)
    pointwise_layer = torch.nn.Conv2d(3, 256, 1, bias=True)
    n_torch = sum(p.numel() for layer in (depthwise_layer, pointwise_layer) for p in layer.parameters())
    s = SeparableGeometry.from_layer((1, 3, 14, 14), 256, 5, bias="torch")
    print(f"torch.nn: {n_torch:,} parameters; npconv, torch convention: {formulas.separable_params(s)}")

# %% [markdown]
# ## What to take away
#
# - Separable = depthwise (space, per channel) + pointwise (channels, per
#   pixel); it is a standard convolution whose filters are restricted.
# - Every count here was measured by a kernel while it ran and equals its
#   closed form; the two conventions (dense, effective) differ only under
#   padding, and always say which they are.
# - The multiplication ratio is `1/C_out + 1/K²`, whatever `C_in` and the image
#   size. Whether that makes the layer *faster* is notebook 3's question.
