"""What a PyTorch model calls, recorded: with torch.fx, or with forward hooks and a TorchFunctionMode.

Both recorders produce the same :class:`Recording`: the calls in the order
they ran (:class:`Op`, each module call, function and tensor method with its
arguments -- tensors as :class:`Value` -- and its result's shape) and the
model's outputs.  :func:`record_calls` runs a recorder on fake tensors, or on
random data where fake ones cannot decide the model's control flow.
:mod:`npconv.network_from_torch` maps a recording to npconv's layers.
Imports PyTorch.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.fx
from torch import nn
from torch.overrides import TorchFunctionMode

from npconv import memory
from npconv.errors import ConvArgumentError
from npconv.network import NETWORK_INPUT

Shape = tuple[int, ...]


# ---------------------------------------------------------------------- what a trace records


@dataclass(frozen=True)
class Value:
    """A tensor an operation reads: who made it, its shape, and what it is made from.

    ``origin`` is ``"activation"`` (computed from the model's input),
    ``"parameter"`` (from learnable parameters only), ``"buffer"`` or
    ``"constant"``; ``params`` names the parameters a non-activation value is
    made from.
    """

    producer: str
    shape: Shape
    origin: str = "activation"
    params: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Several:
    """The result of an operation that returns several tensors (``torch.chunk``): read by indexing it."""

    producer: str


@dataclass(frozen=True)
class Op:
    """One call the model made, with its arguments (tensors as :class:`Value`) and its result's shape."""

    name: str
    call: str  # "module", "function" or "method"
    key: str  # what the mapping dispatches on: a function or method name ("add_", "cat")
    label: str  # how a listing names it: "nn.Upsample", "torch.nn.functional.interpolate", "Tensor.mean"
    args: tuple
    kwargs: dict
    #: the tensor it returned; None if it returned several tensors or none
    shape: Shape | None
    several: bool = False
    module: nn.Module | None = None
    path: str = ""


def flatten_arguments(items: object) -> Iterator[object]:
    if isinstance(items, list | tuple):
        for item in items:
            yield from flatten_arguments(item)
    elif isinstance(items, dict):
        for item in items.values():
            yield from flatten_arguments(item)
    else:
        yield items


def tensor_values(op_args: object) -> list[Value]:
    return [v for v in flatten_arguments(op_args) if isinstance(v, Value)]


def _origin(inputs: Sequence[object]) -> tuple[str, frozenset[str]]:
    values = [v for v in flatten_arguments(inputs) if isinstance(v, Value | Several)]
    if any(isinstance(v, Several) or v.origin == "activation" for v in values):
        return "activation", frozenset()
    params = frozenset().union(*(v.params for v in values)) if values else frozenset()
    if params:
        return "parameter", params
    return ("buffer" if any(v.origin == "buffer" for v in values) else "constant"), frozenset()


def _method_key(name: str) -> str:
    """``__iadd__`` -> ``add_``, ``__radd__`` / ``__add__`` -> ``add``, others as they are."""
    if name.startswith("__") and name.endswith("__") and len(name) > 4:
        core = name[2:-2]
        if core.startswith("i") and core[1:] in _BINARY:
            return core[1:] + "_"
        if core.startswith("r") and core[1:] in _BINARY:
            return core[1:]
        return core if core in _BINARY else name
    return name


_BINARY = ("add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "mod", "and", "or")


def _function_label(function: Callable) -> tuple[str, str]:
    """(key, label) of a called function: ``(cat, torch.cat)``, ``(add, operator.add)``."""
    name = getattr(function, "__name__", None) or type(function).__name__
    module = getattr(function, "__module__", None) or ""
    qualname = getattr(function, "__qualname__", "") or ""
    if qualname.startswith(("TensorBase.", "Tensor.")) or module == "torch._tensor":
        return _method_key(name), f"Tensor.{name}"
    if module in ("operator", "_operator"):
        return _method_key(name), f"operator.{name}"
    if module.startswith(("torch.nn.functional", "torch._C._nn")):
        return name, f"torch.nn.functional.{name}"
    if module.startswith("torch") or qualname.startswith("_VariableFunctionsClass"):
        return name, f"torch.{name}"
    return name, f"{module}.{name}".lstrip(".")


def _module_label(module: nn.Module) -> str:
    cls = type(module)
    if cls.__module__.startswith("torch.nn"):
        return f"nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


class _Names:
    """Unique op names: a module call by its path (``layer1.0.conv1``, again ``layer1.0.conv1#2``),
    a function or method by its name (``add``, ``add_1``), as torch.fx names them."""

    def __init__(self) -> None:
        self.taken: set[str] = {NETWORK_INPUT}
        self.calls: Counter[str] = Counter()

    def __call__(self, base: str, module: bool) -> str:
        base = base or "call"
        for number in itertools.count(self.calls[base] + 1):
            name = (base if number == 1 else f"{base}#{number}") if module else \
                (base if number == 1 else f"{base}_{number - 1}")
            if name not in self.taken:
                self.calls[base] = number
                self.taken.add(name)
                return name
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Recording:
    ops: list[Op] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)


def _tensor_shape(value: object) -> Shape | None:
    return tuple(int(n) for n in value.shape) if isinstance(value, torch.Tensor) else None


def _several(result: object) -> bool:
    return isinstance(result, list | tuple) and any(isinstance(r, torch.Tensor) for r in flatten_arguments(result))


# ---------------------------------------------------------------------- tracing with torch.fx


class _FxRecorder(torch.fx.Interpreter):
    """Runs a torch.fx graph node by node, recording each call with its arguments and result's shape."""

    def __init__(self, graph_module: torch.fx.GraphModule):
        super().__init__(graph_module)
        self.names = _Names()
        self.seen: dict[torch.fx.Node, object] = {}
        self.recording = Recording()
        self.parameters = dict(graph_module.named_parameters())

    def run_node(self, node: torch.fx.Node) -> object:
        result = super().run_node(node)
        self.seen[node] = self._describe(node, result)
        return result

    def _argument(self, node: torch.fx.Node) -> object:
        return self.seen[node]

    def _describe(self, node: torch.fx.Node, result: object) -> object:
        if node.op == "placeholder":
            return Value(NETWORK_INPUT, _tensor_shape(result))
        if node.op == "get_attr":
            if not isinstance(result, torch.Tensor):
                return result
            is_parameter = node.target in self.parameters
            return Value(node.target, _tensor_shape(result), "parameter" if is_parameter else "buffer",
                         frozenset({node.target}) if is_parameter else frozenset())
        args = torch.fx.node.map_arg(node.args, self._argument)
        kwargs = torch.fx.node.map_arg(node.kwargs, self._argument)
        if node.op == "output":
            self.recording.outputs = [v for v in flatten_arguments(args) if isinstance(v, Value)]
            return None
        if node.op == "call_module":
            module = self.module.get_submodule(node.target)
            name = self.names(node.target, module=True)
            op = Op(name, "module", type(module).__name__, _module_label(module), args, kwargs,
                    _tensor_shape(result), _several(result), module, node.target)
        elif node.op == "call_method":
            name = self.names(node.target, module=False)
            op = Op(name, "method", _method_key(node.target), f"Tensor.{node.target}", args, kwargs,
                    _tensor_shape(result), _several(result))
        else:
            key, label = _function_label(node.target)
            name = self.names(key, module=False)
            op = Op(name, "function", key, label, args, kwargs, _tensor_shape(result), _several(result))
        self.recording.ops.append(op)
        if op.shape is not None:
            origin, params = _origin((args, kwargs))
            return Value(name, op.shape, origin, params)
        if op.several:
            return Several(name)
        return result


def record_fx(graph_module: torch.fx.GraphModule, x: torch.Tensor) -> Recording:
    recorder = _FxRecorder(graph_module)
    recorder.run(x)
    return recorder.recording


# ---------------------------------------------------------------------- tracing with forward hooks


class _HookRecorder(TorchFunctionMode):
    """Runs the model eagerly: ``torch.nn`` modules recorded by forward hooks, every other torch
    function and tensor method called outside them by this mode."""

    def __init__(self, root: nn.Module):
        super().__init__()
        self.root = root
        self.names = _Names()
        self.recording = Recording()
        self.depth = 0
        self.busy = False
        self.values: dict[int, Value | Several] = {}
        self.alive: list[object] = []  # every recorded tensor stays alive, so that ids stay unique
        self.parameters = {id(p): name for name, p in root.named_parameters()}
        self.buffers = {id(b): name for name, b in root.named_buffers()}
        self.paths = {id(m): path for path, m in root.named_modules(remove_duplicate=False) if path}

    # -- arguments and results
    def _argument(self, value: object) -> object:
        if isinstance(value, list | tuple):
            return type(value)(self._argument(v) for v in value) if not hasattr(value, "_fields") \
                else tuple(self._argument(v) for v in value)
        if isinstance(value, dict):
            return {k: self._argument(v) for k, v in value.items()}
        if not isinstance(value, torch.Tensor):
            return value
        known = self.values.get(id(value))
        if known is not None:
            return known
        if id(value) in self.parameters:
            name = self.parameters[id(value)]
            return Value(name, _tensor_shape(value), "parameter", frozenset({name}))
        if id(value) in self.buffers:
            return Value(self.buffers[id(value)], _tensor_shape(value), "buffer")
        return Value("constant", _tensor_shape(value), "constant")

    def record_calls(self, op: Op, result: object) -> None:
        self.recording.ops.append(op)
        origin, params = _origin((op.args, op.kwargs))
        if isinstance(result, torch.Tensor):
            self.values[id(result)] = Value(op.name, op.shape, origin, params)
            self.alive.append(result)
        elif op.several:
            # what fx records as operator.getitem nodes: one per tensor of the result
            for index, item in enumerate(result):
                if isinstance(item, torch.Tensor):
                    name = self.names("getitem", module=False)
                    self.recording.ops.append(Op(name, "function", "getitem", "operator.getitem",
                                                 (Several(op.name), index), {}, _tensor_shape(item)))
                    self.values[id(item)] = Value(name, _tensor_shape(item), origin, params)
                    self.alive.append(item)

    # -- the function mode
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.depth == 0 and not self.busy:
            self.busy = True
            try:
                key, label = _function_label(func)
                call = "method" if label.startswith("Tensor.") else "function"
                op = Op(self.names(key, module=False), call, key, label, self._argument(args),
                        self._argument(kwargs), _tensor_shape(result), _several(result))
                self.record_calls(op, result)
            finally:
                self.busy = False
        return result

    # -- the hooks
    def _before(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.depth += 1

    def _after(self, module: nn.Module, args: tuple, kwargs: dict, result: object) -> None:
        self.depth -= 1
        if self.depth == 0 and not self.busy:
            self.busy = True
            try:
                path = self.paths.get(id(module), type(module).__name__.lower())
                op = Op(self.names(path, module=True), "module", type(module).__name__, _module_label(module),
                        self._argument(args), self._argument(kwargs), _tensor_shape(result), _several(result),
                        module, path)
                self.record_calls(op, result)
            finally:
                self.busy = False

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        leaf = torch.fx.Tracer().is_leaf_module
        handles = []
        try:
            for path, module in self.root.named_modules():
                if path and leaf(module, path):
                    handles.append(module.register_forward_pre_hook(self._before, with_kwargs=True))
                    handles.append(module.register_forward_hook(self._after, with_kwargs=True))
            yield
        finally:
            for handle in handles:
                handle.remove()


def record_hooks(root: nn.Module, x: torch.Tensor) -> Recording:
    recorder = _HookRecorder(root)
    recorder.values[id(x)] = Value(NETWORK_INPUT, _tensor_shape(x))
    recorder.alive.append(x)
    with recorder.hooked(), recorder:
        result = root(x)
    recorder.recording.outputs = [v for v in flatten_arguments(recorder._argument(result)) if isinstance(v, Value)]
    return recorder.recording


# ---------------------------------------------------------------------- running a recorder


_LIBRARIES = (Path(torch.__file__).resolve().parent, Path(__file__).resolve().parent)


def _where_in_user_code(error: BaseException) -> str:
    """`` (at net.py:14, in forward)`` -- the last frame of the traceback outside PyTorch and npconv."""
    outside = [frame for frame in traceback.extract_tb(error.__traceback__)
               if not frame.filename.startswith("<")
               and not any(Path(frame.filename).resolve().is_relative_to(library) for library in _LIBRARIES)]
    if not outside:
        return ""
    frame = outside[-1]
    return f" (at {Path(frame.filename).name}:{frame.lineno}, in {frame.name})"


def error_message(error: BaseException) -> str:
    """The first line of what PyTorch said, with the root cause when fx wrapped it."""
    while error.__cause__ is not None and "ShapeProp" in str(error):
        error = error.__cause__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ") + _where_in_user_code(error)


def model_device(module: nn.Module) -> torch.device:
    """Where the model's parameters are (an input is made there): the CPU, or ``meta`` for a model built
    with ``torch.device("meta")`` -- which needs no memory for its weights."""
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if first is None else first.device


def random_input(input_shape: Shape, device: torch.device) -> torch.Tensor:
    """Seeded random float32 data (meta tensors have no values to fill)."""
    if device.type == "meta":
        return torch.empty(input_shape, device=device)
    return torch.randn(input_shape, generator=torch.Generator().manual_seed(0)).to(device)


def record_calls(recorder: Callable[[torch.Tensor], Recording], input_shape: Shape, device: torch.device,
            argument: str) -> tuple[Recording, str]:
    """Run ``recorder`` on fake tensors, else on random data: the recording and which it took.

    A model that fails on random data of ``input_shape`` too is refused naming ``argument``.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
            return recorder(torch.empty(input_shape, device=device)), "fake tensors (shapes only)"
    except Exception:  # fake tensors cannot decide data-dependent control flow: run it for real
        pass
    if device.type != "meta":
        memory.ensure_fits(4 * math.prod(input_shape), f"a random float32 input of shape {input_shape}", argument)
    try:
        with torch.no_grad():
            return recorder(random_input(input_shape, device)), "one forward pass on random data"
    except Exception as error:
        raise ConvArgumentError(argument, "a shape the model accepts", f"{input_shape}: {error_message(error)}") from None


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """``module.eval()`` for the trace (dropout off, batch-norm on its running statistics), then as it was."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training
