"""Hostile sizes and files: every command bounded in time and memory, never a traceback.

One test (or a few) per reproduction of an adversarial probe: each used to hang, ask for more memory
than the machine has, or end in a traceback with exit status 1 (the status of "a claim is wrong").
Each must now give a clear error -- naming the argument, the bound where there is one, with the
exit status of its kind (2 a bad value, 4 refused for memory, 5 a file) -- or a bounded, correct
answer, within a few seconds (``within``: a hang fails instead of stalling the suite).
"""

from __future__ import annotations

import errno
import json
import os
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import npconv
from npconv import files, formulas, limits, memory
from npconv._expr import format_number
from npconv.claims.answers import Setting, answer
from npconv.errors import (
    EXIT_FILE,
    EXIT_MEMORY,
    EXIT_USAGE,
    ConvMemoryError,
    ConvTypeError,
    FileError,
)
from npconv.expressions import ExpressionError, parse_expression
from npconv.geometry import ConvGeometry
from npconv.question import Question
from npconv.toml_file import KeyLines

from cli_runner import run, within

NETWORK = 'name = "n"\ninput_shape = [1, 3, 8, 8]\n'
ANSWER_SHEET = Path(__file__).resolve().parent.parent / "examples" / "answer_sheet.toml"
RELU = '[[layers]]\nkind = "relu"\n'


def error_line(err: str, command: str) -> str:
    """The one error line, checked for form: ``npconv COMMAND: error: ...``, at most a few hundred characters."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"npconv {command}: error: "), err[:2000]
    assert len(lines[0]) < 1_000 and "Traceback" not in err, lines[0][:2000]
    return lines[0]


def refused(capsys, command: str, *argv: str, status: int = EXIT_USAGE, seconds: float = 10) -> str:
    """Run ``npconv command argv`` within ``seconds``: it must exit ``status`` with one clear error line."""
    with within(seconds, f"npconv {command}"):
        code, out, err = run(capsys, command, *argv)
    assert code == status, (code, out[:500], err[:2000])
    return error_line(err, command)


# ---------------------------------------------------------------------- hangs and unbounded memory


@pytest.mark.parametrize("kernel, padding", [(100_000, 99_999), (2_000_000_000, 1_999_999_999)])
def test_explain_with_a_huge_kernel_is_fast_exact_and_short(capsys, kernel, padding):
    """It took 104 s and printed 7 MB (kernel 10**5); a kernel of 2 x 10**9 ran out of memory."""
    argv = ["--input", "200000x200000x1", "--kernel", str(kernel), "--padding", str(padding), "--filters", "1"]
    started = time.perf_counter()
    with within(10, "explain"):
        code, out, _ = run(capsys, "explain", *argv)
    assert code == 0 and time.perf_counter() - started < 10
    assert len(out) < 20_000  # the run sums are summarised
    g = ConvGeometry.from_layer((1, 1, 200_000, 200_000), 1, kernel, padding=padding)
    # each of the 200,000 input rows meets each kernel row once (the padding is kernel - 1): T = 200,000 K
    t_h = formulas.valid_tap_total(200_000, kernel, 1, padding, 1, g.out_height)
    assert t_h == 200_000 * kernel
    assert f"{t_h:,}" in out and f"{t_h * t_h:,}" in out  # T_H and the effective mults = T_H x T_W
    assert "more rows: " in out  # the middle of the run sum, summed exactly in one term


def test_check_and_model_with_a_huge_kernel_are_fast(capsys, tmp_path):
    argv = ["--input", "200000x200000x1", "--kernel", "100000", "--padding", "99999", "--filters", "1"]
    with within(10, "check"):
        code, out, err = run(capsys, "check", *argv, "--claim", "standard.params=100000")
    assert code in (1, 3) and "Traceback" not in err  # 10**10 + 1 params: wrong
    question, _ = Question.from_text({"input": "200000x200000x1", "kernel": 100_000, "padding": 99_999,
                                      "filters": 1})
    with within(10, "the effective count"):
        mults = answer("standard.mults", Setting(question, "effective"))
    assert mults.value == (200_000 * 100_000) ** 2 and len(mults.working) < 2_000
    path = tmp_path / "huge.toml"
    path.write_text('input_shape = [1, 1, 200000, 200000]\n[[layers]]\nkind = "conv2d"\nfilters = 1\n'
                    'kernel = 100000\npadding = 99999\n')
    with within(10, "model"):
        code, out, _ = run(capsys, "model", str(path))
    assert code == 0 and f"{(200_000 * 100_000) ** 2:,}" in out


def test_the_tap_sums_are_exact_both_ways_round_whatever_the_sizes():
    """T summed over outputs and summed over taps agree, and equal the brute force where it can run."""
    for size, kernel, stride, pad, dilation in [(7, 3, 2, 4, 3), (1, 5, 1, 4, 1), (30, 4, 5, 9, 7),
                                                (3, 9, 1, 40, 10), (200, 1, 3, 0, 1)]:
        out = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
        taps = formulas.valid_taps_per_output(size, kernel, stride, pad, dilation, out)
        assert formulas.valid_tap_total(size, kernel, stride, pad, dilation, out) == sum(taps)
        assert formulas.valid_tap_total(size, kernel, stride, pad, dilation, out, reached=True) == sum(
            t > 0 for t in taps)
    size, kernel, stride, pad, dilation = 10**9, 2 * 10**9 + 1, 7, 1_999_999_999, 1
    out = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    over_outputs = formulas.valid_tap_total(size, kernel, stride, pad, dilation, out)
    over_taps = formulas._window_counts(kernel, out, dilation, stride, pad, size - 1 + pad)
    assert over_outputs == over_taps > 0


def test_a_long_toml_line_is_scanned_in_linear_time(capsys, tmp_path):
    """The header pattern backtracked cubically: a 4,000-space line took 67 s once an error was reported."""
    line = "[" + " " * 8_000
    started = time.perf_counter()
    assert KeyLines(f'description = """\n{line}\n"""\n') is not None
    assert time.perf_counter() - started < 1
    path = tmp_path / "net.toml"
    path.write_text(f'name = "n"\ndescription = """\n{line}\n"""\ninput_shape = [1, 3, 8, 8]\n'
                    '[[layers]]\nkind = "conv2d"\nfilters = 0\nkernel = 3\n')
    assert "net.toml:8: layers[0].filters: expected" in refused(capsys, "model", str(path), seconds=5)


@pytest.mark.parametrize("value", ["1e999999999", "1e-999999999", "2.5e101", "1" + "0" * 101, "9" * 400 + ".5",
                                   "9" * 400 + "/3", "1,000" * 5_000])
def test_a_claim_value_beyond_the_bounds_is_refused_at_once(capsys, value):
    """1e999999999 never finished (Decimal -> Fraction built 10**999999999); 400 digits with .5 overflowed."""
    line = refused(capsys, "check", "--claim", f"standard.params={value}", seconds=5)
    assert "value: expected a number" in line


def test_the_largest_claim_values_within_the_bounds_print_and_serialise(capsys):
    for claim in ["standard.params=" + "9" * 100, "ratio.params=" + "9" * 99 + ".5", "standard.params=1e100",
                  "standard.mults=" + "x".join(["9" * 100] * 19) + "/3=1"]:
        for extra in ([], ["--json"]):
            with within(10, "check"):
                code, out, err = run(capsys, "check", "--claim", claim, *extra)
            assert code == 1 and err == "", (claim, err[:500])
            if extra:
                json.loads(out)


@pytest.mark.parametrize("path", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("command", ["check", "model"])
def test_a_file_that_never_ends_or_blocks_is_refused(capsys, tmp_path, command, path):
    """check and model read /dev/zero forever, and blocked on a FIFO."""
    if path == "fifo":
        path = str(tmp_path / "claims.toml")
        os.mkfifo(path)
    elif not os.path.exists(path):
        pytest.skip("no /dev/zero here")
    line = refused(capsys, command, path, status=EXIT_FILE, seconds=5)
    assert "a readable, regular UTF-8 file of at most 1.0 MiB" in line
    assert "(a character device)" in line or "(a FIFO (named pipe))" in line


def test_a_file_too_large_is_refused_before_it_is_read(capsys, tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(NETWORK + RELU + "#" * limits.MAX_TEXT_FILE_BYTES)
    assert "(1.0 MiB)" in refused(capsys, "model", str(path), status=EXIT_FILE)


def test_an_80_kb_expression_is_refused_at_once_and_the_parser_is_linear(capsys):
    """An 80 KB expression took 20 s: a sum rebuilt its tuple of terms at every term."""
    expression = "1+" * 40_000 + "1"
    line = refused(capsys, "check", "--claim", f"standard.params={expression}=1", seconds=3)
    assert f"an expression of 80,001 characters (at most {limits.MAX_EXPRESSION_LENGTH:,})" in line
    started = time.perf_counter()
    for text in (expression, "2x" * 40_000 + "1", "(1+2)x" * 13_000 + "1"):
        parse_expression(text, max_length=None).value()
    assert time.perf_counter() - started < 3


def test_the_longest_expression_is_checked_within_seconds(capsys):
    for expression in ("1+" * 999 + "1", "1x" * 999 + "1", "(" * 100 + "1" + ")" * 100):
        assert len(expression) <= limits.MAX_EXPRESSION_LENGTH
        started = time.perf_counter()
        with within(15, "check"):
            code, _out, err = run(capsys, "check", "--claim", f"standard.mults={expression}=5")
        assert code == 1 and err == "" and time.perf_counter() - started < 15


def test_more_claims_than_the_bound_are_refused(capsys, tmp_path):
    claims = ["--claim", "standard.params=1"] * (limits.MAX_CLAIMS + 1)
    assert f"--claim: expected at most {limits.MAX_CLAIMS} claims" in refused(capsys, "check", *claims)
    path = tmp_path / "many.toml"
    path.write_text('[question]\ninput = "14x14x3"\nkernel = 5\nfilters = 256\n'
                    + '[[claim]]\nquantity = "standard.params"\nvalue = 1\n' * (limits.MAX_CLAIMS + 1))
    line = refused(capsys, "check", str(path))
    assert f"many.toml:{5 + 3 * limits.MAX_CLAIMS}: claim: expected at most {limits.MAX_CLAIMS}" in line


# ---------------------------------------------------------------------- memory checked before allocating


@pytest.fixture
def small_machine(monkeypatch):
    """A machine with 64 MiB of RAM: one command may allocate 32 MiB."""
    monkeypatch.setattr(memory, "physical_memory_bytes", lambda: 64 * 2**20)


def test_measure_checks_the_dtype_it_allocates_and_draws_in_it(capsys, small_machine):
    """measure checked the float32 size, then drew float64 arrays and cast them (20 GiB asked for)."""
    from npconv import measure

    # an input of 3 x 2048 x 1024 values (24 MiB in float32, 48 in float64) and tiny outputs
    layer = {"input": "2048x1024x3", "kernel": "1", "filters": "1", "stride": "1024"}
    standard, separable = Question.from_text(layer)[0].layers()
    with pytest.raises(ConvMemoryError, match=r"float64.*to fit in 50% of this machine's 64.0 MiB"):
        measure.run(standard, separable, methods=("im2col",), dtype="float64")
    tracemalloc.start()
    try:
        report = measure.run(standard, separable, methods=("im2col",), dtype="float32")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.all_agree
    x_bytes = 3 * 2048 * 1024 * 4
    assert peak < 1.5 * x_bytes  # drawn as float64 first, the peak was 3 x the float32 input
    argv = [item for key, value in layer.items() for item in (f"--{key}", value)]
    with within(10, "measure"):
        code, _, err = run(capsys, "measure", *argv, "--methods", "im2col")
    assert code == 0, err


def test_bench_with_a_huge_ad_hoc_layer_is_refused_before_allocating(capsys):
    """``bench --input 100000x100000x3 --methods im2col`` asked for 224 GiB."""
    import numba  # noqa: F401  (imported before tracing: only what the command allocates is measured)

    import npconv.bench
    from npconv.kernels import im2col  # noqa: F401

    npconv.bench.max_threads()
    run(capsys, "bench", "--layers", "bogus")  # and the parsers
    tracemalloc.start()
    try:
        line = refused(capsys, "bench", "--input", "100000x100000x3", "--methods", "im2col", status=EXIT_MEMORY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "layer 'ad-hoc': expected the random float32 operands of every layer timed and one call's output" in line
    assert peak < 2**20


def test_model_measure_checks_each_layer_before_allocating(capsys, tmp_path, small_machine):
    path = tmp_path / "wide.toml"
    path.write_text('input_shape = [1, 3, 4096, 4096]\n[[layers]]\nkind = "conv2d"\nname = "wide"\n'
                    'filters = 1\nkernel = 1\n')
    line = refused(capsys, "model", str(path), "--measure", "--method", "im2col", status=EXIT_MEMORY)
    assert "layer wide: expected the random float32 operands and the output of the layer" in line


def test_direct_checks_the_sum_of_its_copies():
    """Each copy was checked alone: two copies of 60% of the limit each passed."""
    x = np.ones((1, 8, 16, 32))[..., ::2]  # not contiguous: copied (4 KiB of float64)
    w = np.ones((4, 8, 3, 3))  # transposed into a copy (2.25 KiB)
    limit = x.nbytes + 1_000  # room for either copy, not for both
    with pytest.raises(ConvMemoryError, match=r"contiguous copies of x and the transposed weight"):
        npconv.conv2d(x, w, method="direct", workspace_limit=limit)
    _y, counts = npconv.conv2d(x, w, method="direct", count=True, workspace_limit=x.nbytes + w.nbytes)
    assert counts.workspace_bytes == x.nbytes + w.nbytes


def test_the_reference_kernel_counts_its_list_copy_of_the_weight():
    """683 MiB of Python floats were made under a 1 MB limit: the weight's list copy was not counted."""
    x = np.ones((1, 512, 3, 3), np.float32)
    w = np.broadcast_to(np.float32(1), (2048, 512, 3, 3))  # 9.4 M values: 300 MB as Python floats
    tracemalloc.start()
    try:
        with pytest.raises(ConvMemoryError, match=r"one image and the weight as Python floats \(4,608 \+ "
                                                  r"9,437,184 values\) to fit in the workspace limit"):
            npconv.conv2d(x, w, workspace_limit=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_a_promotion_copy_is_checked_against_the_workspace_limit():
    """float32 with float64 copied the float32 operand to float64 unchecked."""
    x = np.ones((1, 4, 64, 64), np.float32)  # 128 KiB as float64
    w = np.ones((2, 4, 3, 3))
    with pytest.raises(ConvMemoryError, match=r"float64 copies of x \(operands of mixed dtype or byte order"):
        npconv.conv2d(x, w, method="im2col", workspace_limit=64 * 2**10)
    y, counts = npconv.conv2d(x, w, method="im2col", count=True)
    assert y.dtype == np.float64 and counts.workspace_bytes >= x.size * 8  # the copy is in the call's workspace


# ---------------------------------------------------------------------- tracebacks


@pytest.mark.parametrize("command", ["explain", "check", "measure", "bench", "animate"])
def test_sizes_too_long_to_print_are_refused_where_they_are_read(capsys, command):
    """Numbers past Python's 4,300-digit limit ended explain, check, measure and model in a traceback."""
    huge = "1" + "0" * 1_500
    extra = {"check": ["--claim", "standard.params=1"], "measure": ["--methods", "im2col"],
             "bench": ["--methods", "im2col"], "animate": ["--out", "/no/such/folder/a.gif"]}.get(command, [])
    line = refused(capsys, command, "--input", f"{huge}x1x1", "--filters", huge, *extra)
    assert f"--input: expected H x W x C such as 14x14x3, or N x C x H x W such as 8x3x224x224 (ints of at " \
           f"most {limits.MAX_NUMBER_DIGITS} digits)" in line
    line = refused(capsys, command, "--input", "2147483648x2x1", *extra)
    assert "--input: expected sizes of at most 2,147,483,647, got (1, 1, 2147483648, 2)" in line


def test_the_largest_layer_prints_and_a_huge_one_is_refused_for_memory(capsys, tmp_path):
    top = "2147483647"
    with within(10, "explain"):
        code, out, _ = run(capsys, "explain", "--input", f"{top}x{top}x{top}", "--kernel", "1", "--filters", top)
    assert code == 0 and f"{2147483647 ** 4:,}" in out  # OH x OW x C_out x C_in mults
    refused(capsys, "bench", "--input", f"{top}x{top}x3", "--methods", "im2col", status=EXIT_MEMORY)
    refused(capsys, "measure", "--input", f"{top}x{top}x3", status=EXIT_MEMORY)
    path = tmp_path / "huge.toml"
    path.write_text(f'input_shape = [1, 3, {top}0, 8]\n[[layers]]\nkind = "conv2d"\nfilters = 1\nkernel = 1\n')
    line = refused(capsys, "model", str(path))
    assert "huge.toml:1: input_shape: expected sizes of at most 2,147,483,647, got 21474836470" in line
    for option in ("--resolution", "--classes"):
        line = refused(capsys, "model", "resnet18", option, "2147483648")
        assert f"{option}: expected an int from " in line and "to 2,147,483,647, got 2147483648" in line


def test_any_number_prints():
    assert format_number(10**5_000) == "1e+5000"
    assert format_number(-(10**5_000) // 7) == "-1.429e+4999"
    assert format_number(Fraction(10**400, 3)) == "3.333e+399"
    assert format_number(Fraction(1, 3 * 10**400)) == "3.333e-401"
    assert format_number(10**999 - 1) == f"{10**999 - 1:,}"  # a thousand digits are still written out
    assert format_number(Fraction(1, 3)) == "0.3333"


@pytest.mark.parametrize("text, fragment", [
    ("(" * 101 + "1" + ")" * 101, "nesting deeper than 100 levels"),
    ("floor(" * 101 + "1" + ")" * 101, "nesting deeper than 100 levels"),
    ("1" + "-1" * 101, "nesting deeper than 100 levels"),
    ("1" + "/1" * 101, "nesting deeper than 100 levels"),
    ("(" * 3_000 + "1" + ")" * 3_000, "an expression of 6,001 characters (at most 2,000)"),
    ("9" * 101, "a number of 101 digits (at most 100)"),
])
def test_deep_or_long_expressions_are_refused_where_they_are_read(capsys, text, fragment):
    """3,000 parentheses or floor( ended in a RecursionError."""
    with pytest.raises(ExpressionError, match=r"at column \d+ of"):
        parse_expression(text)
    assert fragment in refused(capsys, "check", "--claim", f"standard.params={text}=1")


def test_expressions_up_to_the_bounds_evaluate_render_and_compare():
    deepest = parse_expression("(" * 100 + "1" + ")" * 100)
    chain = parse_expression("1" + "-1" * 99)
    assert deepest.value() == 1 and chain.value() == -98 and chain.numbers().count("-") == 99


@pytest.mark.parametrize("text, fragment", [
    ("input_shape = " + "[" * 5_000 + "]" * 5_000, "TOML: expected arrays and inline tables nested at most 64 deep"),
    ("x = " + "{a = " * 3_000 + "1" + "}" * 3_000, "TOML: expected arrays and inline tables nested at most 64 deep"),
    ("a" + ".b" * 5_000 + " = 1", "TOML: expected keys of at most 64 dotted parts"),
    ("x = " + "9" * 5_000, "TOML: expected numbers of at most 100 digits"),
])
@pytest.mark.parametrize("command", ["check", "model"])
def test_deeply_nested_toml_is_refused_at_its_line(capsys, tmp_path, command, text, fragment):
    """5,000 '[' ended in a RecursionError; a 5,000-digit number in a ValueError from tomllib."""
    path = tmp_path / "deep.toml"
    path.write_text(text + "\n")
    line = refused(capsys, command, str(path), seconds=5)
    assert "deep.toml:1:" in line and fragment in line


def test_nested_layer_headers_are_refused(capsys, tmp_path):
    """1,200 nested [[layers.main.main...]] ended in a RecursionError."""
    def nested(levels: int) -> str:
        """``levels`` nested layers: residual blocks, each the main path of the one before, then a relu."""
        headers = [f"[[layers{'.main' * i}]]\nkind = 'residual'\n" for i in range(levels - 1)]
        return NETWORK + "".join(headers) + f"[[layers{'.main' * (levels - 1)}]]\nkind = 'relu'\n"

    path = tmp_path / "nested.toml"
    path.write_text(nested(1_200))  # 3.5 MiB of headers
    refused(capsys, "model", str(path), status=EXIT_FILE)
    path.write_text(nested(limits.MAX_LAYER_NESTING + 2))
    assert f"residual blocks nested at most {limits.MAX_LAYER_NESTING} deep" in refused(capsys, "model", str(path))
    path.write_text(nested(80))
    assert "TOML: expected keys of at most 64 dotted parts" in refused(capsys, "model", str(path))
    path.write_text(nested(limits.MAX_LAYER_NESTING + 1))
    with within(10, "model"):
        code, _, err = run(capsys, "model", str(path))
    assert code == 0, err


def test_a_kind_that_is_not_a_string_is_refused(capsys, tmp_path):
    """kind = ["conv2d"] ended in TypeError: unhashable type: 'list'."""
    path = tmp_path / "kind.toml"
    path.write_text(NETWORK + '[[layers]]\nkind = ["conv2d"]\n')
    assert "kind.toml:4: layers[0].kind: expected one of conv2d" in refused(capsys, "model", str(path))


@pytest.mark.parametrize("command", ["check", "model"])
def test_latin_1_is_refused_at_its_byte_and_a_byte_order_mark_is_read(capsys, tmp_path, command):
    """A Latin-1 network file ended in UnicodeDecodeError; a UTF-8 byte-order mark was 'Invalid statement'."""
    path = tmp_path / "file.toml"
    body = (NETWORK + RELU) if command == "model" else ANSWER_SHEET.read_text(encoding="utf-8")
    path.write_bytes(('# café\n' + body).encode("latin-1"))
    line = refused(capsys, command, str(path), status=EXIT_FILE)
    assert "byte 0xe9 at line 1, column 6, which is not UTF-8 (in Latin-1 it is 'é': save the file as UTF-8)" in line
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    with within(10, command):
        code, _, err = run(capsys, command, str(path))
    assert code in (0, 1) and err == "", err  # the answer sheet has wrong claims: 1


def test_torch_errors_are_caught_where_torch_is_called(capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    x = torch.ones((1, 3, 8, 8), requires_grad=True)
    with pytest.raises(ConvTypeError, match=r"^x: expected an array of floats \(for a PyTorch tensor: "
                                            r"x.detach\(\).cpu\(\).numpy\(\)\), got Tensor \("):
        npconv.conv2d(x, np.ones((4, 3, 3, 3)))
    from npconv import network_torch

    def refuse(network):
        raise RuntimeError("Trying to create tensor with negative dimension -1")

    monkeypatch.setattr(network_torch, "build_module", refuse)
    line = refused(capsys, "model", "small_separable", "--compare", "torch", seconds=60)
    assert "--compare: expected a network PyTorch can build and run (small_separable cannot), got " \
           "RuntimeError: Trying to create tensor with negative dimension -1" in line


def test_an_int64_max_filter_count_is_refused_before_torch_sees_it(capsys, tmp_path):
    path = tmp_path / "wide.toml"
    path.write_text(NETWORK + f'[[layers]]\nkind = "conv2d"\nfilters = {2**63 - 1}\nkernel = 1\n')
    line = refused(capsys, "model", str(path), "--compare", "torch")
    assert "wide.toml:5: layers[0].filters: expected sizes of at most 2,147,483,647, got 9223372036854775807" in line


@pytest.fixture
def no_benchmark(monkeypatch):
    """``npconv bench`` with the timing replaced: a bad output path must be refused before it would run."""
    from npconv import bench

    monkeypatch.setattr(bench, "run_benchmark", lambda *a, **k: pytest.fail("the benchmark ran"))


@pytest.mark.parametrize("flag, path, status, fragment", [
    ("--json", "/proc/version", EXIT_FILE, "no file can be made in '/proc'"),
    ("--json", "/dev/full", EXIT_FILE, "(a character device)"),
    ("--plot", "/dev/full", EXIT_FILE, "(a character device)"),
    ("--plot", "x.txt", EXIT_USAGE, "--plot: expected a file name ending in an image format matplotlib writes"),
])
def test_bench_output_paths_are_checked_before_the_benchmark_runs(capsys, tmp_path, monkeypatch, no_benchmark,
                                                                  flag, path, status, fragment):
    """bench --json /proc/version, /dev/full and --plot x.txt ended in a traceback after the whole run."""
    if flag == "--plot":
        pytest.importorskip("matplotlib")
    if path.startswith("/") and not os.path.exists(path):
        pytest.skip(f"no {path} here")
    monkeypatch.chdir(tmp_path)
    assert fragment in refused(capsys, "bench", "--layers", "seed 5x5", flag, path, status=status)
    assert os.listdir(tmp_path) == []


def test_bench_writes_exactly_where_asked_whole(capsys, tmp_path, monkeypatch):
    """--plot plotfile wrote plotfile.png."""
    pytest.importorskip("matplotlib")
    from npconv import bench

    class Report:
        def to_json_dict(self):
            return {"answer": 42}

    def plot(report, file, pyplot, format):
        assert format == "png" and not isinstance(file, str)  # a file object: the temporary one
        file.write(b"\x89PNG\r\n\x1a\n")

    monkeypatch.setattr(bench, "run_benchmark", lambda *a, **k: Report())
    monkeypatch.setattr(bench, "render_text", lambda report: "table")
    monkeypatch.setattr(bench, "plot_report", plot)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.json").write_text("old")
    code, out, err = run(capsys, "bench", "--layers", "seed 5x5", "--plot", "plotfile", "--json", "out.json")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["out.json", "plotfile"]  # no plotfile.png, no temporary left
    assert (tmp_path / "plotfile").read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "out.json").read_text()) == {"answer": 42}
    assert "Plot written to plotfile (PNG)" in out


def test_a_write_that_fails_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")

    def fail(file):
        file.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileError, match=r"^--json: expected an output file that can be written whole, got .* "
                                        r"\(No space left on device\)"):
        files.write_atomically(path, fail, "--json")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]


# ---------------------------------------------------------------------- smaller


@pytest.mark.parametrize("order", [">f4", ">f8"])
def test_big_endian_operands_are_converted_without_loss(order):
    """>f4 and >f8 were refused, and the >f8 hint suggested a lossy cast to float32."""
    rng = np.random.default_rng(0)
    dtype = np.float32 if order == ">f4" else np.float64
    native = rng.standard_normal((1, 3, 6, 6)).astype(dtype)
    w = rng.standard_normal((2, 3, 3, 3)).astype(dtype)
    y = npconv.conv2d(native.astype(order), w.astype(order), method="im2col")
    assert y.dtype == native.dtype and y.dtype.isnative
    np.testing.assert_array_equal(y, npconv.conv2d(native, w, method="im2col"))


def test_the_hint_for_other_float_widths_never_suggests_a_lossy_cast():
    if np.dtype(np.longdouble).itemsize > 8:
        with pytest.raises(ConvTypeError) as caught:
            npconv.conv2d(np.ones((1, 1, 3, 3), np.longdouble), np.ones((1, 1, 3, 3)))
        assert "astype(np.float32)" not in str(caught.value) and "rounds it to double precision" in str(caught.value)
    with pytest.raises(ConvTypeError, match=r"astype\(np.float32\) \(exact: every float16 is a float32\)"):
        npconv.conv2d(np.ones((1, 1, 3, 3), np.float16), np.ones((1, 1, 3, 3)))


def test_masked_entries_are_refused_never_ignored():
    x = np.ma.masked_array(np.ones((1, 1, 4, 4)), mask=False)
    w = np.ones((1, 1, 3, 3))
    np.testing.assert_array_equal(npconv.conv2d(x, w), npconv.conv2d(x.data, w))  # nothing masked: its data
    x[0, 0, 1, 1] = np.ma.masked
    with pytest.raises(ConvTypeError, match=r"^x: expected an array without masked entries \(fill them first, "
                                            r"e.g. x.filled\(0.0\).*got a masked array with 1 masked entry"):
        npconv.conv2d(x, w)


def test_claims_files_take_padding_as_network_files_write_it(capsys, tmp_path):
    path = tmp_path / "pad.toml"
    path.write_text('[question]\ninput = "14x14x3"\nkernel = 5\nfilters = 256\npadding = [[1, 1], [1, 1]]\n'
                    '[[claim]]\nquantity = "standard.output"\nvalue = "12x12x256"\n')
    code, out, err = run(capsys, "check", str(path))
    assert code == 0 and "padding 1" in out, err


def test_an_empty_network_name_is_refused(capsys):
    """npconv model "" read the folder '.'."""
    assert "NAME|FILE: expected a built-in network name or a .toml file (see --list), got ''" in refused(
        capsys, "model", "")


@pytest.mark.parametrize("command, argv", [
    ("explain", ["--input", "x" * 100_000]),
    ("explain", ["--input", "1" + " " * 100_000 + "2"]),
    ("check", ["--claim", "standard.params=" + "q" * 100_000]),
    ("check", ["--claim", "q" * 100_000 + "=1"]),
    ("measure", ["--methods", "q" * 100_000]),
    ("bench", ["--layers", "q" * 100_000]),
    ("model", ["q" * 100_000]),
])
def test_error_messages_cut_what_they_echo(capsys, command, argv):
    """Error messages echoed 100 KB flag values whole."""
    line = refused(capsys, command, *argv, seconds=5)
    assert "characters)" in line  # the length of what was cut


# ---------------------------------------------------------------------- found by the fuzz test


def test_a_ratio_over_a_layer_that_multiplies_nothing_is_undefined_not_a_crash(capsys):
    """Every tap of this layer lands on the padding, so it counts no effective multiplications:
    explain and check ended in ZeroDivisionError (found by tests/test_cli_fuzz.py)."""
    layer = ["--input", "1x1x1", "--kernel", "1", "--filters", "1", "--stride", "2", "--padding", "1"]
    with within(10, "explain"):
        code, out, err = run(capsys, "explain", *layer)
    assert code == 0 and "mults, effective  undefined: the standard layer multiplies nothing here" in out
    with within(10, "explain"):
        code, out, _ = run(capsys, "explain", *layer, "--json")
    assert code == 0 and json.loads(out)["ratios"]["mults"]["effective"] is None
    with within(10, "check"):
        code, out, err = run(capsys, "check", *layer, "--claim", "ratio.mults=0")
    assert code == 1 and err == ""  # dense: 8 / 4 = 2, and the readings without a value are skipped
    line = refused(capsys, "check", *layer, "--counting", "effective", "--claim", "ratio.mults=0.5")
    assert "mults ratio: expected a standard mults that is not 0, to divide by" in line


@pytest.mark.parametrize("width", ["1e308", "1e9"])
def test_a_width_multiplier_past_the_largest_layer_is_refused(capsys, width):
    """``model mobilenet_v1 --width 1e308`` ended in OverflowError: int(inf) (found by the fuzz test's soak)."""
    line = refused(capsys, "model", "mobilenet_v1", "--width", width)
    assert "--width: expected a multiplier that leaves at most 2,147,483,647 of 32 x width channels" in line


@pytest.mark.parametrize("typed", ["-\r0", "-\x1b[2J", "-\x00x", "-\u2028y", "--" + "z" * 5_000])
def test_argparse_errors_stay_one_short_line_whatever_was_typed(capsys, typed):
    code, out, err = run(capsys, "model", typed)
    assert code == 2 and out == ""
    usage, message = err.strip().splitlines()
    assert usage.startswith("usage: npconv") and message.startswith("npconv: error: unrecognized arguments: ")
    assert message.isprintable() and len(message) < 500


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly():
    """``npconv ... | head``: the reader is gone before anything is written; the command stops with
    status 141 (128 + SIGPIPE, as shells report it) and no traceback or complaint at exit."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "npconv", "model", "vgg16", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the interpreter has even started: every write fails
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, err
    assert err == ""
