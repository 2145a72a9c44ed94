"""``npconv check`` graded like a careful teacher: a table of student answers and the verdict each must get.

Every row is one answer a student could write for the course problem (14x14x3 input, 5x5 kernels,
256 filters, stride 1, padding 0, bias keras; output 10x10, standard params (5*5*3 + 1)*256 = 19,456,
mults 10*10*256*75 = 1,920,000) or for a variant of it named in the ``question`` column.  ``names``
is what the verdict must name: a misconception of the catalogue (by its key), or words that must
appear in the explanation.  Each value is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import time
from fractions import Fraction

import pytest

from npconv import claims
from npconv import quantities as Q
from npconv.claims import misconceptions as M
from npconv.claims.readings import COSTS, SEVERITY
from npconv.claims.rules import Rules
from npconv.question import Question

from cli_runner import run

COURSE = Question((1, 3, 14, 14), (5, 5), 256)
QUESTIONS = {
    "course": COURSE,
    "padding 1": COURSE.replace(padding=((1, 1), (1, 1))),
    "3x3 stride 2": Question((1, 3, 14, 14), (3, 3), 256, stride=(2, 2)),
    "3x3 dilation 2": Question((1, 3, 14, 14), (3, 3), 256, dilation=(2, 2)),
}
RULES = {
    "": Rules(),
    "digits": Rules(tolerance="digits"),
    "1%": Rules(tolerance=Fraction(1, 100)),
    "no readings": Rules(readings=()),
    "accept 2x": Rules(readings=("padding", "bias", "mults_as_flops")),
    "counting": Rules(readings=("padding", "bias", "counting")),
    "working required": Rules(working_required=True),
}
H, R, S, W = claims.HOLDS, claims.READING, claims.SLIP, claims.WRONG

# question, rules, quantity, value written, working written, verdict, names
TABLE = [
    # ---- right, in another algebraic form
    ("course", "", "standard.output_height", 10, "(14-5+2*0)/1+1", H, ""),        # CS231n's (W - F + 2P)/S + 1
    ("course", "", "standard.output_height", 10, "14-5+1", H, ""),                # no floor, no /1
    ("course", "", "standard.params", 19456, "5*5*3*256+256", H, ""),             # weights, then one bias a filter
    ("course", "", "standard.params", 19456, "256*(75+1)", H, ""),                # 75 = KH x KW x C_in
    ("course", "", "standard.mults", 1920000, "10*10*256*75", H, ""),             # 75 for 5 x 5 x 3
    ("course", "", "depthwise.mults", 7500, "3*(10*10)*(5*5)", H, ""),            # any order, any grouping
    ("course", "", "separable.params", 1099, "75 + 1024", H, ""),
    ("course", "", "ratio.mobilenet", "0.04391", "1/256 + 1/25", H, ""),          # 0.0439063 to 4 digits
    ("course", "", "ratio.mults", "0.0439", None, H, ""),                         # 84,300 / 1,920,000 = 0.043906
    ("course", "", "standard.output", "10x10x256", None, H, ""),
    ("course", "", "standard.params", 19456, "76*256", H, ""),                    # right, in numbers only
    # ---- misconceptions, each named
    ("course", "", "standard.output_height", 9, None, W, "forgot_plus_one"),      # 14 - 5 = 9
    ("course", "", "standard.output_height", 9, "(14-5)/1", W, "forgot_plus_one"),
    ("course", "", "standard.output_height", 11, None, W, "plus_one_twice"),      # 9 + 1 + 1
    ("padding 1", "", "standard.output_height", 11, "(14+1-5)/1+1", W, "padding_once"),  # 14 + 1, not 14 + 2
    ("padding 1", "", "standard.output_height", 11, None, W, "padding_once"),
    ("3x3 stride 2", "", "standard.output_height", 12, None, W, "forgot_stride"),       # 14 - 3 + 1
    ("3x3 stride 2", "", "standard.output_height", 10, None, W, "stride_on_kernel"),    # 14 - 2 x (3 - 1)
    ("3x3 stride 2", "", "standard.output_height", 7, "ceil((14-3)/2)+1", W, "ceil_not_floor"),  # ceil(5.5) + 1
    ("3x3 dilation 2", "", "standard.output_height", 12, "(14-3)/1+1", W, "dilation_ignored"),  # span 5, not 3
    ("course", "", "standard.output_height", 14, "(14+0+0)/1", W, "kernel_not_subtracted"),
    ("course", "", "standard.output", "10x10x3", None, W, "c_out_equals_c_in"),
    ("course", "", "depthwise.params", 25, "5*5*1", W, "depthwise_one_filter"),  # one 5x5 filter, not 3
    ("course", "", "depthwise.params", 225, None, W, "depthwise_full_depth"),    # 5 x 5 x 3 x 3
    ("course", "", "standard.params", 6656, "(5*5+1)*256", W, "forgot_c_in"),    # 26 x 256
    ("course", "", "standard.mults", 640000, "10*10*256*5*5", W, "forgot_c_in"),
    ("course", "", "standard.params", 4096, None, W, "kernel_side_not_area"),    # (5 x 3 + 1) x 256
    ("course", "", "pointwise.params", 19456, None, W, "pointwise_kxk"),         # (5 x 5 x 3 + 1) x 256
    ("course", "", "standard.params", 19200, None, W, "bias_forgotten"),         # 75 x 256
    ("course", "", "standard.params", 44800, "5*5*3*256 + 10*10*256", W, "bias_per_position"),
    ("course", "", "standard.mults", 3840000, None, W, "mults_as_flops"),        # 2 x 1,920,000
    ("course", "", "standard.flops", 1920000, None, W, "flops_as_macs"),
    ("course", "", "standard.mults", 1945600, None, W, "bias_as_multiplication"),  # 100 x 256 x 76
    ("course", "", "standard.mults", 7500, None, W, "forgot_c_out_in_mults"),      # 100 x 75
    ("course", "", "standard.mults", 19200, None, W, "forgot_positions"),          # 256 x 75
    ("course", "", "separable.params", 1024, None, W, "depthwise_left_out"),
    ("course", "", "ratio.mults", "22.8", None, W, "inverse_ratio"),               # 1,920,000 / 84,300 = 22.78
    ("course", "", "ratio.mobilenet", "0.2039", None, W, "mobilenet_k_not_k2"),    # 1/256 + 1/5
    # ---- readings of the question the rules allow, earned
    ("course", "", "standard.output_height", 12, None, R, "padding 1"),            # 14 + 2 - 5 + 1
    ("course", "", "standard.output", "14x14x256", None, R, "padding 2 ('same')"),
    ("course", "", "separable.params", 1102, None, R, "bias torch"),               # 78 + 1,024
    ("course", "", "depthwise.params", 78, None, R, "bias torch"),                 # (25 + 1) x 3
    ("course", "", "standard.output_height", 12, "(14+2*1-5)/1+1", R, "padding 1"),  # the working uses P = 1
    # ---- a reading the working contradicts is never the verdict
    ("course", "", "standard.output_height", 12, "(14-5)/1+1", S, "arithmetic slip (10, not 12)"),
    # ---- slips
    ("course", "", "standard.params", 19454, "(5*5*3+1)*256", S, "arithmetic"),    # 76 x 256 = 19,456
    ("course", "", "standard.params", 19304, "(5*5*3+1)*254", S, "(copying slip)"),
    ("course", "", "standard.params", 19304, None, S, "254 filters, not 256"),     # 76 x 254, nothing written
    ("course", "", "standard.output", "12x12x254", None, S, "254 for the 256 filters"),
    ("course", "", "standard.output_height", 9, "(13-5)/1+1", S, "13 for the input's 14"),
    ("course", "", "standard.params", 19465, None, S, "one keystroke from 19,456"),
    # ---- rounded values, with and without a tolerance
    ("course", "", "standard.mults", "1.92M", None, H, ""),                        # exactly 1,920,000
    ("course", "", "standard.mults", "2M", None, S, "2M is 1,920,000 rounded"),
    ("course", "digits", "standard.mults", "2M", None, H, ""),
    ("course", "", "standard.params", "2e4", None, S, "rounded"),
    ("course", "1%", "standard.params", "19.5K", None, H, ""),                     # 0.23% off
    ("course", "1%", "standard.params", "2e4", None, S, "rounded"),                # 2.8% off
    ("course", "", "standard.mults", "4.9M", None, W, ""),                         # no plausible reading gives it
    ("course", "", "standard.params", "20K", None, W, ""),                         # 19,456 is 19K, not 20K
    # ---- the teacher's rules
    ("course", "no readings", "standard.output_height", 12, None, W, "holds only under padding 1, not allowed"),
    ("course", "accept 2x", "standard.mults", 3840000, None, R, "mults_as_flops"),
    ("padding 1", "", "standard.mults", 2583552, None, W, "effective counting"),   # 256 x 3 x 58 x 58
    ("padding 1", "counting", "standard.mults", 2583552, None, R, "effective counting"),
    ("course", "working required", "standard.params", 19456, None, S, "no working shown"),
    ("course", "working required", "standard.params", 19456, "(5*5*3+1)*256", H, ""),
]


def _verdict(question: str, rules: str, quantity: str, value: object, working: str | None) -> claims.Verdict:
    q = QUESTIONS[question]
    claim = claims.make_claim(1, quantity, value, working, None, q.input_shape[0], str)
    return claims.judge(claim, q, "dense", RULES[rules])


def _row_id(row) -> str:
    question, rules, quantity, value, working, _, _ = row
    return f"{quantity}={working + '=' if working else ''}{value}" + (f" [{question}]" if question != "course" else "") \
        + (f" [{rules}]" if rules else "")


def test_the_table_has_every_kind_of_answer():
    assert len(TABLE) >= 40
    kinds = {row[5] for row in TABLE}
    assert kinds == set(claims.VERDICTS)
    named = {row[6] for row in TABLE}
    # every misconception of the catalogue has a row that must name it
    assert {m.name for m in M.CATALOGUE} - named <= {"flops_as_2macs", "pointwise_left_out", "bias_added"}


@pytest.mark.parametrize("row", TABLE, ids=[_row_id(r) for r in TABLE])
def test_student_answer_gets_its_verdict(row):
    question, rules, quantity, value, working, kind, names = row
    v = _verdict(question, rules, quantity, value, working)
    assert v.kind == kind, (v.kind, v.summary())
    if names in M.BY_NAME:
        assert names in [c.value for c in v.changes if c.dimension == "misconception"], v.summary()
        assert M.BY_NAME[names].title in v.summary()
    elif names:
        assert names in v.summary()
    # the right value as asked is always there, with its working
    assert v.right.working and v.right.text


@pytest.mark.parametrize("quantity, value, misconception", [
    ("separable.params", 75, "pointwise_left_out"),        # the depthwise part only
    ("standard.flops", 3840000, "flops_as_2macs"),         # no bias: 1,920,000 + 1,894,400 FLOPs
    ("standard.params", 19456, "bias_added"),              # the question's layer has no bias: 19,200
])
def test_misconceptions_the_table_leaves_out(quantity, value, misconception):
    q = COURSE.replace(bias="none") if misconception != "pointwise_left_out" else COURSE
    claim = claims.make_claim(1, quantity, value, None, None, 1, str)
    v = claims.judge(claim, q)
    assert v.kind == claims.WRONG
    assert misconception in [c.value for c in v.changes], v.summary()


def test_the_kit_without_a_misconception_is_the_formulas():
    """The catalogue's formulas, with no hook, give exactly npconv.formulas' values (dense)."""
    for q in (*QUESTIONS.values(), Question((2, 4, 9, 8), (3, 2), 6, stride=(2, 1), padding=((1, 0), (2, 1)),
                                            depth_multiplier=2, bias="none")):
        layers = Q.Layers(*q.layers())
        for quantity in claims.QUANTITIES:
            part, kind = quantity.split(".")
            got = M.right(layers, part, kind)
            got = got if isinstance(got, tuple) else got.value()
            assert got == claims.answer(quantity, claims.Setting(q)).value, (q, quantity)


def test_costs_order_the_kinds_of_explanation():
    assert COSTS["reading"] < COSTS["carried"] < COSTS["slip"] < COSTS["misconception"] < COSTS["unseen slip"] \
        < COSTS["not allowed"]
    assert SEVERITY["reading"] == claims.READING and SEVERITY["misconception"] == claims.WRONG


def test_every_misconception_explains_itself_in_words():
    names = [m.name for m in M.CATALOGUE]
    assert len(names) == len(set(names)) >= 20
    for m in M.CATALOGUE:
        assert m.title and m.explanation and m.kinds
        assert set(m.hooks) <= set(M.HOOKS)


# ---------------------------------------------------------------------- the search is bounded, and says so


def test_a_dilated_layer_is_searched_in_bounded_time(capsys):
    start = time.perf_counter()
    code, out, _ = run(capsys, "check", "--kernel", "3", "--dilation", "100", "--input", "512x512x3",
                       "--claim", "standard.mults=5")
    assert time.perf_counter() - start < 10  # was 109 s; bounded by construction, well under a second idle
    assert code == claims.EXIT_SOME_WRONG and "wrong" in out


def test_the_search_says_when_its_budget_stopped_it():
    claim = claims.make_claim(1, "standard.mults", 5, None, None, 1, str)
    v = claims.judge(claim, COURSE, "dense", Rules(budget=5))
    assert v.stopped and v.evaluated == 5
    assert "the search stopped at its budget, after 5 candidate readings" in v.notes[0]
    assert not claims.judge(claim, COURSE).stopped
    # a long working is read a bounded number of ways, and says so when that stopped it
    long = claims.make_claim(1, "standard.mults", 11521, "2*3*4*5*6*7*8*9*10*11", None, 2, str)
    start = time.perf_counter()
    v = claims.judge(long, Question((2, 4, 9, 8), (3, 2), 6, stride=(2, 1), padding=((1, 0), (2, 1))))
    assert time.perf_counter() - start < 5
    # 39,916,800, not 11,521 -- and the working itself is no formula searched: wrong
    assert v.kind == claims.WRONG and v.summary().startswith("arithmetic slip (39,916,800, not 11,521)")


def test_identical_claims_are_judged_once(monkeypatch):
    from npconv.claims import report

    calls = []
    judge = report.judge
    monkeypatch.setattr(report, "judge", lambda *a, **k: calls.append(1) or judge(*a, **k))
    sheet = claims.sheet_from_strings(COURSE, ["standard.params=(5*5*3+1)*254=19454"] * 1000)
    start = time.perf_counter()
    result = claims.check(sheet)
    assert time.perf_counter() - start < 10
    assert len(calls) == 1
    assert [v.claim.number for v in result.verdicts] == list(range(1, 1001))
    assert {v.kind for v in result.verdicts} == {claims.SLIP}
