"""The same network in PyTorch: its parameter count and ``FlopCounterMode`` figure beside npconv's.

:func:`build_module` turns a :class:`~npconv.network.Network` into
``torch.nn`` modules layer by layer, from the resolved geometry of each row
(so padding that PyTorch's layers cannot express -- TensorFlow's asymmetric
``"same"`` at stride 2 -- becomes an explicit pad in front).  No torchvision.

:func:`compare` runs one forward pass under
``torch.utils.flop_counter.FlopCounterMode`` -- on PyTorch's ``meta`` device,
which propagates shapes without computing, since FlopCounterMode counts from
shapes anyway -- and :func:`explain` says where the
figures differ from npconv's and why:

* FlopCounterMode counts ``2 x`` the multiply-accumulates of every convolution
  and matrix product, from their shapes -- npconv's *dense* mults times 2 --
  and nothing else: no bias additions, no batch-norm, pooling, residual
  additions or activations;
* npconv's FLOPs are mults + adds, where an output summing T products and no
  bias takes T - 1 additions: so npconv's dense FLOPs fall short of torch's
  figure by one addition per output of every bias-free weighted layer.

PyTorch is imported by this module: import it only when asked to compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry, normalize_padding
from npconv.network import (
    LayerCount,
    Network,
    NetworkTotals,
    ResolvedFrom,
    ResolvedLayer,
    ResolvedResidual,
)


class ResidualBlock(nn.Module):
    """``main(x) + shortcut(x)``."""

    def __init__(self, main: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.main, self.shortcut = main, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


def _padded(geometry: ConvGeometry, make: Callable[[tuple[int, int]], nn.Module], pad_value: float = 0.0) -> nn.Module:
    """``make(padding)`` with PyTorch's symmetric padding, or behind an explicit pad when it cannot be."""
    (top, bottom), (left, right) = geometry.padding
    symmetric = top == bottom and left == right
    if symmetric:
        try:
            return make((top, left))
        except (ValueError, RuntimeError):  # e.g. pooling refuses padding > kernel / 2
            pass
    return nn.Sequential(nn.ConstantPad2d((left, right, top, bottom), pad_value), make((0, 0)))


def _conv(g: ConvGeometry) -> nn.Module:
    return _padded(g, lambda padding: nn.Conv2d(
        g.in_channels, g.out_channels, (g.kernel_h, g.kernel_w), stride=g.stride, padding=padding,
        dilation=g.dilation, groups=g.groups, bias=g.bias))


class PadModule(nn.Module):
    """``torch.nn.functional.pad`` with npconv's per-side padding ``((top, bottom), (left, right))``."""

    def __init__(self, padding: tuple[tuple[int, int], tuple[int, int]], mode: str, value: float):
        super().__init__()
        (top, bottom), (left, right) = padding
        self.amounts, self.mode, self.value = (left, right, top, bottom), mode, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(x, self.amounts, self.mode, self.value if self.mode == "constant" else None)


class ReshapeModule(nn.Module):
    """``x.reshape(shape)``."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.shape)


#: npconv's activation functions (:data:`npconv.network.ACTIVATION_FUNCTIONS`) as torch.nn modules.
ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu6": nn.ReLU6, "hardtanh": nn.Hardtanh, "gelu": nn.GELU, "silu": nn.SiLU, "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid, "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU, "selu": nn.SELU, "celu": nn.CELU, "mish": nn.Mish, "softplus": nn.Softplus,
    "softsign": nn.Softsign, "tanhshrink": nn.Tanhshrink, "softmax": lambda: nn.Softmax(dim=1),
    "log_softmax": lambda: nn.LogSoftmax(dim=1),
}


def _graph_module(row: LayerCount) -> nn.Module:
    """Modules of the kinds a graph adds (pad, dropout, reshape, the activations)."""
    if row.kind == "pad":
        layer = row.layer
        return PadModule(normalize_padding(layer.padding), layer.mode, float(layer.value))
    if row.kind == "dropout":
        return nn.Dropout(row.layer.p)
    if row.kind == "reshape":
        return ReshapeModule(row.output_shape)
    return ACTIVATION_MODULES[row.kind]()


def _module(row: LayerCount) -> nn.Module:
    if row.kind in ("pad", "dropout", "reshape", *ACTIVATION_MODULES):
        return _graph_module(row)
    g = row.geometry
    if row.kind == "linear":
        return nn.Linear(g.in_channels, g.out_channels, bias=g.bias)
    if isinstance(g, SeparableGeometry):
        return nn.Sequential(_conv(g.depthwise), _conv(g.pointwise))
    if row.is_weighted:
        return _conv(g)
    kernel = (g.kernel_h, g.kernel_w) if g is not None else None
    if row.kind == "maxpool":
        return _padded(g, lambda padding: nn.MaxPool2d(kernel, g.stride, padding), float("-inf"))
    if row.kind == "avgpool":
        return _padded(g, lambda padding: nn.AvgPool2d(kernel, g.stride, padding))
    simple = {
        "global_avgpool": lambda: nn.AdaptiveAvgPool2d(1),
        "flatten": nn.Flatten,
        "relu": nn.ReLU,
        "batchnorm": lambda: (nn.BatchNorm2d if len(row.input_shape) == 4 else nn.BatchNorm1d)(
            row.input_shape[1]),
    }
    return simple[row.kind]()


class GraphBlock(nn.Module):
    """Layers that read named outputs: each step computes one named output from the ones it names.

    ``steps`` are ``(output name, input names, how, module index)``; ``how`` is
    ``"module"`` (``modules[index]`` on the one input), ``"add"``, ``"concat:<axis>"``
    or ``"from"`` (the input itself).  A module applied twice appears twice in
    ``modules``: PyTorch counts its parameters once.
    """

    def __init__(self, input_name: str, steps: list[tuple[str, tuple[str, ...], str, int]],
                 modules: list[nn.Module]):
        super().__init__()
        self.input_name, self.steps, self.layers = input_name, steps, nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = {self.input_name: x}
        for output, inputs, how, index in self.steps:
            values = [outputs[name] for name in inputs]
            if how == "module":
                x = self.layers[index](values[0])
            elif how == "add":
                x = values[0]
                for value in values[1:]:
                    x = x + value
            elif how.startswith("concat:"):
                x = torch.cat(values, dim=int(how.removeprefix("concat:")))
            else:
                x = values[0]
            outputs[output] = x
        return x


def _is_chain(resolved: tuple[ResolvedLayer, ...], input_name: str) -> bool:
    """Every item reads the previous one's output: an ``nn.Sequential`` will do."""
    previous = input_name
    for item in resolved:
        if isinstance(item, ResolvedFrom):
            return False
        if isinstance(item, LayerCount):
            if item.inputs not in ((), (previous,)) or item.shares or item.kind in ("add", "concat", "uncounted"):
                return False
            previous = item.name
        else:
            if item.input_name != previous:
                return False
            previous = item.add.name
    return True


def _graph(resolved: tuple[ResolvedLayer, ...], input_name: str) -> GraphBlock:
    steps: list[tuple[str, tuple[str, ...], str, int]] = []
    modules: list[nn.Module] = []
    by_row: dict[str, nn.Module] = {}
    current = input_name
    for item in resolved:
        if isinstance(item, ResolvedFrom):
            steps.append((item.source, (item.source,), "from", -1))
            current = item.source
            continue
        if isinstance(item, ResolvedResidual):
            module, output, inputs = ResidualBlock(_sequence(item.main, item.input_name),
                                                   _sequence(item.shortcut, item.input_name)), \
                item.add.name, (item.input_name,)
        elif item.kind == "uncounted":
            raise ConvArgumentError("--compare", "a network without uncounted operations (PyTorch cannot "
                                    "rebuild them from npconv's description)", f"{item.operation} ({item.name})")
        elif item.kind in ("add", "concat"):
            how = "add" if item.kind == "add" else f"concat:{item.layer.axis % len(item.output_shape)}"
            steps.append((item.name, item.inputs, how, -1))
            current = item.name
            continue
        else:
            module = by_row[item.shares] if item.shares else _module(item)
            by_row[item.name] = module
            output, inputs = item.name, item.inputs or (current,)
        steps.append((output, inputs, "module", len(modules)))
        modules.append(module)
        current = output
    return GraphBlock(input_name, steps, modules)


def _sequence(resolved: tuple[ResolvedLayer, ...], input_name: str = "input") -> nn.Module:
    if not _is_chain(resolved, input_name):
        return _graph(resolved, input_name)
    modules = []
    for item in resolved:
        if isinstance(item, ResolvedResidual):
            modules.append(ResidualBlock(_sequence(item.main, item.input_name),
                                         _sequence(item.shortcut, item.input_name)))
        else:
            modules.append(_module(item))
    return nn.Sequential(*modules)


def build_module(network: Network) -> nn.Module:
    """``network`` as ``torch.nn`` modules (an empty sequence is the identity; a graph, a :class:`GraphBlock`)."""
    return _sequence(network.resolved)


@dataclass(frozen=True)
class TorchComparison:
    """What PyTorch reports for the same network."""

    torch_version: str
    params: int
    #: buffers other than batch-norm's ``num_batches_tracked`` counters
    buffers: int
    batch_counters: int
    #: ``FlopCounterMode.get_total_flops()`` for one forward pass
    flops: int
    flops_by_operator: dict[str, int]
    #: what was counted
    subject: str = "the same layers as torch.nn modules (no torchvision)"

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _comparison(module: nn.Module, counter: FlopCounterMode, subject: str) -> TorchComparison:
    buffers = dict(module.named_buffers())
    counters = [name for name in buffers if name.endswith("num_batches_tracked")]
    by_operator = {str(op).removeprefix("aten."): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return TorchComparison(
        torch_version=torch.__version__,
        params=sum(p.numel() for p in module.parameters()),
        buffers=sum(b.numel() for name, b in buffers.items() if name not in counters),
        batch_counters=len(counters),
        flops=int(counter.get_total_flops()),
        flops_by_operator=by_operator,
        subject=subject,
    )


#: What PyTorch raises for a network or an input it cannot build or run (a size beyond what its
#: kernels index, a shape its layers refuse): caught where torch is called, and named.
TORCH_ERRORS = (RuntimeError, ValueError, TypeError, OverflowError, IndexError)


def _refused(error: Exception, argument: str, subject: str) -> ConvArgumentError:
    reason = " ".join(str(error).split()) or type(error).__name__
    return ConvArgumentError(argument, f"a network PyTorch can build and run ({subject} cannot)",
                             f"{type(error).__name__}: {reason}")


def compare(network: Network, argument: str = "network") -> TorchComparison:
    """Build ``network`` in PyTorch, count its parameters and its FlopCounterMode FLOPs.

    A network PyTorch refuses to build or run is a :class:`~npconv.errors.ConvArgumentError` naming
    ``argument`` with PyTorch's reason.
    """
    try:
        with torch.device("meta"):  # shapes only: no arithmetic, no memory, and all FlopCounterMode needs
            module = build_module(network).eval()
            x = torch.empty(network.input_shape)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
    except TORCH_ERRORS as error:
        raise _refused(error, argument, network.name) from None
    return _comparison(module, counter, TorchComparison.subject)


def compare_module(module: nn.Module, input_shape: tuple[int, ...], subject: str,
                   argument: str = "module") -> TorchComparison:
    """A module of the user's own (in eval mode): its parameters and FlopCounterMode FLOPs on ``input_shape``.

    On fake tensors (shapes only), or on random data where its control flow needs values; what
    PyTorch raises on the real pass is a :class:`~npconv.errors.ConvArgumentError` naming ``argument``.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    from npconv.torch_trace import model_device, random_input

    device = model_device(module)
    training = {m: m.training for m in module.modules()}
    module.eval()
    try:
        try:
            with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
                x = torch.empty(input_shape, device=device)
                with FlopCounterMode(display=False) as counter:
                    module(x)
        except Exception:  # control flow on values: count a real forward pass
            x = random_input(input_shape, device)
            try:
                with torch.no_grad(), FlopCounterMode(display=False) as counter:
                    module(x)
            except TORCH_ERRORS as error:
                raise _refused(error, argument, subject) from None
    finally:
        for m, mode in training.items():
            m.training = mode
    return _comparison(module, counter, subject)


def explain(comparison: TorchComparison, totals: NetworkTotals, rows: tuple[LayerCount, ...]) -> list[str]:
    """Sentences setting torch's figures beside npconv's, each difference accounted for."""
    c, t = comparison, totals
    lines = [f"PyTorch {c.torch_version}, {c.subject}:"]
    same = "equal" if c.params == t.params else f"DIFFERENT by {c.params - t.params:+,}"
    lines.append(f"  parameters      torch {c.params:,}   npconv {t.params:,}   ({same})")
    if c.buffers or t.buffers:
        lines.append(f"  buffers         torch {c.buffers:,}   npconv {t.buffers:,}   batch-norm running mean "
                     f"and variance (torch also keeps {c.batch_counters} num_batches_tracked counters)")
    twice = 2 * t.mults["dense"]
    operators = ", ".join(f"{op} {n:,}" for op, n in c.flops_by_operator.items())
    lines.append(f"  FlopCounterMode {c.flops:,}   ({operators})")
    verdict = "equal" if c.flops == twice else f"DIFFERENT by {c.flops - twice:+,}"
    lines.append(f"    vs 2 x npconv's dense mults = 2 x {t.mults['dense']:,} = {twice:,} ({verdict}): torch counts "
                 "2 FLOPs per multiply-accumulate of every conv and linear layer, from the shapes -- padded "
                 "taps included, bias additions ignored")
    flops = t.flops["dense"]
    bias_free_outputs = sum(r.value("mults") - r.value("adds") for r in rows if r.is_weighted)
    if bias_free_outputs:
        lines.append(f"    vs npconv's FLOPs = dense mults + adds = {flops:,}: {twice - flops:,} fewer, because an "
                     f"output that sums T products and no bias takes T - 1 additions, and the bias-free conv "
                     f"and linear layers have {bias_free_outputs:,} outputs")
    else:
        lines.append(f"    vs npconv's FLOPs = dense mults + adds = {flops:,}: the same, because every conv and "
                     "linear layer has a bias, whose addition stands in for the one torch counts per product")
    if t.mults["effective"] != t.mults["dense"]:
        lines.append(f"    skipping the padded taps (effective), npconv counts {t.mults['effective']:,} mults; "
                     "torch's figure does not look at padding")
    ignored = ["{} {}".format(kind, " + ".join(f"{n:,} {op}" for op, n in ops.items()))
               for kind, ops in t.other.items()]
    if ignored:
        lines.append(f"    in neither torch's figure nor npconv's mults: {'; '.join(ignored)}")
    if t.uncounted:
        lines.append(f"    npconv's counts leave out {sum(t.uncounted.values()):,} uncounted operations; torch's "
                     "figure includes any convolution or matrix product among them")
    return lines


def agrees(comparison: TorchComparison, totals: NetworkTotals) -> bool:
    """Same parameters, and torch's FLOPs exactly twice npconv's dense mults."""
    return comparison.params == totals.params and comparison.flops == 2 * totals.mults["dense"]
