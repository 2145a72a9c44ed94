"""The backward closed forms against a brute-force enumeration of every forward tap, the per-axis
facts they rest on (which taps reach which position, which tap reaches it first), their working
shown, and their cost: O(kernel) steps, whatever the layer's size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npconv import formulas
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry, first_touch_starts, tap_output_range
from npconv.gradients import GRADIENTS, separable_needs

from strategies import layers

EXAMPLES = max(20, settings.default.max_examples // 4)


def enumerated_counts(g: ConvGeometry, convention: str) -> dict[str, tuple[int, int]]:
    """(mults, adds) of each gradient by listing every forward tap and the element it feeds.

    Each tap (n, co, oh, ow, ci, kh, kw) -- every one under "dense", those on real input under
    "effective" -- gives one product to the input gradient at the padded input position it read
    and one to the weight gradient at its weight; an element with T products costs T - 1
    additions.
    """
    shape = (g.batch, g.out_channels, g.out_height, g.out_width, g.in_channels_per_group, g.kernel_h, g.kernel_w)
    n, co, oh, ow, ci, kh, kw = (a.reshape(-1) for a in np.indices(shape, dtype=np.int64))
    (top, bottom), (left, right) = g.padding
    ph = oh * g.stride[0] + kh * g.dilation[0]  # padded coordinates
    pw = ow * g.stride[1] + kw * g.dilation[1]
    keep = np.ones(ph.shape, bool)
    if convention == "effective":
        keep = (ph >= top) & (ph < top + g.height) & (pw >= left) & (pw < left + g.width)
    c = (co // g.out_channels_per_group) * g.in_channels_per_group + ci
    padded_h, padded_w = top + g.height + bottom, left + g.width + right
    input_elements = np.unique((((n * g.in_channels + c) * padded_h + ph) * padded_w + pw)[keep]).size
    weight_elements = np.unique((((co * g.in_channels_per_group + ci) * g.kernel_h + kh) * g.kernel_w + kw)[keep]).size
    products = int(keep.sum())
    counts = {"input": (products, products - input_elements), "weight": (products, products - weight_elements)}
    if g.bias:
        terms = g.batch * g.out_height * g.out_width
        counts["bias"] = (0, g.out_channels * (terms - 1) if terms else 0)
    return counts


@settings(max_examples=EXAMPLES)
@given(layer=layers(max_batch=3), convention=st.sampled_from(["dense", "effective"]))
def test_backward_counts_equal_an_enumeration_of_every_tap(layer, convention):
    g = layer.geometry
    expected = enumerated_counts(g, convention)
    for name in GRADIENTS:
        mults, adds = formulas.backward_mults(g, name, convention), formulas.backward_adds(g, name, convention)
        assert (int(mults), int(adds)) == expected.get(name, (0, 0)), name
        assert str(adds).endswith(f"= {adds.value:,}") or str(adds) == f"{adds.value:,}"
    total = formulas.backward_mults_total(g, convention).value, formulas.backward_adds_total(g, convention).value
    assert total == tuple(map(sum, zip(*expected.values(), strict=True)))


def test_an_empty_batch_costs_nothing():
    g = ConvGeometry.from_layer((0, 3, 8, 8), 4, 3, padding=1, bias=True)
    for convention in ("dense", "effective"):
        for name in GRADIENTS:
            assert formulas.backward_mults(g, name, convention).value == 0
            assert formulas.backward_adds(g, name, convention).value == 0
        assert enumerated_counts(g, convention) == {"input": (0, 0), "weight": (0, 0), "bias": (0, 0)}


# ---------------------------------------------------------------------- the per-axis facts


@given(size=st.integers(1, 12), kernel=st.integers(1, 5), stride=st.integers(1, 4), dilation=st.integers(1, 4),
       pad=st.tuples(st.integers(0, 4), st.integers(0, 4)))
def test_first_touch_starts_and_tap_ranges_equal_brute_force(size, kernel, stride, dilation, pad):
    span = dilation * (kernel - 1) + 1
    if span > size + sum(pad):
        return
    out = (size + sum(pad) - span) // stride + 1
    starts = first_touch_starts(out, kernel, stride, dilation)
    for k in range(kernel):
        first = [o for o in range(out)
                 if not any((o * stride + k * dilation - k2 * dilation) % stride == 0
                            and (o * stride + (k - k2) * dilation) // stride < out for k2 in range(k))]
        assert first == list(range(starts[k], out)), (k, first, starts)
        real = [o for o in range(out) if 0 <= o * stride - pad[0] + k * dilation < size]
        lo, hi = tap_output_range(size, k, stride, pad[0], dilation, out)
        assert real == list(range(lo, hi)), (k, real, (lo, hi))


@settings(max_examples=EXAMPLES)
@given(layer=layers())
def test_reached_positions_equal_brute_force(layer):
    g = layer.geometry
    for axis, (size, kernel, out) in enumerate(((g.height, g.kernel_h, g.out_height), (g.width, g.kernel_w, g.out_width))):
        stride, dilation, pad = g.stride[axis], g.dilation[axis], g.padding[axis][0]
        padded = {o * stride + k * dilation for o in range(out) for k in range(kernel)}
        real = {p for p in padded if pad <= p < pad + size}
        kernel_real = {k for k in range(kernel) for o in range(out) if pad <= o * stride + k * dilation < pad + size}
        assert formulas.reached_padded_positions(g, axis).value == len(padded)
        assert formulas.reached_input_positions(g, axis).value == len(real)
        assert formulas.real_kernel_positions(g, axis).value == len(kernel_real)


def test_a_layer_of_a_trillion_rows_is_counted_in_kernel_steps():
    """O(outputs) counting would not finish: every closed form works per kernel tap."""
    rows = 10**12
    g = ConvGeometry.from_layer((2, 3, rows, 7), 4, (3, 2), stride=(2, 1), padding=((1, 2), (0, 1)),
                                dilation=(3, 2), bias=True)
    out = g.out_height
    # along H, stride 2 and dilation 3: kernel rows 0 and 1 reach new rows everywhere (q = 2), row 2
    # repeats row 0's rows shifted by 3 outputs
    assert formulas.reached_padded_positions(g, 0).value == 2 * out + 3
    # real rows are padded rows 1 .. 10**12: all are reached but padded row 1 (odd, below kernel row 1's 3)
    assert formulas.reached_input_positions(g, 0).value == rows - 1
    dense = formulas.backward_adds(g, "input", "dense")
    assert dense.value == formulas.mults(g, "dense").value - 2 * 3 * (2 * out + 3) * 8
    assert formulas.training_step_mults(g, "effective").value == 3 * formulas.mults(g, "effective").value


# ---------------------------------------------------------------------- training steps, separable layers


@given(layer=layers(), convention=st.sampled_from(["dense", "effective"]))
@settings(max_examples=EXAMPLES)
def test_a_training_step_costs_three_forward_passes_of_mults_and_two_for_a_first_layer(layer, convention):
    g = layer.geometry
    forward = formulas.mults(g, convention).value
    step = formulas.training_step_mults(g, convention)
    assert step.value == 3 * forward
    first_layer = formulas.training_step_mults(g, convention, needs=("weight", "bias"))
    assert first_layer.value == 2 * forward
    if forward:
        passes = {d.label: d for d in step.details}["forward passes"]
        assert passes.value == 3 and "three forward passes" in step.note
    adds = formulas.training_step_adds(g, convention)
    assert adds.value == formulas.adds(g, convention).value + formulas.backward_adds_total(g, convention).value


@given(layer=layers(depthwise=True), out_channels=st.integers(1, 6),
       bias=st.sampled_from(["keras", "torch", "none"]), convention=st.sampled_from(["dense", "effective"]),
       needs=st.sets(st.sampled_from(GRADIENTS)))
@settings(max_examples=EXAMPLES)
def test_separable_totals_are_the_parts_with_the_depthwise_output_gradient_between(
        layer, out_channels, bias, convention, needs):
    s = SeparableGeometry.from_layer(layer.input_shape, out_channels, layer.weight_shape[2:], stride=layer.stride,
                                     padding=layer.padding, dilation=layer.dilation,
                                     depth_multiplier=layer.weight_shape[0] // layer.input_shape[1], bias=bias)
    dw_needs, pw_needs = separable_needs(frozenset(needs))
    assert ("input" in pw_needs) == bool(needs)  # the pointwise input gradient feeds the depthwise part
    mults = formulas.separable_backward_mults_total(s, convention, needs)
    assert mults.value == (formulas.backward_mults_total(s.depthwise, convention, dw_needs).value
                           + formulas.backward_mults_total(s.pointwise, convention, pw_needs).value)
    adds = formulas.separable_backward_adds_total(s, convention, needs)
    assert adds.value == (formulas.backward_adds_total(s.depthwise, convention, dw_needs).value
                          + formulas.backward_adds_total(s.pointwise, convention, pw_needs).value)
    step = formulas.separable_training_step_mults(s, convention, needs)
    assert step.value == formulas.separable_mults(s, convention).value + mults.value


# ---------------------------------------------------------------------- working shown, bad arguments


def test_the_working_is_shown_in_symbols_and_numbers():
    g = ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, bias=True)  # the course's layer
    mults = formulas.backward_mults(g, "input")
    assert mults.formula == "OH x OW x C_out x KH x KW x C_in" and str(mults) == "10 x 10 x 256 x 5 x 5 x 3 = 1,920,000"
    adds = formulas.backward_adds(g, "input")
    assert adds.formula == "mults - reached"
    assert str(adds) == "1,920,000 - 588 = 1,919,412"  # 3 channels x 14 x 14 positions, each reached
    reached = {d.label: d for d in adds.details}["reached input gradient elements"]
    assert reached.formula == "C_in x U_H x U_W" and str(reached) == "3 x 14 x 14 = 588"
    u_h = {d.label: d for d in reached.details}["U_H"]
    assert u_h.formula.startswith("sum over kernel rows") and str(u_h) == "10 + 1 x 4 = 14"
    weight = formulas.backward_adds(g, "weight")
    assert str(weight) == "1,920,000 - 19,200 = 1,900,800"
    bias = formulas.backward_adds(g, "bias")
    assert bias.formula == "C_out x (OH x OW - 1)" and str(bias) == "256 x (10 x 10 - 1) = 25,344"
    step = formulas.training_step_mults(g)
    assert str(step) == "1,920,000 + 3,840,000 = 5,760,000"
    assert step.to_dict()["details"]["forward passes"]["value"] == 3
    effective = formulas.backward_adds(g.replace(padding=2), "weight", "effective")
    assert {d.label for d in {d.label: d for d in effective.details}["reached weight gradient elements"].details} \
        == {"K'_H", "K'_W"}
    no_bias = formulas.backward_adds(g.replace(bias=False), "bias")
    assert no_bias.value == 0 and "no bias" in no_bias.note


@pytest.mark.parametrize("call, argument", [
    (lambda g: formulas.backward_mults(g, "weights"), "wrt"),
    (lambda g: formulas.backward_adds(g, None), "wrt"),
    (lambda g: formulas.backward_adds(g, "input", "sparse"), "convention"),
    (lambda g: formulas.backward_mults_total(g, "dense", ("input", "x")), "needs"),
    (lambda g: formulas.training_step_mults(g, "dense", 3), "needs"),
])
def test_bad_arguments_of_the_formulas_are_named(call, argument):
    g = ConvGeometry.from_layer((1, 3, 8, 8), 4, 3)
    with pytest.raises(ConvArgumentError) as caught:
        call(g)
    assert caught.value.argument == argument


def test_the_formulas_import_neither_numpy_nor_numba():
    import subprocess
    import sys

    code = ("import sys; from npconv import formulas; from npconv.geometry import ConvGeometry; "
            "g = ConvGeometry.from_layer((1, 3, 8, 8), 4, 3, padding=1); formulas.training_step_mults(g); "
            "formulas.backward_adds(g, 'input', 'effective'); "
            "assert 'numpy' not in sys.modules and 'numba' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gcd_form_of_the_reached_padded_rows():
    """``U = min(q, K) x O + max(K - q, 0) x min(O, D / gcd(S, D))``, ``q = S / gcd(S, D)``."""
    for out in range(1, 6):
        for kernel in range(1, 6):
            for stride in range(1, 5):
                for dilation in range(1, 5):
                    q, e = stride // math.gcd(stride, dilation), dilation // math.gcd(stride, dilation)
                    brute = len({o * stride + k * dilation for o in range(out) for k in range(kernel)})
                    starts = first_touch_starts(out, kernel, stride, dilation)
                    assert brute == sum(out - s for s in starts) == min(q, kernel) * out + max(kernel - q, 0) * min(out, e)
