"""``npconv measure``: every available method's measured counts against the closed forms."""

from __future__ import annotations

import json
import types

import pytest

from npconv import kernels, measure
from npconv.counts import Counts
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry

from cli_runner import run

SMALL = ["--input", "9x8x4", "--kernel", "3", "--filters", "6", "--padding", "1", "--stride", "2"]


def expected_runs() -> set[tuple[str, str, str]]:
    """(layer, method, convention) for every available method and each convention it executes."""
    return {(layer, method, convention) for method in kernels.available_methods()
            for convention in kernels.load(method).CONVENTIONS for layer in measure.LAYERS}


def test_default_example_every_measured_count_equals_its_formula(capsys):
    code, out, err = run(capsys, "measure")
    assert code == 0, out + err
    assert "Every measured count equals its formula" in out
    assert "MISMATCH" not in out
    standard, separable = out.split("\nseparable (depthwise + pointwise)\n")
    # no padding: dense and effective agree; 10*10*256*75 = 1,920,000 with a bias, so adds = mults,
    # and the separable layer 7,500 + 76,800 = 84,300 mults, 7,200 + 76,800 = 84,000 adds
    for layer, (mults, adds) in ((standard, ("1,920,000", "1,920,000")), (separable, ("84,300", "84,000"))):
        rows = {" ".join(line.split()[:2]): line.split()[2:] for line in layer.splitlines()
                if line.startswith("  ") and "," in line}
        assert rows["formula, dense"] == rows["formula, effective"] == [mults, adds]
        for method in kernels.available_methods():
            for convention in kernels.load(method).CONVENTIONS:
                assert rows[f"{method}, {convention}"][:3] == [mults, adds, "ok"]


def test_json_has_every_method_in_every_convention_it_executes(capsys):
    code, out, _ = run(capsys, "measure", "--json", *SMALL, "--bias", "none")
    data = json.loads(out)
    assert code == 0 and data["all_agree"] is True
    assert {(m["layer"], m["method"], m["convention"]) for m in data["measurements"]} == expected_runs()
    # padding 1 makes the conventions differ: 9x8 input, 3x3, stride 2, padding 1 -> 5x4 output;
    # dense mults OH x OW x C_out x KH x KW x C_in = 5*4*6*9*4 = 4,320
    formulas = data["formulas"]["standard"]
    assert formulas["dense"]["mults"]["value"] == 4_320
    # output row o reads input rows 2o - 1 .. 2o + 1 of 0..8: valid 2, 3, 3, 3, 2 -> T_H = 13;
    # columns of 0..7: 2, 3, 3, 3 -> T_W = 11; effective = C_out x C_in x T_H x T_W = 6*4*13*11
    assert formulas["effective"]["mults"]["value"] == 3_432
    for m in data["measurements"]:
        expected = data["formulas"][m["layer"]][m["convention"]]
        assert m["measured"]["mults"] == expected["mults"]["value"]
        assert m["measured"]["adds"] == expected["adds"]["value"]
        if m["layer"] == "separable":
            assert m["measured"]["depthwise"]["mults"] == expected["depthwise mults"]["value"]
            assert m["measured"]["pointwise"]["adds"] == expected["pointwise adds"]["value"]


@pytest.fixture
def lying_method(monkeypatch):
    """A method that runs the reference kernel but reports one multiplication too many."""
    reference = kernels.load("reference")

    def conv2d(x, weight, bias, geometry, *, convention, count, workspace_limit):
        y, counts = reference.conv2d(x, weight, bias, geometry, convention=convention, count=True,
                                     workspace_limit=workspace_limit)
        return y, Counts(counts.mults + 1, counts.adds, convention, "liar") if count else None

    module = types.ModuleType("npconv_test_liar")
    module.NAME, module.CONVENTIONS, module.conv2d = "liar", ("dense",), conv2d
    monkeypatch.setitem(__import__("sys").modules, "npconv_test_liar", module)
    monkeypatch.setitem(kernels.METHODS, "liar", "npconv_test_liar")
    return "liar"


def test_a_disagreeing_count_fails_with_exit_status_1(capsys, lying_method):
    code, out, _ = run(capsys, "measure", *SMALL, "--methods", f"reference,{lying_method}")
    assert code == 1
    assert "  liar, dense " in out and "MISMATCH" in out
    # 5*4*6*9*4 = 4,320 dense mults, one too many measured
    assert "    liar, dense: mults: measured 4,321, formula 4,320" in out
    assert "    liar, dense: depthwise mults: measured" in out
    assert "runs measured a count that disagrees with its formula: exit status 1" in out


def test_interpreted_method_skipped_over_the_time_limit(capsys):
    # 2 conventions x (4,320 + 5*4*4*9 + 5*4*6*4) = 2 x 5,520 dense mults: 11.0 ms at ~1e6/s
    code, out, _ = run(capsys, "measure", *SMALL, "--time-limit", "0.001")
    assert code == 0
    assert ("Skipped reference: about 11.0 ms at ~1,000,000 mults/s, over the 0.001 s --time-limit "
            "(a larger one runs it).") in out
    assert "reference, dense" not in out


def test_named_method_over_the_time_limit_is_refused(capsys):
    code, out, err = run(capsys, "measure", "--input", "224x224x64", "--kernel", "3", "--filters", "64",
                         "--methods", "reference")
    assert code == 2 and out == ""
    assert err.startswith("npconv measure: error: --methods: expected methods that finish within "
                          "--time-limit 60 s (raise it to run them anyway), got 'reference', about ")


def test_plan_estimates_from_the_formula_mults():
    standard = ConvGeometry.from_layer((1, 64, 56, 56), 64, 3, padding=1, bias=True)
    separable = SeparableGeometry.from_layer((1, 64, 56, 56), 64, 3, padding=1)
    # dense: 56*56*64*9*64 = 115,605,504 + 56*56*64*9 + 56*56*64*64 = 1,806,336 + 12,845,056
    seconds = measure.estimated_seconds("reference", standard, separable, runs=2)
    assert seconds == pytest.approx(2 * (115_605_504 + 1_806_336 + 12_845_056) / 1e6)
    with pytest.raises(ConvArgumentError, match="--methods: expected methods that finish within"):
        measure.plan(standard, separable, ["reference"], named=True, time_limit=60)
    runs, skipped = measure.plan(standard, separable, kernels.available_methods(), named=False, time_limit=60)
    assert "reference" not in dict(runs) and [s.method for s in skipped] == ["reference"]


@pytest.mark.parametrize("argv, fragment", [
    (["--methods", "fastest"], "--methods: expected comma-separated methods among reference"),
    (["--time-limit", "0"], "--time-limit: expected a positive number of seconds"),
    (["--kernel", "99"], "--kernel: expected a kernel whose dilated height"),
])
def test_bad_flags(capsys, argv, fragment):
    code, _, err = run(capsys, "measure", *argv)
    assert code == 2 and fragment in err and "Traceback" not in err
