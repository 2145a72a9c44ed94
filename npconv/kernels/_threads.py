"""How many threads a NumPy-based kernel may use: the count NumPy's BLAS is set to.

``npconv bench`` (and a user, with ``threadpoolctl.threadpool_limits``) sets one
thread count for Numba, the BLAS and PyTorch; the kernels that call the BLAS
and also split work of their own across threads (the FFT's ``workers``,
Winograd's transform workers) follow the BLAS's count, so that every method
is compared at the same number of threads.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_blas = None  # the threadpoolctl controller of NumPy's BLAS, found on first use


def blas_threads() -> int:
    """Threads NumPy's BLAS uses now (all CPUs when threadpoolctl cannot tell)."""
    global _blas
    if _blas is None:
        with _lock:
            if _blas is None:
                import numpy  # noqa: F401  (the BLAS must be loaded for threadpoolctl to see it)
                from threadpoolctl import ThreadpoolController

                found = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
                _blas = found[0] if found else False
    if _blas is False:
        return os.cpu_count() or 1
    return max(1, int(_blas.get_num_threads()))
