"""``npconv explain --backward``: one training step's counts, checked against what the kernels count."""

import json

import numpy as np
import pytest

import npconv

from cli_runner import run

SMALL = ("--input", "7x6x2", "--kernel", "3", "--filters", "4", "--stride", "2", "--padding", "1",
         "--bias", "torch")


def test_course_layer_step_is_three_forward_passes(capsys):
    code, out, _ = run(capsys, "explain", "--backward")
    assert code == 0
    section = out[out.index("Backward pass"):]
    assert "training-step mults      5,760,000     22,500    230,400    252,900" in section
    assert "first layer: step mults  3,840,000     15,000    153,600    245,400" in section
    assert "3.00" in section and "2.00" in section and "2.91" in section
    assert "Why about three forward passes" in section
    # the standard layer's input gradient: summed on the 14 x 14 input, every position reached
    assert "= 1,920,000 - 588 = 1,919,412" in section


def test_without_the_flag_nothing_of_the_backward_pass_is_shown(capsys):
    out = run(capsys, "explain")[1]
    assert "Backward pass" not in out
    assert "backward" not in json.loads(run(capsys, "explain", "--json")[1])


def _measured(part: str, convention: str, needs=("input", "weight", "bias")):
    """The counts the reference kernel tallies for the backward pass of SMALL's ``part``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 7, 6))
    layout = dict(stride=2, padding=1)
    if part == "standard":
        w, b = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
        y = npconv.conv2d(x, w, b, **layout)
        return npconv.conv2d_backward(np.ones_like(y), x, w, b, **layout, count=convention, needs=needs)[1]
    dw, db = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal(2)
    pw, pb = rng.standard_normal((4, 2, 1, 1)), rng.standard_normal(4)
    y = npconv.separable_conv2d(x, dw, pw, db, pb, **layout)
    return npconv.separable_conv2d_backward(np.ones_like(y), x, dw, pw, db, pb, **layout, count=convention,
                                            needs=needs)[1]


@pytest.mark.parametrize("convention", ["dense", "effective"])
@pytest.mark.parametrize("part", ["standard", "separable"])
def test_the_numbers_shown_are_what_the_reference_kernel_counts(capsys, part, convention):
    backward = json.loads(run(capsys, "explain", "--backward", "--json", *SMALL)[1])["backward"][part]
    counts = _measured(part, convention)
    by_gradient = (tuple((c.mults, c.adds) for c in (counts.input, counts.weight, counts.bias))
                   if part == "standard" else
                   tuple(_separable_sum(counts, wrt) for wrt in ("input", "weight", "bias")))
    for wrt, measured in zip(("input", "weight", "bias"), by_gradient, strict=True):
        shown = backward[wrt][convention]
        assert (shown["mults"]["value"], shown["adds"]["value"]) == measured, wrt
    step = backward["step"][convention]["mults"]["value"]
    forward = backward["forward"][convention]["mults"]["value"]
    assert step == forward + counts.mults
    first = _measured(part, convention, needs=("weight", "bias"))
    assert backward["first_layer_step"][convention]["mults"]["value"] == forward + first.mults


def _separable_sum(counts, wrt: str) -> tuple[int, int]:
    """A separable layer's ``wrt`` gradients, both parts summed: (mults, adds)."""
    parts = [getattr(getattr(counts, part), wrt) for part in ("depthwise", "pointwise")]
    return (sum(p.mults for p in parts if p is not None), sum(p.adds for p in parts if p is not None))
