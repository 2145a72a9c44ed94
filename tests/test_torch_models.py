"""A user's own PyTorch model, traced: against FlopCounterMode, PyTorch's parameter count and the built-ins.

The four models of ``torch_models.py`` are built on PyTorch's ``meta`` device
at 224 x 224 (no memory for weights or activations: tracing and
FlopCounterMode need shapes only); ``--measure`` runs a small one on the CPU.
Skipped without PyTorch.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
import torch_models as M  # noqa: E402
from torch import nn  # noqa: E402

from npconv import network_from_torch, network_toml, network_torch, networks, torch_trace  # noqa: E402
from npconv.errors import ConvArgumentError  # noqa: E402
from npconv.network import from_torch, to_standard  # noqa: E402
from npconv.network_from_torch import TraceShapeError, trace  # noqa: E402

from cli_runner import run  # noqa: E402

MODELS_FILE = Path(M.__file__)
FULL = (1, 3, 224, 224)
MODELS = {"mobilenet_v1": M.MobileNetV1, "resnet18": M.ResNet18, "vgg16": M.VGG16, "mobilenet_v2": M.MobileNetV2}


@pytest.fixture(scope="module")
def traced() -> dict:
    """name -> (the module on the meta device, its trace at 224 x 224)."""
    result = {}
    for name, build in MODELS.items():
        with torch.device("meta"):
            module = build()
        result[name] = module, trace(module, FULL)
    return result


def untraceable(*args, **kwargs):
    raise RuntimeError("pretend torch.fx cannot trace it")


def rows_of(network, kind: str) -> list:
    return [r for r in network.rows if r.kind == kind]


# ---------------------------------------------------------------------- the four models


@pytest.mark.parametrize("name", MODELS)
def test_dense_mults_are_half_flop_counter_mode_and_params_are_pytorchs(name, traced):
    module, t = traced[name]
    totals = t.network.totals()
    assert t.method == network_from_torch.FX and not totals.uncounted
    assert totals.params == M.parameter_count(module) == t.module_params and not t.unread_params
    assert 2 * totals.mults["dense"] == M.flop_counter_total(module, FULL)
    # the network rebuilt in PyTorch from npconv's description counts the same again
    assert network_torch.agrees(network_torch.compare(t.network), totals)


@pytest.mark.parametrize("name", ["mobilenet_v1", "resnet18", "vgg16"])
def test_traced_models_give_the_built_ins_totals(name, traced):
    # every total: params, buffers, dense and effective mults and adds, by kind, batch-norm, pooling, additions
    assert traced[name][1].network.totals() == networks.build(name).totals()


@pytest.mark.parametrize(("name", "resolution"), [("mobilenet_v1", 96), ("resnet18", 64), ("vgg16", 32)])
def test_traced_models_give_the_built_ins_totals_at_other_resolutions(name, resolution):
    with torch.device("meta"):
        module = M.VGG16(resolution) if name == "vgg16" else MODELS[name]()
    traced_totals = from_torch(module, (1, 3, resolution, resolution)).totals()
    assert traced_totals == networks.build(name, resolution=resolution).totals()


@pytest.mark.parametrize("name", MODELS)
def test_forward_hooks_trace_the_same_network_as_torch_fx(name, traced, monkeypatch):
    module, t = traced[name]
    monkeypatch.setattr(torch.fx, "symbolic_trace", untraceable)
    hooked = trace(module, FULL)
    assert hooked.method == network_from_torch.HOOKS and hooked.shapes_from == "fake tensors (shapes only)"
    assert hooked.network.totals() == t.network.totals()

    def graph(network):  # fx sees `out += identity` as operator.add, a TorchFunctionMode as Tensor.add_
        def same(n):
            return re.sub(r"^add_(?=$|_)", "add", n)
        return [(same(r.name), r.kind, r.output_shape, tuple(map(same, r.inputs))) for r in network.rows]

    assert graph(hooked.network) == graph(t.network)


def test_mobilenet_v2_numbers(traced):
    _, t = traced["mobilenet_v2"]
    totals = t.network.totals()
    # Sandler et al. 2018, Table 4: 3.4M parameters, 300M multiply-adds; torchvision: 3,504,872
    assert totals.params == 3_504_872 and totals.mults["dense"] == 300_774_272
    adds = rows_of(t.network, "add")
    assert len(adds) == sum(n - 1 for _, _, n, _ in M.MOBILENET_V2_BLOCKS) == 10
    # x + block(x): the block's input and its projection's batch-norm
    assert adds[0].inputs == ("blocks.1.block.7", "blocks.2.block.7")
    assert adds[0].other_value("adds") == 56 * 56 * 24
    assert len(rows_of(t.network, "depthwise")) == 17 and len(rows_of(t.network, "relu6")) == 35
    assert rows_of(t.network, "dropout")[0].name == "classifier.0"


def test_traced_resnet_is_the_built_ins_graph(traced):
    _, t = traced["resnet18"]
    built = networks.build("resnet18")
    assert [r.kind for r in t.network.rows] == [r.kind for r in built.rows]
    adds = rows_of(t.network, "add")
    assert len(adds) == 8 and adds[0].inputs == ("layer1.0.bn2", "maxpool")
    # the shortcut's 1x1 convolution reads the block's input, not the row above
    shortcut = next(r for r in t.network.rows if r.name == "layer2.0.downsample.0")
    assert shortcut.inputs == ("layer1.1.relu#2",)
    # the block's ReLU module is called twice: no parameters, so no sharing to record
    assert not any(r.shares for r in t.network.rows)


def test_standard_rebuild_of_the_traced_mobilenet_is_conv_mobilenet(traced):
    _, t = traced["mobilenet_v1"]
    assert to_standard(t.network).totals() == to_standard(networks.build("mobilenet_v1")).totals()
    assert round(to_standard(t.network).totals().params / 1e6, 1) == 29.3  # Howard et al. 2017, Table 4
    # MobileNet-v2's inverted residuals: depthwise + pointwise merged, the expansion kept, additions kept
    _, t2 = traced["mobilenet_v2"]
    std = to_standard(t2.network)
    assert not rows_of(std, "depthwise") and len(rows_of(std, "add")) == 10
    assert std.rows[-1].output_shape == (1, 1000)


def test_readme_table_of_the_four_models_holds(traced):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    labels = {"mobilenet_v1": "MobileNet-v1", "resnet18": "ResNet-18", "vgg16": "VGG-16",
              "mobilenet_v2": "MobileNet-v2 (inverted residuals, ReLU6)"}
    for name, label in labels.items():
        module, t = traced[name]
        totals = t.network.totals()
        dense = totals.mults["dense"]
        assert (f"| {label} | {M.parameter_count(module):,} | {dense:,} | {M.flop_counter_total(module, FULL):,} | "
                f"{totals.mults['effective']:,} | {sum(totals.uncounted.values())} |") in readme


def test_traced_network_round_trips_through_toml(traced):
    _, t = traced["mobilenet_v2"]
    back = network_toml.loads(network_toml.dumps(t.network))
    assert back == t.network and back.totals() == t.network.totals()


# ---------------------------------------------------------------------- npconv model --torch


def test_model_torch_measures_a_traced_model(capsys):
    code, out, _ = run(capsys, "model", "--torch", f"{MODELS_FILE}:MobileNetV2", "--input-shape", "1x3x32x32",
                       "--measure", "--json")
    assert code == 0
    data = json.loads(out)
    measured = data["measured"]
    convention = measured["convention"]
    assert measured["matches"]
    assert measured["totals"]["measured"] == measured["totals"]["formula"] == {
        "mults": data["totals"]["mults"][convention], "adds": data["totals"]["adds"][convention]}
    assert len(measured["layers"]) == 52 + 1  # every conv (stem, 17 blocks, head) and the linear layer
    assert data["traced"]["method"] == "torch.fx" and data["traced"]["module_params"] == 3_504_872


def test_model_torch_text_compare_and_standard(capsys):
    code, out, _ = run(capsys, "model", "--torch", f"{MODELS_FILE}:ResNet18", "--input-shape", "64x64x3",
                       "--compare", "torch")
    assert code == 0
    assert "Read --input-shape 64x64x3 as H x W x C" in out
    assert "Traced with torch.fx (symbolic tracing), shapes from fake tensors" in out
    assert "Parameters: 11,689,512 = PyTorch's sum(p.numel() for p in model.parameters())." in out
    assert f"the model itself ({MODELS_FILE}:ResNet18)" in out and "(equal)" in out
    # a graph: the rows that read other than the row above say what they read
    assert "layer1.0.bn2, maxpool" in out and "input: the layers a row reads" in out
    code, out, _ = run(capsys, "model", "--torch", f"{MODELS_FILE}:MobileNetV1", "--input-shape", "1x3x64x64",
                       "--standard")
    assert code == 0 and "What separability saved" in out
    assert re.search(r"features\.\d+\+features\.\d+ +conv2d +32x32x64", out)  # the first pair, merged


def test_uncounted_operations_are_listed_by_name_with_their_calls(capsys):
    t = trace(M.Uncountable(), (1, 3, 8, 8))
    totals = t.network.totals()
    assert totals.uncounted == {"torch.nn.functional.interpolate": 1, "nn.LayerNorm": 1, "Tensor.mean": 1}
    # never silently zero: the counted layers only, and LayerNorm's parameters still in params
    assert totals.mults["dense"] == 8 * 8 * 8 * 27 + 8 * 2
    assert totals.params == M.parameter_count(M.Uncountable())
    code, out, _ = run(capsys, "model", "--torch", f"{MODELS_FILE}:Uncountable", "--input-shape", "1x3x8x8")
    assert code == 3
    assert "(excluding 3 uncounted operations, listed below)" in out
    assert "NOT COUNTED: 3 operations npconv cannot count, in no total above" in out
    assert "torch.nn.functional.interpolate  1 call  interpolate" in out
    assert "nn.LayerNorm                     1 call  norm" in out
    code, out, _ = run(capsys, "model", "--torch", f"{MODELS_FILE}:Uncountable", "--input-shape", "1x3x8x8",
                       "--json")
    assert code == 3 and json.loads(out)["totals"]["uncounted"] == totals.uncounted


class SharedWeights(nn.Module):
    """One convolution and one batch-norm, each called twice."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(self.bn(self.conv(x))))


def test_a_module_called_twice_counts_its_parameters_once_and_its_mults_per_call(capsys):
    module = SharedWeights()
    t = trace(module, (1, 4, 6, 6))
    totals = t.network.totals()
    assert [(r.name, r.shares) for r in t.network.rows] == [
        ("conv", ""), ("bn", ""), ("conv#2", "conv"), ("bn#2", "bn")]
    assert totals.params == M.parameter_count(module) == 4 * 4 * 9 + 4 + 8
    assert totals.buffers == 8
    assert totals.mults["dense"] == 2 * 6 * 6 * 4 * 4 * 9 == M.flop_counter_total(module, (1, 4, 6, 6)) // 2
    assert totals.other["batchnorm"] == {"mults": 2 * 144, "adds": 2 * 144}
    assert network_torch.agrees(network_torch.compare(t.network), totals)


class Branchy(nn.Module):
    """Control flow on the data: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.positive, self.negative = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 5, padding=1)

    def forward(self, x):
        return torch.relu(self.positive(x) if x.mean() > 0 else self.negative(x))


def test_a_model_fx_cannot_trace_is_traced_with_forward_hooks():
    module = Branchy()
    t = trace(module, (1, 3, 8, 8))
    assert t.method == network_from_torch.HOOKS and "cannot be used as inputs to control flow" in t.fx_failure
    assert t.shapes_from == "one forward pass on random data"
    taken = [r.name for r in t.network.rows if r.is_weighted]
    assert len(taken) == 1
    # the branch not taken is named, its parameters not counted; the condition's ops are listed
    assert set(t.unread_params) == {f"{'negative' if taken == ['positive'] else 'positive'}.{p}"
                                    for p in ("weight", "bias")}
    assert t.network.totals().uncounted == {"Tensor.mean": 1, "Tensor.gt": 1}
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch_trace.random_input((1, 3, 8, 8), torch.device("cpu")))
    assert counter.get_total_flops() == 2 * t.network.totals().mults["dense"]
    assert any("torch.fx could not trace it" in line for line in t.notes())


class Assorted(nn.Module):
    """Convolution and pooling forms, paddings, functional calls, in-place and identity ops."""

    def __init__(self):
        super().__init__()
        self.same = nn.Conv2d(3, 8, 4, padding="same", bias=False)  # even kernel: the extra pixel at the end
        self.reflect = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.strided = nn.Conv2d(8, 8, 3, stride=2)  # reads the zero padding alone: takes it as its own
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.depthwise = nn.Conv2d(8, 16, 3, padding=1, groups=8, bias=False)
        self.constant = nn.ConstantPad2d(1, 0.5)
        self.valid = nn.Conv2d(16, 4, 3, padding="valid", padding_mode="circular")
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.act = nn.Hardswish()
        self.keep = nn.Identity()
        self.fc = nn.Linear(4 * 2 * 2 + 4 * 3 * 3, 3)

    def forward(self, x):
        x = self.reflect(F.gelu(self.same(x)))
        y = self.strided(self.pad(x))
        y = y.add_(self.dilated(y))
        z = self.valid(self.constant(F.hardtanh(self.depthwise(y), 0.0, 6.0)))
        z = self.keep(self.act(self.pool(z)))
        pooled = F.avg_pool2d(z, 2, ceil_mode=True)
        both = torch.cat([torch.flatten(pooled, 1), z.view(z.size(0), -1)], dim=1)
        return self.fc(F.dropout(both, 0.1, self.training))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_assorted_layers_map_to_npconv_kinds_and_count_as_torch_does():
    module, shape = Assorted(), (1, 3, 11, 11)
    t = trace(module, shape)
    rows = {r.name: r for r in t.network.rows}
    totals = t.network.totals()
    assert not totals.uncounted and totals.params == M.parameter_count(module)
    assert 2 * totals.mults["dense"] == M.flop_counter_total(module, shape)
    assert rows["same"].geometry.padding == ((1, 2), (1, 2)) and rows["same"].geometry.padding_rule == "same"
    # reflect padding: a pad row, then the convolution unpadded -- every tap is real input
    assert rows["reflect.pad"].kind == "pad" and rows["reflect"].inputs == ("reflect.pad",)
    assert rows["reflect"].value("mults") == rows["reflect"].value("mults", "effective")
    # ZeroPad2d folded into the strided convolution: no pad row, asymmetric padding
    assert "pad" not in rows and rows["strided"].geometry.padding == ((0, 1), (0, 1))
    assert rows["strided"].output_shape == (1, 8, 5, 5)  # (11 + 1 - 3) // 2 + 1
    assert rows["dilated"].kind == "conv2d" and rows["dilated"].geometry.groups == 2
    assert rows["add_"].kind == "add" and rows["add_"].inputs == ("strided", "dilated")
    assert rows["depthwise"].kind == "depthwise" and rows["depthwise"].geometry.depth_multiplier == 2
    assert rows["depthwise"].inputs == ("add_",)  # the tensor add_ changed in place
    assert rows["hardtanh"].kind == "relu6"
    assert rows["constant"].kind == "pad" and rows["constant"].layer.value == 0.5
    assert "valid.pad" not in rows and rows["valid"].inputs == ("constant",)  # circular, but 'valid': no pad
    assert rows["pool"].output_shape == (1, 4, 3, 3)  # ceil mode on 5x5: 3x3
    assert rows["avg_pool2d"].output_shape == (1, 4, 2, 2)
    assert rows["cat"].kind == "concat" and rows["cat"].output_shape == (1, 52)
    assert rows["view"].kind == "flatten" and rows["dropout"].kind == "dropout"
    assert "keep" not in rows  # nn.Identity: the next layer reads its input
    assert network_torch.agrees(network_torch.compare(t.network), totals)


class Additions(nn.Module):
    def __init__(self, form: str):
        super().__init__()
        self.form, self.a, self.b = form, nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        if self.form == "+":
            return a + b
        if self.form == "+=":
            a += b
            return a
        if self.form == "torch.add":
            return torch.add(a, b)
        if self.form == "add_":
            a.add_(b)
            return torch.relu(a)  # reads a, changed in place
        if self.form == "alpha":
            return torch.add(a, b, alpha=2)
        return a + 1.0


@pytest.mark.parametrize("tracer", ["fx", "hooks"])
@pytest.mark.parametrize(("form", "uncounted"), [
    ("+", None), ("+=", None), ("torch.add", None), ("add_", None),
    ("alpha", "torch.add (alpha 2)"), ("number", "add (of a tensor and a number or a constant)"),
])
def test_additions_of_two_activations_are_counted_others_listed(form, uncounted, tracer, monkeypatch):
    if tracer == "hooks":
        monkeypatch.setattr(torch.fx, "symbolic_trace", untraceable)
    t = trace(Additions(form), (1, 2, 3, 3))
    totals = t.network.totals()
    if uncounted is None:
        assert not totals.uncounted and totals.other["add"] == {"adds": 18}
        assert next(r for r in t.network.rows if r.kind == "add").inputs == ("a", "b")
        if form == "add_":  # the ReLU reads the tensor add_ changed
            assert t.network.rows[-1].inputs == ("add_",)
    else:  # operator.add under fx is Tensor.add to a TorchFunctionMode
        (operation,) = totals.uncounted
        assert operation.endswith(uncounted) and totals.uncounted[operation] == 1


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_a_shape_npconv_disagrees_with_is_refused(monkeypatch):
    monkeypatch.setattr(network_from_torch, "_pool_padding", lambda *args: 0)  # forget ceil mode
    with pytest.raises(TraceShapeError, match=r"module \(layer pool, nn.MaxPool2d\): expected the output shape "
                                              r"npconv infers for it, \(1, 4, 2, 2\), to be the traced one, "
                                              r"got \(1, 4, 3, 3\)"):
        trace(Assorted(), (1, 3, 11, 11))


def test_a_call_the_mapping_does_not_understand_is_kept_uncounted(monkeypatch):
    def confused(self, op, module, x):
        raise TypeError("an argument of a new form")

    monkeypatch.setattr(network_from_torch._Mapper, "_conv", confused)
    t = trace(SharedWeights(), (1, 4, 6, 6))
    assert t.network.totals().uncounted == {"nn.Conv2d (arguments not understood: TypeError)": 2}
    assert [r.kind for r in t.network.rows] == ["uncounted", "batchnorm", "uncounted", "batchnorm"]
    assert t.network.totals().params == M.parameter_count(SharedWeights())  # still read, counted once


def test_from_torch_is_there_without_importing_torch_with_npconv_network():
    code = "import sys, npconv.network, npconv.model; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


# ---------------------------------------------------------------------- errors


def test_bad_modules_and_shapes_are_refused_by_name():
    with pytest.raises(ConvArgumentError, match=r"module: expected a torch\.nn\.Module, got int"):
        from_torch(42, (1, 3, 8, 8))
    with pytest.raises(ConvArgumentError, match=r"input_shape: expected \(N, C, H, W\): 4 positive ints"):
        from_torch(SharedWeights(), (1, 4, 8))
    with pytest.raises(ConvArgumentError, match="input_shape: expected a shape the model accepts, got "
                                                r"\(1, 3, 6, 6\): RuntimeError: .*to have 4 channels"):
        from_torch(SharedWeights(), (1, 3, 6, 6))
    with pytest.raises(ConvArgumentError, match="module: expected a model that computes something"):
        from_torch(nn.Sequential(nn.Identity()), (1, 3, 4, 4))


FACTORIES = '''
import torch.nn as nn

def fine():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())

def raises():
    raise RuntimeError("weights not found")

def not_a_module():
    return "a string"

instance = nn.Sequential(nn.Conv2d(3, 4, 1))
'''


@pytest.mark.parametrize(("spec", "extra", "message"), [
    ("{folder}/no_such.py:fine", [], "--torch: expected an existing Python file before the ':', got "),
    ("{folder}/net.py", [], "--torch: expected FILE.py:FACTORY, e.g. my_net.py:build"),
    ("{folder}/net.py:build", [], "--torch: expected a function or class named 'build' in net.py, got none; "
                                  "it defines fine, raises, not_a_module"),
    ("{folder}/net.py:raises", [], "--torch: expected net.py:raises() to return a model, got a call that raised "
                                   "RuntimeError: weights not found (at net.py:8, in raises)"),
    ("{folder}/net.py:not_a_module", [], "--torch: expected net.py:not_a_module() to return a torch.nn.Module, "
                                         "got str"),
    ("{folder}/broken.py:fine", [], "--torch: expected a file that imports cleanly, got "),
    ("{folder}/net.py:fine", ["--input-shape", "1x1x8x8"],
     "--input-shape: expected a shape the model accepts, got (1, 1, 8, 8): RuntimeError: Given groups=1"),
    ("{folder}/net.py:fine", ["--input-shape", "2x2x3"], "--input-shape: expected a shape the model accepts"),
    ("{folder}/net.py:fine", ["--input-shape", "8x8"], "--input-shape: expected H x W x C such as 14x14x3"),
    ("{folder}/net.py:fine", ["--width", "0.5"], "--width: expected a built-in network to apply it to"),
])
def test_model_torch_refusals_name_the_argument(capsys, tmp_path, spec, extra, message):
    (tmp_path / "net.py").write_text(FACTORIES)
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n")
    code, out, err = run(capsys, "model", "--torch", spec.format(folder=tmp_path), *extra)
    assert code == 2 and message in err and "Traceback" not in err + out


def test_model_torch_takes_a_module_instance_and_prints_its_trace(capsys, tmp_path):
    (tmp_path / "net.py").write_text(FACTORIES)
    code, out, _ = run(capsys, "model", "--torch", f"{tmp_path}/net.py:instance", "--input-shape", "1x3x5x5")
    assert code == 0 and "Read --input-shape 1x3x5x5 as N x C x H x W" in out
    code, out, _ = run(capsys, "model", "--torch", f"{tmp_path}/net.py:fine")
    assert code == 0 and "Read --input-shape (default) 1x3x224x224" in out and "222x222x4" in out
