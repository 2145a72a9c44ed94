"""``npconv train``: tiny runs, the report, weight files, Ctrl-C, and every bad input refused by name.

Most runs use a tiny TOML network on a tiny ``.npz`` so that the reference
kernels finish in a fraction of a second; one run trains the built-in pair
on the digits for one epoch with the fastest method.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from npconv import kernels

from cli_runner import run

TINY_NET = """\
name = "{name}"
input_shape = [1, 1, 8, 8]

[[layers]]
kind = "{conv}"
filters = 2
kernel = 3
padding = "same"

[[layers]]
kind = "relu"

[[layers]]
kind = "global_avgpool"

[[layers]]
kind = "flatten"

[[layers]]
kind = "linear"
features = 3
"""

pytest.importorskip("tqdm", reason="npconv train needs the train extra (tqdm)")


@pytest.fixture
def files(tmp_path):
    """A tiny 3-class data file and a tiny standard / separable pair of networks."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6)).astype(np.uint8)
    y = np.arange(40) % 3
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    standard = tmp_path / "tiny_standard.toml"
    standard.write_text(TINY_NET.format(name="tiny_standard", conv="conv2d"))
    separable = tmp_path / "tiny_separable.toml"
    separable.write_text(TINY_NET.format(name="tiny_separable", conv="separable"))
    return {"data": str(data), "nets": f"{standard},{separable}", "dir": tmp_path, "x": x, "y": y}


def _train(capsys, files, *extra):
    return run(capsys, "train", "--data", files["data"], "--net", files["nets"], "--method", "reference",
               "--batch-size", "10", *extra)


def test_tiny_run_prints_both_networks_side_by_side(capsys, files):
    code, out, err = _train(capsys, files, "--epochs", "2")
    assert code == 0, err
    assert "read as NHW (one channel)" in out
    assert "input 8x8x1 -> 6x6x1" in out  # adapted to the data
    header = next(line for line in out.splitlines() if "tiny_standard" in line and "tiny_separable" in line)
    assert header.index("tiny_standard") < header.index("tiny_separable")
    for row in ("parameters", "forward mults / image, formula (dense)", "training-step mults / image, measured",
                "time per epoch (median)", "final test accuracy"):
        assert row in out
    assert "MISMATCH" not in out and out.count(" ok") == 4
    assert "tiny_standard" in err  # the progress bar, on stderr


def test_json_report_has_formula_and_measured_counts(capsys, files):
    code, out, _ = _train(capsys, files, "--epochs", "2", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["data"]["layout"] == "NHW (one channel)" and report["data"]["classes"] == 3
    for net in report["networks"]:
        assert net["status"] == "completed" and len(net["epochs"]) == 2
        assert net["measured"]["per_image"]["step_mults"] == net["formula"]["step_mults"]
        assert net["measured"]["per_image"]["forward_mults"] == net["formula"]["forward_mults"]
        assert 0 <= net["final_test_accuracy"] <= 1


def test_save_and_load_round_trip(capsys, files):
    weights = files["dir"] / "w.npz"
    code, _, _ = _train(capsys, files, "--epochs", "1", "--save", str(weights))
    assert code == 0 and weights.is_file()
    with np.load(weights) as saved:
        assert "tiny_separable/separable_1.depthwise.weight" in saved.files
        first = saved["tiny_standard/linear_5.weight"]
    code, _, err = _train(capsys, files, "--epochs", "1", "--load", str(weights), "--save", str(weights))
    assert code == 0, err
    with np.load(weights) as saved:
        assert not np.array_equal(saved["tiny_standard/linear_5.weight"], first)
    code, _, err = run(capsys, "train", "--data", files["data"], "--method", "reference", "--load", str(weights),
                       "--net", "small_standard")
    assert code == 2 and "--load: expected weights for small_standard" in err


def test_plot_writes_learning_curves(capsys, files):
    pytest.importorskip("matplotlib")
    plot = files["dir"] / "curves.png"
    code, out, _ = _train(capsys, files, "--epochs", "2", "--plot", str(plot))
    assert code == 0 and plot.read_bytes().startswith(b"\x89PNG")
    assert f"Learning curves written to {plot}" in out


def test_ctrl_c_stops_cleanly_reports_and_saves(capsys, files, monkeypatch):
    from npconv.train import optimizers

    calls = {"n": 0}
    real_step = optimizers.Adam.step

    def step(self):
        calls["n"] += 1
        if calls["n"] == 5:  # inside the second epoch of the first network
            raise KeyboardInterrupt
        real_step(self)

    monkeypatch.setattr(optimizers.Adam, "step", step)
    weights = files["dir"] / "w.npz"
    code, out, _ = _train(capsys, files, "--epochs", "3", "--save", str(weights))
    assert code == 130
    assert "tiny_standard: interrupted (Ctrl-C) after 4 steps, 1 of 3 epochs complete" in out
    assert "Not trained: tiny_separable" in out
    with np.load(weights) as saved:
        assert sorted({name.split("/")[0] for name in saved.files if "/" in name}) == ["tiny_standard"]
        assert all(np.all(np.isfinite(saved[name])) for name in saved.files if "/" in name)


def test_a_learning_rate_that_makes_the_loss_nan_stops_and_keeps_the_last_good_weights(capsys, files):
    weights = files["dir"] / "w.npz"
    code, out, err = _train(capsys, files, "--epochs", "3", "--lr", "1e30", "--optimizer", "sgd",
                            "--save", str(weights))
    assert code == 2
    assert "npconv train: error: --lr: expected a learning rate at which the loss stays finite" in err
    assert "kept the last weights that gave a finite loss" in err
    assert "Weights of tiny_standard (after " in out
    with np.load(weights) as saved:
        assert all(np.all(np.isfinite(saved[name])) for name in saved.files if "/" in name)


def _npz(files, **changes):
    arrays = {"x_train": files["x"][:30], "y_train": files["y"][:30], "x_test": files["x"][30:],
              "y_test": files["y"][30:]}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    path = files["dir"] / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


BAD_DATA = {
    "missing array": ({"y_test": None}, "--data: expected a .npz file with arrays x_train, y_train, x_test, "
                                        "y_test"),
    "misnamed array": ({"x_train": None, "images": np.zeros((30, 6, 6))}, "missing x_train"),
    "mismatched lengths": ({"y_train": np.arange(29) % 3}, "y_train: expected 30 labels, one per image of "
                                                            "x_train, got 29"),
    "label out of range": ({"y_test": np.full(10, 7)}, "y_test: expected labels 0 to 2, the classes of "
                                                       "y_train, got label 7"),
    "NaN in the images": ({"x_test": np.full((10, 6, 6), np.nan)}, "x_test: expected finite pixel values, "
                                                                   "got 360 non-finite values (NaN)"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_files_exit_2_naming_the_array(capsys, files, case):
    changes, message = BAD_DATA[case]
    code, out, err = run(capsys, "train", "--data", _npz(files, **changes), "--net", files["nets"],
                         "--method", "reference")
    assert code == 2 and out == ""
    assert err.startswith("npconv train: error: ") and message in err


BAD_FLAGS = {
    "--epochs 0": (["--epochs", "0"], "--epochs: expected an int >= 1, got '0'"),
    "--epochs two": (["--epochs", "two"], "--epochs: expected an int >= 1, got 'two'"),
    "--batch-size 0": (["--batch-size", "0"], "--batch-size: expected an int >= 1, got '0'"),
    "--lr -1": (["--lr", "-1"], "--lr: expected a positive learning rate such as 0.01, got '-1'"),
    "--lr nan": (["--lr", "nan"], "--lr: expected a positive learning rate such as 0.01, got 'nan'"),
    "--momentum 1": (["--optimizer", "sgd", "--momentum", "1"], "--momentum: expected a momentum 0 <= m < 1"),
    "--momentum with adam": (["--momentum", "0.5"], "--momentum: expected --optimizer sgd"),
    "--seed -1": (["--seed", "-1"], "--seed: expected an int >= 0, got '-1'"),
    "--optimizer": (["--optimizer", "rmsprop"], "--optimizer: expected sgd or adam, got 'rmsprop'"),
    "--schedule": (["--schedule", "step"], "--schedule: expected cosine or constant, got 'step'"),
    "--method": (["--method", "fft"], "--method: expected one of reference, im2col, direct, got 'fft'"),
    "--net unknown": (["--net", "lenet"], "--net: expected a built-in network (mobilenet_v1,"),
    "--net twice": (["--net", "small_standard,small_standard"], "--net: expected each network once"),
    "--net too big for the data": (["--net", "vgg16"], "--net vgg16: expected a network whose layers fit a "
                                                       "6x6x1 input"),
}


#: Files that cannot be read or written: exit 5, before training, naming the flag.
BAD_FILES = {
    "--save in a missing folder": (["--save", "/nonexistent/folder/w.npz"], "--save: expected a file in an "
                                                                            "existing folder"),
    "--save a folder": (["--save", "{dir}"], "--save: expected a file in an existing folder"),
    "--load missing": (["--load", "/nonexistent/w.npz"], "--load: expected an existing .npz file"),
    "--data missing": (["--data", "/nonexistent/d.npz"], "--data: expected an existing .npz file"),
    "--plot in a missing folder": (["--plot", "/nonexistent/c.png"], "--plot: expected a file in an "
                                                                     "existing folder"),
    "--plot a folder": (["--plot", "{dir}"], "--plot: expected a file in an existing folder"),
}


@pytest.mark.parametrize("case", [*BAD_FLAGS, *BAD_FILES])
def test_bad_flags_and_files_are_refused_before_training(capsys, files, case):
    argv, message = BAD_FLAGS.get(case) or BAD_FILES[case]
    argv = [a.format(dir=files["dir"]) for a in argv]
    defaults = {"--data": files["data"], "--net": files["nets"], "--method": "reference"}
    for flag, value in defaults.items():
        if flag not in argv:
            argv = [*argv, flag, value]
    code, out, err = run(capsys, "train", *argv)
    assert code == (5 if case in BAD_FILES else 2) and out == ""
    assert err.startswith("npconv train: error: ") and message in err, err


def test_missing_libraries_say_how_to_install_them(capsys, files, monkeypatch):
    for module in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    code, _, err = run(capsys, "train", "--net", files["nets"], "--method", "reference", "--epochs", "1")
    assert code == 2 and "pip install 'npconv[train]'" in err and "--data FILE.npz" in err
    monkeypatch.setitem(sys.modules, "tqdm", None)
    code, _, err = _train(capsys, files)
    assert code == 2 and "tqdm for the progress bar: pip install 'npconv[train]'" in err


FAST = next((m for m in ("im2col", "direct") if hasattr(kernels.load(m), "conv2d_backward")), None)


@pytest.mark.skipif(FAST is None, reason="no fast method with a backward pass")
def test_one_epoch_of_the_built_in_pair_on_the_digits(capsys):
    pytest.importorskip("sklearn")
    code, out, err = run(capsys, "train", "--epochs", "1", "--method", FAST, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [n["name"] for n in report["networks"]] == ["small_standard", "small_separable"]
    assert report["data"]["train"] == 1437 and report["data"]["test"] == 360
    for net in report["networks"]:
        assert net["measured"]["per_image"]["step_mults"] == net["formula"]["step_mults"]
        assert net["final_test_accuracy"] > 0.15  # one epoch beats chance (10 %)


def test_train_help_imports_neither_numpy_nor_numba():
    import subprocess

    code = ("import sys\nfrom npconv.cli import main\ntry:\n    main(['train', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in ('numpy', 'numba', 'sklearn', 'tqdm') if m in sys.modules), "
            "file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--epochs" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]"
