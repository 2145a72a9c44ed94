"""Closed-form formulas: hand-worked values, truthful working, and independent brute force."""

from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npconv import formulas as F
from npconv.errors import ConvArgumentError
from npconv.geometry import BIAS_CONVENTIONS, ConvGeometry, SeparableGeometry

from strategies import layers

PROBLEM = dict(input_shape=(1, 3, 14, 14), out_channels=256, kernel_size=5)


def evaluate(working: str) -> Fraction:
    """Evaluate a rendered working string as arithmetic (``x`` is times, ``floor`` is floor; the
    middle of a long sum, ``[5 more columns: 24]``, is the number it stands for)."""
    expr = re.sub(r"\[[0-9,]+ more [a-z ]+: ([0-9,]+)\]", r"\1", working)
    expr = expr.replace(",", "").replace(" x ", " * ")
    assert re.fullmatch(r"[0-9+\-*/() floor]*", expr), working
    expr = re.sub(r"(\d+)", r"Fraction(\1)", expr)
    return eval(expr, {"Fraction": Fraction, "floor": math.floor})


def test_problem_example_standard_layer():
    g = ConvGeometry.from_layer(**PROBLEM, bias=True)
    assert (F.output_height(g).value, F.output_width(g).value) == (10, 10)
    assert str(F.output_height(g)) == "floor((14 + 0 + 0 - 5) / 1) + 1 = 10"
    assert str(F.params(g)) == "(5 x 5 x 3 + 1) x 256 = 19,456"
    assert F.params(g).formula == "(KH x KW x C_in + 1) x C_out"
    assert str(F.mults(g)) == "10 x 10 x 256 x 5 x 5 x 3 = 1,920,000"
    assert F.mults(g, "effective").value == 1_920_000  # no padding: nothing to skip
    assert F.adds(g).value == 1_920_000  # with bias, one addition per product
    assert F.params(g, bias=False).value == 19_200


def test_problem_example_separable_layer():
    s = SeparableGeometry.from_layer(**PROBLEM)
    assert s.output_shape == (1, 256, 10, 10)
    assert str(F.params(s.depthwise)) == "(5 x 5 x 1) x 3 = 75"
    assert str(F.params(s.pointwise)) == "(1 x 1 x 3 + 1) x 256 = 1,024"
    assert str(F.separable_params(s)) == "75 + 1,024 = 1,099"
    assert str(F.mults(s.depthwise)) == "10 x 10 x 3 x 5 x 5 x 1 = 7,500"
    assert str(F.mults(s.pointwise)) == "10 x 10 x 256 x 1 x 1 x 3 = 76,800"
    assert str(F.separable_mults(s)) == "7,500 + 76,800 = 84,300"
    # depthwise has no bias (Keras): 300 outputs of 25 products need 24 additions each
    assert F.adds(s.depthwise).value == 300 * 24


def test_problem_example_with_padding_1():
    g = ConvGeometry.from_layer(**PROBLEM, padding=1)
    s = SeparableGeometry.from_layer(**PROBLEM, padding=1)
    assert g.output_shape == (1, 256, 12, 12)
    assert F.mults(g).value == 2_764_800
    assert str(F.separable_mults(s)) == "10,800 + 110,592 = 121,392"
    effective = F.mults(g, "effective")
    # rows: the first and last output rows lose one kernel row to the padding
    assert [str(d) for d in effective.details] == ["4 + 5 x 10 + 4 = 58"] * 2
    assert effective.value == 256 * 3 * 58 * 58
    assert F.padded_mults(g).value == 2_764_800 - 256 * 3 * 58 * 58


@pytest.mark.parametrize("convention, expected", [("keras", 1_099), ("torch", 1_102), ("none", 843)])
def test_separable_bias_conventions(convention, expected):
    s = SeparableGeometry.from_layer(**PROBLEM, bias=convention)
    assert F.separable_params(s).value == expected
    assert s.bias_convention == convention


def test_mobilenet_reduction_renders_and_equals_the_mult_ratio():
    s = SeparableGeometry.from_layer(**PROBLEM)
    r = F.mobilenet_reduction(s)
    assert r.working == "1 / 256 + 1 / (5 x 5)"
    assert r.value == Fraction(1, 256) + Fraction(1, 25)
    std = F.mults(s.standard_equivalent())
    assert F.ratio("r", F.separable_mults(s), std).value == r.value


def test_im2col_workspace():
    g = ConvGeometry.from_layer((8, 64, 56, 56), 64, 3, padding=1)
    q = F.im2col_workspace_bytes(g, itemsize=4)
    assert q.value == 64 * 9 * 8 * 56 * 56 * 4
    assert str(q) == "(64 x 3 x 3) x (8 x 56 x 56) x 4 = 57,802,752"


def test_unknown_convention_is_named():
    g = ConvGeometry.from_layer(**PROBLEM)
    with pytest.raises(ConvArgumentError, match=r"^convention: expected one of 'dense', 'effective', got 'sparse'"):
        F.mults(g, "sparse")


def brute_force_taps(g: ConvGeometry) -> tuple[int, int]:
    """(dense, effective) taps of one (image, output channel, input channel) by enumeration."""
    oh, kh = np.meshgrid(np.arange(g.out_height), np.arange(g.kernel_h), indexing="ij")
    ow, kw = np.meshgrid(np.arange(g.out_width), np.arange(g.kernel_w), indexing="ij")
    rows = oh * g.stride[0] - g.padding[0][0] + kh * g.dilation[0]
    cols = ow * g.stride[1] - g.padding[1][0] + kw * g.dilation[1]
    row_ok = (rows >= 0) & (rows < g.height)  # (OH, KH)
    col_ok = (cols >= 0) & (cols < g.width)  # (OW, KW)
    real = row_ok[:, None, :, None] & col_ok[None, :, None, :]  # (OH, OW, KH, KW)
    return real.size, int(real.sum()), int(real.any(axis=(2, 3)).sum())


@given(layer=layers(max_batch=3, max_kernel=6, max_pad=6, max_extra=12))
def test_counts_match_brute_force_enumeration(layer):
    g = layer.geometry
    dense_taps, effective_taps, reached = brute_force_taps(g)
    per_pair = g.batch * g.out_channels * g.in_channels_per_group
    assert F.mults(g, "dense").value == per_pair * dense_taps
    assert F.mults(g, "effective").value == per_pair * effective_taps
    outputs = g.batch * g.out_channels * g.out_height * g.out_width
    assert F.outputs(g, "dense").value == outputs
    assert F.outputs(g, "effective").value == g.batch * g.out_channels * reached
    bias_adds = 0 if g.bias else 1
    assert F.adds(g, "dense").value == per_pair * dense_taps - bias_adds * outputs
    assert F.adds(g, "effective").value == (
        per_pair * effective_taps - bias_adds * g.batch * g.out_channels * reached
    )
    assert F.params(g).value == g.out_channels * (g.in_channels_per_group * g.kernel_h * g.kernel_w + g.bias)


@given(layer=layers(max_batch=3, max_kernel=6, max_pad=6, max_extra=12),
       convention=st.sampled_from(["dense", "effective"]))
def test_working_evaluates_to_the_value(layer, convention):
    """The numbers shown are the numbers used: every rendered working re-evaluates to its value."""
    g = layer.geometry
    shown = [F.output_height(g), F.output_width(g), F.params(g), F.mults(g, convention),
             F.adds(g, convention), F.flops(g, convention), F.outputs(g, convention),
             F.padded_mults(g), F.im2col_workspace_bytes(g, 8)]
    for q in shown:
        assert evaluate(q.working) == q.value, str(q)
        for detail in q.details:
            assert evaluate(detail.working) == detail.value, str(detail)


@given(
    layer=layers(depthwise=True, max_kernel=5),
    out_channels=st.integers(1, 40),
    bias=st.sampled_from(sorted(BIAS_CONVENTIONS)),
)
def test_separable_formulas(layer, out_channels, bias):
    g = layer.geometry
    s = SeparableGeometry.from_layer(
        g.input_shape, out_channels, (g.kernel_h, g.kernel_w), stride=g.stride,
        padding=g.padding, dilation=g.dilation, depth_multiplier=g.depth_multiplier, bias=bias,
    )
    m, c_in, k = g.depth_multiplier, g.in_channels, g.kernel_h * g.kernel_w
    dw_bias, pw_bias = BIAS_CONVENTIONS[bias]
    assert F.separable_params(s).value == (m * c_in * (k + dw_bias)) + out_channels * (m * c_in + pw_bias)
    positions = g.batch * g.out_height * g.out_width
    assert F.separable_mults(s).value == positions * (m * c_in * k + out_channels * m * c_in)
    standard = s.standard_equivalent()
    exact = F.ratio("r", F.separable_mults(s), F.mults(standard)).value
    assert exact == F.mobilenet_reduction(s).value == Fraction(m, out_channels) + Fraction(m, k)
    for convention in ("dense", "effective"):
        total = F.separable_flops(s, convention).value
        assert total == F.flops(s.depthwise, convention).value + F.flops(s.pointwise, convention).value


def test_formulas_import_neither_numpy_nor_numba():
    code = (
        "import sys; from npconv import formulas, geometry; "
        "g = geometry.ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, padding=1); "
        "formulas.mults(g, 'effective'); "
        "print(sorted(m for m in ('numpy', 'numba', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@given(size=st.integers(1, 30), kernel=st.integers(1, 8), stride=st.integers(1, 5),
       pads=st.tuples(st.integers(0, 12), st.integers(0, 12)), dilation=st.integers(1, 4))
def test_tap_runs_are_the_per_output_tap_counts_run_length_encoded(size, kernel, stride, pads, dilation):
    span = dilation * (kernel - 1) + 1
    if span > size + sum(pads):
        return
    out = (size + sum(pads) - span) // stride + 1
    runs = F.valid_tap_runs(size, kernel, stride, pads[0], dilation, out)
    assert [taps for taps, n in runs for _ in range(n)] == F.valid_taps_per_output(
        size, kernel, stride, pads[0], dilation, out)
    assert all(a[0] != b[0] for a, b in itertools.pairwise(runs))  # neighbouring runs differ


def test_effective_counts_of_an_axis_with_billions_of_outputs_take_no_time():
    """Regression: the tap sums walked every output position, so ``npconv explain --padding
    2147483647`` (4.3e9 output columns) ran for hours; they now take O(kernel) steps."""
    import time

    g = ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, padding=2**31 - 1)
    started = time.perf_counter()
    # with padding this wide each of the 14 input rows meets each of the 5 kernel rows once: T = 70,
    # and 14 + 5 - 1 = 18 output rows reach the image
    assert F.mults(g, "effective").value == 256 * 3 * 70 * 70
    assert F.outputs(g, "effective").value == 256 * 18 * 18
    assert time.perf_counter() - started < 5


def test_a_long_sum_shown_with_its_middle_elided_still_adds_up():
    """A 1x6 kernel over a row padded by 6: the effective count sums 13 output columns, and the
    working shows the first and last four with ``[5 more columns: 24]`` between them."""
    g = ConvGeometry.from_shapes((1, 1, 1, 6), (1, 1, 1, 6), None, padding=6)
    columns = next(d for d in F.mults(g, "effective").details if "more columns" in d.working)
    assert evaluate(columns.working) == columns.value == 36
