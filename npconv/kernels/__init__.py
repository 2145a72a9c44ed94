"""Convolution algorithms, one module each, all with the same interface.

A kernel module defines

``NAME``
    the ``method=`` name it answers to;
``CONVENTIONS``
    the counting conventions it can execute (``"dense"``, ``"effective"``),
    its default first;
``conv2d(x, weight, bias, geometry, *, convention, count, workspace_limit) -> (y, counts | None)``
    the general grouped, strided, padded, dilated 2-D cross-correlation on
    arrays already validated by :mod:`npconv.api` (same float dtype, shapes
    matching ``geometry``; any memory layout); ``counts`` is a
    :class:`~npconv.counts.Counts` tallied while running when ``count`` is
    true.  ``workspace_limit`` (bytes, resolved by the API) bounds what the
    kernel allocates besides the output: check with
    :func:`npconv.memory.ensure_workspace_fits` before allocating, chunk
    where possible, and report what was allocated in
    ``Counts.workspace_bytes``.
``conv2d_backward(grad_y, x, weight, geometry, *, needs, convention, count, workspace_limit) -> (grads, counts | None)``
    the gradients of that cross-correlation, given ``grad_y`` (shape
    ``geometry.output_shape``, validated by the API): a
    :class:`~npconv.gradients.Grads` ``(input, weight, bias)`` with ``None``
    for every gradient not in ``needs`` (a frozenset of
    :data:`~npconv.gradients.GRADIENTS`) and for the bias gradient of a layer
    without bias (``geometry.bias`` is False); a gradient not needed is
    neither computed nor counted, and ``x`` is read only for the weight
    gradient (the input gradient needs ``grad_y`` and ``weight``, the bias
    gradient ``grad_y``).  ``counts`` is a
    :class:`~npconv.gradients.GradCounts` with one
    :class:`~npconv.counts.Counts` per computed gradient, tallied while
    running, in the semantics of :mod:`npconv.gradients` (equal to
    ``npconv.formulas.backward_mults`` / ``backward_adds``).  Workspace as
    for ``conv2d``.

Adding an algorithm is adding a module and one line to :data:`METHODS`.
Modules are imported on first use, so a method that compiles (Numba) costs
nothing until it is asked for.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from npconv.errors import ConvArgumentError

#: ``method`` name -> module that implements it.
METHODS: dict[str, str] = {
    "reference": "npconv.kernels.reference",
    "im2col": "npconv.kernels.im2col",
    "direct": "npconv.kernels.direct",
}


def available_methods() -> tuple[str, ...]:
    """Names accepted by ``method=``."""
    return tuple(METHODS)


def load(method: object) -> ModuleType:
    """The kernel module for ``method``, imported on first use."""
    if not isinstance(method, str) or method not in METHODS:
        raise ConvArgumentError(
            "method", f"one of {', '.join(map(repr, METHODS))}", repr(method)
        )
    return importlib.import_module(METHODS[method])
