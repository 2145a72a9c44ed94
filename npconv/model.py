"""``npconv model``: a whole network's per-layer table and totals, measured or compared with PyTorch.

:func:`model_report` gathers the numbers (all from :mod:`npconv.network`);
:func:`render_text` and :func:`to_json_dict` print them; :func:`run` is the
command (its parser is in :mod:`npconv.cli`, with the others').  The network
is a built-in, a TOML file, or (``--torch FILE.py:FACTORY``) a PyTorch model
traced by :mod:`npconv.network_from_torch`.  NumPy is imported only for
``--measure`` and PyTorch only for ``--torch`` and ``--compare torch``.

Exit status: 0; 1 when a measurement or a comparison disagrees with the
formulas; 3 when nothing disagrees but the network has operations npconv
does not count (listed, in no total); 2 for a bad flag or file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from npconv import kernels, render
from npconv.errors import EXIT_UNCOUNTED, ConvArgumentError, MissingDependencyError, echo
from npconv.network import (
    ACTIVATION_FUNCTIONS,
    NETWORK_INPUT,
    LayerCount,
    Network,
    NetworkTotals,
    to_standard,
)
from npconv.question import parse_input
from npconv.render import shape_text, short_number

if TYPE_CHECKING:  # pragma: no cover
    from npconv.network_from_torch import TracedModel  # imports PyTorch
    from npconv.network_measure import Measurement  # imports NumPy


#: ``--input-shape`` when not given.
DEFAULT_INPUT_SHAPE = "1x3x224x224"

#: The conventions, stated in every report.
CONVENTIONS_TEXT = (
    "params: learnable -- weights, biases, batch-norm scale and shift (2 per channel); batch-norm running "
    "mean and variance are buffers (PyTorch's word), shown apart, never in params.",
    "mults: multiplications of the conv and linear layers = MACs, the papers' 'mult-adds'; adds: their "
    "additions, bias included (summing T terms takes T - 1); FLOPs = mults + adds. A linear layer counts "
    "as the 1x1 convolution of a 1x1 input that it is.",
    "dense: every tap, padded zeros included (the textbook formula, im2col, PyTorch's FlopCounterMode); "
    "effective: only taps that land on real input (a direct kernel that skips the padding).",
    "Not in mults, listed apart (dense): batch-norm at inference folded to a scale and a shift, 1 mult + "
    "1 add per element (none if folded into the conv); average pooling KH x KW - 1 adds + 1 mult per "
    "output; max pooling KH x KW - 1 comparisons per output; residual addition 1 add per element; "
    "ReLU nothing.",
    "Activations (ReLU, ReLU6, GELU, SiLU, sigmoid, ...; softmax too) are markers: nothing counted. So are "
    "dropout (the identity at inference), concatenation, padding and reshapes: they copy, they do not "
    "compute. A module called twice counts its mults per call and its parameters once.",
)

#: Markers the table leaves out (a count of them is printed), unless another row reads them by name.
_HIDDEN_KINDS = ("relu", *ACTIVATION_FUNCTIONS)


def _share(part: int, total: int) -> str:
    return f"{100 * part / total:.2f}%" if total else "-"


@dataclass(frozen=True)
class ModelReport:
    """Everything ``npconv model`` prints without running anything."""

    network: Network
    totals: NetworkTotals
    #: what the paper reports, e.g. {"params": "4.2M (Howard et al. 2017, Tables 6 and 7)"}
    published: dict[str, str] = field(default_factory=dict)
    #: the separable network a --standard report was rebuilt from, with its totals
    separable: Network | None = None
    separable_totals: NetworkTotals | None = None
    #: how a PyTorch model was traced (``--torch``)
    traced: TracedModel | None = None
    #: lines printed under the header (how the input shape was read)
    notes: tuple[str, ...] = ()


def model_report(network: Network, published: dict[str, str] | None = None,
                 separable: Network | None = None, traced: TracedModel | None = None,
                 notes: tuple[str, ...] = ()) -> ModelReport:
    """Count ``network``; ``separable`` is the network it is the standard rebuild of, if any;
    ``traced``, the PyTorch model it was traced from."""
    return ModelReport(network, network.totals(), dict(published or {}), separable,
                       None if separable is None else separable.totals(), traced, notes)


# ---------------------------------------------------------------------- text


def _table(rows: list[tuple[str, ...]], left: int) -> list[str]:
    """Columns padded to their widest cell: the first ``left`` flush left, the rest flush right."""
    return render.table(rows, "l" * left + "r")


def _layer_cells(row: LayerCount, totals: NetworkTotals) -> tuple[str, ...]:
    params = row.value("params")
    counted = (f"{row.value('mults'):,}", f"{row.value('mults', 'effective'):,}",
               _share(row.value("mults"), totals.mults["dense"])) if row.is_weighted else ("-", "-", "-")
    if row.shares:
        params_cells = ("shared", "-")
    elif row.params is not None:
        params_cells = (f"{params:,}", _share(params, totals.params))
    else:
        params_cells = ("-", "-")
    return (row.name, row.kind, shape_text(row.output_shape) or "-", *params_cells, *counted)


def _reads(rows: tuple[LayerCount, ...]) -> list[str]:
    """Per row, the rows it reads where that is not simply the row above ("" otherwise)."""
    cells, previous = [], NETWORK_INPUT
    for row in rows:
        cells.append("" if row.inputs in ((), (previous,)) else ", ".join(row.inputs))
        previous = row.name
    return cells


def _layer_lines(report: ModelReport) -> list[str]:
    rows = report.network.rows
    reads = _reads(rows)
    read_by_name = {name for cell, row in zip(reads, rows, strict=True) if cell for name in row.inputs}
    shown = [(row, cell) for row, cell in zip(rows, reads, strict=True)
             if row.kind not in _HIDDEN_KINDS or row.name in read_by_name]
    header = ("layer", "kind", "output", "params", "%params", "mults dense", "mults effective", "%mults")
    graph = any(cell for _, cell in shown)
    cells = [_layer_cells(row, report.totals) + ((cell,) if graph else ()) for row, cell in shown]
    lines = render.table([header + (("input",) if graph else ()), *cells], "lll" + "r" * 5 + "l")
    hidden = Counter(row.kind for row in rows) - Counter(row.kind for row, _ in shown)
    hidden_count = sum(hidden.values())
    if hidden_count:
        what = ("ReLU layers" if set(hidden) == {"relu"} else
                "activation layers (" + ", ".join(f"{kind} {n}" for kind, n in hidden.items()) + ")")
        lines.append(f"  ({hidden_count} {what} not shown: no parameters, nothing counted; output shapes are "
                     "H x W x C, or features when flat)")
    if graph:
        lines.append("  (input: the layers a row reads, where that is not the row above; rows in the order "
                     "they run)")
    if any(row.shares for row in rows):
        lines.append("  (shared: a layer applied again with the same weights: mults per call, parameters once, "
                     "at its first call)")
    return lines


def _uncounted_lines(report: ModelReport) -> list[str]:
    rows = [row for row in report.network.rows if row.operation]
    if not rows:
        return []
    by_operation: dict[str, list[str]] = {}
    for row in rows:
        by_operation.setdefault(row.operation, []).append(row.name)
    listed = [(operation, f"{len(names)} call{'s' * (len(names) != 1)}", ", ".join(names[:4])
               + (f", ... ({len(names) - 4} more)" if len(names) > 4 else ""))
              for operation, names in by_operation.items()]
    return [f"NOT COUNTED: {len(rows)} operation{'s' * (len(rows) != 1)} npconv cannot count, in no total above "
            "(their shapes are taken from the trace):", *_table(listed, left=3)]


def _totals_lines(report: ModelReport) -> list[str]:
    t = report.totals
    lines = [f"  parameters  {t.params:,}"]
    if t.uncounted:
        calls = sum(t.uncounted.values())
        lines.insert(0, f"  (excluding {calls} uncounted operation{'s' * (calls != 1)}, listed below)")
    if t.buffers:
        lines.append(f"  buffers     {t.buffers:,}  (batch-norm running mean and variance: not parameters)")
    rows = [("", "dense", "effective")]
    for label, counted in (("mults (MACs)", t.mults), ("adds", t.adds), ("FLOPs = mults + adds", t.flops)):
        rows.append((label, f"{counted['dense']:,}", f"{counted['effective']:,}"))
    lines += _table(rows, left=1)
    kinds = [kind for kind in dict.fromkeys(r.kind for r in report.network.rows)
             if kind in t.mults_by_kind or kind in t.params_by_kind]
    by_kind = [("by kind", "layers", "params", "%params", "mults dense", "%mults")]
    for kind in kinds:
        layers = sum(1 for r in report.network.rows if r.kind == kind)
        params = t.params_by_kind.get(kind, 0)
        mults = (f"{t.mults_by_kind[kind]:,}", _share(t.mults_by_kind[kind], t.mults["dense"])) \
            if kind in t.mults_by_kind else ("-", "-")
        by_kind.append((kind, str(layers), f"{params:,}", _share(params, t.params), *mults))
    lines += ["", *_table(by_kind, left=1)]
    if t.other:
        other = "; ".join("{} {}".format(kind, " + ".join(f"{n:,} {op}" for op, n in ops.items()))
                          for kind, ops in t.other.items())
        lines += ["", f"  Not in mults (dense): {other}"]
    return lines


def _published_lines(report: ModelReport) -> list[str]:
    if not report.published:
        return []
    t = report.totals
    ours = {"mult-adds": f"{short_number(t.mults['dense'])} mults (dense)",
            "params": f"{short_number(t.params)} params"}
    lines = ["Published"]
    for what, text in report.published.items():
        lines.append(f"  {what}: {text}; npconv: {ours.get(what, '')}")
    return lines


def _savings_lines(report: ModelReport) -> list[str]:
    if report.separable is None:
        return []
    sep, std = report.separable_totals, report.totals
    rows = [("", "separable", "standard", "standard / separable")]
    for label, separable, standard in (
        ("params", sep.params, std.params),
        ("mults, dense", sep.mults["dense"], std.mults["dense"]),
        ("mults, effective", sep.mults["effective"], std.mults["effective"]),
    ):
        rows.append((label, f"{separable:,}", f"{standard:,}", f"{standard / separable:.2f}x"))
    return [f"What separability saved: {report.separable.name} against {report.network.name}, rebuilt "
            "with standard convolutions of the same shapes", *_table(rows, left=1)]


def render_text(report: ModelReport) -> str:
    """The per-layer table, the totals, the published numbers and the conventions."""
    net = report.network
    n, c, h, w = net.input_shape
    lines = [f"npconv model {net.name}: {net.description}".rstrip(": "), *report.notes,
             f"Input {shape_text(net.input_shape)} (N x C x H x W = {n}x{c}x{h}x{w}), "
             f"output {shape_text(net.output_shape) or '-'}."]
    if report.traced is not None:
        lines += report.traced.notes()
    lines += ["", *_layer_lines(report), "", "Totals", *_totals_lines(report)]
    for section in (_uncounted_lines(report), _published_lines(report), _savings_lines(report)):
        if section:
            lines += ["", *section]
    lines += ["", "Conventions", *(f"  {text}" for text in CONVENTIONS_TEXT)]
    return "\n".join(lines)


def render_measurement(measurement: Measurement) -> list[str]:
    """``--measure``: each weighted layer's measured counts beside its formulas, then the totals."""
    m = measurement
    rows = [("layer", "measured mults", "formula mults", "measured adds", "formula adds", "seconds", "")]
    for layer in m.layers:
        rows.append((layer.row.name, f"{layer.counts.mults:,}", f"{layer.formula_mults:,}",
                     f"{layer.counts.adds:,}", f"{layer.formula_adds:,}", f"{layer.seconds:.3f}",
                     "ok" if layer.matches else "MISMATCH"))
    rows.append(("total", f"{m.mults:,}", f"{m.formula_mults:,}", f"{m.adds:,}", f"{m.formula_adds:,}",
                 f"{m.seconds:.3f}", "ok" if m.matches else "MISMATCH"))
    verdict = ("measured totals equal the formula totals" if m.matches
               else "MISMATCH: measured counts differ from the formulas")
    return [f"Measured: every conv and linear layer run once on random float32 data through method "
            f"{m.method!r}, counting {m.convention} (the kernel tallies where it multiplies)",
            *_table(rows, left=1), f"  {verdict}; {m.seconds:.1f} s"]


# ---------------------------------------------------------------------- json


def _quantities(row: LayerCount, what: str) -> dict[str, object]:
    return {c: q.to_dict() for c, q in getattr(row, what).items()}


def _row_dict(row: LayerCount, totals: NetworkTotals) -> dict[str, object]:
    return {
        "path": row.path,
        "name": row.name,
        "kind": row.kind,
        "input_shape": list(row.input_shape),
        "output_shape": list(row.output_shape),
        "params": None if row.params is None else row.params.to_dict(),
        "buffers": None if row.buffers is None else row.buffers.to_dict(),
        "mults": _quantities(row, "mults"),
        "adds": _quantities(row, "adds"),
        "other": {op: q.to_dict() for op, q in row.other.items()},
        "inputs": list(row.inputs),
        "shares": row.shares or None,
        "operation": row.operation or None,
        "share": {"params": row.value("params") / totals.params if totals.params else 0,
                  "mults_dense": row.value("mults") / totals.mults["dense"] if totals.mults["dense"] else 0},
    }


def _totals_dict(t: NetworkTotals) -> dict[str, object]:
    return {"params": t.params, "buffers": t.buffers, "mults": t.mults, "adds": t.adds, "flops": t.flops,
            "mults_by_kind": t.mults_by_kind, "params_by_kind": t.params_by_kind, "other": t.other,
            "uncounted": t.uncounted}


def to_json_dict(report: ModelReport) -> dict[str, object]:
    """The report as JSON-ready data."""
    net = report.network
    data: dict[str, object] = {
        "network": net.name,
        "description": net.description,
        "input_shape": list(net.input_shape),
        "output_shape": list(net.output_shape),
        "conventions": list(CONVENTIONS_TEXT),
        "layers": [_row_dict(row, report.totals) for row in net.rows],
        "totals": _totals_dict(report.totals),
        "published": report.published,
    }
    if report.separable is not None:
        data["separable"] = {"network": report.separable.name, "totals": _totals_dict(report.separable_totals)}
    if report.traced is not None:
        data["traced"] = {**report.traced.to_dict(), "notes": report.traced.notes()}
    return data


# ---------------------------------------------------------------------- the command

#: Options of the built-in networks -> their flags.
OPTION_FLAGS = {"width": "--width", "resolution": "--resolution", "classes": "--classes"}


def _list(as_json: bool) -> int:
    from npconv.networks import BUILT_INS

    if as_json:
        print(json.dumps({name: {"options": b.options, "description": b.summary}
                          for name, b in BUILT_INS.items()}, indent=2))
        return 0
    rows = [("name", "options (defaults)", "description")]
    for name, built_in in BUILT_INS.items():
        options = " ".join(f"{OPTION_FLAGS[k]} {v}" for k, v in built_in.options.items())
        rows.append((name, options, built_in.summary))
    lines = ["Built-in networks: npconv model NAME [options]", *_table(rows, left=3),
             "Or a network file: npconv model FILE.toml (format: python -m pydoc npconv.network_toml)",
             "Or a PyTorch model of your own: npconv model --torch FILE.py:FACTORY [--input-shape NxCxHxW]"]
    print("\n".join(lines))
    return 0


def load_network(target: str | None, options: dict[str, object],
                 standard: bool = False) -> tuple[Network, dict[str, str]]:
    """The built-in network or TOML file ``target`` and what its paper reports.

    ``standard``: what the paper reports for the standard rebuild instead.
    """
    from npconv import network_toml, networks

    if not target:
        raise ConvArgumentError("NAME|FILE", "a built-in network name or a .toml file (see --list)",
                                "nothing" if target is None else echo(target))
    if target in networks.BUILT_INS:
        try:
            return networks.build(target, **options), networks.published(target, standard=standard, **options)
        except ConvArgumentError as error:
            if error.argument in OPTION_FLAGS:
                raise ConvArgumentError(OPTION_FLAGS[error.argument], error.expected, error.got) from None
            raise
    if target.endswith(".toml") or os.path.lexists(target):  # (lexists: False for a name too long, too)
        if options:
            flag = OPTION_FLAGS[next(iter(options))]
            raise ConvArgumentError(flag, "a built-in network to apply it to (a file sets its own sizes)",
                                    echo(target))
        return network_toml.load(target, "NAME|FILE"), {}
    raise ConvArgumentError("NAME|FILE", f"a built-in network ({', '.join(networks.BUILT_INS)}) or a .toml file",
                            echo(target))


def load_traced(spec: str, options: dict[str, object], network_argument: str | None,
                input_shape: str | None) -> tuple[TracedModel, str]:
    """``--torch FILE.py:FACTORY``: the model imported, called and traced on ``--input-shape``, and how
    the shape was read."""
    if network_argument is not None:
        raise ConvArgumentError("--torch", "no NAME|FILE beside it (the model comes from FILE.py:FACTORY)",
                                echo(network_argument))
    if options:
        flag = OPTION_FLAGS[next(iter(options))]
        raise ConvArgumentError(flag, "a built-in network to apply it to (a --torch model takes --input-shape)",
                                echo(spec))
    shape, reading = parse_input(input_shape or DEFAULT_INPUT_SHAPE, "--input-shape")
    if input_shape is None:
        reading = reading.replace("Read --input-shape", "Read --input-shape (default)")
    try:
        from npconv import network_from_torch
    except ImportError as error:
        raise MissingDependencyError("--torch", "PyTorch installed (pip install 'npconv[compare]')",
                                     str(error)) from None
    module, _ = network_from_torch.load_factory(spec, "--torch")
    traced = network_from_torch.trace(module, shape, spec, argument="--torch", shape_argument="--input-shape")
    return traced, reading


def _progress(index: int, total: int, row: LayerCount) -> None:
    print(f"\r  measuring {index + 1}/{total}: {row.name:<30}", end="", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """``npconv model``: exit 0; 1 when a measurement or a comparison disagrees with the formulas; 3 when
    nothing disagrees but some operations are not counted."""
    if args.list:
        return _list(args.json)
    for flag in ("method", "convention", "workspace_limit"):
        if getattr(args, flag) is not None and not args.measure:
            name = "--" + flag.replace("_", "-")
            raise ConvArgumentError(name, "--measure beside it", f"{name} {getattr(args, flag)}")
    if args.input_shape is not None and args.torch is None:
        raise ConvArgumentError("--input-shape", "--torch beside it (a built-in network takes --resolution)",
                                repr(args.input_shape))
    options = {k: getattr(args, k) for k in OPTION_FLAGS if getattr(args, k) is not None}
    traced, notes = None, ()
    if args.torch is not None:
        traced, reading = load_traced(args.torch, options, args.network, args.input_shape)
        network, published, notes = traced.network, {}, (reading,)
    else:
        network, published = load_network(args.network, options, args.standard)
    separable = None
    if args.standard:
        separable, network = network, to_standard(network)
        if network is separable:
            raise ConvArgumentError("--standard", "a network with separable layers (separable, or depthwise "
                                    "followed by pointwise)", f"{separable.name}, which has none")
    report = model_report(network, published, separable, traced, notes)

    measurement = comparison = None
    if args.measure:
        from npconv import network_measure

        method = network_measure.choose_method(network, args.method, "--method")
        convention = network_measure.choose_convention(method, args.convention, "--convention")
        estimate = kernels.too_slow(method, report.totals.mults["dense"], 60)
        if estimate is not None:
            print(f"npconv model: warning: the {method} method runs about "
                  f"{kernels.declaration(method).mults_per_second:,} mults/s; this may take "
                  f"{estimate / 60:.0f} minutes", file=sys.stderr)
        progress = _progress if sys.stderr.isatty() else None
        if args.workspace_limit is not None and args.workspace_limit < 1:
            raise ConvArgumentError("--workspace-limit", "a positive number of MiB", str(args.workspace_limit))
        limit = None if args.workspace_limit is None else args.workspace_limit * 2**20
        measurement = network_measure.measure(network, method, convention, workspace_limit=limit,
                                              limit_argument="--workspace-limit", progress=progress)
        if progress is not None:
            print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    if args.compare == "torch":
        try:
            from npconv import network_torch
        except ImportError as error:
            raise MissingDependencyError("--compare", "PyTorch installed (pip install 'npconv[compare]')",
                                         str(error)) from None
        if traced is not None and not args.standard:
            comparison = network_torch.compare_module(traced.module, network.input_shape,
                                                      f"the model itself ({args.torch})", "--compare")
        else:
            comparison = network_torch.compare(network, "--compare")

    agrees = (measurement is None or measurement.matches) and (
        comparison is None or network_torch.agrees(comparison, report.totals))
    if args.json:
        data = to_json_dict(report)
        if measurement is not None:
            data["measured"] = measurement.to_dict()
        if comparison is not None:
            data["torch"] = {**comparison.to_dict(), "agrees": network_torch.agrees(comparison, report.totals)}
        print(json.dumps(data, indent=2))
    else:
        text = render_text(report)
        if measurement is not None:
            text += "\n\n" + "\n".join(render_measurement(measurement))
        if comparison is not None:
            text += "\n\n" + "\n".join(network_torch.explain(comparison, report.totals, network.rows))
        print(text)
    if not agrees:
        return 1
    return EXIT_UNCOUNTED if report.totals.uncounted else 0
