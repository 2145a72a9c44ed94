"""Whole networks: hand-computed layers, published totals, PyTorch's counts, TOML files, ``npconv model``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from npconv import network_toml, networks
from npconv.errors import ConvArgumentError
from npconv.network import (
    AvgPool,
    BatchNorm,
    Conv2d,
    Depthwise,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    Network,
    Pointwise,
    ReLU,
    Residual,
    Separable,
    to_standard,
)

from cli_runner import run


def row(network: Network, name: str):
    return next(r for r in network.rows if r.name == name)


def counts(network: Network, name: str) -> tuple:
    """(output shape, params, dense mults, effective mults) of one layer."""
    r = row(network, name)
    return r.output_shape, r.value("params"), r.value("mults"), r.value("mults", "effective")


# ---------------------------------------------------------------------- hand-computed layers


def test_mobilenet_layers_by_hand():
    net = networks.build("mobilenet_v1")
    # 3x3x3x32 stride 2, "same" padding (0 before, 1 after) on 224: 112x112x32.
    # Effective: along each axis 111 windows see 3 real rows, the last one 2: T = 111 x 3 + 2 = 335.
    assert counts(net, "conv1") == ((1, 32, 112, 112), 3 * 3 * 3 * 32, 112 * 112 * 32 * 27, 32 * 3 * 335 * 335)
    assert counts(net, "conv1") == ((1, 32, 112, 112), 864, 10_838_016, 10_773_600)
    assert row(net, "conv1_bn").value("params") == 64 and row(net, "conv1_bn").value("buffers") == 64
    # Depthwise 3x3 stride 1 then pointwise 32 -> 64 at 112x112.
    assert counts(net, "block1.dw")[:3] == ((1, 32, 112, 112), 288, 112 * 112 * 32 * 9)
    assert counts(net, "block1.pw") == ((1, 64, 112, 112), 2_048, 25_690_112, 25_690_112)
    # The last depthwise layer keeps 7x7 (Table 1 says s2: a known typo).
    assert counts(net, "block13.dw")[:3] == ((1, 1024, 7, 7), 9_216, 7 * 7 * 1024 * 9)
    assert counts(net, "block13.pw")[:3] == ((1, 1024, 7, 7), 1_048_576, 51_380_224)
    assert row(net, "pool").output_shape == (1, 1024, 1, 1)
    assert counts(net, "fc") == ((1, 1000), 1024 * 1000 + 1000, 1_024_000, 1_024_000)


def test_vgg16_layers_by_hand():
    net = networks.build("vgg16")
    # padding 1: T = 224 x 3 - 2 = 670 real taps along each axis
    assert counts(net, "conv1_1") == ((1, 64, 224, 224), (27 + 1) * 64, 86_704_128, 64 * 3 * 670 * 670)
    assert counts(net, "conv5_3")[:3] == ((1, 512, 14, 14), 2_359_808, 14 * 14 * 512 * 512 * 9)
    assert row(net, "pool5").output_shape == (1, 512, 7, 7)
    assert row(net, "pool5").other_value("comparisons") == 7 * 7 * 512 * 3
    assert counts(net, "fc6") == ((1, 4096), 25_088 * 4096 + 4096, 102_760_448, 102_760_448)
    assert counts(net, "fc8")[:3] == ((1, 1000), 4_097_000, 4_096_000)


def test_resnet18_layers_by_hand():
    net = networks.build("resnet18")
    assert counts(net, "conv1")[:3] == ((1, 64, 112, 112), 7 * 7 * 3 * 64, 118_013_952)
    assert row(net, "maxpool").output_shape == (1, 64, 56, 56)
    assert row(net, "maxpool").other_value("comparisons") == 56 * 56 * 64 * 8
    assert counts(net, "layer1.0.conv1")[:3] == ((1, 64, 56, 56), 36_864, 56 * 56 * 64 * 64 * 9)
    assert counts(net, "layer2.0.conv1")[:3] == ((1, 128, 28, 28), 73_728, 28 * 28 * 128 * 64 * 9)
    # the shortcut's 1x1 stride-2 convolution, where the shape changes
    assert counts(net, "layer2.0.downsample.0") == ((1, 128, 28, 28), 8_192, 6_422_528, 6_422_528)
    assert row(net, "layer2.0.downsample.1").value("params") == 256
    assert row(net, "layer1.0.add").other_value("adds") == 56 * 56 * 64
    assert not any(r.name.startswith("layer1.0.downsample") for r in net.rows)  # identity shortcut
    assert counts(net, "fc") == ((1, 1000), 513_000, 512_000, 512_000)


def test_small_pair_by_hand():
    sep, std = networks.build("small_separable"), networks.build("small_standard")
    # separable 3 -> 16, Keras bias: depthwise 3 x 3 x 3 = 27, pointwise (3 + 1) x 16 = 64
    assert counts(sep, "conv1")[:3] == ((1, 16, 8, 8), 27 + 64, 8 * 8 * 3 * 9 + 8 * 8 * 16 * 3)
    assert counts(std, "conv1")[:3] == ((1, 16, 8, 8), (27 + 1) * 16, 8 * 8 * 16 * 27)
    assert counts(std, "conv2")[:3] == ((1, 32, 4, 4), (144 + 1) * 32, 4 * 4 * 32 * 144)
    assert to_standard(sep).layers == std.layers


# ---------------------------------------------------------------------- totals against the papers


def test_mobilenet_totals_match_the_paper():
    t = networks.build("mobilenet_v1").totals()
    assert t.params == 4_231_976 and t.buffers == 21_888
    assert t.mults["dense"] == 568_740_352  # "569M mult-adds"
    # Table 2: share of mult-adds by layer type.  The paper's 1.19% for the first
    # convolution is 1.91% transposed: its four shares then add up to 100%.
    share = {kind: round(100 * m / t.mults["dense"], 2) for kind, m in t.mults_by_kind.items()}
    assert share == {"pointwise": 94.86, "depthwise": 3.06, "conv2d": 1.91, "linear": 0.18}


@pytest.mark.parametrize(("width", "resolution"), sorted(networks.MOBILENET_V1_PUBLISHED))
def test_mobilenet_width_and_resolution_match_tables_6_and_7(width, resolution):
    mult_adds, params = networks.MOBILENET_V1_PUBLISHED[(width, resolution)]
    t = networks.build("mobilenet_v1", width=width, resolution=resolution).totals()
    # within 1M of the paper's figures (it gives 290M for 290.68M: truncated there, rounded elsewhere)
    assert abs(t.mults["dense"] / 1e6 - mult_adds) < 1
    assert round(t.params / 1e6, 1) == params


def test_conv_mobilenet_matches_table_4():
    t = to_standard(networks.build("mobilenet_v1")).totals()
    assert round(t.params / 1e6, 1) == 29.3
    # 4,867M against the paper's 4866M: within 0.03%
    assert abs(t.mults["dense"] / 1e6 - 4866) < 2


def test_vgg16_and_resnet18_totals():
    vgg, resnet = networks.build("vgg16").totals(), networks.build("resnet18").totals()
    assert vgg.params == 138_357_544 and vgg.mults["dense"] == 15_470_264_320  # 138M, 15.5G
    assert resnet.params == 11_689_512 and resnet.mults["dense"] == 1_814_073_344  # 11.7M, 1.8G
    assert resnet.buffers == 9_600
    assert resnet.other["add"]["adds"] == 2 * (56 * 56 * 64 + 28 * 28 * 128 + 14 * 14 * 256 + 7 * 7 * 512)


# ---------------------------------------------------------------------- PyTorch, built independently here


def _torch_mobilenet(nn):
    def conv_bn(cin, cout, stride, groups=1, kernel=3):
        return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU()]

    layers = conv_bn(3, 32, 2)
    cin = 32
    for stride, cout in networks.MOBILENET_V1_BLOCKS:
        layers += conv_bn(cin, cin, stride, groups=cin) + conv_bn(cin, cout, 1, kernel=1)
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000))


def _torch_vgg16(nn):
    layers, cin = [], 3
    for item in networks.VGG16_CONFIGURATION:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU()]
            cin = item
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))


def _torch_resnet18(torch, nn):
    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
                if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + self.downsample(x))

    blocks, cin = [], 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        blocks += [Block(cin, cout, 2 if stage else 1), Block(cout, cout, 1)]
        cin = cout
    return nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))


@pytest.mark.parametrize("name", ["mobilenet_v1", "vgg16", "resnet18"])
def test_parameters_and_flops_against_independent_torch_modules(name):
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    build = {"mobilenet_v1": lambda: _torch_mobilenet(nn), "vgg16": lambda: _torch_vgg16(nn),
             "resnet18": lambda: _torch_resnet18(torch, nn)}[name]
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        module, x = build(), torch.empty(1, 3, 224, 224)
    totals = networks.build(name).totals()
    assert sum(p.numel() for p in module.parameters()) == totals.params
    running = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    assert running == totals.buffers
    with FlopCounterMode(display=False) as counter:
        module(x)
    # symmetric padding 1 here vs TensorFlow's "same" in npconv's MobileNet: same shapes, same dense count
    assert counter.get_total_flops() == 2 * totals.mults["dense"]


# ---------------------------------------------------------------------- the description itself


def test_layers_of_every_kind_in_python():
    net = Network("every kind", (2, 4, 9, 9), (
        Conv2d(8, 3, padding="same", bias=False), BatchNorm(), ReLU(),
        Depthwise((3, 1), stride=(2, 1), padding=((1, 1), (0, 0)), depth_multiplier=2),
        Pointwise(6, bias=False),
        Separable(6, 3, padding=1, dilation=2, bias="torch"),
        AvgPool(2, padding=1), MaxPool(2, stride=1),
        Residual((Conv2d(6, 1),), name="block"),
        GlobalAvgPool(), Flatten(), Linear(3),
    ))
    shapes = [r.output_shape for r in net.rows]
    assert shapes == [(2, 8, 9, 9), (2, 8, 9, 9), (2, 8, 9, 9), (2, 16, 5, 9), (2, 6, 5, 9), (2, 6, 3, 7),
                      (2, 6, 2, 4), (2, 6, 1, 3), (2, 6, 1, 3), (2, 6, 1, 3), (2, 6, 1, 1), (2, 6), (2, 3)]
    assert [r.name for r in net.rows][:2] == ["conv2d_1", "batchnorm_2"]
    assert row(net, "block.add").other_value("adds") == 2 * 6 * 1 * 3
    avg = row(net, "avgpool_7")
    assert (avg.other_value("adds"), avg.other_value("mults")) == (2 * 2 * 4 * 6 * 3, 2 * 6 * 2 * 4)
    assert row(net, "depthwise_4").value("params") == 16 * 3 + 16
    assert row(net, "separable_6").value("params") == (6 * 9 + 6) + (6 * 6 + 6)


@pytest.mark.parametrize(("layers", "message"), [
    ((Conv2d(0, 3),), "layers[0].filters: expected"),
    ((ReLU(), Conv2d(4, 3, groups=2)), "layers[1].groups: expected a divisor"),
    ((Linear(10),), "layers[0]: expected a flat input (N, features) for a linear layer"),
    ((Flatten(), Conv2d(4, 1)), "layers[1]: expected an image input (N, C, H, W) for a conv2d layer"),
    ((Residual((Conv2d(4, 1),)),), "layers[0]: expected main and shortcut paths that end in the same shape"),
    ((Residual((Conv2d(3, 1), MaxPool(9)),),), "layers[0].main[1].kernel: expected a kernel"),
    ((Separable(4, 3, bias="keras-ish"),), "layers[0].bias: expected one of"),
    ((Depthwise(3, depth_multiplier=0),), "layers[0].depth_multiplier: expected a positive int"),
    ((ReLU(name="a"), ReLU(name="a")), "layers[1].name: expected a name not used by another layer"),
    (("conv",), "layers[0]: expected a layer"),
])
def test_invalid_networks_name_the_layer(layers, message):
    with pytest.raises(ConvArgumentError, match=re.escape(message)):
        Network("bad", (1, 3, 8, 8), layers)


def test_standard_rebuild_merges_depthwise_and_pointwise_across_batch_norm():
    net = Network("pair", (1, 8, 6, 6), (
        Depthwise(3, padding=1, bias=False, name="b.dw"), BatchNorm(name="b.dw_bn"), ReLU(name="b.dw_relu"),
        Pointwise(16, bias=False, name="b.pw"), BatchNorm(name="b.pw_bn"), Depthwise(3),
    ))
    std = to_standard(net)
    assert std.layers == (Conv2d(16, 3, padding=1, bias=False, name="b.conv"), BatchNorm(name="b.pw_bn"),
                          Depthwise(3))
    assert to_standard(networks.build("vgg16")) == networks.build("vgg16")


# ---------------------------------------------------------------------- TOML


@pytest.mark.parametrize("name", sorted(networks.BUILT_INS))
def test_toml_round_trip(name, tmp_path):
    net = networks.build(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(network_toml.dumps(net))
    back = network_toml.load(path)
    assert back == net and back.totals() == net.totals()


def test_toml_file_with_every_padding_form():
    text = """
name = "forms"
input_shape = [1, 3, 8, 8]

[[layers]]
kind = "conv2d"
filters = 4
kernel = [3, 1]
padding = [[0, 1], [2, 0]]
stride = [1, 2]

[[layers]]
kind = "residual"
name = "r"
[[layers.main]]
kind = "depthwise"
kernel = 3
padding = "same"
bias = false
[[layers.shortcut]]
kind = "pointwise"
filters = 4
"""
    net = network_toml.loads(text, "forms.toml")
    assert net.rows[0].output_shape == (1, 4, 7, 5)
    assert [r.name for r in net.rows] == ["conv2d_1", "r.depthwise_1", "r.pointwise_1", "r.add"]
    assert network_toml.loads(network_toml.dumps(net)) == net


BAD_FILES = [
    ('input_shape = [1, 3, 8, 8]\n\n[[layers]]\nkind = "conv2d"\nfilters = 0\nkernel = 3\n',
     "bad.toml:5: layers[0].filters: expected"),
    ('input_shape = [1, 3, 8, 8]\n[[layers]]\nkind = "relu"\n[[layers]]\nkind = "conv2d"\nfilter = 4\n',
     "bad.toml:6: layers[1].filter: expected a key of a conv2d layer"),
    ('input_shape = [1, 3, 8, 8]\n[[layers]]\nkind = "conv"\n',
     "bad.toml:3: layers[0].kind: expected one of conv2d, depthwise"),
    ('input_shape = [1, 3, 8, 8]\n[[layers]]\nkind = "conv2d"\nkernel = 3\n',
     "bad.toml:2: layers[0].filters: expected a value: a conv2d layer needs filters"),
    ('input_shape = [3, 8, 8]\n[[layers]]\nkind = "relu"\n',
     "bad.toml:1: input_shape: expected (N, C, H, W)"),
    ('layers = []\n', "bad.toml: input_shape: expected a value"),
    ('input_shape = [1, 3, 8, 8]\ncolour = "red"\n', "bad.toml:2: colour: expected a top-level key"),
    ('input_shape = [1, 3, 8, 8\n', "bad.toml: invalid TOML: Unclosed array"),
    ('input_shape = [1, 3, 8, 8]\n[[layers]]\nkind = "residual"\n[[layers.main]]\nkind = "relu"\n'
     '[[layers.shortcut]]\nkind = "conv2d"\nfilters = 3\nkernel = 1\npadding = "sam"\n',
     "bad.toml:10: layers[0].shortcut[0].padding: expected"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_toml_errors_name_file_line_and_key(text, message):
    with pytest.raises(ConvArgumentError) as error:
        network_toml.loads(text, "bad.toml")
    assert str(error.value).startswith(message)


# ---------------------------------------------------------------------- npconv model


def test_model_list(capsys):
    code, out, _ = run(capsys, "model", "--list")
    assert code == 0
    for name in networks.BUILT_INS:
        assert name in out
    assert "--width 1.0 --resolution 224" in out
    code, out, _ = run(capsys, "model", "--list", "--json")
    assert json.loads(out)["mobilenet_v1"]["options"] == {"width": 1.0, "resolution": 224, "classes": 1000}


def test_model_text_states_totals_published_and_conventions(capsys):
    code, out, _ = run(capsys, "model", "mobilenet_v1")
    assert code == 0
    assert "  conv1          conv2d          112x112x32        864    0.02%   10,838,016" in out
    assert "  mults (MACs)            568,740,352    567,875,744" in out
    assert "  parameters  4,231,976" in out
    assert "buffers     21,888  (batch-norm running mean and variance: not parameters)" in out
    assert "mult-adds: 569M (Howard et al. 2017, Tables 6 and 7); npconv: 569M mults (dense)" in out
    assert "pointwise      13  3,139,584   74.19%  539,492,352  94.86%" in out
    assert "Conventions" in out and "dense: every tap, padded zeros included" in out
    assert "27 ReLU layers not shown" in out


def test_model_options(capsys):
    code, out, _ = run(capsys, "model", "mobilenet_v1", "--width", "0.5", "--resolution", "160", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["input_shape"] == [1, 3, 160, 160]
    assert row(networks.build("mobilenet_v1", width=0.5, resolution=160), "conv1").output_shape == (1, 16, 80, 80)
    assert data["layers"][0]["output_shape"] == [1, 16, 80, 80]
    code, _, err = run(capsys, "model", "vgg16", "--width", "0.5")
    assert code == 2 and "--width: expected an option vgg16 takes (resolution, classes)" in err
    code, _, err = run(capsys, "model", "resnet")
    assert code == 2 and "NAME|FILE: expected a built-in network" in err


def test_model_json(capsys):
    code, out, _ = run(capsys, "model", "resnet18", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["totals"]["params"] == 11_689_512
    assert data["totals"]["mults"] == {"dense": 1_814_073_344, "effective": 1_680_390_912}
    conv1 = data["layers"][0]
    assert conv1["name"] == "conv1" and conv1["output_shape"] == [1, 64, 112, 112]
    assert conv1["params"]["working"] == "(7 x 7 x 3) x 64 = 9,408"
    assert conv1["mults"]["dense"]["working"] == "112 x 112 x 64 x 7 x 7 x 3 = 118,013,952"
    assert any(layer["kind"] == "add" for layer in data["layers"])
    assert data["published"]["mult-adds"].startswith("1.8G")


def test_model_file(capsys, tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(network_toml.dumps(networks.build("small_standard")))
    code, out, _ = run(capsys, "model", str(path), "--json")
    assert code == 0 and json.loads(out)["totals"]["params"] == 14_666
    code, _, err = run(capsys, "model", str(path), "--resolution", "32")
    assert code == 2 and "--resolution: expected a built-in network" in err
    path.write_text('input_shape = [1, 3, 8, 8]\n[[layers]]\nkind = "linear"\nfeatures = 2\n')
    code, _, err = run(capsys, "model", str(path))
    assert code == 2 and "small.toml:2: layers[0]: expected a flat input" in err


def test_model_standard(capsys):
    code, out, _ = run(capsys, "model", "small_separable", "--standard")
    assert code == 0
    assert "What separability saved: small_separable against small_separable (standard)" in out
    assert "  params                2,453    14,666                 5.98x" in out
    assert "  mults, dense         36,608   249,152                 6.81x" in out
    code, out, _ = run(capsys, "model", "mobilenet_v1", "--standard")
    assert code == 0
    assert "29.3M (Conv MobileNet, Howard et al. 2017, Table 4); npconv: 29.3M params" in out
    code, _, err = run(capsys, "model", "vgg16", "--standard")
    assert code == 2 and "--standard: expected a network with separable layers" in err


@pytest.mark.parametrize("name", ["small_separable", "small_standard"])
@pytest.mark.parametrize("convention", ["dense", "effective"])
def test_model_measure_with_the_reference_method(capsys, name, convention):
    code, out, _ = run(capsys, "model", name, "--measure", "--method", "reference", "--convention", convention,
                       "--json")
    assert code == 0
    measured = json.loads(out)["measured"]
    totals = networks.build(name).totals()
    assert measured["matches"] and measured["convention"] == convention
    assert measured["totals"]["measured"] == {"mults": totals.mults[convention], "adds": totals.adds[convention]}
    assert len(measured["layers"]) == 4


def test_model_measure_text_and_refusals(capsys, monkeypatch):
    code, out, _ = run(capsys, "model", "small_separable", "--measure", "--method", "reference")
    assert code == 0 and "measured totals equal the formula totals" in out
    code, _, err = run(capsys, "model", "small_separable", "--method", "reference")
    assert code == 2 and "--method: expected --measure beside it" in err
    code, _, err = run(capsys, "model", "small_separable", "--measure", "--method", "abacus")
    assert code == 2 and "method: expected one of 'reference'" in err
    from npconv import kernels

    monkeypatch.setattr(kernels, "available_methods", lambda: ("reference",))
    code, _, err = run(capsys, "model", "mobilenet_v1", "--measure")
    assert code == 2 and "no fast method (direct or im2col) is available" in err and "minutes" in err


def test_model_measure_reports_a_mismatch(capsys, monkeypatch):
    from npconv import network_measure

    monkeypatch.setattr(network_measure.MeasuredLayer, "formula_mults", property(lambda self: -1))
    code, out, _ = run(capsys, "model", "small_standard", "--measure", "--method", "reference")
    assert code == 1 and "MISMATCH" in out


@pytest.mark.parametrize("name", ["small_separable", "small_standard"])
def test_model_compare_torch(capsys, name):
    pytest.importorskip("torch")
    code, out, _ = run(capsys, "model", name, "--compare", "torch")
    assert code == 0
    totals = networks.build(name).totals()
    assert f"parameters      torch {totals.params:,}   npconv {totals.params:,}   (equal)" in out
    assert f"FlopCounterMode {2 * totals.mults['dense']:,}" in out
    code, out, _ = run(capsys, "model", name, "--compare", "torch", "--json")
    data = json.loads(out)["torch"]
    assert data["agrees"] and data["params"] == totals.params


def test_model_compare_torch_explains_bias_free_layers(capsys):
    pytest.importorskip("torch")
    code, out, _ = run(capsys, "model", "small_separable", "--compare", "torch")
    assert code == 0
    # Keras convention: the depthwise parts have no bias, so each of their outputs takes one addition
    # fewer than torch's 2 per product: 8x8x3 + 4x4x16 + 4x4x32 outputs
    outputs = 8 * 8 * 3 + 4 * 4 * 16 + 4 * 4 * 32
    assert f"{outputs:,} fewer" in out and f"have {outputs:,} outputs" in out


def test_readme_whole_networks_section_holds():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    toml_text = next(b for b in re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
                     if b.startswith('name = "tiny"'))
    tiny = network_toml.loads(toml_text, "README.md")
    assert tiny.totals().params == 634 and tiny.totals().mults == {"dense": 27_808, "effective": 23_392}
    for name in networks.BUILT_INS:
        t = networks.build(name).totals()
        assert f"| `{name}` | {t.params:,} | {t.mults['dense']:,} | {t.mults['effective']:,} |" in readme


def test_model_measure_names_the_layer_that_needs_more_workspace(capsys, tmp_path):
    # the reference kernel copies an image to Python floats: 64 x 32 x 32 of them take 2 MiB
    path = tmp_path / "wide.toml"
    path.write_text('input_shape = [1, 64, 32, 32]\n[[layers]]\nkind = "pointwise"\nname = "pw"\nfilters = 1\n')
    code, _, err = run(capsys, "model", str(path), "--measure", "--method", "reference", "--workspace-limit", "1")
    assert code == 2 and "--workspace-limit (layer pw, method 'reference'): expected one image" in err
    code, _, err = run(capsys, "model", str(path), "--measure", "--workspace-limit", "0")
    assert code == 2 and "--workspace-limit: expected a positive number of MiB, got 0" in err
