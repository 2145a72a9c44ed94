"""Fewer multiplications by algorithm: the error and the speed of method="winograd*" and "fft".

Run ``python bench/winograd_fft.py`` (``--repeats N``, ``--rounds N``, ``--threads N``,
``--layer NAME``, ``--skip-error``, ``--skip-speed``, ``--json FILE``).  Two tables, float32 throughout:

* **error** -- on every benchmark layer each fast method runs, the float32 result against the
  same layer in float64 (PyTorch's float64 convolution when installed, else npconv's im2col in
  float64): the largest error over the largest output magnitude (``max rel``) and the
  root-mean-square error over the outputs' RMS (``rms rel``), beside im2col's and PyTorch's
  own float32 errors for scale.
* **speed** -- on every 3x3 stride-1 layer of the set, winograd2, winograd4 and winograd (its
  default tile), and on the stride-1 layers with a kernel larger than 3 the FFT, against PyTorch
  and npconv's im2col, timed as ``npconv bench`` times: the contestants interleaved in blocks
  (a pause before each block, so that one library's spinning BLAS or OpenMP threads do not slow
  the next; a warm-up call; ``--repeats`` calls), ``--rounds`` rounds, and each ratio the
  median over rounds of the ratio of block medians *of the same round*.  The stage split (from
  the kernels' own ``stage_times`` hooks) says where a fast method's time goes.

The machine is shared: the load average is printed before and after, and the share of CPU
time other processes took meanwhile; rerun when it is not near zero.  Run with
``MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296`` (see
/work/shared/timing.md) so that freed buffers are reused rather than faulted in afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import npconv
from npconv import formulas, kernels
from npconv.kernels import fft as fft_kernel
from npconv.kernels import winograd as winograd_kernel
from npconv.layerset import BENCHMARK_LAYERS

WINOGRAD = ("winograd2", "winograd4", "winograd")
#: Pause before a block: long enough for the other library's spinning worker threads to sleep.
SETTLE_SECONDS = 0.3


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} CPUs)"


def busy_seconds() -> tuple[float, float] | None:
    """(CPU seconds all processes have spent busy, this process's CPU seconds), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    mine = os.times()
    return (sum(fields[:8]) - fields[3] - fields[4]) / ticks, mine.user + mine.system


def operands(g, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(g.input_shape).astype(dtype), rng.standard_normal(g.weight_shape).astype(dtype),
            rng.standard_normal(g.out_channels).astype(dtype))


def kwargs_of(g) -> dict:
    return dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)


def torch_call(torch, g, x, w, b):
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    (top, bottom), (left, right) = g.padding
    if top == bottom and left == right:
        return lambda: torch.nn.functional.conv2d(xt, wt, bt, g.stride, (top, left), g.dilation, g.groups)

    def padded():  # pragma: no cover - the benchmark layers are symmetric
        return torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (left, right, top, bottom)), wt, bt,
                                          g.stride, 0, g.dilation, g.groups)
    return padded


def methods_for(g) -> list[str]:
    """The fast methods timed on ``g``: Winograd on 3x3 stride-1 layers, FFT on larger kernels."""
    runs = [m for m in WINOGRAD if kernels.supports(m, g) is None]
    if kernels.supports("fft", g) is None and g.kernel_h * g.kernel_w > 9:
        runs.append("fft")
    return runs


# ---------------------------------------------------------------------- error


def float32_result(torch, contestant: str, g, x, w, b) -> np.ndarray:
    if contestant == "torch":
        return torch_call(torch, g, x, w, b)().numpy()
    # FFT on the pointwise layer holds 16,384 filter spectra (244 MiB): more than the default limit
    return npconv.conv2d(x, w, b, **kwargs_of(g), method=contestant, workspace_limit=2**30)


def error_table(torch, names) -> list[dict]:
    rows = []
    for name in names:
        g = BENCHMARK_LAYERS[name]
        x, w, b = operands(g)
        if torch is not None:
            exact = torch_call(torch, g, x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))().numpy()
        else:
            exact = npconv.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kwargs_of(g),
                                  method="im2col")
        contestants = ["im2col", *(["torch"] if torch is not None else []),
                       *(m for m in (*WINOGRAD[:2], "fft") if kernels.supports(m, g) is None)]
        scale, rms = np.abs(exact).max(), np.sqrt(np.mean(exact**2))
        for contestant in contestants:
            error = float32_result(torch, contestant, g, x, w, b).astype(np.float64) - exact
            rows.append({"layer": name, "method": contestant, "max_rel": float(np.abs(error).max() / scale),
                         "rms_rel": float(np.sqrt(np.mean(error**2)) / rms)})
    return rows


# ---------------------------------------------------------------------- speed


def time_layer(torch, name: str, repeats: int, rounds: int) -> dict:
    g = BENCHMARK_LAYERS[name]
    x, w, b = operands(g)
    fast = methods_for(g)
    contestants = {m: (lambda m=m: npconv.conv2d(x, w, b, **kwargs_of(g), method=m)) for m in ("im2col", *fast)}
    if torch is not None:
        contestants = {"torch": torch_call(torch, g, x, w, b), **contestants}
    samples: dict[str, list[list[float]]] = {c: [] for c in contestants}
    for _ in range(rounds):
        for contestant, run in contestants.items():
            time.sleep(SETTLE_SECONDS)
            run()
            block = []
            for _ in range(repeats):
                started = time.perf_counter()
                run()
                block.append(time.perf_counter() - started)
            samples[contestant].append(block)
    medians = {c: [statistics.median(block) for block in blocks] for c, blocks in samples.items()}
    result = {"layer": name, "median_ms": {c: statistics.median(v) * 1e3 for c, v in medians.items()}}
    for reference in ("torch", "im2col"):
        if reference in medians:
            result[f"over_{reference}"] = {
                c: statistics.median(m / r for m, r in zip(medians[c], medians[reference], strict=True))
                for c in medians}
    stages = {}
    for method in fast:
        times: dict[str, float] = {}
        if method == "fft":
            fft_kernel.conv2d(x, w, b, g, count=False, workspace_limit=npconv.get_workspace_limit(),
                              stage_times=times)
        else:
            tile = 2 if method == "winograd2" else 4 if method == "winograd4" else winograd_kernel.default_tile(g)
            winograd_kernel.run(x, w, b, g, tile, method, count=False, workspace_limit=npconv.get_workspace_limit(),
                                stage_times=times)
        stages[method] = {k: v * 1e3 for k, v in times.items()}
    result["stages_ms"] = stages
    dense = int(formulas.mults(g, "dense"))
    result["mults"] = {"dense": dense}
    for method in fast:
        _, counts = npconv.conv2d(x, w, b, **kwargs_of(g), method=method, count=True)
        result["mults"][method] = counts.mults
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per block (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--layer", action="append", choices=sorted(BENCHMARK_LAYERS), help="only this layer")
    parser.add_argument("--threads", type=int, help="BLAS, FFT, Winograd and torch threads (default: all)")
    parser.add_argument("--skip-error", action="store_true", help="only the speed table")
    parser.add_argument("--skip-speed", action="store_true", help="only the error table")
    parser.add_argument("--json", metavar="FILE", help="write every number to FILE")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threads = args.threads or os.cpu_count() or 1
    threadpool_limits(threads, user_api="blas")
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not installed: ratios against im2col only (pip install '.[compare]')")
    else:
        torch.set_num_threads(threads)
    print(f"Threads: {threads} (BLAS, scipy.fft workers, Winograd transform shares"
          f"{', torch' if torch else ''}); numpy {np.__version__}{'; torch ' + torch.__version__ if torch else ''}; "
          f"FFT backend {fft_kernel._backend()[0]}")
    print(f"Load average at the start: {load_average()}")
    busy_before, started = busy_seconds(), time.perf_counter()
    names = args.layer or list(BENCHMARK_LAYERS)
    report: dict = {"threads": threads, "load_start": load_average()}

    if not args.skip_error:
        rows = error_table(torch, names)
        report["error"] = rows
        print("\nError of float32 against float64 (max |error| / max |y|, rms error / rms y)\n")
        print(f"  {'layer':<14} {'method':<10} {'max rel':>9} {'rms rel':>9}")
        for row in rows:
            print(f"  {row['layer']:<14} {row['method']:<10} {row['max_rel']:9.2e} {row['rms_rel']:9.2e}")

    timed = [] if args.skip_speed else [n for n in names if methods_for(BENCHMARK_LAYERS[n])]
    report["speed"] = []
    if timed:
        print("\nSpeed, float32: median ms per call, and ratios of block medians from the same round "
              "(median over rounds)\n")
    for name in timed:
        result = time_layer(torch, name, args.repeats, args.rounds)
        report["speed"].append(result)
        print(f"  {name}: dense mults {result['mults']['dense']:,}")
        header = f"    {'contestant':<10} {'ms':>8} {'/ torch':>8} {'/ im2col':>9}  {'mults':>13}  stages (ms)"
        print(header)
        for contestant, ms in result["median_ms"].items():
            over_torch = result.get("over_torch", {}).get(contestant)
            over_im2col = result["over_im2col"][contestant]
            mults = result["mults"].get(contestant)
            stages = " ".join(f"{k} {v:.1f}" for k, v in result["stages_ms"].get(contestant, {}).items())
            print(f"    {contestant:<10} {ms:8.2f} {'' if over_torch is None else format(over_torch, '8.2f'):>8} "
                  f"{over_im2col:9.2f}  {'' if mults is None else format(mults, ',d'):>13}  {stages}")
    report["load_end"] = load_average()
    print(f"\nLoad average at the end: {load_average()}")
    busy_after = busy_seconds()
    if busy_before and busy_after:
        others = (busy_after[0] - busy_before[0]) - (busy_after[1] - busy_before[1])
        share = max(0.0, others) / (time.perf_counter() - started) / (os.cpu_count() or 1)
        report["other_processes_cpu_share"] = share
        print(f"Other processes used {share:.0%} of the machine's CPU time during the run.")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
