"""``out=``: every public function writes into a caller's arrays and returns them.

For every method (the fast algorithms on a layer they run): the returned array *is* ``out``, its
values equal the call without ``out`` exactly (the same kernel writes them), the counts are
unchanged, and every unsuitable ``out`` -- wrong shape, wrong dtype, not C-contiguous,
read-only, sharing memory with an operand -- is refused by name before any work (``out`` is
left untouched).
"""

from __future__ import annotations

import numpy as np
import pytest

import npconv
from npconv import kernels
from npconv.errors import ConvArgumentError, ConvTypeError

METHODS = list(kernels.METHODS)
RNG = np.random.default_rng(11)
#: A grouped, padded 3x3 stride-1 layer: every method runs it, the fast algorithms included.
X = RNG.standard_normal((2, 4, 7, 6))
W = RNG.standard_normal((6, 2, 3, 3))
B = RNG.standard_normal(6)
LAYER = dict(padding=1, groups=2)
DW, DB = RNG.standard_normal((8, 1, 3, 3)), RNG.standard_normal(8)
PW, PB = RNG.standard_normal((5, 8, 1, 1)), RNG.standard_normal(5)

#: Each public function: its call on the operands above, and its output shape.
CALLS = {
    "conv2d": (lambda **kw: npconv.conv2d(X, W, B, **LAYER, **kw), (2, 6, 7, 6)),
    "depthwise_conv2d": (lambda **kw: npconv.depthwise_conv2d(X, DW, DB, padding=1, **kw), (2, 8, 7, 6)),
    "pointwise_conv2d": (lambda **kw: npconv.pointwise_conv2d(X, PW[:, :4], PB, **kw), (2, 5, 7, 6)),
    "separable_conv2d": (lambda **kw: npconv.separable_conv2d(X, DW, PW, DB, PB, padding=1, **kw), (2, 5, 7, 6)),
}


def _runs(function: str, method: str) -> bool:
    # the Winograd kernels run 3x3 layers only: not the pointwise ones
    return not (method.startswith("winograd") and function in ("pointwise_conv2d", "separable_conv2d"))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("function", list(CALLS))
def test_out_is_returned_with_the_values_and_counts_of_a_call_without_it(function, method):
    if not _runs(function, method):
        pytest.skip(f"{method} does not run {function}'s layer")
    call, shape = CALLS[function]
    expected, expected_counts = call(method=method, count=True)
    out = np.full(shape, np.nan)
    y = call(method=method, out=out)
    assert y is out
    np.testing.assert_array_equal(out, expected)
    out[...] = np.nan
    y, counts = call(method=method, count=True, out=out)
    assert y is out
    np.testing.assert_array_equal(out, expected)
    assert counts == expected_counts


@pytest.mark.parametrize("method", ["reference", "im2col", "direct", "fft"])
def test_out_of_float32_operands_is_float32(method):
    x, w, b = (a.astype(np.float32) for a in (X, W, B))
    out = np.empty((2, 6, 7, 6), np.float32)
    assert npconv.conv2d(x, w, b, **LAYER, method=method, out=out) is out
    np.testing.assert_array_equal(out, npconv.conv2d(x, w, b, **LAYER, method=method))


def test_out_of_mixed_dtypes_takes_the_promoted_dtype():
    out = np.empty((2, 6, 7, 6))
    npconv.conv2d(X.astype(np.float32), W, B, **LAYER, method="im2col", out=out)
    np.testing.assert_allclose(out, npconv.conv2d(X, W, B, **LAYER, method="im2col"), rtol=1e-6, atol=1e-6)
    with pytest.raises(ConvTypeError, match="out: expected an array of the output's dtype float64"):
        npconv.conv2d(X.astype(np.float32), W, B, **LAYER, method="im2col", out=np.empty((2, 6, 7, 6), np.float32))


@pytest.mark.parametrize("method", METHODS)
def test_out_of_an_empty_batch(method):
    out = np.empty((0, 6, 7, 6))
    y, counts = npconv.conv2d(X[:0], W, B, **LAYER, method=method, count=True, out=out)
    assert y is out and counts.mults == 0


def _read_only(shape):
    array = np.zeros(shape)
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("function", list(CALLS))
@pytest.mark.parametrize("make, error, fragment", [
    (lambda s: np.zeros((*s[:-1], s[-1] + 1)), ConvArgumentError, "an array of the output's shape"),
    (lambda s: np.zeros(s[1:]), ConvArgumentError, "got shape"),
    (lambda s: np.zeros(s, np.float32), ConvTypeError, "got dtype float32"),
    (lambda s: np.zeros(s, ">f8"), ConvTypeError, "non-native byte order"),
    (lambda s: np.zeros(s, np.complex128), ConvTypeError, "got dtype complex128"),
    (lambda s: np.zeros(s[::-1]).T, ConvArgumentError, "a C-contiguous array"),
    (lambda s: np.zeros((*s[:-1], 2 * s[-1]))[..., ::2], ConvArgumentError, "a C-contiguous array"),
    (_read_only, ConvArgumentError, "a writeable array"),
    (lambda s: np.zeros(s).tolist(), ConvTypeError, "got list"),
])
def test_an_unsuitable_out_is_refused_by_name(function, make, error, fragment):
    call, shape = CALLS[function]
    out = make(shape)
    with pytest.raises(error) as caught:
        call(method="im2col", out=out)
    assert caught.value.argument == "out"
    assert str(caught.value).startswith("out: expected ") and fragment in str(caught.value)


@pytest.mark.parametrize("method", ["reference", "im2col", "direct"])
@pytest.mark.parametrize("operand", ["x", "weight", "bias"])
def test_out_sharing_memory_with_an_operand_is_refused(method, operand):
    # one buffer holding the operand and, from some offset on, the output: they overlap
    sizes = {"x": X.size, "weight": W.size, "bias": B.size}
    out_size = 2 * 6 * 7 * 6
    memory = np.zeros(sizes[operand] + out_size)
    operands = {"x": X, "weight": W, "bias": B}
    held = memory[: sizes[operand]].reshape(operands[operand].shape)
    held[...] = operands[operand]
    operands[operand] = held
    out = memory[sizes[operand] - 1: sizes[operand] - 1 + out_size].reshape(2, 6, 7, 6)
    before = memory.copy()
    with pytest.raises(ConvArgumentError, match=f"got an array overlapping {operand}") as caught:
        npconv.conv2d(operands["x"], operands["weight"], operands["bias"], **LAYER, method=method, out=out)
    assert caught.value.argument == "out"
    np.testing.assert_array_equal(memory, before)  # refused before any work
    # the same buffer, not overlapping: accepted
    out = memory[sizes[operand]:].reshape(2, 6, 7, 6)
    npconv.conv2d(operands["x"], operands["weight"], operands["bias"], **LAYER, method=method, out=out)
    np.testing.assert_allclose(out, npconv.conv2d(X, W, B, **LAYER, method=method), rtol=1e-12, atol=1e-12)


def test_out_interleaved_with_an_operand_without_touching_it_is_accepted():
    memory = np.zeros(4 * 1000)
    x = memory[::1000][:1].reshape(1, 1, 1, 1)  # element 0 only
    out = memory[1:2].reshape(1, 1, 1, 1)
    assert npconv.conv2d(x, np.ones((1, 1, 1, 1)), method="im2col", out=out) is out


def test_separable_out_overlapping_an_operand_is_refused():
    pw = np.zeros(PW.size + 2 * 5 * 7 * 6)
    weight = pw[: PW.size].reshape(PW.shape)
    weight[...] = PW
    out = pw[PW.size - 5: PW.size - 5 + 2 * 5 * 7 * 6].reshape(2, 5, 7, 6)
    with pytest.raises(ConvArgumentError, match="overlapping pointwise_weight"):
        npconv.separable_conv2d(X, DW, weight, DB, PB, padding=1, method="im2col", out=out)


@pytest.mark.parametrize("method", ["im2col", "direct", "reference"])
def test_a_loop_reusing_out_gives_each_call_its_own_result(method):
    out = np.empty((2, 6, 7, 6))
    for scale in (1.0, -2.0, 0.5):
        npconv.conv2d(X * scale, W, B, **LAYER, method=method, out=out)
        np.testing.assert_array_equal(out, npconv.conv2d(X * scale, W, B, **LAYER, method=method))


# ---------------------------------------------------------------------- backward
#
# The backward functions' out= is a Grads (a SeparableGrads for separable) of arrays or None.

BACKWARD_METHODS = ["reference", "im2col", "direct"]
GY = RNG.standard_normal((2, 6, 7, 6))
GY_DW, GY_PW = RNG.standard_normal((2, 8, 7, 6)), RNG.standard_normal((2, 5, 7, 6))
#: Each backward function: its call, and the shape of each gradient it returns.
BACKWARD_CALLS = {
    "conv2d_backward": (lambda **kw: npconv.conv2d_backward(GY, X, W, B, **LAYER, **kw),
                        [(2, 4, 7, 6), (6, 2, 3, 3), (6,)]),
    "depthwise_conv2d_backward": (lambda **kw: npconv.depthwise_conv2d_backward(GY_DW, X, DW, DB, padding=1, **kw),
                                  [(2, 4, 7, 6), (8, 1, 3, 3), (8,)]),
    "pointwise_conv2d_backward": (lambda **kw: npconv.pointwise_conv2d_backward(GY_PW, X, PW[:, :4], PB, **kw),
                                  [(2, 4, 7, 6), (5, 4, 1, 1), (5,)]),
    "separable_conv2d_backward": (lambda **kw: npconv.separable_conv2d_backward(GY_PW, X, DW, PW, DB, PB,
                                                                                 padding=1, **kw),
                                  [(2, 4, 7, 6), (8, 1, 3, 3), (5, 8, 1, 1), (8,), (5,)]),
}


@pytest.mark.parametrize("method", BACKWARD_METHODS)
@pytest.mark.parametrize("function", list(BACKWARD_CALLS))
def test_backward_out_is_returned_with_the_values_and_counts_of_a_call_without_it(function, method):
    call, shapes = BACKWARD_CALLS[function]
    expected, expected_counts = call(method=method, count=True)
    out = [np.full(shape, np.nan) for shape in shapes]
    grads, counts = call(method=method, count=True, out=out)
    assert all(g is o for g, o in zip(grads, out, strict=True))
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert counts == expected_counts
    # a partial out: the arrays given are written, the others allocated
    partial = [None] * len(shapes)
    partial[1] = np.full(shapes[1], np.nan)
    grads = call(method=method, out=type(expected)(*partial))
    assert grads[1] is partial[1] and grads[0] is not None
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("method", BACKWARD_METHODS)
def test_backward_out_is_overwritten_not_accumulated(method):
    # the kernels must assign every element: positions no tap reaches included (stride 2 skips some)
    gy = RNG.standard_normal((2, 6, 3, 2))  # column 5 and row 6 of x: reached by no tap
    out = [np.full((2, 4, 7, 6), 1e9), np.full((6, 2, 3, 3), 1e9), np.full(6, 1e9)]
    for scale in (1.0, -3.0):
        grads = npconv.conv2d_backward(gy * scale, X, W, B, stride=2, groups=2, method=method, out=out)
        expected = npconv.conv2d_backward(gy * scale, X, W, B, stride=2, groups=2, method=method)
        for got, want in zip(grads, expected, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("method", BACKWARD_METHODS)
def test_backward_out_of_an_empty_batch(method):
    out = [np.full((0, 4, 7, 6), np.nan), np.full((6, 2, 3, 3), np.nan), np.full(6, np.nan)]
    grads = npconv.conv2d_backward(GY[:0], X[:0], W, B, **LAYER, method=method, out=out)
    assert grads.weight is out[1] and not grads.weight.any() and not grads.bias.any()


@pytest.mark.parametrize("method", BACKWARD_METHODS)
def test_backward_out_of_float32_operands(method):
    gy, x, w, b = (a.astype(np.float32) for a in (GY, X, W, B))
    out = [np.empty((2, 4, 7, 6), np.float32), np.empty((6, 2, 3, 3), np.float32), np.empty(6, np.float32)]
    grads = npconv.conv2d_backward(gy, x, w, b, **LAYER, method=method, out=out)
    for got, want in zip(grads, npconv.conv2d_backward(gy, x, w, b, **LAYER, method=method), strict=True):
        np.testing.assert_array_equal(got, want)


def _backward_out(shapes, index, array):
    out = [None] * len(shapes)
    out[index] = array
    return out


@pytest.mark.parametrize("make, error, argument, fragment", [
    (lambda: np.zeros((6, 2, 3, 4)), ConvArgumentError, "out.weight", "an array of the output's shape (6, 2, 3, 3)"),
    (lambda: np.zeros((6, 2, 3, 3), np.float32), ConvTypeError, "out.weight", "got dtype float32"),
    (lambda: np.zeros((3, 3, 2, 6)).T, ConvArgumentError, "out.weight", "a C-contiguous array"),
    (lambda: _read_only((6, 2, 3, 3)), ConvArgumentError, "out.weight", "a writeable array"),
    (lambda: W, ConvArgumentError, "out.weight", "got an array overlapping weight"),
    (lambda: GY[0, 0, 0], ConvArgumentError, "out.weight", "an array of the output's shape"),
])
def test_an_unsuitable_backward_out_is_refused_by_name(make, error, argument, fragment):
    out = _backward_out(BACKWARD_CALLS["conv2d_backward"][1], 1, make())
    with pytest.raises(error) as caught:
        npconv.conv2d_backward(GY, X, W, B, **LAYER, method="im2col", out=out)
    assert caught.value.argument == argument and fragment in str(caught.value)


def test_backward_out_entries_sharing_memory_are_refused():
    memory = np.zeros(6 * 2 * 3 * 3)
    out = [None, memory.reshape(6, 2, 3, 3), memory[:6]]
    with pytest.raises(ConvArgumentError, match=r"out.bias: .*got an array overlapping out.weight"):
        npconv.conv2d_backward(GY, X, W, B, **LAYER, method="direct", out=out)


@pytest.mark.parametrize("out, error, argument, fragment", [
    (np.zeros(3), ConvTypeError, "out", "a sequence of 3 arrays or None, (input, weight, bias)"),
    ({"weight": None}, ConvTypeError, "out", "got dict"),
    ([None, None], ConvArgumentError, "out", "got a sequence of 2"),
    ([None, np.zeros((6, 2, 3, 3)).tolist(), None], ConvTypeError, "out.weight", "got list"),
])
def test_a_backward_out_of_the_wrong_form_is_refused(out, error, argument, fragment):
    with pytest.raises(error) as caught:
        npconv.conv2d_backward(GY, X, W, B, **LAYER, method="reference", out=out)
    assert caught.value.argument == argument and fragment in str(caught.value)


def test_backward_out_for_a_gradient_not_computed_is_refused():
    with pytest.raises(ConvArgumentError, match=r"out.input: expected None: this gradient is not computed"):
        npconv.conv2d_backward(GY, X, W, B, **LAYER, needs=("weight", "bias"), out=[np.zeros(X.shape), None, None])
    with pytest.raises(ConvArgumentError, match=r"out.bias: expected None"):
        npconv.conv2d_backward(GY, X, W, None, **LAYER, out=[None, None, np.zeros(6)])
    with pytest.raises(ConvArgumentError, match=r"out.pointwise_bias: expected None"):
        npconv.separable_conv2d_backward(GY_PW, X, DW, PW, DB, None, padding=1,
                                         out=[None, None, None, None, np.zeros(5)])


def test_separable_backward_out_overlapping_hidden_is_refused():
    hidden = npconv.depthwise_conv2d(X, DW, DB, padding=1)
    shared = np.zeros(hidden.size + 1)
    held = shared[: hidden.size].reshape(hidden.shape)
    held[...] = hidden
    out = [None, None, shared[1: 1 + 40].reshape(5, 8, 1, 1), None, None]
    with pytest.raises(ConvArgumentError, match=r"out.pointwise_weight: .*overlapping hidden"):
        npconv.separable_conv2d_backward(GY_PW, X, DW, PW, DB, PB, padding=1, hidden=held, out=out)
