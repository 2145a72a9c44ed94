"""The public API: named wrappers agree with the general primitive; arrays are validated."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npconv
from npconv import formulas, kernels
from npconv.errors import ConvArgumentError, ConvMemoryError, ConvTypeError
from npconv.geometry import BIAS_CONVENTIONS, SeparableGeometry

from oracles import assert_conv_close
from strategies import layers


@given(layer=layers(depthwise=True))
def test_depthwise_wrapper_is_conv2d_with_groups_c_in(layer):
    x, w, b = layer.arrays()
    expected = npconv.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation, groups=x.shape[1])
    actual = npconv.depthwise_conv2d(x, w, b, layer.stride, layer.padding, layer.dilation)
    np.testing.assert_array_equal(actual, expected)


@given(layer=layers(pointwise=True))
def test_pointwise_wrapper_is_a_1x1_conv2d(layer):
    x, w, b = layer.arrays()
    y, counts = npconv.pointwise_conv2d(x, w, b, count=True)
    np.testing.assert_array_equal(y, npconv.conv2d(x, w, b))
    # a 1x1 layer is a matrix product over channels
    expected = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x) + (0 if b is None else b[None, :, None, None])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert counts.mults == x.shape[0] * x.shape[2] * x.shape[3] * w.shape[0] * w.shape[1]


@given(
    layer=layers(depthwise=True, max_kernel=3),
    out_channels=st.integers(1, 6),
    bias=st.sampled_from(sorted(BIAS_CONVENTIONS)),
    convention=st.sampled_from(["dense", "effective"]),
)
def test_separable_is_depthwise_then_pointwise_and_counts_both(layer, out_channels, bias, convention):
    x, dw_w, _ = layer.arrays()
    rng = np.random.default_rng(1)
    dw_bias, pw_bias = BIAS_CONVENTIONS[bias]
    dw_b = rng.uniform(-1, 1, dw_w.shape[0]) if dw_bias else None
    pw_w = rng.uniform(-1, 1, (out_channels, dw_w.shape[0], 1, 1))
    pw_b = rng.uniform(-1, 1, out_channels) if pw_bias else None
    y, counts = npconv.separable_conv2d(x, dw_w, pw_w, dw_b, pw_b, layer.stride, layer.padding,
                                        layer.dilation, count=convention)
    hidden = npconv.depthwise_conv2d(x, dw_w, dw_b, layer.stride, layer.padding, layer.dilation)
    np.testing.assert_array_equal(y, npconv.pointwise_conv2d(hidden, pw_w, pw_b))

    g = layer.geometry
    s = SeparableGeometry.from_layer(
        g.input_shape, out_channels, (g.kernel_h, g.kernel_w), stride=g.stride, padding=g.padding,
        dilation=g.dilation, depth_multiplier=g.depth_multiplier, bias=bias,
    )
    assert counts.depthwise.mults == formulas.mults(s.depthwise, convention).value
    assert counts.pointwise.adds == formulas.adds(s.pointwise, convention).value
    assert counts.mults == formulas.separable_mults(s, convention).value
    assert counts.adds == formulas.separable_adds(s, convention).value
    assert counts.flops == formulas.separable_flops(s, convention).value
    assert counts.to_dict()["depthwise"]["mults"] == counts.depthwise.mults


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x, w, b = (np.ones(s, dtype=dtype) for s in ((1, 2, 5, 5), (3, 2, 3, 3), (3,)))
    assert npconv.conv2d(x, w, b).dtype == dtype
    assert npconv.separable_conv2d(x, np.ones((2, 1, 3, 3), dtype), np.ones((4, 2, 1, 1), dtype)).dtype == dtype


def test_mixed_float_dtypes_promote_like_numpy():
    x = np.ones((1, 2, 5, 5), dtype=np.float32)
    w = np.ones((3, 2, 3, 3), dtype=np.float64)
    assert npconv.conv2d(x, w).dtype == np.float64
    assert npconv.conv2d(x, w.astype(np.float32), np.ones(3)).dtype == np.float64


def test_inputs_are_not_modified_and_views_work():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((2, 3, 12, 10))
    x = base[:, ::-1, ::2, 1:]  # negative and non-unit strides
    w = np.asfortranarray(rng.standard_normal((4, 3, 3, 2)))
    before = x.copy()
    y = npconv.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(y, npconv.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w), padding=1))


def test_nested_lists_of_floats_are_accepted():
    y = npconv.conv2d([[[[1.0, 2.0], [3.0, 4.0]]]], [[[[1.0]]]], [0.5])
    np.testing.assert_array_equal(y, [[[[1.5, 2.5], [3.5, 4.5]]]])


def test_empty_batch_gives_an_empty_result():
    y, counts = npconv.conv2d(np.ones((0, 3, 8, 8)), np.ones((5, 3, 3, 3)), count=True)
    assert y.shape == (0, 5, 6, 6)
    assert (counts.mults, counts.adds) == (0, 0)


def test_reference_against_oracle_on_a_big_grouped_layer():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 17, 15)).astype(np.float32)
    w = rng.standard_normal((9, 2, 3, 4)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    y = npconv.conv2d(x, w, b, stride=(2, 1), padding="same", dilation=(1, 2), groups=3)
    from npconv.geometry import ConvGeometry

    g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, stride=(2, 1), padding="same",
                                 dilation=(1, 2), groups=3)
    assert y.shape == (2, 9, 9, 15)
    assert_conv_close(y, x, w, b, g)


X, W = np.ones((1, 3, 8, 8)), np.ones((4, 3, 3, 3))


@pytest.mark.parametrize(
    "call, argument, fragment, error_type",
    [
        (lambda: npconv.conv2d(np.ones((3, 8, 8)), W), "x", "4-D array", ConvArgumentError),
        (lambda: npconv.conv2d(X, np.ones((4, 3, 3))), "weight", "4-D array", ConvArgumentError),
        (lambda: npconv.conv2d(X, np.ones((4, 2, 3, 3))), "weight", "C_in / groups = 3 / 1 = 3", ConvArgumentError),
        (lambda: npconv.conv2d(X, np.ones((4, 1, 3, 3)), groups=2), "groups", "divisor", ConvArgumentError),
        (lambda: npconv.conv2d(X, np.ones((4, 3, 9, 9))), "weight", "fits the padded input", ConvArgumentError),
        (lambda: npconv.conv2d(X, W, stride=0), "stride", "positive", ConvArgumentError),
        (lambda: npconv.conv2d(X, W, dilation=(1, 0)), "dilation", "positive", ConvArgumentError),
        (lambda: npconv.conv2d(X, W, padding=-1), "padding", ">= 0", ConvArgumentError),
        (lambda: npconv.conv2d(X, W, np.ones(3)), "bias", "(C_out,) = (4,)", ConvArgumentError),
        (lambda: npconv.conv2d(X.astype(int), W), "x", "float32 or float64", ConvTypeError),
        (lambda: npconv.conv2d(X, W.astype(np.int8)), "weight", "astype", ConvTypeError),
        (lambda: npconv.conv2d(X, W, np.ones(4, dtype=bool)), "bias", "float32 or float64", ConvTypeError),
        (lambda: npconv.conv2d(X.astype(complex), W), "x", "complex", ConvTypeError),
        (lambda: npconv.conv2d(X.astype(np.float16), W), "x", "float32 or float64", ConvTypeError),
        (lambda: npconv.conv2d([[1.0], [2.0, 3.0]], W), "x", "an array of floats", ConvTypeError),
        (lambda: npconv.conv2d(X, W, method="cuda"), "method", "'reference'", ConvArgumentError),
        (lambda: npconv.conv2d(X, W, count="yes"), "count", "'dense' or 'effective'", ConvArgumentError),
        (lambda: npconv.depthwise_conv2d(X, np.ones((4, 1, 3, 3))), "weight", "multiple of groups = 3",
         ConvArgumentError),
        (lambda: npconv.pointwise_conv2d(X, W), "weight", "1x1 kernel", ConvArgumentError),
        (lambda: npconv.separable_conv2d(X, np.ones((3, 2, 3, 3)), np.ones((4, 3, 1, 1))),
         "depthwise_weight", "C_in / groups = 3 / 3 = 1", ConvArgumentError),
        (lambda: npconv.separable_conv2d(X, np.ones((3, 1, 3, 3)), np.ones((4, 6, 1, 1))),
         "pointwise_weight", "C_in / groups = 3 / 1 = 3", ConvArgumentError),
        (lambda: npconv.separable_conv2d(X, np.ones((3, 1, 3, 3)), np.ones((4, 3, 1, 1)), np.ones(4)),
         "depthwise_bias", "(3,)", ConvArgumentError),
        (lambda: npconv.separable_conv2d(X, np.ones((3, 1, 3, 3)), np.ones((4, 3, 3, 3))),
         "pointwise_weight", "1x1 kernel", ConvArgumentError),
    ],
)
def test_bad_input_gets_a_clear_error(call, argument, fragment, error_type):
    with pytest.raises(error_type) as info:
        call()
    assert info.value.argument == argument
    message = str(info.value)
    assert message.startswith(f"{argument}: expected "), message
    assert fragment in message and ", got " in message, message


def test_a_convention_the_method_cannot_execute_is_refused(monkeypatch):
    """Dispatch: a kernel module that only executes dense counting refuses count='effective'."""
    module = types.ModuleType("npconv_test_dense_only")
    module.NAME, module.CONVENTIONS = "dense-only", ("dense",)
    module.conv2d = lambda x, w, b, g, *, convention, count, workspace_limit: (np.zeros(g.output_shape), None)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(kernels.METHODS, "dense-only", module.__name__)
    assert "dense-only" in npconv.available_methods()
    assert npconv.conv2d(X, W, method="dense-only").shape == (1, 4, 6, 6)
    with pytest.raises(ConvArgumentError, match="method 'dense-only' executes \\('dense'\\)"):
        npconv.conv2d(X, W, method="dense-only", count="effective")


def test_an_output_too_large_for_memory_is_refused_before_allocating():
    # a broadcast view costs no memory; its output would need about 150 TB
    x = np.broadcast_to(np.float32(1.0), (1000, 1, 2000, 2000))
    w = np.ones((10_000, 1, 1, 1), dtype=np.float32)
    with pytest.raises(ConvMemoryError) as info:
        npconv.conv2d(x, w)
    message = str(info.value)
    assert message.startswith("x: expected the output, shape (1000, 10000, 2000, 2000) of float32, to fit in 50% of")
    assert message.endswith("got 149,011.6 GiB needed")
    assert isinstance(info.value, MemoryError)


def test_reference_refuses_an_image_whose_list_copy_would_not_fit():
    # one 1 x 1 output of a 6e9-pixel image: the output is tiny, the image's copy is not
    x = np.broadcast_to(np.float32(1.0), (1, 1, 60_000, 100_000))
    w = np.broadcast_to(np.float32(1.0), (1, 1, 60_000, 100_000))
    with pytest.raises(ConvMemoryError, match=r"one image and the weight as Python floats .* to fit in the workspace"):
        npconv.conv2d(x, w)
    with pytest.raises(ConvMemoryError, match=r"one image and the weight as Python floats .* to fit in 50% of"):
        npconv.conv2d(x, w, workspace_limit=2**62)  # past the limit, RAM still refuses


def test_the_reference_list_copy_honours_the_workspace_limit():
    x = np.ones((1, 4, 8, 8))
    w = np.ones((2, 4, 3, 3))
    needed = (4 * 8 * 8 + 2 * 4 * 3 * 3) * 32  # one image and the weight as Python floats
    _, counts = npconv.conv2d(x, w, workspace_limit=needed, count=True)
    assert counts.workspace_bytes == needed
    with pytest.raises(ConvMemoryError) as info:
        npconv.conv2d(x, w, workspace_limit=needed - 1)
    assert str(info.value).startswith("workspace_limit: expected one image and the weight as Python floats "
                                      "(256 + 72 values) to fit in the workspace limit of 10.2 KiB")
    assert str(info.value).endswith("got 10.2 KiB needed")


def test_the_process_wide_workspace_limit_is_settable_and_restorable():
    x, w = np.ones((1, 4, 8, 8)), np.ones((2, 4, 3, 3))
    previous = npconv.set_workspace_limit(1024)
    try:
        assert npconv.get_workspace_limit() == 1024
        with pytest.raises(ConvMemoryError, match=r"workspace limit of 1\.0 KiB"):
            npconv.conv2d(x, w)
        assert npconv.conv2d(x, w, workspace_limit=2**20).shape == (1, 2, 6, 6)  # per call wins
    finally:
        npconv.set_workspace_limit(previous)
    assert npconv.set_workspace_limit(None) == previous
    assert npconv.get_workspace_limit() == 256 * 2**20


@pytest.mark.parametrize("bad", [0, -5, 1.5, "1MB", True])
def test_a_bad_workspace_limit_is_named(bad):
    with pytest.raises(ConvArgumentError, match=r"^workspace_limit: expected a positive int of bytes"):
        npconv.conv2d(X, W, workspace_limit=bad)
    with pytest.raises(ConvArgumentError, match=r"^nbytes: expected a positive int of bytes"):
        npconv.set_workspace_limit(bad)
