"""Hypothesis strategies for convolution layers, shared by every kernel's tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from npconv.geometry import ConvGeometry


@dataclass(frozen=True)
class Layer:
    """A valid layer as the public API takes it, plus its validated geometry."""

    input_shape: tuple[int, int, int, int]
    weight_shape: tuple[int, int, int, int]
    bias: bool
    stride: object
    padding: object
    dilation: object
    groups: int

    @property
    def geometry(self) -> ConvGeometry:
        return ConvGeometry.from_shapes(
            self.input_shape, self.weight_shape, (self.weight_shape[0],) if self.bias else None,
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
        )

    def arrays(self, dtype=np.float64, seed: int = 0):
        """Random ``x, weight, bias`` of this layer's shapes, values in [-1, 1)."""
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, self.input_shape).astype(dtype)
        w = rng.uniform(-1, 1, self.weight_shape).astype(dtype)
        b = rng.uniform(-1, 1, self.weight_shape[0]).astype(dtype) if self.bias else None
        return x, w, b

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


def _int_or_pair(low: int, high: int):
    return st.one_of(st.integers(low, high), st.tuples(st.integers(low, high), st.integers(low, high)))


def _padding(max_pad: int):
    side = st.integers(0, max_pad)
    return st.one_of(
        st.sampled_from(["valid", "same"]),
        side,
        st.tuples(side, side),
        st.tuples(st.tuples(side, side), st.tuples(side, side)),  # explicit, possibly asymmetric
    )


def _pads(padding) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Explicit per-side padding of a drawn padding argument (None for "same")."""
    if padding == "same":
        return None
    if padding == "valid":
        return (0, 0), (0, 0)
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    h, w = padding
    return (h, h) if isinstance(h, int) else h, (w, w) if isinstance(w, int) else w


@st.composite
def layers(draw, *, max_batch=2, max_groups=3, max_group_channels=3, max_kernel=4,
           max_stride=3, max_dilation=3, max_pad=3, max_extra=6, depthwise=False, pointwise=False):
    """Valid layers over stride, padding (all forms), dilation, groups, depth multiplier and bias.

    Sizes are chosen so that the kernel fits the padded input, from "just
    fits" up to ``max_extra`` pixels more.  ``depthwise=True`` draws
    ``groups == C_in`` with a depth multiplier; ``pointwise=True`` a 1x1,
    stride 1, unpadded layer.
    """
    batch = draw(st.integers(1, max_batch))
    if depthwise:
        groups = draw(st.integers(1, max_groups * max_group_channels))
        in_channels, out_channels = groups, groups * draw(st.integers(1, max_group_channels))
    else:
        groups = 1 if pointwise else draw(st.integers(1, max_groups))
        in_channels = groups * draw(st.integers(1, max_group_channels))
        out_channels = groups * draw(st.integers(1, max_group_channels))
    if pointwise:
        kernel, stride, dilation, padding = (1, 1), 1, 1, 0
    else:
        kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
        stride = draw(_int_or_pair(1, max_stride))
        dilation = draw(_int_or_pair(1, max_dilation))
        padding = draw(_padding(max_pad))
    dil = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    pads = _pads(padding)
    sizes = []
    for axis in range(2):
        span = dil[axis] * (kernel[axis] - 1) + 1
        smallest = 1 if pads is None else max(1, span - sum(pads[axis]))
        sizes.append(draw(st.integers(smallest, smallest + max_extra)))
    return Layer(
        input_shape=(batch, in_channels, sizes[0], sizes[1]),
        weight_shape=(out_channels, in_channels // groups, *kernel),
        bias=draw(st.booleans()),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
