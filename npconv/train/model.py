"""A trainable model built from a network description: the same description used for counting.

:func:`build_model` walks a :class:`~npconv.network.Network`'s resolved rows
-- the shapes and geometries :mod:`npconv.network` inferred and counts -- and
makes one :mod:`npconv.train.layers` layer per row, initialised from a seed
with PyTorch's default scheme (:mod:`npconv.train.initialisation`).  So the
network trained is exactly the network ``npconv model`` counts.

:func:`adapt` fits a description to a data set: the input's channels and
size, and the number of classes of the last linear layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.network import (
    LayerCount,
    Network,
    Residual,
    ResolvedFrom,
    ResolvedLayer,
    ResolvedResidual,
)
from npconv.network import Linear as LinearSpec
from npconv.train import layers as L
from npconv.train.initialisation import bias_uniform, kaiming_uniform


class Model:
    """A network's layers with its description: forward, backward, parameters, counting.

    ``method`` is the kernel every convolution (and the linear layer) runs
    through; ``dtype`` the dtype of parameters and activations.
    """

    def __init__(self, network: Network, body: L.Sequential, method: str, dtype: np.dtype):
        self.network, self.body, self.method, self.dtype = network, body, method, np.dtype(dtype)

    @property
    def name(self) -> str:
        return self.network.name

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Logits ``(N, classes)`` for images ``(N, C, H, W)`` (cast to the model's dtype)."""
        return self.body.forward(np.asarray(x, dtype=self.dtype), training)

    def backward(self, grad_logits: np.ndarray) -> None:
        """Every parameter's ``grad`` from dL/dlogits; the input's gradient is not computed."""
        self.body.backward(np.asarray(grad_logits, dtype=self.dtype), need_input_grad=False)

    def parameters(self) -> tuple[L.Parameter, ...]:
        """In PyTorch's order: the order of ``npconv.network_torch.build_module(network).parameters()``."""
        return self.body.parameters()

    def buffers(self) -> dict[str, np.ndarray]:
        return self.body.buffers()

    def layers(self) -> Iterator[L.Layer]:
        return self.body.layers()

    def weighted_layers(self) -> list[L.Conv2d | L.Separable]:
        return [layer for layer in self.layers() if isinstance(layer, L.Conv2d | L.Separable)]

    def parameter_count(self) -> int:
        return sum(p.value.size for p in self.parameters())

    def state(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by name (``conv1.weight``, ``bn1.running_mean``)."""
        return {**{p.name: p.value.copy() for p in self.parameters()},
                **{k: v.copy() for k, v in self.buffers().items()}}

    def load_state(self, state: dict[str, np.ndarray], source: str = "state", *, check_finite: bool = False) -> None:
        """Set every parameter and buffer from ``state`` (names and shapes must match exactly).

        ``source`` names where ``state`` came from in errors; ``check_finite`` refuses NaN and infinity.
        """
        targets = {p.name: p.value for p in self.parameters()} | self.buffers()
        missing = [name for name in targets if name not in state]
        if missing:
            raise ConvArgumentError(source, f"arrays for every parameter of {self.name} "
                                    f"({', '.join(targets)})", f"none for {', '.join(missing)}")
        values = {}
        for name, target in targets.items():  # every array checked before any is set
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ConvArgumentError(f"{source}: {name}", f"shape {target.shape}", f"shape {value.shape}")
            if check_finite and not np.all(np.isfinite(value)):
                raise ConvArgumentError(f"{source}: {name}", "finite values", "NaN or infinity")
            values[name] = value
        for name, target in targets.items():
            target[...] = values[name]

    def attach_counter(self, counter: L.OpCounter | None) -> None:
        """Count every kernel call from now on into ``counter`` (``None``: stop counting)."""
        for layer in self.weighted_layers():
            layer.counter = counter

    def set_method(self, method: str) -> None:
        self.method = method
        for layer in self.weighted_layers():
            layer.method = method


def _conv_layer(row: LayerCount, rng: np.random.Generator, method: str, dtype: np.dtype) -> L.Layer:
    g = row.geometry

    def weight_and_bias(geometry: ConvGeometry, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
        weight = kaiming_uniform(rng, shape, dtype=dtype)
        bias = bias_uniform(rng, geometry.out_channels, shape, dtype=dtype) if geometry.bias else None
        return weight, bias

    if isinstance(g, SeparableGeometry):
        dw_weight, dw_bias = weight_and_bias(g.depthwise, g.depthwise.weight_shape)
        pw_weight, pw_bias = weight_and_bias(g.pointwise, g.pointwise.weight_shape)
        return L.Separable(g, dw_weight, pw_weight, dw_bias, pw_bias, method=method, name=row.name)
    if row.kind == "linear":
        weight, bias = weight_and_bias(g, (g.out_channels, g.in_channels))
        return L.Linear(g, weight, bias, method=method, name=row.name)
    weight, bias = weight_and_bias(g, g.weight_shape)
    cls = {"conv2d": L.Conv2d, "depthwise": L.Depthwise, "pointwise": L.Pointwise}[row.kind]
    return cls(g, weight, bias, method=method, name=row.name)


def _layer(row: LayerCount, rng: np.random.Generator, method: str, dtype: np.dtype) -> L.Layer:
    if row.is_weighted:
        return _conv_layer(row, rng, method, dtype)
    simple = {"relu": L.ReLU, "flatten": L.Flatten, "global_avgpool": L.GlobalAvgPool}
    if row.kind in simple:
        return simple[row.kind](name=row.name)
    if row.kind == "maxpool":
        return L.MaxPool(row.geometry, name=row.name)
    if row.kind == "avgpool":
        return L.AvgPool(row.geometry, name=row.name)
    if row.kind == "batchnorm":
        return L.BatchNorm(row.input_shape[1], dtype=dtype, name=row.name)
    raise ConvArgumentError(row.path, "a layer kind the training stack implements", repr(row.kind))


def _sequence(resolved: tuple[ResolvedLayer, ...], rng: np.random.Generator, method: str,
              dtype: np.dtype, name: str = "") -> L.Sequential:
    items: list[L.Layer] = []
    for item in resolved:
        if isinstance(item, ResolvedResidual):
            block = item.add.name.removesuffix(".add")
            items.append(L.Residual(_sequence(item.main, rng, method, dtype, f"{block}.main"),
                                    _sequence(item.shortcut, rng, method, dtype, f"{block}.shortcut"),
                                    name=block))
        elif isinstance(item, ResolvedFrom) or item.shares:
            what = f"from {item.source}" if isinstance(item, ResolvedFrom) else f"{item.name} reusing {item.shares}"
            raise ConvArgumentError(name or "layers", "a chain of layers and residual blocks (the training stack "
                                    "trains no graph: from, reuse)", what)
        else:
            items.append(_layer(item, rng, method, dtype))
    return L.Sequential(items, name=name)


def build_model(network: Network, *, seed: int = 0, method: str = "im2col",
                dtype: np.dtype | type = np.float32) -> Model:
    """The trainable :class:`Model` of ``network``, initialised from ``seed`` (layer by layer, in order)."""
    rng = np.random.default_rng(seed)
    return Model(network, _sequence(network.resolved, rng, method, np.dtype(dtype)), method, np.dtype(dtype))


# ---------------------------------------------------------------------- fitting a description to data


def _last_linear(layers: tuple) -> LinearSpec | None:
    for layer in reversed(layers):
        if isinstance(layer, LinearSpec):
            return layer
        if isinstance(layer, Residual):
            return None
    return None


def adapt(network: Network, channels: int, height: int, width: int, classes: int,
          argument: str = "network") -> tuple[Network, list[str]]:
    """``network`` with input ``(1, channels, height, width)`` and a ``classes``-way last linear layer.

    Returns the adapted network and what was changed, in words.  A network
    that does not end in ``classes`` outputs after the change, or whose
    layers do not fit the new input, is refused naming ``argument``.
    """
    changes = []
    layers = network.layers
    wanted_shape = (1, channels, height, width)
    if network.input_shape[1:] != wanted_shape[1:]:
        _, c, h, w = network.input_shape
        changes.append(f"input {h}x{w}x{c} -> {height}x{width}x{channels}")
    last = _last_linear(layers)
    if last is not None and last.features != classes:
        index = max(i for i, layer in enumerate(layers) if layer is last)
        layers = (*layers[:index], dataclasses.replace(last, features=classes), *layers[index + 1:])
        changes.append(f"{last.name or 'last linear layer'} {last.features} -> {classes} classes")
    try:
        adapted = dataclasses.replace(network, input_shape=wanted_shape, layers=layers)
    except ConvArgumentError as error:
        raise ConvArgumentError(
            argument, f"a network whose layers fit a {height}x{width}x{channels} input "
            f"({error.argument}: expected {error.expected})", error.got) from None
    if adapted.output_shape != (1, classes):
        raise ConvArgumentError(
            argument, f"a network that ends in {classes} class scores, shape (N, {classes}) (put a "
            "flatten and a linear layer last)", f"output shape {adapted.output_shape}")
    return adapted, changes
