"""Every invalid argument of every public function, and every bad flag value of every command, gets
a clear error naming it: ``arg: expected X, got Y`` -- and, on the command line, the exit status of its
kind (2 a bad value, 5 a file that cannot be read or written) and ``npconv <command>: error: ...`` on
stderr, never a traceback.

The tables are checked for completeness against the functions' signatures and the commands'
parsers, so a new argument or flag needs its bad values here.
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys

import numpy as np
import pytest

import npconv
from npconv import kernels
from npconv.cli import build_parser
from npconv.counts import CONVENTIONS
from npconv.errors import EXIT_FILE, EXIT_USAGE, ConvArgumentError, ConvTypeError
from npconv.geometry import MAX_STEP

from cli_runner import run

# ---------------------------------------------------------------------- the public functions

X = np.ones((1, 3, 8, 8))
W, B = np.ones((4, 3, 3, 3)), np.ones(4)
DW, DB = np.ones((3, 1, 3, 3)), np.ones(3)
PW, PB = np.ones((4, 3, 1, 1)), np.ones(4)

#: A valid call of each public function, by argument name.
VALID = {
    "conv2d": dict(x=X, weight=W, bias=B),
    "depthwise_conv2d": dict(x=X, weight=DW, bias=DB),
    "pointwise_conv2d": dict(x=X, weight=PW, bias=PB),
    "separable_conv2d": dict(x=X, depthwise_weight=DW, pointwise_weight=PW, depthwise_bias=DB,
                             pointwise_bias=PB),
}

#: Type errors (also TypeError) are marked True.
TYPE = True

#: Bad values every array operand refuses, as transformations of its valid value.
BAD_ARRAYS = [
    (lambda a: None, "an array of floats, got None", TYPE),
    (lambda a: a.astype(np.int64), "convert it yourself", TYPE),
    (lambda a: a.astype(bool), "a float32 or float64 array", TYPE),
    (lambda a: a.astype(np.complex128), "complex convolution is not supported", TYPE),
    (lambda a: a.astype(np.float16), "convert it with", TYPE),
    (lambda a: a.astype(object), "got dtype object", TYPE),
    (lambda a: "text", "got dtype <U4", TYPE),
    (lambda a: [[1.0], [2.0, 3.0]], "an array of floats", TYPE),
]

#: Bad shapes per operand and function: (value, fragment).
BAD_SHAPES = {
    "x": [(X[0], "a 4-D array (N, C_in, H, W), got shape (3, 8, 8)"),
          (X[None], "a 4-D array"),
          (np.float64(1.0), "a 4-D array (N, C_in, H, W), got shape ()"),
          (np.ones((1, 0, 8, 8)), "in_channels as an int >= 1, got 0"),
          (np.ones((1, 3, 0, 8)), "height as an int >= 1, got 0"),
          (np.ones((1, 3, 8, 0)), "width as an int >= 1, got 0")],
    ("conv2d", "weight"): [(W[0], "a 4-D array (C_out, C_in / groups, KH, KW)"),
                           (np.ones((4, 2, 3, 3)), "C_in / groups = 3 / 1 = 3"),
                           (np.ones((0, 3, 3, 3)), "a positive multiple of groups = 1"),
                           (np.ones((4, 3, 0, 3)), "kernel_h as an int >= 1"),
                           (np.ones((4, 3, 3, 0)), "kernel_w as an int >= 1"),
                           (np.ones((4, 3, 9, 3)), "fits the padded input height 8")],
    ("depthwise_conv2d", "weight"): [(DW[0], "a 4-D array"),
                                     (np.ones((3, 2, 3, 3)), "C_in / groups = 3 / 3 = 1"),
                                     (np.ones((4, 1, 3, 3)), "a positive multiple of groups = 3"),
                                     (np.ones((3, 1, 3, 9)), "fits the padded input width 8")],
    ("pointwise_conv2d", "weight"): [(PW[0], "a 1x1 kernel of shape (C_out, C_in, 1, 1)"),
                                     (W, "a 1x1 kernel"),
                                     (np.ones((4, 2, 1, 1)), "C_in / groups = 3 / 1 = 3"),
                                     (np.ones((0, 3, 1, 1)), "a positive multiple of groups = 1")],
    "depthwise_weight": [(DW[0], "a 4-D array"),
                         (np.ones((3, 2, 3, 3)), "C_in / groups = 3 / 3 = 1"),
                         (np.ones((4, 1, 3, 3)), "a positive multiple of groups = 3"),
                         (np.ones((3, 1, 9, 9)), "fits the padded input height 8")],
    "pointwise_weight": [(PW[0], "a 1x1 kernel"),
                         (np.ones((4, 3, 3, 3)), "a 1x1 kernel"),
                         (np.ones((4, 6, 1, 1)), "C_in / groups = 3 / 1 = 3")],
    ("conv2d", "bias"): [(np.ones((1, 4)), "shape (C_out,) = (4,) or None, got shape (1, 4)"),
                         (np.ones(3), "(4,)"), (np.float64(1.0), "got shape ()")],
    ("depthwise_conv2d", "bias"): [(np.ones(4), "shape (C_out,) = (3,) or None, got shape (4,)")],
    ("pointwise_conv2d", "bias"): [(np.ones(5), "shape (C_out,) = (4,) or None, got shape (5,)")],
    "depthwise_bias": [(np.ones(4), "(3,) or None, got shape (4,)"), (np.ones((3, 1)), "(3,)")],
    "pointwise_bias": [(np.ones(5), "(4,) or None, got shape (5,)"), (np.float64(0.0), "got shape ()")],
}

_PAIR = "a positive int or a pair of positive ints (along H, along W)"
_AT_MOST = f"at most {MAX_STEP:,}"

#: Bad values of the other arguments: (value, fragment, type error?).
BAD_ARGUMENTS = {
    "stride": [(0, _PAIR, False), (-1, _PAIR, False), ((1, 0), "got (1, 0)", False),
               ((1, 2, 3), _PAIR, False), (1.5, _PAIR, TYPE), ("2", "got '2'", TYPE), (None, _PAIR, TYPE),
               (True, "got True", TYPE), (np.array([1, 2]), "got ndarray of shape (2,)", TYPE),
               (MAX_STEP + 1, _AT_MOST, False), ((1, 2**70), _AT_MOST, False)],
    "padding": [(-1, "an int >= 0", False), (((1, -1), (0, 0)), ">= 0", False),
                ((1, 2, 3), "'same' or 'valid', got (1, 2, 3)", False),
                ((1, 1, 1, 1), "4 flat numbers are ambiguous", False), ("full", "got 'full'", False),
                (1.5, "got 1.5", TYPE), (None, "got None", TYPE), ({"h": 1}, "got {'h': 1}", TYPE),
                (MAX_STEP + 1, _AT_MOST, False)],
    "dilation": [(0, _PAIR, False), ((0, 1), _PAIR, False), (1.0, _PAIR, TYPE), ("1", _PAIR, TYPE),
                 (None, _PAIR, TYPE), ((1, 2, 3), _PAIR, False), ((2**31, 1), _AT_MOST, False)],
    "groups": [(0, "a positive divisor of the 3 input channels of x", False), (-1, "got -1", False),
               (2, "divisor of the 3 input channels", False), (1.0, "a positive int, got 1.0", TYPE),
               ("1", "got '1'", TYPE), (None, "got None", TYPE), (True, "got True", TYPE),
               ((1, 1), "got (1, 1)", TYPE)],
    "method": [("cuda", "one of 'reference'", False), (None, "got None", False), (3, "got 3", False),
               ("Direct", "got 'Direct'", False), ("", "got ''", False)],
    "count": [("yes", "False, True, 'dense' or 'effective'", False), (None, "got None", False),
              (1, "got 1", False), ("DENSE", "got 'DENSE'", False)],
    "workspace_limit": [(0, "a positive int of bytes", False), (-5, "got -5", False), (1.5, "got 1.5", False),
                        ("1MB", "got '1MB'", False), (True, "got True", False)],
    "out": [(np.ones((1, 1, 1, 1)), "an array of the output's shape", False),
            ([[1.0]], "None or a writeable C-contiguous float64 array", TYPE),
            (np.float64(0.0), "got float64", TYPE)],
}

#: The output shape of each function's valid call, for its bad ``out`` values.
OUTPUT_SHAPES = {"conv2d": (1, 4, 6, 6), "depthwise_conv2d": (1, 3, 6, 6), "pointwise_conv2d": (1, 4, 8, 8),
                 "separable_conv2d": (1, 4, 6, 6)}


def _read_only(shape):
    array = np.zeros(shape)
    array.flags.writeable = False
    return array


def _bad_outs(function: str) -> list[tuple[object, str, bool]]:
    """``out`` values of the right shape that are still refused."""
    shape = OUTPUT_SHAPES[function]
    return [(np.zeros(shape, np.float32), "the output's dtype float64 (native byte order), got dtype float32", TYPE),
            (np.zeros(shape, ">f8"), "non-native byte order", TYPE),
            (np.zeros(shape[::-1]).T, "a C-contiguous array", False),
            (_read_only(shape), "a writeable array, got a read-only array", False)]


def _bad_values(function: str, argument: str) -> list[tuple[object, str, bool]]:
    """The bad values of ``function``'s ``argument``: (value, fragment, type error?)."""
    if argument == "out":
        return BAD_ARGUMENTS[argument] + _bad_outs(function)
    if argument in BAD_ARGUMENTS:
        return BAD_ARGUMENTS[argument]
    valid = VALID[function][argument]
    shapes = BAD_SHAPES.get((function, argument), BAD_SHAPES.get(argument, []))
    refused = [(make(valid), fragment, is_type) for make, fragment, is_type in BAD_ARRAYS]
    if argument.endswith("bias"):  # None is an absent bias
        refused = [case for case in refused if case[0] is not None]
    return refused + [(value, fragment, False) for value, fragment in shapes]


def _cases():
    for function in VALID:
        for argument in inspect.signature(getattr(npconv, function)).parameters:
            for i, (value, fragment, is_type) in enumerate(_bad_values(function, argument)):
                yield pytest.param(function, argument, value, fragment, is_type, id=f"{function}-{argument}-{i}")


def test_every_argument_of_every_public_function_has_bad_values():
    for function, valid in VALID.items():
        for argument in inspect.signature(getattr(npconv, function)).parameters:
            assert argument in valid or argument in BAD_ARGUMENTS, (function, argument)
            if argument in valid and not argument.endswith("bias") and argument != "x":
                assert (function, argument) in BAD_SHAPES or argument in BAD_SHAPES, (function, argument)


@pytest.mark.parametrize("function, argument, value, fragment, is_type", list(_cases()))
def test_a_bad_argument_is_named_in_a_clear_error(function, argument, value, fragment, is_type):
    call = {**VALID[function], argument: value}
    with pytest.raises(ConvArgumentError) as caught:
        getattr(npconv, function)(**call)
    error, message = caught.value, str(caught.value)
    assert error.argument == argument, message
    assert message.startswith(f"{argument}: expected ") and ", got " in message, message
    assert fragment in message, message
    assert "\n" not in message and len(message) < 400, message
    assert isinstance(error, ConvTypeError) == is_type and isinstance(error, TypeError) == is_type, message


def test_accepted_spellings_still_work():
    """The refusals above are not over-eager: every documented spelling of a valid layer runs."""
    expected = npconv.conv2d(X, W, B, stride=(2, 1), padding=((1, 1), (2, 2)), dilation=(1, 2))
    for stride, padding, dilation in [([2, 1], (1, 2), [1, 2]), ((np.int64(2), 1), [1, 2], (1, np.int32(2))),
                                      ((2, 1), [[1, 1], [2, 2]], (1, 2))]:
        y = npconv.conv2d(X, W, B, stride=stride, padding=padding, dilation=dilation)
        np.testing.assert_array_equal(y, expected)
    assert npconv.conv2d(X, W, padding="SAME").shape == (1, 4, 8, 8)
    assert npconv.conv2d(X, W, stride=MAX_STEP, padding=((0, 0), (MAX_STEP - 9, 0))).shape == (1, 4, 1, 1)
    assert npconv.conv2d(X, W, B, count=np.True_, workspace_limit=np.int64(2**20))[1].mults > 0
    assert npconv.conv2d(X.tolist(), W.tolist(), B.tolist()).shape == (1, 4, 6, 6)


@pytest.mark.parametrize("method", npconv.available_methods())
def test_a_convention_the_method_does_not_execute_is_refused_by_name(method):
    executed = kernels.load(method).CONVENTIONS
    for convention in CONVENTIONS:
        if convention in executed:
            continue
        with pytest.raises(ConvArgumentError) as caught:
            npconv.conv2d(X, W, method=method, count=convention)
        assert caught.value.argument == "count"
        assert f"a convention that method {method!r} executes" in str(caught.value)


# ---------------------------------------------------------------------- the command line

#: Valid, quick arguments each command is given beside the bad one (dropped when they set the
#: flag under test); for bench, a single cheap layer in case a bad value were ever accepted.
BASE = {
    "explain": [],
    "check": ["--claim", "standard.params=19456"],
    "measure": ["--methods", "im2col"],
    "bench": ["--layers", "seed 5x5", "--methods", "im2col", "--repeats", "1"],
    "model": ["small_separable"],
    # a folder that cannot exist: were a bad value ever accepted, nothing would be drawn or written
    "animate": ["--frames", "1", "--out", "/dev/null/never.gif"],
    # were a bad value ever accepted: one epoch of the small network, about a second
    "train": ["--net", "small_separable", "--epochs", "1", "--method", "im2col"],
}

_KERNEL_FITS = "--kernel: expected a kernel whose dilated height"

#: The layer flags explain, check, measure and bench share: (flag, value, fragment of the error line).
LAYER_FLAG_CASES = [
    ("--input", "14x14", "--input: expected H x W x C such as 14x14x3"),
    ("--input", "axbxc", "--input: expected H x W x C"),
    ("--input", "14x14x0", "--input: expected in_channels as an int >= 1, got 0"),
    ("--input", "0x14x3", "--input: expected height as an int >= 1, got 0"),
    ("--input", "0x3x8x8", "--input: expected a batch N >= 1, got N = 0"),
    ("--kernel", "0", "--kernel: expected a positive int"),
    ("--kernel", "99", _KERNEL_FITS),
    ("--kernel", "3x", "--kernel: expected an int, or two ints HxW"),
    ("--filters", "0", "--filters: expected out_channels as an int >= 1"),
    ("--filters", "many", "--filters: expected an int, got 'many'"),
    ("--stride", "0", "--stride: expected a positive int"),
    ("--stride", "a", "--stride: expected an int, or two ints HxW"),
    ("--stride", "3000000000", f"--stride: expected {_PAIR}, {_AT_MOST}"),
    ("--padding", "-1", "--padding: expected an int >= 0"),
    ("--padding", "full", "--padding: expected an int, PHxPW"),
    ("--padding", "1,2,3", "--padding: expected an int, PHxPW"),
    ("--padding", "3000000000", f"--padding: expected an int >= 0 or a pair of ints >= 0 (along H, along W), "
                                f"{_AT_MOST}"),
    ("--dilation", "0", "--dilation: expected a positive int"),
    ("--dilation", "b", "--dilation: expected an int, or two ints HxW"),
    ("--dilation", "9", f"{_KERNEL_FITS} dilation x (kernel - 1) + 1 fits the padded input height 14 + 0 + 0 = "
                        "14, got kernel height 5 with dilation 9"),
    ("--dilation", "3000000000x1", f"--dilation: expected {_PAIR}, {_AT_MOST}"),
    ("--groups", "0", "--groups: expected a positive int, got 0"),
    ("--groups", "2", "--groups: expected a divisor of both in_channels (3) and out_channels (256)"),
    ("--groups", "g", "--groups: expected an int, got 'g'"),
    ("--depth-multiplier", "0", "--depth-multiplier: expected a positive int, got 0"),
    ("--depth-multiplier", "m", "--depth-multiplier: expected an int, got 'm'"),
    ("--bias", "both", "argument --bias: invalid choice: 'both'"),
]

#: (command, flag or positional, arguments, fragment of the error line).
CLI_CASES = [
    *((command, flag, [flag, value], fragment)
      for command in ("explain", "check", "measure", "bench", "animate")
      for flag, value, fragment in LAYER_FLAG_CASES),
    ("explain", "--json", ["--json=yes"], "argument --json: ignored explicit argument 'yes'"),
    ("explain", "--backward", ["--backward=yes"], "argument --backward: ignored explicit argument 'yes'"),
    ("explain", "--method", ["--method", "im2col"], "--method: expected comma-separated fast methods among"),
    ("explain", "--method", ["--method", ","], "--method: expected comma-separated fast methods among"),
    ("check", "FILE", ["/no/such/claims.toml"], "FILE: expected a readable TOML claims file"),
    ("check", "--claim", ["--claim", "nonsense"], "--claim: expected QUANTITY=VALUE or QUANTITY=EXPRESSION=VALUE"),
    ("check", "--claim", ["--claim", "standard.params=abc"], "value: expected a number"),
    ("check", "--claim", ["--claim", "standard.nothing=1"], "quantity: expected a quantity name"),
    ("check", "--counting", ["--counting", "both"], "argument --counting: invalid choice: 'both'"),
    ("check", "--tolerance", ["--tolerance", "loose"], "--tolerance: expected 'exact', 'digits'"),
    ("check", "--readings", ["--readings", "stride"], "--readings: expected reading names among"),
    ("check", "--require-working", ["--require-working=1"], "argument --require-working: ignored explicit"),
    ("check", "--exercise", ["--exercise", "/no/such/sheet.toml"], "FILE: expected a claims file with --exercise"),
    ("check", "--answers", ["--answers=1"], "argument --answers: ignored explicit argument '1'"),
    ("check", "--json", ["--json=1"], "argument --json: ignored explicit argument '1'"),
    ("measure", "--methods", ["--methods", "fastest"], "--methods: expected comma-separated methods among"),
    ("measure", "--methods", ["--methods", ""], "--methods: expected comma-separated methods among"),
    ("measure", "--time-limit", ["--time-limit", "0"], "--time-limit: expected a positive number of seconds"),
    ("measure", "--time-limit", ["--time-limit", "nan"], "--time-limit: expected a positive number of seconds"),
    ("measure", "--time-limit", ["--time-limit", "soon"], "argument --time-limit: invalid float value: 'soon'"),
    ("measure", "--json", ["--json=no"], "argument --json: ignored explicit argument 'no'"),
    ("bench", "--layers", ["--layers", "bogus"], "--layers: expected comma-separated names from the layer set"),
    ("bench", "--layers", ["--layers", "s"], "('s' matches 3: seed 5x5, seed 5x5 p1, stem s2)"),
    ("bench", "--methods", ["--methods", "nonsense"], "--methods: expected comma-separated npconv methods"),
    ("bench", "--threads", ["--threads", "0"], "--threads: expected an int from 1 to"),
    ("bench", "--threads", ["--threads", "99999"], "--threads: expected an int from 1 to"),
    ("bench", "--threads", ["--threads", "two"], "argument --threads: invalid int value: 'two'"),
    ("bench", "--dtype", ["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    ("bench", "--repeats", ["--repeats", "0"], "--repeats: expected a positive int, got 0"),
    ("bench", "--repeats", ["--repeats", "x"], "argument --repeats: invalid int value: 'x'"),
    ("bench", "--json", ["--json", "/no/such/folder/out.json"], "--json: expected a file in an existing folder"),
    ("bench", "--json", ["--json", ""], "--json: expected a file in an existing folder you may write to (a regular "
                                        "file, or a new one), got ''"),
    ("bench", "--json", ["--json", "."], "got '.' (a folder)"),
    ("bench", "--json", ["--json", "/dev/full"], "got '/dev/full' (a character device)"),
    ("bench", "--plot", ["--plot", "/no/such/folder/out.png"], "--plot: expected a file in an existing folder"),
    ("bench", "--plot", ["--plot", ""], "--plot: expected a file in an existing folder you may write to"),
    ("bench", "--separable", ["--separable=yes"], "argument --separable: ignored explicit argument 'yes'"),
    ("animate", "--scene", ["--scene", "sideways"], "argument --scene: invalid choice: 'sideways'"),
    ("animate", "--frames", ["--frames", "0"], "--frames: expected an int from 1 to 300, got 0"),
    ("animate", "--frames", ["--frames", "lots"], "argument --frames: invalid int value: 'lots'"),
    ("animate", "--fps", ["--fps", "-2"], "--fps: expected a number of frames per second above 0"),
    ("animate", "--fps", ["--fps", "inf"], "--fps: expected a number of frames per second above 0"),
    ("animate", "--fps", ["--fps", "quick"], "argument --fps: invalid float value: 'quick'"),
    ("animate", "--out", ["--out", "/no/such/folder/movie.gif"], "--out: expected a file in an existing folder"),
    ("animate", "--out", ["--out", "movie.jpeg"], "--out: expected a file name ending in .gif (Pillow) or .mp4"),
    ("model", "NAME|FILE", ["resnet"], "NAME|FILE: expected a built-in network"),
    ("model", "NAME|FILE", ["/no/such/network.toml"], "expected a readable network file"),
    ("model", "--list", ["--list=all"], "argument --list: ignored explicit argument 'all'"),
    ("model", "--json", ["--json=yes"], "argument --json: ignored explicit argument 'yes'"),
    ("model", "--width", ["mobilenet_v1", "--width", "0"], "--width: expected a positive width multiplier"),
    ("model", "--width", ["mobilenet_v1", "--width", "nan"], "--width: expected a positive width multiplier"),
    ("model", "--width", ["mobilenet_v1", "--width", "inf"], "--width: expected a positive width multiplier"),
    ("model", "--width", ["mobilenet_v1", "--width", "0.001"], "--width: expected a multiplier that leaves"),
    ("model", "--width", ["mobilenet_v1", "--width", "wide"], "argument --width: invalid float value: 'wide'"),
    ("model", "--width", ["vgg16", "--width", "0.5"], "--width: expected an option vgg16 takes"),
    ("model", "--resolution", ["mobilenet_v1", "--resolution", "0"], "--resolution: expected an int >= 1, got 0"),
    ("model", "--resolution", ["vgg16", "--resolution", "31"], "--resolution: expected an int >= 32"),
    ("model", "--resolution", ["resnet18", "--resolution", "x"], "argument --resolution: invalid int value"),
    ("model", "--resolution", ["small_separable", "--resolution", "32"],
     "--resolution: expected an option small_separable takes (classes)"),
    ("model", "--classes", ["resnet18", "--classes", "0"], "--classes: expected an int >= 1, got 0"),
    ("model", "--classes", ["--classes", "q"], "argument --classes: invalid int value: 'q'"),
    ("model", "--standard", ["vgg16", "--standard"], "--standard: expected a network with separable layers"),
    ("model", "--standard", ["--standard=1"], "argument --standard: ignored explicit argument '1'"),
    ("model", "--measure", ["--measure=1"], "argument --measure: ignored explicit argument '1'"),
    ("model", "--method", ["--method", "direct"], "--method: expected --measure beside it"),
    ("model", "--method", ["--measure", "--method", "abacus"], "--method: expected one of 'reference'"),
    ("model", "--convention", ["--measure", "--convention", "both"], "argument --convention: invalid choice"),
    ("model", "--workspace-limit", ["--measure", "--workspace-limit", "0"],
     "--workspace-limit: expected a positive number of MiB, got 0"),
    ("model", "--workspace-limit", ["--measure", "--workspace-limit", "lots"],
     "argument --workspace-limit: invalid int value: 'lots'"),
    ("model", "--workspace-limit", ["--workspace-limit", "8"], "--workspace-limit: expected --measure beside it"),
    ("model", "--compare", ["--compare", "tensorflow"], "argument --compare: invalid choice: 'tensorflow'"),
    # the PyTorch-side refusals (no such file, a factory that raises, ...) are in test_torch_models.py
    ("model", "--torch", ["--torch", "net.py:build"], "--torch: expected no NAME|FILE beside it"),
    ("model", "--input-shape", ["--input-shape", "1x3x8x8"], "--input-shape: expected --torch beside it"),
    ("train", "--net", ["--net", "lenet"], "--net: expected a built-in network (mobilenet_v1,"),
    ("train", "--net", ["--net", ","], "--net: expected one or more network names or TOML files, got ','"),
    ("train", "--epochs", ["--epochs", "0"], "--epochs: expected an int >= 1, got '0'"),
    ("train", "--batch-size", ["--batch-size", "1.5"], "--batch-size: expected an int >= 1, got '1.5'"),
    ("train", "--lr", ["--lr", "inf"], "--lr: expected a positive learning rate such as 0.01, got 'inf'"),
    ("train", "--optimizer", ["--optimizer", "lbfgs"], "--optimizer: expected sgd or adam, got 'lbfgs'"),
    ("train", "--momentum", ["--optimizer", "sgd", "--momentum", "-0.1"],
     "--momentum: expected a momentum 0 <= m < 1 such as 0.9, got '-0.1'"),
    ("train", "--schedule", ["--schedule", "linear"], "--schedule: expected cosine or constant, got 'linear'"),
    ("train", "--method", ["--method", "abacus"], "--method: expected one of reference, im2col, direct"),
    ("train", "--seed", ["--seed", "x"], "--seed: expected an int >= 0, got 'x'"),
    ("train", "--data", ["--data", "/no/such/data.npz"], "--data: expected an existing .npz file"),
    ("train", "--save", ["--save", "/no/such/folder/w.npz"], "--save: expected a file in an existing folder"),
    ("train", "--load", ["--load", "/no/such/w.npz"], "--load: expected an existing .npz file"),
    ("train", "--plot", ["--plot", "/no/such/folder/c.png"], "--plot: expected a file in an existing folder"),
    ("train", "--json", ["--json=yes"], "argument --json: ignored explicit argument 'yes'"),
]


#: The cases that are file problems (exit status 5); every other case is a bad value (2).
FILE_CASES = {("check", "/no/such/claims.toml"), ("bench", "/no/such/folder/out.json"), ("bench", "."),
              ("bench", "/dev/full"), ("bench", "/no/such/folder/out.png"),
              ("animate", "/no/such/folder/movie.gif"), ("model", "/no/such/network.toml"),
              ("train", "/no/such/data.npz"), ("train", "/no/such/folder/w.npz"), ("train", "/no/such/w.npz"),
              ("train", "/no/such/folder/c.png")}


def _argv(command: str, flag: str, args: list[str]) -> list[str]:
    """``command``, its base arguments unless they set ``flag`` (or name the network), then ``args``."""
    base = BASE[command]
    if flag in base or (command == "model" and args and not args[0].startswith("-")) or flag == "FILE":
        base = []
    return [command, *base, *args]


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every option and positional of ``parser`` but --help."""
    return {action.option_strings[0] if action.option_strings else action.metavar
            for action in parser._actions if not isinstance(action, argparse._HelpAction)}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def test_every_flag_of_every_command_has_bad_values():
    covered = {(command, flag) for command, flag, _, _ in CLI_CASES}
    commands = _commands()
    assert set(commands) == set(BASE)
    missing = {(name, flag) for name, parser in commands.items() for flag in _flags(parser)} - covered
    assert not missing, f"flags without a bad-value case: {sorted(missing)}"


@pytest.mark.parametrize("command, flag, args, fragment", CLI_CASES,
                         ids=[f"{c[0]} {' '.join(c[2])}" for c in CLI_CASES])
def test_a_bad_flag_value_exits_with_its_status_naming_it_without_a_traceback(capsys, command, flag, args,
                                                                              fragment):
    code, out, err = run(capsys, *_argv(command, flag, args))
    assert code == (EXIT_FILE if (command, args[-1]) in FILE_CASES else EXIT_USAGE), (code, out, err)
    assert out == ""
    assert f"npconv {command}: error: " in err, err
    error_line = next(line for line in err.splitlines() if line.startswith(f"npconv {command}: error: "))
    assert fragment in error_line, err
    assert "Traceback" not in err


def test_no_traceback_reaches_a_user_of_the_console_script():
    """One run as a user runs it: a value that used to escape as a ValueError traceback."""
    result = subprocess.run([sys.executable, "-m", "npconv", "model", "mobilenet_v1", "--width", "nan"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("npconv model: error: --width: expected a positive width multiplier"), \
        result.stderr
    assert "Traceback" not in result.stderr
