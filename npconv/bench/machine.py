"""The machine and its threads: one thread count for every contestant, and what the numbers were measured on.

:func:`thread_limits` sets Numba's, every BLAS pool's and PyTorch's thread
count alike; :class:`Environment` records the CPU, the libraries, the thread
counts in force and the load average (and says when the machine was busy).
:func:`import_torch` and :func:`import_pyplot` load the optional contestant
and the plotting library.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from npconv.errors import ConvArgumentError

#: Above this 1-minute load average per core at the start, the report warns that times are noisy.
BUSY_LOAD_PER_CORE = 0.25


def max_threads() -> int:
    """The most threads Numba can run here (``NUMBA_NUM_THREADS``, all cores by default)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


def check_threads(threads: object, argument: str = "threads") -> int:
    """``threads`` as an int from 1 to :func:`max_threads`."""
    limit = max_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= limit:
        raise ConvArgumentError(argument, f"an int from 1 to {limit} (this machine's threads)", repr(threads))
    return threads


# ---------------------------------------------------------------------- optional contestants


def import_torch() -> tuple[ModuleType | None, str]:
    """``(torch, version)`` or ``(None, "PyTorch not available (why)")``."""
    try:
        import torch
        import torch.nn.functional  # the conv2d contestant
    except ImportError as error:
        return None, f"PyTorch not available ({error})"
    return torch, torch.__version__


def import_pyplot(argument: str = "plot") -> ModuleType:
    """matplotlib's pyplot on the file-only Agg backend, or a clear error naming ``argument``."""
    try:
        import matplotlib
    except ImportError as error:
        raise ConvArgumentError(
            argument, "matplotlib installed: pip install 'npconv[plot]' (or pip install matplotlib)",
            f"{error}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


# ---------------------------------------------------------------------- threads and environment


def _numpy_blas_pools() -> list[dict]:
    """threadpoolctl's records of the BLAS NumPy calls (falling back to every BLAS loaded)."""
    from threadpoolctl import threadpool_info

    blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    return [info for info in blas if "numpy" in info.get("filepath", "")] or blas


@contextmanager
def thread_limits(threads: int, torch: ModuleType | None = None) -> Iterator[dict[str, int | None]]:
    """Run every contestant with ``threads`` threads; yield the counts actually in force.

    Sets Numba's (``numba.set_num_threads``), every BLAS and OpenMP pool's
    (threadpoolctl, which also covers the libraries torch loaded) and
    torch's (``torch.set_num_threads``); restores them on exit.
    """
    import numba
    from threadpoolctl import threadpool_limits

    previous_numba = numba.get_num_threads()
    previous_torch = torch.get_num_threads() if torch is not None else None
    numba.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            pools = _numpy_blas_pools()
            yield {
                "numba": numba.get_num_threads(),
                "blas": pools[0]["num_threads"] if pools else None,
                "torch": torch.get_num_threads() if torch is not None else None,
            }
    finally:
        numba.set_num_threads(previous_numba)
        if torch is not None:
            torch.set_num_threads(previous_torch)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _numpy_blas() -> str:
    """``"scipy-openblas 0.3.31 (openblas, SkylakeX)"`` from ``numpy.show_config`` and threadpoolctl."""
    name = version = ""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name, version = blas.get("name", ""), blas.get("version", "")
    except Exception:  # older NumPy without mode="dicts", or a build that does not say
        pass
    pools = _numpy_blas_pools()
    if pools:
        pool = pools[0]
        name = name or pool.get("prefix", "")
        version = version or pool.get("version") or ""
        detail = ", ".join(str(pool[k]) for k in ("internal_api", "architecture") if pool.get(k))
        return f"{name} {version} ({detail})".replace("  ", " ").strip()
    return f"{name} {version}".strip() or "unknown BLAS"


@dataclass(frozen=True)
class Environment:
    """What the numbers were measured on."""

    cpu: str
    cores: int
    python: str
    numpy: str
    blas: str
    numba: str
    torch: str
    threads: Mapping[str, int | None]
    #: the 1-minute load average when the run started (None where the OS does not say)
    load_average: float | None = None

    @property
    def busy(self) -> bool:
        """Other processes were using a good share of the CPU: the times will be noisy."""
        return self.load_average is not None and self.load_average > BUSY_LOAD_PER_CORE * self.cores

    @classmethod
    def collect(cls, threads: Mapping[str, int | None], torch_version: str) -> Environment:
        import numba

        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        try:
            load_average = os.getloadavg()[0]
        except (AttributeError, OSError):
            load_average = None
        return cls(_cpu_model(), cores, platform.python_version(), np.__version__, _numpy_blas(),
                   numba.__version__, torch_version, dict(threads), load_average)

    def describe(self) -> str:
        """Two lines: the machine and libraries, and the thread counts in force."""
        names = {"numba": "Numba", "blas": "BLAS", "torch": "PyTorch"}
        threads = ", ".join(f"{names.get(name, name)} {count}" for name, count in self.threads.items()
                            if count is not None)
        return (f"Environment: {self.cpu}, {self.cores} cores | Python {self.python} | NumPy {self.numpy}, "
                f"BLAS {self.blas} | Numba {self.numba} | PyTorch {self.torch}\n"
                f"Threads: {threads}" + ("" if self.load_average is None else
                                         f" | load average {self.load_average:.2f} at the start"))

    def to_json_dict(self) -> dict[str, object]:
        return {"cpu": self.cpu, "cores": self.cores, "python": self.python, "numpy": self.numpy,
                "blas": self.blas, "numba": self.numba, "torch": self.torch, "threads": dict(self.threads),
                "load_average": self.load_average}


