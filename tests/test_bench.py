"""``npconv bench`` and :mod:`npconv.bench`: the report's structure, measured counts, clear errors.

Every run here times one tiny layer with one repeat, so the tests take
seconds; they check how numbers are derived, never how large a time is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import subprocess
import sys

import numpy as np
import pytest

import npconv
from npconv import bench, formulas
from npconv.cli import main
from npconv.geometry import ConvGeometry

#: A layer small enough for the reference kernel: N x C x H x W, padded so that dense != effective.
TINY = ["--input", "1x2x6x6", "--kernel", "3", "--filters", "3", "--padding", "1"]
TINY_GEOMETRY = ConvGeometry.from_layer((1, 2, 6, 6), 3, 3, padding=1, bias=True)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One ``npconv bench`` run on the tiny layer: exit code, stdout, stderr, the JSON, the plot's path."""
    folder = tmp_path_factory.mktemp("bench")
    json_path, plot_path = folder / "bench.json", folder / "bench.png"
    plot = ["--plot", str(plot_path)] if importlib.util.find_spec("matplotlib") else []  # the 'plot' extra
    code, out, err = run_cli("bench", *TINY, "--methods", "reference", "--repeats", "1",
                             "--json", str(json_path), *plot)
    return code, out, err, json.loads(json_path.read_text()), plot_path


def test_json_structure(tiny_run):
    code, _, _, data, _ = tiny_run
    assert code == 0
    assert {"npconv_version", "environment", "settings", "methods", "torch_available", "torch", "gemm_peak",
            "layers", "separable", "wall_seconds"} <= set(data)
    assert {"cpu", "cores", "python", "numpy", "blas", "numba", "torch", "threads", "load_average"} <= set(
        data["environment"])
    assert set(data["environment"]["threads"]) == {"numba", "blas", "torch"}
    assert data["settings"]["repeats"] == 1 and data["settings"]["dtype"] == "float32"
    assert data["methods"] == ["reference"]
    assert data["gemm_peak"]["size"] == bench.GEMM_SIZE and data["gemm_peak"]["gflops"] > 0
    (layer,) = data["layers"]
    assert layer["name"] == "ad-hoc"
    assert layer["geometry"]["input_shape_nchw"] == [1, 2, 6, 6]
    contestants = [r["contestant"] for r in layer["results"]]
    assert "reference" in contestants
    assert ("torch" in contestants) == data["torch_available"]
    for result in layer["results"]:
        assert len(result["timing"]["samples_s"]) == 1
        assert result["timing"]["min_s"] <= result["timing"]["median_s"] <= result["timing"]["max_s"]
        assert result["fraction_of_gemm_peak"] == pytest.approx(result["gflops"] / data["gemm_peak"]["gflops"])


def _reference(data) -> dict:
    return next(r for r in data["layers"][0]["results"] if r["contestant"] == "reference")


def test_gflops_come_from_the_measured_counts(tiny_run):
    result = _reference(tiny_run[3])
    assert result["flops_source"] == "measured (dense)"
    assert result["flops"] == result["counts"]["mults"] + result["counts"]["adds"]
    assert result["gflops"] == pytest.approx(result["counts"]["flops"] / result["timing"]["median_s"] / 1e9,
                                             rel=1e-12)
    assert result["counting_over_fast"] == pytest.approx(
        result["counting_timing"]["median_s"] / result["timing"]["median_s"])


def test_measured_counts_equal_the_formulas(tiny_run):
    result = _reference(tiny_run[3])
    assert result["counts"]["method"] == "reference"
    assert result["counts"]["mults"] == int(formulas.mults(TINY_GEOMETRY, "dense")) == result["formula"]["mults"]
    assert result["counts"]["adds"] == int(formulas.adds(TINY_GEOMETRY, "dense")) == result["formula"]["adds"]
    assert result["counts_match_formula"] is True


def test_ratio_to_torch_is_median_over_torch_median(tiny_run):
    data = tiny_run[3]
    if not data["torch_available"]:
        pytest.skip("PyTorch is not installed")
    results = {r["contestant"]: r for r in data["layers"][0]["results"]}
    torch_median = results["torch"]["timing"]["median_s"]
    assert results["torch"]["flops_source"].startswith("dense formula")
    assert results["reference"]["time_ratio_to_torch"] == pytest.approx(
        results["reference"]["timing"]["median_s"] / torch_median)


def test_table_and_progress_are_printed(tiny_run):
    _, out, err, data, _ = tiny_run
    assert "Ad-hoc layer: Read --input 1x2x6x6 as N x C x H x W" in out
    assert out.count("Environment: ") == 1 and "Threads: Numba " in out and "GEMM peak: NumPy float32" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("method"))
    for column in ("median", "spread", "GFLOP/s", "of peak", "counts (measured)", "count/fast", "time / torch"):
        assert column in header
    row = next(line for line in out.splitlines() if line.strip().startswith("reference"))
    assert "dense = formula" in row
    dense, effective = (int(formulas.mults(TINY_GEOMETRY, c)) for c in ("dense", "effective"))
    assert f"formula mults: dense {dense:,}, effective {effective:,}" in out
    assert f"Wall time: {data['wall_seconds']:.1f} s" in out
    assert "ad-hoc: reference" in err  # the progress line goes to stderr


def test_plot_is_a_png(tiny_run):
    pytest.importorskip("matplotlib")
    code, out, _, _, plot_path = tiny_run
    assert code == 0 and f"Plot written to {plot_path}" in out
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_torch_it_still_runs_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    path = tmp_path / "bench.json"
    code, out, _ = run_cli("bench", *TINY, "--methods", "reference", "--repeats", "1", "--json", str(path))
    assert code == 0
    assert any(line.startswith("PyTorch not available (") for line in out.splitlines()[:6])
    data = json.loads(path.read_text())
    assert data["torch_available"] is False and data["torch"].startswith("PyTorch not available")
    assert data["environment"]["threads"]["torch"] is None
    (result,) = data["layers"][0]["results"]
    assert result["contestant"] == "reference" and result["time_ratio_to_torch"] is None
    row = next(line for line in out.splitlines() if line.strip().startswith("reference"))
    assert row.rstrip().endswith("-")


def test_separable_reports_measured_mult_ratio_beside_time_ratio(tmp_path):
    path = tmp_path / "separable.json"
    code, out, _ = run_cli("bench", "--separable", *TINY, "--methods", "reference", "--repeats", "1",
                           "--json", str(path))
    assert code == 0
    assert "Does fewer multiplications mean faster?" in out
    assert "separable: depthwise 3x3 on 2 channels" in out
    data = json.loads(path.read_text())
    assert data["layers"] == [] and data["gemm_peak"] is None
    (comparison,) = data["separable"]
    pair = next(p for p in comparison["pairs"] if p["contestant"] == "reference")
    standard, separable = pair["standard"], pair["separable"]
    assert separable["counts"]["depthwise"]["mults"] + separable["counts"]["pointwise"]["mults"] == \
        separable["counts"]["mults"]
    assert pair["mult_ratio"] == pytest.approx(separable["counts"]["mults"] / standard["counts"]["mults"])
    assert pair["time_ratio"] == pytest.approx(separable["timing"]["median_s"] / standard["timing"]["median_s"])
    assert standard["counts_match_formula"] and separable["counts_match_formula"]
    assert pair["mult_ratio"] == pytest.approx((2 * 9 * 36 + 3 * 2 * 36) / (3 * 2 * 9 * 36))


def test_methods_are_picked_up_at_run_time(monkeypatch):
    # A method registered after import is timed without any change to the benchmark.
    methods = {"reference": "npconv.kernels.reference", "reference-again": "npconv.kernels.reference"}
    monkeypatch.setattr(npconv.kernels, "METHODS", methods)
    report = bench.run_benchmark({"tiny": TINY_GEOMETRY}, repeats=1)
    assert report.methods == npconv.available_methods() == ("reference", "reference-again")
    (layer,) = report.layers
    assert {"reference", "reference-again"} <= {r.contestant for r in layer.results}


def test_slow_methods_are_skipped_on_large_layers_with_the_reason(tmp_path):
    path = tmp_path / "bench.json"
    code, out, _ = run_cli("bench", "--input", "1x16x32x32", "--kernel", "5", "--filters", "32",
                           "--methods", "reference", "--repeats", "1", "--json", str(path))
    assert code == 0
    (layer,) = json.loads(path.read_text())["layers"]
    assert "reference" not in [r["contestant"] for r in layer["results"]]
    (skipped,) = layer["skipped"]
    assert skipped["contestant"] == "reference" and "at most 1,920,000 dense mults" in skipped["reason"]
    assert "(not timed: reference is timed only on layers of at most" in out


def test_reference_is_timed_on_the_seed_layer_only():
    timed = [name for name, g in bench.BENCHMARK_LAYERS.items()
             if bench.skip_reason("reference", int(formulas.mults(g, "dense"))) is None]
    assert timed == ["seed 5x5"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--methods", "nonsense"], "--methods: expected comma-separated npconv methods from those available"),
        (["--layers", "resnet, bogus"], "--layers: expected comma-separated names from the layer set"),
        (["--layers", "s"], "('s' matches 3: seed 5x5, seed 5x5 p1, stem s2)"),
        (["--threads", "0"], "--threads: expected an int from 1 to"),
        (["--threads", "9999"], "--threads: expected an int from 1 to"),
        (["--repeats", "0"], "--repeats: expected a positive int, got 0"),
        (["--kernel", "99"], "--kernel: expected a kernel whose dilated height"),
        (["--json", "/no/such/folder/out.json"], "--json: expected a file in an existing folder"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv, fragment):
    code, out, err = run_cli("bench", *argv)
    assert code == (5 if "/no/such/folder" in argv[-1] else 2)  # 5: an output folder that does not exist
    assert out == ""
    assert err.startswith("npconv bench: error: ")
    assert fragment in err, err
    assert "Traceback" not in err


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run_cli("bench", *TINY, "--plot", str(tmp_path / "x.png"))
    assert code == 6 and out == ""  # 6: an optional package is missing
    assert "npconv bench: error: --plot: expected matplotlib installed: pip install 'npconv[plot]'" in err


def test_layer_names_ignore_case_and_spaces():
    assert list(bench.select_layers("Resnet 3x3, SEED5x5,large")) == ["resnet 3x3", "seed 5x5", "large 7x7"]
    assert list(bench.select_layers("all")) == list(bench.BENCHMARK_LAYERS)


def test_help_states_the_default_repeats():
    code, out, _ = run_cli("bench", "--help")
    assert code == 0
    assert f"(default: {bench.DEFAULT_REPEATS})" in " ".join(out.split())


def test_bench_help_imports_neither_numpy_nor_numba():
    code = ("import sys\nfrom npconv.cli import main\ntry:\n    main(['bench', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'numba') if m in sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("padding", [((1, 1), (2, 2)), ((0, 1), (2, 0))], ids=["symmetric", "asymmetric"])
def test_torch_contestant_computes_the_same_convolution(padding):
    torch, _ = bench.import_torch()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    geometry = ConvGeometry.from_layer((2, 4, 7, 6), 6, (3, 2), stride=(2, 1), padding=padding, groups=2,
                                       bias=True)
    workload = bench.ConvWorkload(geometry, "float64")
    expected = workload.npconv_call("reference")()
    np.testing.assert_allclose(workload.torch_call(torch)().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_timing_statistics():
    timing = bench.Timing((3.0, 1.0, 2.0, 10.0), calls_per_sample=1)
    assert timing.median == 2.5
    assert timing.quartiles == (1.75, 4.75)
    assert timing.relative_iqr == pytest.approx(3 / 2.5)
    single = bench.Timing((2.0,), calls_per_sample=4)
    assert single.quartiles == (2.0, 2.0) and single.relative_iqr == 0
    fast, slow = bench.time_interleaved([lambda: None, lambda: sum(range(1000))], repeats=3)
    assert len(fast.samples) == len(slow.samples) == 3 and fast.calls_per_sample >= 1


def test_a_busy_machine_is_flagged():
    environment = bench.Environment("a CPU", 2, "3.11", "2.0", "a BLAS", "0.60", "2.13", {"numba": 2},
                                    load_average=1.5)
    assert environment.busy and "load average 1.50 at the start" in environment.describe()
    assert not dataclasses.replace(environment, load_average=0.1).busy
    assert not dataclasses.replace(environment, load_average=None).busy


# ---------------------------------------------------------------------- memory bandwidth


def test_copy_bandwidth_is_in_the_json_and_the_table(tiny_run):
    _, out, _, data, _ = tiny_run
    copy = data["copy_bandwidth"]
    assert copy["nbytes"] == bench.COPY_BYTES and copy["bytes_moved"] == 2 * bench.COPY_BYTES
    assert copy["gbps"] == pytest.approx(copy["bytes_moved"] / copy["timing"]["median_s"] / 1e9)
    assert f"Copy bandwidth: np.copyto of {bench.COPY_BYTES // 2**20} MiB" in out
    (layer,) = data["layers"]
    x, w, b, y = (np.prod(s) * 4 for s in ((1, 2, 6, 6), (3, 2, 3, 3), (3,), (1, 3, 6, 6)))
    assert layer["bytes_moved"] == x + w + b + y
    dense = int(formulas.mults(TINY_GEOMETRY, "dense")) + int(formulas.adds(TINY_GEOMETRY, "dense"))
    assert layer["arithmetic_intensity"] == pytest.approx(dense / layer["bytes_moved"])
    balance = data["gemm_peak"]["gflops"] / copy["gbps"]
    assert layer["bandwidth_bound"] == (layer["arithmetic_intensity"] < balance)
    for result in layer["results"]:
        assert result["gbps"] == pytest.approx(layer["bytes_moved"] / result["timing"]["median_s"] / 1e9)
        assert result["fraction_of_copy_bandwidth"] == pytest.approx(result["gbps"] / copy["gbps"])


def _fake_report(geometry: ConvGeometry, copy_seconds: float, gemm_seconds: float, layer_seconds: float):
    from npconv.bench.report import BenchReport, CopyBandwidth, GemmPeak, LayerReport, Settings
    from npconv.bench.timing import Timing

    workload = bench.ConvWorkload(geometry)
    mults, adds = workload.formula_counts("dense")
    result = bench.ContestantResult("im2col", Timing((layer_seconds,), 1), mults, adds)
    layer = LayerReport("layer", workload, (result,))
    environment = bench.Environment.collect({"numba": 1, "blas": 1, "torch": None}, "PyTorch not available")
    return BenchReport(environment, Settings("float32", 1, 1), "PyTorch not available", GemmPeak(
        256, "float32", Timing((gemm_seconds,), 1)), (layer,), copy=CopyBandwidth(2**20, Timing((copy_seconds,), 1)))


def test_a_depthwise_layer_is_memory_bound_and_shows_its_share_of_the_copy_bandwidth():
    depthwise = ConvGeometry.from_layer((2, 8, 16, 16), 8, 3, padding=1, groups=8, bias=True)
    # copy: 2 MiB moved in 1 ms; the layer moves its bytes in 2 ms: half the copy's bandwidth
    moved = bench.LayerReport("layer", bench.ConvWorkload(depthwise), ()).bytes_moved
    report = _fake_report(depthwise, 1e-3, 1.0, moved / (2**21 / 1e-3 / 2))
    layer, (result,) = report.layers[0], report.layers[0].results
    assert layer.bandwidth_bound(report.gemm, report.copy)
    assert report.fraction_of_bandwidth(layer, result) == pytest.approx(0.5)
    text = bench.render_text(report)
    assert "memory-bound: " in text and "of copy" in text and "50%" in text
    header = next(line for line in text.splitlines() if line.strip().startswith("method"))
    assert "GB/s" in header


def test_a_dense_layer_above_the_machine_balance_is_not_memory_bound():
    dense = ConvGeometry.from_layer((1, 64, 16, 16), 64, 3, padding=1, bias=True)
    # GEMM 2 x 256^3 FLOP in 1 ms = 33.5 GFLOP/s; copy 2 MiB in 1 ms = 2.1 GB/s: balance 16 FLOP per byte
    report = _fake_report(dense, 1e-3, 1e-3, 1e-3)
    layer = report.layers[0]
    assert layer.arithmetic_intensity > 16 and not layer.bandwidth_bound(report.gemm, report.copy)
    text = bench.render_text(report)
    assert "  memory-bound: " not in text and "GB/s" not in next(line for line in text.splitlines() if line.strip().startswith("method"))
