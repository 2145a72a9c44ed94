"""The training stack's layers, loss, optimizers and initialisation.

Every layer's backward is checked against central finite differences in
float64 (:mod:`npconv.train.gradcheck`), over small Hypothesis-drawn shapes
for the layers with geometry; batch norm, pooling, the loss and both
optimizers are also checked against PyTorch where it is installed.  The
convolution layers, which call the public kernels, are checked in
``test_train_conv_layers.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npconv.geometry import ConvGeometry
from npconv.train import layers as L
from npconv.train.gradcheck import check_layer, numerical_gradient
from npconv.train.initialisation import bias_uniform, fan_in, kaiming_uniform
from npconv.train.losses import softmax_cross_entropy
from npconv.train.optimizers import SGD, Adam, cosine_lr, make_optimizer

TOLERANCE = 1e-6  # finite differences in float64 with h = 1e-6 agree to about 1e-8


def _away_from_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Distinct values at least 0.01 from 0 and from each other: ReLU and max pooling are smooth there."""
    size = math.prod(shape)
    values = (rng.permutation(size) - size / 2 + 0.5) * 0.05
    return values.reshape(shape)


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 3.0])
    grad = numerical_gradient(lambda: float((x ** 3).sum()), x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-8)


def test_gradient_check_catches_a_wrong_backward():
    class Wrong(L.ReLU):
        def backward(self, grad_y, need_input_grad=True):
            return 2 * super().backward(grad_y, need_input_grad)

    x = _away_from_kinks(np.random.default_rng(0), (2, 3, 4, 4))
    assert check_layer(L.ReLU(), x).worst < TOLERANCE
    assert check_layer(Wrong(), x).worst > 0.5


@pytest.mark.parametrize("layer", [L.ReLU(), L.Flatten(), L.GlobalAvgPool()], ids=lambda layer: layer.kind)
def test_simple_layers_gradients(layer):
    x = _away_from_kinks(np.random.default_rng(1), (3, 4, 5, 6))
    assert check_layer(layer, x).worst < TOLERANCE


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 5)], ids=["2d", "1d"])
def test_batch_norm_gradients(shape, training):
    rng = np.random.default_rng(2)
    layer = L.BatchNorm(shape[1], dtype=np.float64, name="bn")
    layer.weight.value[...] = rng.uniform(0.5, 2, shape[1])
    layer.bias.value[...] = rng.standard_normal(shape[1])
    layer.running_mean[...] = rng.standard_normal(shape[1])
    layer.running_var[...] = rng.uniform(0.5, 2, shape[1])
    result = check_layer(layer, rng.standard_normal(shape) * 3 + 1, training=training)
    assert set(result.errors) == {"input", "bn.weight", "bn.bias"}
    assert result.worst < TOLERANCE


@st.composite
def pool_geometries(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # PyTorch's rule: padding at most half the kernel on each side
    padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in kernel)
    height, width = draw(st.integers(kernel[0], 7)), draw(st.integers(kernel[1], 7))
    channels = draw(st.integers(1, 3))
    return ConvGeometry.from_layer((draw(st.integers(1, 3)), channels, height, width), channels, kernel,
                                   stride=stride, padding=padding, groups=channels)


@settings(max_examples=25)
@given(geometry=pool_geometries(), seed=st.integers(0, 2**16))
def test_pooling_gradients(geometry, seed):
    x = _away_from_kinks(np.random.default_rng(seed), geometry.input_shape)
    for layer in (L.MaxPool(geometry), L.AvgPool(geometry)):
        assert layer.forward(x).shape == geometry.output_shape
        assert check_layer(layer, x).worst < TOLERANCE, layer.kind


def test_sequential_and_residual_gradients():
    rng = np.random.default_rng(3)
    bn = L.BatchNorm(2, dtype=np.float64, name="bn")
    block = L.Residual(L.Sequential([bn, L.ReLU()]), L.Sequential([]), name="block")
    net = L.Sequential([block, L.GlobalAvgPool(), L.Flatten()])
    x = _away_from_kinks(rng, (3, 2, 4, 4))
    result = check_layer(net, x)
    assert set(result.errors) == {"input", "bn.weight", "bn.bias"}
    assert result.worst < TOLERANCE


def test_sequential_skips_input_gradients_nobody_uses():
    bn = L.BatchNorm(2, dtype=np.float64, name="bn")
    net = L.Sequential([L.ReLU(), bn, L.ReLU()])
    assert net.input_grad_needed(False) == [False, False, True]
    assert net.input_grad_needed(True) == [True, True, True]
    x = np.random.default_rng(4).standard_normal((2, 2, 3, 3))
    net.forward(x)
    assert net.backward(np.ones_like(x), need_input_grad=False) is None
    assert bn.weight.grad is not None


# ---------------------------------------------------------------------- the loss


def test_softmax_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 4)) * 3
    labels = rng.integers(0, 4, 6)
    loss, grad = softmax_cross_entropy(logits, labels)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.log(probs[np.arange(6), labels]).mean(), rel=1e-12)
    numeric = numerical_gradient(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    np.testing.assert_allclose(grad, numeric, atol=1e-8)


def test_softmax_cross_entropy_is_stable_for_large_logits():
    loss, grad = softmax_cross_entropy(np.array([[1000.0, 0.0], [0.0, -1000.0]]), np.array([1, 0]))
    assert math.isfinite(loss) and loss == pytest.approx(500.0)
    assert np.all(np.isfinite(grad))


# ---------------------------------------------------------------------- optimizers, by hand


def _parameter(values) -> L.Parameter:
    return L.Parameter("p", np.array(values, dtype=np.float64))


def test_sgd_momentum_update_rule():
    p = _parameter([1.0, 2.0])
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0, -1.0])
    optimizer.step()  # buf = g
    np.testing.assert_allclose(p.value, [0.9, 2.1])
    p.grad = np.array([0.5, 0.5])
    optimizer.step()  # buf = 0.9 * [1, -1] + [0.5, 0.5] = [1.4, -0.4]
    np.testing.assert_allclose(p.value, [0.9 - 0.14, 2.1 + 0.04])


def test_adam_first_step_moves_each_weight_by_lr():
    # after one step m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps) ~ lr * sign(g)
    p = _parameter([1.0, 2.0, 3.0])
    optimizer = Adam([p], lr=0.01)
    p.grad = np.array([3.0, -0.5, 1e-3])
    optimizer.step()
    np.testing.assert_allclose(p.value, [0.99, 2.01, 2.99], rtol=1e-6)


def test_make_optimizer_refuses_unknown_names():
    with pytest.raises(ValueError, match="optimizer: expected one of sgd, adam, got 'rmsprop'"):
        make_optimizer("rmsprop", [], 0.1)


def test_step_without_a_gradient_is_refused():
    with pytest.raises(ValueError, match="p: expected a gradient"):
        SGD([_parameter([1.0])], lr=0.1).step()


# ---------------------------------------------------------------------- initialisation


def test_initialisation_is_seeded_and_within_pytorchs_bounds():
    shape = (16, 3, 3, 3)
    assert fan_in(shape) == 27 and fan_in((10, 32)) == 32
    a = kaiming_uniform(np.random.default_rng(7), shape)
    b = kaiming_uniform(np.random.default_rng(7), shape)
    np.testing.assert_array_equal(a, b)
    bound = 1 / math.sqrt(27)  # gain sqrt(1/3) x sqrt(3 / fan_in)
    assert a.dtype == np.float32 and np.abs(a).max() <= bound and np.abs(a).max() > 0.9 * bound
    bias = bias_uniform(np.random.default_rng(8), 16, shape)
    assert bias.shape == (16,) and np.abs(bias).max() <= bound


# ---------------------------------------------------------------------- against PyTorch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_batch_norm_matches_torch_training_and_running_statistics(torch):
    rng = np.random.default_rng(9)
    ours = L.BatchNorm(3, dtype=np.float64, name="bn")
    theirs = torch.nn.BatchNorm2d(3).double()
    for _ in range(3):  # running statistics after three batches, momentum 0.1, unbiased variance
        x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
        grad = rng.standard_normal(x.shape)
        xt = torch.from_numpy(x).requires_grad_()
        theirs.zero_grad()
        yt = theirs(xt)
        yt.backward(torch.from_numpy(grad))
        np.testing.assert_allclose(ours.forward(x, training=True), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.backward(grad), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
    theirs.eval()
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ours.forward(x, training=False), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


@settings(max_examples=15)
@given(geometry=pool_geometries(), seed=st.integers(0, 2**16))
def test_pooling_matches_torch(torch, geometry, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(geometry.input_shape)
    grad = rng.standard_normal(geometry.output_shape)
    (top, bottom), (left, right) = geometry.padding
    kernel, stride = (geometry.kernel_h, geometry.kernel_w), geometry.stride
    for ours, theirs, fill in ((L.MaxPool(geometry), torch.nn.MaxPool2d(kernel, stride), -math.inf),
                               (L.AvgPool(geometry), torch.nn.AvgPool2d(kernel, stride), 0.0)):
        xt = torch.from_numpy(x).requires_grad_()
        yt = theirs(torch.nn.functional.pad(xt, (left, right, top, bottom), value=fill))
        yt.backward(torch.from_numpy(grad))
        np.testing.assert_allclose(ours.forward(x), yt.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(ours.backward(grad), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_loss_matches_torch(torch):
    rng = np.random.default_rng(10)
    logits, labels = rng.standard_normal((8, 10)) * 4, rng.integers(0, 10, 8)
    lt = torch.from_numpy(logits).requires_grad_()
    loss_t = torch.nn.functional.cross_entropy(lt, torch.from_numpy(labels))
    loss_t.backward()
    loss, grad = softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(loss_t.item(), rel=1e-13)
    np.testing.assert_allclose(grad, lt.grad.numpy(), rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizers_match_torch_for_100_steps(torch, name):
    rng = np.random.default_rng(11)
    start = rng.standard_normal((5, 3))
    ours = L.Parameter("w", start.copy())
    theirs = torch.nn.Parameter(torch.from_numpy(start.copy()))
    optimizer = make_optimizer(name, [ours], lr=0.05, momentum=0.9)
    from npconv.train.torch_twin import torch_optimizer

    torch_opt = torch_optimizer(optimizer, torch.nn.ParameterList([theirs]))
    for _ in range(100):
        grad = rng.standard_normal(start.shape) + ours.value  # depends on the weights, as a real one does
        ours.grad = grad
        theirs.grad = torch.from_numpy(grad.copy())
        optimizer.step()
        torch_opt.step()
    np.testing.assert_allclose(ours.value, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_cosine_schedule_matches_torch(torch):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30)
    for epoch in range(30):
        assert cosine_lr(0.01, epoch, 30) == pytest.approx(scheduler.get_last_lr()[0], rel=1e-12, abs=1e-18)
        optimizer.step()
        scheduler.step()
