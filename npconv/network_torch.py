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
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.network import LayerCount, Network, NetworkTotals, ResolvedLayer, ResolvedResidual


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


def _module(row: LayerCount) -> nn.Module:
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


def _sequence(resolved: tuple[ResolvedLayer, ...]) -> nn.Sequential:
    modules = []
    for item in resolved:
        if isinstance(item, ResolvedResidual):
            modules.append(ResidualBlock(_sequence(item.main), _sequence(item.shortcut)))
        else:
            modules.append(_module(item))
    return nn.Sequential(*modules)


def build_module(network: Network) -> nn.Module:
    """``network`` as ``torch.nn`` modules (an empty sequence is the identity)."""
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

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def compare(network: Network, argument: str = "network") -> TorchComparison:
    """Build ``network`` in PyTorch, count its parameters and its FlopCounterMode FLOPs.

    A network PyTorch refuses to build or run (a size beyond what its kernels index, say) is a
    :class:`~npconv.errors.ConvArgumentError` naming ``argument`` with PyTorch's reason.
    """
    try:
        with torch.device("meta"):  # shapes only: no arithmetic, no memory, and all FlopCounterMode needs
            module = build_module(network).eval()
            x = torch.empty(network.input_shape)
        buffers = dict(module.named_buffers())
        counters = [name for name in buffers if name.endswith("num_batches_tracked")]
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
    except (RuntimeError, ValueError, TypeError, OverflowError, IndexError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ConvArgumentError(argument, f"a network PyTorch can build and run ({network.name} cannot)",
                                f"{type(error).__name__}: {reason}") from None
    by_operator = {str(op).removeprefix("aten."): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return TorchComparison(
        torch_version=torch.__version__,
        params=sum(p.numel() for p in module.parameters()),
        buffers=sum(b.numel() for name, b in buffers.items() if name not in counters),
        batch_counters=len(counters),
        flops=int(counter.get_total_flops()),
        flops_by_operator=by_operator,
    )


def explain(comparison: TorchComparison, totals: NetworkTotals, rows: tuple[LayerCount, ...]) -> list[str]:
    """Sentences setting torch's figures beside npconv's, each difference accounted for."""
    c, t = comparison, totals
    lines = [f"PyTorch {c.torch_version}, the same layers as torch.nn modules (no torchvision):"]
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
    return lines


def agrees(comparison: TorchComparison, totals: NetworkTotals) -> bool:
    """Same parameters, and torch's FLOPs exactly twice npconv's dense mults."""
    return comparison.params == totals.params and comparison.flops == 2 * totals.mults["dense"]
