"""Weights on disk: one ``.npz`` file for one or more models, written atomically.

Arrays are named ``<network>/<parameter>`` (``small_standard/conv1.weight``,
``small_separable/conv1.depthwise.weight``, batch norm's
``.../bn1.running_mean``), with PyTorch's shapes, plus a ``__meta__`` JSON
string saying which networks, their input shape and class count.  NumPy reads
the file without pickles (``np.load(path)``).

Writing is atomic: the file is written to a temporary file in the same
folder, flushed to disk, then moved over the target with :func:`os.replace`,
so an interrupted run (Ctrl-C, a full disk, a crash) leaves either the old
file or the new one, never half of one.  :func:`check_writable` tries that
folder before training starts.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Sequence

import numpy as np

from npconv.errors import ConvArgumentError
from npconv.train.model import Model

FORMAT = "npconv-train-weights/1"


def check_writable(path: str, argument: str = "--save") -> str:
    """``path`` if a file can be created there (tried, then removed); refused naming ``argument``."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not path or os.path.isdir(path):
        raise ConvArgumentError(argument, "a file path to write the weights to", repr(path))
    if not os.path.isdir(folder):
        raise ConvArgumentError(argument, "a file in an existing folder", f"{path!r} (no folder {folder!r})")
    try:
        descriptor, probe = tempfile.mkstemp(dir=folder, prefix=".npconv-write-test-")
    except OSError as error:
        raise ConvArgumentError(argument, "a file in a folder you can write to",
                                f"{path!r} ({error.strerror})") from None
    os.close(descriptor)
    os.remove(probe)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ConvArgumentError(argument, "a file you can overwrite", f"{path!r} (read-only)")
    return path


def save(path: str, models: Sequence[Model]) -> None:
    """Write every model's parameters and buffers to ``path``, atomically."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "networks": {}}
    for model in models:
        for name, value in model.state().items():
            arrays[f"{model.name}/{name}"] = value
        meta["networks"][model.name] = {"input_shape": list(model.network.input_shape),
                                        "output_shape": list(model.network.output_shape),
                                        "parameters": model.parameter_count()}
    arrays["__meta__"] = np.array(json.dumps(meta))
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load(path: str, models: Sequence[Model], argument: str = "--load") -> None:
    """Set each model's weights from ``path`` (written by :func:`save`); every array checked first."""
    try:
        with np.load(path, allow_pickle=False) as file:
            stored = {name: file[name] for name in file.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ConvArgumentError(argument, "a weights file written by npconv train --save",
                                f"{path!r}: {error}") from None
    if "__meta__" not in stored or json.loads(str(stored["__meta__"])).get("format") != FORMAT:
        raise ConvArgumentError(argument, "a weights file written by npconv train --save",
                                f"{path!r}, which has no {FORMAT} header")
    held = sorted({name.split("/", 1)[0] for name in stored if "/" in name})
    for model in models:
        prefix = f"{model.name}/"
        state = {name.removeprefix(prefix): value for name, value in stored.items() if name.startswith(prefix)}
        if not state:
            raise ConvArgumentError(argument, f"weights for {model.name}",
                                    f"{path!r}, which holds {', '.join(held) or 'no network'}")
        model.load_state(state, f"{argument} {path}: {model.name}", check_finite=True)
