"""The benchmark layer set: the same float32 layers for every speed comparison.

From the project's design notes.  ``seed 5x5`` is the course problem's layer exactly as
``npconv explain`` and ``npconv check`` read it (padding 0); ``seed 5x5 p1`` is the same layer
with padding 1 (the reading the course's answer sheet used).  Each entry is a validated
:class:`~npconv.geometry.ConvGeometry` (with bias, as in the networks these
layers come from).  Pure Python.
"""

from __future__ import annotations

from npconv.geometry import ConvGeometry

#: name -> (N, C_in, H=W, C_out, K, stride, padding, groups)
_TABLE: dict[str, tuple[int, int, int, int, int, int, int, int]] = {
    "seed 5x5": (1, 3, 14, 256, 5, 1, 0, 1),
    "seed 5x5 p1": (1, 3, 14, 256, 5, 1, 1, 1),
    "resnet 3x3": (8, 64, 56, 64, 3, 1, 1, 1),
    "stem s2": (8, 3, 224, 32, 3, 2, 1, 1),
    "depthwise 3x3": (8, 128, 56, 128, 3, 1, 1, 128),
    "pointwise 1x1": (8, 128, 56, 128, 1, 1, 0, 1),
    "large 7x7": (4, 32, 64, 32, 7, 1, 3, 1),
}

BENCHMARK_LAYERS: dict[str, ConvGeometry] = {
    name: ConvGeometry.from_layer((n, c_in, size, size), c_out, k, stride=s, padding=p, groups=g, bias=True)
    for name, (n, c_in, size, c_out, k, s, p, g) in _TABLE.items()
}
