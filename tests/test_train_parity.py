"""npconv's training tracks PyTorch's step for step (float64, same initial weights, same batches).

For both networks of the course pair and both optimizers: 50 steps of
npconv's stack (kernels of the fastest method with a backward pass) beside
the same network built in ``torch.nn`` (``npconv.network_torch``) with the
weights copied across and ``torch.optim``'s SGD (momentum 0.9) / Adam; after
every step the losses and every weight must agree to a relative 1e-9.
Skipped without PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

from npconv import kernels
from npconv.networks import build
from npconv.train.losses import softmax_cross_entropy
from npconv.train.model import adapt, build_model
from npconv.train.optimizers import make_optimizer

torch = pytest.importorskip("torch")

from npconv.train.torch_twin import torch_optimizer, torch_step, torch_twin  # noqa: E402

STEPS = 50
BATCH = 8
RELATIVE = 1e-9
#: The fastest methods first; the plain-Python reference is far too slow for 200 training steps.
PARITY_METHODS = ("im2col", "direct")


def _method() -> str:
    for method in PARITY_METHODS:
        if method in kernels.available_methods() and hasattr(kernels.load(method), "conv2d_backward"):
            return method
    pytest.skip("no fast method with a backward pass")


def _batches(rng: np.random.Generator):
    """Digit-like 8x8 images: the digits when scikit-learn is there, else smooth random blobs."""
    try:
        from npconv.train.data import load_digits

        digits = load_digits()
        x, y = digits.x_train.astype(np.float64), digits.y_train
    except ValueError:  # no scikit-learn
        x = rng.standard_normal((STEPS * BATCH, 1, 8, 8))
        y = rng.integers(0, 10, len(x))
    order = rng.permutation(len(y))
    for step in range(STEPS):
        take = order[(step * BATCH) % len(y):][:BATCH]
        yield x[take], y[take]


def _deviation(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-300))


def track(net: str, optimizer_name: str, method: str) -> tuple[float, float]:
    """Train both for :data:`STEPS` steps; the largest relative deviation of the loss and of any
    weight tensor over all steps."""
    network, _ = adapt(build(net), 1, 8, 8, 10)
    model = build_model(network, seed=0, method=method, dtype=np.float64)
    twin = torch_twin(model)
    lr = 0.05 if optimizer_name == "sgd" else 0.01
    optimizer = make_optimizer(optimizer_name, model.parameters(), lr, momentum=0.9)
    twin_optimizer = torch_optimizer(optimizer, twin)
    worst_loss = worst_weight = 0.0
    for x, y in _batches(np.random.default_rng(1)):
        loss, grad = softmax_cross_entropy(model.forward(x), y)
        optimizer.zero_grad()
        model.backward(grad)
        optimizer.step()
        twin_loss = torch_step(twin, twin_optimizer, x, y)
        worst_loss = max(worst_loss, abs(loss - twin_loss) / abs(twin_loss))
        for p, t in zip(model.parameters(), twin.parameters(), strict=True):
            worst_weight = max(worst_weight, _deviation(p.value, t.detach().numpy()))
    return worst_loss, worst_weight


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("net", ["small_standard", "small_separable"])
def test_training_tracks_pytorch_step_for_step(net, optimizer):
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # one thread each: small GEMMs, and no oversubscription on a shared machine
    with threadpool_limits(1, user_api="blas"):
        worst_loss, worst_weight = track(net, optimizer, _method())
    assert worst_loss < RELATIVE
    assert worst_weight < RELATIVE


def test_the_twin_starts_with_the_same_weights_and_outputs():
    network, _ = adapt(build("small_separable"), 1, 8, 8, 10)
    model = build_model(network, seed=3, method="reference", dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((2, 1, 8, 8))
    np.testing.assert_allclose(model.forward(x), torch_twin(model)(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
