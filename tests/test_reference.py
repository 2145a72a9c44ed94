"""The reference kernel on hand-computed examples, and both its counting conventions on one layer.
Outputs and counts over the whole layer space are tested for every method in test_cross_method.py."""

from __future__ import annotations

import numpy as np
import pytest

import npconv
from npconv.geometry import ConvGeometry

from oracles import assert_conv_close, scipy_conv2d, torch_conv2d

DTYPES = [np.float32, np.float64]


def test_dense_and_effective_give_the_same_output():
    layer_args = dict(stride=2, padding=((2, 0), (1, 3)), dilation=(1, 2), groups=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((6, 2, 3, 2))
    dense, dense_counts = npconv.conv2d(x, w, **layer_args, count="dense")
    effective, effective_counts = npconv.conv2d(x, w, **layer_args, count="effective")
    np.testing.assert_array_equal(dense, effective)
    assert effective_counts.mults < dense_counts.mults
    assert dense_counts.mults - effective_counts.mults == dense_counts.padded_mults


def test_count_true_uses_the_dense_convention_and_false_returns_only_y():
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    _y, counts = npconv.conv2d(x, w, padding=1, count=True)
    assert counts.convention == "dense"
    assert isinstance(npconv.conv2d(x, w, padding=1), np.ndarray)
    assert isinstance(npconv.conv2d(x, w, padding=1, count=np.False_), np.ndarray)


def test_hand_computed_example():
    # 1 channel, 3x3 input of 1..9, 2x2 kernel of ones, padding 1 at the top only:
    # rows of the padded input are [0,0,0], [1,2,3], [4,5,6], [7,8,9].
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 2, 2))
    y, counts = npconv.conv2d(x, w, np.array([0.5]), padding=((1, 0), (0, 0)), count="effective")
    expected = np.array([[1 + 2, 2 + 3], [1 + 2 + 4 + 5, 2 + 3 + 5 + 6], [4 + 5 + 7 + 8, 5 + 6 + 8 + 9]]) + 0.5
    np.testing.assert_array_equal(y[0, 0], expected)
    # 2 outputs with 2 real taps, 4 with 4 taps; with the bias every product is one addition
    assert (counts.mults, counts.adds) == (2 * 2 + 4 * 4, 2 * 2 + 4 * 4)
    _, dense = npconv.conv2d(x, w, padding=((1, 0), (0, 0)), count="dense")
    # dense: 6 outputs x 4 taps; no bias: 3 additions per output
    assert (dense.mults, dense.adds, dense.padded_mults) == (24, 18, 4)


def test_problem_example_counts_and_speed_budget():
    """The course problem's layer: 14x14x3, 256 5x5 filters (the README's default example)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 14, 14)).astype(np.float32)
    w = rng.standard_normal((256, 3, 5, 5)).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    y, counts = npconv.conv2d(x, w, b, count=True)
    assert y.shape == (1, 256, 10, 10)
    assert counts.mults == 1_920_000
    assert counts.adds == 1_920_000
    assert_conv_close(y, x, w, b, ConvGeometry.from_shapes(x.shape, w.shape, b.shape))


def test_scipy_oracle_agrees_with_torch_on_a_fixed_layer():
    """Guard the oracles themselves: two independent libraries, one answer."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, stride=(2, 1), padding=((1, 2), (0, 1)),
                                 dilation=(2, 1), groups=2)
    np.testing.assert_allclose(scipy_conv2d(x, w, b, g), torch_conv2d(x, w, b, g), rtol=1e-12, atol=1e-12)
