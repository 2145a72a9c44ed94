"""Data for training: scikit-learn's bundled digits, or any ``.npz`` file laid out like MNIST's.

:func:`load_digits` -- the 1,797 8x8 handwritten digits that come with
scikit-learn (``sklearn.datasets.load_digits``: read from the installed
package, no download), split once, stratified, 80 / 20 with a fixed
``random_state``, so every run trains and tests on the same images.

:func:`load_npz` -- a file with arrays ``x_train, y_train, x_test, y_test``,
the layout of the common MNIST and Fashion-MNIST ``.npz`` files.  Images may
be ``NHW`` (one channel), ``NHWC`` or ``NCHW``; the layout read is reported.
Everything is checked before training starts: missing or misnamed arrays,
image and label counts that differ, labels that are not integers in range,
NaN or infinity in the images.

Images are standardised with the training set's per-channel mean and
standard deviation -- the test set with the same numbers -- which makes the
pixels' scale (0..16 for the digits, 0..255 for MNIST) irrelevant.
:func:`batches` shuffles from a seed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from npconv.errors import ConvArgumentError

#: The arrays a data file must hold.
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")

#: Fixed split of the digits: 20 % for testing, stratified by class, this ``random_state``.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0

#: How to install what ``npconv train`` needs beyond NumPy.
INSTALL_HINT = "pip install 'npconv[train]' (scikit-learn for the digits, tqdm for the progress bar)"


@dataclass(frozen=True)
class Dataset:
    """Standardised images ``(N, C, H, W)`` float32 and labels ``(N,)`` int64, train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    #: what was read, in words, e.g. "scikit-learn's digits, 1,797 images 8x8x1"
    description: str
    #: how the arrays were read, e.g. "NHW (one channel)"
    layout: str
    #: how the pixels were scaled before standardising, in words
    scaling: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return self.x_train.shape[1:]

    def subset(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` training and ``test`` test images (for quick runs)."""
        return Dataset(self.x_train[:train], self.y_train[:train], self.x_test[:test], self.y_test[:test],
                       self.classes, self.description, self.layout, self.scaling)

    def summary(self) -> str:
        c, h, w = self.image_shape
        return (f"{self.description}: {len(self.y_train):,} train / {len(self.y_test):,} test images "
                f"{h}x{w}x{c}, {self.classes} classes; read as {self.layout}; {self.scaling}")


def _standardised(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True)
    std[std == 0] = 1.0
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _import_sklearn_digits():
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ConvArgumentError(
            "--data", f"scikit-learn for the default data set (the digits): {INSTALL_HINT}, or --data FILE.npz",
            "no scikit-learn installed") from None
    return sklearn_load_digits, train_test_split


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits, split 80 / 20 stratified with ``random_state`` 0, standardised."""
    sklearn_load_digits, train_test_split = _import_sklearn_digits()
    digits = sklearn_load_digits()
    images = digits.images.astype(np.float64)[:, None]  # (1797, 1, 8, 8), pixel values 0..16
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=DIGITS_SPLIT_SEED)
    x_train, x_test = _standardised(x_train, x_test)
    return Dataset(x_train, y_train, x_test, y_test, 10,
                   f"scikit-learn's digits ({len(labels):,} images, stratified "
                   f"{1 - DIGITS_TEST_FRACTION:.0%} / {DIGITS_TEST_FRACTION:.0%} split, random_state "
                   f"{DIGITS_SPLIT_SEED})", "NHW (one channel)",
                   "pixels 0..16, standardised with the training set's mean and std")


# ---------------------------------------------------------------------- npz files


def _layout(shape: tuple[int, ...], name: str) -> str:
    """``"NHW"``, ``"NHWC"`` or ``"NCHW"`` for an image array of ``shape``."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) == 4:
        first, last = shape[1] <= 4, shape[3] <= 4
        if first and (not last or shape[1] < shape[3]):
            return "NCHW"
        if last:
            return "NHWC"
    raise ConvArgumentError(name, "images NHW (one channel), NHWC or NCHW with 1 to 4 channels",
                            f"shape {shape}")


def _to_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHW":
        return x[:, None]
    if layout == "NHWC":
        return x.transpose(0, 3, 1, 2)
    return x


def _images(x: np.ndarray, name: str) -> tuple[np.ndarray, str, str]:
    """Float64 NCHW images, their layout and what was done to the pixels."""
    if x.dtype.kind in "iub":
        scaled, scaling = x.astype(np.float64), f"{x.dtype} pixels converted to float"
    elif x.dtype.kind == "f":
        scaled, scaling = x.astype(np.float64), f"{x.dtype} pixels"
        bad = ~np.isfinite(scaled)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            what = "NaN" if np.isnan(scaled).any() else "infinity"
            raise ConvArgumentError(name, "finite pixel values",
                                    f"{int(bad.sum()):,} non-finite values ({what}), the first in image {first}")
    else:
        raise ConvArgumentError(name, "an array of integer or float pixels", f"dtype {x.dtype}")
    layout = _layout(x.shape, name)
    return _to_nchw(scaled, layout), layout, scaling


def _labels(y: np.ndarray, name: str, count: int, images: str) -> np.ndarray:
    if y.ndim != 1:
        raise ConvArgumentError(name, "a 1-D array of class labels", f"shape {y.shape}")
    if len(y) != count:
        raise ConvArgumentError(name, f"{count:,} labels, one per image of {images}", f"{len(y):,}")
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise ConvArgumentError(name, "integer class labels 0, 1, 2, ...", f"dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ConvArgumentError(name, "class labels >= 0", f"label {int(y.min())}")
    return y.astype(np.int64)


def load_npz(path: str, argument: str = "--data") -> Dataset:
    """The arrays ``x_train, y_train, x_test, y_test`` of ``path``, checked, scaled and standardised."""
    try:
        with np.load(path, allow_pickle=False) as file:
            found = list(file.files)
            missing = [name for name in NPZ_ARRAYS if name not in found]
            if missing:
                raise ConvArgumentError(
                    argument, f"a .npz file with arrays {', '.join(NPZ_ARRAYS)} (as the MNIST npz files)",
                    f"{path!r} with arrays {', '.join(found) or 'none'}; missing {', '.join(missing)}")
            arrays = {name: file[name] for name in NPZ_ARRAYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if isinstance(error, ConvArgumentError):
            raise
        raise ConvArgumentError(argument, "a readable .npz file (numpy.savez)", f"{path!r}: {error}") from None

    x_train, layout, scaling = _images(arrays["x_train"], "x_train")
    x_test, test_layout, _ = _images(arrays["x_test"], "x_test")
    if test_layout != layout or x_test.shape[1:] != x_train.shape[1:]:
        raise ConvArgumentError("x_test", f"images of the shape of x_train's ({layout} {arrays['x_train'].shape[1:]})",
                                f"{test_layout} {arrays['x_test'].shape[1:]}")
    if len(x_train) < 2 or len(x_test) < 1:
        raise ConvArgumentError("x_train" if len(x_train) < 2 else "x_test",
                                "at least 2 training images and 1 test image", f"{len(x_train)} and {len(x_test)}")
    y_train = _labels(arrays["y_train"], "y_train", len(x_train), "x_train")
    y_test = _labels(arrays["y_test"], "y_test", len(x_test), "x_test")
    classes = int(y_train.max()) + 1
    if classes < 2:
        raise ConvArgumentError("y_train", "labels of at least 2 classes", f"only class {classes - 1}")
    if y_test.max() >= classes:
        raise ConvArgumentError("y_test", f"labels 0 to {classes - 1}, the classes of y_train",
                                f"label {int(y_test.max())}")
    x_train, x_test = _standardised(x_train, x_test)
    c = x_train.shape[1]
    layout_text = {"NHW": "NHW (one channel)", "NHWC": f"NHWC ({c} channels last)",
                   "NCHW": f"NCHW ({c} channels first)"}[layout]
    return Dataset(x_train, y_train, x_test, y_test, classes, f"{path}", layout_text,
                   f"{scaling}, standardised with the training set's mean and std")


def batches(count: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(count)`` once in a random order; the last batch may be smaller."""
    order = rng.permutation(count)
    for start in range(0, count, batch_size):
        yield order[start:start + batch_size]
