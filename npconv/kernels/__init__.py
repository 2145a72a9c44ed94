"""Convolution algorithms, one module each, all with the same interface -- and the one place that picks them.

A kernel module declares, at its top, what it is:

``NAME``
    the ``method=`` name it answers to;
``CONVENTIONS``
    the counting conventions it can execute (``"dense"``, ``"effective"``),
    its default first;
``MULTS_PER_SECOND``
    ``None`` for a compiled kernel; for an interpreted one, about how many
    multiplications it does a second -- what decides the layers it is too
    slow for (:func:`too_slow`);
``SUPPORTED`` (optional)
    for a kernel that runs only some layers (a fast algorithm: Winograd,
    FFT), which, in words for error messages; such a kernel also defines
    ``supports(geometry) -> str | None`` (why it cannot run ``geometry``, or
    None), its ``CONVENTIONS`` are its own
    (:data:`npconv.counts.ALGORITHM_CONVENTIONS`), and it need not define
    ``conv2d_backward``;

and defines

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

Either function may also take ``out=``: for ``conv2d`` an output array, for
``conv2d_backward`` a ``Grads`` of arrays or ``None`` per gradient, each
checked by the API (shape, dtype, C-contiguous, writeable, no overlap), that
the kernel writes into and returns.  Every built-in kernel does; for one
that does not, the API copies its result into the caller's arrays.

Adding an algorithm is adding a module and one line to :data:`METHODS`.
Modules are imported on first use, so a method that compiles (Numba) costs
nothing until it is asked for; :func:`declaration` reads a module's
declarations (literals) from its source without importing it, so that
choosing methods, and ``npconv --help``, import neither NumPy nor Numba.

Picking: :func:`load` (the module behind ``method=``), :func:`available_methods`
(those that run every layer, or a given one: :func:`supports`), :func:`too_slow`
(the interpreted methods' time estimate against a budget -- the one rule
``measure``, ``model --measure``, ``bench`` and the tests apply) and
:func:`fastest_available` (the default of ``model --measure``).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from npconv.errors import ConvArgumentError, echo

#: ``method`` name -> module that implements it, in the order methods are listed and run.
METHODS: dict[str, str] = {
    "reference": "npconv.kernels.reference",
    "im2col": "npconv.kernels.im2col",
    "direct": "npconv.kernels.direct",
    "winograd": "npconv.kernels.winograd",
    "winograd2": "npconv.kernels.winograd2",
    "winograd4": "npconv.kernels.winograd4",
    "fft": "npconv.kernels.fft",
}

#: The compiled methods in order of preference where one must run a whole network: fastest first.
FASTEST_FIRST = ("direct", "im2col")

_DECLARED = ("NAME", "CONVENTIONS", "MULTS_PER_SECOND", "SUPPORTED")


@dataclass(frozen=True)
class Declaration:
    """What a kernel module declares at its top (see the module docstring)."""

    name: str
    conventions: tuple[str, ...]
    mults_per_second: int | None = None
    supported: str | None = None

    @property
    def interpreted(self) -> bool:
        """Plain Python: slow enough that the layers it runs are limited (:func:`too_slow`)."""
        return self.mults_per_second is not None

    @property
    def restricted(self) -> bool:
        """Runs only some layers (those its ``supports`` accepts)."""
        return self.supported is not None


def available_methods(geometry=None) -> tuple[str, ...]:
    """Names accepted by ``method=`` that run ``geometry`` -- without one, those that run every layer.

    Without a geometry, the general methods: what a tool that sweeps
    arbitrary layers iterates over.  With a
    :class:`~npconv.geometry.ConvGeometry`, every method that can run it,
    the fast algorithms whose :func:`supports` accepts it included.
    """
    if geometry is None:
        return tuple(m for m in METHODS if not declaration(m).restricted)
    return tuple(m for m in METHODS if not declaration(m).restricted or supports(m, geometry) is None)


def all_methods() -> tuple[str, ...]:
    """Every name ``method=`` accepts, the fast algorithms that run only some layers included."""
    return tuple(METHODS)


def supports(method: object, geometry) -> str | None:
    """Why ``method`` cannot run ``geometry`` (a validated layer), or None when it can."""
    if not declaration(method).restricted:
        return None
    return load(method).supports(geometry)


def choose_methods(text: str, allowed, argument: str, expected: str = "comma-separated methods among",
                   note: str = "") -> tuple[str, ...]:
    """The method names in ``text`` (comma-separated; case and spaces ignored, repeats dropped), each
    one of ``allowed``: how every command reads a list of methods.  An empty or unknown name is refused
    naming ``argument``, with ``expected``, the allowed names and ``note`` (in parentheses) in the message."""
    chosen = tuple(dict.fromkeys(token.strip().lower() for token in text.split(",") if token.strip()))
    if not chosen or any(m not in allowed for m in chosen):
        raise ConvArgumentError(argument, f"{expected} {', '.join(allowed)}" + (f" ({note})" if note else ""),
                                echo(text))
    return chosen


def _module_name(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ConvArgumentError(
            "method", f"one of {', '.join(map(repr, METHODS))}", repr(method)
        )
    return METHODS[method]


def load(method: object) -> ModuleType:
    """The kernel module for ``method``, imported on first use."""
    return importlib.import_module(_module_name(method))


@functools.cache
def _declared_in_source(module: str) -> dict[str, object]:
    """The top-level literal assignments of :data:`_DECLARED` names in ``module``'s source."""
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in _DECLARED:
                found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def declaration(method: object) -> Declaration:
    """What ``method``'s kernel declares, without importing it (unless it already is)."""
    module = _module_name(method)
    if module in sys.modules:
        declared = {name: getattr(sys.modules[module], name, None) for name in _DECLARED}
    else:
        declared = _declared_in_source(module)
    return Declaration(declared["NAME"], tuple(declared["CONVENTIONS"]), declared.get("MULTS_PER_SECOND"),
                       declared.get("SUPPORTED"))


def estimated_seconds(method: object, mults: int) -> float | None:
    """About how long an interpreted ``method`` takes for ``mults`` multiplications; None when compiled."""
    rate = declaration(method).mults_per_second
    return None if rate is None else mults / rate


def too_slow(method: object, mults: int, budget_seconds: float) -> float | None:
    """The estimated seconds when ``method`` would take longer than ``budget_seconds`` for ``mults``
    multiplications, else None (compiled methods are never too slow)."""
    seconds = estimated_seconds(method, mults)
    return seconds if seconds is not None and seconds > budget_seconds else None


def interpreted_methods() -> tuple[str, ...]:
    """The available methods whose kernels are interpreted."""
    return tuple(m for m in available_methods() if declaration(m).interpreted)


def fastest_available() -> str | None:
    """The first method of :data:`FASTEST_FIRST` that is available, or None."""
    available = available_methods()
    return next((m for m in FASTEST_FIRST if m in available), None)
