"""Data for training (digits, npz files, layouts, every refusal), adapting networks, weight files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from npconv.errors import ConvArgumentError
from npconv.networks import build
from npconv.train import checkpoint, data
from npconv.train.model import adapt, build_model


def _write(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _images(rng, shape, dtype=np.uint8):
    return rng.integers(0, 256, shape).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize(("shape", "layout", "chw"), [
    ((20, 8, 6), "NHW (one channel)", (1, 8, 6)),
    ((20, 8, 6, 3), "NHWC (3 channels last)", (3, 8, 6)),
    ((20, 3, 8, 6), "NCHW (3 channels first)", (3, 8, 6)),
    ((20, 1, 4, 4), "NCHW (1 channels first)", (1, 4, 4)),
])
def test_npz_layouts_are_read_and_said(tmp_path, rng, shape, layout, chw):
    x = _images(rng, shape)
    path = _write(tmp_path / "d.npz", x_train=x, y_train=np.arange(20) % 3, x_test=x[:5], y_test=np.arange(5) % 3)
    dataset = data.load_npz(path)
    assert dataset.layout == layout
    assert dataset.image_shape == chw and dataset.classes == 3
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int64
    # standardised with the training set's statistics, per channel
    np.testing.assert_allclose(dataset.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(dataset.x_train.std(axis=(0, 2, 3)), 1, atol=1e-4)
    if layout.startswith("NHWC"):
        np.testing.assert_allclose(dataset.x_train[3, 2, 5, 1],
                                   (x[3, 5, 1, 2] - x[..., 2].mean()) / x[..., 2].std(), rtol=1e-5)


def _good(rng):
    x = _images(rng, (10, 6, 6))
    return {"x_train": x, "y_train": np.arange(10) % 2, "x_test": x[:4], "y_test": np.arange(4) % 2}


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.pop("y_test"), "--data: expected a .npz file with arrays x_train, y_train, x_test, y_test"),
    (lambda a: a.update(X_train=a.pop("x_train")), "got '.*' with arrays .*X_train.*; missing x_train"),
    (lambda a: a.update(y_train=a["y_train"][:9]), "y_train: expected 10 labels, one per image of x_train, got 9"),
    (lambda a: a.update(y_test=np.array([0, 1, 2, 1])), "y_test: expected labels 0 to 1, the classes of y_train, got label 2"),
    (lambda a: a.update(y_train=-(np.arange(10) % 2)), "y_train: expected class labels >= 0, got label -1"),
    (lambda a: a.update(y_train=np.full(10, 0.5)), "y_train: expected integer class labels"),
    (lambda a: a.update(y_train=np.zeros(10, int)), "y_train: expected labels of at least 2 classes"),
    (lambda a: a.update(x_train=np.where(np.arange(360).reshape(10, 6, 6) == 100, np.nan, 1.0)),
     r"x_train: expected finite pixel values, got 1 non-finite values \(NaN\), the first in image 2"),
    (lambda a: a.update(x_test=np.ones((4, 5, 6))), "x_test: expected images of the shape of x_train's"),
    (lambda a: a.update(x_train=np.ones((10, 6))), "x_train: expected images NHW .*, got shape"),
    (lambda a: a.update(x_train=np.ones((10, 6, 6), dtype=complex)), "x_train: expected an array of integer or float"),
])
def test_bad_npz_files_are_refused_by_name(tmp_path, rng, change, message):
    arrays = _good(rng)
    change(arrays)
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConvArgumentError, match=message):
        data.load_npz(path)


def test_a_file_that_is_not_npz_is_refused(tmp_path):
    path = tmp_path / "not.npz"
    path.write_text("hello")
    with pytest.raises(ConvArgumentError, match=r"--data: expected a readable \.npz file"):
        data.load_npz(str(path))


def test_digits_split_is_fixed_and_stratified():
    pytest.importorskip("sklearn")
    a, b = data.load_digits(), data.load_digits()
    assert (len(a.y_train), len(a.y_test)) == (1437, 360)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # about 36 of each digit
    assert a.image_shape == (1, 8, 8)


def test_batches_cover_every_index_once(rng):
    parts = list(data.batches(10, 4, rng))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(np.concatenate(parts)) == list(range(10))


# ---------------------------------------------------------------------- adapting networks


def test_adapt_changes_input_and_classes_and_says_so():
    network, changes = adapt(build("small_standard"), 1, 28, 28, 5)
    assert network.input_shape == (1, 1, 28, 28) and network.output_shape == (1, 5)
    assert changes == ["input 8x8x3 -> 28x28x1", "fc 10 -> 5 classes"]
    assert adapt(build("small_standard"), 3, 8, 8, 10)[1] == []


def test_adapt_refuses_a_network_that_does_not_fit():
    with pytest.raises(ConvArgumentError, match="--net vgg16: expected a network whose layers fit a 8x8x1 input"):
        adapt(build("vgg16"), 1, 8, 8, 10, argument="--net vgg16")


# ---------------------------------------------------------------------- weight files


def test_save_then_load_restores_every_weight(tmp_path):
    network, _ = adapt(build("small_separable"), 1, 8, 8, 10)
    a, b = build_model(network, seed=1), build_model(network, seed=2)
    path = str(tmp_path / "w.npz")
    checkpoint.save(path, [a])
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]  # no temporary file left behind
    checkpoint.load(path, [b])
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    with np.load(path) as file:
        assert "small_separable/conv1.depthwise.weight" in file.files


def test_load_refuses_a_file_without_the_network(tmp_path):
    standard, _ = adapt(build("small_standard"), 1, 8, 8, 10)
    separable, _ = adapt(build("small_separable"), 1, 8, 8, 10)
    path = str(tmp_path / "w.npz")
    checkpoint.save(path, [build_model(standard)])
    with pytest.raises(ConvArgumentError, match=r"--load: expected weights for small_separable, got '.*', which holds small_standard"):
        checkpoint.load(path, [build_model(separable)])
    bigger, _ = adapt(build("small_standard"), 3, 8, 8, 10)
    with pytest.raises(ConvArgumentError, match=r"small_standard: conv1.weight: expected shape \(16, 3, 3, 3\), got shape \(16, 1, 3, 3\)"):
        checkpoint.load(path, [build_model(bigger)])


def test_an_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    network, _ = adapt(build("small_standard"), 1, 8, 8, 10)
    model = build_model(network)
    path = str(tmp_path / "w.npz")
    checkpoint.save(path, [model])
    before = open(path, "rb").read()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, [build_model(network, seed=5)])
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]
