# %% [markdown]
# # 1. How convolution works
#
# A convolution layer slides a small grid of weights, the **kernel**, over an
# image and, at every stop, multiplies the pixels under it by the weights and
# adds the products up. One stop gives one output pixel. This notebook shows
# that in pictures, then in plain loops on a tiny example, then checks the
# output-size formula against the code on a few thousand layers.
#
# Everything here uses npconv's public API:
#
# - `npconv.conv2d(x, weight, bias, stride, padding, dilation, groups, method=..., count=...)`
#   — the convolution itself, with PyTorch's layout and argument names;
# - `npconv.geometry.ConvGeometry` — a layer's shapes, validated;
# - `npconv.formulas` — closed forms that show their working.

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

import npconv
from npconv import formulas
from npconv.geometry import ConvGeometry

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
# The last panel is `padding="same"` with stride 2 on a 6x6 input: the output
# has `ceil(6 / 2) = 3` rows, which takes one pixel of padding in total, and
# the odd pixel goes to the bottom and right (TensorFlow's rule; PyTorch's
# `padding="same"` agrees at stride 1). The geometry says where it put it:

# %%
print("padding ((top, bottom), (left, right)) =", cases[-1][1].padding)
print(cases[-1][1].describe())

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

# the first output, written out term by term
terms = [f"{x_img[kh, kw]:g}*{w_img[kh, kw]:g}" for kh in range(3) for kw in range(3)]
print("y[0, 0] =", " + ".join(terms), "=", y[0, 0, 0, 0])


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


fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), gridspec_kw={"width_ratios": [4, 3, 2]})
show_numbers(axes[0], x_img, "input x (window of y[0, 1])", (0, 1, 3, 3))
show_numbers(axes[1], w_img, "kernel w")
show_numbers(axes[2], y[0, 0], "output y", (0, 1, 1, 1))
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
# ## What to take away
#
# - One output pixel = one window position = a sum of `KH x KW x C_in/groups`
#   products (plus the bias).
# - Padding, stride and dilation only change *where* the window goes; the
#   formula above counts the positions.
# - The loops are short; notebook 2 counts what they do, and notebook 3 times
#   faster ways of doing the same work.
