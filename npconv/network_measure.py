"""Measure a network: run every convolution and linear layer with counting on, compare with the formulas.

Each weighted layer (conv2d, depthwise, pointwise, separable, and linear as the
1x1 convolution of a 1x1 input that it is) runs once, at full resolution, on
random float32 data of its input shape through one method of
:mod:`npconv.kernels`, and the counts the kernel tallied are set beside the
closed forms of its row.  Layers run one at a time on fresh random inputs: a
count depends on shapes, not on values, so the real activations are not
needed, and only one layer's arrays are alive at once.

Batch-norm, pooling, residual additions and ReLU are not run: their counts are
outside the headline ``mults`` (see :mod:`npconv.network`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npconv import api, kernels
from npconv.counts import Counts, SeparableCounts
from npconv.errors import ConvArgumentError, ConvMemoryError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.network import LayerCount, Network


@dataclass(frozen=True)
class MeasuredLayer:
    """One layer's measured counts beside its formulas."""

    row: LayerCount
    counts: Counts | SeparableCounts
    seconds: float

    @property
    def formula_mults(self) -> int:
        return self.row.value("mults", self.counts.convention)

    @property
    def formula_adds(self) -> int:
        return self.row.value("adds", self.counts.convention)

    @property
    def matches(self) -> bool:
        return (self.counts.mults, self.counts.adds) == (self.formula_mults, self.formula_adds)


@dataclass(frozen=True)
class Measurement:
    """Every weighted layer of a network, measured with one method in one convention."""

    network: str
    method: str
    convention: str
    layers: tuple[MeasuredLayer, ...]
    seconds: float

    @property
    def mults(self) -> int:
        return sum(m.counts.mults for m in self.layers)

    @property
    def adds(self) -> int:
        return sum(m.counts.adds for m in self.layers)

    @property
    def formula_mults(self) -> int:
        return sum(m.formula_mults for m in self.layers)

    @property
    def formula_adds(self) -> int:
        return sum(m.formula_adds for m in self.layers)

    @property
    def matches(self) -> bool:
        return all(m.matches for m in self.layers)

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "convention": self.convention,
            "seconds": round(self.seconds, 3),
            "matches": self.matches,
            "totals": {"measured": {"mults": self.mults, "adds": self.adds},
                       "formula": {"mults": self.formula_mults, "adds": self.formula_adds}},
            "layers": [
                {"name": m.row.name, "measured": {"mults": m.counts.mults, "adds": m.counts.adds},
                 "formula": {"mults": m.formula_mults, "adds": m.formula_adds},
                 "seconds": round(m.seconds, 4), "matches": m.matches}
                for m in self.layers
            ],
        }


def estimated_seconds(network: Network, method: str) -> float | None:
    """A rough run time for an interpreted method (None for the compiled ones: they are fast)."""
    return kernels.estimated_seconds(method, network.totals().mults["dense"])


def choose_method(network: Network, method: str | None, argument: str = "method") -> str:
    """``method``, or :func:`npconv.kernels.fastest_available`.

    Without a compiled method an interpreted one must be asked for by name:
    the refusal says how long the reference kernel would take.
    """
    if method is not None:
        try:
            kernels.load(method)  # an unknown name is refused, naming the methods there are
        except ConvArgumentError as error:
            raise ConvArgumentError(argument, error.expected, error.got) from None
        return method
    fastest = kernels.fastest_available()
    if fastest is not None:
        return fastest
    estimate = estimated_seconds(network, "reference")
    raise ConvArgumentError(
        argument,
        f"a method to measure with: no fast method ({' or '.join(kernels.FASTEST_FIRST)}) is available, and "
        f"the reference kernel (about {kernels.declaration('reference').mults_per_second:,} mults/s) would "
        "take about "
        f"{_duration(estimate)} for {network.name}; ask for it by name to run it anyway",
        "no method",
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


def choose_convention(method: str, convention: str | None, argument: str = "convention") -> str:
    """``convention``, checked against what ``method`` executes, or the method's default."""
    executes = kernels.load(method).CONVENTIONS
    if convention is None:
        return executes[0]
    if convention not in executes:
        raise ConvArgumentError(argument, f"a convention method {method!r} executes ({', '.join(executes)})",
                                repr(convention))
    return convention


def _random(rng: np.random.Generator, shape: tuple[int, ...] | None) -> np.ndarray | None:
    return None if shape is None else rng.standard_normal(shape, dtype=np.float32)


def _run_layer(geometry: ConvGeometry | SeparableGeometry, method: str, convention: str,
               rng: np.random.Generator, workspace_limit: int | None) -> Counts | SeparableCounts:
    """Run one layer on random inputs of its shapes; the kernel's counts."""
    x = _random(rng, geometry.input_shape)
    run = {"method": method, "count": convention, "workspace_limit": workspace_limit}
    if isinstance(geometry, SeparableGeometry):
        dw, pw = geometry.depthwise, geometry.pointwise
        _, counts = api.separable_conv2d(
            x, _random(rng, dw.weight_shape), _random(rng, pw.weight_shape),
            _random(rng, dw.bias_shape), _random(rng, pw.bias_shape),
            stride=dw.stride, padding=dw.padding, dilation=dw.dilation, **run,
        )
        return counts
    _, counts = api.conv2d(
        x, _random(rng, geometry.weight_shape), _random(rng, geometry.bias_shape),
        stride=geometry.stride, padding=geometry.padding, dilation=geometry.dilation,
        groups=geometry.groups, **run,
    )
    return counts


def measure(network: Network, method: str, convention: str | None = None, *, seed: int = 0,
            workspace_limit: int | None = None, limit_argument: str = "workspace_limit",
            progress: Callable[[int, int, LayerCount], None] | None = None) -> Measurement:
    """Run every weighted layer of ``network`` through ``method`` with counting on.

    ``workspace_limit`` (bytes; None: the process-wide limit) is passed to
    every call; a layer that needs more is refused naming the layer and
    ``limit_argument``.  ``progress(i, n, row)`` is called before the i-th of
    n layers runs.
    """
    convention = choose_convention(method, convention)
    rng = np.random.default_rng(seed)
    weighted = [row for row in network.rows if row.is_weighted]
    measured = []
    started = time.perf_counter()
    for index, row in enumerate(weighted):
        if progress is not None:
            progress(index, len(weighted), row)
        begin = time.perf_counter()
        try:
            counts = _run_layer(row.geometry, method, convention, rng, workspace_limit)
        except ConvMemoryError as error:
            raise ConvMemoryError(f"{limit_argument} (layer {row.name}, method {method!r})",
                                  error.expected, error.got) from None
        measured.append(MeasuredLayer(row, counts, time.perf_counter() - begin))
    return Measurement(network.name, method, convention, tuple(measured), time.perf_counter() - started)
