"""Layer geometry: output shapes, padding forms, the "same" rule and validation messages."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from npconv.errors import ConvArgumentError, ConvTypeError
from npconv.geometry import (
    ConvGeometry,
    SeparableGeometry,
    conv_output_length,
    normalize_padding,
    same_padding,
)

from strategies import layers


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation, expected",
    [
        (14, 5, 1, (0, 0), 1, 10),  # the course problem
        (14, 5, 1, (1, 1), 1, 12),
        (224, 3, 2, (1, 1), 1, 112),  # stem s2
        (56, 3, 1, (1, 1), 1, 56),
        (7, 3, 2, (0, 0), 2, 2),  # dilated span 5: outputs at 0 and 2
        (5, 5, 3, (0, 0), 1, 1),  # the kernel just fits
        (4, 2, 3, (0, 1), 1, 2),  # asymmetric padding: padded size 5
    ],
)
def test_output_length_by_hand(size, kernel, stride, padding, dilation, expected):
    assert conv_output_length(size, kernel, stride, padding, dilation) == expected


@pytest.mark.parametrize(
    "padding, expected",
    [
        (0, ((0, 0), (0, 0))),
        (2, ((2, 2), (2, 2))),
        ((1, 3), ((1, 1), (3, 3))),
        (((0, 1), (2, 3)), ((0, 1), (2, 3))),
        ((1, (0, 2)), ((1, 1), (0, 2))),
        ("same", "same"),
        ("VALID", "valid"),
    ],
)
def test_padding_forms(padding, expected):
    assert normalize_padding(padding) == expected


@given(
    size=st.integers(1, 40),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
)
def test_same_padding_gives_ceil_of_size_over_stride(size, kernel, stride, dilation):
    before, after = same_padding(size, kernel, stride, dilation)
    assert 0 <= before <= after <= before + 1  # odd extra pixel goes after (bottom/right)
    assert conv_output_length(size, kernel, stride, (before, after), dilation) == math.ceil(size / stride)


def test_same_padding_with_stride_2_puts_the_extra_pixel_bottom_right():
    g = ConvGeometry.from_layer((1, 1, 224, 223), 8, 3, stride=2, padding="same")
    # H: out 112, total = 111*2 + 3 - 224 = 1 -> (0, 1); W: out 112, total = 2 -> (1, 1)
    assert g.padding == ((0, 1), (1, 1))
    assert g.output_shape == (1, 8, 112, 112)
    assert g.padding_rule == "same"


@given(layer=layers())
def test_geometry_shapes_are_consistent(layer):
    g = layer.geometry
    assert g.input_shape == layer.input_shape
    assert g.weight_shape == layer.weight_shape
    assert g.output_shape[:2] == (layer.input_shape[0], layer.weight_shape[0])
    assert g.out_height >= 1 and g.out_width >= 1
    # every output window starts inside the padded input and ends inside it
    (pt, pb), (pl, pr) = g.padding
    last_row = (g.out_height - 1) * g.stride[0] + g.dilation[0] * (g.kernel_h - 1)
    last_col = (g.out_width - 1) * g.stride[1] + g.dilation[1] * (g.kernel_w - 1)
    assert last_row < g.height + pt + pb <= last_row + g.stride[0]
    assert last_col < g.width + pl + pr <= last_col + g.stride[1]
    # a copy re-validates to the same layer
    assert g.replace() == g


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(layer=layers(max_batch=1))
def test_same_padding_matches_torch_for_stride_1(layer):
    torch = pytest.importorskip("torch")
    g = ConvGeometry.from_shapes(layer.input_shape, layer.weight_shape, padding="same",
                                 dilation=layer.dilation, groups=layer.groups)
    x = torch.zeros(layer.input_shape)
    w = torch.zeros(layer.weight_shape)
    y = torch.nn.functional.conv2d(x, w, padding="same", dilation=g.dilation, groups=g.groups)
    assert tuple(y.shape) == g.output_shape


def test_separable_geometry_parts():
    s = SeparableGeometry.from_layer((2, 3, 14, 14), 256, 5, padding=1, depth_multiplier=2, bias="torch")
    assert s.depthwise.weight_shape == (6, 1, 5, 5)
    assert s.depthwise.groups == 3 and s.depthwise.bias
    assert s.pointwise.weight_shape == (256, 6, 1, 1)
    assert s.pointwise.input_shape == (2, 6, 12, 12)
    assert s.output_shape == (2, 256, 12, 12)
    assert s.bias_convention == "torch"
    standard = s.standard_equivalent()
    assert standard.weight_shape == (256, 3, 5, 5) and standard.output_shape == s.output_shape


GOOD = dict(input_shape=(1, 3, 14, 14), out_channels=8, kernel_size=3)


@pytest.mark.parametrize(
    "changes, argument, fragment",
    [
        (dict(input_shape=(3, 14, 14)), "input_shape", "(N, C_in, H, W)"),
        (dict(input_shape=(1, 0, 14, 14)), "input_shape", "in_channels as an int >= 1"),
        (dict(input_shape=(1, 3, 14, 14.0)), "input_shape", "width as an int"),
        (dict(out_channels=0), "out_channels", ">= 1"),
        (dict(kernel_size=0), "kernel_size", "positive"),
        (dict(kernel_size=(3, 3, 3)), "kernel_size", "pair"),
        (dict(kernel_size=15), "kernel_size", "fits the padded input height 14 + 0 + 0 = 14"),
        (dict(kernel_size=5, dilation=4), "kernel_size", "spanning 17"),
        (dict(stride=0), "stride", "positive"),
        (dict(stride=(1, -1)), "stride", "positive"),
        (dict(stride=1.5), "stride", "positive"),
        (dict(stride=True), "stride", "positive"),
        (dict(stride="2"), "stride", "positive"),
        (dict(dilation=0), "dilation", "positive"),
        (dict(padding=-1), "padding", "an int >= 0"),
        (dict(padding=((0, -1), (0, 0))), "padding", ">= 0"),
        (dict(padding="full"), "padding", "'same' or 'valid'"),
        (dict(padding=(1, 1, 1, 1)), "padding", "ambiguous"),
        (dict(padding=(1, 2, 3)), "padding", "explicit"),
        (dict(groups=2), "groups", "divisor of both in_channels (3) and out_channels (8)"),
        (dict(groups=0), "groups", "positive"),
        (dict(bias="yes"), "bias", "True or False"),
    ],
)
def test_from_layer_errors_name_the_argument(changes, argument, fragment):
    with pytest.raises(ConvArgumentError) as info:
        ConvGeometry.from_layer(**{**GOOD, **changes})
    error = info.value
    assert error.argument == argument
    assert str(error).startswith(f"{argument}: expected ")
    assert fragment in str(error)
    assert ", got " in str(error)


@pytest.mark.parametrize(
    "shapes, kwargs, argument, fragment",
    [
        (((3, 14, 14), (8, 3, 3, 3)), {}, "x", "4-D array (N, C_in, H, W)"),
        (((1, 3, 14, 14), (8, 3, 3)), {}, "weight", "4-D array (C_out, C_in / groups, KH, KW)"),
        (((1, 3, 14, 14), (8, 2, 3, 3)), {}, "weight", "C_in / groups = 3 / 1 = 3"),
        (((1, 4, 14, 14), (6, 1, 3, 3)), dict(groups=4), "weight", "positive multiple of groups = 4"),
        (((1, 4, 14, 14), (6, 2, 3, 3)), dict(groups=3), "groups", "divisor of the 4 input channels"),
        (((1, 3, 14, 14), (8, 3, 3, 3), (7,)), {}, "bias", "(C_out,) = (8,)"),
        (((1, 3, 2, 2), (8, 3, 3, 3)), {}, "weight", "fits the padded input height 2 + 0 + 0 = 2"),
        (((1, 3, 2, 2), (8, 3, 4, 4)), dict(padding=((1, 0), (1, 0))), "weight", "2 + 1 + 0 = 3"),
        (((0, 3, 14, 14), (8, 3, 3, 3)), dict(stride=0), "stride", "positive"),
    ],
)
def test_from_shapes_errors_name_the_argument(shapes, kwargs, argument, fragment):
    with pytest.raises(ConvArgumentError) as info:
        ConvGeometry.from_shapes(*shapes, **kwargs)
    assert info.value.argument == argument
    assert fragment in str(info.value), str(info.value)


def test_type_errors_are_also_type_errors():
    with pytest.raises(TypeError):
        ConvGeometry.from_layer(**GOOD, stride=1.0)
    assert issubclass(ConvTypeError, ValueError)


def test_zero_batch_is_a_valid_layer():
    g = ConvGeometry.from_layer((0, 3, 14, 14), 8, 3)
    assert g.output_shape == (0, 8, 12, 12)


def test_describe_mentions_the_layer():
    g = ConvGeometry.from_layer((1, 3, 14, 14), 256, 5, padding=((1, 0), (0, 2)), stride=(2, 1))
    text = g.describe()
    assert "1x3x14x14" in text and "5x5" in text and "256 filters" in text
    assert "(top 1, bottom 0), (left 0, right 2)" in text and "stride (2, 1)" in text


@pytest.mark.parametrize(
    "changes, argument, fragment",
    [
        (dict(bias="keras-ish"), "bias", "one of 'keras', 'torch', 'none'"),
        (dict(depth_multiplier=0), "depth_multiplier", "a positive int"),
        (dict(depth_multiplier=1.5), "depth_multiplier", "a positive int"),
        (dict(input_shape=(14, 14, 3)), "input_shape", "(N, C_in, H, W)"),
        (dict(kernel_size=20), "kernel_size", "fits the padded input"),
    ],
)
def test_separable_errors_name_the_argument(changes, argument, fragment):
    with pytest.raises(ConvArgumentError) as info:
        SeparableGeometry.from_layer(**{**GOOD, **changes})
    assert info.value.argument == argument
    assert fragment in str(info.value)


def test_separable_parts_must_fit_together():
    dw = ConvGeometry.from_layer((1, 3, 14, 14), 3, 5, groups=3)
    with pytest.raises(ConvArgumentError, match=r"^pointwise: expected input shape"):
        SeparableGeometry(dw, ConvGeometry.from_layer((1, 3, 14, 14), 8, 1))
    with pytest.raises(ConvArgumentError, match=r"^depthwise: expected a layer with groups == in_channels"):
        SeparableGeometry(dw.replace(groups=1), ConvGeometry.from_layer((1, 3, 10, 10), 8, 1))
