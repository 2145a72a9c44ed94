"""``npconv measure``: run a layer through every method and set the counts it measured beside the formulas.

The standard and the depthwise-separable layer of one question run on random
data through every method of :func:`npconv.available_methods` (or those
chosen), once in each counting convention the method executes (its kernel
module's ``CONVENTIONS``), with ``count`` on.  Each run's measured mults and
adds -- for the separable layer, of each part too -- are compared with the
closed forms of :mod:`npconv.formulas` in that convention; the report shows
the dense and the effective formula beside every measurement.

Interpreted methods are slow (their kernels declare ``MULTS_PER_SECOND``):
one that :func:`npconv.kernels.too_slow` says would exceed the time limit is
skipped with a note, or refused when it was asked for by name.  Compiled
methods are called once untimed first, so that compilation is not timed.

NumPy is imported when the layer runs, not when this module is imported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from npconv import kernels, render
from npconv import quantities as Q
from npconv._expr import format_number
from npconv.counts import CONVENTIONS
from npconv.errors import ConvArgumentError, echo
from npconv.formulas import Quantity
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.memory import array_bytes, ensure_arrays_fit

#: Seconds a method may be expected to take on one layer before it is skipped (or refused).
DEFAULT_TIME_LIMIT = 60.0

LAYERS = ("standard", "separable")
_PARTS = ("depthwise", "pointwise")
_COUNTED = ("mults", "adds")


@dataclass(frozen=True)
class Measurement:
    """One run: what the kernel counted, what the formulas say, and how long it took."""

    layer: str
    method: str
    convention: str
    #: ``{"mults": n, "adds": n}``, and for the separable layer ``"depthwise"``/``"pointwise"`` too
    measured: dict[str, object]
    seconds: float
    #: ``"depthwise adds: measured 7,199, formula 7,200"`` for every count that disagrees
    disagreements: tuple[str, ...] = ()

    @property
    def agrees(self) -> bool:
        return not self.disagreements


@dataclass(frozen=True)
class Skipped:
    """A method that did not run, and why."""

    method: str
    reason: str


@dataclass(frozen=True)
class MeasureReport:
    standard: ConvGeometry
    separable: SeparableGeometry
    input_reading: str
    dtype: str
    seed: int
    #: layer -> convention -> counted ("mults"/"adds") -> closed form; "separable" also per part
    formulas: dict[str, dict[str, dict[str, Quantity]]]
    measurements: tuple[Measurement, ...]
    skipped: tuple[Skipped, ...]

    @property
    def all_agree(self) -> bool:
        return all(m.agrees for m in self.measurements)

    @property
    def exit_status(self) -> int:
        """0 when every measured count equals its formula, 1 otherwise."""
        return 0 if self.all_agree else 1


def formulas_for(standard: ConvGeometry, separable: SeparableGeometry) -> dict[str, dict[str, dict[str, Quantity]]]:
    """The closed-form mults and adds of both layers (and the separable parts) in both conventions."""
    layers = Q.Layers(standard, separable)
    result: dict[str, dict[str, dict[str, Quantity]]] = {"standard": {}, "separable": {}}
    for convention in CONVENTIONS:
        result["standard"][convention] = {c: Q.of_part(layers, "standard", c, convention) for c in _COUNTED}
        separable_counts = {c: Q.of_part(layers, "separable", c, convention) for c in _COUNTED}
        for part in _PARTS:
            separable_counts.update({f"{part} {c}": Q.of_part(layers, part, c, convention) for c in _COUNTED})
        result["separable"][convention] = separable_counts
    return result


def choose_methods(text: str | None, name: str = "--methods") -> tuple[tuple[str, ...], bool]:
    """The methods named in ``text`` (comma-separated), or all available ones; and whether named."""
    available = kernels.available_methods()
    if text is None:
        return available, False
    return kernels.choose_methods(text, available, name), True


def check_time_limit(value: object, name: str = "--time-limit") -> float:
    """A positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConvArgumentError(name, "a positive number of seconds", echo(value))
    return float(value)


def dense_mults(standard: ConvGeometry, separable: SeparableGeometry, runs: int) -> int:
    """The dense multiplications of ``runs`` runs of both layers: what a method's time is estimated from."""
    return runs * sum(Q.counts(layer, "dense")["mults"] for layer in (standard, separable))


def estimated_seconds(method: str, standard: ConvGeometry, separable: SeparableGeometry,
                      runs: int) -> float | None:
    """Expected time of ``runs`` runs of both layers for an interpreted method, else None."""
    return kernels.estimated_seconds(method, dense_mults(standard, separable, runs))


def plan(standard: ConvGeometry, separable: SeparableGeometry, methods: Sequence[str], named: bool,
         time_limit: float, name: str = "--methods") -> tuple[list[tuple[str, tuple[str, ...]]], list[Skipped]]:
    """Which methods run in which conventions, and which are skipped for time.

    A method expected to exceed ``time_limit`` is skipped with a note, or refused
    (:class:`~npconv.errors.ConvArgumentError`) when ``named``.
    """
    runs, skipped = [], []
    for method in methods:
        declared = kernels.declaration(method)
        conventions = declared.conventions
        seconds = kernels.too_slow(method, dense_mults(standard, separable, len(conventions)), time_limit)
        if seconds is not None:
            why = f"about {render.format_seconds(seconds)} at ~{declared.mults_per_second:,} mults/s"
            if named:
                raise ConvArgumentError(name, f"methods that finish within --time-limit {time_limit:g} s "
                                        f"(raise it to run them anyway)", f"{method!r}, {why}")
            skipped.append(Skipped(method, f"{why}, over the {time_limit:g} s --time-limit "
                                           f"(a larger one runs it)"))
            continue
        runs.append((method, conventions))
    if not runs:
        raise ConvArgumentError(name, "at least one method expected to finish within --time-limit",
                                "; ".join(f"{s.method}: {s.reason}" for s in skipped))
    return runs, skipped


def _disagreements(measured: dict[str, object], expected: dict[str, Quantity]) -> tuple[str, ...]:
    found = []
    for key, formula in expected.items():
        part, _, what = key.rpartition(" ")
        value = measured[part][what] if part else measured[what]
        if value != formula.value:
            found.append(f"{key}: measured {format_number(value)}, formula {format_number(formula.value)}")
    return tuple(found)


def _counted(counts: object) -> dict[str, int]:
    return {"mults": counts.mults, "adds": counts.adds}


def _operand_shapes(standard: ConvGeometry, separable: SeparableGeometry) -> dict[str, tuple[int, ...] | None]:
    return {
        "x": standard.input_shape, "weight": standard.weight_shape, "bias": standard.bias_shape,
        "depthwise_weight": separable.depthwise.weight_shape, "depthwise_bias": separable.depthwise.bias_shape,
        "pointwise_weight": separable.pointwise.weight_shape, "pointwise_bias": separable.pointwise.bias_shape,
    }


def ensure_operands_fit(standard: ConvGeometry, separable: SeparableGeometry, dtype: object,
                        argument: str = "--input") -> None:
    """Refuse, before any is drawn, operands and outputs that would not fit in memory (naming ``argument``).

    Alive at once: every operand, and the outputs of one call -- the standard layer's, or the
    separable layer's two (its depthwise output feeds its pointwise part).  All in ``dtype``: the
    operands are drawn in it, never drawn in float64 and then cast.
    """
    kind = dtype  # a NumPy dtype or its name: npconv.memory knows both (and this module needs no NumPy)
    operands = [(name, shape, kind) for name, shape in _operand_shapes(standard, separable).items()]
    outputs = max([("the standard output", standard.output_shape, kind)],
                  [("the depthwise output", separable.depthwise.output_shape, kind),
                   ("the separable output", separable.output_shape, kind)],
                  key=lambda arrays: sum(array_bytes(shape, kind) for _, shape, _ in arrays))
    ensure_arrays_fit([*operands, *outputs], f"the random operands and outputs of the layers "
                      f"({getattr(kind, 'name', kind)})", argument)


def run(standard: ConvGeometry, separable: SeparableGeometry, input_reading: str = "",
        methods: Sequence[str] | None = None, named: bool = False, time_limit: float = DEFAULT_TIME_LIMIT,
        dtype: str = "float32", seed: int = 0) -> MeasureReport:
    """Measure both layers with every method of ``methods`` (default: all available)."""
    import numpy as np

    import npconv

    runs, skipped = plan(standard, separable, methods or kernels.available_methods(), named, time_limit)
    kind = np.dtype(dtype)
    shapes = _operand_shapes(standard, separable)
    ensure_operands_fit(standard, separable, kind)
    rng = np.random.default_rng(seed)
    data = {k: None if s is None else rng.standard_normal(s, dtype=kind) for k, s in shapes.items()}
    layout = dict(stride=standard.stride, padding=standard.padding, dilation=standard.dilation)

    def call(layer: str, method: str, convention: str):
        if layer == "standard":
            return npconv.conv2d(data["x"], data["weight"], data["bias"], groups=standard.groups,
                                 method=method, count=convention, **layout)[1]
        return npconv.separable_conv2d(data["x"], data["depthwise_weight"], data["pointwise_weight"],
                                       data["depthwise_bias"], data["pointwise_bias"], method=method,
                                       count=convention, **layout)[1]

    expected = formulas_for(standard, separable)
    measurements = []
    for method, conventions in runs:
        for convention in conventions:
            for layer in LAYERS:
                if not kernels.declaration(method).interpreted:
                    call(layer, method, convention)  # compiles, untimed
                start = time.perf_counter()
                counts = call(layer, method, convention)
                seconds = time.perf_counter() - start
                measured: dict[str, object] = _counted(counts)
                if layer == "separable":
                    measured.update({part: _counted(getattr(counts, part)) for part in _PARTS})
                measurements.append(Measurement(layer, method, convention, measured, seconds,
                                                _disagreements(measured, expected[layer][convention])))
    return MeasureReport(standard, separable, input_reading, dtype, seed, expected, tuple(measurements),
                         tuple(skipped))


# ---------------------------------------------------------------------- output


def _rows(report: MeasureReport, layer: str) -> list[list[str]]:
    rows = [["", "mults", "adds", "check", "time"]]
    for convention, formula in report.formulas[layer].items():
        rows.append([f"formula, {convention}", *(format_number(formula[c].value) for c in _COUNTED), "", ""])
    for m in report.measurements:
        if m.layer == layer:
            rows.append([f"{m.method}, {m.convention}", *(format_number(m.measured[c]) for c in _COUNTED),
                         "ok" if m.agrees else "MISMATCH", render.format_seconds(m.seconds)])
    return rows


def render_text(report: MeasureReport) -> str:
    """The measured counts beside the formulas, layer by layer."""
    sep = report.separable
    lines = ["npconv measure: counts the kernels measured, beside the closed forms", ""]
    if report.input_reading:
        lines.append(report.input_reading)
    lines += [
        f"Standard layer:  {report.standard.describe()}",
        f"Separable layer: depthwise {sep.depthwise.describe()}; then pointwise 1x1 to "
        f"{sep.pointwise.out_channels} channels, bias {'yes' if sep.pointwise.bias else 'no'} "
        f"(bias convention {sep.bias_convention})",
        f"Random {report.dtype} data (seed {report.seed}); each method runs in every counting convention "
        "it executes; a check compares the measured count with the formula of that convention "
        "(for the separable layer, each part's too).",
    ]
    for layer in LAYERS:
        title = "standard" if layer == "standard" else "separable (depthwise + pointwise)"
        lines += ["", title, *render.table(_rows(report, layer), "lrrlr")]
        for m in report.measurements:
            if m.layer == layer:
                lines += [f"    {m.method}, {m.convention}: {d}" for d in m.disagreements]
    lines.append("")
    for s in report.skipped:
        lines.append(f"Skipped {s.method}: {s.reason}.")
    count = len(report.measurements)
    methods = len({m.method for m in report.measurements})
    if report.all_agree:
        lines.append(f"Every measured count equals its formula ({count} runs, {methods} "
                     f"method{'s' * (methods != 1)}).")
    else:
        bad = sum(not m.agrees for m in report.measurements)
        lines.append(f"{bad} of {count} runs measured a count that disagrees with its formula: exit status 1.")
    return "\n".join(lines)


def to_json_dict(report: MeasureReport) -> dict[str, object]:
    """Every formula and measurement as JSON-ready data."""
    return {
        "input_reading": report.input_reading,
        "standard": report.standard.to_dict(),
        "separable": report.separable.to_dict(),
        "dtype": report.dtype,
        "seed": report.seed,
        "formulas": {layer: {c: {k: q.to_dict() for k, q in counts.items()} for c, counts in by.items()}
                     for layer, by in report.formulas.items()},
        "measurements": [
            {"layer": m.layer, "method": m.method, "convention": m.convention, "measured": m.measured,
             "seconds": m.seconds, "agrees": m.agrees, "disagreements": list(m.disagreements)}
            for m in report.measurements
        ],
        "skipped": [{"method": s.method, "reason": s.reason} for s in report.skipped],
        "all_agree": report.all_agree,
    }
