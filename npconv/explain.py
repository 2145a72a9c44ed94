"""``npconv explain``: a standard and a depthwise-separable layer side by side, working shown.

:func:`explain` builds a plain-data report (every number comes from
:mod:`npconv.quantities`); :func:`render_text` prints it for people and
:func:`to_json_dict` for programs.  Pure Python: no NumPy, no Numba.
"""

from __future__ import annotations

from dataclasses import dataclass

from npconv import formulas as F
from npconv import quantities as Q
from npconv import render
from npconv._expr import format_number
from npconv.formulas import Quantity
from npconv.geometry import BIAS_CONVENTIONS, ConvGeometry, SeparableGeometry
from npconv.quantities import COUNTED, PARTS

_COUNTED_NAMES = {"mults": "multiplications", "adds": "additions", "flops": "FLOPs (mults + adds)"}

_BIAS_WORDS = {
    "keras": "the standard layer has a bias; the separable layer has one on its pointwise part only, "
             "as Keras' SeparableConv2D",
    "torch": "the standard layer has a bias; the separable layer has one on both parts, "
             "as two torch.nn.Conv2d layers",
    "none": "no layer has a bias",
}


@dataclass(frozen=True)
class Explanation:
    """Everything ``npconv explain`` shows, computed once by :func:`explain`."""

    standard: ConvGeometry
    separable: SeparableGeometry
    bias_convention: str
    input_reading: str
    #: ``("dense",)`` when there is no padding (the two counts agree), else both conventions
    conventions: tuple[str, ...]
    output_size: tuple[Quantity, Quantity]
    #: part name -> {"output_shape", "params", "mults", "adds", "flops"}; counts keyed by convention
    quantities: dict[str, dict[str, object]]
    other_conventions: dict[str, Quantity]
    ratios: dict[str, object]
    #: with ``--backward``: :func:`npconv.quantities.backward_table`, else None
    backward: dict[str, dict[str, object]] | None = None
    #: with ``--method``: fast method -> part -> its :class:`~npconv.formulas.AlgorithmCounts`, or
    #: the reason it cannot run that part (a str)
    algorithms: dict[str, dict[str, object]] | None = None


#: The parts a fast algorithm's counts are shown for (the separable layer is its two parts).
ALGORITHM_PARTS = ("standard", "depthwise", "pointwise")


def algorithm_table(layers: Q.Layers, methods: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """method -> part -> :func:`npconv.formulas.algorithm_counts`, or why the method cannot run the part."""
    table: dict[str, dict[str, object]] = {}
    for method in methods:
        table[method] = {}
        for part in ALGORITHM_PARTS:
            layer = layers.part(part)
            problem = F.algorithm_unsupported(layer, method)
            table[method][part] = problem if problem is not None else F.algorithm_counts(layer, method)
    return table


def explain(standard: ConvGeometry, separable: SeparableGeometry, bias_convention: str,
            input_reading: str = "", backward: bool = False, methods: tuple[str, ...] = ()) -> Explanation:
    """Compute every quantity shown for ``standard`` vs ``separable`` (``backward``: a training step's
    too; ``methods``: the counts of those fast algorithms, :data:`npconv.formulas.ALGORITHM_METHODS`)."""
    layers = Q.Layers(standard, separable)
    conventions = ("dense", "effective") if standard.has_padding else ("dense",)
    quantities = Q.table(layers, conventions)

    dw, pw = separable.depthwise, separable.pointwise
    other: dict[str, Quantity] = {}
    for name in BIAS_CONVENTIONS:
        if name != bias_convention:
            layer = SeparableGeometry(
                dw.replace(bias=BIAS_CONVENTIONS[name][0]), pw.replace(bias=BIAS_CONVENTIONS[name][1])
            )
            other[f"separable, {name}"] = Q.quantity(layer, "params")
    other["standard, " + ("no bias" if standard.bias else "with bias")] = F.params(standard, not standard.bias)

    ratios = {
        "params": Q.ratio(layers, "params"),
        "mults": {c: _defined_ratio(layers, "mults", c) for c in conventions},
        "mobilenet": Q.ratio(layers, "mobilenet"),
    }
    return Explanation(
        standard, separable, bias_convention, input_reading, conventions,
        (F.output_height(standard), F.output_width(standard)), quantities, other, ratios,
        Q.backward_table(layers, conventions) if backward else None,
        algorithm_table(layers, methods) if methods else None,
    )


# ---------------------------------------------------------------------- text


def _defined_ratio(layers: Q.Layers, kind: str, convention: str) -> Quantity | F.UndefinedRatio:
    """The ratio, or why it is undefined: a layer whose taps all land on the padding counts no
    effective multiplications (the dense ones are never 0)."""
    try:
        return Q.ratio(layers, kind, convention)
    except F.UndefinedRatio as undefined:
        return undefined


def _times_fewer(q: Quantity) -> str:
    return f"{float(1 / q.value):.1f}x fewer" if q.value else ""


def _layer_line(e: Explanation) -> str:
    g = e.standard
    parts = render.layer_phrases(g)
    if g.groups > 1:
        parts.append(f"groups {g.groups} (standard layer)")
    if e.separable.depth_multiplier > 1:
        parts.append(f"depth multiplier {e.separable.depth_multiplier}")
    return "Layer: " + ", ".join(parts) + "."


def _table(e: Explanation) -> list[str]:
    layout = "H x W x C" if e.standard.batch == 1 else "N x H x W x C"
    rows = [("", *PARTS), (f"output ({layout})", *(render.shape_text(e.quantities[p]["output_shape"])
                                                     for p in PARTS))]
    rows.append(("parameters", *(format_number(e.quantities[p]["params"].value) for p in PARTS)))
    for what in COUNTED:
        for convention in e.conventions:
            label = _COUNTED_NAMES[what] + (f", {convention}" if len(e.conventions) > 1 else "")
            rows.append((label, *(format_number(e.quantities[p][what][convention].value) for p in PARTS)))
    return render.table(rows, "lr")


def _working(label: str, q: Quantity, indent: str = "    ") -> list[str]:
    """``label  formula``, then ``= working = value`` under it, then the named sub-quantities."""
    pad = " " * len(label)
    lines = [f"{indent}{label}  {q.formula}"]
    if q.working != q.formula:
        lines.append(f"{indent}{pad}  = {q}")
    elif str(q) != q.working:
        lines.append(f"{indent}{pad}  = {format_number(q.value)}")
    lines += _details(q, f"{indent}{pad}    ")
    return lines


def _details(q: Quantity, indent: str) -> list[str]:
    """One line per sub-quantity that the working names (``T_H = 4 + 5 x 10 + 4 = 58 (...)``)."""
    lines = []
    for detail in q.details:
        if detail.label.startswith(("depthwise", "pointwise")):
            continue  # the parts have lines of their own
        lines.append(f"{indent}{detail.label} = {detail}  ({detail.formula})")
        lines += _details(detail, indent + "  ")
    return lines


def render_text(e: Explanation) -> str:
    """The human-readable report."""
    lines = ["npconv explain: standard vs depthwise-separable convolution", ""]
    if e.input_reading:
        lines.append(e.input_reading)
    lines.append(_layer_line(e))
    lines.append(f"Bias convention: {e.bias_convention}: {_BIAS_WORDS[e.bias_convention]}.")
    if len(e.conventions) > 1:
        lines.append("Counting: dense = every tap, padded zeros included (textbook, im2col); "
                     "effective = only taps on real input (direct loops).")
    else:
        lines.append("Counting: no padding, so dense (every tap) and effective (taps on real input) agree.")
    lines += ["", *_table(e), "", "Working", "  Output size (standard, and the depthwise part of separable)"]
    label_width = max(len(p) for p in PARTS)
    for q in e.output_size:
        lines += _working(q.label.ljust(label_width), q)

    lines.append("  Parameters")
    for part in PARTS:
        lines += _working(part.ljust(label_width), e.quantities[part]["params"])
    others = "; ".join(f"{name} {format_number(q.value)}" for name, q in e.other_conventions.items())
    lines.append(f"    other bias conventions: {others}")

    for what in COUNTED:
        for convention in e.conventions:
            heading = _COUNTED_NAMES[what][0].upper() + _COUNTED_NAMES[what][1:]
            note = {
                "mults": "",
                "adds": ": each output sums its terms (products, and the bias if any); T terms take T - 1 additions",
                "flops": "",
            }[what]
            suffix = f" ({convention})" if len(e.conventions) > 1 else ""
            lines.append(f"  {heading}{suffix}{note}")
            for part in PARTS:
                lines += _working(part.ljust(label_width), e.quantities[part][what][convention])

    lines.append("  Ratios, separable / standard")
    r = e.ratios
    shown = {"params": r["params"]}
    for convention, q in r["mults"].items():
        shown["mults" if len(e.conventions) == 1 else f"mults, {convention}"] = q
    ratio_width = max(len(k) for k in shown)
    for key, q in shown.items():
        if isinstance(q, F.UndefinedRatio):
            lines.append(f"    {key.ljust(ratio_width)}  undefined: the standard layer multiplies nothing "
                         "here (no tap lands on real input)")
            continue
        lines.append(f"    {key.ljust(ratio_width)}  {q}  ({_times_fewer(q)})")
    mobile = r["mobilenet"]
    lines.append(f"    MobileNet reduction {mobile.formula}")
    if e.standard.groups == 1:
        lines.append(f"      = {mobile}  (equals the dense multiplication ratio)")
    else:
        lines.append(f"      = {mobile}  (against an ungrouped standard layer; this one has "
                     f"groups {e.standard.groups})")
    if e.backward is not None:
        lines += ["", *_backward_lines(e)]
    if e.algorithms is not None:
        lines += _algorithm_lines(e)
    return "\n".join(lines)


# ---------------------------------------------------------------------- fast algorithms

_ALGORITHM_WHY = {
    "winograd": ("Winograd's minimal filtering makes an m x m tile of outputs from (m + 2)^2 products instead of "
                 "9 m^2,", "at the price of transforms whose constants other than +-1 cost a multiplication "
                 "each (K_X) and whose terms cost additions (A_X)."),
    "fft": ("FFT convolution multiplies spectra: one complex product (4 mults, 2 adds) per frequency bin, image "
            "and channel pair,", "whatever the kernel size; the images' FFTs run inside the library and are "
            "estimated, never added to the measured counts."),
}


def _algorithm_lines(e: Explanation) -> list[str]:
    lines = []
    width = max(len(p) for p in ALGORITHM_PARTS)
    for method, parts in e.algorithms.items():
        convention = F.ALGORITHM_METHODS[method]
        algorithms = sorted({c.algorithm for c in parts.values() if not isinstance(c, str)})
        lines += ["", f"Fewer multiplications by algorithm: method {method!r}"
                  + (f" ({', '.join(algorithms)})" if algorithms else "") + f", convention {convention!r}",
                  *(f"  {line}" for line in _ALGORITHM_WHY[convention])]
        for part in ALGORITHM_PARTS:
            counted = parts[part]
            label = part.ljust(width)
            if isinstance(counted, str):
                lines.append(f"  {label}  not run: {method} runs "
                             f"{'stride-1 layers' if convention == 'fft' else '3x3 stride-1 layers'} only, "
                             f"not {counted}")
                continue
            dense = e.quantities[part]["mults"]["dense"]
            ratio = dense.value / counted.mults.value if counted.mults.value else 1
            versus = f"{ratio:.2f}x fewer" if ratio >= 1 else f"{1 / ratio:.2f}x more"
            lines.append(f"  {label}  {counted.algorithm}: mults {format_number(counted.mults.value)} measured "
                         f"({versus} than the dense {format_number(dense.value)}), adds "
                         f"{format_number(counted.adds.value)}"
                         + (f"; estimated in the FFTs: {format_number(counted.estimated_mults.value)} mults, "
                            f"{format_number(counted.estimated_adds.value)} adds"
                            if counted.estimated_mults.value else ""))
            for stage, (mults, adds) in counted.stages.items():
                kind = "measured" if counted.measured[stage] else "estimated"
                lines.append(f"    {stage} ({kind})")
                lines += _working("mults", mults, "      ")
                lines += _working("adds ", adds, "      ")
            for detail in counted.details:
                lines.append(f"    {detail.label} = {detail}  ({detail.formula})")
    return lines


# ---------------------------------------------------------------------- backward

_GRADIENT_ROWS = (("forward", "mults", "forward mults"), ("input", "mults", "input-gradient mults"),
                  ("weight", "mults", "weight-gradient mults"), ("bias", "adds", "bias-gradient adds"),
                  ("step", "mults", "training-step mults"), ("step", "passes", "  = forward passes"),
                  ("step", "adds", "training-step adds"),
                  ("first_layer_step", "mults", "first layer: step mults"),
                  ("first_layer_step", "passes", "  = forward passes"))

_WHY_THREE = (
    "Every forward tap multiplies one input value by one weight.  The backward pass gives every tap",
    "one product in the input gradient (grad_y x weight, summed where the tap read the input) and one",
    "in the weight gradient (grad_y x input, summed at the tap's weight): the forward products twice",
    "more, so a training step costs about three forward passes.  The bias gradient only adds grad_y.",
    "A first layer needs no input gradient (its input is the data): about two forward passes.",
    "A separable first layer still computes its pointwise part's input gradient, which the depthwise",
    "weights' gradient is made from: it saves only the depthwise part's input gradient.",
)


def _passes(step: Quantity) -> str:
    passes = next((d for d in step.details if d.label == "forward passes"), None)
    return "" if passes is None else f"{float(passes.value):.2f}"


def _backward_cell(e: Explanation, part: str, row: str, what: str, convention: str) -> str:
    counted = e.backward[part][row][convention]
    return _passes(counted["mults"]) if what == "passes" else format_number(counted[what].value)


def _backward_lines(e: Explanation) -> list[str]:
    """The training-step table, why it costs about three forward passes, and the gradients' working."""
    lines = ["Backward pass: one training step = the forward pass, then the gradients", ""]
    rows = [("", *PARTS)]
    for convention in e.conventions:
        suffix = f", {convention}" if len(e.conventions) > 1 else ""
        rows += [(label + ("" if what == "passes" else suffix),
                  *(_backward_cell(e, part, row, what, convention) for part in PARTS))
                 for row, what, label in _GRADIENT_ROWS]
    lines += render.table(rows, "lr")
    lines += ["", "  Why about three forward passes", *(f"    {line}" for line in _WHY_THREE)]
    label_width = max(len(p) for p in PARTS)
    for convention in e.conventions:
        suffix = f" ({convention})" if len(e.conventions) > 1 else ""
        for wrt, heading in (("input", "Input gradient"), ("weight", "Weight gradient"),
                             ("bias", "Bias gradient")):
            lines.append(f"  {heading} adds{suffix}: summing T terms takes T - 1 additions"
                         + ("" if wrt == "bias" else "; its mults are the forward mults"))
            for part in PARTS:
                lines += _working(part.ljust(label_width), e.backward[part][wrt][convention]["adds"])
    return lines


# ---------------------------------------------------------------------- json


def to_json_dict(e: Explanation) -> dict[str, object]:
    """The report as JSON-ready data: every quantity with value, formula and working."""

    def part(name: str) -> dict[str, object]:
        q = e.quantities[name]
        return {
            "output_shape_nchw": list(q["output_shape"]),
            "output_hwc": render.shape_text(q["output_shape"]),
            "params": q["params"].to_dict(),
            **{what: {c: v.to_dict() for c, v in q[what].items()} for what in COUNTED},
        }

    g = e.standard
    return {
        "input_reading": e.input_reading,
        "layer": {**g.to_dict(), "depth_multiplier": e.separable.depth_multiplier},
        "bias_convention": e.bias_convention,
        "counting_conventions": list(e.conventions),
        "output_size": {q.label: q.to_dict() for q in e.output_size},
        **{name: part(name) for name in PARTS},
        "other_bias_conventions": {k: q.to_dict() for k, q in e.other_conventions.items()},
        "ratios": {
            "params": e.ratios["params"].to_dict(),
            "mults": {c: None if isinstance(q, F.UndefinedRatio) else q.to_dict()
                      for c, q in e.ratios["mults"].items()},
            "mobilenet": e.ratios["mobilenet"].to_dict(),
        },
        **({} if e.algorithms is None else {"algorithms": {
            method: {part: {"not_run": c} if isinstance(c, str) else c.to_dict() for part, c in parts.items()}
            for method, parts in e.algorithms.items()}}),
        **({} if e.backward is None else {"backward": {
            part: {row: {c: {what: q.to_dict() for what, q in counted.items()} for c, counted in by.items()}
                   for row, by in rows.items()}
            for part, rows in e.backward.items()}}),
    }
