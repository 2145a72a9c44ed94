"""The Numba direct kernel against independent oracles, its counts against the effective formulas,
and its independence from the thread count."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npconv
from npconv import formulas
from npconv.errors import ConvArgumentError, ConvMemoryError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.layerset import BENCHMARK_LAYERS

from oracles import assert_conv_close, reference_conv2d, torch_conv2d
from strategies import layers

numba = pytest.importorskip("numba")

DTYPES = [np.float32, np.float64]
METHOD = "direct"


def run(layer, dtype, count=False, seed=0):
    x, w, b = layer.arrays(dtype, seed)
    return (x, w, b), npconv.conv2d(x, w, b, **layer.kwargs(), method=METHOD, count=count)


def assert_effective_counts(counts, g: ConvGeometry) -> None:
    assert counts.method == METHOD
    assert counts.convention == "effective"
    assert counts.mults == formulas.mults(g, "effective").value
    assert counts.adds == formulas.adds(g, "effective").value
    assert counts.flops == formulas.flops(g, "effective").value
    assert counts.padded_mults == 0


@pytest.fixture
def threads():
    """Set Numba's thread count for one test, then put it back."""
    before = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(before)


# ---------------------------------------------------------------------- outputs


@given(layer=layers(), dtype=st.sampled_from(DTYPES))
def test_direct_matches_scipy_and_the_reference(layer, dtype):
    (x, w, b), y = run(layer, dtype)
    assert y.dtype == dtype
    assert_conv_close(y, x, w, b, layer.geometry)
    assert_conv_close(y, x, w, b, layer.geometry, oracle=reference_conv2d)


@given(layer=layers(depthwise=True, max_group_channels=4), dtype=st.sampled_from(DTYPES))
def test_depthwise_with_multiplier_matches_scipy(layer, dtype):
    x, w, b = layer.arrays(dtype)
    y = npconv.depthwise_conv2d(x, w, b, layer.stride, layer.padding, layer.dilation, method=METHOD)
    assert_conv_close(y, x, w, b, layer.geometry)


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


@given(layer=layers(max_group_channels=9), dtype=st.sampled_from(DTYPES))
def test_direct_matches_torch(layer, dtype):
    pytest.importorskip("torch")
    (x, w, b), y = run(layer, dtype)
    assert_conv_close(y, x, w, b, layer.geometry, oracle=torch_conv2d)


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
    copied = 0 if x2.flags.c_contiguous else x.nbytes
    assert counts.workspace_bytes == copied + w.nbytes  # the transposed weight is always a copy


def test_float32_stays_float32_and_float64_stays_float64():
    x = np.ones((1, 3, 5, 5), dtype=np.float32)
    w = np.ones((2, 3, 3, 3), dtype=np.float32)
    assert npconv.conv2d(x, w, method=METHOD).dtype == np.float32
    assert npconv.conv2d(x.astype(np.float64), w.astype(np.float64), method=METHOD).dtype == np.float64


def test_nan_and_inf_propagate():
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 3, 3] = np.inf
    y = npconv.conv2d(x, np.ones((1, 1, 2, 2)), method=METHOD)
    assert np.isnan(y[0, 0, 0, 0]) and np.isinf(y[0, 0, 2, 2]) and y[0, 0, 1, 1] == 4.0


@pytest.mark.parametrize("loop", ["rows", "pixels"])
@given(layer=layers(max_group_channels=10), dtype=st.sampled_from(DTYPES))
def test_both_loop_nests_match_scipy_and_count_exactly(loop, layer, dtype):
    """Each loop nest on every layer, whichever one choose_loop would pick."""
    from npconv.kernels import direct

    x, w, b = layer.arrays(dtype)
    g = layer.geometry
    y, counts = direct.conv2d(x, w, b, g, count=True, workspace_limit=2**30, loop=loop)
    fast, none = direct.conv2d(x, w, b, g, count=False, workspace_limit=2**30, loop=loop)
    assert y.dtype == dtype and none is None
    assert_conv_close(y, x, w, b, g)
    np.testing.assert_array_equal(y, fast)
    assert_effective_counts(counts, g)


def test_the_loop_nest_is_chosen_by_row_length_stride_and_channels():
    from npconv.kernels.direct import choose_loop

    chosen = {name: choose_loop(g) for name, g in BENCHMARK_LAYERS.items()}
    assert chosen == {"seed 5x5": "pixels", "seed 5x5 p1": "pixels", "resnet 3x3": "rows", "stem s2": "pixels",
                      "depthwise 3x3": "rows", "pointwise 1x1": "rows", "large 7x7": "rows"}


# ---------------------------------------------------------------------- counts


@given(layer=layers())
def test_counts_equal_the_effective_formulas(layer):
    _, (_, counts) = run(layer, np.float64, count=True)
    assert_effective_counts(counts, layer.geometry)


@given(layer=layers(depthwise=True))
def test_depthwise_counts_equal_the_effective_formulas(layer):
    _, (_, counts) = run(layer, np.float32, count=True)
    assert_effective_counts(counts, layer.geometry)


@given(layer=layers(max_group_channels=12), dtype=st.sampled_from(DTYPES))
def test_the_counting_variant_computes_exactly_what_the_fast_one_does(layer, dtype):
    _, fast = run(layer, dtype)
    _, (counted, _) = run(layer, dtype, count=True)
    np.testing.assert_array_equal(counted, fast)


def test_dense_counting_is_refused():
    with pytest.raises(ConvArgumentError, match="method 'direct' executes \\('effective'\\)"):
        npconv.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), method=METHOD, count="dense")


def test_separable_counts_equal_the_formulas():
    s = SeparableGeometry.from_layer((2, 3, 14, 14), 16, 5, padding=2, depth_multiplier=2, bias="torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(s.depthwise.input_shape)
    dw, pw = rng.standard_normal(s.depthwise.weight_shape), rng.standard_normal(s.pointwise.weight_shape)
    dwb, pwb = rng.standard_normal(s.depthwise.bias_shape), rng.standard_normal(s.pointwise.bias_shape)
    y, counts = npconv.separable_conv2d(x, dw, pw, dwb, pwb, padding=2, method=METHOD, count=True)
    expected = npconv.separable_conv2d(x, dw, pw, dwb, pwb, padding=2, method="reference")
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert counts.mults == formulas.separable_mults(s, "effective").value
    assert counts.adds == formulas.separable_adds(s, "effective").value


# ---------------------------------------------------------------------- threads and memory


@given(layer=layers(max_batch=1, max_group_channels=9))
def test_results_and_counts_do_not_depend_on_the_thread_count(layer):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        _, (one_y, one_counts) = run(layer, np.float32, count=True)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        _, (all_y, all_counts) = run(layer, np.float32, count=True)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one_y, all_y)
    assert one_counts == all_counts


def test_calls_from_python_threads_are_independent():
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((2, 8, 12, 12)) for _ in range(6)]
    w = rng.standard_normal((5, 8, 3, 3))
    expected = [npconv.conv2d(x, w, padding=1, method=METHOD) for x in inputs]
    results = [None] * len(inputs)

    def work(i):
        results[i] = npconv.conv2d(inputs[i], w, padding=1, method=METHOD, count=True)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for (y, counts), e in zip(results, expected, strict=True):
        np.testing.assert_array_equal(y, e)
        assert counts == results[0][1]


def test_a_noncontiguous_input_too_large_to_copy_is_refused():
    x = np.ones((1, 4, 16, 32))[..., ::2]  # not contiguous: the kernel copies it
    with pytest.raises(ConvMemoryError, match=r"^workspace_limit: expected a contiguous copy of x"):
        npconv.conv2d(x, np.ones((1, 4, 3, 3)), method=METHOD, workspace_limit=1024)


def test_import_npconv_does_not_compile_or_import_numba():
    code = "import sys, npconv; npconv.available_methods(); print('numba' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
