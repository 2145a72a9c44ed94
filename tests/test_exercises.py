"""Exercise sheets: the shipped sheets, their model answers, a student's answers graded against them.

The model answers are npconv's own; here they are set against answers worked out by hand (in the
comments), so a sheet whose question or quantity drifted, or an engine whose formula did, fails.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from npconv import claims
from npconv.claims.exercises import answered_against, model_answers, sheet_to_toml

from cli_runner import run

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "examples" / "exercises"
SHEETS = sorted(EXERCISES.glob("*.toml"))
STUDENT = EXERCISES / "answers" / "01_a_student.toml"

#: sheet -> question id -> the right answer, by hand.
BY_HAND = {
    "01_output_size.toml": {
        # D x (K - 1) + 1 = 5 rows spanned: floor((32 + 2 - 5) / 2) + 1 = 15, floor((28 + 2 - 5) / 2) + 1 = 13
        "1a": 15, "1b": 13, "1c": (15, 13, 16), "1d": (15, 13, 3), "1e": (15, 13, 16),
    },
    "02_parameters.toml": {
        "2a": 3 * 3 * 16 * 128 + 128,            # 4 groups of 64 / 4 = 16 input channels: 18,560
        "2b": 3 * 3 * 64 + 64,                   # bias torch: the depthwise part has one too: 640
        "2c": 64 * 128 + 128,                    # 8,320
        "2d": 640 + 8320,                        # 8,960
        "2e": Fraction(8960, 18560),             # 0.48276
    },
    "03_multiplications.toml": {
        "3a": 28 * 28 * 64 * 3 * 3 * 32,         # padding 1 keeps 28 x 28: 14,450,688
        "3b": 28 * 28 * 32 * 9,                  # 225,792
        "3c": 28 * 28 * 64 * 32,                 # 1,605,632
        "3d": 225792 + 1605632,                  # 1,831,424
        "3e": Fraction(1831424, 14450688),       # = 1/64 + 1/9 = 0.126736
        "3f": Fraction(1, 64) + Fraction(1, 9),
    },
    "04_course_problem.toml": {
        "b1": (10, 10, 256), "b2": (5 * 5 * 3 + 1) * 256, "b3": 10 * 10 * 256 * 75, "b4": (10, 10, 256),
        "b5": 75, "b6": (3 + 1) * 256, "b7": 75 + 1024, "b8": 10 * 10 * 3 * 25, "b9": 10 * 10 * 256 * 3,
        "b10": 7500 + 76800,
    },
    "05_flops.toml": {
        "5a": 16 * 16 * 16 * 72,                 # 72 = 3 x 3 x 8 taps a window: 294,912
        "5b": 16 * 16 * 16 * (71 + 1),           # 71 to sum 72 products, 1 for the bias: 294,912
        "5c": 2 * 294912,
        "5d": 16 * 16 * 8 * 8,                   # 9 taps, 8 additions, no bias: 16,384
        # depthwise 18,432 mults + 16,384 adds; pointwise 32,768 mults + 16 x 16 x 16 x (7 + 1) adds
        "5e": 18432 + 16384 + 32768 + 32768,
        "5f": Fraction(100352, 589824),
    },
    "06_mobilenet_block.toml": {
        "6a": (56, 56, 32), "6b": (56, 56, 64),  # 'same' at stride 2: ceil(112 / 2) = 56
        "6c": 56 * 56 * 32 * 9,                  # 903,168
        "6d": 56 * 56 * 64 * 32,                 # 6,422,528
        "6e": 3 * 3 * 32 + 32 * 64,              # no bias: 2,336
        "6f": 3 * 3 * 32 * 64,                   # 18,432
        "6g": Fraction(1, 64) + Fraction(1, 9),
    },
}


def test_every_sheet_is_checked_by_hand():
    assert sorted(BY_HAND) == [p.name for p in SHEETS] and len(SHEETS) >= 5


@pytest.mark.parametrize("path", SHEETS, ids=lambda p: p.name)
def test_shipped_sheet_is_an_exercise_with_its_answers_hidden(path):
    sheet = claims.load_sheet(path)
    assert sheet.title and sheet.claims
    assert [c.id for c in sheet.claims] == list(BY_HAND[path.name])
    for claim in sheet.claims:
        assert claim.ask and not claim.answered and not claim.expression
    # nothing of the answers is in the file handed out
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    assert not [line for line in lines if line.startswith(("value", "expression"))]


@pytest.mark.parametrize("path", SHEETS, ids=lambda p: p.name)
def test_model_answers_are_right_by_hand_and_grade_100_percent(path):
    sheet = claims.load_sheet(path)
    model = model_answers(sheet)
    for claim in model.claims:
        want = BY_HAND[path.name][claim.id]
        if isinstance(want, Fraction):  # a ratio, written to the digits npconv shows
            assert claim.written.matches(want) and claim.written.tolerance < Fraction(1, 1000), claim
        else:
            assert claim.written.value == want, claim
    # written out as a claims file, read back, graded: every answer holds, with its working
    text = sheet_to_toml(model, "model answers")
    reread = claims.parse_sheet(text, "model.toml")
    assert reread.question == sheet.question and reread.rules == sheet.rules
    assert [(c.id, c.quantity, c.ask) for c in reread.claims] == [(c.id, c.quantity, c.ask) for c in sheet.claims]
    report = claims.check(reread)
    assert [v.kind for v in report.verdicts] == [claims.HOLDS] * len(sheet.claims)
    assert report.score == len(sheet.claims) and report.exit_status == claims.EXIT_ALL_HOLD


def test_answers_command_prints_a_sheet_that_grades_100_percent(capsys, tmp_path):
    sheet = EXERCISES / "04_course_problem.toml"
    code, out, _ = run(capsys, "check", "--answers", str(sheet))
    assert code == 0
    assert "value = 19456\nexpression = \"(5 x 5 x 3 + 1) x 256\"" in out
    assert "# (KH x KW x C_in + 1) x C_out = (5 x 5 x 3 + 1) x 256 = 19,456" in out
    model = tmp_path / "model.toml"
    model.write_text(out)
    code, out, _ = run(capsys, "check", str(model))
    assert code == 0 and "Score 10 / 10 (100%)" in out
    code, out, _ = run(capsys, "check", "--answers", str(sheet), "--json")
    answers = json.loads(out)["answers"]
    assert code == 0 and [a["id"] for a in answers] == list(BY_HAND[sheet.name])
    assert answers[2]["value"] == "1,920,000" and answers[2]["working"].endswith("= 1,920,000")


def test_a_blank_sheet_is_not_answered_and_shows_no_answer(capsys):
    sheet = EXERCISES / "02_parameters.toml"
    code, out, _ = run(capsys, "check", str(sheet))
    assert code == claims.EXIT_ONLY_UNDER_READINGS == 3
    assert "Score 0 / 5 (0%)" in out and "5 not answered" in out
    assert "not answered: claims 2a, 2b, 2c, 2d, 2e" in out
    assert "Exit status 3: no claim is wrong or slipped, but some are not answered." in out
    for right in ("18,560", "640", "8,320", "8,960", "0.48"):
        assert right not in out
    code, out, _ = run(capsys, "check", str(sheet), "--json")
    data = json.loads(out)
    assert data["summary"]["not answered"] == 5 and data["summary"]["score"] == 0
    assert all("right" not in c for c in data["claims"]) and "18560" not in out


@pytest.fixture(scope="module")
def student() -> claims.Report:
    exercise = claims.load_sheet(EXERCISES / "01_output_size.toml")
    return claims.check(answered_against(exercise, claims.load_sheet(STUDENT)))


def test_a_student_s_answers_graded(student):
    got = {v.claim.id: v.kind for v in student.verdicts}
    assert got == {"1a": claims.WRONG, "1b": claims.HOLDS, "1c": claims.WRONG, "1d": claims.HOLDS,
                   "1e": claims.NOT_ANSWERED}
    # 1a: floor((32 + 2 - 3) / 2) + 1 = 16 is the output size without the dilation
    assert [c.value for c in student.verdicts[0].changes] == ["dilation_ignored"]
    # 1c: 15x13x3 gives the standard layer the input's 3 channels, not its 16 filters
    assert [c.value for c in student.verdicts[2].changes] == ["c_out_equals_c_in"]
    # 2 hold, 2 wrong, 1 not answered: 2 / 5
    assert student.score == 2 and len(student.verdicts) == 5
    assert student.exit_status == claims.EXIT_SOME_WRONG


def test_exercise_command_grades_the_copy_by_the_teacher_s_rules(capsys, tmp_path):
    exercise = EXERCISES / "01_output_size.toml"
    code, out, _ = run(capsys, "check", "--exercise", str(exercise), str(STUDENT))
    assert code == 1 and "Score 2 / 5 (40%)" in out
    assert "mistake: ignored the dilation: claim 1a" in out and "not answered: claim 1e" in out
    # a copy that relaxes the rules (working optional) and answers 1b without working: graded alone it
    # holds; against the exercise, whose rules require working, it is a slip
    copy = STUDENT.read_text().replace('working = "required"', 'working = "optional"').replace(
        'expression = "floor((28 + 2*1 - 2*(3-1) - 1) / 2) + 1"\n', "")
    path = tmp_path / "copy.toml"
    path.write_text(copy)
    table = {v.claim.id: v.kind for v in claims.check(claims.load_sheet(path)).verdicts}
    assert table["1b"] == claims.HOLDS
    graded = claims.check(answered_against(claims.load_sheet(exercise), claims.load_sheet(path)))
    assert {v.claim.id: v.kind for v in graded.verdicts}["1b"] == claims.SLIP


@pytest.mark.parametrize(("change", "message"), [
    (("padding = 1 ", "padding = 2 "), 'copy.toml: question.padding: expected the exercise\'s question as handed '
                                       'out (padding = "1" in '),
    (('id = "1e"', 'id = "1f"'), "copy.toml: claim[5].id: expected an id of the exercise's questions "
                                 "(1a, 1b, 1c, 1d, 1e), got '1f'"),
    (('quantity = "standard.output_width"', 'quantity = "standard.output_height"'),
     "copy.toml: claim[2].quantity: expected 'standard.output_width', as question 1b asks"),
])
def test_exercise_command_refuses_a_copy_that_changed_the_questions(capsys, tmp_path, change, message):
    path = tmp_path / "copy.toml"
    path.write_text(STUDENT.read_text().replace(*change))
    code, out, err = run(capsys, "check", "--exercise", str(EXERCISES / "01_output_size.toml"), str(path))
    assert code == 2 and out == "" and message in err


def test_exercise_and_answers_flags_need_their_files(capsys):
    code, _, err = run(capsys, "check", "--exercise", "/no/such/sheet.toml", str(STUDENT))
    assert code == 5 and "--exercise: expected a readable TOML claims file" in err
    code, _, err = run(capsys, "check", "--answers")
    assert code == 2 and "FILE: expected a claims file with --answers" in err


@pytest.mark.parametrize(("body", "message"), [
    # working without a value
    ('[[claim]]\nid = "1"\nquantity = "standard.params"\nexpression = "76*256"\n',
     "claim[1].value: expected the value the working written gives"),
    ('[[claim]]\nid = "1"\nquantity = "standard.params"\n[[claim]]\nid = "1"\nquantity = "standard.mults"\n',
     "sheet.toml:10: claim[2].id: expected an id of its own (claim 1 has it), got '1'"),
    ('[[claim]]\nid = "1 a"\nquantity = "standard.params"\n', "claim[1].id: expected a label of at most"),
    ('[[claim]]\nid = "1"\nquantity = "standard.params"\nask = 3\n', "claim[1].ask: expected a string, got 3"),
])
def test_exercise_sheet_errors_name_the_key(tmp_path, capsys, body, message):
    path = tmp_path / "sheet.toml"
    path.write_text('[question]\ninput = "14x14x3"\nkernel = 5\nfilters = 256\n\n' + body)
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and message in err


def test_readme_exercise_excerpts_are_real(capsys):
    """The README's two TOML excerpts of exercises: a student's copy, and ``check --answers``' output."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Exercises"):readme.index("### `npconv animate`")]
    copy, model = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    assert copy in STUDENT.read_text()
    _, out, _ = run(capsys, "check", "--answers", str(EXERCISES / "01_output_size.toml"))
    assert model in out
