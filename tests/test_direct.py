"""The Numba direct kernel's own paths: both loop nests, the 8-channel blocks, unreached outputs,
memory layouts and the copies they cost.  Outputs and counts over the whole layer space are
tested for every method in test_cross_method.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npconv
from npconv.errors import ConvMemoryError
from npconv.geometry import ConvGeometry
from npconv.layerset import BENCHMARK_LAYERS

from oracles import assert_conv_close, assert_counts_equal_formulas
from strategies import layers

numba = pytest.importorskip("numba")

DTYPES = [np.float32, np.float64]
METHOD = "direct"


def run(layer, dtype, count=False, seed=0):
    x, w, b = layer.arrays(dtype, seed)
    return (x, w, b), npconv.conv2d(x, w, b, **layer.kwargs(), method=METHOD, count=count)


# ---------------------------------------------------------------------- outputs


@given(layer=layers(pointwise=True, max_group_channels=20), dtype=st.sampled_from(DTYPES))
def test_pointwise_matches_scipy(layer, dtype):
    # up to 20 input channels: the 8-channel blocks and the single-channel remainder both run
    x, w, b = layer.arrays(dtype)
    y = npconv.pointwise_conv2d(x, w, b, method=METHOD)
    assert_conv_close(y, x, w, b, layer.geometry)


@given(layer=layers(max_groups=2, max_group_channels=19, max_kernel=3))
def test_wide_groups_use_channel_blocks_correctly(layer):
    (x, w, b), y = run(layer, np.float64)
    assert_conv_close(y, x, w, b, layer.geometry)


def test_unreached_outputs_are_the_bias_or_zero():
    # stride 3 over padding 2 on a 1-pixel-wide image: most outputs see only padding
    x = np.full((1, 2, 4, 1), 2.0)
    w = np.ones((3, 2, 1, 1))
    layer = dict(stride=3, padding=2)
    y = npconv.conv2d(x, w, **layer, method=METHOD)
    expected = npconv.conv2d(x, w, **layer, method="reference")
    np.testing.assert_array_equal(y, expected)
    y_bias = npconv.conv2d(x, w, np.array([1.0, -1.0, 5.0]), **layer, method=METHOD)
    assert set(np.unique(y_bias[:, 2])) <= {5.0, 9.0}


@pytest.mark.parametrize("layout", ["fortran", "negative stride", "strided view", "read-only"])
def test_any_memory_layout_gives_the_same_result(layout):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 7, 8))
    w = rng.standard_normal((4, 9, 3, 2))
    expected = npconv.conv2d(x, w, padding=1, method=METHOD)
    if layout == "fortran":
        x2, w2 = np.asfortranarray(x), np.asfortranarray(w)
    elif layout == "negative stride":
        x2, w2 = x[:, ::-1][:, ::-1], w[::-1][::-1]
    elif layout == "strided view":
        big = np.zeros((2, 18, 7, 16))
        big[:, ::2, :, ::2] = x
        x2, w2 = big[:, ::2, :, ::2], w
    else:
        x2, w2 = x.copy(), w.copy()
        x2.flags.writeable = w2.flags.writeable = False
    y, counts = npconv.conv2d(x2, w2, padding=1, method=METHOD, count=True)
    np.testing.assert_array_equal(y, expected)
    copied = (0 if x2.flags.c_contiguous else x.nbytes) + (0 if w2.flags.c_contiguous else w.nbytes)
    assert counts.workspace_bytes == copied  # the planes nest reads the weight in its own layout


@pytest.mark.parametrize("loop", ["pixels", "planes"])
@given(layer=layers(max_group_channels=10), dtype=st.sampled_from(DTYPES))
def test_each_loop_nest_matches_scipy_and_counts_exactly(loop, layer, dtype):
    """Each loop nest on every layer, whichever one choose_loop would pick."""
    from npconv.kernels import direct

    x, w, b = layer.arrays(dtype)
    g = layer.geometry
    y, counts = direct.conv2d(x, w, b, g, count=True, workspace_limit=2**30, loop=loop)
    fast, none = direct.conv2d(x, w, b, g, count=False, workspace_limit=2**30, loop=loop)
    assert y.dtype == dtype and none is None
    assert_conv_close(y, x, w, b, g)
    np.testing.assert_array_equal(y, fast)
    assert_counts_equal_formulas(counts, g, METHOD, "effective")


def test_the_loop_nest_is_chosen_by_row_length_stride_and_channels():
    from npconv.kernels.direct import choose_loop

    chosen = {name: choose_loop(g) for name, g in BENCHMARK_LAYERS.items()}
    assert chosen == {"seed 5x5": "pixels", "seed 5x5 p1": "pixels", "resnet 3x3": "planes", "stem s2": "pixels",
                      "depthwise 3x3": "depthwise", "pointwise 1x1": "planes", "large 7x7": "planes"}


@st.composite
def plane_layers(draw):
    """Standard and grouped (not depthwise) layers that run the planes nest's every path: more than
    one block of 16 output channels, kernels up to 7 (3 x 3 tap blocks and their remainders),
    interior rows and columns beside border ones, any stride, dilation and padding."""
    return draw(layers(max_batch=2, max_groups=2, max_group_channels=20, max_kernel=7, max_stride=2,
                       max_dilation=2, max_pad=3, max_extra=12))


@given(layer=plane_layers(), dtype=st.sampled_from(DTYPES))
def test_planes_match_scipy_and_count_exactly_on_larger_layers(layer, dtype, thread_count):
    from npconv.kernels import direct

    x, w, b = layer.arrays(dtype)
    g = layer.geometry
    runs = {}
    for threads in (1, 2):  # the rows are split into more bands on more threads
        with thread_count(threads):
            runs[threads] = direct.conv2d(x, w, b, g, count=True, workspace_limit=2**30, loop="planes")
    (y, counts), (y2, counts2) = runs[1], runs[2]
    fast, _ = direct.conv2d(x, w, b, g, count=False, workspace_limit=2**30, loop="planes")
    assert_conv_close(y, x, w, b, g)
    np.testing.assert_array_equal(y, fast)
    np.testing.assert_array_equal(y, y2)
    assert counts == counts2
    assert_counts_equal_formulas(counts, g, METHOD, "effective")


@pytest.mark.parametrize("loop", ["pixels", "planes"])
def test_out_receives_the_result(loop):
    from npconv.kernels import direct

    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 9, 7, 8)), rng.standard_normal((20, 9, 3, 3)), rng.standard_normal(20)
    g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, padding=1)
    out = np.full(g.output_shape, np.nan)
    y, counts = direct.conv2d(x, w, b, g, count=True, workspace_limit=2**30, loop=loop, out=out)
    expected, expected_counts = direct.conv2d(x, w, b, g, count=True, workspace_limit=2**30, loop=loop)
    assert y is out
    np.testing.assert_array_equal(out, expected)
    assert counts == expected_counts


@pytest.mark.parametrize("bad", ["shape", "dtype", "strided", "read-only", "list"])
def test_a_bad_out_is_refused_naming_it(bad):
    from npconv.errors import ConvArgumentError
    from npconv.kernels import direct

    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    g = ConvGeometry.from_shapes(x.shape, w.shape, None)
    out = {"shape": np.empty((1, 3, 4, 3)), "dtype": np.empty((1, 3, 3, 3), np.float32),
           "strided": np.empty((1, 3, 3, 6))[..., ::2], "read-only": np.empty((1, 3, 3, 3)),
           "list": [[0.0]]}[bad]
    if bad == "read-only":
        out.flags.writeable = False
    with pytest.raises(ConvArgumentError, match=r"^out: expected"):
        direct.conv2d(x, w, None, g, workspace_limit=2**30, out=out)


@pytest.mark.parametrize("loop", ["pixels", "planes"])
def test_writable_and_read_only_inputs_share_one_compiled_variant(loop):
    from npconv.kernels import direct

    kernel = {"pixels": direct._pixel_tasks, "planes": direct._plane_tasks}[loop]
    x, w = np.ones((1, 16, 6, 6), np.float32), np.ones((16, 16, 3, 3), np.float32)
    g = ConvGeometry.from_shapes(x.shape, w.shape, None, padding=1)
    direct.conv2d(x, w, None, g, workspace_limit=2**30, loop=loop)
    before = len(kernel.signatures)
    x.flags.writeable = w.flags.writeable = False
    direct.conv2d(x, w, None, g, workspace_limit=2**30, loop=loop)
    assert len(kernel.signatures) == before


# ---------------------------------------------------------------------- counts


# ---------------------------------------------------------------------- threads and memory


def test_a_noncontiguous_input_too_large_to_copy_is_refused():
    x = np.ones((1, 4, 16, 32))[..., ::2]  # not contiguous: the kernel copies it
    with pytest.raises(ConvMemoryError, match=r"^workspace_limit: expected contiguous copies of x"):
        npconv.conv2d(x, np.ones((1, 4, 3, 3)), method=METHOD, workspace_limit=1024)


def test_import_npconv_does_not_compile_or_import_numba():
    code = "import sys, npconv; npconv.available_methods(); print('numba' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
