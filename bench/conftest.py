"""The benchmark suite's setup: every contestant runs with the same thread count, shown in the header.

The thread counts are set as ``npconv bench`` sets them (Numba's, every BLAS
and OpenMP pool's through threadpoolctl, PyTorch's): all cores, unless
``NPCONV_BENCH_THREADS`` says otherwise.
"""

from __future__ import annotations

import os

import pytest

from npconv import bench


def _threads() -> int:
    return bench.check_threads(int(os.environ.get("NPCONV_BENCH_THREADS", bench.max_threads())),
                               "NPCONV_BENCH_THREADS")


def pytest_report_header(config) -> list[str]:
    torch, status = bench.import_torch()
    with bench.thread_limits(_threads(), torch) as threads:
        return bench.Environment.collect(threads, status).describe().splitlines()


@pytest.fixture(scope="session", autouse=True)
def equal_thread_counts():
    torch, _ = bench.import_torch()
    with bench.thread_limits(_threads(), torch):
        yield
