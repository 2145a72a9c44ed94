"""``out=``: every public forward function writes into a caller's array and returns it.

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
