"""A PyTorch model of your own as an npconv :class:`~npconv.network.Network`: traced, mapped, shapes checked.

:func:`from_torch` ``(module, input_shape)`` returns the network; :func:`trace`
returns it with how it was traced (:class:`TracedModel`), and
:func:`load_factory` imports ``FILE.py:FACTORY`` for ``npconv model --torch``.

How: the model is put in ``eval()`` mode (and put back afterwards) and traced

1. with ``torch.fx.symbolic_trace`` -- its graph of ``torch.nn`` modules,
   functions and tensor methods -- then run once on *fake* tensors
   (``FakeTensorMode``: shapes without memory or arithmetic) to learn every
   node's shape; or, where fx cannot trace it symbolically (control flow
   that depends on the data or on shapes, say),
2. by running it with forward hooks on its ``torch.nn`` modules and a
   ``TorchFunctionMode`` that sees every function and tensor method called
   outside them (``+``, ``torch.cat``, ``x.view``) -- on fake tensors, or on
   random data where fake ones cannot decide the control flow.

Either way (:mod:`npconv.torch_trace` records the calls) the same list of
calls is mapped to npconv's layers, op by op:

========================================  =========================================================
PyTorch                                   npconv
========================================  =========================================================
``nn.Conv2d`` (any stride, dilation,      ``Conv2d``; ``Depthwise`` when groups = C_in > 1;
groups, padding int / pair / ``'same'``   ``Pointwise`` when 1x1, stride 1, unpadded, groups 1;
/ ``'valid'``)                            ``padding_mode`` other than zeros: a ``Pad`` of that
                                          mode, then the convolution unpadded
zero padding (``nn.ZeroPad2d``,           folded into the convolution that alone reads it;
``F.pad``) before a convolution           other padding: ``Pad``
``nn.Linear`` on (N, F)                   ``Linear``
``nn.BatchNorm1d/2d`` (affine, running    ``BatchNorm``
statistics)
``nn.ReLU``, ``F.relu``, ``x.relu()``     ``ReLU``
ReLU6, GELU, SiLU, Sigmoid, Tanh,         ``Activation`` (a marker, nothing counted, like ReLU)
Hardswish, ... (modules and functions)
max / average pooling (``ceil_mode``      ``MaxPool``, ``AvgPool`` (ceil mode: the extra padding
too), adaptive pooling to 1 or to a       at the end that gives its size); ``GlobalAvgPool``;
divisor of the input size                 adaptive: the equivalent fixed window
``nn.Flatten``, ``torch.flatten``,        ``Flatten`` to (N, C x H x W), else ``Reshape``
``view``, ``reshape``, ``squeeze``, ...
dropout (modules and functions)           ``Dropout`` (nothing at inference)
``+``, ``torch.add``, ``add_``, ``+=``    ``Add`` (two activations of one shape)
of two activations
``torch.cat``                             ``Concat``
a module called again                     ``Reuse`` (mults per call, parameters once)
``nn.Identity``, ``contiguous``           nothing (the next layer reads its input)
anything else                             ``Uncounted``: listed by name with its calls, in no total
========================================  =========================================================

A call whose input is not the previous layer's output gets a ``From`` marker
before it, so the network is the model's graph in the order it ran.  Every
layer's output shape as npconv infers it is checked against the shape the
trace recorded: a disagreement raises :class:`TraceShapeError` naming the
layer, never a silent wrong count.  PyTorch is imported by this module;
:mod:`npconv.network` imports it only when :func:`~npconv.network.from_torch`
is called.

Size: the traced operations' mapping (:class:`_Mapper`) is one table of ``torch`` calls to
network layers -- one entry per operation kind PyTorch models use -- and splitting it would
split that table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.fx
from torch import nn

from npconv.errors import ConvArgumentError
from npconv.geometry import same_padding
from npconv.network import (
    NETWORK_INPUT,
    Activation,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv2d,
    Depthwise,
    Dropout,
    Flatten,
    From,
    GlobalAvgPool,
    Layer,
    Linear,
    MaxPool,
    Network,
    Pad,
    Pointwise,
    ReLU,
    Reshape,
    Reuse,
    Uncounted,
)
from npconv.torch_trace import (
    Op,
    Recording,
    Several,
    Value,
    error_message,
    evaluating,
    flatten_arguments,
    model_device,
    record_calls,
    record_fx,
    record_hooks,
    tensor_values,
)

Shape = tuple[int, ...]

#: The two ways a model is traced, as reports name them.
FX, HOOKS = "torch.fx", "forward hooks"


class TraceShapeError(ConvArgumentError):
    """npconv's shape inference and the trace disagree about a layer's output: refused, not miscounted."""


# ---------------------------------------------------------------------- from calls to layers


def _pair(value: object) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        return (int(value[0]), int(value[-1])) if value else (0, 0)
    return int(value), int(value)


def _compact(pair: tuple[int, int]) -> int | tuple[int, int]:
    return pair[0] if pair[0] == pair[1] else pair


def _per_side(padding: tuple[tuple[int, int], tuple[int, int]]) -> object:
    """``((1, 1), (1, 1))`` -> ``1``, ``((1, 1), (2, 2))`` -> ``(1, 2)``; asymmetric stays per side."""
    (top, bottom), (left, right) = padding
    if top == bottom and left == right:
        return _compact((top, left))
    return padding


def _bind(op: Op, names: Sequence[str], defaults: dict[str, object]) -> dict[str, object]:
    """A function call's arguments by name (``names`` in order, after the input)."""
    bound = dict(defaults)
    bound.update(zip(names, op.args[1:], strict=False))
    bound.update(op.kwargs)
    return bound


def _pool_padding(size: Shape, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                  dilation: tuple[int, int], ceil_mode: bool) -> object:
    """Per-side padding that gives PyTorch's pooled size with npconv's (floor) formula.

    In ceil mode PyTorch rounds the window count up (but drops a last window
    that starts in the right padding): the same as padding the end by just
    enough for that last window.
    """
    sides = []
    for axis in range(2):
        before = padding[axis]
        extra = 0
        if ceil_mode:
            span = size[axis] + 2 * before - dilation[axis] * (kernel[axis] - 1) - 1
            count = -(-span // stride[axis]) + 1
            if (count - 1) * stride[axis] >= size[axis] + before:
                count -= 1
            extra = max(0, (count - 1) * stride[axis] - span)
        sides.append((before, before + extra))
    return _per_side(tuple(sides))


#: Modules and functions that are element-wise activations (or softmax), by npconv function name.
_ACTIVATION_MODULES = {
    nn.ReLU6: "relu6", nn.Hardtanh: "hardtanh", nn.GELU: "gelu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu", nn.SELU: "selu", nn.CELU: "celu", nn.Mish: "mish", nn.Softplus: "softplus",
    nn.Softsign: "softsign", nn.Tanhshrink: "tanhshrink", nn.Softmax: "softmax", nn.LogSoftmax: "log_softmax",
}
_ACTIVATION_FUNCTIONS = {name: name for name in _ACTIVATION_MODULES.values()}
_ACTIVATION_FUNCTIONS.update({f"{name}_": name for name in _ACTIVATION_MODULES.values()})
_ACTIVATION_FUNCTIONS.update({"hardtanh_": "hardtanh", "softmax": "softmax", "log_softmax": "log_softmax"})

_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_DROPOUT_FUNCTIONS = ("dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                      "feature_alpha_dropout", "feature_dropout")
_PAD_MODULES = {nn.ZeroPad2d: "constant", nn.ConstantPad2d: "constant", nn.ReflectionPad2d: "reflect",
                nn.ReplicationPad2d: "replicate", nn.CircularPad2d: "circular"}
_ADD = ("add", "add_")
_CAT = ("cat", "concat", "concatenate")
_RESHAPES = ("view", "reshape", "flatten", "squeeze", "squeeze_", "unsqueeze", "unsqueeze_", "view_as",
             "reshape_as", "unflatten", "ravel")
_NO_OPS = ("contiguous", "detach")
#: Calls that only read a tensor's metadata (or Python numbers): nothing computed, not listed.
_METADATA = ("size", "dim", "ndimension", "numel", "nelement", "shape", "dtype", "device", "ndim", "__get__",
             "getattr", "__len__", "__bool__", "__int__", "__float__", "__index__", "__format__", "__repr__",
             "item", "tolist", "is_contiguous", "is_floating_point", "element_size", "stride", "data_ptr",
             "storage_offset", "get_device", "requires_grad_", "is_complex", "type")
#: Calls that make a tensor without reading any: constants, not listed.
_CREATION = ("zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like", "tensor",
             "as_tensor", "arange", "linspace", "eye", "scalar_tensor")


@dataclass
class _PendingPad:
    """Zero padding not yet written: a convolution that alone reads it takes it as its own padding."""

    source: Value
    padding: tuple[tuple[int, int], tuple[int, int]]
    op: Op


class _Mapper:
    """Turns a recording into a network's layers, in the order the calls ran."""

    def __init__(self, root: nn.Module, recording: Recording):
        self.recording = recording
        self.layers: list[Layer] = []
        self.last = NETWORK_INPUT
        #: op name -> name of the layer whose output is that op's result
        self.layer_of: dict[str, str] = {NETWORK_INPUT: NETWORK_INPUT}
        #: layer name -> (the shape the trace recorded, what was called)
        self.expected: dict[str, tuple[Shape | None, str]] = {}
        self.owners: dict[int, str] = {}
        self.pending: dict[str, _PendingPad] = {}
        self.reads = Counter(v.producer for op in recording.ops for v in tensor_values((op.args, op.kwargs)))
        self.reads.update(v.producer for v in recording.outputs)
        self.parameter_sizes = {name: p.numel() for name, p in root.named_parameters()}
        self.counted: set[str] = set()
        self.calls = Counter(id(op.module) for op in recording.ops if op.module is not None)
        self.labels = {op.name: op.label for op in recording.ops}

    # -- emitting layers
    def _source(self, value: Value) -> str:
        pad = self.pending.pop(value.producer, None)
        if pad is not None:  # read by something that cannot take it as its padding: write it out
            self._chain(Pad(_per_side(pad.padding), name=pad.op.name), pad.source, pad.op)
        return self.layer_of[value.producer]

    def _chain(self, layer: Layer, value: Value, op: Op) -> None:
        source = self._source(value)
        if source != self.last:
            self.layers.append(From(source))
        self._emit(layer, op)

    def _emit(self, layer: Layer, op: Op) -> None:
        self.layers.append(layer)
        self.last = layer.name
        self.layer_of[op.name] = layer.name
        self.expected[layer.name] = (op.shape, op.label)

    def _alias(self, op: Op, value: Value) -> None:
        self.layer_of[op.name] = self._source(value)

    def _uncounted(self, op: Op, why: str = "") -> None:
        activations = [v for v in tensor_values((op.args, op.kwargs)) if v.origin == "activation"]
        several = [v for v in flatten_arguments((op.args, op.kwargs)) if isinstance(v, Several)]
        inputs = tuple(dict.fromkeys([self._source(v) for v in activations]
                                     + [self.layer_of[s.producer] for s in several]))
        params = set().union(*(v.params for v in tensor_values((op.args, op.kwargs))))
        if op.module is not None:
            params |= {f"{op.path}.{name}" if op.path else name for name, _ in op.module.named_parameters()}
        new = params - self.counted
        self.counted |= new
        if op.key == "getitem" and several:  # an item of a tuple result: say of what
            why = why or f"an item of {self.labels[several[0].producer]}"
        label = f"{op.label} ({why})" if why else op.label
        self._emit(Uncounted(label, inputs, op.shape, sum(self.parameter_sizes.get(p, 0) for p in new),
                             name=op.name), op)

    def _in_place(self, op: Op, value: Value) -> None:
        """Later reads of a tensor changed in place read the layer that changed it."""
        self.layer_of[value.producer] = self.layer_of[op.name]

    # -- the mapping
    def run(self) -> None:
        for op in self.recording.ops:
            state = (len(self.layers), self.last, dict(self.layer_of), dict(self.pending), set(self.counted),
                     dict(self.owners))
            try:
                self._op(op)
            except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as error:
                # arguments of a form the mapping does not know: keep the call, uncounted
                del self.layers[state[0]:]
                self.last, self.layer_of, self.pending, self.counted, self.owners = state[1:]
                self._uncounted(op, f"arguments not understood: {type(error).__name__}")

    def _op(self, op: Op) -> None:
        values = tensor_values((op.args, op.kwargs))
        activations = [v for v in values if v.origin == "activation"]
        reads_several = any(isinstance(v, Several) for v in flatten_arguments((op.args, op.kwargs)))
        if op.shape is None and not op.several:
            if op.key in _METADATA or not (activations or reads_several):
                return  # metadata or Python numbers: nothing computed
            self._uncounted(op)
            return
        if not (activations or reads_several):
            if op.call != "module" and (op.key in _RESHAPES or op.key in _NO_OPS or op.key in _CREATION
                                        or not values):
                return  # a constant, or a parameter seen another way: nothing computed on data
            self._uncounted(op)  # arithmetic on parameters or constants (weight standardisation, ...)
            return
        if op.call == "module":
            mapped = self._module(op, activations)
        else:
            mapped = self._function(op, activations, reads_several)
        if mapped is not None:
            self._uncounted(op, mapped)

    def _only_input(self, op: Op, activations: list[Value]) -> Value | None:
        return activations[0] if len(activations) == 1 and not op.several else None

    # -- modules
    def _module(self, op: Op, activations: list[Value]) -> str | None:
        """Map a module call; returns why it is not counted, or None when it is."""
        module, x = op.module, self._only_input(op, activations)
        if x is None:
            return "returning several tensors" if op.several else "inputs other than one tensor"
        has_state = any(True for _ in itertools.chain(module.parameters(), module.buffers()))
        if has_state and id(module) in self.owners:
            if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
                x = self._mode_pad(op, module, x)
            self._chain(Reuse(self.owners[id(module)], name=op.name), x, op)
            return None
        why = self._module_layer(op, module, x)
        if why is None and has_state:
            self.owners[id(module)] = op.name
            self.counted |= {f"{op.path}.{name}" for name, _ in module.named_parameters()}
        return why

    def _module_layer(self, op: Op, module: nn.Module, x: Value) -> str | None:
        kind = type(module)
        if isinstance(module, nn.Conv2d):
            return self._conv(op, module, x)
        if isinstance(module, nn.Linear):
            if len(x.shape) != 2:
                return f"on a {len(x.shape)}-D input"
            self._chain(Linear(module.out_features, bias=module.bias is not None, name=op.name), x, op)
            return None
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if not (module.affine and module.track_running_stats):
                return "without affine scale and shift or running statistics"
            if len(x.shape) not in (2, 3, 4):
                return f"on a {len(x.shape)}-D input"
            self._chain(BatchNorm(name=op.name), x, op)
            return None
        if kind is nn.ReLU:
            self._chain(ReLU(name=op.name), x, op)
            return self._done_in_place(op, x, module)
        function = _ACTIVATION_MODULES.get(kind) or next(
            (name for cls, name in _ACTIVATION_MODULES.items() if isinstance(module, cls)), None)
        if function is not None:
            if function == "hardtanh" and (module.min_val, module.max_val) == (0.0, 6.0):
                function = "relu6"
            self._chain(Activation(function, name=op.name), x, op)
            return self._done_in_place(op, x, module)
        if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            return self._pool(op, x, "max" if isinstance(module, nn.MaxPool2d) else "avg", module.kernel_size,
                              module.stride, module.padding, getattr(module, "dilation", 1), module.ceil_mode,
                              getattr(module, "return_indices", False))
        if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            return self._adaptive(op, x, "avg" if isinstance(module, nn.AdaptiveAvgPool2d) else "max",
                                  module.output_size, getattr(module, "return_indices", False))
        if isinstance(module, nn.Flatten | nn.Unflatten):
            return self._reshaped(op, x)
        if isinstance(module, _DROPOUT_MODULES):
            self._chain(Dropout(float(module.p), name=op.name), x, op)
            return self._done_in_place(op, x, module)
        if kind is nn.Identity:
            self._alias(op, x)
            return None
        if kind in _PAD_MODULES:
            left, right, top, bottom = module.padding
            return self._pad(op, x, ((top, bottom), (left, right)), _PAD_MODULES[kind], getattr(module, "value", 0.0))
        return ""

    def _done_in_place(self, op: Op, x: Value, module: nn.Module | None = None, inplace: bool = False) -> None:
        if inplace or getattr(module, "inplace", False):
            self._in_place(op, x)

    @staticmethod
    def _conv_sides(module: nn.Conv2d, x: Value) -> tuple[tuple[int, int], tuple[int, int]]:
        """The convolution's own padding, per side, on input ``x``."""
        height, width = x.shape[2:]
        kernel, dilation = module.kernel_size, module.dilation
        if module.padding == "valid":
            return (0, 0), (0, 0)
        if module.padding == "same":  # PyTorch's 'same' (stride 1): the odd extra pixel at the end
            return same_padding(height, kernel[0], 1, dilation[0]), same_padding(width, kernel[1], 1, dilation[1])
        return tuple((p, p) for p in module.padding)

    def _mode_pad(self, op: Op, module: nn.Conv2d, x: Value) -> Value:
        """A convolution with ``padding_mode`` reflect, replicate or circular: that padding as a
        :class:`Pad` in front of it (its values are real input, which no kernel skips)."""
        sides = self._conv_sides(module, x)
        if not any(itertools.chain(*sides)):
            return x
        name = f"{op.name}.pad"
        batch, channels, height, width = x.shape
        shape = (batch, channels, height + sum(sides[0]), width + sum(sides[1]))
        self._chain(Pad(_per_side(sides), mode=module.padding_mode, name=name), x,
                    dataclasses.replace(op, name=name, label=f"{op.label} padding_mode", shape=shape))
        return Value(name, shape)

    def _conv(self, op: Op, module: nn.Conv2d, x: Value) -> str | None:
        if len(x.shape) != 4:
            return f"on a {len(x.shape)}-D input"
        sides = self._conv_sides(module, x)
        pad = self.pending.get(x.producer)
        padding: object
        if module.padding_mode != "zeros":
            sides, padding, x = ((0, 0), (0, 0)), 0, self._mode_pad(op, module, x)
        elif pad is not None and self.reads[x.producer] == 1 and self.calls[id(module)] == 1:
            del self.pending[x.producer]  # zero padding only this convolution reads: its own padding
            sides = tuple((a + c, b + d) for (a, b), (c, d) in zip(sides, pad.padding, strict=True))
            x = pad.source
            padding = _per_side(sides)
        else:
            padding = module.padding if isinstance(module.padding, str) else _per_side(sides)
        channels, bias = x.shape[1], module.bias is not None
        stride, dilation = _compact(module.stride), _compact(module.dilation)
        kernel = _compact(module.kernel_size)
        if module.groups == channels > 1:
            layer: Layer = Depthwise(kernel, stride, padding, dilation, module.out_channels // channels, bias,
                                     name=op.name)
        elif kernel == 1 and stride == 1 and module.groups == 1 and not any(itertools.chain(*sides)):
            layer = Pointwise(module.out_channels, bias, name=op.name)
        else:
            layer = Conv2d(module.out_channels, kernel, stride, padding, dilation, module.groups, bias, name=op.name)
        self._chain(layer, x, op)
        return None

    def _pool(self, op: Op, x: Value, kind: str, kernel: object, stride: object, padding: object,
              dilation: object, ceil_mode: bool, return_indices: bool) -> str | None:
        if len(x.shape) != 4:
            return f"on a {len(x.shape)}-D input"
        if return_indices:
            return "returning indices"
        kernel = _pair(kernel)
        stride = _pair(stride) if stride not in (None, (), []) else kernel
        dilation = _pair(dilation)
        if dilation != (1, 1):
            return f"dilation {_compact(dilation)}"
        sides = _pool_padding(x.shape[2:], kernel, stride, _pair(padding), dilation, bool(ceil_mode))
        cls = MaxPool if kind == "max" else AvgPool
        self._chain(cls(_compact(kernel), _compact(stride), sides, name=op.name), x, op)
        return None

    def _adaptive(self, op: Op, x: Value, kind: str, output_size: object, return_indices: bool) -> str | None:
        if len(x.shape) != 4:
            return f"on a {len(x.shape)}-D input"
        if return_indices:
            return "returning indices"
        sizes = output_size if isinstance(output_size, list | tuple) else (output_size, output_size)
        height, width = x.shape[2:]
        out_h, out_w = (height if sizes[0] is None else sizes[0]), (width if sizes[1] is None else sizes[1])
        if (out_h, out_w) == (1, 1) and kind == "avg":
            self._chain(GlobalAvgPool(name=op.name), x, op)
            return None
        if height % out_h or width % out_w:
            return f"windows of varying size: {height}x{width} to {out_h}x{out_w}"
        window = _compact((height // out_h, width // out_w))
        self._chain((MaxPool if kind == "max" else AvgPool)(window, window, name=op.name), x, op)
        return None

    def _reshaped(self, op: Op, x: Value) -> None:
        if op.shape == x.shape:
            self._alias(op, x)
        elif len(x.shape) >= 2 and op.shape == (x.shape[0], math.prod(x.shape[1:])):
            self._chain(Flatten(name=op.name), x, op)
        else:
            self._chain(Reshape(op.shape, name=op.name), x, op)

    def _pad(self, op: Op, x: Value, sides: tuple, mode: str, value: object) -> str | None:
        if len(x.shape) != 4:
            return f"on a {len(x.shape)}-D input"
        if min(itertools.chain(*sides)) < 0:
            return "negative padding (a crop)"
        value = 0.0 if value is None else float(value)
        if mode == "constant" and value == 0.0:
            self.pending[op.name] = _PendingPad(x, sides, op)
            self.layer_of[op.name] = op.name
            self.expected[op.name] = (op.shape, op.label)
            return None
        self._chain(Pad(_per_side(sides), mode, value, name=op.name), x, op)
        return None

    # -- functions and tensor methods
    def _function(self, op: Op, activations: list[Value], reads_several: bool) -> str | None:
        key = op.key
        if reads_several:
            return ""
        if key in _ADD:
            return self._add(op)
        if key in _CAT:
            tensors = op.args[0] if op.args else op.kwargs.get("tensors", ())
            dim = _bind(op, ("dim",), {"dim": op.kwargs.get("axis", 0)})["dim"]
            if not isinstance(tensors, list | tuple) or not all(
                    isinstance(t, Value) and t.origin == "activation" for t in tensors):
                return "of tensors that are not all activations"
            rank = len(tensors[0].shape)
            self._emit(Concat(tuple(self._source(t) for t in tensors), int(dim) % rank, name=op.name), op)
            return None
        x = self._only_input(op, activations)
        if x is None or (op.args[0] if op.args else op.kwargs.get("input")) is not x:
            return ""  # not a function of one activation that it takes first
        inplace = (key.endswith("_") and not key.endswith("__")) or bool(op.kwargs.get("inplace", False))
        if key in ("relu", "relu_"):
            self._chain(ReLU(name=op.name), x, op)
            return self._done_in_place(op, x, inplace=inplace)
        if key in _ACTIVATION_FUNCTIONS:
            function = _ACTIVATION_FUNCTIONS[key]
            if function == "hardtanh":
                bounds = _bind(op, ("min_val", "max_val"), {"min_val": -1.0, "max_val": 1.0})
                if (bounds["min_val"], bounds["max_val"]) == (0.0, 6.0):
                    function = "relu6"
            self._chain(Activation(function, name=op.name), x, op)
            return self._done_in_place(op, x, inplace=inplace)
        if key in ("max_pool2d", "avg_pool2d"):
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices") if \
                key == "max_pool2d" else ("kernel_size", "stride", "padding", "ceil_mode")
            bound = _bind(op, names, {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
                                      "return_indices": False})
            return self._pool(op, x, key[:3], bound["kernel_size"], bound["stride"], bound["padding"],
                              bound["dilation"], bound["ceil_mode"], bound["return_indices"])
        if key in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            bound = _bind(op, ("output_size", "return_indices"), {"return_indices": False})
            return self._adaptive(op, x, key[9:12], bound["output_size"], bound["return_indices"])
        if key in _RESHAPES:
            self._reshaped(op, x)
            return None
        if key in _NO_OPS:
            self._alias(op, x)
            return None
        if key in _DROPOUT_FUNCTIONS:
            p = _bind(op, ("p",), {"p": 0.5})["p"]
            self._chain(Dropout(float(p), name=op.name), x, op)
            return self._done_in_place(op, x, inplace=inplace)
        if key == "pad":
            bound = _bind(op, ("pad", "mode", "value"), {"mode": "constant", "value": None})
            amounts = tuple(bound["pad"])
            if len(amounts) != 4:
                return f"of {len(amounts) // 2} dimensions"
            left, right, top, bottom = amounts
            return self._pad(op, x, ((top, bottom), (left, right)), bound["mode"], bound["value"])
        return ""

    def _add(self, op: Op) -> str | None:
        operands = op.args[:2]
        alpha = op.kwargs.get("alpha", op.args[2] if len(op.args) > 2 else 1)
        if len(operands) != 2 or not all(isinstance(v, Value) and v.origin == "activation" for v in operands):
            return "of a tensor and a number or a constant"
        if operands[0].shape != operands[1].shape:
            return "broadcast"
        if alpha != 1:
            return f"alpha {alpha}"
        self._emit(Add(tuple(self._source(v) for v in operands), name=op.name), op)
        if op.key == "add_":
            self._in_place(op, operands[0])
        return None

    def finish(self) -> str:
        """The layer whose output the network ends with (the model's first output)."""
        for name in list(self.pending):  # zero padding nothing read
            pad = self.pending.pop(name)
            self._chain(Pad(_per_side(pad.padding), name=pad.op.name), pad.source, pad.op)
        outputs = self.recording.outputs
        if not outputs:
            raise ConvArgumentError("module", "a model that returns a tensor", "one that returns none")
        source = self._source(outputs[0])
        if source == NETWORK_INPUT:
            raise ConvArgumentError("module", "a model that computes something", "one that returns its input")
        if source != self.last:
            self.layers.append(From(source))
        return source


# ---------------------------------------------------------------------- the traced model


@dataclass(frozen=True)
class TracedModel:
    """A traced model: its network, how it was traced, and PyTorch's own parameter count beside it."""

    network: Network
    #: :data:`FX` or :data:`HOOKS`
    method: str
    #: why torch.fx could not trace it (when ``method`` is :data:`HOOKS`)
    fx_failure: str
    #: "fake tensors (shapes only)" or "one forward pass on random data"
    shapes_from: str
    #: ``sum(p.numel() for p in module.parameters())``
    module_params: int
    #: parameters no counted layer reads (modules never called, say): qualified name -> numel
    unread_params: dict[str, int]
    #: tensors the model returns (the network ends at the first)
    outputs: int
    module: nn.Module = field(compare=False, repr=False)

    def notes(self) -> list[str]:
        """Sentences for a report: how it was traced, and what the parameter counts say."""
        how = (f"Traced with torch.fx (symbolic tracing), shapes from {self.shapes_from}."
               if self.method == FX else
               f"Traced with forward hooks on its torch.nn modules and a TorchFunctionMode for everything called "
               f"outside them, shapes from {self.shapes_from}: torch.fx could not trace it ({self.fx_failure}). "
               "The graph is the one this input took.")
        lines = [how, "Every layer's output shape as npconv infers it equals the shape the trace recorded."]
        counted = self.network.totals().params
        if counted == self.module_params:
            lines.append(f"Parameters: {counted:,} = PyTorch's sum(p.numel() for p in model.parameters()).")
        else:
            unread = ", ".join(f"{name} ({n:,})" for name, n in self.unread_params.items())
            lines.append(f"Parameters: {counted:,} in the network; PyTorch's sum(p.numel()) is "
                         f"{self.module_params:,}" + (f"; not read in this forward pass: {unread}" if unread else ""))
        if self.outputs > 1:
            lines.append(f"The model returns {self.outputs} tensors: every layer is counted; the output shown is "
                         "the first's.")
        return lines

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "fx_failure": self.fx_failure, "shapes_from": self.shapes_from,
                "module_params": self.module_params, "unread_params": self.unread_params, "outputs": self.outputs}


def _check_input_shape(input_shape: object, argument: str) -> Shape:
    if (not isinstance(input_shape, list | tuple) or len(input_shape) != 4
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in input_shape)):
        raise ConvArgumentError(argument, "(N, C, H, W): 4 positive ints", repr(input_shape))
    return tuple(input_shape)


def _network(mapper: _Mapper, name: str, input_shape: Shape, description: str) -> Network:
    try:
        network = Network(name, input_shape, tuple(mapper.layers), description)
    except ConvArgumentError as error:
        where = error.argument.split(".")[0].split("]")[0] + "]"
        index = int(where[len("layers["):-1]) if where.startswith("layers[") else None
        layer = mapper.layers[index].name if index is not None and index < len(mapper.layers) else ""
        called = mapper.expected.get(layer, (None, ""))[1]
        raise ConvArgumentError("module", "a model npconv can describe",
                                f"{layer} ({called}): {error}" if layer else str(error)) from None
    for row in network.rows:
        traced, called = mapper.expected.get(row.name, (None, ""))
        if traced is not None and row.output_shape != traced and not row.operation:
            raise TraceShapeError(
                f"module (layer {row.name}, {called})",
                f"the output shape npconv infers for it, {row.output_shape}, to be the traced one",
                f"{traced}: npconv would count this model wrongly, so it refuses to")
    return network


def trace(module: nn.Module, input_shape: Sequence[int], name: str | None = None, *,
          argument: str = "module", shape_argument: str = "input_shape") -> TracedModel:
    """Trace ``module`` on an input of ``input_shape`` (N, C, H, W): the network and how it was traced.

    Errors name ``argument`` (the model) and ``shape_argument`` (a shape it
    does not accept), as :class:`~npconv.errors.ConvArgumentError`.
    """
    if not isinstance(module, nn.Module):
        raise ConvArgumentError(argument, "a torch.nn.Module", f"{type(module).__name__}: {module!r}"[:120])
    input_shape = _check_input_shape(input_shape, shape_argument)
    root = module
    if torch.fx.Tracer().is_leaf_module(module, ""):  # a bare torch.nn layer: traced as a one-layer model
        root = nn.Sequential({type(module).__name__.lower(): module})
    device = model_device(root)
    with evaluating(root):
        method, failure = FX, ""
        try:
            graph_module = torch.fx.symbolic_trace(root)
        except Exception as error:
            method, failure = HOOKS, error_message(error)
        recording = None
        if method == FX:
            try:
                recording, shapes_from = record_calls(lambda x: record_fx(graph_module, x), input_shape, device,
                                                 shape_argument)
            except ConvArgumentError as error:  # the traced graph fails: does the model itself?
                method, failure = HOOKS, f"its graph failed on this input: {error.got}"
        if recording is None:
            recording, shapes_from = record_calls(lambda x: record_hooks(root, x), input_shape, device, shape_argument)
    mapper = _Mapper(root, recording)
    try:
        mapper.run()
        mapper.finish()
    except (KeyError, LookupError, TypeError) as error:  # a graph the mapping cannot follow: say so, briefly
        raise ConvArgumentError(argument, "a model whose calls npconv can follow",
                                f"{type(error).__name__}: {error}") from None
    label = name or type(module).__name__
    network = _network(mapper, label, input_shape, f"{type(module).__qualname__}, traced from PyTorch ({method})")
    parameters = dict(root.named_parameters())
    unread = {p: parameters[p].numel() for p in parameters if p not in mapper.counted}
    return TracedModel(network, method, failure, shapes_from, sum(p.numel() for p in module.parameters()),
                       unread, len(recording.outputs), module)


def from_torch(module: nn.Module, input_shape: Sequence[int], name: str | None = None) -> Network:
    """The :class:`~npconv.network.Network` ``module`` computes on an input of ``input_shape`` (N, C, H, W)."""
    return trace(module, input_shape, name).network


# ---------------------------------------------------------------------- FILE.py:FACTORY


def load_factory(spec: str, argument: str = "--torch") -> tuple[nn.Module, str]:
    """Import ``FILE.py`` and call its ``FACTORY`` (or take it, if it is a module already): the model and
    its name.

    The file runs as any Python tool would run it (its folder first on
    ``sys.path``, so that it can import its neighbours).  Every failure --
    no such file, an import that raises, no such factory, a factory that
    raises or returns something else than a ``torch.nn.Module`` -- is a
    :class:`~npconv.errors.ConvArgumentError` naming ``argument``.
    """
    path_text, colon, factory_name = spec.rpartition(":")
    if not colon or not path_text or not factory_name.isidentifier():
        raise ConvArgumentError(argument, "FILE.py:FACTORY, e.g. my_net.py:build (a function or class in the file "
                                "that returns the model)", repr(spec))
    path = Path(path_text)
    if not path.is_file():
        raise ConvArgumentError(argument, "an existing Python file before the ':'",
                                f"{path_text!r} ({'a folder' if path.is_dir() else 'no such file'})")
    module_name = f"npconv_user_model_{abs(hash(str(path.resolve())))}"
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec_ = importlib.util.spec_from_file_location(module_name, path)
        if spec_ is None or spec_.loader is None:
            raise ConvArgumentError(argument, "a Python file that can be imported", repr(path_text))
        user = importlib.util.module_from_spec(spec_)
        sys.modules[module_name] = user
        try:
            spec_.loader.exec_module(user)
        except (Exception, SystemExit) as error:
            raise ConvArgumentError(argument, "a file that imports cleanly", f"{path_text}: {error_message(error)}") from None
        if not hasattr(user, factory_name):
            defined = [n for n, v in vars(user).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module_name]
            raise ConvArgumentError(argument, f"a function or class named {factory_name!r} in {path.name}",
                                    f"none; it defines {', '.join(defined) or 'no function or class'}")
        factory = getattr(user, factory_name)
        if isinstance(factory, nn.Module):
            return factory, factory_name
        if not callable(factory):
            raise ConvArgumentError(argument, f"{factory_name} to be a function, a class or a torch.nn.Module",
                                    f"{type(factory).__name__}")
        try:
            model = factory()
        except (Exception, SystemExit) as error:
            raise ConvArgumentError(argument, f"{path.name}:{factory_name}() to return a model",
                                    f"a call that raised {error_message(error)}") from None
        if not isinstance(model, nn.Module):
            raise ConvArgumentError(argument, f"{path.name}:{factory_name}() to return a torch.nn.Module",
                                    f"{type(model).__name__}")
        return model, factory_name
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
