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

A module that runs only some layers (a fast algorithm: Winograd, FFT) also defines

``supports(geometry) -> str | None``
    why it cannot run ``geometry`` (e.g. ``"a layer with stride 2"``), or
    None when it can;
``SUPPORTED``
    the layers it runs, in words, for error messages;

and is listed in :data:`RESTRICTED`.  Its ``CONVENTIONS`` are its own
(:data:`npconv.counts.ALGORITHM_CONVENTIONS`).

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
    "winograd": "npconv.kernels.winograd",
    "winograd2": "npconv.kernels.winograd2",
    "winograd4": "npconv.kernels.winograd4",
    "fft": "npconv.kernels.fft",
}

#: Methods that run only some layers: each module's ``supports(geometry)`` says which.
#: Declared here, not read from the modules, so that listing methods imports no kernel.
RESTRICTED = frozenset({"winograd", "winograd2", "winograd4", "fft"})


def available_methods(geometry=None) -> tuple[str, ...]:
    """Names accepted by ``method=``: those that run ``geometry``, or without one those that run
    every layer.

    Without a geometry, the general methods (not in :data:`RESTRICTED`): what a
    tool that sweeps arbitrary layers iterates over.  With a
    :class:`~npconv.geometry.ConvGeometry`, every method that can run it,
    the fast algorithms whose :func:`supports` accepts it included.
    """
    if geometry is None:
        return tuple(m for m in METHODS if m not in RESTRICTED)
    return tuple(m for m in METHODS if m not in RESTRICTED or supports(m, geometry) is None)


def all_methods() -> tuple[str, ...]:
    """Every name ``method=`` accepts, the restricted ones included."""
    return tuple(METHODS)


def supports(method: object, geometry) -> str | None:
    """Why ``method`` cannot run ``geometry`` (a validated layer), or None when it can."""
    check = getattr(load(method), "supports", None)
    return None if check is None else check(geometry)


def load(method: object) -> ModuleType:
    """The kernel module for ``method``, imported on first use."""
    if not isinstance(method, str) or method not in METHODS:
        raise ConvArgumentError(
            "method", f"one of {', '.join(map(repr, METHODS))}", repr(method)
        )
    return importlib.import_module(METHODS[method])
