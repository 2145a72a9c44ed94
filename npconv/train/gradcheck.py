"""Gradient checking: a layer's ``backward`` against central finite differences of its ``forward``.

For a layer ``f`` and a fixed random ``R`` of the output's shape, the scalar
``L(x, theta) = sum(f(x; theta) * R)`` has ``dL/dy = R``, so ``backward(R)``
must return ``dL/dx`` and leave ``dL/dtheta`` in each parameter's ``grad``.
Each is compared, entry by entry, with the central difference::

    dL/du ~ (L(u + h) - L(u - h)) / (2 h)

whose error is O(h^2) for smooth ``f`` -- in float64 with ``h = 1e-6`` the
two agree to about 1e-8 relative.  ReLU and max pooling are smooth except
where an input sits on a kink (0, or a tie in a window): the checks draw
inputs away from those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npconv.train.layers import Layer


@dataclass(frozen=True)
class GradientCheck:
    """Largest relative error ``|analytic - numeric| / max(1, |numeric|)`` per checked array."""

    errors: dict[str, float]

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)


def numerical_gradient(loss, array: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``loss()`` with respect to every entry of ``array`` (in place)."""
    grad = np.zeros_like(array, dtype=np.float64)
    flat, flat_grad = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        kept = flat[i]
        flat[i] = kept + step
        up = loss()
        flat[i] = kept - step
        down = loss()
        flat[i] = kept
        flat_grad[i] = (up - down) / (2 * step)
    return grad


def check_layer(layer: Layer, x: np.ndarray, *, training: bool = True, seed: int = 0,
                step: float = 1e-6) -> GradientCheck:
    """Compare ``layer.backward`` with finite differences for ``x`` and every parameter (use float64)."""
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    output_weights = rng.standard_normal(layer.forward(x.copy(), training).shape)
    state = [np.copy(b) for b in layer.buffers().values()]  # batch norm updates its running statistics

    def loss() -> float:
        value = float((layer.forward(x, training) * output_weights).sum())
        for buffer, kept in zip(layer.buffers().values(), state, strict=True):
            buffer[...] = kept
        return value

    loss()
    grad_x = layer.backward(output_weights.copy(), need_input_grad=True)
    analytic = {"input": grad_x, **{p.name: np.copy(p.grad) for p in layer.parameters()}}
    numeric = {"input": numerical_gradient(loss, x, step)}
    for p in layer.parameters():
        numeric[p.name] = numerical_gradient(loss, p.value, step)
    errors = {name: float(np.max(np.abs(analytic[name] - numeric[name]) / np.maximum(1.0, np.abs(numeric[name]))))
              for name in numeric}
    return GradientCheck(errors)
