# %% [markdown]
# # 4. The assignment's implementation part
#
# The course problem behind npconv ends with an implementation part: build a
# small network once with standard convolutions and once with
# depthwise-separable ones, train both, and compare. Its answer sheet claims
# that the separable network is **much faster** (far fewer multiplications)
# and, being much smaller, **overfits less**. This notebook does the
# experiment with npconv's own training stack (`npconv.train`: NumPy layers
# with `forward` and `backward`, every convolution running through npconv's
# counting kernels) and measures both claims instead of assuming them.
#
# 1. a gradient check: one layer's `backward` against finite differences;
# 2. the two networks — one description each, the same one `npconv model`
#    counts — with their parameters and the multiplications of a training step;
# 3. both trained on scikit-learn's 8x8 handwritten digits, same seed, same
#    batches;
# 4. accuracy vs parameters vs multiplications vs time;
# 5. the two claims, measured.
#
# The same run from the command line is `npconv train` (this notebook uses
# its defaults). **About the numbers:** times are from the machine that last
# executed the notebook; compare the two networks within one run.

# %%
import html
import time

import matplotlib.pyplot as plt
import numpy as np

from npconv.geometry import SeparableGeometry
from npconv.networks import build
from npconv.train import counting, data, layers, loop
from npconv.train.command import DEFAULTS
from npconv.train.gradcheck import check_layer, numerical_gradient
from npconv.train.model import adapt, build_model
from npconv.train.optimizers import make_optimizer

METHOD = DEFAULTS["method"]  # the fastest kernels here: npconv train's default
print("npconv train's defaults:", DEFAULTS)


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
# ## 1. A gradient check
#
# Backpropagation is the chain rule, applied layer by layer: each layer takes
# dL/dy (the gradient of the loss with respect to its output) and returns
# dL/dx, leaving dL/dθ in its parameters. For a convolution both gradients
# are convolutions again — the input gradient spreads each `grad_y` back over
# the window it came from (a "full" correlation with the flipped kernel), the
# weight gradient correlates the input with `grad_y` — and npconv's
# `conv2d_backward` computes them with the same kernels as the forward pass.
#
# To check a backward pass, take the scalar `L = sum(y * R)` for a fixed
# random `R` (so dL/dy = R) and compare every analytic gradient entry with the
# central difference `(L(u + h) - L(u - h)) / 2h`. Here: a depthwise-separable
# layer with stride 2 and `"same"` padding, in float64.

# %%
rng = np.random.default_rng(0)
geometry = SeparableGeometry.from_layer((2, 3, 7, 7), 4, 3, stride=2, padding="same", bias="torch")
separable = layers.Separable(
    geometry,
    rng.standard_normal(geometry.depthwise.weight_shape), rng.standard_normal(geometry.pointwise.weight_shape),
    rng.standard_normal(geometry.depthwise.out_channels), rng.standard_normal(geometry.pointwise.out_channels),
    method="reference", name="sep")
x = rng.standard_normal(geometry.input_shape)
check = check_layer(separable, x)
Table(["gradient", "shape", "largest relative error"],
      [[name, (x if name == "input" else next(p for p in separable.parameters() if p.name == name).value).shape,
        f"{error:.1e}"] for name, error in check.errors.items()])

# %% [markdown]
# Agreement to about 1e-9 is what float64 finite differences can show (their
# own error is O(h²) plus rounding over h). A mistake in a backward pass shows
# up as an error of order 1. Pictured, each dot is one entry of the pointwise
# weight gradient or of the input gradient:

# %%
def loss():
    return float((separable.forward(x) * R).sum())


R = rng.standard_normal(separable.forward(x).shape)
separable.forward(x)
analytic_input = separable.backward(R)
analytic_weight = separable.pointwise_weight.grad.copy()
numeric_input = numerical_gradient(loss, x)
numeric_weight = numerical_gradient(loss, separable.pointwise_weight.value)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
for ax, (title, a, n) in zip(axes, [("input gradient dL/dx", analytic_input, numeric_input),
                                    ("pointwise weight gradient", analytic_weight, numeric_weight)], strict=True):
    ax.scatter(n.ravel(), a.ravel(), s=10)
    lim = np.abs(n).max() * 1.1
    ax.plot([-lim, lim], [-lim, lim], color="grey", linewidth=0.8)
    ax.set(xlabel="finite differences", ylabel="backward", title=title)
fig.tight_layout()

# %% [markdown]
# ## 2. The two networks, and what a training step costs
#
# `small_standard` and `small_separable` are built-in network descriptions
# (`npconv.networks`): three 3x3 layers with 16, 32 (stride 2) and 32
# filters, `"same"` padding, ReLU, global average pooling and a 10-way linear
# layer; the separable one replaces each 3x3 convolution by a depthwise 3x3
# and a pointwise 1x1 (Keras' bias convention). They are written for 8x8x3
# images; `adapt` fits them to the digits' 8x8x1. The same description is
# what `npconv model` counts and what `build_model` trains.
#
# A training step runs every layer forward, then backward: the **weight
# gradient** takes one product per forward product (`grad_y × x` for every
# tap), and so does the **input gradient** (`grad_y × weight`) — except in the
# first layer, whose input gradient nobody needs. So a step costs about three
# forward passes of multiplications.

# %%
digits = data.load_digits()
print(digits.summary())
networks = {name: adapt(build(name), *digits.image_shape, digits.classes)[0]
            for name in ("small_standard", "small_separable")}
formulas_by_net = {name: counting.step_formula(build_model(net, method=METHOD)) for name, net in networks.items()}
rows = []
for name, formula in formulas_by_net.items():
    for layer in formula.layers:
        rows.append([name, layer.name, ", ".join(layer.needs), f"{layer.forward:,}", f"{layer.backward:,}",
                     f"{(layer.forward + layer.backward) / layer.forward:.2f}"])
    rows.append([name, "total", "", f"{formula.forward:,}", f"{formula.backward:,}",
                 f"{formula.step / formula.forward:.2f}"])
Table(["network", "layer", "gradients computed", "forward mults / image", "backward mults / image",
       "step / forward"], rows)

# %%
fig, axes = plt.subplots(1, 4, figsize=(9, 2.4))
for ax, index in zip(axes, range(4), strict=True):
    ax.imshow(digits.x_train[index, 0], cmap="gray_r")
    ax.set(title=f"label {digits.y_train[index]}", xticks=[], yticks=[])
fig.suptitle("four training images (8x8, standardised)")
fig.tight_layout()

# %% [markdown]
# ## 3. Training both
#
# Same seed (so the same initial-weight scheme and the same batch order),
# `npconv train`'s defaults: Adam, learning rate 0.01 annealed to 0 along a
# cosine over 40 epochs, batches of 16, the fixed stratified 1,437 / 360 split. The first step of each run
# is counted by the kernels, to set beside the formulas above.

# %%
def train(network, dataset, epochs=DEFAULTS["epochs"], seed=DEFAULTS["seed"]):
    model = build_model(network, seed=seed, method=METHOD)
    optimizer = make_optimizer(DEFAULTS["optimizer"], model.parameters(), DEFAULTS["lr"])
    run = loop.train(model, dataset, optimizer, epochs=epochs, batch_size=DEFAULTS["batch_size"], seed=seed,
                     schedule=DEFAULTS["schedule"])
    return model, run


runs = {}
for name, network in networks.items():
    started = time.perf_counter()
    runs[name] = train(network, digits)
    model, run = runs[name]
    print(f"{name}: {run.status}, test accuracy {run.final_accuracy:.2%} in {time.perf_counter() - started:.1f} s")

# %%
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
for name, (model, run) in runs.items():
    epochs = [r.epoch for r in run.records]
    line, = ax_loss.plot(epochs, [r.train_loss for r in run.records], marker="o", label=f"{name}, train")
    ax_loss.plot(epochs, [r.test_loss for r in run.records], linestyle="--", color=line.get_color(),
                 label=f"{name}, test")
    ax_acc.plot(epochs, [100 * r.train_accuracy for r in run.records], marker="o", color=line.get_color(),
                label=f"{name}, train")
    ax_acc.plot(epochs, [100 * r.test_accuracy for r in run.records], linestyle="--", color=line.get_color(),
                label=f"{name}, test")
ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", ylim=(80, 100.5), title="accuracy")
for ax in (ax_loss, ax_acc):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 4. Accuracy vs parameters vs multiplications vs time
#
# Measured mults are what the kernels counted in the first training step,
# divided by its batch size; they equal the formulas exactly.

# %%
summary = {}
for name, (model, run) in runs.items():
    counts, formula = run.step_counts, formulas_by_net[name]
    summary[name] = {
        "params": model.parameter_count(),
        "forward": counts.per_image(counts.forward_mults),
        "step": counts.per_image(counts.step_mults),
        "seconds": float(np.median(run.epoch_seconds)),
        "accuracy": run.final_accuracy,
    }
    assert summary[name]["step"] == formula.step and summary[name]["forward"] == formula.forward
std, sep = summary["small_standard"], summary["small_separable"]
Table(["", "small_standard", "small_separable", "separable / standard"], [
    ["parameters", f"{std['params']:,}", f"{sep['params']:,}", f"{sep['params'] / std['params']:.3f}"],
    ["forward mults / image (measured)", f"{std['forward']:,}", f"{sep['forward']:,}",
     f"{sep['forward'] / std['forward']:.3f}"],
    ["training-step mults / image (measured)", f"{std['step']:,}", f"{sep['step']:,}",
     f"{sep['step'] / std['step']:.3f}"],
    ["time per epoch (median)", f"{std['seconds']:.2f} s", f"{sep['seconds']:.2f} s",
     f"{sep['seconds'] / std['seconds']:.3f}"],
    ["final test accuracy", f"{std['accuracy']:.2%}", f"{sep['accuracy']:.2%}", ""],
])

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
for ax, (key, label) in zip(axes, [("params", "parameters"), ("step", "training-step mults / image"),
                                   ("seconds", "seconds per epoch")], strict=True):
    for name, s in summary.items():
        ax.scatter(s[key], 100 * s["accuracy"], s=60, label=name)
    ax.set(xscale="log", xlabel=label, ylabel="test accuracy (%)")
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
fig.suptitle("what each network costs, and what it scores")
fig.tight_layout()

# %% [markdown]
# ## 5. The claims, measured
#
# **"Much faster."** The separable network does several times fewer
# multiplications per step. Whether its epoch is correspondingly shorter is
# the ratio of the measured times:

# %%
mult_ratio = std["step"] / sep["step"]
time_ratio = sep["seconds"] / std["seconds"]
print(f"multiplications: the separable network does {mult_ratio:.1f}x fewer per training step")
print(f"time: its epoch took {time_ratio:.2f} times as long as the standard network's")

# %% [markdown]
# On layers this small the arithmetic is a minor part of a step: each layer is
# a handful of small matrix products, and a separable layer is *two* kernel
# calls (depthwise, then pointwise) where a standard layer is one, forward and
# backward, plus the copies between them. The depthwise step multiplies few
# numbers per value it reads, so it runs far below the CPU's peak. Fewer
# multiplications buy much less time than they promise — notebook 3 measures
# the same effect layer by layer.
#
# **"Less overfitting."** Overfitting is the gap between how well a network
# fits the images it trained on and how well it does on images it has not
# seen. After the last epoch, both evaluated the same way (evaluation mode):

# %%
def gap(model, dataset):
    _, train_accuracy = loop.evaluate(model, dataset.x_train, dataset.y_train)
    _, test_accuracy = loop.evaluate(model, dataset.x_test, dataset.y_test)
    return train_accuracy, test_accuracy


for name, (model, run) in runs.items():
    train_accuracy, test_accuracy = gap(model, digits)
    print(f"{name}: train {train_accuracy:.2%}, test {test_accuracy:.2%}, "
          f"gap {100 * (train_accuracy - test_accuracy):+.2f} points")

# %% [markdown]
# A small data set makes overfitting easier to see. Train both again on 200
# training images only (20 of each digit, the same images for both), 30
# epochs, three seeds each, and compare the same gap:

# %%
picked = np.concatenate([np.flatnonzero(digits.y_train == digit)[:20] for digit in range(10)])
small = data.Dataset(digits.x_train[picked], digits.y_train[picked], digits.x_test, digits.y_test,
                     digits.classes, "200 training images of the digits", digits.layout, digits.scaling)
small_rows, small_gaps = [], {name: [] for name in networks}
for name, network in networks.items():
    for seed in (0, 1, 2):
        model, run = train(network, small, epochs=30, seed=seed)
        train_accuracy, test_accuracy = gap(model, small)
        small_gaps[name].append(100 * (train_accuracy - test_accuracy))
        small_rows.append([name, seed, f"{train_accuracy:.2%}", f"{test_accuracy:.2%}",
                           f"{small_gaps[name][-1]:+.1f}"])
Table(["network", "seed", "train accuracy", "test accuracy", "gap (points)"], small_rows)

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
for i, (name, gaps) in enumerate(small_gaps.items()):
    ax.scatter([i] * len(gaps), gaps, s=50, label=f"{name} ({summary[name]['params']:,} params)")
    ax.hlines(np.mean(gaps), i - 0.2, i + 0.2, color="grey")
ax.set(xticks=[0, 1], xticklabels=list(small_gaps), xlim=(-0.6, 1.6),
       ylabel="train - test accuracy (points)", title="200 training images, 3 seeds (bar: mean)")
ax.grid(alpha=0.3)
fig.tight_layout()
for name, gaps in small_gaps.items():
    print(f"{name}: mean gap {np.mean(gaps):+.1f} points")
smaller_gap = np.mean(small_gaps["small_separable"]) < np.mean(small_gaps["small_standard"])
print(f"'less overfitting' {'holds' if smaller_gap else 'does not hold'} here: the separable network's mean gap is "
      f"{'smaller' if smaller_gap else 'larger'} than the standard one's")

# %% [markdown]
# ## Reading the answer
#
# - **Fewer parameters and fewer multiplications** hold exactly as the
#   formulas say, and the kernels' own counts agree with them to the last
#   multiplication, for a training step too — which costs about three forward
#   passes (two for the first layer, which needs no input gradient).
# - **Much faster** is a claim about time, and time has to be measured: the
#   ratio printed in section 5 is what this CPU delivered for a several-fold
#   cut in multiplications. At this size a step is dominated by the number of
#   kernel calls and the memory they move, not by the arithmetic.
# - **Less overfitting** is a claim about the train–test gap, and the gaps
#   above are the evidence: a smaller network has less capacity, which can
#   shrink the gap — or, as a bottleneck that fits the training images as
#   well but generalises worse, widen it. The verdict printed above says which
#   happened on this data; with one split and three seeds it is evidence, not
#   a law.
#
# `npconv train` runs section 3 from the command line, with `--plot` for the
# curves and `--data` for MNIST-style `.npz` files.
