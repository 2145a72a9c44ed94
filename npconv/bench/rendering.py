"""The benchmark's report for people: the layer tables, the separable table, the plot, the progress line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import IO

from npconv import render
from npconv.bench.machine import import_pyplot
from npconv.bench.report import TORCH, BenchReport, ContestantResult, SeparableReport, Skipped
from npconv.errors import ConvArgumentError, echo
from npconv.render import format_seconds, percent, significant

# ---------------------------------------------------------------------- text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return render.table([header, *rows], "lr")


def _counts_cell(result: ContestantResult) -> str:
    if result.counts is None:
        return "-"
    if result.counts_match_formula:
        estimated = getattr(result.counts, "estimated_mults", 0)
        extra = f" (+{estimated:,} mults estimated in the FFTs)" if estimated else ""
        return f"{result.counts.convention} = formula{extra}"
    return (f"{result.counts.convention} {result.counts.mults:,} != formula {result.formula_mults:,} "
            "MISMATCH")


def _skipped_lines(skipped: Sequence[Skipped]) -> list[str]:
    return [f"  (not timed: {s.reason})" for s in skipped]


def _header_lines(report: BenchReport) -> list[str]:
    s = report.settings
    lines = [f"npconv bench: {s.dtype}, median of {s.repeats} sample{'s' * (s.repeats != 1)} per contestant "
             f"after {s.warm_up_seconds:g} s of warm-up (a sample repeats a call for at least "
             f"{s.min_sample_seconds * 1e3:g} ms)",
             report.environment.describe()]
    if report.environment.busy:
        lines.append(f"Warning: other processes were using the CPU (load average "
                     f"{report.environment.load_average:.2f} on {report.environment.cores} cores): times are "
                     "noisy, multithreaded ones (PyTorch's, the GEMM) most; rerun on a quiet machine.")
    if not report.torch_available:
        lines.append(f"{report.torch_status}: no PyTorch rows and no ratio to it; "
                     "pip install 'npconv[compare]' to add them.")
    return lines


def render_text(report: BenchReport) -> str:
    """The layer tables (or the separable table) for people."""
    lines = _header_lines(report)
    if report.gemm is not None:
        g = report.gemm
        lines.append(f"GEMM peak: NumPy {g.dtype} {g.size}x{g.size} @ {g.size}x{g.size} in "
                     f"{format_seconds(g.timing.median)} (spread {percent(g.timing.relative_iqr)}) = "
                     f"{significant(g.gflops)} GFLOP/s")
    if report.copy is not None:
        c = report.copy
        lines.append(f"Copy bandwidth: np.copyto of {c.nbytes // 2**20} MiB in {format_seconds(c.timing.median)} "
                     f"(spread {percent(c.timing.relative_iqr)}) = {significant(c.gbps)} GB/s read + written")
    if report.layers:
        lines += ["", "Per layer: median time per call of the fast path (count=False); spread = interquartile "
                  "range / median;", "GFLOP/s = mults + adds measured by one count=True call / median time; "
                  "of peak = GFLOP/s / GEMM's;", "count/fast = median time with count=True over without; "
                  "time / torch = median over PyTorch's (lower is faster).",
                  "A memory-bound layer (depthwise, or dense FLOP per byte below the GEMM's FLOP/s over the "
                  "copy's bytes/s) also shows", "GB/s = input + weight + bias + output bytes / median time; of copy = GB/s / "
                  "the copy's."]
    any_torch_formula = False
    for layer in report.layers:
        w = layer.workload
        dense, effective = w.formula_counts("dense")[0], w.formula_counts("effective")[0]
        bound = layer.bandwidth_bound(report.gemm, report.copy)
        lines += ["", f"{layer.name}: {w.describe()}",
                  f"  formula mults: dense {dense:,}" + (f", effective {effective:,}" if effective != dense else
                                                         " (dense = effective: no padding reaches a tap)")]
        if bound:
            lines.append(f"  memory-bound: {significant(layer.arithmetic_intensity)} dense FLOP per byte moved "
                         f"({layer.bytes_moved:,} bytes per call; the machine does "
                         f"{significant(report.gemm.gflops / report.copy.gbps)} FLOP per byte copied)")
        rows = []
        for result in layer.results:
            ratio = layer.ratio_to_torch(result)
            peak = report.fraction_of_peak(result)
            any_torch_formula |= not result.measured
            rows.append([
                result.contestant,
                format_seconds(result.timing.median),
                percent(result.timing.relative_iqr),
                significant(result.gflops) + ("" if result.measured else "*"),
                "-" if peak is None else percent(peak),
                _counts_cell(result),
                "-" if result.counting_over_fast is None else f"{result.counting_over_fast:.2f}",
                "-" if ratio is None else significant(ratio),
            ])
            if bound:
                rows[-1][5:5] = [significant(layer.gbps(result)), percent(report.fraction_of_bandwidth(layer, result))]
        bandwidth = ["GB/s", "of copy"] if bound else []
        lines += _table(["method", "median", "spread", "GFLOP/s", "of peak", *bandwidth, "counts (measured)",
                         "count/fast", "time / torch"], rows)
        lines += _skipped_lines(layer.skipped)
    if report.separable:
        lines += ["", *render_separable(report.separable)]
    if any_torch_formula:
        lines += ["", "* PyTorch counts nothing: its GFLOP/s uses the dense formula."]
    lines += ["", f"Wall time: {report.wall_seconds:.1f} s"]
    return "\n".join(lines)


def _times(ratio: float, fewer: str, more: str) -> str:
    return f"{1 / ratio:.3g}x {fewer}" if ratio <= 1 else f"{ratio:.3g}x {more}"


def render_separable(reports: Sequence[SeparableReport]) -> list[str]:
    """Do fewer multiplications mean faster?  One table per standard / separable pair."""
    lines = ["Does fewer multiplications mean faster?  Separable over standard, per contestant: mults "
             "(measured by",
             "each npconv method in its own counting convention -- winograd and fft count their own "
             "algorithm's) and median time",
             "(fast path).  Lower is fewer / faster."]
    for report in reports:
        lines += ["", f"{report.name}: standard {report.standard.describe()}",
                  f"  separable: {report.separable.describe()}"]
        rows = []
        for pair in report.pairs:
            rows.append([
                pair.contestant,
                format_seconds(pair.standard.timing.median),
                format_seconds(pair.separable.timing.median),
                f"{pair.mult_ratio:.3g}" + ("" if pair.standard.measured else "*"),
                f"{pair.time_ratio:.3g}",
                f"{_times(pair.mult_ratio, 'fewer mults', 'more mults')}, "
                f"{_times(pair.time_ratio, 'faster', 'slower')}",
            ])
        lines += _table(["method", "standard", "separable", "mults sep/std", "time sep/std", "reading"], rows)
        lines += [f"  ({n.contestant}: {n.reason})" for n in report.notes]
        lines += _skipped_lines(report.skipped)
    if any(not p.standard.measured for r in reports for p in r.pairs):
        lines += ["", "* PyTorch counts nothing: its mult ratio is the dense formula's."]
    return lines


# ---------------------------------------------------------------------- plot


def _chart_data(report: BenchReport) -> tuple[list[tuple[str, dict[str, float], dict[str, float]]], str, str]:
    """Per group: (name, contestant -> bar value, contestant -> tick value); the y label; the title."""
    if report.separable:
        groups = [(r.name, {p.contestant: p.time_ratio for p in r.pairs},
                   {p.contestant: p.mult_ratio for p in r.pairs}) for r in report.separable]
        return (groups, "separable time / standard time",
                "Does fewer multiplications mean faster?\nbars: time ratio (below 1: separable is faster); "
                "black ticks: mult ratio")
    if report.torch_available:
        groups = [(layer.name, {r.contestant: layer.ratio_to_torch(r) for r in layer.results
                                if r.contestant != TORCH}, {}) for layer in report.layers]
        return groups, "median time / PyTorch's", "npconv vs PyTorch conv2d (below 1: faster than PyTorch)"
    groups = [(layer.name, {r.contestant: report.fraction_of_peak(r) for r in layer.results}, {})
              for layer in report.layers]
    return groups, "GFLOP/s / NumPy GEMM's", "npconv vs the GEMM peak (1: as fast as a GEMM; no PyTorch)"


def plot_format(path: str | os.PathLike, pyplot: ModuleType, argument: str = "plot") -> str:
    """The image format ``path`` asks for by its suffix, checked before anything is drawn: one that
    matplotlib writes, or PNG for a name without a suffix (written under that very name)."""
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(path).suffix.lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in formats:
        raise ConvArgumentError(argument, "a file name ending in an image format matplotlib writes ("
                                + ", ".join(f".{name}" for name in sorted(formats)) + "; no suffix: PNG)",
                                echo(os.fspath(path)))
    return suffix or "png"


def plot_report(report: BenchReport, path: str | os.PathLike | IO[bytes], pyplot: ModuleType | None = None,
                format: str | None = None) -> None:
    """Bars per layer and method on a log scale, drawn from the line at 1.

    The line at 1 is PyTorch (time / PyTorch's), or the GEMM peak when
    PyTorch is missing; with ``--separable`` it is "as fast as the standard
    layer", and a black tick marks each method's measured mult ratio.
    ``path`` is a file name or a binary file; ``format`` (default: the name's
    suffix, see :func:`plot_format`) is the image format written.
    """
    pyplot = pyplot or import_pyplot()
    if format is None:
        format = plot_format(path, pyplot)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    groups, ylabel, title = _chart_data(report)
    contestants = list(dict.fromkeys(c for _, bars, _ in groups for c in bars))
    values = [v for _, bars, ticks in groups for v in (*bars.values(), *ticks.values())] or [1.0]
    figure, axes = pyplot.subplots(figsize=(max(6.5, 1.5 * len(groups) + 2.5), 4.8), layout="constrained")
    width = 0.8 / max(1, len(contestants))
    for i, contestant in enumerate(contestants):
        xs = [g for g, (_, bars, _) in enumerate(groups) if contestant in bars]
        offsets = [x - 0.4 + width * (i + 0.5) for x in xs]
        ys = [groups[g][1][contestant] for g in xs]
        drawn = axes.bar(offsets, [y - 1 for y in ys], width, bottom=1, label=contestant)
        axes.bar_label(drawn, labels=[f"{y:.2g}" if y < 100 else f"{y:,.0f}" for y in ys], fontsize=8, padding=2)
        ticks = [(x, groups[g][2][contestant]) for x, g in zip(offsets, xs, strict=True) if contestant in groups[g][2]]
        for x, tick in ticks:
            axes.hlines(tick, x - width / 2, x + width / 2, color="black", linewidth=2,
                        label="mult ratio (separable / standard)" if i == 0 and x == ticks[0][0] else None)
    axes.axhline(1, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_ylim(min(*values, 1) / 2.5, max(*values, 1) * 2.5)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xticks(range(len(groups)), [name for name, _, _ in groups])
    axes.set_ylabel(ylabel + " (log scale)")
    s, env = report.settings, report.environment
    axes.set_title(f"{title}\n{s.dtype}, {s.threads} threads, {env.cpu}", fontsize=10)
    axes.legend(fontsize=8, title="method", title_fontsize=8)
    figure.savefig(path, dpi=120, format=format)
    pyplot.close(figure)


class ProgressLine:
    """Progress messages on ``stream`` (stderr): one line rewritten in place on a terminal, plain lines otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()

    def __call__(self, message: str) -> None:
        self.stream.write("\r\033[K" + message if self.interactive else message + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Clear the line on a terminal, so that the report starts on a clean one."""
        if self.interactive:
            self.stream.write("\r\033[K")
            self.stream.flush()

