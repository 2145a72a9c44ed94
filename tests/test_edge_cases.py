"""Every method and public function on awkward arrays: memory layouts, mixed float dtypes, NaN and
infinity, an empty batch, and layers too large for the memory or workspace limit."""

from __future__ import annotations

import itertools
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npconv
from npconv import formulas, kernels
from npconv.errors import ConvMemoryError
from npconv.geometry import ConvGeometry

from oracles import assert_conv_close, numpy_conv2d
from strategies import layers, memory_layouts

METHODS = npconv.available_methods()
DTYPES = [np.float32, np.float64]
LAYOUTS = list(memory_layouts(np.zeros((1, 1, 1, 1))))


def conventions(method: str) -> tuple[str, ...]:
    return kernels.load(method).CONVENTIONS


def counted_values(counts) -> tuple:
    """What was counted, without the workspace (a copy of an awkward operand is workspace)."""
    return counts.mults, counts.adds, counts.padded_mults, counts.convention, counts.method


# ---------------------------------------------------------------------- memory layouts

#: A padded, strided, dilated, grouped layer with a bias, and a 1x1 layer (im2col's no-lowering path).
LAYOUT_LAYERS = {
    "general": ((2, 4, 9, 7), (6, 2, 3, 2), dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2),
                                                 groups=2)),
    "pointwise": ((2, 5, 4, 6), (3, 5, 1, 1), dict()),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("operand", ["x", "weight", "bias", "all"])
@pytest.mark.parametrize("layer", list(LAYOUT_LAYERS))
def test_any_memory_layout_gives_the_contiguous_result(method, layout, operand, layer):
    x_shape, w_shape, kwargs = LAYOUT_LAYERS[layer]
    rng = np.random.default_rng(4)
    arrays = {"x": rng.standard_normal(x_shape), "weight": rng.standard_normal(w_shape),
              "bias": rng.standard_normal(w_shape[0])}
    expected, expected_counts = npconv.conv2d(*arrays.values(), **kwargs, method=method, count=True)
    awkward = {name: memory_layouts(a)[layout] if operand in (name, "all") else a for name, a in arrays.items()}
    before = {name: a.copy() for name, a in awkward.items()}
    y, counts = npconv.conv2d(*awkward.values(), **kwargs, method=method, count=True)
    np.testing.assert_array_equal(y, expected)
    assert counted_values(counts) == counted_values(expected_counts)
    assert y.flags.writeable and not any(np.shares_memory(y, a) for a in awkward.values())
    for name, a in awkward.items():  # operands are not modified
        np.testing.assert_array_equal(a, before[name])


# ---------------------------------------------------------------------- mixed float dtypes


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtypes", [d for d in itertools.product(DTYPES, repeat=3) if len(set(d)) > 1],
                         ids=lambda d: "-".join(np.dtype(t).name for t in d))
def test_mixed_float_dtypes_promote_like_numpy(method, dtypes):
    """float32 with float64 gives float64 (NumPy's promotion): the result is the float64 layer's."""
    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(s).astype(d) for s, d in zip(((2, 3, 7, 6), (4, 3, 3, 2), (4,)), dtypes,
                                                                  strict=True))
    common = np.result_type(*dtypes)
    assert common == np.float64
    y = npconv.conv2d(x, w, b, padding=1, method=method)
    assert y.dtype == common
    np.testing.assert_array_equal(y, npconv.conv2d(x.astype(common), w.astype(common), b.astype(common),
                                                   padding=1, method=method))
    assert npconv.conv2d(x, w, padding=1, method=method).dtype == np.result_type(x, w)  # no bias


@pytest.mark.parametrize("method", METHODS)
def test_mixed_dtypes_in_a_separable_layer_promote_like_numpy(method):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    dw, pw = rng.standard_normal((6, 1, 3, 3)).astype(np.float32), rng.standard_normal((4, 6, 1, 1))
    dw_b = rng.standard_normal(6).astype(np.float32)
    y = npconv.separable_conv2d(x, dw, pw, dw_b, None, padding="same", method=method)
    assert y.dtype == np.float64
    as64 = [a.astype(np.float64) for a in (x, dw, pw, dw_b)]
    np.testing.assert_array_equal(y, npconv.separable_conv2d(*as64, None, padding="same", method=method))


# ---------------------------------------------------------------------- NaN and infinity

# A 4x4 image of ones, a 3x3 kernel of ones whose top-left tap is infinite, padding 1.  The top-left
# tap lands on the padding for the outputs of the first row and the first column.
INF_CORNER_EXPECTED = {
    # dense: 0 * inf = nan there (as np.pad + correlate and torch compute); inf elsewhere
    "dense": np.array([[np.nan] * 4] + [[np.nan, np.inf, np.inf, np.inf]] * 3),
    # effective: the padded taps are not in the sum, so those outputs sum their real taps only
    "effective": np.array([[4, 6, 6, 4], [6, np.inf, np.inf, np.inf], [6, np.inf, np.inf, np.inf],
                           [4, np.inf, np.inf, np.inf]]),
}


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_an_infinite_weight_over_the_padding_follows_the_executed_convention(method, dtype):
    x = np.ones((1, 1, 4, 4), dtype)
    w = np.ones((1, 1, 3, 3), dtype)
    w[0, 0, 0, 0] = np.inf
    for convention in conventions(method):
        y = npconv.conv2d(x, w, padding=1, method=method, count=convention)[0]
        np.testing.assert_array_equal(y[0, 0], INF_CORNER_EXPECTED[convention])
    default = npconv.conv2d(x, w, padding=1, method=method)
    np.testing.assert_array_equal(default[0, 0], INF_CORNER_EXPECTED[conventions(method)[0]])


NON_FINITE = [np.nan, np.inf, -np.inf]


@st.composite
def non_finite_layers(draw):
    """A small layer and a few NaN or infinite values placed in x, the weight or the bias."""
    layer = draw(layers(max_batch=2, max_group_channels=2, max_kernel=3, max_extra=3))
    places = draw(st.lists(st.tuples(st.sampled_from(["x", "weight", "bias"]), st.integers(0, 10**6),
                                     st.sampled_from(NON_FINITE)), min_size=1, max_size=3))
    return layer, places


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("method", METHODS)
@given(case=non_finite_layers(), dtype=st.sampled_from(DTYPES))
def test_nan_and_inf_propagate_as_numpy_computes_the_executed_sum(method, case, dtype):
    layer, places = case
    x, w, b = layer.arrays(dtype)
    arrays = {"x": x, "weight": w, "bias": b}
    for name, index, value in places:
        if arrays[name] is not None:
            arrays[name].flat[index % arrays[name].size] = value
    g = layer.geometry
    for convention in conventions(method):
        y = npconv.conv2d(x, w, b, **layer.kwargs(), method=method, count=convention)[0]
        expected = numpy_conv2d(x, w, b, g, convention)
        for kind in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(kind(y), kind(expected), err_msg=f"{kind.__name__}, {convention}")
        finite = np.isfinite(expected)
        # the finite outputs saw only finite products: the rounding bound of oracles.assert_conv_close
        magnitude = numpy_conv2d(*(None if a is None else np.abs(np.nan_to_num(a, posinf=0, neginf=0))
                                   for a in (x, w, b)), g, convention)
        terms = g.in_channels_per_group * g.kernel_h * g.kernel_w + (b is not None)
        bound = (terms + 1) * np.finfo(dtype).eps * magnitude + np.finfo(np.float64).tiny
        assert np.all(np.abs(y[finite] - expected[finite]) <= bound[finite])


# ---------------------------------------------------------------------- an empty batch


def _empty_batch_calls(dtype):
    """Every public function on a batch of 0 images: (name, call, output shape, geometries)."""
    x = np.ones((0, 3, 8, 7), dtype)
    w, b = np.ones((5, 3, 3, 2), dtype), np.ones(5, dtype)
    dw, dw_b = np.ones((6, 1, 3, 3), dtype), np.ones(6, dtype)
    pw, pw_b = np.ones((4, 3, 1, 1), dtype), np.ones(4, dtype)
    pw6 = np.ones((4, 6, 1, 1), dtype)
    g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, stride=2, padding="same")
    return [
        ("conv2d", lambda **kw: npconv.conv2d(x, w, b, stride=2, padding="same", **kw), g.output_shape),
        ("depthwise_conv2d", lambda **kw: npconv.depthwise_conv2d(x, dw, dw_b, padding=1, **kw), (0, 6, 8, 7)),
        ("pointwise_conv2d", lambda **kw: npconv.pointwise_conv2d(x, pw, pw_b, **kw), (0, 4, 8, 7)),
        ("separable_conv2d", lambda **kw: npconv.separable_conv2d(x, dw, pw6, dw_b, pw_b, dilation=2, **kw),
         (0, 4, 4, 3)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_an_empty_batch_gives_an_empty_result_of_the_right_shape_and_no_work(method, dtype):
    for name, call, shape in _empty_batch_calls(dtype):
        y = call(method=method)
        assert (y.shape, y.dtype) == (shape, dtype), name
        for convention in conventions(method):
            y, counts = call(method=method, count=convention)
            assert y.shape == shape, name
            assert (counts.mults, counts.adds, counts.padded_mults) == (0, 0, 0), name


def test_the_closed_forms_count_nothing_for_an_empty_batch():
    g = ConvGeometry.from_layer((0, 3, 8, 8), 4, 3, padding=1, bias=True)
    for convention in ("dense", "effective"):
        assert formulas.mults(g, convention).value == formulas.adds(g, convention).value == 0


# ---------------------------------------------------------------------- memory

#: RAM may hold at most half of this machine's memory: a view of 2**36 float32 values (256 GiB,
#: broadcast from one number, so it costs nothing) is more than any machine here could allocate.
HUGE_IMAGE = (1, 64, 2**15, 2**15)


def _estimate_bytes(message: str) -> float:
    """The ``got ... needed`` estimate of a memory refusal, in bytes."""
    match = re.search(r", got ([\d,.]+) (GiB|MiB|KiB|bytes) needed$", message)
    assert match, message
    return float(match[1].replace(",", "")) * {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10, "bytes": 1}[match[2]]


def _refused_without_allocating(call) -> ConvMemoryError:
    """Run ``call``, which must raise ConvMemoryError having allocated less than 1 MiB."""
    tracemalloc.start()
    try:
        with pytest.raises(ConvMemoryError) as caught:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak:,} bytes allocated before the refusal"
    return caught.value


@pytest.mark.parametrize("method", METHODS)
def test_an_output_too_large_for_memory_is_refused_by_every_method_and_function(method):
    x = np.broadcast_to(np.float32(1), (1000, 8, 2000, 2000))
    calls = {
        "conv2d": lambda: npconv.conv2d(x, np.ones((10_000, 8, 1, 1), np.float32), method=method),
        "depthwise_conv2d": lambda: npconv.depthwise_conv2d(x, np.ones((8000, 1, 1, 1), np.float32),
                                                            method=method),
        "pointwise_conv2d": lambda: npconv.pointwise_conv2d(x, np.ones((10_000, 8, 1, 1), np.float32),
                                                            method=method),
        "separable_conv2d": lambda: npconv.separable_conv2d(x, np.ones((8, 1, 1, 1), np.float32),
                                                            np.ones((10_000, 8, 1, 1), np.float32),
                                                            method=method),
    }
    for name, call in calls.items():
        error = _refused_without_allocating(call)
        message = str(error)
        assert error.argument == "x" and message.startswith("x: expected the output, shape "), (name, message)
        assert "to fit in 50% of this machine's" in message, message
        shape = tuple(int(n) for n in re.search(r"shape \(([\d, ]+)\)", message)[1].split(", "))
        assert _estimate_bytes(message) >= 0.999 * np.prod(shape, dtype=float) * 4  # the estimate, in bytes


@pytest.mark.parametrize("method", METHODS)
def test_a_workspace_over_the_limit_is_refused_before_allocating_with_the_estimate(method):
    # a 1x1 output of a kernel as large as the image: whatever a method copies or lowers is huge
    x = np.broadcast_to(np.float32(1), HUGE_IMAGE)
    w = np.broadcast_to(np.float32(1), (1, *HUGE_IMAGE[1:]))
    limit = npconv.get_workspace_limit()
    error = _refused_without_allocating(lambda: npconv.conv2d(x, w, method=method))
    message = str(error)
    assert error.argument == "workspace_limit", message
    assert "to fit in the workspace limit of 256.0 MiB (raise it with workspace_limit=" in message, message
    assert _estimate_bytes(message) > limit
    # past the limit, the share of RAM still refuses it
    error = _refused_without_allocating(lambda: npconv.conv2d(x, w, method=method, workspace_limit=2**62))
    assert "to fit in 50% of this machine's" in str(error) and _estimate_bytes(str(error)) > limit


@pytest.mark.parametrize("method", METHODS)
def test_a_small_per_call_workspace_limit_is_honoured_or_refused_by_name(method):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 8, 12, 24))[..., ::2]  # not contiguous: some methods copy it
    w = rng.standard_normal((4, 8, 3, 3))
    expected, counts = npconv.conv2d(x, w, padding=1, method=method, count=True)
    assert_conv_close(expected, x, w, None, ConvGeometry.from_shapes(x.shape, w.shape, padding=1))
    if counts.workspace_bytes:
        y, limited = npconv.conv2d(x, w, padding=1, method=method, count=True,
                                   workspace_limit=counts.workspace_bytes)
        assert limited.workspace_bytes <= counts.workspace_bytes
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    if counts.workspace_bytes > 16:  # a method that needs workspace refuses a limit of 16 bytes by name
        with pytest.raises(ConvMemoryError) as caught:
            npconv.conv2d(x, w, padding=1, method=method, workspace_limit=16)
        assert caught.value.argument == "workspace_limit"
        assert "workspace limit of 16 bytes" in str(caught.value) and _estimate_bytes(str(caught.value)) > 16
