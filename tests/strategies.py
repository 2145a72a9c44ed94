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
           max_stride=3, max_dilation=3, max_pad=3, max_extra=6, depthwise=False, pointwise=False,
           max_channels=None, max_size=None):
    """Valid layers over stride, padding (all forms), dilation, groups, depth multiplier and bias.

    Sizes are chosen so that the kernel fits the padded input, from "just
    fits" up to ``max_extra`` pixels more (and at most ``max_size``, unless
    the kernel needs more).  ``depthwise=True`` draws ``groups == C_in`` with
    a depth multiplier up to ``max_group_channels``; ``pointwise=True`` a
    1x1, stride 1, unpadded layer.  ``max_channels`` bounds C_in (and C_out
    of a non-depthwise layer) instead of ``groups x max_group_channels``, so
    that one group may have them all.
    """
    batch = draw(st.integers(1, max_batch))
    if depthwise:
        most = max_groups * max_group_channels if max_channels is None else max_channels
        groups = draw(st.integers(1, most))
        in_channels, out_channels = groups, groups * draw(st.integers(1, max_group_channels))
    else:
        groups = 1 if pointwise else draw(st.integers(1, max_groups))
        per_group = max_group_channels if max_channels is None else max(1, max_channels // groups)
        in_channels = groups * draw(st.integers(1, per_group))
        out_channels = groups * draw(st.integers(1, per_group))
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
        largest = smallest + max_extra if max_size is None else max(smallest, min(smallest + max_extra, max_size))
        sizes.append(draw(st.integers(smallest, largest)))
    return Layer(
        input_shape=(batch, in_channels, sizes[0], sizes[1]),
        weight_shape=(out_channels, in_channels // groups, *kernel),
        bias=draw(st.booleans()),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )


def cross_method_layers(*, max_batch=4, max_channels=16, max_size=20, depthwise=False):
    """The whole space the cross-method tests cover.

    Batch 1..4; C_in 1..16 (C_out too, except a depthwise layer's ``m x C_in``
    with depth multiplier m up to 4); H and W 1..20, from the size where the
    kernel just fits; kernels 1..5 a side, square or not; stride and
    dilation 1..3 per axis; padding in every form (int, pair, explicit
    asymmetric up to 3, "same", "valid"); groups dividing both channel
    counts; bias on or off.  Depthwise and pointwise layers are drawn as
    often as general ones, so the kernels' special paths for them run
    (``depthwise=True``: depthwise layers only).
    """
    shared = dict(max_batch=max_batch, max_channels=max_channels, max_size=max_size, max_extra=max_size)
    depthwise_layers = layers(depthwise=True, max_group_channels=4, max_kernel=5, **shared)
    if depthwise:
        return depthwise_layers
    return st.one_of(
        layers(max_groups=max_channels, max_kernel=5, **shared),
        depthwise_layers,
        layers(pointwise=True, **shared),
    )


def memory_layouts(a: np.ndarray) -> dict[str, np.ndarray]:
    """The values of ``a`` in awkward memory layouts: Fortran order, negative strides along every
    axis, read-only, every other element of a wider array, and (4-D) channels-last memory."""
    flip = (slice(None, None, -1),) * a.ndim
    read_only = a.copy()
    read_only.flags.writeable = False
    wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)
    wide[..., ::2] = a
    return {
        "fortran": np.asfortranarray(a),
        "reversed": np.ascontiguousarray(a[flip])[flip],
        "read-only": read_only,
        "strided": wide[..., ::2],
        "transposed": np.ascontiguousarray(np.moveaxis(a, 1, -1)).transpose(0, 3, 1, 2)
        if a.ndim == 4 else a,
    }
