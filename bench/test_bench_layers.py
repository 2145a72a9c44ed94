"""pytest-benchmark timings: every available npconv method x every layer of the set, and PyTorch.

::

    pytest bench/ --benchmark-only                            # one table per layer and dtype
    pytest bench/ --benchmark-only --benchmark-json out.json  # and every number as JSON
    pytest bench/ --benchmark-only -k "resnet and float32"    # a selection

The default test run (``testpaths = tests``) does not collect this folder.
Layers, operands, calls and the per-method policy (the reference kernel only
on layers no larger than the seed layer) come from :mod:`npconv.bench`, as
for ``npconv bench``: each npconv method is timed on its fast path
(``count=False``) and on its counting path, whose measured counts are stored
in the JSON's ``extra_info``.  Methods are those installed when the suite
is collected (:func:`npconv.available_methods`).
"""

from __future__ import annotations

import functools

import pytest

import npconv
from npconv import bench, formulas
from npconv.layerset import BENCHMARK_LAYERS


@functools.cache
def _workload(layer: str, dtype: str) -> bench.ConvWorkload:
    return bench.ConvWorkload(BENCHMARK_LAYERS[layer], dtype)


_METHOD_CASES = [
    pytest.param(layer, method, id=f"{layer}-{method}")
    for layer in BENCHMARK_LAYERS
    for method in npconv.available_methods()
    if bench.skip_reason(method, int(formulas.mults(BENCHMARK_LAYERS[layer], "dense"))) is None
]

dtypes = pytest.mark.parametrize("dtype", bench.DTYPES)


@dtypes
@pytest.mark.parametrize("mode", ["fast", "counting"])
@pytest.mark.parametrize("layer, method", _METHOD_CASES)
def test_npconv(benchmark, layer, method, mode, dtype):
    workload = _workload(layer, dtype)
    benchmark.group = f"{layer} {dtype}"
    _, counts = workload.npconv_call(method, count=True)()  # warm-up: a Numba method compiles here
    benchmark.extra_info.update(counts.to_dict())
    call = workload.npconv_call(method, count=mode == "counting")
    call()
    benchmark(call)


@dtypes
@pytest.mark.parametrize("layer", BENCHMARK_LAYERS)
def test_torch(benchmark, layer, dtype):
    torch = pytest.importorskip("torch")
    benchmark.group = f"{layer} {dtype}"
    call = _workload(layer, dtype).torch_call(torch)
    with torch.no_grad():
        call()
        benchmark(call)


@dtypes
def test_numpy_gemm_peak(benchmark, dtype):
    benchmark.group = f"gemm peak {dtype}"
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((bench.GEMM_SIZE,) * 2).astype(dtype) for _ in range(2))
    benchmark.extra_info["size"] = bench.GEMM_SIZE
    benchmark(np.matmul, a, b)
