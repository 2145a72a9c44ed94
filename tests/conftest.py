"""Shared test configuration: Hypothesis profiles, chosen with ``NPCONV_HYPOTHESIS_PROFILE``.

* ``default`` -- what ``pytest -n auto`` runs: few examples per property, so that the
  whole suite stays well under 90 s on a fresh 2-core machine (Numba's
  compilation included);
* ``ci`` -- what CI runs (the README's ``ci:also`` block): 20 times more
  examples per property;
* ``soak`` -- 10,000 examples per property, for a long run by hand.
"""

import os
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "soak",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("NPCONV_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def thread_count():
    """A context manager setting Numba's and every BLAS pool's thread count, then restoring them."""
    numba = pytest.importorskip("numba")
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()

    @contextmanager
    def limit(threads: int):
        before = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            with controller.limit(limits=threads):
                yield
        finally:
            numba.set_num_threads(before)

    return limit
