"""The training stack's convolution and linear layers (through the public kernels), and whole models.

Gradient checks in float64 against central finite differences, over a small
Hypothesis space of layers (stride, per-side padding, dilation, groups,
bias); the counts a training step's kernel calls measured, against the
closed forms of :mod:`npconv.train.counting`, exactly.  Runs on the
``reference`` kernels at tiny sizes, and on every other method that has a
backward pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from npconv import kernels
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.network import Conv2d, Flatten, GlobalAvgPool, Linear, Network, ReLU, Separable
from npconv.networks import build
from npconv.train import counting
from npconv.train import layers as L
from npconv.train.gradcheck import check_layer
from npconv.train.layers import OpCounter
from npconv.train.losses import softmax_cross_entropy
from npconv.train.model import adapt, build_model

TOLERANCE = 1e-6

#: Methods with a backward pass (every method, once each has one).
BACKWARD_METHODS = tuple(m for m in kernels.available_methods() if hasattr(kernels.load(m), "conv2d_backward"))


def _weights(rng, geometry: ConvGeometry):
    weight = rng.standard_normal(geometry.weight_shape)
    bias = rng.standard_normal(geometry.out_channels) if geometry.bias else None
    return weight, bias


@st.composite
def conv_geometries(draw):
    groups = draw(st.integers(1, 2))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(st.just("same"), st.tuples(
        st.tuples(st.integers(0, 2), st.integers(0, 2)), st.tuples(st.integers(0, 2), st.integers(0, 2)))))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = (draw(st.integers(3, 5)), draw(st.integers(3, 5)))
    try:
        return ConvGeometry.from_layer((draw(st.integers(1, 2)), in_channels, *size), out_channels, kernel,
                                       stride=stride, padding=padding, dilation=dilation, groups=groups,
                                       bias=draw(st.booleans()))
    except ConvArgumentError:  # a dilated kernel wider than the padded input
        assume(False)


@settings(max_examples=15)
@given(geometry=conv_geometries(), seed=st.integers(0, 2**16))
def test_conv2d_layer_gradients(geometry, seed):
    rng = np.random.default_rng(seed)
    layer = L.Conv2d(geometry, *_weights(rng, geometry), method="reference", name="conv")
    result = check_layer(layer, rng.standard_normal(geometry.input_shape), seed=seed)
    assert set(result.errors) == {"input", "conv.weight", *(("conv.bias",) if geometry.bias else ())}
    assert result.worst < TOLERANCE


@pytest.mark.parametrize("bias", ["keras", "torch", "none"])
def test_separable_and_depthwise_and_pointwise_layer_gradients(bias):
    rng = np.random.default_rng(1)
    geometry = SeparableGeometry.from_layer((2, 2, 5, 4), 3, 3, stride=2, padding="same", depth_multiplier=2,
                                            bias=bias)
    dw, pw = geometry.depthwise, geometry.pointwise
    separable = L.Separable(geometry, *_weights(rng, dw)[:1], *_weights(rng, pw)[:1], _weights(rng, dw)[1],
                            _weights(rng, pw)[1], method="reference", name="sep")
    x = rng.standard_normal(geometry.input_shape)
    result = check_layer(separable, x)
    assert len(result.errors) == 1 + len(separable.parameters())
    assert result.worst < TOLERANCE
    for layer in (L.Depthwise(dw, *_weights(rng, dw), method="reference", name="dw"),
                  L.Pointwise(pw, *_weights(rng, pw), method="reference", name="pw")):
        assert check_layer(layer, rng.standard_normal(layer.geometry.input_shape)).worst < TOLERANCE


def test_linear_layer_gradients_and_torch_layout():
    rng = np.random.default_rng(2)
    geometry = ConvGeometry.from_layer((3, 5, 1, 1), 4, 1, bias=True)
    weight, bias = rng.standard_normal((4, 5)), rng.standard_normal(4)
    layer = L.Linear(geometry, weight, bias, method="reference", name="fc")
    x = rng.standard_normal((3, 5))
    np.testing.assert_allclose(layer.forward(x), x @ weight.T + bias, rtol=1e-12)
    result = check_layer(layer, x)
    assert set(result.errors) == {"input", "fc.weight", "fc.bias"}
    assert result.worst < TOLERANCE


def test_first_layer_computes_no_input_gradient():
    rng = np.random.default_rng(3)
    geometry = ConvGeometry.from_layer((1, 1, 4, 4), 2, 3, padding=1, bias=True)
    layer = L.Conv2d(geometry, *_weights(rng, geometry), method="reference", name="c")
    layer.counter = OpCounter()
    layer.forward(rng.standard_normal(geometry.input_shape))
    assert layer.backward(rng.standard_normal(geometry.output_shape), need_input_grad=False) is None
    forward, backward = layer.counter.mults("forward"), layer.counter.mults("backward")
    assert backward == forward  # the weight gradient only: one product per forward tap


# ---------------------------------------------------------------------- whole models


def _tiny_pair():
    """A small standard / separable pair (the built-ins' shape, fewer channels) on a 6x6 input."""
    def net(conv, name):
        return Network(name, (1, 1, 6, 6), (
            conv(3, 3, padding="same", name="conv1"), ReLU(name="relu1"),
            conv(4, 3, stride=2, padding="same", name="conv2"), ReLU(name="relu2"),
            GlobalAvgPool(name="pool"), Flatten(name="flatten"), Linear(3, name="fc")))
    return net(Conv2d, "tiny_standard"), net(Separable, "tiny_separable")


@pytest.mark.parametrize("method", BACKWARD_METHODS)
@pytest.mark.parametrize("which", [0, 1], ids=["standard", "separable"])
def test_a_models_training_step_counts_equal_the_formulas(method, which):
    network = _tiny_pair()[which]
    model = build_model(network, method=method, dtype=np.float64)
    counter = OpCounter()
    model.attach_counter(counter)
    rng = np.random.default_rng(4)
    batch = 3
    _, grad = softmax_cross_entropy(model.forward(rng.standard_normal((batch, 1, 6, 6))),
                                       rng.integers(0, 3, batch))
    model.backward(grad)
    formula = counting.step_formula(model)
    assert formula.convention == kernels.load(method).CONVENTIONS[0]
    assert counter.mults("forward") == batch * formula.forward
    assert counter.mults("backward") == batch * formula.backward
    assert formula.forward == network.totals().mults[formula.convention]  # the same counts as npconv model
    assert formula.layers[0].needs[0] == "weight"  # no input gradient for the first layer
    assert all(step.needs[0] == "input" for step in formula.layers[1:])


def test_a_model_gradient_check_end_to_end():
    network = _tiny_pair()[1]
    model = build_model(network, method="reference", dtype=np.float64, seed=5)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((2, 1, 6, 6)), np.array([0, 2])

    class Loss(L.Layer):  # the whole model and its loss as one layer, for check_layer
        def forward(self, x, training=True):
            self.loss, self.grad = softmax_cross_entropy(model.forward(x), y)
            return np.array([self.loss])

        def backward(self, grad_y, need_input_grad=True):
            model.body.backward(self.grad * grad_y[0], need_input_grad=True)
            return np.zeros_like(x)

        def parameters(self):
            return model.parameters()

    result = check_layer(Loss(), x)
    del result.errors["input"]  # not computed through the loss layer
    assert len(result.errors) == len(model.parameters())
    assert result.worst < TOLERANCE


def test_built_in_models_parameters_equal_the_network_counts():
    for name in ("small_standard", "small_separable"):
        network, _ = adapt(build(name), 1, 8, 8, 10)
        model = build_model(network)
        assert model.parameter_count() == network.totals().params
        a, b = build_model(network, seed=3), build_model(network, seed=3)
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            np.testing.assert_array_equal(p.value, q.value)
