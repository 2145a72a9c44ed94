"""How many threads a NumPy-based kernel may use: the count NumPy's BLAS is set to.

``npconv bench`` (and a user, with ``threadpoolctl.threadpool_limits``) sets one
thread count for Numba, the BLAS and PyTorch; the kernels that call the BLAS
and also split work of their own across threads (the FFT's ``workers``,
Winograd's transform workers) follow the BLAS's count, so that every method
is compared at the same number of threads.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

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
                # SciPy and others may bundle a BLAS of their own: NumPy's is the one in its wheel
                mine = [lib for lib in found if "numpy" in os.path.basename(os.path.dirname(lib.filepath or ""))]
                _blas = (mine or found or [False])[0]
    if _blas is False:
        return os.cpu_count() or 1
    return max(1, int(_blas.get_num_threads()))


_single_lock = threading.Lock()
_single_users = 0
_single_saved = 1


class blas_single_threaded:
    """A context in which NumPy's BLAS runs each call on one thread, the previous count restored
    when the last concurrent user leaves.

    For a kernel that makes many small GEMMs and runs them on threads of its own: each BLAS call
    then needs no synchronisation with BLAS worker threads, which on a busy machine costs a
    scheduler tick per call.  Process-wide while it lasts (the BLAS has one setting): another
    thread's NumPy products meanwhile run on one thread too.
    """

    def __enter__(self):
        global _single_users, _single_saved
        blas_threads()  # find the BLAS
        with _single_lock:
            if _blas and _single_users == 0:
                _single_saved = int(_blas.get_num_threads())
                if _single_saved != 1:
                    _blas.set_num_threads(1)
            _single_users += 1
        return self

    def __exit__(self, *exc):
        global _single_users
        with _single_lock:
            _single_users -= 1
            if _blas and _single_users == 0 and _single_saved != 1:
                _blas.set_num_threads(_single_saved)
        return False


_executor = None
_executor_lock = threading.Lock()


def pool():
    """Threads a kernel shares work out to (made on first use: one per CPU but the caller's).

    The tasks given to it never wait on one another, so calls from several Python threads at
    once share it without deadlock; NumPy releases the GIL in its loops and BLAS calls.
    """
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                from concurrent.futures import ThreadPoolExecutor

                _executor = ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="npconv")
    return _executor


def shares(total: int, count: int) -> list[tuple[int, int]]:
    """``range(total)`` cut into ``count`` (at most ``total``) contiguous, nearly equal ``(lo, hi)``."""
    count = max(1, min(count, total))
    edges = [total * k // count for k in range(count + 1)]
    return [(edges[k], edges[k + 1]) for k in range(count)]


def in_parallel(function, *arguments, parts: list) -> list:
    """``function(*arguments, *part)`` for each part, the first on this thread, the rest on the pool;
    the results in order.

    The pool's threads run under this thread's NumPy floating-point error settings
    (``np.errstate`` is per thread), so that an invalid operation warns or raises alike in every
    part; and every part has finished before this returns or raises (no part still writes into
    an output after an error has reached the caller).
    """
    if len(parts) == 1:
        return [function(*arguments, *parts[0])]
    import numpy

    errors = numpy.geterr()

    def under_callers_errstate(*part):
        with numpy.errstate(**errors):
            return function(*arguments, *part)

    futures = [pool().submit(under_callers_errstate, *part) for part in parts[1:]]
    try:
        first = function(*arguments, *parts[0])
    finally:
        for future in futures:
            future.exception()  # waits; an error of its own is raised below
    return [first, *(future.result() for future in futures)]


_task_pool = None
_task_pool_lock = threading.Lock()


def run_tasks(kernel, tasks: int, *args) -> tuple[int, int]:
    """Run the compiled ``kernel(first, last, *args)`` over ``tasks`` tasks split evenly between
    Numba's thread count (``numba.set_num_threads``) of Python threads, and sum the (mults, adds)
    tallies each part returns: how the direct kernels run in parallel.

    The kernels release the GIL (``nogil``) and every task writes only its own outputs, so the
    split changes neither the results nor the tallies.  Threads rather than ``prange``: a
    ``prange`` loop calling a loop nest compiles the nest a second time (measured: twice the
    compilation, 14 s instead of 7 s of CPU per dtype for the backward pass).
    """
    import numba  # the direct kernels' thread count; imported only by them

    global _task_pool
    threads = min(numba.get_num_threads(), tasks)
    if threads <= 1:
        return kernel(0, tasks, *args)
    with _task_pool_lock:
        if _task_pool is None:
            _task_pool = ThreadPoolExecutor(max_workers=numba.config.NUMBA_NUM_THREADS,
                                            thread_name_prefix="npconv-direct")
    bounds = [tasks * i // threads for i in range(threads + 1)]
    futures = [_task_pool.submit(kernel, first, last, *args) for first, last in itertools.pairwise(bounds)]
    tallies = [future.result() for future in futures]
    return sum(int(m) for m, _ in tallies), sum(int(a) for _, a in tallies)
