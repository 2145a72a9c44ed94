"""Timing of the reference kernel on the seed layer, beside PyTorch in the same run.

Run with ``pytest bench/ --benchmark-only`` (the default test run does not
collect this folder).  The reference kernel is for teaching, so it is timed
on the seed layer only; compare it with the ``torch`` row of the same group.
"""

from __future__ import annotations

import numpy as np
import pytest

import npconv
from npconv.layerset import BENCHMARK_LAYERS

SEED = BENCHMARK_LAYERS["seed 5x5"]


def _arrays(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SEED.input_shape).astype(dtype)
    w = rng.standard_normal(SEED.weight_shape).astype(dtype)
    b = rng.standard_normal(SEED.bias_shape).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("convention", ["dense", "effective"])
def test_reference_seed_layer(benchmark, dtype, convention):
    benchmark.group = f"seed 5x5 {np.dtype(dtype).name}"
    x, w, b = _arrays(dtype)
    benchmark.pedantic(
        npconv.conv2d, args=(x, w, b),
        kwargs=dict(stride=SEED.stride, padding=SEED.padding, count=convention),
        rounds=3, iterations=1,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_torch_seed_layer(benchmark, dtype):
    torch = pytest.importorskip("torch")
    benchmark.group = f"seed 5x5 {np.dtype(dtype).name}"
    x, w, b = (torch.from_numpy(a) for a in _arrays(dtype))
    benchmark(torch.nn.functional.conv2d, x, w, b, stride=SEED.stride, padding=SEED.padding[0][0])
