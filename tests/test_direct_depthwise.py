"""The direct kernel's depthwise path (groups == C_in, any depth multiplier): outputs against the
reference kernel and PyTorch, effective counts exactly, the same tallies on any thread count, NaN,
memory layouts, ``out=`` and one compiled variant per dtype."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npconv
from npconv.geometry import ConvGeometry
from npconv.layerset import BENCHMARK_LAYERS

from oracles import (
    assert_conv_close,
    assert_counts_equal_formulas,
    numpy_conv2d,
    reference_conv2d,
    torch_conv2d,
)
from strategies import layers, memory_layouts

numba = pytest.importorskip("numba")

DTYPES = [np.float32, np.float64]
LIMIT = 2**30

# multiplier 1..3, kernels 1..5 a side, stride and dilation 1..3, padding in every form
# ("same", asymmetric), odd sizes from "just fits" up: small enough for the reference loops
depthwise_layers = layers(depthwise=True, max_group_channels=3, max_channels=4, max_kernel=5, max_extra=7)


def direct_depthwise(layer, dtype, count, out=None, arrays=None):
    from npconv.kernels import direct

    x, w, b = layer.arrays(dtype) if arrays is None else arrays
    return direct.conv2d(x, w, b, layer.geometry, count=count, workspace_limit=LIMIT, loop="depthwise", out=out)


@given(layer=depthwise_layers, dtype=st.sampled_from(DTYPES))
def test_matches_the_reference_and_counts_the_effective_formula_exactly(layer, dtype):
    x, w, b = layer.arrays(dtype)
    g = layer.geometry
    y, counts = direct_depthwise(layer, dtype, count=True)
    fast, none = direct_depthwise(layer, dtype, count=False)
    assert y.dtype == dtype and none is None
    assert_conv_close(y, x, w, b, g, oracle=reference_conv2d)
    np.testing.assert_array_equal(y, fast)  # counting and fast are the same code
    assert_counts_equal_formulas(counts, g, "direct", "effective")


@given(layer=depthwise_layers, dtype=st.sampled_from(DTYPES))
def test_matches_torch(layer, dtype):
    pytest.importorskip("torch")
    x, w, b = layer.arrays(dtype)
    y, _ = direct_depthwise(layer, dtype, count=False)
    assert_conv_close(y, x, w, b, layer.geometry, oracle=torch_conv2d)


def test_direct_sends_depthwise_layers_to_their_own_loops():
    from npconv.kernels.direct import LOOPS, choose_loop

    assert "depthwise" in LOOPS
    assert choose_loop(BENCHMARK_LAYERS["depthwise 3x3"]) == "depthwise"
    assert choose_loop(BENCHMARK_LAYERS["resnet 3x3"]) != "depthwise"


def test_the_depthwise_loops_refuse_a_standard_layer():
    from npconv.kernels import direct

    g = ConvGeometry.from_shapes((1, 4, 5, 5), (4, 2, 3, 3), None, groups=2)
    x, w = np.ones(g.input_shape), np.ones(g.weight_shape)
    with pytest.raises(ValueError, match=r"^loop: "):
        direct.conv2d(x, w, None, g, workspace_limit=LIMIT, loop="depthwise")


@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (5, 1), (3, 3)])
def test_every_path_of_a_padded_layer(kernel, stride):
    """The fused 3x3 rows (stride 1 and 2), the tap-by-tap rows, border columns and corners."""
    rng = np.random.default_rng(2)
    for bias in (True, False):
        x = rng.standard_normal((2, 3, 13, 17))
        w = rng.standard_normal((6, 1, kernel, kernel))
        b = rng.standard_normal(6) if bias else None
        g = ConvGeometry.from_shapes(x.shape, w.shape, None if b is None else b.shape, stride=stride,
                                     padding=((1, 2), (2, 1)), groups=3)
        y, counts = npconv.conv2d(x, w, b, stride=stride, padding=((1, 2), (2, 1)), groups=3, method="direct",
                                  count=True)
        assert_conv_close(y, x, w, b, g, oracle=reference_conv2d)
        assert_counts_equal_formulas(counts, g, "direct", "effective")


@pytest.mark.parametrize("height,width", [(1, 1), (2, 3), (3, 2), (3, 3), (4, 4), (5, 8), (13, 17)])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_a_same_padded_3x3_layer_sums_its_border_rows_and_columns_in_the_row_passes(height, width, multiplier):
    """Padding 1 at stride 1: the border rows' two-kernel-row pass and the edge outputs summed
    with each row (corners included), from planes with no interior row or column upwards."""
    rng = np.random.default_rng(height * 100 + width)
    for bias in (True, False):
        for dtype in DTYPES:
            x = rng.standard_normal((2, 3, height, width)).astype(dtype)
            w = rng.standard_normal((3 * multiplier, 1, 3, 3)).astype(dtype)
            b = rng.standard_normal(3 * multiplier).astype(dtype) if bias else None
            g = ConvGeometry.from_shapes(x.shape, w.shape, None if b is None else b.shape, padding=1, groups=3)
            y, counts = npconv.conv2d(x, w, b, padding=1, groups=3, method="direct", count=True)
            assert_conv_close(y, x, w, b, g, oracle=reference_conv2d)
            assert_counts_equal_formulas(counts, g, "direct", "effective")


def test_an_empty_batch_and_unreached_outputs():
    x = np.ones((0, 3, 4, 4))
    y, counts = npconv.depthwise_conv2d(x, np.ones((6, 1, 3, 3)), padding=1, method="direct", count=True)
    assert y.shape == (0, 6, 4, 4) and (counts.mults, counts.adds) == (0, 0)
    # stride 3 over padding 2 on a 1-pixel-wide image: most outputs see only padding
    x = np.full((1, 2, 4, 1), 2.0)
    w = np.ones((2, 1, 1, 1))
    expected = npconv.conv2d(x, w, stride=3, padding=2, groups=2, method="reference")
    np.testing.assert_array_equal(npconv.conv2d(x, w, stride=3, padding=2, groups=2, method="direct"), expected)
    y = npconv.conv2d(x, w, np.array([1.0, -1.0]), stride=3, padding=2, groups=2, method="direct")
    assert set(np.unique(y[:, 1])) <= {-1.0, 1.0}


@given(layer=depthwise_layers)
def test_the_tallies_do_not_depend_on_the_thread_count(layer):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        y1, one = direct_depthwise(layer, np.float64, count=True)
        numba.set_num_threads(2)
        y2, two = direct_depthwise(layer, np.float64, count=True)
    finally:
        numba.set_num_threads(before)
    assert (one.mults, one.adds) == (two.mults, two.adds)
    np.testing.assert_array_equal(y1, y2)  # each plane is one task: the same sums in the same order


@pytest.mark.parametrize("layout", ["fortran", "reversed", "read-only", "strided", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_any_memory_layout_gives_the_same_result(layout, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 9, 11)).astype(dtype)
    w = rng.standard_normal((8, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    expected = npconv.conv2d(x, w, b, padding=1, groups=4, method="direct")
    x2, w2 = memory_layouts(x)[layout], memory_layouts(w)[layout]
    y, counts = npconv.conv2d(x2, w2, b, padding=1, groups=4, method="direct", count=True)
    np.testing.assert_array_equal(y, expected)
    copied = sum(a.nbytes for a in (x2, w2) if not a.flags.c_contiguous)
    assert counts.workspace_bytes == copied


def test_nan_and_inf_propagate_as_ieee_but_padding_is_never_multiplied():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 8, 9))
    x[0, 0, 0, 0] = np.nan  # a corner: read by border outputs only
    x[0, 0, 4, 5] = np.nan  # the interior
    x[0, 1, 3, 0] = np.inf  # a border column
    w = rng.standard_normal((4, 1, 3, 3))
    w[3, 0, 1, 1] = 0.0  # inf * 0 is NaN
    for stride in (1, 2):
        g = ConvGeometry.from_shapes(x.shape, w.shape, None, stride=stride, padding=1, groups=2)
        y = npconv.conv2d(x, w, stride=stride, padding=1, groups=2, method="direct")
        expected = numpy_conv2d(x, w, None, g, convention="effective")
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
        np.testing.assert_array_equal(np.isinf(y), np.isinf(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-12, atol=1e-12)
    # a weight that is inf on a tap that only ever lands on the padding leaves the output finite
    w = np.ones((2, 1, 3, 3))
    w[:, 0, 0, 0] = np.inf
    y = npconv.conv2d(np.ones((1, 2, 1, 1)), w, padding=1, groups=2, method="direct")
    np.testing.assert_array_equal(y, np.ones((1, 2, 1, 1)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_is_written_into_and_checked(dtype):
    from npconv.kernels import direct

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 7)).astype(dtype)
    w = rng.standard_normal((6, 1, 3, 3)).astype(dtype)
    g = ConvGeometry.from_shapes(x.shape, w.shape, None, padding=1, groups=3)
    out = np.full(g.output_shape, np.nan, dtype=dtype)
    y, _ = direct.conv2d(x, w, None, g, workspace_limit=LIMIT, out=out)
    assert y is out
    np.testing.assert_array_equal(out, npconv.conv2d(x, w, padding=1, groups=3, method="direct"))
    for bad, message in [(np.empty((2, 6, 7, 6), dtype), "shape"), (np.empty(g.output_shape, np.float16), "dtype"),
                         (np.empty((2, 6, 7, 14), dtype)[..., ::2], "C-contiguous")]:
        with pytest.raises(ValueError, match=rf"^out: .*{message}"):
            direct.conv2d(x, w, None, g, workspace_limit=LIMIT, out=bad)


def test_one_compiled_variant_per_dtype():
    """Read-only and writable operands reach the kernel as the same Numba type."""
    from npconv.kernels import direct_depthwise

    rng = np.random.default_rng(6)
    for dtype in DTYPES:
        x = rng.standard_normal((1, 2, 5, 5)).astype(dtype)
        w = rng.standard_normal((2, 1, 3, 3)).astype(dtype)
        for writeable in (True, False):
            x.flags.writeable = w.flags.writeable = writeable
            npconv.conv2d(x, w, padding=1, groups=2, method="direct", count=writeable)
    assert len(direct_depthwise._planes.signatures) <= len(DTYPES)
