"""Networks in TOML files: :func:`load`, :func:`loads` and :func:`dumps`.

The format mirrors the Python classes of :mod:`npconv.network` -- one table
per layer, ``kind`` naming the class and the other keys its arguments::

    name = "tiny"
    description = "optional"
    input_shape = [1, 3, 8, 8]     # N, C, H, W

    [[layers]]
    kind = "conv2d"
    name = "conv1"                 # optional
    filters = 16
    kernel = 3                     # or [KH, KW]
    padding = "same"               # P, [PH, PW], [[top, bottom], [left, right]], "same", "valid"
    bias = false

    [[layers]]
    kind = "residual"
    name = "block1"

    [[layers.main]]                # the residual block's main path, layer by layer
    kind = "conv2d"
    filters = 16
    kernel = 3
    padding = 1

    [[layers]]                     # an empty shortcut is the identity
    kind = "relu"

A graph names what a layer reads (see :mod:`npconv.network`): ``"input"`` or
the name of an earlier layer::

    [[layers]]
    kind = "from"                  # the next layer reads block1's output, not the previous layer's
    source = "block1"

    [[layers]]
    kind = "add"                   # also "concat" (with axis = 1), and "reuse" with source = "conv1"
    inputs = ["block1", "conv3"]

Errors name the file, the line and the key (``net.toml:12: layers[1].filters: expected ...``), as
claims files' do (:mod:`npconv.toml_file`, which also bounds the file's size and nesting); residual
blocks nest at most :data:`~npconv.limits.MAX_LAYER_NESTING` deep.
Pure Python.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

from npconv import toml_file
from npconv.errors import ConvArgumentError, echo
from npconv.limits import MAX_LAYER_NESTING, MAX_SIZE
from npconv.network import LAYER_KINDS, Layer, Network, Residual

_TOP_LEVEL_KEYS = ("name", "description", "input_shape", "layers")
#: Keys of a layer table that hold nested layer tables (``[[layers.main]]``).
_NESTED = ("main", "shortcut")


# ---------------------------------------------------------------------- reading


def _check_sizes(value: object, path: str) -> object:
    """``value`` (an int, or a list of them, as a layer's sizes are written) if every int in it is at most
    :data:`~npconv.limits.MAX_SIZE`, so that every count of the network prints."""
    if isinstance(value, list):
        for item in value:
            _check_sizes(item, path)  # TOML nesting is bounded: at most a pair of pairs here
    elif isinstance(value, int) and not isinstance(value, bool) and value > MAX_SIZE:
        raise ConvArgumentError(path, f"sizes of at most {MAX_SIZE:,}", echo(value))
    return value


def _layer(table: object, path: str, nesting: int = 0) -> Layer:
    if not isinstance(table, dict):
        raise ConvArgumentError(path, "a table with a 'kind' key", echo(table))
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in LAYER_KINDS:
        raise ConvArgumentError(f"{path}.kind", f"one of {', '.join(LAYER_KINDS)}", echo(kind))
    cls = LAYER_KINDS[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    arguments = {}
    for key, value in table.items():
        if key == "kind":
            continue
        if key not in fields:
            raise ConvArgumentError(f"{path}.{key}", f"a key of a {kind} layer ({', '.join(fields)})",
                                    f"unknown key {echo(key)}")
        if cls is Residual and key in _NESTED:
            if not isinstance(value, list):
                raise ConvArgumentError(f"{path}.{key}", f"an array of layer tables ([[layers.{key}]])",
                                        echo(value))
            if value and nesting >= MAX_LAYER_NESTING:
                raise ConvArgumentError(f"{path}.{key}", f"residual blocks nested at most {MAX_LAYER_NESTING} deep",
                                        f"a block at depth {nesting + 1}")
            value = tuple(_layer(item, f"{path}.{key}[{i}]", nesting + 1) for i, item in enumerate(value))
        arguments[key] = _check_sizes(value, f"{path}.{key}")
    missing = [name for name, f in fields.items()
               if name not in arguments and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConvArgumentError(f"{path}.{missing[0]}", f"a value: a {kind} layer needs {', '.join(missing)}",
                                "nothing")
    return cls(**arguments)


def _network(data: dict, default_name: str) -> Network:
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            raise ConvArgumentError(key, f"a top-level key ({', '.join(_TOP_LEVEL_KEYS)})", f"unknown key {echo(key)}")
    for key in ("input_shape", "layers"):
        if key not in data:
            raise ConvArgumentError(key, "a value" + (" [N, C, H, W]" if key == "input_shape" else
                                                      ": one [[layers]] table per layer"), "nothing")
    layers = data["layers"]
    if not isinstance(layers, list):
        raise ConvArgumentError("layers", "an array of tables: one [[layers]] table per layer", echo(layers))
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise ConvArgumentError(key, "a string", echo(data[key]))
    return Network(
        data.get("name", default_name), _check_sizes(data["input_shape"], "input_shape"),
        tuple(_layer(table, f"layers[{i}]") for i, table in enumerate(layers)),
        data.get("description", ""),
    )


def loads(text: str, source: str = "<string>") -> Network:
    """The network described by TOML ``text``; errors name ``source``, the line and the key."""
    data = toml_file.loads(text, source)
    try:
        return _network(data, Path(source).stem)
    except ConvArgumentError as error:
        raise toml_file.error_at(source, toml_file.KeyLines(text).line_of_path(error.argument), error) from None


def load(path: str | Path, argument: str = "FILE") -> Network:
    """The network described by the TOML file at ``path``; a file that cannot be read (missing, not a
    regular file, too large, not UTF-8) is a :class:`~npconv.errors.FileError` naming ``argument``."""
    return loads(toml_file.read(path, argument, "a readable network file (TOML)"), str(path))


# ---------------------------------------------------------------------- writing


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _layer_tables(layer: Layer, header: str) -> Iterator[str]:
    yield f"\n[[{header}]]"
    yield f"kind = {_value(layer.kind)}"
    nested = []
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if isinstance(layer, Residual) and f.name in _NESTED and value:
            nested.append((f.name, value))
        elif value != f.default:
            yield f"{f.name} = {_value(value)}"
    for key, layers in nested:
        for inner in layers:
            yield from _layer_tables(inner, f"{header}.{key}")


def dumps(network: Network) -> str:
    """``network`` as TOML text that :func:`loads` reads back to an equal network."""
    lines = [f"name = {_value(network.name)}"]
    if network.description:
        lines.append(f"description = {_value(network.description)}")
    lines.append(f"input_shape = {_value(network.input_shape)}  # N, C, H, W")
    for layer in network.layers:
        lines += _layer_tables(layer, "layers")
    return "\n".join(lines) + "\n"
