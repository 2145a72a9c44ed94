"""``npconv explain``: the worked example, flags, JSON, and clear errors without tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from npconv.cli import parse_input, parse_padding

from cli_runner import run


def test_explain_default_is_the_problem_example(capsys):
    code, out, _ = run(capsys, "explain")
    assert code == 0
    assert "Read --input 14x14x3 as H x W x C: height 14, width 14, 3 channels, batch N = 1." in out
    assert "10x10x256" in out
    assert "= (5 x 5 x 3 + 1) x 256 = 19,456" in out
    assert "= 10 x 10 x 256 x 5 x 5 x 3 = 1,920,000" in out
    assert "= 7,500 + 76,800 = 84,300" in out
    assert "Bias convention: keras" in out
    assert "separable, torch 1,102" in out and "separable, none 843" in out
    assert "1 / 256 + 1 / (5 x 5) = 0.04391" in out


def test_explain_with_padding_1(capsys):
    code, out, _ = run(capsys, "explain", "--padding", "1")
    assert code == 0
    assert "12x12x256" in out
    assert "2,764,800" in out
    assert "= 10,800 + 110,592 = 121,392" in out
    # padding makes dense and effective differ: both are shown
    assert "multiplications, effective" in out and "4 + 5 x 10 + 4 = 58" in out


def test_explain_json(capsys):
    code, out, _ = run(capsys, "explain", "--json", "--input", "2x3x14x14", "--padding", "same",
                       "--stride", "2", "--depth-multiplier", "2", "--bias", "torch")
    assert code == 0
    data = json.loads(out)
    assert data["layer"]["input_shape_nchw"] == [2, 3, 14, 14]
    assert data["layer"]["padding"] == {"rule": "same", "top_bottom": [1, 2], "left_right": [1, 2]}
    assert data["standard"]["output_shape_nchw"] == [2, 256, 7, 7]
    assert data["depthwise"]["params"]["value"] == 6 * 25 + 6
    assert data["separable"]["params"]["working"] == "156 + 1,792 = 1,948"
    assert set(data["separable"]["mults"]) == {"dense", "effective"}
    dense = data["separable"]["mults"]["dense"]["value"]
    assert dense == 2 * 7 * 7 * (6 * 25 + 256 * 6)
    assert data["ratios"]["mobilenet"]["value"] == pytest.approx(2 / 256 + 2 / 25)


def test_explain_grouped_standard_layer(capsys):
    code, out, _ = run(capsys, "explain", "--input", "8x16x16", "--groups", "4", "--kernel", "3x5",
                       "--stride", "2x1", "--padding", "0,1,2,2", "--filters", "32", "--bias", "none")
    assert code == 0
    assert "Read --input 8x16x16 as H x W x C: height 8, width 16, 16 channels, batch N = 1." in out
    assert "padding top 0, bottom 1, left 2, right 2" in out and "groups 4 (standard layer)" in out
    assert "= (3 x 5 x 4) x 32 = 1,920" in out  # (KH x KW x C_in/g) x C_out, no bias
    assert "= floor((8 + 0 + 1 - 3) / 2) + 1 = 4" in out
    assert "against an ungrouped standard layer; this one has groups 4" in out


def test_explain_json_without_padding_has_one_convention(capsys):
    data = json.loads(run(capsys, "explain", "--json")[1])
    assert data["counting_conventions"] == ["dense"]
    assert data["standard"]["mults"]["dense"]["value"] == 1_920_000
    assert data["pointwise"]["params"]["working"] == "(1 x 1 x 3 + 1) x 256 = 1,024"


@pytest.mark.parametrize(
    "text, shape",
    [("14x14x3", (1, 3, 14, 14)), ("8x3x224x224", (8, 3, 224, 224)), ("32 X 32 X 1", (1, 1, 32, 32))],
)
def test_parse_input(text, shape):
    assert parse_input(text)[0] == shape


def test_parse_padding_forms():
    assert parse_padding("same") == "same"
    assert parse_padding("1x2") == ((1, 1), (2, 2))
    assert parse_padding("0,1,2,3") == ((0, 1), (2, 3))


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--input", "14x14"], "--input: expected H x W x C"),
        (["--input", "axbxc"], "--input: expected H x W x C"),
        (["--input", "14x14x0"], "--input: expected in_channels as an int >= 1"),
        (["--kernel", "20"], "--kernel: expected a kernel whose dilated height"),
        (["--kernel", "5", "--dilation", "4"], "spanning 17"),
        (["--stride", "0"], "--stride: expected a positive int or a pair"),
        (["--padding", "-1"], "--padding: expected an int >= 0"),
        (["--padding", "full"], "--padding: expected an int"),
        (["--filters", "0"], "--filters: expected out_channels as an int >= 1"),
        (["--filters", "many"], "--filters: expected an int, got 'many'"),
        (["--groups", "2"], "--groups: expected a divisor of both in_channels (3) and out_channels (256)"),
        (["--depth-multiplier", "0"], "--depth-multiplier: expected a positive int"),
    ],
)
def test_bad_flags_exit_2_with_the_flag_named(capsys, argv, fragment):
    code, out, err = run(capsys, "explain", *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("npconv explain: error: ")
    assert fragment in err, err
    assert "Traceback" not in err


def test_bad_choice_is_argparse_error(capsys):
    code, _, err = run(capsys, "explain", "--bias", "both")
    assert code == 2 and "--bias" in err and "invalid choice" in err


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "explain" in out


@pytest.mark.parametrize("argv", [["--help"], ["explain"], ["explain", "--json", "--padding", "same"]])
def test_cli_imports_neither_numpy_nor_numba(argv):
    code = (
        "import sys\nfrom npconv.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('numpy', 'numba') if m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_console_script_reports_errors_without_traceback():
    beside_python = Path(sys.executable).with_name("npconv")
    exe = str(beside_python) if beside_python.exists() else shutil.which("npconv")
    if exe is None:
        pytest.skip("the npconv console script is not installed on PATH")
    result = subprocess.run([exe, "explain", "--kernel", "99"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "npconv explain: error: --kernel: expected" in result.stderr
    assert "Traceback" not in result.stderr
    ok = subprocess.run([exe, "explain"], capture_output=True, text=True, check=True)
    assert "84,300" in ok.stdout
