"""Every method over the whole layer space: outputs against independent oracles, counts against
the closed forms, and independence from the thread count.

Parametrized over :func:`npconv.available_methods`, so a new method is tested by adding it.
The interpreted methods (``npconv.kernels.declaration(m).interpreted``, ~1M mults/s) draw from the
smaller default :func:`strategies.layers` space; the compiled ones from the whole space of
:func:`strategies.cross_method_layers`, and are compared with the reference kernel on the
draws it can run quickly.  This is the one oracle suite: a kernel's own test file tests only
the paths that kernel has (its loop nests, its workspace, its chunking).
``NPCONV_HYPOTHESIS_PROFILE=ci`` runs 500 layers per test and method, ``soak`` 10,000 (see
conftest.py).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npconv
from npconv import formulas, kernels
from npconv.geometry import SeparableGeometry

from oracles import assert_conv_close, assert_counts_equal_formulas, reference_conv2d, torch_conv2d
from strategies import cross_method_layers, layers

METHODS = npconv.available_methods()
DTYPES = [np.float32, np.float64]

#: Dense mults up to which a compiled method's result is also checked against the reference
#: kernel (which runs twice in ``assert_conv_close``: about 0.1 s at this size).
REFERENCE_BUDGET = 50_000


def layers_for(method: str, **options):
    """The layers ``method`` is tested on: the whole space, or a smaller one for interpreted methods."""
    return layers(**options) if kernels.declaration(method).interpreted else cross_method_layers(**options)


def conventions(method: str) -> tuple[str, ...]:
    """The counting conventions ``method`` executes, its default first."""
    return kernels.load(method).CONVENTIONS


# ---------------------------------------------------------------------- outputs


@pytest.mark.parametrize("method", METHODS)
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_every_method_agrees_with_scipy_and_the_reference(method, data, dtype):
    layer = data.draw(layers_for(method), label="layer")
    g = layer.geometry
    x, w, b = layer.arrays(dtype)
    y = npconv.conv2d(x, w, b, **layer.kwargs(), method=method)
    assert y.dtype == dtype and y.shape == g.output_shape and y.flags.c_contiguous
    assert_conv_close(y, x, w, b, g)
    if method != "reference" and formulas.mults(g, "dense").value <= REFERENCE_BUDGET:
        assert_conv_close(y, x, w, b, g, oracle=reference_conv2d)


@pytest.mark.parametrize("method", METHODS)
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_every_method_agrees_with_torch(method, data, dtype):
    pytest.importorskip("torch")
    layer = data.draw(layers_for(method), label="layer")
    x, w, b = layer.arrays(dtype, seed=1)
    y = npconv.conv2d(x, w, b, **layer.kwargs(), method=method)
    assert_conv_close(y, x, w, b, layer.geometry, oracle=torch_conv2d)


# ---------------------------------------------------------------------- counts


@pytest.mark.parametrize("method", METHODS)
@given(data=st.data())
def test_counts_equal_the_formulas_in_every_convention_the_method_executes(method, data):
    layer = data.draw(layers_for(method), label="layer")
    g = layer.geometry
    x, w, b = layer.arrays(np.float32)
    uncounted = npconv.conv2d(x, w, b, **layer.kwargs(), method=method)
    for convention in conventions(method):
        y, counts = npconv.conv2d(x, w, b, **layer.kwargs(), method=method, count=convention)
        assert_counts_equal_formulas(counts, g, method, convention)
        np.testing.assert_array_equal(y, uncounted)  # counting does not change the result
    _, default = npconv.conv2d(x, w, b, **layer.kwargs(), method=method, count=True)
    assert default.convention == conventions(method)[0]


@pytest.mark.parametrize("method", METHODS)
@given(data=st.data(), out_channels=st.integers(1, 8), bias=st.sampled_from(["keras", "torch", "none"]))
def test_separable_is_depthwise_then_pointwise_with_both_parts_counted(method, data, out_channels, bias):
    layer = data.draw(layers_for(method, depthwise=True), label="depthwise layer")
    x, dw_w, _ = layer.arrays()
    rng = np.random.default_rng(2)
    s = SeparableGeometry.from_layer(
        layer.input_shape, out_channels, layer.weight_shape[2:], stride=layer.stride,
        padding=layer.padding, dilation=layer.dilation, depth_multiplier=layer.weight_shape[0] // x.shape[1],
        bias=bias,
    )
    dw_b = rng.uniform(-1, 1, s.depthwise.bias_shape) if s.depthwise.bias else None
    pw_w = rng.uniform(-1, 1, s.pointwise.weight_shape)
    pw_b = rng.uniform(-1, 1, s.pointwise.bias_shape) if s.pointwise.bias else None
    args = (layer.stride, layer.padding, layer.dilation)
    for convention in conventions(method):
        y, counts = npconv.separable_conv2d(x, dw_w, pw_w, dw_b, pw_b, *args, method=method, count=convention)
        hidden = npconv.depthwise_conv2d(x, dw_w, dw_b, *args, method=method)
        np.testing.assert_array_equal(y, npconv.pointwise_conv2d(hidden, pw_w, pw_b, method=method))
        assert_counts_equal_formulas(counts.depthwise, s.depthwise, method, convention)
        assert_counts_equal_formulas(counts.pointwise, s.pointwise, method, convention)
        assert counts.mults == formulas.separable_mults(s, convention).value
        assert counts.adds == formulas.separable_adds(s, convention).value
    assert_conv_close(hidden, x, dw_w, dw_b, s.depthwise)


# ---------------------------------------------------------------------- threads


@pytest.mark.parametrize("method", METHODS)
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_results_and_counts_do_not_depend_on_the_thread_count(method, data, dtype, thread_count):
    import numba

    layer = data.draw(layers_for(method), label="layer")
    x, w, b = layer.arrays(dtype)
    runs = {}
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        with thread_count(threads):
            runs[threads] = npconv.conv2d(x, w, b, **layer.kwargs(), method=method, count=True)
    (y_one, counts_one), (y_all, counts_all) = runs[1], runs[max(runs)]
    np.testing.assert_array_equal(y_one, y_all)
    assert counts_one == counts_all


def _concurrent_workload(seed: int):
    """A different small padded, strided, grouped layer per Python thread."""
    rng = np.random.default_rng(seed)
    groups = 1 + seed % 3
    x = rng.standard_normal((1 + seed % 2, 3 * groups, 9 + seed, 8))
    w = rng.standard_normal((2 * groups, 3, 3, 2))
    b = rng.standard_normal(2 * groups) if seed % 2 else None
    return (x, w, b), dict(stride=1 + seed % 2, padding=((1, 0), (2, 1)), dilation=(1, 1 + seed % 2),
                           groups=groups)


@pytest.mark.parametrize("method", METHODS)
def test_concurrent_calls_from_python_threads_give_the_sequential_results(method):
    workloads = [_concurrent_workload(seed) for seed in range(6)]
    expected = [npconv.conv2d(*arrays, **kw, method=method, count=True) for arrays, kw in workloads]
    results: list[list] = [[] for _ in workloads]
    start = threading.Barrier(len(workloads))

    def work(i):
        arrays, kw = workloads[i]
        start.wait()  # all threads call at once
        for _ in range(3):
            results[i].append(npconv.conv2d(*arrays, **kw, method=method, count=True))

    pool = [threading.Thread(target=work, args=(i,)) for i in range(len(workloads))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for (y, counts), got in zip(expected, results, strict=True):
        assert len(got) == 3
        for y_thread, counts_thread in got:
            np.testing.assert_array_equal(y_thread, y)
            assert counts_thread == counts
