"""Networks as graphs: layers that name their inputs, shared layers, uncounted operations (no PyTorch needed)."""

from __future__ import annotations

import json
import re
import sys

import pytest

from npconv import network_toml, networks
from npconv.errors import ConvArgumentError
from npconv.network import (
    Activation,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Depthwise,
    Dropout,
    Flatten,
    From,
    GlobalAvgPool,
    Linear,
    MaxPool,
    Network,
    Pad,
    Pointwise,
    ReLU,
    Reshape,
    Residual,
    Reuse,
    Uncounted,
    to_standard,
)

from cli_runner import run


def inception() -> Network:
    """A stem, three branches joined, a shared 1x1 layer, a residual addition, reflect padding, an op not counted."""
    return Network("branches", (1, 3, 8, 8), (
        Conv2d(8, 3, padding=1, name="stem"),
        Conv2d(4, 1, name="b1"),
        From("stem"), Conv2d(4, 3, padding=1, name="b2"), Activation("relu6", name="b2_act"),
        From("stem"), MaxPool(3, stride=1, padding=1, name="b3"),
        Concat(("b1", "b2_act", "b3"), name="mix"),
        From("stem"), Reuse("b1", name="b1_again"),
        Add(("b1_again", "b1", "b2"), name="sum"),
        Pad(((0, 1), (0, 1)), mode="reflect", name="pad"),
        Uncounted("torch.nn.functional.interpolate", ("pad",), (1, 4, 18, 18), name="up"),
        GlobalAvgPool(name="gap"), Flatten(name="flat"), Dropout(0.2, name="drop"), Linear(3, name="fc"),
    ))


def rows(network: Network) -> dict:
    return {r.name: r for r in network.rows}


def test_a_graph_by_hand():
    net = inception()
    r = rows(net)
    assert [row.inputs for row in net.rows][:6] == [
        ("input",), ("stem",), ("stem",), ("b2",), ("stem",), ("b1", "b2_act", "b3")]
    assert r["mix"].output_shape == (1, 16, 8, 8)
    # b1 applied again: 8 x 8 x 4 x 8 mults per call, its 4 x 8 + 4 parameters once
    assert (r["b1_again"].shares, r["b1_again"].params, r["b1_again"].value("mults")) == ("b1", None, 2048)
    assert r["b1"].value("params") == 36
    # three inputs: 2 additions per element
    assert r["sum"].other_value("adds") == 2 * 4 * 8 * 8
    assert r["sum"].other["adds"].formula == "(inputs - 1) x C x H x W"
    assert r["pad"].output_shape == (1, 4, 9, 9)
    assert r["up"].operation == "torch.nn.functional.interpolate" and r["gap"].inputs == ("up",)
    totals = net.totals()
    assert totals.uncounted == {"torch.nn.functional.interpolate": 1}
    assert totals.params == 224 + 36 + 292 + 15
    assert totals.mults["dense"] == 8 * 8 * 8 * 27 + 2 * 2048 + 8 * 8 * 4 * 72 + 12
    assert net.output_shape == (1, 3)


def test_chains_and_residual_blocks_say_what_they_read():
    resnet = rows(networks.build("resnet18"))
    assert resnet["conv1"].inputs == ("input",) and resnet["bn1"].inputs == ("conv1",)
    assert resnet["layer1.0.add"].inputs == ("layer1.0.bn2", "maxpool")  # identity shortcut: the block's input
    assert resnet["layer2.0.downsample.0"].inputs == ("layer1.1.relu_out",)
    assert resnet["layer2.0.add"].inputs == ("layer2.0.bn2", "layer2.0.downsample.1")


def test_layers_inside_a_residual_block_name_their_inputs_there():
    net = Network("inner", (1, 4, 6, 6), (
        Residual((Conv2d(4, 3, padding=1, name="a"), Conv2d(4, 1, name="b"), Add(("a", "b"), name="join"),
                  From("input"), Reuse("b", name="again"), Add(("join", "again"), name="out")), name="block"),
    ))
    r = rows(net)
    assert r["block.again"].inputs == ("input",) and r["block.out"].inputs == ("block.join", "block.again")
    assert r["block.add"].inputs == ("block.out", "input")


@pytest.mark.parametrize(("layers", "message"), [
    ((From("nowhere"),), "layers[0].source: expected the name of an earlier layer of this sequence, or 'input'"),
    ((Conv2d(4, 1, name="a"), Add(("a", "b"))), "layers[1].inputs[1]: expected the name of an earlier layer"),
    ((Add(("input",)),), "layers[0].inputs: expected two or more names to add"),
    ((Add("input"),), "layers[0].inputs: expected a sequence of at least 1 names of earlier layers"),
    ((Conv2d(4, 1, name="a"), Add(("a", "input"))), "layers[1]: expected inputs of one shape (npconv adds "
                                                     "without broadcasting), got a (1, 4, 8, 8), input (1, 3, 8, 8)"),
    ((Conv2d(4, 1, name="a"), MaxPool(2, name="p"), Concat(("a", "p"))),
     "layers[2]: expected inputs whose shapes differ along axis 1 only"),
    ((Concat(("input",), axis=4),), "layers[0].axis: expected an axis of the 4-D inputs (-4 to 3), got 4"),
    ((Reuse("input"),), "layers[0].source: expected the name of an earlier layer (not a marker, a merge"),
    ((Conv2d(4, 1, name="a"), Reuse("a")), "layers[1]: expected an input that a's weights fit (its input "
                                           "(1, 3, 8, 8)), got input (1, 4, 8, 8)"),
    ((ReLU(name="input"),), "layers[0].name: expected a name other than 'input', which names the input"),
    ((Pad(8, mode="reflect"),), "layers[0].padding: expected reflect padding of at most 7 rows and 7 columns"),
    ((Pad("same"),), "layers[0].padding: expected explicit amounts"),
    ((Pad(1, mode="wrap"),), "layers[0].mode: expected one of constant, reflect, replicate, circular"),
    ((Activation("relu"),), "layers[0].function: expected one of relu6, hardtanh"),
    ((Dropout(1.5),), "layers[0].p: expected a probability from 0 to 1"),
    ((Reshape((1, 3, 65)),), "layers[0].shape: expected a shape with the 192 elements of its input"),
    ((Uncounted("op", ("input",), (1, 2), params=-1),), "layers[0].params: expected an int >= 0"),
    ((Uncounted("split", ("input",)), Conv2d(4, 1)), "layers[1]: expected one tensor as input, got the output of "
                                                      "uncounted_1, which is not a single tensor"),
    ((Conv2d(4, 1, name="a"), ReLU(name="a"), From("a")), "layers[2].source: expected a name that only one"),
])
def test_invalid_graphs_name_the_layer(layers, message):
    with pytest.raises(ConvArgumentError, match=re.escape(message)):
        Network("bad", (1, 3, 8, 8), layers)


def test_a_graph_round_trips_through_toml():
    net = inception()
    text = network_toml.dumps(net)
    assert '[[layers]]\nkind = "from"\nsource = "stem"' in text
    assert 'inputs = ["b1", "b2_act", "b3"]' in text
    back = network_toml.loads(text)
    assert back == net and back.totals() == net.totals()


def test_a_graph_written_by_hand_in_toml_and_its_errors():
    text = """
input_shape = [1, 3, 8, 8]

[[layers]]
kind = "conv2d"
name = "a"
filters = 4
kernel = 1

[[layers]]
kind = "from"
source = "input"

[[layers]]
kind = "conv2d"
name = "b"
filters = 4
kernel = 1

[[layers]]
kind = "add"
inputs = ["a", "b"]
"""
    net = network_toml.loads(text, "graph.toml")
    assert net.rows[-1].inputs == ("a", "b")
    with pytest.raises(ConvArgumentError, match=r"^graph.toml:22: layers\[3\].inputs\[1\]: expected the name"):
        network_toml.loads(text.replace('"a", "b"', '"a", "c"'), "graph.toml")


def test_standard_rebuild_of_a_graph_keeps_its_references():
    net = Network("mbv2", (1, 8, 8, 8), (
        Pointwise(16, bias=False, name="b.expand"), BatchNorm(name="b.bn1"), Activation("relu6", name="b.act1"),
        Depthwise(3, padding=1, bias=False, name="b.dw"), BatchNorm(name="b.bn2"), Activation("relu6", name="b.act2"),
        Pointwise(8, bias=False, name="b.pw"), Add(("b.pw", "input"), name="b.add"),
        Depthwise(3, padding=1, name="c.dw"), Pointwise(8, name="c.pw"), Add(("c.dw", "c.pw"), name="c.add"),
    ))
    std = to_standard(net)
    names = [layer.name for layer in std.layers]
    # merged across batch-norm and ReLU6; the addition reads the merged layer
    assert names[:4] == ["b.expand", "b.bn1", "b.act1", "b.conv"] and std.layers[4] == Add(("b.conv", "input"),
                                                                                          name="b.add")
    # a pair whose depthwise output another layer reads is not a separable pair: kept
    assert names[5:] == ["c.dw", "c.pw", "c.add"]
    assert std.totals().params == 128 + 32 + 8 * 16 * 9 + (8 * 9 + 8) + (8 * 8 + 8)


def test_standard_rebuild_names_numbered_pairs_uniquely():
    layers = []
    for i in range(2):
        layers += [Depthwise(3, padding=1, name=f"features.{3 * i}"), ReLU(name=f"features.{3 * i + 1}"),
                   Pointwise(4, name=f"features.{3 * i + 2}")]
    std = to_standard(Network("numbered", (1, 4, 6, 6), tuple(layers)))
    assert [layer.name for layer in std.layers] == ["features.0+features.2", "features.3+features.5"]


def test_model_text_of_a_graph(capsys, tmp_path):
    path = tmp_path / "branches.toml"
    path.write_text(network_toml.dumps(inception()))
    code, out, _ = run(capsys, "model", str(path))
    assert code == 3  # counted, but one operation is not
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("  layer"))
    assert header.endswith("%mults  input")
    assert re.search(r"^  b2 +conv2d .* stem$", out, re.M)  # reads other than the row above
    assert re.search(r"^  b1_again +conv2d +8x8x4 +shared +- +2,048 ", out, re.M)
    assert re.search(r"^  b2_act +relu6 ", out, re.M)  # a marker, shown because a row reads it by name
    assert "(shared: a layer applied again with the same weights" in out
    assert "(excluding 1 uncounted operation, listed below)" in out
    assert "NOT COUNTED: 1 operation npconv cannot count" in out
    assert "torch.nn.functional.interpolate  1 call  up" in out
    code, out, _ = run(capsys, "model", str(path), "--json")
    data = json.loads(out)
    assert code == 3 and data["totals"]["uncounted"] == {"torch.nn.functional.interpolate": 1}
    layer = next(row for row in data["layers"] if row["name"] == "b1_again")
    assert (layer["inputs"], layer["shares"], layer["params"]) == (["stem"], "b1", None)


def test_model_text_of_a_chain_has_no_input_column(capsys):
    code, out, _ = run(capsys, "model", "small_standard")
    assert code == 0 and "input: the layers" not in out
    assert next(line for line in out.splitlines() if line.startswith("  layer")).endswith("%mults")


def test_model_torch_without_pytorch(capsys, monkeypatch, tmp_path):
    import npconv

    monkeypatch.setitem(sys.modules, "npconv.network_from_torch", None)  # import fails as without torch
    monkeypatch.delattr(npconv, "network_from_torch", raising=False)
    code, _, err = run(capsys, "model", "--torch", f"{tmp_path}/net.py:build")
    assert code == 6 and "--torch: expected PyTorch installed (pip install 'npconv[compare]')" in err


def test_compare_torch_rebuilds_a_graph(capsys, tmp_path):
    pytest.importorskip("torch")
    counted = tuple(layer for layer in inception().layers if not isinstance(layer, Uncounted))
    net = Network("graph", (1, 3, 8, 8), counted)  # gap now reads the padding
    path = tmp_path / "graph.toml"
    path.write_text(network_toml.dumps(net))
    code, out, _ = run(capsys, "model", str(path), "--compare", "torch", "--json")
    data = json.loads(out)
    assert code == 0 and data["torch"]["agrees"] and data["torch"]["params"] == net.totals().params
    path.write_text(network_toml.dumps(inception()))
    code, _, err = run(capsys, "model", str(path), "--compare", "torch")
    assert code == 2 and "--compare: expected a network without uncounted operations (PyTorch cannot rebuild " \
                         "them from npconv's description), got torch.nn.functional.interpolate (up)" in err
