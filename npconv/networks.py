"""Built-in networks, described layer by layer from their published architectures.

``build(name, **options)`` returns a :class:`~npconv.network.Network`;
:data:`BUILT_INS` lists them with their options and the numbers their papers
report, so that ``npconv model`` can print npconv's totals beside them.

* ``mobilenet_v1`` -- Howard et al. 2017, "MobileNets", Table 1: a 3x3 stride-2
  convolution, 13 depthwise + pointwise pairs, global average pooling and a
  fully connected layer; batch-norm and ReLU after every convolution, no
  convolution biases, TensorFlow's ``"same"`` padding.  Options: width
  multiplier ``width`` (alpha; channels become ``int(alpha x C)`` as in
  Keras' ``MobileNet``) and input ``resolution``.
* ``vgg16`` -- Simonyan & Zisserman 2015, configuration D: thirteen 3x3
  convolutions with biases (padding 1), five 2x2 max pools, three fully
  connected layers.  At another ``resolution`` the first fully connected
  layer takes the 512 x (R / 32)^2 flattened features.
* ``resnet18`` -- He et al. 2016, Table 1, 18-layer column, with
  ``torchvision``'s layout: basic blocks of two 3x3 convolutions, stride on
  the first, a 1x1 stride-2 convolution + batch-norm on the shortcut where
  the shape changes, no convolution biases.
* ``small_separable`` / ``small_standard`` -- the course problem's
  "network built with standard convolutions compared against the same
  network built with separable ones", on an 8x8x3 input: three 3x3 layers
  (16, 32 stride 2, 32 filters, "same" padding), global average pooling and
  a 10-way linear layer.  ``small_standard`` is exactly
  ``to_standard(small_separable)``.

Pure Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from npconv.errors import ConvArgumentError, echo
from npconv.limits import MAX_SIZE
from npconv.network import (
    BatchNorm,
    Conv2d,
    Depthwise,
    Flatten,
    GlobalAvgPool,
    Layer,
    Linear,
    MaxPool,
    Network,
    Pointwise,
    ReLU,
    Residual,
    Separable,
)

# ---------------------------------------------------------------------- MobileNet-v1

#: Table 1 of Howard et al. 2017 after the first convolution: (depthwise stride, pointwise filters).
#: (The table's second-to-last depthwise layer says "s2" but keeps 7x7: a known typo; stride 1 here.)
MOBILENET_V1_BLOCKS = (
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512),
    (2, 1024), (1, 1024),
)


def _conv_bn_relu(conv: Layer, prefix: str) -> tuple[Layer, ...]:
    return conv, BatchNorm(name=f"{prefix}_bn"), ReLU(name=f"{prefix}_relu")


def mobilenet_v1(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> Network:
    """MobileNet-v1 with width multiplier ``width`` (alpha) at ``resolution`` x ``resolution``."""
    if isinstance(width, bool) or not isinstance(width, int | float) or not 0 < width < float("inf"):
        raise ConvArgumentError("width", "a positive width multiplier such as 1.0, 0.75, 0.5, 0.25",
                                repr(width))

    def channels(base: int) -> int:
        if base * width > MAX_SIZE:  # before int(): int(inf) is an OverflowError, a huge one no layer
            raise ConvArgumentError("width", f"a multiplier that leaves at most {MAX_SIZE:,} of {base} x "
                                    "width channels", echo(width))
        thinned = int(base * width)  # Keras' MobileNet: int(filters * alpha)
        if thinned < 1:
            raise ConvArgumentError("width", f"a multiplier that leaves at least 1 of {base} channels",
                                    repr(width))
        return thinned

    layers: list[Layer] = [*_conv_bn_relu(
        Conv2d(channels(32), 3, stride=2, padding="same", bias=False, name="conv1"), "conv1")]
    for number, (stride, filters) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        block = f"block{number}"
        layers += _conv_bn_relu(
            Depthwise(3, stride=stride, padding="same", bias=False, name=f"{block}.dw"), f"{block}.dw")
        layers += _conv_bn_relu(Pointwise(channels(filters), bias=False, name=f"{block}.pw"), f"{block}.pw")
    layers += [GlobalAvgPool(name="pool"), Flatten(name="flatten"), Linear(classes, name="fc")]
    return Network("mobilenet_v1", (1, 3, resolution, resolution), tuple(layers),
                   f"MobileNet-v1 {float(width)} at {resolution}x{resolution} (Howard et al. 2017, Table 1)")


_HOWARD = "Howard et al. 2017, Tables 6 and 7"
#: Howard et al. 2017: (width, resolution) -> (million mult-adds, million parameters), Tables 6 and 7.
MOBILENET_V1_PUBLISHED = {
    (1.0, 224): (569, 4.2), (0.75, 224): (325, 2.6), (0.5, 224): (149, 1.3), (0.25, 224): (41, 0.5),
    (1.0, 192): (418, 4.2), (1.0, 160): (290, 4.2), (1.0, 128): (186, 4.2),
}


# ---------------------------------------------------------------------- VGG-16

#: Configuration D of Simonyan & Zisserman 2015, Table 1: filters per 3x3 conv, "M" a 2x2 max pool.
VGG16_CONFIGURATION = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(resolution: int = 224, classes: int = 1000) -> Network:
    """VGG-16 (configuration D), convolutions with biases and padding 1."""
    layers: list[Layer] = []
    stage, conv = 1, 1
    for item in VGG16_CONFIGURATION:
        if item == "M":
            layers.append(MaxPool(2, stride=2, name=f"pool{stage}"))
            stage, conv = stage + 1, 1
        else:
            layers += [Conv2d(item, 3, padding=1, name=f"conv{stage}_{conv}"),
                       ReLU(name=f"relu{stage}_{conv}")]
            conv += 1
    layers += [Flatten(name="flatten"),
               Linear(4096, name="fc6"), ReLU(name="relu6"),
               Linear(4096, name="fc7"), ReLU(name="relu7"),
               Linear(classes, name="fc8")]
    return Network("vgg16", (1, 3, resolution, resolution), tuple(layers),
                   f"VGG-16 (configuration D) at {resolution}x{resolution} (Simonyan & Zisserman 2015)")


# ---------------------------------------------------------------------- ResNet-18


def _basic_block(name: str, filters: int, stride: int, downsample: bool) -> Residual:
    main = (
        Conv2d(filters, 3, stride=stride, padding=1, bias=False, name="conv1"), BatchNorm(name="bn1"),
        ReLU(name="relu"),
        Conv2d(filters, 3, padding=1, bias=False, name="conv2"), BatchNorm(name="bn2"),
    )
    shortcut = (
        Conv2d(filters, 1, stride=stride, bias=False, name="downsample.0"), BatchNorm(name="downsample.1"),
    ) if downsample else ()
    return Residual(main, shortcut, name=name)


def resnet18(resolution: int = 224, classes: int = 1000) -> Network:
    """ResNet-18: 7x7 stem, four stages of two basic blocks (64, 128, 256, 512 filters)."""
    layers: list[Layer] = [
        Conv2d(64, 7, stride=2, padding=3, bias=False, name="conv1"), BatchNorm(name="bn1"),
        ReLU(name="relu"), MaxPool(3, stride=2, padding=1, name="maxpool"),
    ]
    in_filters = 64
    for stage, filters in enumerate((64, 128, 256, 512), start=1):
        for index in range(2):
            stride = 2 if stage > 1 and index == 0 else 1
            name = f"layer{stage}.{index}"
            downsample = stride != 1 or filters != in_filters
            layers += [_basic_block(name, filters, stride, downsample), ReLU(name=f"{name}.relu_out")]
            in_filters = filters
    layers += [GlobalAvgPool(name="avgpool"), Flatten(name="flatten"), Linear(classes, name="fc")]
    return Network("resnet18", (1, 3, resolution, resolution), tuple(layers),
                   f"ResNet-18 at {resolution}x{resolution} (He et al. 2016, Table 1; torchvision's layout)")


# ---------------------------------------------------------------------- the small pair


def _small(name: str, conv: type[Conv2d] | type[Separable], classes: int, description: str) -> Network:
    """The small network with ``conv`` layers: 3x3, 16 / 32 stride 2 / 32 filters, "same" padding."""
    return Network(name, (1, 3, 8, 8), (
        conv(16, 3, padding="same", name="conv1"), ReLU(name="relu1"),
        conv(32, 3, stride=2, padding="same", name="conv2"), ReLU(name="relu2"),
        conv(32, 3, padding="same", name="conv3"), ReLU(name="relu3"),
        GlobalAvgPool(name="pool"), Flatten(name="flatten"), Linear(classes, name="fc"),
    ), description)


def small_separable(classes: int = 10) -> Network:
    """Three separable 3x3 layers (Keras bias convention) on 8x8x3, pooled, then a linear layer."""
    return _small("small_separable", Separable, classes,
                  "Three depthwise-separable 3x3 layers on 8x8x3 (the course problem's separable network)")


def small_standard(classes: int = 10) -> Network:
    """``small_separable`` with a standard 3x3 convolution (with bias) in place of each separable one."""
    return _small("small_standard", Conv2d, classes,
                  "Three standard 3x3 layers on 8x8x3 (the course problem's standard network)")


# ---------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Published:
    """Numbers a paper reports for one configuration of a built-in network.

    ``options`` name the configuration (options not named are at their
    defaults); ``standard``: for the network rebuilt with standard convolutions.
    """

    numbers: dict[str, str]
    options: dict[str, object] = field(default_factory=dict)
    standard: bool = False


@dataclass(frozen=True)
class BuiltIn:
    """A built-in network: its builder, its options with their defaults, and its published numbers."""

    name: str
    build: Callable[..., Network]
    options: dict[str, object]
    published: tuple[Published, ...] = ()

    @property
    def summary(self) -> str:
        return self.build().description


BUILT_INS: dict[str, BuiltIn] = {
    b.name: b for b in (
        BuiltIn("mobilenet_v1", mobilenet_v1, {"width": 1.0, "resolution": 224, "classes": 1000}, (
            *(Published({"mult-adds": f"{mult_adds}M ({_HOWARD})", "params": f"{params}M ({_HOWARD})"},
                        {"width": width, "resolution": resolution})
              for (width, resolution), (mult_adds, params) in MOBILENET_V1_PUBLISHED.items()),
            Published({"mult-adds": "4866M (Conv MobileNet, Howard et al. 2017, Table 4)",
                       "params": "29.3M (Conv MobileNet, Howard et al. 2017, Table 4)"}, standard=True),
        )),
        BuiltIn("vgg16", vgg16, {"resolution": 224, "classes": 1000}, (
            Published({"params": "138M (Simonyan & Zisserman 2015, Table 2)",
                       "mult-adds": "15.5G (widely quoted, e.g. by torchvision as 15.47 GFLOPS; not in the paper)"}),
        )),
        BuiltIn("resnet18", resnet18, {"resolution": 224, "classes": 1000}, (
            Published({"mult-adds": "1.8G, called FLOPs (He et al. 2016, Table 1)",
                       "params": "11.7M (torchvision; the paper gives none for ResNet-18)"}),
        )),
        BuiltIn("small_separable", small_separable, {"classes": 10}),
        BuiltIn("small_standard", small_standard, {"classes": 10}),
    )
}


def _built_in(name: str) -> BuiltIn:
    if name not in BUILT_INS:
        raise ConvArgumentError("name", f"a built-in network ({', '.join(BUILT_INS)})", repr(name))
    return BUILT_INS[name]


def _check_options(built_in: BuiltIn, options: dict[str, object]) -> None:
    for key in options:
        if key not in built_in.options:
            accepted = ", ".join(built_in.options) or "no options"
            raise ConvArgumentError(key, f"an option {built_in.name} takes ({accepted})", repr(options[key]))


#: Smallest ``resolution`` of each built-in, where not 1: VGG-16's five 2x2 poolings need 32 pixels.
SMALLEST_RESOLUTION = {"vgg16": 32}


def _check_sizes(built_in: BuiltIn, options: dict[str, object]) -> None:
    """``resolution`` and ``classes`` are ints large enough for every layer: refused by their names."""
    smallest = {"resolution": SMALLEST_RESOLUTION.get(built_in.name, 1), "classes": 1}
    for key, least in smallest.items():
        value = options.get(key, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            why = f" ({built_in.name}'s five 2x2 poolings halve it five times)" if least == 32 else ""
            raise ConvArgumentError(key, f"an int >= {least}{why}", echo(value))
        if value > MAX_SIZE:
            raise ConvArgumentError(key, f"an int from {least} to {MAX_SIZE:,}", echo(value))


def build(name: str, **options: object) -> Network:
    """The built-in network ``name`` with ``options`` (see :data:`BUILT_INS`)."""
    built_in = _built_in(name)
    _check_options(built_in, options)
    _check_sizes(built_in, options)
    return built_in.build(**options)


def published(name: str, *, standard: bool = False, **options: object) -> dict[str, str]:
    """What the paper reports for ``name`` with these options (empty when it reports nothing).

    ``standard``: for the network rebuilt with standard convolutions (:func:`npconv.network.to_standard`).
    """
    built_in = _built_in(name)
    _check_options(built_in, options)
    asked = {**built_in.options, **options}
    for entry in built_in.published:
        if entry.standard == standard and {**built_in.options, **entry.options} == asked:
            return dict(entry.numbers)
    return {}
