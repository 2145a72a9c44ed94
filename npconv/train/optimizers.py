"""SGD with momentum and Adam, with PyTorch's exact update rules (``torch.optim.SGD``, ``torch.optim.Adam``).

Each optimizer holds a list of :class:`~npconv.train.layers.Parameter` and,
on :meth:`step`, updates every ``value`` in place from its ``grad``:

SGD (``dampening = 0``, not Nesterov), for gradient ``g`` and momentum ``mu``::

    g   = g + weight_decay x p                  (L2 penalty, if any)
    buf = g                                      on the first step
    buf = mu x buf + g                           afterwards
    p   = p - lr x buf                           (buf = g when mu = 0)

Adam (not AMSGrad), step ``t = 1, 2, ...``::

    g = g + weight_decay x p
    m = beta1 x m + (1 - beta1) x g
    v = beta2 x v + (1 - beta2) x g^2
    p = p - (lr / (1 - beta1^t)) x m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

(``eps`` is added after the bias correction of ``v``, as PyTorch does.)

Learning-rate schedules (:data:`SCHEDULES`) set ``optimizer.lr`` at the start
of each epoch: ``constant``, or ``cosine`` -- PyTorch's
``CosineAnnealingLR(T_max=epochs, eta_min=0)`` stepped once per epoch,
``lr_e = lr x (1 + cos(pi x e / epochs)) / 2`` for epoch ``e = 0, 1, ...``:
large steps first, small ones at the end, so the last epochs settle instead
of rattling around the minimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from npconv.errors import ConvArgumentError
from npconv.train.layers import Parameter


class Optimizer:
    """Base: the parameters and :meth:`zero_grad`."""

    def __init__(self, parameters: Sequence[Parameter], lr: float):
        self.parameters = list(parameters)
        self.lr = lr
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def _gradient(self, p: Parameter, weight_decay: float) -> np.ndarray:
        if p.grad is None:
            raise ConvArgumentError(p.name, "a gradient (run backward before step)", "none")
        return p.grad + weight_decay * p.value if weight_decay else p.grad


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as ``torch.optim.SGD``."""

    def __init__(self, parameters: Sequence[Parameter], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(parameters, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buffers: list[np.ndarray | None] = [None] * len(self.parameters)

    def step(self) -> None:
        self.steps += 1
        for i, p in enumerate(self.parameters):
            g = self._gradient(p, self.weight_decay)
            if self.momentum:
                if self.buffers[i] is None:
                    self.buffers[i] = np.array(g, copy=True)
                else:
                    self.buffers[i] *= self.momentum
                    self.buffers[i] += g
                g = self.buffers[i]
            p.value -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with PyTorch's bias correction and placement of ``eps``."""

    def __init__(self, parameters: Sequence[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(parameters, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.m = [np.zeros_like(p.value) for p in self.parameters]
        self.v = [np.zeros_like(p.value) for p in self.parameters]

    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.steps)
        correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        for p, m, v in zip(self.parameters, self.m, self.v, strict=True):
            g = self._gradient(p, self.weight_decay)
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p.value -= step_size * m / (np.sqrt(v) / correction2_sqrt + self.eps)


def cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based) of ``epochs`` under cosine annealing to 0."""
    return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2


def constant_lr(lr: float, epoch: int, epochs: int) -> float:
    """``lr`` for every epoch."""
    return lr


#: ``--schedule`` name -> ``(lr, epoch, epochs) -> the epoch's learning rate``.
SCHEDULES = {"cosine": cosine_lr, "constant": constant_lr}


#: ``--optimizer`` name -> class.
OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, parameters: Sequence[Parameter], lr: float, momentum: float = 0.9) -> Optimizer:
    """``"sgd"`` (with ``momentum``) or ``"adam"`` over ``parameters``."""
    if name == "sgd":
        return SGD(parameters, lr, momentum=momentum)
    if name == "adam":
        return Adam(parameters, lr)
    raise ConvArgumentError("optimizer", f"one of {', '.join(OPTIMIZERS)}", repr(name))
