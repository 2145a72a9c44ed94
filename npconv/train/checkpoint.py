"""Weights on disk: one ``.npz`` file for one or more models, written atomically.

Arrays are named ``<network>/<parameter>`` (``small_standard/conv1.weight``,
``small_separable/conv1.depthwise.weight``, batch norm's
``.../bn1.running_mean``), with PyTorch's shapes, plus a ``__meta__`` JSON
string saying which networks, their input shape and class count.  NumPy reads
the file without pickles (``np.load(path)``).

Writing is atomic (:func:`npconv.files.write_atomically`): an interrupted
run (Ctrl-C, a full disk, a crash) leaves either the old file or the new
one, never half of one; ``npconv train`` checks the path
(:func:`npconv.files.check_output`) before training starts.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence

import numpy as np

from npconv import files
from npconv.errors import ConvArgumentError
from npconv.train.model import Model

FORMAT = "npconv-train-weights/1"


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
    files.write_atomically(path, lambda file: np.savez(file, **arrays), "--save", binary=True)


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
