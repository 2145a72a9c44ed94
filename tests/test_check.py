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


def test_answer_sheet_verdicts(answer_sheet):
    got = {v.claim.number: (v.kind, v.right.text, readings(v)[:1]) for v in answer_sheet.verdicts}
    assert got == {
        # floor((14 + 0 + 0 - 5) / 1) + 1 = 10; with padding 1: floor((14 + 2 - 5) / 1) + 1 = 12
        1: (claims.READING, "10", ["padding 1"]),
        # 12x12 needs padding 1 and 254 channels need 254 filters: two changes at once
        2: (claims.READING, "10x10x256", ["padding 1; 254 filters, not 256"]),
        # (5*5*3 + 1)*256 = 19,456; with 254 filters (5*5*3 + 1)*254 = 76*254 = 19,304, not 19,454
        3: (claims.WRONG, "19,456", []),
        # 12*12*254*75 = 2,743,200 and 12*12*256*75 = 2,764,800: neither is 2,745,600
        4: (claims.WRONG, "1,920,000", []),
        5: (claims.READING, "10x10x256", ["padding 1"]),
        # (5*5*1)*3 = 75; with a depthwise bias (5*5*1 + 1)*3 = 78; never 15
        6: (claims.WRONG, "75", []),
        7: (claims.HOLDS, "1,024", []),
        # keras: 75 + 1,024 = 1,099; torch (bias on both parts): 78 + 1,024 = 1,102
        8: (claims.READING, "1,099", ["bias torch (on both parts)"]),
        # padding 1: 12*12*3*25 = 10,800, 12*12*256*3 = 110,592, sum 121,392
        9: (claims.READING, "7,500", ["padding 1"]),
        10: (claims.READING, "76,800", ["padding 1"]),
        11: (claims.READING, "84,300", ["padding 1"]),
    }
    assert answer_sheet.exit_status == claims.EXIT_SOME_WRONG


def test_answer_sheet_also_finds_the_input_size_reading(answer_sheet):
    # without padding, a 16x16 input gives 16 - 5 + 1 = 12 as well
    by_number = {v.claim.number: readings(v) for v in answer_sheet.verdicts}
    assert by_number[1] == ["padding 1", "input 16x16x3"]
    assert by_number[2] == ["padding 1; 254 filters, not 256", "input 16x16x3; 254 filters, not 256"]


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
    # the output-size working has one "+ 1" too many
    assert checks[1].comparison.kind == "different form"
    assert checks[1].comparison.edits == ('an extra "+ 1"',)
    # right formulas, wrong numbers, each number named by the symbol it stands for
    assert [str(s) for s in checks[3].comparison.swaps] == ["254 where C_out = 256"]
    assert [str(s) for s in checks[4].comparison.swaps] == [
        "12 where OH = 10", "12 where OW = 10", "254 where C_out = 256"]
    assert [str(s) for s in checks[8].comparison.swaps] == ["15 where depthwise params = 75"]
    assert checks[6].comparison.kind == checks[7].comparison.kind == "same"
    # and the reading under which the expression is exactly the formula
    assert checks[3].reading.describe() == "254 filters, not 256"
    assert checks[4].reading.describe() == "padding 1; 254 filters, not 256"
    assert checks[9].reading.describe() == "padding 1"
    assert checks[6].reading is None  # already the formula as asked
    # 15 in "15 + 1024" is what claim 6 wrote for the depthwise params
    assert checks[8].carried == ("15 is the value written for claim 6 (depthwise.params)",)


def test_answer_sheet_command_prints_a_verdict_for_every_line(capsys):
    code, out, err = run(capsys, "check", str(ANSWER_SHEET))
    assert code == 1 and err == ""
    table = out.split("\n\n")[2].splitlines()
    assert table[0].split() == ["#", "claim", "written", "verdict", "right", "value", "expression", "reading",
                                "that", "makes", "it", "hold"]
    assert len(table) == 12
    verdicts = [line.split()[3] for line in table[1:]]
    assert verdicts == ["holds", "holds", "wrong", "wrong", "holds", "wrong", "holds", "holds", "holds",
                        "holds", "holds"]  # "holds if" for readings
    assert "  3  standard.params         19,454     wrong     19,456       gives 19,304" in out
    assert "1 holds, 3 wrong, 7 hold under another reading." in out
    assert "(KH x KW x C_in + 1) x C_out = (5 x 5 x 3 + 1) x 256 = 19,456" in out


def test_answer_sheet_json(capsys):
    code, out, _ = run(capsys, "check", str(ANSWER_SHEET), "--json")
    data = json.loads(out)
    assert code == data["exit_status"] == 1
    assert data["question"]["description"].startswith("input 14x14x3, 5x5 kernels, 256 filters")
    assert len(data["claims"]) == 11
    separable_params = data["claims"][7]
    assert separable_params["verdict"] == "holds under another reading"
    assert separable_params["readings"][0]["changes"] == {"bias": "torch"}
    assert separable_params["readings"][0]["value"] == 1102
    assert separable_params["expression"]["value"] == 1039
    assert separable_params["expression"]["comparison"]["kind"] == "same form"
    assert data["claims"][1]["written"] == [12, 12, 254]
    assert data["claims"][1]["readings"][0]["changes"] == {"padding": [[1, 1], [1, 1]], "filters": 254}
    assert data["summary"] == {"holds": 1, "wrong": 3, "holds under another reading": 7, "readings": {
        "padding 1": [1, 5, 9, 10, 11], "padding 1; 254 filters, not 256": [2],
        "bias torch (on both parts)": [8]}}


# ---------------------------------------------------------------------- the reading search


def test_holds_as_asked_searches_no_further():
    v = verdict("standard.params", 19_456, "(5*5*3+1)*256")
    assert v.kind == claims.HOLDS and v.readings == ()
    assert v.expression.evaluates_to_written and v.expression.comparison.kind == "same"


def test_padding_reading():
    # 12x12 output from a 14x14 input and a 5x5 kernel: padding 1 on each side, 14 + 2 - 5 + 1 = 12
    v = verdict("separable.output_size", 12)
    assert v.kind == claims.READING and readings(v)[0] == "padding 1"
    # 'same' keeps 14x14: 2 on each side
    assert readings(verdict("standard.output", "14x14x256"))[0] == "padding 2"


def test_input_size_reading_when_no_padding_can_shrink_the_output():
    # padding only grows the output; 9 = 13 - 5 + 1 needs a 13x13 input
    v = verdict("standard.output_height", 9)
    assert v.kind == claims.READING and readings(v) == ["input 13x13x3"]
    assert v.readings[0].answer.working == "floor((H + P_top + P_bottom - KH) / S) + 1 = " \
                                           "floor((13 + 0 + 0 - 5) / 1) + 1 = 9"


@pytest.mark.parametrize("quantity, value, reading", [
    ("separable.params", 843, "no bias"),                       # 75 + 3*256 = 843
    ("separable.params", 1_102, "bias torch (on both parts)"),  # 78 + 1,024
    ("standard.params", 19_200, "no bias"),                     # 75*256
    ("depthwise.params", 78, "bias torch (on both parts)"),     # (25 + 1)*3
])
def test_bias_convention_reading(quantity, value, reading):
    v = verdict(quantity, value)
    assert v.kind == claims.READING and readings(v) == [reading]


def test_macs_and_flops_readings():
    # with a bias every product is added once: flops = 2 x mults = 3,840,000
    assert readings(verdict("standard.mults", 3_840_000)) == ["FLOPs (mults + adds), not mults"]
    assert readings(verdict("standard.macs", 3_840_000)) == ["FLOPs (mults + adds), not mults"]
    assert readings(verdict("standard.flops", 1_920_000)) == ["MACs (mults only), not FLOPs"]
    # without a bias, adds = mults - outputs = 1,920,000 - 10*10*256 = 1,894,400, so the true
    # FLOPs are 3,814,400 and 3,840,000 is the "FLOPs = 2 x MACs" convention
    no_bias = PROBLEM.replace(bias="none")
    assert verdict("standard.flops", 3_814_400, question=no_bias).kind == claims.HOLDS
    assert readings(verdict("standard.flops", 3_840_000, question=no_bias)) == [
        "with bias", "FLOPs counted as 2 x MACs"]


def test_dense_and_effective_readings():
    padded = PROBLEM.replace(padding=((1, 1), (1, 1)))
    # effective: 256 x 3 x T_H x T_W with T = 4 + 5*10 + 4 = 58 valid kernel rows summed over outputs
    v = verdict("standard.mults", 256 * 3 * 58 * 58, question=padded)
    assert v.kind == claims.READING and readings(v) == ["effective counting (only taps on real input)"]
    assert v.readings[0].answer.value == 2_583_552
    # and the other way: the dense 12*12*3*25 = 10,800 read as effective (3*58*58 = 10,092) is wrong
    assert verdict("depthwise.mults", 3 * 58 * 58, question=padded, counting="effective").kind == claims.HOLDS
    assert readings(verdict("depthwise.mults", 10_800, question=padded, counting="effective")) == [
        "dense counting (padded zeros multiplied)"]


def test_filter_count_typo_nearby_and_from_the_expression():
    # 76 x 254 = 19,304: 254 is two filters away from 256
    assert readings(verdict("standard.params", 19_304)) == ["254 filters, not 256"]
    # 265 (two digits swapped) is far from 256 but written in the expression: 76 x 265 = 20,140
    assert readings(verdict("standard.params", 20_140, "(5*5*3+1)*265")) == ["265 filters, not 256"]
    # without the expression nothing suggests 265
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
    # separable / standard mults = 84,300 / 1,920,000 = 0.043906...
    assert verdict("ratio.mults", 0.0439).kind == claims.HOLDS
    assert verdict("ratio.mults", "4.39%").kind == claims.HOLDS
    assert verdict("ratio.mults", 0.044).kind == claims.HOLDS     # 0.044 +- 0.0005
    assert verdict("ratio.mults", 0.0438).kind == claims.WRONG    # 0.0438 +- 0.00005
    # 1,920,000 / 84,300 = 22.78: the inverse ratio, "22.8x fewer"
    assert readings(verdict("ratio.mults", 22.8)) == ["the inverse ratio, standard / separable"]
    # 1 / 256 + 1 / 25 = 0.043906 is exactly the dense mult ratio
    assert verdict("ratio.mobilenet", "0.04391").kind == claims.HOLDS


def test_rounded_counts():
    # 2.76M stands for 2,755,000 .. 2,765,000; the padding-1 count is 12*12*256*75 = 2,764,800
    v = verdict("standard.mults", "2.76M")
    assert v.kind == claims.READING and readings(v)[0] == "padding 1"
    assert verdict("standard.mults", "1.92M").kind == claims.HOLDS


def test_wrong_has_the_right_value_and_its_working():
    v = verdict("depthwise.params", 15, "(5 x 5 x 1) x 3")
    assert v.kind == claims.WRONG
    assert v.right.value == 75
    assert v.right.working == "(KH x KW x C_in/g) x C_in = (5 x 5 x 1) x 3 = 75"
    text = "\n".join(claims.report._details(v))
    assert "(5 x 5 x 1) x 3 = 75, not the 15 written: an arithmetic slip" in text
    assert "none of the readings searched (up to 2 changes) gives 15" in text


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
                       "--claim", "separable.params=1102", "--claim", "separable.params=15+1024=1102")
    assert code == claims.EXIT_ONLY_UNDER_READINGS
    assert out.count("bias torch (on both parts)") >= 2
    code, _, err = run(capsys, "check", "--claim", "separable.parms=1102")
    assert code == 2
    assert "--claim 'separable.parms=1102': quantity: expected a quantity name" in err
    assert "did you mean 'separable.params'?" in err
    code, _, err = run(capsys, "check", "--claim", "separable.params")
    assert code == 2 and "--claim: expected QUANTITY=VALUE or QUANTITY=EXPRESSION=VALUE" in err


# ---------------------------------------------------------------------- exit codes


def test_exit_codes(capsys):
    assert run(capsys, "check", "--claim", "standard.params=19456")[0] == claims.EXIT_ALL_HOLD == 0
    assert run(capsys, "check", "--claim", "standard.params=19200")[0] == claims.EXIT_ONLY_UNDER_READINGS == 3
    assert run(capsys, "check", "--claim", "standard.params=19200",
               "--claim", "depthwise.params=15")[0] == claims.EXIT_SOME_WRONG == 1
    assert run(capsys, "check")[0] == claims.EXIT_ERROR == 2
    code, _, err = run(capsys, "check", str(ANSWER_SHEET), "--padding", "1")
    assert code == 2 and "--padding: expected no layer flag with FILE" in err
    code, _, err = run(capsys, "check", str(ANSWER_SHEET), "--claim", "standard.params=1")
    assert code == 2 and "--claim: expected claims in FILE or on the command line, not both" in err


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
     "sheet.toml:6: claim[1].value: expected a 'value' key, got none"),
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
    assert code == 2 and "FILE: expected a readable TOML claims file" in err


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
