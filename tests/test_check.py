"""``npconv check``: verdicts, the reading search, expression checking, claims files and exit codes.

Every expected number here is worked out by hand in the comments; the course
problem is a 14x14x3 input, 5x5 kernels, 256 filters, stride 1, padding 0:
output 10x10, standard params (5*5*3 + 1)*256 = 19,456, standard mults
10*10*256*75 = 1,920,000, depthwise params 5*5*3 = 75, pointwise params
(3 + 1)*256 = 1,024, depthwise mults 10*10*3*25 = 7,500, pointwise mults
10*10*256*3 = 76,800.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from npconv import claims
from npconv.expressions import ExpressionError, compare, parse_expression
from npconv.formulas import mults, params
from npconv.geometry import ConvGeometry
from npconv.question import Question

from cli_runner import run

ROOT = Path(__file__).resolve().parents[1]
ANSWER_SHEET = ROOT / "examples" / "answer_sheet.toml"
PROBLEM = Question((1, 3, 14, 14), (5, 5), 256)


def verdict(quantity: str, value: object, expression: str | None = None, question: Question = PROBLEM,
            counting: str = "dense") -> claims.Verdict:
    claim = claims.make_claim(1, quantity, value, expression, None, question.input_shape[0], str)
    return claims.judge(claim, question, counting)


def readings(v: claims.Verdict) -> list[str]:
    return [r.describe() for r in v.readings]


# ---------------------------------------------------------------------- the answer sheet


@pytest.fixture(scope="module")
def answer_sheet() -> claims.Report:
    return claims.check(claims.load_sheet(ANSWER_SHEET))


def test_answer_sheet_has_every_line_of_the_problem_table(answer_sheet):
    assert [c.quantity for c in answer_sheet.sheet.claims] == [
        "standard.output_height", "standard.output", "standard.params", "standard.mults",
        "separable.output", "depthwise.params", "pointwise.params", "separable.params",
        "depthwise.mults", "pointwise.mults", "separable.mults",
    ]
    assert [c.written.text for c in answer_sheet.sheet.claims] == [
        "12", "12x12x254", "19,454", "2,745,600", "12x12x256", "15", "1,024", "1,102", "10,800",
        "110,592", "121,392",
    ]


def _what(v: claims.Verdict) -> list[str]:
    return [c.description for c in v.changes]


def test_answer_sheet_verdicts(answer_sheet):
    got = {v.claim.number: (v.kind, v.right.text, _what(v)) for v in answer_sheet.verdicts}
    assert got == {
        # floor((14 - 5) / 1) + 1 + 1 = 11, not 12, and its second "+ 1" is a misconception; the working
        # has P = 0, so padding 1 (which gives 12) is no explanation of it
        1: (claims.WRONG, "10", ["arithmetic slip (11, not 12)", "added the + 1 twice"]),
        # 12x12 is what padding 1 gives; 254 channels are the 256 filters copied wrong (written: a slip)
        2: (claims.SLIP, "10x10x256", ["padding 1", "254 for the 256 filters (copying slip)"]),
        # (5*5*3 + 1)*254 = 76*254 = 19,304, not 19,454; and 254 for 256
        3: (claims.SLIP, "19,456", ["arithmetic slip (19,304, not 19,454)",
                                    "254 for the 256 filters (copying slip)"]),
        # 12*12*254*75 = 2,743,200, not 2,745,600; its 12 x 12 is padding 1's output; 254 for 256
        4: (claims.SLIP, "1,920,000", ["arithmetic slip (2,743,200, not 2,745,600)", "padding 1",
                                       "254 for the 256 filters (copying slip)"]),
        5: (claims.READING, "10x10x256", ["padding 1"]),
        # (5*5*1)*3 = 75, not 15: the working is right, the arithmetic is not
        6: (claims.SLIP, "75", ["arithmetic slip (75, not 15)"]),
        7: (claims.HOLDS, "1,024", []),
        # 15 + 1,024 = 1,039, not 1,102; its 15 is claim 6's value, carried (1,102 is bias torch's
        # 78 + 1,024, which the working does not use)
        8: (claims.SLIP, "1,099", ["arithmetic slip (1,039, not 1,102)",
                                   "15 carried from claim 6"]),
        # padding 1: 12*12*3*25 = 10,800, 12*12*256*3 = 110,592, sum 121,392; the working is the formula
        9: (claims.READING, "7,500", ["padding 1"]),
        10: (claims.READING, "76,800", ["padding 1"]),
        11: (claims.READING, "84,300", ["padding 1"]),
    }
    assert answer_sheet.exit_status == claims.EXIT_SOME_WRONG


def test_answer_sheet_shows_the_value_under_the_reading_beside_the_right_one(answer_sheet):
    v = answer_sheet.verdicts[3]
    # 2,745,600: as asked 10*10*256*75 = 1,920,000; under padding 1, 12*12*256*75 = 2,764,800
    assert (v.right.text, v.under.text) == ("1,920,000", "2,764,800")
    assert "padding 1 (2,764,800)" in v.summary()
    assert answer_sheet.verdicts[7].notes == (
        "1,102 is also the right value under bias torch (on both parts), a reading the working does not use",)


def test_answer_sheet_score(answer_sheet):
    # 1 holds + 4 under padding 1 (full credit) + 5 slips x 1/2 + 1 wrong x 0
    assert answer_sheet.score == Fraction(15, 2)
    assert answer_sheet.counts() == {claims.HOLDS: 1, claims.READING: 4, claims.SLIP: 5, claims.WRONG: 1,
                                     claims.NOT_ANSWERED: 0}
    strict = claims.check(answer_sheet.sheet, claims.Rules(slip_credit=Fraction(0), reading_credit=Fraction(0)))
    assert strict.score == 1


def test_an_input_size_is_never_a_reading_of_the_question(answer_sheet):
    # a 16x16 input also gives 16 - 5 + 1 = 12, but nothing in the sheet writes 16: no explanation
    for v in answer_sheet.verdicts:
        assert all(c.dimension != "input" for c in v.changes)
    # 7 = 11 - 5 + 1 would need an 11x11 input: nothing explains it
    assert verdict("standard.output_height", 7).kind == claims.WRONG


def test_answer_sheet_expressions(answer_sheet):
    checks = {v.claim.number: v.expression for v in answer_sheet.verdicts}
    # arithmetic slips: what the expression really gives
    assert {n: c.value for n, c in checks.items() if c and not c.evaluates_to_written} == {
        1: 11,           # floor((14 - 5) / 1) + 1 + 1 = 9 + 2
        3: 19_304,       # (5*5*3 + 1)*254 = 76*254
        4: 2_743_200,    # 12*12*254*5*5*3 = 144*254*75
        6: 75,           # (5*5*1)*3
        8: 1_039,        # 15 + 1,024
    }
    assert {n for n, c in checks.items() if c and c.evaluates_to_written} == {7, 9, 10, 11}
    # each working read in the symbols of the formula it is
    assert checks[1].algebra == "in symbols: floor((H - KH) / 1) + 1 + 1"
    assert checks[3].algebra == "in symbols: (KH x KW x C_in + 1) x C_out"
    assert checks[4].algebra == "in symbols: OH x OW x C_out x KH x KW x C_in"
    assert checks[8].algebra == "in symbols: depthwise params + pointwise params"
    assert checks[6].algebra == "in symbols: KH x KW x 1 x C_in"


def test_answer_sheet_command_prints_a_verdict_for_every_line(capsys):
    code, out, err = run(capsys, "check", str(ANSWER_SHEET))
    assert code == 1 and err == ""
    table = out.split("\n\n")[2].splitlines()
    assert table[0].split() == ["#", "claim", "written", "verdict", "right", "value", "working", "gives",
                                "explanation"]
    assert len(table) == 12
    verdicts = [line.split()[3] for line in table[1:]]
    assert verdicts == ["wrong", "slip", "slip", "slip", "holds", "slip", "holds", "slip", "holds", "holds",
                        "holds"]  # "holds if" for readings
    assert "Score 7.5 / 11 (68%): 1 holds, 4 hold only under an allowed reading (full credit), 5 slips " \
           "(0.5 credit each), 1 wrong." in out
    assert "(KH x KW x C_in + 1) x C_out = (5 x 5 x 3 + 1) x 256 = 19,456" in out


def test_answer_sheet_json(capsys):
    code, out, _ = run(capsys, "check", str(ANSWER_SHEET), "--json")
    data = json.loads(out)
    assert code == data["exit_status"] == 1
    assert data["question"]["description"].startswith("input 14x14x3, 5x5 kernels, 256 filters")
    assert data["rules"]["tolerance"] == "exact" and data["rules"]["readings"] == ["padding", "bias"]
    assert len(data["claims"]) == 11
    separable_params = data["claims"][7]
    assert separable_params["verdict"] == "slip" and separable_params["credit"] == 0.5
    assert [c["dimension"] for c in separable_params["explanation"]["changes"]] == ["arithmetic", "carried"]
    assert separable_params["expression"]["value"] == 1039
    standard_mults = data["claims"][3]
    assert standard_mults["right"]["value"] == 1_920_000 and standard_mults["under_reading"]["value"] == 2_764_800
    assert data["claims"][1]["written"] == [12, 12, 254]
    assert data["summary"]["score"] == 7.5 and data["summary"]["out_of"] == 11
    assert data["summary"]["readings"] == {"padding 1": [2, 4, 5, 9, 10, 11]}
    assert data["summary"]["misconceptions"] == {"added the + 1 twice": [1]}


# ---------------------------------------------------------------------- the reading search


def test_holds_as_asked_searches_no_further():
    v = verdict("standard.params", 19_456, "(5*5*3+1)*256")
    assert v.kind == claims.HOLDS and v.changes == () and v.evaluated == 1
    assert v.expression.evaluates_to_written
    assert v.expression.algebra == "in symbols: (KH x KW x C_in + 1) x C_out"


def test_padding_reading():
    # 12x12 output from a 14x14 input and a 5x5 kernel: padding 1 on each side, 14 + 2 - 5 + 1 = 12
    v = verdict("separable.output_size", 12)
    assert v.kind == claims.READING and readings(v)[0] == "padding 1"
    # 'same' keeps 14x14: 2 on each side
    assert readings(verdict("standard.output", "14x14x256"))[0] == "padding 2 ('same')"


def test_the_forgotten_plus_one_is_no_input_size():
    # 9 = 14 - 5: the + 1 forgotten, not a 13x13 input
    v = verdict("standard.output_height", 9)
    assert v.kind == claims.WRONG and _what(v) == ["forgot the + 1"]
    assert v.explanation.answer.working == "floor((H + P_top + P_bottom - KH) / S) = floor((14 + 0 + 0 - 5) / 1) = 9"


@pytest.mark.parametrize("quantity, value, kind, what", [
    ("separable.params", 843, claims.WRONG, "bias forgotten"),                  # 75 + 3*256 = 843
    ("separable.params", 1_102, claims.READING, "bias torch (on both parts)"),  # 78 + 1,024
    ("standard.params", 19_200, claims.WRONG, "bias forgotten"),                # 75*256
    ("depthwise.params", 78, claims.READING, "bias torch (on both parts)"),     # (25 + 1)*3
])
def test_bias_convention_reading(quantity, value, kind, what):
    v = verdict(quantity, value)
    assert v.kind == kind and _what(v) == [what]


def test_macs_and_flops():
    # with a bias every product is added once: flops = 2 x mults = 3,840,000
    mults_as_flops = "FLOPs counted where multiplications were asked (a factor 2)"
    assert _what(verdict("standard.mults", 3_840_000)) == [mults_as_flops]
    assert _what(verdict("standard.macs", 3_840_000)) == [mults_as_flops]
    assert _what(verdict("standard.flops", 1_920_000)) == ["MACs counted where FLOPs were asked (a factor 2)"]
    # without a bias, adds = mults - outputs = 1,920,000 - 10*10*256 = 1,894,400, so the true
    # FLOPs are 3,814,400 and 3,840,000 is the "FLOPs = 2 x MACs" convention
    no_bias = PROBLEM.replace(bias="none")
    assert verdict("standard.flops", 3_814_400, question=no_bias).kind == claims.HOLDS
    assert _what(verdict("standard.flops", 3_840_000, question=no_bias)) == ["FLOPs taken as 2 x MACs"]
    # a teacher who accepts FLOPs for mults says so
    claim = claims.make_claim(1, "standard.mults", 3_840_000, None, None, 1, str)
    assert claims.judge(claim, PROBLEM, rules=claims.Rules(readings=("mults_as_flops",))).kind == claims.READING


def test_dense_and_effective_counting():
    padded = PROBLEM.replace(padding=((1, 1), (1, 1)))
    # effective: 256 x 3 x T_H x T_W with T = 4 + 5*10 + 4 = 58 valid kernel rows summed over outputs
    v = verdict("standard.mults", 256 * 3 * 58 * 58, question=padded)
    assert v.kind == claims.WRONG
    assert _what(v) == ["effective counting (only taps on real input)"] and v.changes[0].kind == "not allowed"
    assert v.explanation.answer.value == 2_583_552
    claim = claims.make_claim(1, "standard.mults", 2_583_552, None, None, 1, str)
    allowed = claims.Rules(readings=("padding", "bias", "counting"))
    assert claims.judge(claim, padded, rules=allowed).kind == claims.READING
    # and the other way: the dense 12*12*3*25 = 10,800 read as effective (3*58*58 = 10,092)
    assert verdict("depthwise.mults", 3 * 58 * 58, question=padded, counting="effective").kind == claims.HOLDS
    assert _what(verdict("depthwise.mults", 10_800, question=padded, counting="effective")) == [
        "dense counting (padded zeros multiplied)"]


def test_filter_count_copied_wrong():
    # 76 x 254 = 19,304: 254 filters, nothing written shows it, a slip nothing shows
    v = verdict("standard.params", 19_304)
    assert v.kind == claims.SLIP and _what(v) == ["254 filters, not 256 (a copying slip?)"]
    # 265 (two digits swapped) is written in the working: 76 x 265 = 20,140
    v = verdict("standard.params", 20_140, "(5*5*3+1)*265")
    assert v.kind == claims.SLIP and _what(v) == ["265 for the 256 filters (copying slip)"]
    # without the working nothing suggests 265
    assert verdict("standard.params", 20_140).kind == claims.WRONG
    # depthwise quantities do not depend on the filter count
    assert verdict("depthwise.params", 74).kind == claims.WRONG


@pytest.mark.parametrize("a, b, typo", [
    (254, 256, True), (265, 256, True), (2560, 256, True), (25, 256, True), (1256, 256, True),
    (246, 256, True), (12, 256, False), (256, 256, False), (652, 256, False),
])
def test_is_typo(a, b, typo):
    assert claims.is_typo(a, b) is typo


def test_ratio_claims_hold_to_the_digits_written():
    # separable / standard mults = 84,300 / 1,920,000 = 0.043906...: no exact decimal, so even under
    # exact rules a ratio holds to the digits written
    assert verdict("ratio.mults", 0.0439).kind == claims.HOLDS
    assert verdict("ratio.mults", "4.39%").kind == claims.HOLDS
    assert verdict("ratio.mults", 0.044).kind == claims.HOLDS     # 0.044 +- 0.0005
    assert verdict("ratio.mults", 0.0438).kind == claims.WRONG    # 0.0438 +- 0.00005
    # 1,920,000 / 84,300 = 22.78: the inverse ratio, "22.8x fewer"
    assert _what(verdict("ratio.mults", 22.8)) == ["the inverse ratio (standard / separable)"]
    # 1 / 256 + 1 / 25 = 0.043906 is exactly the dense mult ratio
    assert verdict("ratio.mobilenet", "0.04391").kind == claims.HOLDS


def test_rounded_counts():
    # 2.76M stands for 2,755,000 .. 2,765,000; the padding-1 count is 12*12*256*75 = 2,764,800: under
    # exact rules a rounded count is a slip
    v = verdict("standard.mults", "2.76M")
    assert v.kind == claims.SLIP and _what(v) == ["padding 1", "2.76M is 2,764,800 rounded"]
    assert verdict("standard.mults", "1.92M").kind == claims.HOLDS  # exactly 1,920,000
    claim = claims.make_claim(1, "standard.mults", "2.76M", None, None, 1, str)
    assert claims.judge(claim, PROBLEM, rules=claims.Rules(tolerance="digits")).kind == claims.READING


def test_a_slip_has_the_right_value_and_its_working():
    v = verdict("depthwise.params", 15, "(5 x 5 x 1) x 3")
    assert v.kind == claims.SLIP
    assert v.right.value == 75
    assert v.right.working == "(KH x KW x C_in/g) x C_in = (5 x 5 x 1) x 3 = 75"
    text = "\n".join(claims.report._details(v))
    assert "(5 x 5 x 1) x 3 = 75, not the 15 written: an arithmetic slip" in text
    wrong = verdict("depthwise.params", 16)
    assert wrong.kind == claims.WRONG and "no reading, slip or misconception searched" in \
        "\n".join(claims.report._details(wrong))


# ---------------------------------------------------------------------- expressions


@pytest.mark.parametrize("text, value", [
    ("(5*5*3+1)*254", 19_304),
    ("12 x 12 x 254 x 5 x 5 x 3", 2_743_200),
    ("12 \u00d7 12 X 3", 432),
    ("floor((14-5)/1) + 1 + 1", 11),
    ("floor((14 + 2 - 5) / 2) + 1", 6),   # floor(11 / 2) + 1
    ("ceil(14 / 4)", 4),
    ("1,024 + 1_000", 2_024),
    ("1 / 256 + 1 / 25", Fraction(281, 6400)),
])
def test_expressions_evaluate_exactly(text, value):
    assert parse_expression(text).value() == value


@pytest.mark.parametrize("text, column", [("(5*5*3+1)*", 11), ("5 x (3", 7), ("5 $ 3", 3), ("", 1)])
def test_expression_errors_name_the_column(text, column):
    with pytest.raises(ExpressionError, match=f"at column {column} of"):
        parse_expression(text)


def test_compare_ignores_order_grouping_and_zero_terms():
    g = ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, bias=True)
    dense = mults(g)
    working = dense.expr
    assert compare(parse_expression("3*5*5*10*10*256"), working).kind == "same"
    assert compare(parse_expression("(10*10)*(256*5*5*3)"), working).kind == "same"
    per_filter = params(g)
    weights = per_filter.expr
    # the bias term left out is another formula, not other numbers
    different = compare(parse_expression("5*5*3*256"), weights)
    assert different.kind == "different form"


def test_inline_claims_name_the_flag(capsys):
    code, out, _ = run(capsys, "check", "--input", "14x14x3", "--kernel", "5", "--filters", "256",
                       "--claim", "separable.params=1102")
    assert code == claims.EXIT_ONLY_UNDER_READINGS and "bias torch (on both parts)" in out
    # its working gives 1,039: an arithmetic slip; and 15 is no depthwise count (5 x 3: K for K x K,
    # the cheapest explanation of it): not "no claim is wrong"
    code, out, _ = run(capsys, "check", "--claim", "separable.params=15+1024=1102")
    assert code == claims.EXIT_SOME_WRONG
    assert "arithmetic slip (1,039, not 1,102); K instead of K x K" in out
    code, _, err = run(capsys, "check", "--claim", "separable.parms=1102")
    assert code == 2
    assert "--claim 'separable.parms=1102': quantity: expected a quantity name" in err
    assert "did you mean 'separable.params'?" in err
    code, _, err = run(capsys, "check", "--claim", "separable.params")
    assert code == 2 and "--claim: expected QUANTITY=VALUE or QUANTITY=EXPRESSION=VALUE" in err


# ---------------------------------------------------------------------- exit codes


def test_exit_codes(capsys):
    assert run(capsys, "check", "--claim", "standard.params=19456")[0] == claims.EXIT_ALL_HOLD == 0
    assert run(capsys, "check", "--claim", "standard.output_height=12")[0] == claims.EXIT_ONLY_UNDER_READINGS == 3
    assert run(capsys, "check", "--claim", "standard.output_height=12",
               "--claim", "depthwise.params=15")[0] == claims.EXIT_SOME_WRONG == 1
    assert run(capsys, "check", "--claim", "standard.params=19454")[0] == claims.EXIT_SOME_WRONG  # a slip
    assert run(capsys, "check")[0] == claims.EXIT_ERROR == 2
    code, _, err = run(capsys, "check", str(ANSWER_SHEET), "--padding", "1")
    assert code == 2 and "--padding: expected no layer flag with FILE" in err
    code, _, err = run(capsys, "check", str(ANSWER_SHEET), "--claim", "standard.params=1")
    assert code == 2 and "--claim: expected claims in FILE or on the command line, not both" in err


def test_rules_from_flags_and_files(capsys, tmp_path):
    assert run(capsys, "check", "--claim", "standard.mults=2M")[0] == claims.EXIT_SOME_WRONG  # rounded: a slip
    assert run(capsys, "check", "--claim", "standard.mults=2M", "--tolerance", "digits")[0] == claims.EXIT_ALL_HOLD
    assert run(capsys, "check", "--claim", "standard.output_height=12", "--readings", "none")[0] \
        == claims.EXIT_SOME_WRONG
    code, out, _ = run(capsys, "check", "--claim", "standard.params=19456", "--require-working")
    assert code == claims.EXIT_SOME_WRONG and "no working shown (the rules require it)" in out
    code, _, err = run(capsys, "check", "--claim", "standard.params=1", "--tolerance", "loose")
    assert code == 2 and "--tolerance: expected 'exact', 'digits'" in err
    code, _, err = run(capsys, "check", "--claim", "standard.params=1", "--readings", "stride")
    assert code == 2 and "--readings: expected reading names among padding, bias, counting" in err
    path = tmp_path / "sheet.toml"
    path.write_text(GOOD_QUESTION + '\n[rules]\ntolerance = "1%"\nreadings = []\nworking = "required"\n'
                    'slip_credit = 0.25\n\n[[claim]]\nquantity = "standard.params"\nvalue = "19.5K"\n'
                    'expression = "76 x 256"\n')
    sheet = claims.load_sheet(path)
    assert sheet.rules == claims.Rules(tolerance=Fraction(1, 100), readings=(), working_required=True,
                                       slip_credit=Fraction(1, 4))
    assert claims.check(sheet).verdicts[0].kind == claims.HOLDS  # 19,500 is within 1% of 19,456
    # a flag overrides the file's rule
    assert run(capsys, "check", str(path), "--tolerance", "exact")[0] == claims.EXIT_SOME_WRONG
    path.write_text(GOOD_QUESTION + '\n[rules]\ntolerence = "1%"\n\n[[claim]]\nquantity = "standard.params"\n'
                    'value = 1\n')
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and "sheet.toml:7: rules.tolerence: expected a key among tolerance" in err


# ---------------------------------------------------------------------- claims files


GOOD_QUESTION = """\
[question]
input = "14x14x3"
kernel = 5
filters = 256
"""


@pytest.mark.parametrize("body, message", [
    (GOOD_QUESTION + '\n[[claim]]\nquantity = "standard.params"\nvalue = 19456\n\n'
                     '[[claim]]\nquantity = "standard.parms"\nvalue = 12\n',
     "sheet.toml:11: claim[2].quantity: expected a quantity name"),
    (GOOD_QUESTION + 'padding = "full"\n\n[[claim]]\nquantity = "standard.params"\nvalue = 1\n',
     "sheet.toml:5: question.padding: expected an int, PHxPW"),
    (GOOD_QUESTION + '\n[[claim]]\nquantity = "standard.params"\nvalue = 19456 +\n',
     "sheet.toml:8:15: invalid TOML: "),
    (GOOD_QUESTION + '\n[[claim]]\nquantity = "standard.mults"\nvalue = "lots"\n',
     "sheet.toml:8: claim[1].value: expected a number such as 1,102"),
    (GOOD_QUESTION + '\n[[claim]]\nquantity = "standard.params"\nvalue = 1\nexpression = "(5*5*3+1)*"\n',
     "sheet.toml:9: claim[1].expression: expected arithmetic such as"),
    (GOOD_QUESTION + '\n[[claim]]\nquantity = "standard.output"\nvalue = "12x12"\n',
     "sheet.toml:8: claim[1].value: expected a shape H x W x C such as 12x12x256, got '12x12'"),
    (GOOD_QUESTION + '\n[[claim]]\nquantity = "standard.params"\n',
     "sheet.toml:6: claim[1].value: expected a 'value' key (or an 'id': a question of an exercise sheet, "
     "which may be left unanswered), got none"),
    (GOOD_QUESTION + '\n[[claim]]\nquantity = "standard.params"\nvalu = 3\nvalue = 3\n',
     "sheet.toml:8: claim[1].valu: expected a key among quantity, value, expression, note"),
    (GOOD_QUESTION + 'strides = 2\n', "sheet.toml:5: question.strides: expected a key among input"),
    (GOOD_QUESTION + 'kernel_size = 2\n', "sheet.toml:5: question.kernel_size: expected a key among"),
    (GOOD_QUESTION.replace("kernel = 5", "kernel = 20") + '[[claim]]\nquantity = "standard.params"\nvalue = 1\n',
     "sheet.toml:3: question.kernel: expected a kernel whose dilated height"),
    (GOOD_QUESTION.replace('filters = 256\n', '') + '[[claim]]\nquantity = "standard.params"\nvalue = 1\n',
     "sheet.toml:1: question.filters: expected a value for 'filters'"),
    (GOOD_QUESTION, "sheet.toml: claim: expected one or more [[claim]] tables, got none"),
    ('[[claim]]\nquantity = "standard.params"\nvalue = 1\n',
     "sheet.toml: question: expected a [question] table with input, kernel and filters, got none"),
])
def test_claims_file_errors_name_line_and_key(tmp_path, capsys, body, message):
    path = tmp_path / "sheet.toml"
    path.write_text(body)
    code, out, err = run(capsys, "check", str(path))
    assert code == 2 and out == ""
    location = err.removeprefix("npconv check: error: ").replace(str(tmp_path) + "/", "")
    assert location.startswith(message), err
    assert "Traceback" not in err


def test_missing_claims_file(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "none.toml"))
    assert code == 5 and "FILE: expected a readable TOML claims file" in err  # 5: a file that cannot be read


def test_claims_file_question_options(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text('[question]\ninput = "2x3x14x14"\nkernel = "5x5"\nfilters = 256\npadding = "same"\n'
                    'stride = 2\nbias = "torch"\ncounting = "effective"\n\n'
                    '[[claim]]\nquantity = "standard.output"\nvalue = [2, 7, 7, 256]\n')
    sheet = claims.load_sheet(path)
    assert sheet.question.input_shape == (2, 3, 14, 14) and sheet.counting == "effective"
    # 'same' at stride 2: ceil(14 / 2) = 7 rows
    assert claims.check(sheet).verdicts[0].kind == claims.HOLDS


def test_check_imports_neither_numpy_nor_numba():
    code = (
        "import sys\nfrom npconv.cli import main\n"
        f"main(['check', {str(ANSWER_SHEET)!r}])\n"
        "print(sorted(m for m in ('numpy', 'numba') if m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("question", [
    PROBLEM,
    Question((2, 4, 9, 8), (3, 3), 6, stride=(2, 1), padding=((1, 0), (1, 1)), depth_multiplier=2, bias="none"),
])
@pytest.mark.parametrize("quantity", claims.QUANTITIES)
def test_every_quantity_holds_at_its_own_right_value(question, quantity):
    right = claims.answer(quantity, claims.Setting(question))
    v = verdict(quantity, right.text, question=question)
    assert v.kind == claims.HOLDS, (quantity, right.text, readings(v))
