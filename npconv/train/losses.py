"""Softmax cross-entropy, the loss of a classifier: mean over the batch, as ``torch.nn.CrossEntropyLoss``.

For logits ``z`` (N, K) and labels ``y`` (N,) in ``0 .. K-1``::

    loss = mean_n( -log softmax(z_n)[y_n] ) = mean_n( logsumexp(z_n) - z_n[y_n] )
    dloss/dz_n = (softmax(z_n) - onehot(y_n)) / N

``logsumexp`` subtracts each row's maximum first, so large logits do not
overflow.
"""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log(softmax(z))`` row by row, computed stably."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """``(loss, dloss/dlogits)`` for logits ``(N, K)`` and integer labels ``(N,)``."""
    n = logits.shape[0]
    log_probs = log_softmax(logits)
    rows = np.arange(n)
    loss = float(-log_probs[rows, labels].mean())
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1.0
    grad /= n
    return loss, grad
