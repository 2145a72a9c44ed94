"""Layers with a ``forward`` and a ``backward``: the building blocks of a trainable network.

Every layer follows one protocol, micrograd-style:

``forward(x, training)``
    computes the output and keeps what ``backward`` will need (its input,
    a mask, the batch statistics).  ``training`` matters to batch norm only.
``backward(grad_y, need_input_grad=True)``
    takes dL/dy, the gradient of the loss with respect to the layer's
    output, stores dL/dparameter in each :class:`Parameter`'s ``grad`` and
    returns dL/dx -- or ``None`` when ``need_input_grad`` is false, so that a
    network's first convolution does not compute a gradient nobody uses
    (PyTorch skips it too).
``parameters()``
    the layer's :class:`Parameter` objects, in PyTorch's order (weight, then
    bias; a separable layer's depthwise part, then its pointwise part).
``buffers()``
    state that is saved but not learned: batch norm's running statistics.

Arrays are NCHW (flat ``(N, F)`` after :class:`Flatten`); weights have
PyTorch's shapes.  Every convolution -- and the linear layer, which runs as
the 1x1 convolution of a 1x1 input that it is (as :mod:`npconv.network`
counts it) -- goes through the public kernels, ``npconv.conv2d`` and
``npconv.conv2d_backward`` and their named wrappers, with the layer's
``method``.  When an :class:`OpCounter` is attached (``layer.counter``),
those calls run with ``count=True`` and the counts the kernels tallied are
recorded, forward and backward apart.

The other layers are a few lines of NumPy each; they multiply nothing by a
weight, so, as in :mod:`npconv.network`, they are not part of ``mults``.

Size: every trainable layer's forward and backward with its operation count, each a
short class on one protocol (:class:`Layer`), headed by section.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import npconv
from npconv.geometry import ConvGeometry, SeparableGeometry


@dataclass(eq=False)
class Parameter:
    """A learnable array and the gradient of the loss with respect to it (set by ``backward``)."""

    name: str
    value: np.ndarray
    grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape


@dataclass
class CountRecord:
    """What one kernel call counted: which layer, ``forward`` or ``backward``, mults and adds."""

    layer: str
    phase: str
    mults: int
    adds: int
    convention: str


@dataclass
class OpCounter:
    """Collects the counts of every kernel call made while it is attached to the layers."""

    records: list[CountRecord] = field(default_factory=list)

    def add(self, layer: str, phase: str, counts: object) -> None:
        self.records.append(CountRecord(layer, phase, int(counts.mults), int(counts.adds), counts.convention))

    def mults(self, phase: str | None = None) -> int:
        return sum(r.mults for r in self.records if phase in (None, r.phase))

    def adds(self, phase: str | None = None) -> int:
        return sum(r.adds for r in self.records if phase in (None, r.phase))

    def by_layer(self) -> dict[str, dict[str, int]]:
        """``{layer: {"forward": mults, "backward": mults}}`` in call order."""
        table: dict[str, dict[str, int]] = {}
        for r in self.records:
            row = table.setdefault(r.layer, {"forward": 0, "backward": 0})
            row[r.phase] += r.mults
        return table


class Layer:
    """Base class: see the module docstring for the protocol."""

    name: str = ""
    kind: str = ""

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def parameters(self) -> tuple[Parameter, ...]:
        return ()

    def buffers(self) -> dict[str, np.ndarray]:
        return {}

    def layers(self) -> Iterator[Layer]:
        """This layer and the layers inside it (a residual block's paths), depth first."""
        yield self


# ---------------------------------------------------------------------- convolutions


class Conv2d(Layer):
    """A standard (or grouped) convolution through ``npconv.conv2d`` / ``npconv.conv2d_backward``.

    ``geometry`` (a :class:`~npconv.geometry.ConvGeometry`, as a network row
    resolves it) fixes the weight shape, stride, padding (explicit per-side
    pairs), dilation, groups and whether there is a bias.
    """

    kind = "conv2d"

    def __init__(self, geometry: ConvGeometry, weight: np.ndarray, bias: np.ndarray | None, *,
                 method: str = "im2col", name: str = ""):
        self.geometry, self.method, self.name = geometry, method, name
        self.weight = Parameter(f"{name}.weight", weight)
        self.bias = None if bias is None else Parameter(f"{name}.bias", bias)
        self.counter: OpCounter | None = None
        self._x: np.ndarray | None = None

    def parameters(self) -> tuple[Parameter, ...]:
        return (self.weight,) if self.bias is None else (self.weight, self.bias)

    def _layer_arguments(self) -> dict[str, object]:
        g = self.geometry
        return {"stride": g.stride, "padding": g.padding, "dilation": g.dilation, "groups": g.groups}

    def _call_forward(self, x: np.ndarray, count: bool):
        return npconv.conv2d(x, self.weight.value, None if self.bias is None else self.bias.value,
                             **self._layer_arguments(), method=self.method, count=count)

    def _call_backward(self, grad_y: np.ndarray, x: np.ndarray, needs: tuple[str, ...], count: bool):
        return npconv.conv2d_backward(grad_y, x, self.weight.value,
                                      None if self.bias is None else self.bias.value,
                                      **self._layer_arguments(), method=self.method, count=count,
                                      needs=needs)

    def _needs(self, need_input_grad: bool) -> tuple[str, ...]:
        return (*(("input",) if need_input_grad else ()), "weight", *(("bias",) if self.bias else ()))

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._x = x
        if self.counter is None:
            return self._call_forward(x, False)
        y, counts = self._call_forward(x, True)
        self.counter.add(self.name, "forward", counts)
        return y

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        needs = self._needs(need_input_grad)
        if self.counter is None:
            grads = self._call_backward(grad_y, self._x, needs, False)
        else:
            grads, counts = self._call_backward(grad_y, self._x, needs, True)
            self.counter.add(self.name, "backward", counts)
        self.weight.grad = grads.weight
        if self.bias is not None:
            self.bias.grad = grads.bias
        return grads.input if need_input_grad else None


class Depthwise(Conv2d):
    """Depthwise convolution (groups = C_in) through ``npconv.depthwise_conv2d`` and its backward."""

    kind = "depthwise"

    def _layer_arguments(self) -> dict[str, object]:
        g = self.geometry
        return {"stride": g.stride, "padding": g.padding, "dilation": g.dilation}

    def _call_forward(self, x: np.ndarray, count: bool):
        return npconv.depthwise_conv2d(x, self.weight.value, None if self.bias is None else self.bias.value,
                                       **self._layer_arguments(), method=self.method, count=count)

    def _call_backward(self, grad_y: np.ndarray, x: np.ndarray, needs: tuple[str, ...], count: bool):
        return npconv.depthwise_conv2d_backward(grad_y, x, self.weight.value,
                                                None if self.bias is None else self.bias.value,
                                                **self._layer_arguments(), method=self.method,
                                                count=count, needs=needs)


class Pointwise(Conv2d):
    """1x1 convolution through ``npconv.pointwise_conv2d`` and its backward."""

    kind = "pointwise"

    def _call_forward(self, x: np.ndarray, count: bool):
        return npconv.pointwise_conv2d(x, self.weight.value, None if self.bias is None else self.bias.value,
                                       method=self.method, count=count)

    def _call_backward(self, grad_y: np.ndarray, x: np.ndarray, needs: tuple[str, ...], count: bool):
        return npconv.pointwise_conv2d_backward(grad_y, x, self.weight.value,
                                                None if self.bias is None else self.bias.value,
                                                method=self.method, count=count, needs=needs)


class Linear(Pointwise):
    """A fully connected layer ``y = x W^T + b`` on ``(N, F)``, run as a 1x1 convolution of a 1x1 input.

    The weight is stored as PyTorch's ``(out_features, in_features)`` and
    viewed as ``(out, in, 1, 1)`` for the kernels, which count
    ``N x out x in`` mults -- the count :mod:`npconv.network` gives a linear row.
    """

    kind = "linear"

    def _as_image(self, array: np.ndarray) -> np.ndarray:
        return array.reshape(*array.shape, 1, 1)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._x = self._as_image(x)
        if self.counter is None:
            y = self._call_forward(self._x, False)
        else:
            y, counts = self._call_forward(self._x, True)
            self.counter.add(self.name, "forward", counts)
        return y.reshape(y.shape[:2])

    def _call_forward(self, x: np.ndarray, count: bool):
        return npconv.pointwise_conv2d(x, self._as_image(self.weight.value),
                                       None if self.bias is None else self.bias.value,
                                       method=self.method, count=count)

    def _call_backward(self, grad_y: np.ndarray, x: np.ndarray, needs: tuple[str, ...], count: bool):
        result = npconv.pointwise_conv2d_backward(self._as_image(grad_y), x, self._as_image(self.weight.value),
                                                  None if self.bias is None else self.bias.value,
                                                  method=self.method, count=count, needs=needs)
        grads, counts = result if count else (result, None)
        flat = type(grads)(input=None if grads.input is None else grads.input.reshape(grads.input.shape[:2]),
                           weight=grads.weight.reshape(self.weight.shape), bias=grads.bias)
        return (flat, counts) if count else flat


class Separable(Layer):
    """Depthwise-separable convolution: ``npconv.separable_conv2d`` and its backward.

    Forward runs the two named wrappers (depthwise, then pointwise) so that
    the depthwise output -- the ``hidden`` activation the backward pass needs
    -- is kept; backward is one ``npconv.separable_conv2d_backward`` call.
    Parameters are named as PyTorch names a ``Sequential(depthwise,
    pointwise)``: ``conv1.depthwise.weight``, ``conv1.pointwise.weight``, ...
    """

    kind = "separable"

    def __init__(self, geometry: SeparableGeometry, depthwise_weight: np.ndarray,
                 pointwise_weight: np.ndarray, depthwise_bias: np.ndarray | None,
                 pointwise_bias: np.ndarray | None, *, method: str = "im2col", name: str = ""):
        self.geometry, self.method, self.name = geometry, method, name

        def parameter(part: str, value: np.ndarray | None) -> Parameter | None:
            return None if value is None else Parameter(f"{name}.{part}", value)

        self.depthwise_weight = parameter("depthwise.weight", depthwise_weight)
        self.depthwise_bias = parameter("depthwise.bias", depthwise_bias)
        self.pointwise_weight = parameter("pointwise.weight", pointwise_weight)
        self.pointwise_bias = parameter("pointwise.bias", pointwise_bias)
        self.counter: OpCounter | None = None
        self._x = self._hidden = None

    def parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for p in (self.depthwise_weight, self.depthwise_bias, self.pointwise_weight,
                                 self.pointwise_bias) if p is not None)

    @staticmethod
    def _value(parameter: Parameter | None) -> np.ndarray | None:
        return None if parameter is None else parameter.value

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        dw = self.geometry.depthwise
        count = self.counter is not None
        hidden = npconv.depthwise_conv2d(x, self.depthwise_weight.value, self._value(self.depthwise_bias),
                                         stride=dw.stride, padding=dw.padding, dilation=dw.dilation,
                                         method=self.method, count=count)
        if count:
            hidden, counts = hidden
            self.counter.add(f"{self.name}.depthwise", "forward", counts)
        y = npconv.pointwise_conv2d(hidden, self.pointwise_weight.value, self._value(self.pointwise_bias),
                                    method=self.method, count=count)
        if count:
            y, counts = y
            self.counter.add(f"{self.name}.pointwise", "forward", counts)
        self._x, self._hidden = x, hidden
        return y

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        dw = self.geometry.depthwise
        has_bias = self.depthwise_bias is not None or self.pointwise_bias is not None
        needs = (*(("input",) if need_input_grad else ()), "weight", *(("bias",) if has_bias else ()))
        count = self.counter is not None
        result = npconv.separable_conv2d_backward(
            grad_y, self._x, self.depthwise_weight.value, self.pointwise_weight.value,
            self._value(self.depthwise_bias), self._value(self.pointwise_bias),
            stride=dw.stride, padding=dw.padding, dilation=dw.dilation, hidden=self._hidden,
            method=self.method, count=count, needs=needs)
        if count:
            grads, counts = result
            self.counter.add(self.name, "backward", counts)
        else:
            grads = result
        for parameter, grad in ((self.depthwise_weight, grads.depthwise_weight),
                                (self.depthwise_bias, grads.depthwise_bias),
                                (self.pointwise_weight, grads.pointwise_weight),
                                (self.pointwise_bias, grads.pointwise_bias)):
            if parameter is not None:
                parameter.grad = grad
        return grads.input if need_input_grad else None


# ---------------------------------------------------------------------- batch norm


class BatchNorm(Layer):
    """Batch normalisation over the channels (axis 1), as ``torch.nn.BatchNorm2d`` / ``BatchNorm1d``.

    Training: normalise with the batch's mean and biased variance over every
    axis but the channels, then scale and shift; update the running mean and
    the running *unbiased* variance with ``momentum`` (PyTorch's 0.1:
    ``running = (1 - momentum) x running + momentum x batch``).
    Evaluation: normalise with the running statistics.
    """

    kind = "batchnorm"

    def __init__(self, channels: int, *, dtype: np.dtype = np.float32, momentum: float = 0.1,
                 eps: float = 1e-5, name: str = ""):
        self.name, self.momentum, self.eps = name, momentum, eps
        self.weight = Parameter(f"{name}.weight", np.ones(channels, dtype))
        self.bias = Parameter(f"{name}.bias", np.zeros(channels, dtype))
        self.running_mean = np.zeros(channels, dtype)
        self.running_var = np.ones(channels, dtype)
        self._cache: tuple | None = None

    def parameters(self) -> tuple[Parameter, ...]:
        return (self.weight, self.bias)

    def buffers(self) -> dict[str, np.ndarray]:
        return {f"{self.name}.running_mean": self.running_mean, f"{self.name}.running_var": self.running_var}

    @staticmethod
    def _axes(x: np.ndarray) -> tuple[int, ...]:
        return (0, *range(2, x.ndim))

    def _per_channel(self, values: np.ndarray, x: np.ndarray) -> np.ndarray:
        return values.reshape(1, -1, *([1] * (x.ndim - 2)))

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        axes = self._axes(x)
        if training:
            count = x.size // x.shape[1]
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            unbiased = var * (count / (count - 1)) if count > 1 else var
            self.running_mean[...] = (1 - self.momentum) * self.running_mean + self.momentum * mean
            self.running_var[...] = (1 - self.momentum) * self.running_var + self.momentum * unbiased
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = 1.0 / np.sqrt(var + self.eps)
        x_hat = (x - self._per_channel(mean, x)) * self._per_channel(inv_std, x)
        self._cache = (x_hat, inv_std, training)
        return x_hat * self._per_channel(self.weight.value, x) + self._per_channel(self.bias.value, x)

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        x_hat, inv_std, training = self._cache
        axes = self._axes(grad_y)
        self.weight.grad = (grad_y * x_hat).sum(axis=axes)
        self.bias.grad = grad_y.sum(axis=axes)
        if not need_input_grad:
            return None
        grad_x_hat = grad_y * self._per_channel(self.weight.value, grad_y)
        if not training:  # the statistics are constants
            return grad_x_hat * self._per_channel(inv_std, grad_y)
        # the batch's mean and variance depend on x too: the textbook formula
        count = grad_y.size // grad_y.shape[1]
        mean_grad = self._per_channel(grad_x_hat.sum(axis=axes) / count, grad_y)
        mean_grad_x_hat = self._per_channel((grad_x_hat * x_hat).sum(axis=axes) / count, grad_y)
        return (grad_x_hat - mean_grad - x_hat * mean_grad_x_hat) * self._per_channel(inv_std, grad_y)


# ---------------------------------------------------------------------- shape and activation layers


class ReLU(Layer):
    """``max(x, 0)``; its gradient is 1 where ``x > 0`` and 0 elsewhere (0 at 0, as PyTorch)."""

    kind = "relu"

    def __init__(self, name: str = ""):
        self.name = name
        self._positive: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._positive = x > 0
        return np.maximum(x, 0)  # NaN stays NaN, as in PyTorch

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        return grad_y * self._positive if need_input_grad else None


class Flatten(Layer):
    """``(N, C, H, W) -> (N, C x H x W)``."""

    kind = "flatten"

    def __init__(self, name: str = ""):
        self.name = name
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        return grad_y.reshape(self._shape) if need_input_grad else None


class GlobalAvgPool(Layer):
    """Mean over the whole image: ``(N, C, H, W) -> (N, C, 1, 1)``; each pixel gets ``grad / (H x W)``."""

    kind = "global_avgpool"

    def __init__(self, name: str = ""):
        self.name = name
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if not need_input_grad:
            return None
        height, width = self._shape[2:]
        return np.broadcast_to(grad_y / (height * width), self._shape).copy()


class _Pool(Layer):
    """A pooling window from a network row's geometry: kernel, stride, per-side padding."""

    def __init__(self, geometry: ConvGeometry, name: str = ""):
        self.geometry, self.name = geometry, name
        self._input_shape: tuple[int, ...] = ()

    def _padded(self, x: np.ndarray, value: float) -> np.ndarray:
        (top, bottom), (left, right) = self.geometry.padding
        return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)

    def _windows(self, padded: np.ndarray) -> np.ndarray:
        """``(N, C, OH, OW, KH x KW)``: every window, read from the padded input."""
        g = self.geometry
        (sh, sw), kh, kw = g.stride, g.kernel_h, g.kernel_w
        view = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        view = view[:, :, :g.out_height, :g.out_width]
        return view.reshape(*view.shape[:4], kh * kw)

    def _scatter(self, per_tap: Sequence[np.ndarray], dtype: np.dtype) -> np.ndarray:
        """The input gradient: tap ``k``'s ``(N, C, OH, OW)`` gradient added where that tap read."""
        g = self.geometry
        (sh, sw), (oh, ow) = g.stride, (g.out_height, g.out_width)
        (top, bottom), (left, right) = g.padding
        n, c, h, w = self._input_shape
        grad = np.zeros((n, c, h + top + bottom, w + left + right), dtype)
        for k, tap in enumerate(per_tap):
            i, j = divmod(k, g.kernel_w)
            grad[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += tap
        return grad[:, :, top:top + h, left:left + w]


class MaxPool(_Pool):
    """Max pooling, as ``torch.nn.MaxPool2d``: padding is ``-inf`` (it never wins); the gradient goes
    to the first maximum of each window, in row-major order."""

    kind = "maxpool"

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._input_shape = x.shape
        windows = self._windows(self._padded(x, -np.inf))
        self._argmax = windows.argmax(axis=-1)
        return np.take_along_axis(windows, self._argmax[..., None], axis=-1)[..., 0]

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if not need_input_grad:
            return None
        taps = self.geometry.kernel_h * self.geometry.kernel_w
        zero = np.zeros((), grad_y.dtype)
        return self._scatter([np.where(self._argmax == k, grad_y, zero) for k in range(taps)], grad_y.dtype)


class AvgPool(_Pool):
    """Average pooling, as ``torch.nn.AvgPool2d``: padded zeros count in the average (divisor KH x KW)."""

    kind = "avgpool"

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._input_shape = x.shape
        return self._windows(self._padded(x, 0.0)).mean(axis=-1)

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if not need_input_grad:
            return None
        taps = self.geometry.kernel_h * self.geometry.kernel_w
        share = grad_y / taps
        return self._scatter([share] * taps, grad_y.dtype)


# ---------------------------------------------------------------------- containers


def _has_parameters(layer: Layer) -> bool:
    return any(True for _ in layer.parameters())


class Sequential(Layer):
    """Layers applied one after the other; backward runs them in reverse.

    A layer computes its input gradient only when something before it
    learns: ``need_input_grad`` for the first layer, or a layer with
    parameters earlier in the sequence.
    """

    kind = "sequential"

    def __init__(self, layers: Sequence[Layer], name: str = ""):
        self.items, self.name = tuple(layers), name

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        for layer in self.items:
            x = layer.forward(x, training)
        return x

    def input_grad_needed(self, need_input_grad: bool = True) -> list[bool]:
        """For each layer, whether its input gradient is used."""
        needed, learns_before = [], need_input_grad
        for layer in self.items:
            needed.append(learns_before)
            learns_before = learns_before or _has_parameters(layer)
        return needed

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        needed = self.input_grad_needed(need_input_grad)
        for layer, need in zip(reversed(self.items), reversed(needed), strict=True):
            grad_y = layer.backward(grad_y, need)
            if grad_y is None:
                return None
        return grad_y

    def parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for layer in self.items for p in layer.parameters())

    def buffers(self) -> dict[str, np.ndarray]:
        return {k: v for layer in self.items for k, v in layer.buffers().items()}

    def layers(self) -> Iterator[Layer]:
        for layer in self.items:
            yield from layer.layers()


class Residual(Layer):
    """``main(x) + shortcut(x)`` (an empty shortcut is the identity); the gradient flows down both."""

    kind = "residual"

    def __init__(self, main: Sequential, shortcut: Sequential, name: str = ""):
        self.main, self.shortcut, self.name = main, shortcut, name

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        return self.main.forward(x, training) + self.shortcut.forward(x, training)

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        through_main = self.main.backward(grad_y, need_input_grad)
        through_shortcut = self.shortcut.backward(grad_y, need_input_grad)
        return through_main + through_shortcut if need_input_grad else None

    def parameters(self) -> tuple[Parameter, ...]:
        return self.main.parameters() + self.shortcut.parameters()

    def buffers(self) -> dict[str, np.ndarray]:
        return {**self.main.buffers(), **self.shortcut.buffers()}

    def layers(self) -> Iterator[Layer]:
        yield self
        yield from self.main.layers()
        yield from self.shortcut.layers()
