"""The fast algorithms in the commands: ``npconv bench`` (and ``--separable``) times them on the
layers they run, checks their counts against their own closed forms and says why they skip a layer;
``npconv explain --method`` shows their counts stage by stage with the working.

Every bench run here times one tiny layer with one repeat: seconds, and no claim about speed.
"""

from __future__ import annotations

import json

import pytest

from npconv import bench, formulas
from npconv.geometry import ConvGeometry, SeparableGeometry

from cli_runner import run

TINY_3X3 = ConvGeometry.from_layer((1, 4, 8, 8), 4, 3, padding=1, bias=True)
TINY_5X5 = ConvGeometry.from_layer((1, 2, 9, 9), 3, 5, padding=2, bias=True)
FAST = ("winograd", "winograd2", "winograd4", "fft")


@pytest.fixture(scope="module")
def fast_report():
    """One bench run of im2col and every fast method on a tiny 3x3 and a tiny 5x5 layer."""
    return bench.run_benchmark({"3x3": TINY_3X3, "5x5": TINY_5X5}, methods=("im2col", *FAST), repeats=1)


def test_bench_times_every_fast_method_on_a_3x3_layer_and_checks_its_own_count(fast_report):
    layer = fast_report.layers[0]
    results = {r.contestant: r for r in layer.results}
    assert set(FAST) <= set(results)
    for method in FAST:
        result = results[method]
        expected = formulas.algorithm_counts(TINY_3X3, method)
        assert result.counts.convention == formulas.ALGORITHM_METHODS[method]
        assert (result.formula_mults, result.formula_adds) == (expected.mults.value, expected.adds.value)
        assert result.counts_match_formula
    assert results["fft"].counts.estimated_mults == formulas.fft_counts(TINY_3X3).estimated_mults.value > 0
    text = bench.render_text(fast_report)
    assert "winograd = formula" in text and "mults estimated in the FFTs" in text


def test_bench_says_why_winograd_skips_a_5x5_layer(fast_report):
    layer = fast_report.layers[1]
    assert [r.contestant for r in layer.results if r.contestant != "torch"] == ["im2col", "fft"]
    assert [s.contestant for s in layer.skipped] == ["winograd", "winograd2", "winograd4"]
    for skipped in layer.skipped:
        assert "a layer with a 5x5 kernel" in skipped.reason and "3x3 kernels at stride 1" in skipped.reason


def test_bench_reports_a_layer_the_method_refuses_for_memory_as_skipped(monkeypatch):
    from npconv import memory

    monkeypatch.setattr(memory, "_workspace_limit", 4096)
    report = bench.run_benchmark({"tiny": TINY_5X5}, methods=("fft",), repeats=1)
    (layer,) = report.layers
    (skipped,) = layer.skipped
    assert skipped.contestant == "fft" and "refused the layer" in skipped.reason and "workspace" in skipped.reason


def test_bench_separable_gains_the_fast_rows_and_says_which_part_ran_by_im2col():
    separable = SeparableGeometry.from_layer(TINY_3X3.input_shape, 4, 3, padding=1, bias="keras")
    report = bench.run_benchmark(separable={"tiny": (TINY_3X3, separable)}, methods=("winograd", "fft"),
                                 repeats=1)
    (comparison,) = report.separable
    pairs = {p.contestant: p for p in comparison.pairs}
    assert {"winograd", "fft"} <= set(pairs)
    winograd = pairs["winograd"].separable
    assert winograd.counts.depthwise.convention == "winograd" and winograd.counts.pointwise.convention == "dense"
    assert winograd.counts_match_formula and pairs["fft"].separable.counts_match_formula
    (note,) = comparison.notes
    assert note.contestant == "winograd" and "pointwise part ran by im2col" in note.reason
    lines = bench.render_separable(report.separable)
    assert any("pointwise part ran by im2col" in line for line in lines)
    assert any(line.strip().startswith("fft") for line in lines)


def test_bench_methods_flag_accepts_the_fast_methods():
    assert bench.select_methods("winograd2, FFT") == ("winograd2", "fft")
    assert set(FAST) <= set(bench.select_methods(None))


@pytest.mark.parametrize("method", FAST)
def test_explain_method_shows_each_stage_with_the_numbers_of_the_formula(capsys, method):
    code, out, _ = run(capsys, "explain", "--input", "8x8x4", "--kernel", "3", "--filters", "4", "--padding",
                       "1", "--method", method)
    assert code == 0
    section = out[out.index("Fewer multiplications by algorithm"):]
    expected = formulas.algorithm_counts(TINY_3X3.replace(bias=True), method)
    assert f"mults {expected.mults.value:,} measured" in section
    for stage, (mults, adds) in expected.stages.items():
        assert f"    {stage} (" in section
        assert str(mults) in section and str(adds) in section
    if method == "fft":
        assert "(estimated)" in section and "estimated in the FFTs" in section
    else:
        assert "pointwise  not run" in section and "a layer with a 1x1 kernel" in section


def test_explain_method_json_and_a_layer_it_cannot_run(capsys):
    code, out, _ = run(capsys, "explain", "--method", "winograd,fft", "--json")
    assert code == 0
    data = json.loads(out)["algorithms"]
    assert data["winograd"]["standard"] == {"not_run": "a layer with a 5x5 kernel"}
    fft = data["fft"]["standard"]
    assert fft["convention"] == "fft" and fft["stages"]["input FFT"]["measured"] is False
    assert fft["mults"]["value"] == formulas.fft_counts(ConvGeometry.from_layer((1, 3, 14, 14), 256, 5,
                                                                                  bias=True)).mults.value


def test_explain_method_refuses_a_name_that_is_not_a_fast_method(capsys):
    code, _, err = run(capsys, "explain", "--method", "im2col")
    assert code == 2
    assert "--method: expected comma-separated fast methods among winograd" in err
