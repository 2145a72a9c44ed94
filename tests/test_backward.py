"""The backward pass of every method: gradients against torch.autograd and central finite
differences, counts against the closed forms, the gradients asked for and nothing else, dtypes,
empty batches, bad input and memory refusals.

The loss is ``L = sum(y * grad_y)``, so ``dL/dy = grad_y``.  ``L`` is linear in each operand
separately (a convolution is bilinear in ``x`` and ``weight``), so a central difference
``(L(a + h v) - L(a - h v)) / 2h`` equals the directional derivative ``<dL/da, v>`` exactly in
exact arithmetic, for any step ``h``: the finite-difference check can be tight (rel. 1e-9), with
``L`` evaluated by an oracle that shares no code with npconv (``oracles.numpy_conv2d``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npconv
from npconv import formulas, kernels
from npconv.errors import ConvArgumentError, ConvMemoryError, ConvTypeError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.gradients import GRADIENTS, GradCounts, Grads, SeparableGradCounts, SeparableGrads

from oracles import numpy_conv2d
from strategies import cross_method_layers, layers

METHODS = npconv.available_methods()
DTYPES = [np.float32, np.float64]

#: Examples per property test: a tenth of the profile's (20 by default, 1,000 in the soak).
EXAMPLES = max(10, settings.default.max_examples // 10)

#: Dense mults up to which a compiled method's gradients are also checked against the reference.
REFERENCE_BUDGET = 20_000


def layers_for(method: str, **options):
    """Small layers for the interpreted reference, the whole space for the compiled methods."""
    return layers(**options) if kernels.declaration(method).interpreted else cross_method_layers(**options)


def conventions(method: str) -> tuple[str, ...]:
    return kernels.declaration(method).conventions


def backward(layer, grad_y, x, w, b, method, **options):
    return npconv.conv2d_backward(grad_y, x, w, b, **layer.kwargs(), method=method, **options)


def random_grad_y(g: ConvGeometry, dtype=np.float64, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, g.output_shape).astype(dtype)


def torch_grads(grad_y, x, w, b, g: ConvGeometry) -> Grads:
    """The gradients from ``torch.autograd`` (float64), padding applied with ``F.pad``."""
    import torch
    import torch.nn.functional as F

    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    wt = torch.tensor(np.asarray(w, np.float64), requires_grad=True)
    bt = None if b is None else torch.tensor(np.asarray(b, np.float64), requires_grad=True)
    (top, bottom), (left, right) = g.padding
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layers: a thread pool would only contend with Numba's
    try:
        y = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=g.stride, dilation=g.dilation,
                     groups=g.groups)
        y.backward(torch.tensor(np.asarray(grad_y, np.float64)))
    finally:
        torch.set_num_threads(threads)
    return Grads(xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy())


def assert_grads_close(actual: Grads, expected: Grads, rtol: float = 1e-9) -> None:
    for name, a, e in zip(GRADIENTS, actual, expected, strict=True):
        if e is None:
            assert a is None, name
            continue
        assert a.shape == e.shape, (name, a.shape, e.shape)
        scale = max(1.0, float(np.abs(e).max(initial=0.0)))
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, err_msg=name)


def assert_counts_equal_formulas(counts: GradCounts, g: ConvGeometry, method: str, convention: str,
                                 needs=GRADIENTS) -> None:
    """Measured backward counts equal the closed forms exactly, gradient by gradient."""
    assert (counts.method, counts.convention) == (method, convention)
    for name in GRADIENTS:
        part = getattr(counts, name)
        if name not in needs or (name == "bias" and not g.bias):
            assert part is None, name
            continue
        assert part.mults == formulas.backward_mults(g, name, convention).value, name
        assert part.adds == formulas.backward_adds(g, name, convention).value, name
        expected_padded = formulas.padded_mults(g).value if convention == "dense" and name != "bias" else 0
        assert part.padded_mults == expected_padded, name
    assert counts.mults == formulas.backward_mults_total(g, convention, needs).value
    assert counts.adds == formulas.backward_adds_total(g, convention, needs).value


# ---------------------------------------------------------------------- gradients


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_gradients_equal_torch_autograd(method, data):
    pytest.importorskip("torch")
    layer = data.draw(layers_for(method), label="layer")
    g = layer.geometry
    x, w, b = layer.arrays(np.float64, seed=3)
    grad_y = random_grad_y(g)
    assert_grads_close(backward(layer, grad_y, x, w, b, method), torch_grads(grad_y, x, w, b, g))


def _loss(x, w, b, grad_y, g):
    return float(np.sum(numpy_conv2d(x, w, b, g) * grad_y))


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_gradients_equal_central_finite_differences(method, data):
    layer = data.draw(layers_for(method), label="layer")
    g = layer.geometry
    x, w, b = layer.arrays(np.float64, seed=4)
    grad_y = random_grad_y(g)
    grads = backward(layer, grad_y, x, w, b, method)
    rng = np.random.default_rng(5)
    step = 0.5
    operands = {"input": x, "weight": w, "bias": b}
    for name, gradient in zip(GRADIENTS, grads, strict=True):
        if operands[name] is None:
            assert gradient is None
            continue
        for _ in range(2):
            direction = rng.uniform(-1, 1, operands[name].shape)

            def loss_at(sign, name=name, direction=direction):
                moved = dict(operands)
                moved[name] = operands[name] + sign * step * direction
                return _loss(moved["input"], moved["weight"], moved["bias"], grad_y, g)

            difference = (loss_at(1) - loss_at(-1)) / (2 * step)
            magnitude = float(np.sum(np.abs(gradient * direction))) + 1.0
            assert abs(float(np.sum(gradient * direction)) - difference) <= 1e-9 * magnitude, name


# ---------------------------------------------------------------------- counts


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=EXAMPLES)
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_counts_equal_the_formulas_and_counting_does_not_change_the_gradients(method, data, dtype):
    layer = data.draw(layers_for(method), label="layer")
    g = layer.geometry
    x, w, b = layer.arrays(dtype)
    grad_y = random_grad_y(g, dtype)
    uncounted = backward(layer, grad_y, x, w, b, method)
    assert isinstance(uncounted, Grads)
    for convention in conventions(method):
        grads, counts = backward(layer, grad_y, x, w, b, method, count=convention)
        assert_counts_equal_formulas(counts, g, method, convention)
        for a, e in zip(grads, uncounted, strict=True):
            if e is None:
                assert a is None
            else:
                np.testing.assert_array_equal(a, e)
    _, default = backward(layer, grad_y, x, w, b, method, count=True)
    assert default.convention == conventions(method)[0]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("needs", [(), ("input",), ("weight",), ("bias",), ("input", "bias"),
                                   ("weight", "bias"), ("input", "weight"), "input"])
def test_only_the_gradients_asked_for_are_computed_and_counted(method, needs):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, 7, 6))
    w = np.random.default_rng(1).uniform(-1, 1, (6, 2, 3, 2))
    b = np.random.default_rng(2).uniform(-1, 1, 6)
    kw = dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2), groups=2)
    g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, **kw)
    grad_y = random_grad_y(g)
    full = npconv.conv2d_backward(grad_y, x, w, b, **kw, method=method)
    wanted = {needs} if isinstance(needs, str) else set(needs)
    for convention in conventions(method):
        grads, counts = npconv.conv2d_backward(grad_y, x, w, b, **kw, method=method, count=convention,
                                               needs=needs)
        for name, part, reference in zip(GRADIENTS, grads, full, strict=True):
            if name in wanted:
                np.testing.assert_array_equal(part, reference)
            else:
                assert part is None and getattr(counts, name) is None, name
        assert_counts_equal_formulas(counts, g, method, convention, needs=wanted)


# ---------------------------------------------------------------------- separable layers


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=max(5, EXAMPLES // 2))
@given(data=st.data(), out_channels=st.integers(1, 5), bias=st.sampled_from(["keras", "torch", "none"]),
       pass_hidden=st.booleans())
def test_separable_backward_is_pointwise_then_depthwise(method, data, out_channels, bias, pass_hidden):
    layer = data.draw(layers_for(method, depthwise=True), label="depthwise layer")
    x, dw_w, _ = layer.arrays()
    s = SeparableGeometry.from_layer(
        layer.input_shape, out_channels, layer.weight_shape[2:], stride=layer.stride, padding=layer.padding,
        dilation=layer.dilation, depth_multiplier=layer.weight_shape[0] // x.shape[1], bias=bias,
    )
    rng = np.random.default_rng(2)
    dw_b = rng.uniform(-1, 1, s.depthwise.bias_shape) if s.depthwise.bias else None
    pw_w = rng.uniform(-1, 1, s.pointwise.weight_shape)
    pw_b = rng.uniform(-1, 1, s.pointwise.bias_shape) if s.pointwise.bias else None
    args = (layer.stride, layer.padding, layer.dilation)
    grad_y = random_grad_y(s.pointwise)
    hidden = npconv.depthwise_conv2d(x, dw_w, dw_b, *args, method=method)
    pw = npconv.pointwise_conv2d_backward(grad_y, hidden, pw_w, pw_b, method=method)
    dw = npconv.depthwise_conv2d_backward(pw.input, x, dw_w, dw_b, *args, method=method)
    convention = conventions(method)[-1]
    grads, counts = npconv.separable_conv2d_backward(
        grad_y, x, dw_w, pw_w, dw_b, pw_b, *args, method=method, count=convention,
        hidden=hidden if pass_hidden else None,
    )
    assert isinstance(grads, SeparableGrads) and isinstance(counts, SeparableGradCounts)
    for got, expected in zip(grads, (dw.input, dw.weight, pw.weight, dw.bias, pw.bias), strict=True):
        if expected is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, expected)
    assert_counts_equal_formulas(counts.depthwise, s.depthwise, method, convention)
    assert_counts_equal_formulas(counts.pointwise, s.pointwise, method, convention)
    assert counts.mults == formulas.separable_backward_mults_total(s, convention).value
    assert counts.adds == formulas.separable_backward_adds_total(s, convention).value
    if pass_hidden:
        assert counts.hidden_recompute is None
    else:  # the forward recomputation, reported apart
        assert counts.hidden_recompute.mults == formulas.mults(s.depthwise, convention).value
        assert counts.hidden_recompute.adds == formulas.adds(s.depthwise, convention).value


@pytest.mark.parametrize("method", METHODS)
def test_separable_backward_without_weight_gradients_does_not_recompute_the_hidden_layer(method):
    rng = np.random.default_rng(0)
    x, dw_w, pw_w = rng.uniform(-1, 1, (2, 3, 6, 6)), rng.uniform(-1, 1, (3, 1, 3, 3)), rng.uniform(-1, 1, (4, 3, 1, 1))
    grad_y = rng.uniform(-1, 1, (2, 4, 4, 4))
    full = npconv.separable_conv2d_backward(grad_y, x, dw_w, pw_w, method=method)
    grads, counts = npconv.separable_conv2d_backward(grad_y, x, dw_w, pw_w, method=method, count=True,
                                                     needs=("input",))
    np.testing.assert_array_equal(grads.input, full.input)
    assert grads[1:] == (None, None, None, None)
    assert counts.hidden_recompute is None and counts.pointwise.weight is None
    grads, counts = npconv.separable_conv2d_backward(grad_y, x, dw_w, pw_w, method=method, count=True,
                                                     needs=("weight",))
    assert grads.input is None and counts.depthwise.input is None
    np.testing.assert_array_equal(grads.depthwise_weight, full.depthwise_weight)
    np.testing.assert_array_equal(grads.pointwise_weight, full.pointwise_weight)
    assert counts.hidden_recompute is not None


# ---------------------------------------------------------------------- dtypes, layouts, empty batches


@pytest.mark.parametrize("method", METHODS)
def test_float32_stays_float32_and_mixed_dtypes_promote(method):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 3, 6, 5)).astype(np.float32)
    w = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)
    grad_y = rng.uniform(-1, 1, (2, 4, 6, 5)).astype(np.float32)
    grads = npconv.conv2d_backward(grad_y, x, w, b, padding="same", method=method)
    assert [a.dtype for a in grads] == [np.float32] * 3
    exact = npconv.conv2d_backward(grad_y.astype(np.float64), x, w, b, padding="same", method=method)
    assert [a.dtype for a in exact] == [np.float64] * 3  # grad_y takes part in the promotion
    for single, double in zip(grads, exact, strict=True):
        np.testing.assert_allclose(single, double, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_any_memory_layout_of_the_operands(method):
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.uniform(-1, 1, (2, 3, 7, 6)))[:, :, ::-1]
    w = rng.uniform(-1, 1, (4, 3, 3, 2)).transpose(0, 1, 2, 3).copy()[:, :, :, ::-1]
    grad_y = rng.uniform(-1, 1, (2, 4, 7, 7))
    grad_y.flags.writeable = False
    x_copy, w_copy = x.copy(), w.copy()
    expected = npconv.conv2d_backward(np.ascontiguousarray(grad_y), np.ascontiguousarray(x),
                                      np.ascontiguousarray(w), padding=1, method="reference")
    grads = npconv.conv2d_backward(grad_y, x, w, padding=1, method=method)
    assert_grads_close(grads, expected)
    np.testing.assert_array_equal(x, x_copy)  # operands are not modified
    np.testing.assert_array_equal(w, w_copy)


@pytest.mark.parametrize("method", METHODS)
def test_an_empty_batch_gives_empty_and_zero_gradients_and_zero_counts(method):
    x, w, b = np.ones((0, 3, 5, 5)), np.ones((4, 3, 3, 3)), np.ones(4)
    grad_y = np.ones((0, 4, 5, 5))
    for convention in conventions(method):
        grads, counts = npconv.conv2d_backward(grad_y, x, w, b, padding=1, method=method, count=convention)
        assert grads.input.shape == x.shape
        np.testing.assert_array_equal(grads.weight, np.zeros_like(w))
        np.testing.assert_array_equal(grads.bias, np.zeros_like(b))
        assert (counts.mults, counts.adds) == (0, 0)
        g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, padding=1)
        assert_counts_equal_formulas(counts, g, method, convention)


# ---------------------------------------------------------------------- bad input


X, W, B = np.ones((1, 3, 8, 8)), np.ones((4, 3, 3, 3)), np.ones(4)
GY = np.ones((1, 4, 6, 6))


@pytest.mark.parametrize("argument, value, fragment, is_type", [
    ("grad_y", np.ones((1, 4, 6, 5)), "the layer's output shape (N, C_out, OH, OW) = (1, 4, 6, 6), "
                                      "got shape (1, 4, 6, 5)", False),
    ("grad_y", np.ones((4, 6, 6)), "output shape", False),
    ("grad_y", None, "an array of floats, got None", True),
    ("grad_y", GY.astype(np.int32), "convert it yourself", True),
    ("grad_y", GY.astype(np.complex64), "complex convolution is not supported", True),
    ("x", X[0], "a 4-D array (N, C_in, H, W)", False),
    ("x", X.astype(int), "convert it yourself", True),
    ("weight", np.ones((4, 2, 3, 3)), "C_in / groups = 3 / 1 = 3", False),
    ("weight", None, "got None", True),
    ("bias", np.ones(3), "shape (C_out,) = (4,) or None", False),
    ("bias", B.astype(bool), "a float32 or float64 array", True),
    ("stride", 0, "a positive int", False),
    ("padding", "full", "got 'full'", False),
    ("dilation", 1.5, "a positive int", True),
    ("groups", 2, "divisor of the 3 input channels", False),
    ("method", "cuda", "one of 'reference'", False),
    ("count", "yes", "False, True, 'dense' or 'effective'", False),
    ("needs", ("input", "grad"), "a gradient name or a collection of them", False),
    ("needs", "weights", "got 'weights'", False),
    ("needs", 3, "got 3", False),
    ("needs", None, "got None", False),
    ("workspace_limit", 0, "a positive int of bytes", False),
])
def test_a_bad_argument_is_named_in_a_clear_error(argument, value, fragment, is_type):
    call = dict(grad_y=GY, x=X, weight=W, bias=B)
    call[argument] = value
    with pytest.raises(ConvArgumentError) as caught:
        npconv.conv2d_backward(**call)
    error, message = caught.value, str(caught.value)
    assert error.argument == argument, message
    assert message.startswith(f"{argument}: expected ") and ", got " in message, message
    assert fragment in message, message
    assert isinstance(error, ConvTypeError) == is_type, message


def test_bad_arguments_of_the_wrappers_are_named():
    with pytest.raises(ConvArgumentError, match=r"^weight: expected a 1x1 kernel"):
        npconv.pointwise_conv2d_backward(GY, X, W)
    with pytest.raises(ConvArgumentError, match=r"^weight: .*C_in / groups = 3 / 3 = 1"):
        npconv.depthwise_conv2d_backward(GY, X, W)
    dw, pw = np.ones((3, 1, 3, 3)), np.ones((4, 3, 1, 1))
    with pytest.raises(ConvArgumentError, match=r"^hidden: expected the layer's output shape .* = \(1, 3, 6, 6\)"):
        npconv.separable_conv2d_backward(GY, X, dw, pw, hidden=np.ones((1, 3, 6, 5)))
    with pytest.raises(ConvArgumentError, match=r"^grad_y: expected .* = \(1, 4, 6, 6\), got shape \(1, 3, 6, 6\)"):
        npconv.separable_conv2d_backward(np.ones((1, 3, 6, 6)), X, dw, pw)
    with pytest.raises(ConvArgumentError, match=r"^pointwise_weight: expected a 1x1 kernel"):
        npconv.separable_conv2d_backward(GY, X, dw, W)
    with pytest.raises(ConvTypeError, match=r"^hidden: expected a float32 or float64 array"):
        npconv.separable_conv2d_backward(GY, X, dw, pw, hidden=np.ones((1, 3, 6, 6), int))
    with pytest.raises(ConvArgumentError, match=r"^needs: "):
        npconv.separable_conv2d_backward(GY, X, dw, pw, needs=("pointwise_weight",))


@pytest.mark.parametrize("method", METHODS)
def test_a_convention_the_method_does_not_execute_is_refused(method):
    for convention in {"dense", "effective"} - set(conventions(method)):
        with pytest.raises(ConvArgumentError, match=f"^count: expected a convention that method '{method}'"):
            npconv.conv2d_backward(GY, X, W, B, method=method, count=convention)


def test_a_bias_gradient_of_a_layer_without_bias_is_none():
    grads, counts = npconv.conv2d_backward(GY, X, W, None, count=True, needs="bias")
    assert grads == (None, None, None) and counts.parts() == {} and counts.mults == counts.adds == 0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("needs", ["input", "weight"])
def test_a_workspace_too_small_is_refused_before_allocating(method, needs):
    """The smallest chunk (im2col), the list copy (reference) or a contiguous copy of an operand
    (direct, given Fortran-ordered arrays) does not fit: refused, with nothing large allocated."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.uniform(-1, 1, (2, 8, 60, 60)))
    w = np.asfortranarray(rng.uniform(-1, 1, (8, 8, 5, 5)))
    grad_y = np.asfortranarray(rng.uniform(-1, 1, (2, 8, 60, 60)))
    tracemalloc.start()
    try:
        with pytest.raises(ConvMemoryError, match=r"^workspace_limit: expected .* needed$"):
            npconv.conv2d_backward(grad_y, x, w, padding=2, method=method, needs=needs, workspace_limit=64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 10, f"{peak:,} bytes allocated before refusing"


# ---------------------------------------------------------------------- kernel internals


@pytest.mark.parametrize("kernel, stride, dilation", [
    ((3, 3), (2, 2), (3, 3)),  # q = 2: every other tap repeats an earlier one 3 outputs on
    ((4, 3), (3, 2), (2, 3)),  # coprime along H: no tap repeats another's positions
    ((5, 4), (4, 2), (2, 4)),  # gcd 2 along H; stride 2, dilation 4 along W: taps repeat 2 on
    ((3, 2), (1, 3), (1, 1)),  # stride 1: every tap but the first repeats one output on
])
def test_col2im_assigns_each_position_once_and_adds_the_rest(kernel, stride, dilation):
    """Strided and dilated layers, where taps overlap in every pattern: im2col's col2im executes
    exactly T - 1 additions per padded position, and its sums are right."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 3, 17, 16))
    w = rng.uniform(-1, 1, (4, 3, *kernel))
    kw = dict(stride=stride, padding=((2, 1), (0, 3)), dilation=dilation)
    g = ConvGeometry.from_shapes(x.shape, w.shape, **kw)
    grad_y = random_grad_y(g)
    grads, counts = npconv.conv2d_backward(grad_y, x, w, **kw, method="im2col", count=True, needs="input")
    reference = npconv.conv2d_backward(grad_y, x, w, **kw, needs="input")
    np.testing.assert_allclose(grads.input, reference.input, rtol=1e-12, atol=1e-12)
    assert counts.input.adds == formulas.backward_adds(g, "input").value


def test_im2col_gives_the_same_gradients_and_counts_in_every_chunking():
    """Workspace limits that chunk the input gradient by images, then groups, then channels of a
    group, and the weight gradient by images, then output rows: the same values (to rounding),
    the same counts, and workspaces within the limit."""
    from npconv.kernels import im2col

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 6, 9, 8))
    w = rng.uniform(-1, 1, (4, 3, 3, 2))
    b = rng.uniform(-1, 1, 4)
    kw = dict(stride=(2, 1), padding=((1, 2), (1, 0)), dilation=(1, 2), groups=2)
    g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, **kw)
    grad_y = random_grad_y(g)
    expected, expected_counts = npconv.conv2d_backward(grad_y, x, w, b, **kw, count=True)
    levels = set()
    for limit in (2**30, 40_000, 20_000, 8_000, 5_000, 4_000):
        inputs = im2col._InputGradientPlan(g, 8, limit, limit, 0)
        levels.add(("input", inputs.images < 3, inputs.groups < 2, inputs.channels < 3))
        weights = im2col._WeightGradientPlan(g, x, limit, limit, 0)
        levels.add(("weight", weights.images_per_chunk < 3, weights.rows_per_chunk < g.out_height))
        grads, counts = npconv.conv2d_backward(grad_y, x, w, b, **kw, method="im2col", count=True,
                                               workspace_limit=limit)
        for name in GRADIENTS:
            part, reference = getattr(counts, name), getattr(expected_counts, name)
            assert part.workspace_bytes <= limit
            assert (part.mults, part.adds, part.padded_mults) == (reference.mults, reference.adds,
                                                                  reference.padded_mults), (name, limit)
            np.testing.assert_allclose(getattr(grads, name), getattr(expected, name), rtol=1e-12, atol=1e-12)
    assert levels >= {("input", False, False, False), ("input", True, False, False), ("input", True, True, False),
                      ("input", True, True, True), ("weight", False, False), ("weight", True, False),
                      ("weight", True, True)}


@settings(max_examples=EXAMPLES)
@given(data=st.data(), loops=st.sampled_from([("rows", "rows"), ("pixels", "pixels"), ("rows", "pixels"),
                                              ("pixels", "rows")]))
def test_every_direct_loop_nest_gives_the_gradients_and_the_effective_counts(data, loops):
    direct = pytest.importorskip("npconv.kernels.direct")
    layer = data.draw(cross_method_layers(), label="layer")
    g = layer.geometry
    x, w, b = layer.arrays(np.float64, seed=6)
    grad_y = random_grad_y(g)
    grads, counts = direct.conv2d_backward(grad_y, x, w, g, needs=frozenset(GRADIENTS), count=True,
                                           workspace_limit=2**30, loops=loops)
    if formulas.mults(g, "dense").value <= REFERENCE_BUDGET:
        expected = npconv.conv2d_backward(grad_y, x, w, b, **layer.kwargs(), count="effective")[0]
    else:
        expected = npconv.conv2d_backward(grad_y, x, w, b, **layer.kwargs(), method="im2col")
    assert_grads_close(grads, expected if g.bias else expected._replace(bias=None))
    assert_counts_equal_formulas(counts, g, "direct", "effective")
    fast, _ = direct.conv2d_backward(grad_y, x, w, g, needs=frozenset(GRADIENTS), count=False,
                                     workspace_limit=2**30, loops=loops)
    for a, e in zip(fast, grads, strict=True):
        if e is not None:
            np.testing.assert_array_equal(a, e)  # counting runs the same code


def test_the_direct_loop_nests_are_chosen_by_channels_per_group():
    direct = pytest.importorskip("npconv.kernels.direct")
    from npconv.layerset import BENCHMARK_LAYERS

    chosen = {name: direct.choose_backward_loops(g) for name, g in BENCHMARK_LAYERS.items()}
    assert chosen["depthwise 3x3"] == ("rows", "rows")  # one channel per group
    assert chosen["stem s2"] == ("rows", "pixels")  # 3 input channels, 32 output channels
    assert chosen["resnet 3x3"] == chosen["pointwise 1x1"] == ("pixels", "pixels")


@pytest.mark.parametrize("method", METHODS)
def test_gradients_and_counts_do_not_depend_on_the_thread_count_or_on_concurrent_callers(method):
    import threading

    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    x, w, b = rng.uniform(-1, 1, (3, 16, 9, 10)), rng.uniform(-1, 1, (12, 8, 3, 3)), rng.uniform(-1, 1, 12)
    kw = dict(stride=(1, 2), padding=((1, 2), (0, 1)), groups=2)
    grad_y = random_grad_y(ConvGeometry.from_shapes(x.shape, w.shape, b.shape, **kw))
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            runs.append(npconv.conv2d_backward(grad_y, x, w, b, **kw, method=method, count=True))
    finally:
        numba.set_num_threads(before)
    results: list = [None] * 4

    def work(i):
        results[i] = npconv.conv2d_backward(grad_y, x, w, b, **kw, method=method, count=True)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(len(results))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for grads, counts in [*runs[1:], *results]:
        for a, e in zip(grads, runs[0][0], strict=True):
            np.testing.assert_array_equal(a, e)
        assert counts == runs[0][1]
