# %% [markdown]
# # 1. How convolution works
#
# A convolution layer slides a small grid of weights, the **kernel**, over an
# image and, at every stop, multiplies the pixels under it by the weights and
# adds the products up. One stop gives one output pixel. This notebook shows
# that in pictures and animations, then with the filter as a *volume* through
# every input channel, then in plain loops on a tiny example, then as one
# matrix product (im2col), checks the output-size formula against the code on
# a few thousand layers, and runs the window backwards (the transposed
# convolution).
#
# Everything here uses npconv's public API:
#
# - `npconv.conv2d(x, weight, bias, stride, padding, dilation, groups, method=..., count=...)`
#   — the convolution itself, with PyTorch's layout and argument names;
# - `npconv.geometry.ConvGeometry` — a layer's shapes, validated;
# - `npconv.formulas` — closed forms that show their working;
# - `npconv.animate` — the animations (also on the command line: `npconv animate`).

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display
from matplotlib.colors import to_rgb
from matplotlib.patches import FancyArrowPatch, Polygon, Rectangle

import npconv
from npconv import animate, formulas
from npconv.geometry import ConvGeometry, SeparableGeometry

print("npconv", npconv.__version__, "| methods:", ", ".join(npconv.available_methods()))

# %% [markdown]
# ## The sliding window, drawn
#
# The drawing helper below takes a layer (input size, kernel size, stride,
# padding, dilation) and one output position, and draws:
#
# - the **input**, with its padding ring in grey (padding is zeros added around
#   the image);
# - the kernel's **taps** on the input: the pixels multiplied for that output
#   (blue; hatched where a tap lands on padding, so it multiplies a zero);
# - the **output**: the pixel being computed (orange) and those already done
#   (pale orange), in the order the loops visit them.
#
# The layer's shapes come from `ConvGeometry`, the same object every npconv
# kernel starts from, so the picture cannot disagree with the code.

# %%
TAP, DONE, CURRENT, PAD, REAL = "#4c72b0", "#fbd7b5", "#f28e2b", "#e3e3e3", "white"


def layer(size, kernel, stride=1, padding=0, dilation=1):
    """A one-channel layer on a size x size input: the geometry every kernel starts from."""
    return ConvGeometry.from_layer((1, 1, size, size), 1, kernel, stride=stride, padding=padding,
                                   dilation=dilation)


def draw_grid(ax, left, top, rows, cols, fill):
    """Unit squares from (left, top) down and to the right; fill(r, c) gives a colour."""
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((left + c, top + r), 1, 1, facecolor=fill(r, c), edgecolor="#777",
                                   linewidth=0.8))


def taps(g, oh, ow):
    """Input (row, column) of every kernel tap for output (oh, ow); negative or past the edge = padding."""
    (top, _), (left, _) = g.padding
    return [(oh * g.stride[0] - top + kh * g.dilation[0], ow * g.stride[1] - left + kw * g.dilation[1])
            for kh in range(g.kernel_h) for kw in range(g.kernel_w)]


def draw_window(ax, g, oh, ow, title=""):
    """Input (with padding) on the left, output on the right, for output position (oh, ow)."""
    (pt, pb), (pl, pr) = g.padding
    rows, cols = g.height + pt + pb, g.width + pl + pr
    real = lambda r, c: pt <= r < pt + g.height and pl <= c < pl + g.width  # noqa: E731
    draw_grid(ax, 0, 0, rows, cols, lambda r, c: REAL if real(r, c) else PAD)
    for ih, iw in taps(g, oh, ow):
        r, c = ih + pt, iw + pl
        ax.add_patch(Rectangle((c + 0.12, r + 0.12), 0.76, 0.76, facecolor=TAP if real(r, c) else "none",
                               edgecolor=TAP, hatch=None if real(r, c) else "////", linewidth=1.2))
    # the output grid, to the right of the input, vertically centred
    left, top = cols + 2.5, (rows - g.out_height) / 2
    order = oh * g.out_width + ow
    draw_grid(ax, left, top, g.out_height, g.out_width,
              lambda r, c: CURRENT if (r, c) == (oh, ow) else DONE if r * g.out_width + c < order else REAL)
    ax.add_patch(FancyArrowPatch((cols + 0.4, rows / 2), (left - 0.4, rows / 2), arrowstyle="-|>",
                                 mutation_scale=14, color="#555"))
    ax.set_xlim(-0.5, left + g.out_width + 0.5)
    ax.set_ylim(max(rows, top + g.out_height) + 0.5, -0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)


# %% [markdown]
# ### The window slides
#
# A 5x5 input, a 3x3 kernel, stride 1, no padding. The window starts in the
# top-left corner, moves one pixel right per output pixel, and at the end of a
# row drops one row and starts again at the left. It fits in 3 positions per
# row and 3 rows: the output is 3x3.

# %%
g = layer(5, 3)
positions = [(0, 0), (0, 1), (0, 2), (1, 0), (2, 2)]
fig, axes = plt.subplots(1, len(positions), figsize=(15, 2.6))
for ax, (oh, ow) in zip(axes, positions, strict=True):
    draw_window(ax, g, oh, ow, f"output ({oh}, {ow})")
fig.suptitle("5x5 input, 3x3 kernel, stride 1, no padding: the output is 3x3", y=1.02)
plt.show()

# %% [markdown]
# The same, moving. `npconv.animate.animate` draws one frame per output
# position and writes a GIF (the command `npconv animate` does the same from
# the layer flags, e.g. `npconv animate --input 5x5x1 --kernel 3 --filters 1`).
# Here it writes to a temporary folder and the GIF is shown inline. Each frame
# also names its output position; a layer with more positions than the frame
# cap (100 by default) shows evenly spaced ones and says so.


# %%
def show_animation(layer, scene="standard", frames=animate.DEFAULT_MAX_FRAMES, fps=animate.DEFAULT_FPS):
    """npconv.animate's GIF of one scene of `layer`, shown inline, and what it holds."""
    with tempfile.TemporaryDirectory() as folder:  # a little smaller than the command's default GIF
        result = animate.animate(layer, Path(folder) / f"{scene}.gif", scene=scene, frames=frames, fps=fps,
                                 dpi=66, width=7)
        display(Image(data=result.path.read_bytes(), format="gif"))
    print(f"{scene}: {len(result.plan.frames)} frames, {result.plan.note()}; {result.bytes / 1024:.0f} KiB")


show_animation(layer(5, 3), fps=2)

# %% [markdown]
# ### Padding, stride and dilation
#
# Three arguments change where the window goes:
#
# - **padding** adds rings of zeros around the input, so the window can be
#   centred on edge pixels; with `padding=1` a 3x3 kernel keeps a 5x5 image 5x5.
#   Taps on the padding (hatched) multiply zeros.
# - **stride** is how far the window jumps between outputs; stride 2 skips every
#   other position and roughly halves each side of the output.
# - **dilation** spreads the taps apart: with dilation 2 a 3x3 kernel covers a
#   5x5 area with gaps, seeing further without more weights.
#
# Each panel's title shows `formulas.output_height` for that layer: the
# output-size formula with the layer's numbers in it.

# %%
cases = [
    ("no padding", layer(5, 3), (1, 1)),
    ("padding=1", layer(5, 3, padding=1), (0, 1)),
    ("stride=2, padding=1", layer(5, 3, stride=2, padding=1), (1, 1)),
    ("dilation=2", layer(7, 3, dilation=2), (1, 2)),
    ("stride=2, padding='same'", layer(6, 3, stride=2, padding="same"), (2, 1)),
]
fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
for ax, (name, g, (oh, ow)) in zip(axes.flat[:-1], cases, strict=True):
    draw_window(ax, g, oh, ow, f"{name}: {g.height}x{g.width} input, {g.kernel_h}x{g.kernel_w} kernel\n"
                               f"OH = {formulas.output_height(g)}")
key = axes.flat[-1]  # the last panel explains the colours
for row, (colour, hatch, text) in enumerate([
        (REAL, None, "input pixel"), (PAD, None, "padding (a zero)"), (TAP, None, "tap on real input"),
        ("none", "////", "tap on padding: multiplies a zero"), (CURRENT, None, "output being computed"),
        (DONE, None, "outputs already computed")]):
    key.add_patch(Rectangle((0, row * 1.4), 1, 1, facecolor=colour, edgecolor=TAP if hatch else "#777",
                            hatch=hatch))
    key.text(1.5, row * 1.4 + 0.5, text, va="center")
key.set_xlim(-0.5, 9)
key.set_ylim(8.5, -0.5)
key.set_aspect("equal")
key.axis("off")
fig.suptitle("OH = floor((H + P_top + P_bottom - D x (KH - 1) - 1) / S) + 1, with each layer's numbers")
plt.show()

# %% [markdown]
# All three at once, moving: a 9x9 input, padding 2, stride 2, dilation 2. The
# crossed taps land on the padding and multiply zeros; the window jumps two
# pixels at a time, and its taps are two pixels apart.

# %%
show_animation(layer(9, 3, stride=2, padding=2, dilation=2))

# %% [markdown]
# The last panel is `padding="same"` with stride 2 on a 6x6 input: the output
# has `ceil(6 / 2) = 3` rows, which takes one pixel of padding in total, and
# the odd pixel goes to the bottom and right (TensorFlow's rule; PyTorch's
# `padding="same"` agrees at stride 1). The geometry says where it put it:

# %%
print("padding ((top, bottom), (left, right)) =", cases[-1][1].padding)
print(cases[-1][1].describe())

# %% [markdown]
# ## A filter is a volume: one filter, one output channel
#
# So far the input had one channel. A colour image has three, and every layer
# after the first has many. A filter then is not a `K x K` square but a
# `K x K x C_in` **volume**, as deep as the input: at each window position it
# multiplies all `K x K x C_in` pairs and adds them up (plus a bias) into
# *one* number. Sliding it over the input gives one output *channel*. A layer
# with `C_out` filters does that `C_out` times, with `C_out` different
# volumes, and stacks the results: the output's depth is the number of
# filters, whatever the input's depth was.
#
# The picture: a 6x6x3 input, 3x3x3 filters, the window at output (1, 2) —
# left with one filter, right with four (each colour its filter and its
# output channel).

# %%
FILTER_COLOURS = ["#4c72b0", "#55a868", "#c44e52", "#8172b2"]
DEPTH = np.array([0.55, 0.4])  # one channel of depth, drawn obliquely: to the right and up


def cuboid(ax, x, y, w, h, d, colour, alpha=1.0, grid=False, zorder=1):
    """A w x h x d box, its front face's lower-left corner at (x, y), d channels deep; returns the front corners."""
    back = DEPTH * d
    front = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    top = [(x, y + h), (x + w, y + h), (x + w + back[0], y + h + back[1]), (x + back[0], y + h + back[1])]
    side = [(x + w, y), (x + w + back[0], y + back[1]), (x + w + back[0], y + h + back[1]), (x + w, y + h)]
    for face, shade in ((top, 0.85), (side, 0.7), (front, 1.0)):
        ax.add_patch(Polygon(face, facecolor=(*(np.array(to_rgb(colour)) * shade), alpha), edgecolor="#444",
                             linewidth=0.8, zorder=zorder))
    if grid:
        for i in range(1, w):
            ax.plot([x + i, x + i], [y, y + h], color="#444", lw=0.3, zorder=zorder)
        for j in range(1, h):
            ax.plot([x, x + w], [y + j, y + j], color="#444", lw=0.3, zorder=zorder)
    return front


def volume_panel(ax, size, c_in, k, filters, at):
    """Input size x size x c_in, `filters` k x k x c_in filters, the window at output `at` = (row, col)."""
    out = size - k + 1
    oh, ow = at
    cuboid(ax, 0, 0, size, size, c_in, "#f2f2f2", grid=True)
    window = cuboid(ax, ow, size - oh - k, k, k, c_in, FILTER_COLOURS[0], alpha=0.55, zorder=2)
    ax.text(size / 2, -1, f"input {size}x{size}x{c_in}", ha="center", va="top")
    middle = size + 2.5  # the filters: one, or a 2 x 2 block of them
    for f in range(filters):
        row, col = divmod(f, 2) if filters > 1 else (0, 0)
        fy = (size - k) / 2 if filters == 1 else size / 2 + 0.4 - (row + 1) * (k + 0.8) + k + 0.4
        cuboid(ax, middle + col * (k + DEPTH[0] * c_in + 0.6), fy, k, k, c_in, FILTER_COLOURS[f], zorder=2)
    width = (k + DEPTH[0] * c_in) * (2 if filters > 1 else 1) + (0.6 if filters > 1 else 0)
    ax.text(middle + width / 2, -1, f"{filters} filter{'s' * (filters > 1)}, {k}x{k}x{c_in} each",
            ha="center", va="top")
    ox, oy = middle + width + 2.5, (size - out) / 2
    for f in reversed(range(filters)):  # one slab per filter, filter 0's in front
        cuboid(ax, ox + DEPTH[0] * f, oy + DEPTH[1] * f, out, out, 1, FILTER_COLOURS[f], alpha=0.45, grid=True,
               zorder=3 + filters - f)
    cuboid(ax, ox + ow, oy + out - oh - 1, 1, 1, 1, CURRENT, zorder=4 + filters)
    for cx, cy in window:  # the window's corners to the one number it makes
        ax.plot([cx, ox + ow + 0.5], [cy, oy + out - oh - 0.5], color=FILTER_COLOURS[0], lw=0.6, zorder=10)
    ax.text(ox + out / 2, -1, f"output {out}x{out}x{filters}", ha="center", va="top")
    ax.set_xlim(-0.5, ox + out + DEPTH[0] * filters + 0.5)
    ax.set_ylim(-2.5, size + DEPTH[1] * c_in + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")


fig, axes = plt.subplots(1, 2, figsize=(15, 4.4))
volume_panel(axes[0], 6, 3, 3, 1, (1, 2))
axes[0].set_title("one 3x3x3 filter: one number per window position, one output channel")
volume_panel(axes[1], 6, 3, 3, 4, (1, 2))
axes[1].set_title("four filters: four output channels (the output's depth = the number of filters)")
plt.show()

# %% [markdown]
# The course problem's layer is exactly this, bigger: a 14x14x3 input, 256
# filters of 5x5x3. Each output number is a sum of 5 x 5 x 3 = 75 products,
# there are 10 x 10 positions per filter and 256 filters, so the output is
# 10x10x256 and the layer does 10 x 10 x 256 x 75 multiplications. The
# formulas say the same, with their working, and `npconv.conv2d` agrees:

# %%
course = ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, bias=True)
print("parameters:", formulas.params(course))
print("mults:     ", formulas.mults(course, "dense"))
x_course = np.random.default_rng(1).standard_normal(course.input_shape)
w_course = np.random.default_rng(2).standard_normal(course.weight_shape)
y_course, counts_course = npconv.conv2d(x_course, w_course, method="im2col", count=True)
print("npconv.conv2d output shape", y_course.shape, "(N, C_out, OH, OW); measured mults", f"{counts_course.mults:,}")
assert y_course.shape == course.output_shape and counts_course.mults == formulas.mults(course, "dense").value

# %% [markdown]
# The same layer, moving: the front plane is channel 0 of the input (the
# others stack behind it), the window covers the 5x5 taps of all three
# channels, and the output plane is channel 0 of 256 — the one filter 0
# makes. Every other filter sweeps the same positions into its own channel.

# %%
show_animation(course)

# %% [markdown]
# Notebook 2 takes this volume apart: a **depthwise** step with one 5x5
# filter per channel (channels never mix), then a **pointwise** step, a 1x1
# filter across all channels at each pixel (space never mixes). Here they are
# moving, 20 frames each, so the 100 output positions are sampled (the
# footer says which share is shown):

# %%
separable = SeparableGeometry.from_layer((1, 3, 14, 14), 256, 5)
show_animation(separable, "depthwise", frames=20)
show_animation(separable, "pointwise", frames=20)

# %% [markdown]
# ## The loops, on a tiny example
#
# Now with numbers. A 4x4 input and a 3x3 kernel that subtracts the right
# column from the left one (it responds to a vertical edge). Deep-learning
# libraries compute **cross-correlation**: the kernel is *not* flipped, so
# `y[oh, ow] = sum over kh, kw of x[oh + kh, ow + kw] * w[kh, kw]`.

# %%
x_img = np.array([[1, 2, 0, 0],
                  [3, 1, 0, 1],
                  [2, 2, 1, 0],
                  [1, 0, 2, 2]], dtype=np.float64)
w_img = np.array([[1, 0, -1],
                  [2, 0, -2],
                  [1, 0, -1]], dtype=np.float64)

# npconv works on NCHW arrays: (batch, channels, height, width); weights are (C_out, C_in, KH, KW).
x = x_img[None, None]
w = w_img[None, None]
y, counts = npconv.conv2d(x, w, method="reference", count=True)
print("y =\n", y[0, 0])
print(counts)


# %% [markdown]
# One output pixel, stepped through: `step` names it once, and both the
# written-out sum and the picture below are made from it, so they cannot show
# different pixels. The window is the 3x3 block of `x` starting at
# `(oh, ow)`; its products with `w` add up to `y[oh, ow]`.

# %%
step = (0, 1)  # the output pixel (oh, ow) stepped through: the sum and the picture both use it
oh, ow = step
window = x_img[oh:oh + 3, ow:ow + 3]
products = window * w_img + 0.0  # + 0.0 turns the -0.0 of 0 x -1 into 0
terms = [f"{window[kh, kw]:g}*{w_img[kh, kw]:g}" for kh in range(3) for kw in range(3)]
print(f"y[{oh}, {ow}] =", " + ".join(terms))
print("        =", " + ".join(f"{p:g}" for p in products.ravel()), "=", products.sum())
assert products.sum() == y[0, 0, oh, ow]


# %%
def show_numbers(ax, a, title, highlight=None):
    ax.imshow(a, cmap="coolwarm", vmin=-np.abs(a).max() - 1, vmax=np.abs(a).max() + 1)
    for (r, c), v in np.ndenumerate(a):
        ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=12)
    if highlight is not None:
        r0, c0, h, w_ = highlight
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), w_, h, fill=False, edgecolor=CURRENT, linewidth=3))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)


fig, axes = plt.subplots(1, 4, figsize=(12, 3.2), gridspec_kw={"width_ratios": [4, 3, 3, 2]})
show_numbers(axes[0], x_img, f"input x (window of y[{oh}, {ow}])", (oh, ow, 3, 3))
show_numbers(axes[1], w_img, "kernel w")
show_numbers(axes[2], products, f"window x w: sum = {products.sum():g}")
show_numbers(axes[3], y[0, 0], f"output y (y[{oh}, {ow}] = {y[0, 0, oh, ow]:g})", (oh, ow, 1, 1))
plt.show()

# %% [markdown]
# The same computation in general form is seven nested loops: over images,
# output channels, output rows and columns, and — for each output — over the
# input channels of its group and the kernel's rows and columns. Here they are
# as a plain function (integer padding only, to stay short). It skips taps on
# the padding and counts each multiplication it does.
#
# npconv's own `method="reference"` kernel (`npconv/kernels/reference.py`) is
# the same loops, with every padding form and both counting conventions
# (notebook 2 explains *dense* vs *effective*).


# %%
def conv2d_loops(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Grouped, strided, padded, dilated cross-correlation; returns (y, multiplications done)."""
    N, C_in, H, W = x.shape
    C_out, C_per_group, KH, KW = w.shape
    assert C_in == C_per_group * groups, "weight must be (C_out, C_in / groups, KH, KW)"
    OH = (H + 2 * padding - dilation * (KH - 1) - 1) // stride + 1
    OW = (W + 2 * padding - dilation * (KW - 1) - 1) // stride + 1
    out_per_group = C_out // groups
    y = np.zeros((N, C_out, OH, OW))
    mults = 0
    for n in range(N):
        for co in range(C_out):
            group = co // out_per_group
            for oh in range(OH):
                for ow in range(OW):
                    total = 0.0 if b is None else b[co]
                    for ci in range(C_per_group):
                        for kh in range(KH):
                            for kw in range(KW):
                                ih = oh * stride - padding + kh * dilation
                                iw = ow * stride - padding + kw * dilation
                                if 0 <= ih < H and 0 <= iw < W:  # on the padding: times zero, skipped
                                    total += x[n, group * C_per_group + ci, ih, iw] * w[co, ci, kh, kw]
                                    mults += 1
                    y[n, co, oh, ow] = total
    return y, mults


y_loops, m = conv2d_loops(x, w)
print(y_loops[0, 0], "\n", m, "multiplications")

# %% [markdown]
# Does the hand-written loop agree with npconv — every method it has — on
# layers with several channels, groups, bias, padding, stride and dilation?
# And does its multiplication count equal the closed form
# `formulas.mults(g, "effective")` (only taps on real input count)?
#
# The first `method="direct"` call compiles a Numba kernel, which can take
# several seconds on a fresh install; later calls reuse it.

# %%
rng = np.random.default_rng(0)
configs = [
    dict(N=1, C_in=1, H=4, C_out=1, K=3, stride=1, padding=0, dilation=1, groups=1),
    dict(N=2, C_in=3, H=7, C_out=4, K=3, stride=2, padding=1, dilation=1, groups=1),
    dict(N=1, C_in=4, H=9, C_out=6, K=3, stride=1, padding=2, dilation=2, groups=2),
    dict(N=1, C_in=3, H=6, C_out=3, K=5, stride=1, padding=2, dilation=1, groups=3),  # depthwise
    dict(N=1, C_in=5, H=5, C_out=2, K=1, stride=1, padding=0, dilation=1, groups=1),  # pointwise
]
for c in configs:
    xs = rng.standard_normal((c["N"], c["C_in"], c["H"], c["H"]))
    ws = rng.standard_normal((c["C_out"], c["C_in"] // c["groups"], c["K"], c["K"]))
    bs = rng.standard_normal(c["C_out"])
    args = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
    y_loops, m = conv2d_loops(xs, ws, bs, **args)
    g = ConvGeometry.from_shapes(xs.shape, ws.shape, bs.shape, **args)
    agree = {method: np.allclose(npconv.conv2d(xs, ws, bs, method=method, **args), y_loops)
             for method in npconv.available_methods()}
    print(f"{g.describe()}\n    output {y_loops.shape}; agrees with {agree}\n"
          f"    loop counted {m} mults; formula: {formulas.mults(g, 'effective')}")
    assert all(agree.values()) and m == int(formulas.mults(g, "effective"))

# %% [markdown]
# ## im2col: the same sums as one matrix product
#
# The loops above do the same thing at every window position: a dot product
# of the window (all `C_in x KH x KW` values) with a filter (as many
# weights). **im2col** ("image to columns") copies each window into one
# column of a matrix, so that *all* those dot products become one matrix
# product, which a BLAS library computes far faster than loops
# (`method="im2col"` in npconv; notebook 3 times it):
#
# - the **column matrix** has one row per `(channel, kh, kw)` tap and one
#   column per output position `(oh, ow)`: `C_in·KH·KW x OH·OW`;
# - the **weight matrix** has one row per filter, the filter flattened in the
#   same `(channel, kh, kw)` order: `C_out x C_in·KH·KW`;
# - their product is `C_out x OH·OW`: reshaped, the output `C_out x OH x OW`.
#
# A tiny layer, small integers so the numbers can be read: a 4x4x2 input,
# three 2x2x2 filters.

# %%
x_tiny = np.arange(1, 33, dtype=np.float64).reshape(1, 2, 4, 4) % 7  # (N, C_in, H, W)
w_tiny = np.array([[[[1, 0], [0, -1]], [[0, 1], [1, 0]]],
                   [[[1, 1], [1, 1]], [[0, 0], [0, 0]]],
                   [[[0, 0], [0, 0]], [[1, -1], [-1, 1]]]], dtype=np.float64)  # (C_out, C_in, KH, KW)
tiny = ConvGeometry.from_shapes(x_tiny.shape, w_tiny.shape)
C_in, K, C_out, OH, OW = tiny.in_channels, tiny.kernel_h, tiny.out_channels, tiny.out_height, tiny.out_width

# one column per output position, one row per (channel, kh, kw), in the loops' order
columns = np.zeros((C_in * K * K, OH * OW))
for oh in range(OH):
    for ow in range(OW):
        columns[:, oh * OW + ow] = x_tiny[0, :, oh:oh + K, ow:ow + K].ravel()
weights = w_tiny.reshape(C_out, C_in * K * K)  # one row per filter, the same (channel, kh, kw) order
product = weights @ columns  # (C_out, OH*OW): every output at once
y_gemm = product.reshape(1, C_out, OH, OW)

y_im2col, counts_tiny = npconv.conv2d(x_tiny, w_tiny, method="im2col", count=True)
y_reference = npconv.conv2d(x_tiny, w_tiny, method="reference")
print("columns", columns.shape, "@ weights", weights.shape, "->", product.shape, "-> output", y_gemm.shape)
print("equal to npconv.conv2d (im2col and reference):",
      np.array_equal(y_gemm, y_im2col), np.array_equal(y_gemm, y_reference))
print(f"multiplications: {C_out} x {C_in * K * K} x {OH * OW} = {C_out * C_in * K * K * OH * OW} "
      f"(the matrix product's), npconv counted {counts_tiny.mults}")
assert np.array_equal(y_gemm, y_im2col) and np.array_equal(y_gemm, y_reference)
assert counts_tiny.mults == C_out * C_in * K * K * OH * OW


# %% [markdown]
# Drawn: one column (orange) is one window; one row of the weights (blue) is
# one filter; the cell where they meet in the product is one output number,
# here filter 1 at output position (1, 2) — and the product, reshaped, is the
# output of `npconv.conv2d`.


# %%
def matrix(ax, a, title, row_labels=None, col_labels=None, rows=(), cols=(), cells=()):
    ax.imshow(np.zeros_like(a), cmap="Greys", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(a):
        ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=8)
    for r in rows:
        ax.add_patch(Rectangle((-0.5, r - 0.5), a.shape[1], 1, facecolor=TAP, alpha=0.25, edgecolor=TAP))
    for c in cols:
        ax.add_patch(Rectangle((c - 0.5, -0.5), 1, a.shape[0], facecolor=CURRENT, alpha=0.3, edgecolor=CURRENT))
    for r, c in cells:
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    ax.set_xticks(range(a.shape[1]), col_labels or [], fontsize=7, rotation=90)
    ax.set_yticks(range(a.shape[0]), row_labels or [], fontsize=7)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=10)


filt, (oh, ow) = 1, (1, 2)  # the filter and the output position followed
j = oh * OW + ow
tap_labels = [f"c{c} ({kh},{kw})" for c in range(C_in) for kh in range(K) for kw in range(K)]
positions = [f"({r},{c})" for r in range(OH) for c in range(OW)]
fig, axes = plt.subplots(1, 4, figsize=(15, 4.2), gridspec_kw={"width_ratios": [9, 8, 9, 3 * OW + 2]})
matrix(axes[0], columns, f"column matrix {columns.shape[0]}x{columns.shape[1]}\n(one column per window)",
       tap_labels, positions, cols=[j])
matrix(axes[1], weights, f"weights {weights.shape[0]}x{weights.shape[1]}\n(one row per filter)",
       [f"filter {i}" for i in range(C_out)], tap_labels, rows=[filt])
matrix(axes[2], product, f"weights @ columns = {product.shape[0]}x{product.shape[1]}",
       [f"filter {i}" for i in range(C_out)], positions, rows=[filt], cols=[j], cells=[(filt, j)])
# the product reshaped: the three output channels side by side
side_by_side = np.full((OH, C_out * (OW + 1) - 1), np.nan)
for i in range(C_out):
    side_by_side[:, i * (OW + 1):i * (OW + 1) + OW] = y_im2col[0, i]
axes[3].imshow(np.isnan(side_by_side), cmap="Greys", vmin=0, vmax=3)
for (r, c), v in np.ndenumerate(side_by_side):
    if not np.isnan(v):
        axes[3].text(c, r, f"{v:g}", ha="center", va="center", fontsize=8)
axes[3].add_patch(Rectangle((filt * (OW + 1) + ow - 0.5, oh - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
axes[3].set_xticks([i * (OW + 1) + (OW - 1) / 2 for i in range(C_out)], [f"channel {i}" for i in range(C_out)],
                   fontsize=7)
axes[3].set_yticks([])
axes[3].set_title("npconv.conv2d output\n(the product, reshaped)", fontsize=10)
fig.suptitle(f"y[{filt}, {oh}, {ow}] = filter {filt} . window ({oh}, {ow}) = {product[filt, j]:g}")
plt.show()
terms = " + ".join(f"{a:g}*{b:g}" for a, b in zip(weights[filt], columns[:, j], strict=True))
print(f"filter {filt} . window ({oh}, {ow}): {terms} = {product[filt, j]:g} = y[0, {filt}, {oh}, {ow}]")
assert product[filt, j] == y_im2col[0, filt, oh, ow]

# %% [markdown]
# The column matrix repeats every input pixel once per window that covers it
# (here up to 4 times; `K x K` times in general), which is why npconv's
# im2col builds it a chunk at a time within a memory limit.
#
# ## The output-size formula, checked against the code
#
# Along one axis, with input size `H`, kernel `K`, padding `P` on each side,
# stride `S` and dilation `D`:
#
# $$OH = \left\lfloor \frac{H + 2P - D\,(K - 1) - 1}{S} \right\rfloor + 1$$
#
# `D (K - 1) + 1` is how wide the (dilated) kernel is; `H + 2P` minus that is
# how far it can move; dividing by the stride and rounding down counts the
# jumps, and `+ 1` counts the starting position. When the kernel is wider than
# the padded input there is no valid position, and npconv refuses the layer.
#
# Below, every combination of `H` = 1…16, `K` = 1…5, `S` = 1…3, `P` = 0…2 and
# `D` = 1…3 is run through `npconv.conv2d` (im2col, the fastest here on tiny
# layers), on an `H x (H + 3)` input so both axes are checked, and the shape
# it returns is compared with the formula above and with `formulas.output_height`.


# %%
def output_size(H, K, S, P, D):
    return (H + 2 * P - D * (K - 1) - 1) // S + 1


checked = refused = 0
for H in range(1, 17):
    for K in range(1, 6):
        for S in range(1, 4):
            for P in range(3):
                for D in range(1, 4):
                    x0, w0 = np.zeros((1, 1, H, H + 3)), np.zeros((1, 1, K, K))
                    expected = (output_size(H, K, S, P, D), output_size(H + 3, K, S, P, D))
                    try:
                        y0 = npconv.conv2d(x0, w0, stride=S, padding=P, dilation=D, method="im2col")
                    except npconv.ConvArgumentError:
                        assert expected[0] < 1, (H, K, S, P, D)  # refused only when nothing fits
                        refused += 1
                        continue
                    g = ConvGeometry.from_shapes(x0.shape, w0.shape, stride=S, padding=P, dilation=D)
                    assert y0.shape[2:] == expected == (formulas.output_height(g).value,
                                                        formulas.output_width(g).value)
                    checked += 1
print(f"{checked:,} layers: output shape == formula on both axes; "
      f"{refused:,} refused, each one where the formula gives < 1")

# %% [markdown]
# The floor makes the output size a staircase in the input size: with stride 2
# two input sizes share one output size. Lines are the formula; dots are the
# shapes `npconv.conv2d` returned.

# %%
sizes = np.arange(1, 25)
fig, ax = plt.subplots(figsize=(8, 4.5))
for K, S, P, D in [(3, 1, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 0, 2), (5, 3, 2, 1)]:
    formula = [output_size(H, K, S, P, D) for H in sizes]
    line = ax.step(sizes, np.maximum(formula, 0), where="mid", label=f"K={K}, S={S}, P={P}, D={D}")
    code = [(H, npconv.conv2d(np.zeros((1, 1, H, 1)), np.zeros((1, 1, K, 1)), stride=(S, 1),
                              padding=(P, 0), dilation=(D, 1), method="im2col").shape[2])
            for H in sizes if output_size(H, K, S, P, D) >= 1]
    ax.plot(*zip(*code, strict=True), "o", color=line[0].get_color(), markersize=4)
ax.set_xlabel("input size H")
ax.set_ylabel("output size OH")
ax.set_title("Output size: formula (lines) and npconv.conv2d (dots)")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## The window run backwards: transposed convolution
#
# A convolution reads a window of input pixels into one output pixel. The
# **transposed** convolution (used to upsample, e.g. in decoders and GANs)
# runs the same taps the other way: each of *its* input pixels is multiplied
# by the whole kernel and **added into** a kernel-sized patch of its output,
# patches `stride` apart, overlapping patches adding up; the padding is cut
# off the edges at the end. Its input has the convolution's output shape and
# its output the convolution's input shape (with stride > 1 a few rows may be
# left over, which PyTorch's `output_padding` gives back). Here is a 7x7
# input, 3x3 kernel, stride 2, padding 1, and its transposed convolution:
# 4x4 back to 7x7.

# %%
strided = layer(7, 3, stride=2, padding=1)
show_animation(strided, "transposed", fps=2)


# %% [markdown]
# "Transposed" is meant literally: written as a matrix (the convolution is
# linear, so it is one), the transposed convolution is the convolution's
# matrix transposed. The scatter loops below compute it, and the defining
# identity of a transpose, `<conv(x), y> = <x, conv_transposed(y)>` for every
# `x` and `y`, holds against `npconv.conv2d`:


# %%
def conv_transpose2d_loops(y, w, stride, padding, out_size):
    """Each pixel of y (C_out, OH, OW) adds itself times w[co] (C_in, K, K) into a patch; the padding is cut off."""
    c_out, c_in, k, _ = w.shape
    full = np.zeros((c_in, out_size + 2 * padding + stride, out_size + 2 * padding + stride))
    for co in range(c_out):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                full[:, i * stride:i * stride + k, j * stride:j * stride + k] += y[co, i, j] * w[co]
    return full[:, padding:padding + out_size, padding:padding + out_size]


rng = np.random.default_rng(3)
x_t = rng.standard_normal((1, 2, 7, 7))
w_t = rng.standard_normal((3, 2, 3, 3))
y_t = rng.standard_normal((1, 3, 4, 4))
forward = npconv.conv2d(x_t, w_t, stride=2, padding=1)
backward = conv_transpose2d_loops(y_t[0], w_t, stride=2, padding=1, out_size=7)
print("conv2d:", x_t.shape, "->", forward.shape, "| transposed:", y_t.shape, "->", backward.shape)
print(f"<conv(x), y> = {np.sum(forward * y_t):.12f}\n<x, convT(y)> = {np.sum(x_t[0] * backward):.12f}")
assert forward.shape == y_t.shape and np.isclose(np.sum(forward * y_t), np.sum(x_t[0] * backward))

# %% [markdown]
# ## What to take away
#
# - One output pixel = one window position = a sum of `KH x KW x C_in/groups`
#   products (plus the bias): the filter is a volume as deep as the input.
# - One filter makes one output channel; the number of filters is the
#   output's depth.
# - Padding, stride and dilation only change *where* the window goes; the
#   formula above counts the positions.
# - im2col turns all the windows into one matrix product — the same sums,
#   laid out for a fast GEMM.
# - The transposed convolution runs the same taps backwards, scattering
#   instead of gathering.
# - The loops are short; notebook 2 counts what they do, and notebook 3 times
#   faster ways of doing the same work.
