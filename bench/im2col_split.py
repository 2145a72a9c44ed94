"""Where method="im2col" spends its time, and how it compares with PyTorch, per benchmark layer.

Run ``python bench/im2col_split.py`` (``--repeats N``, ``--layer NAME``).
For every layer of :data:`npconv.layerset.BENCHMARK_LAYERS`, in float32:

* ``im2col ms`` -- median time of ``npconv.conv2d(..., method="im2col")``,
  the public call a user makes;
* ``torch ms`` and ``ratio`` -- median of ``torch.nn.functional.conv2d`` on
  the same arrays in the same run (blocks of calls alternating with
  npconv's, with a pause between blocks so that neither library's spinning
  worker threads slow the other), and ``im2col / torch`` against the speed
  target;
* ``lower``, ``gemm``, ``bias`` -- median time of each stage inside the
  kernel, from its own ``stage_times`` hook (the kernel is not duplicated),
  summed over its worker threads (so with two workers the stages add up to
  about twice the call's time);
* ``GEMM GF/s`` and ``of peak`` -- ``2 x mults`` (the kernel's own count of
  what its GEMMs multiplied) over the GEMM stage's time (divided by the
  number of workers, whose GEMMs run side by side), as a fraction of
  NumPy's float32 GEMM rate on a 2048 x 2048 product measured in this run
  (``of peak``), and of a bare ``np.matmul`` on fresh contiguous operands of
  one chunk's shapes (``of shape``: what NumPy reaches on those shapes at
  best, so that a small or thin GEMM is not mistaken for a slow call).

Thread counts: NumPy's BLAS and torch use the same number of threads (read
with threadpoolctl when it is installed, else assumed to be all cores, which
is OpenBLAS' default; ``--threads N`` sets both).  The run ends by saying how
much CPU time other processes took meanwhile: on a shared machine, rerun
when that is not near zero.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import npconv
from npconv.kernels import im2col
from npconv.layerset import BENCHMARK_LAYERS

#: Each contender is timed in this many blocks, alternating, the medians taken over all blocks.
ROUNDS = 3
#: Pause before a block: long enough for the other library's spinning worker threads to sleep.
SETTLE_SECONDS = 0.3

#: The targets: median ratio im2col / torch, float32, all cores.
TARGETS = {
    "pointwise 1x1": 1.1,
    "resnet 3x3": 1.5,
    "large 7x7": 1.5,
    "stem s2": 1.5,
    "seed 5x5": 3.0,
    "seed 5x5 p1": 3.0,
}


def blas_threads() -> tuple[int, str]:
    """Threads NumPy's BLAS uses, and how that was found out."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1, "assumed all cores (threadpoolctl not installed)"
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    if not counts:
        return os.cpu_count() or 1, "assumed all cores (threadpoolctl found no BLAS)"
    return max(counts), "from threadpoolctl"


def busy_seconds() -> tuple[float, float] | None:
    """(CPU seconds all processes have spent busy, this process's CPU seconds), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    ticks = os.sysconf("SC_CLK_TCK")
    mine = os.times()
    return (sum(fields[:8]) - idle) / ticks, mine.user + mine.system


def gemm_peak(repeats: int) -> float:
    """NumPy's float32 GEMM rate on a 2048 x 2048 x 2048 product, GFLOP/s."""
    size = 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)
    times = []
    for _ in range(max(3, repeats // 3)):
        started = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9


def same_shape_gemm_rate(g, plan, repeats: int) -> float:
    """GFLOP/s of a bare ``np.matmul`` on fresh contiguous operands shaped like one chunk's GEMM."""
    rng = np.random.default_rng(1)
    reduction = g.in_channels_per_group * g.kernel_h * g.kernel_w
    columns = plan.rows_per_chunk * g.out_width
    a = rng.standard_normal((g.groups, g.out_channels_per_group, reduction), dtype=np.float32)
    b = rng.standard_normal((plan.images_per_chunk, g.groups, reduction, columns), dtype=np.float32)
    out = np.empty((plan.images_per_chunk, g.groups, g.out_channels_per_group, columns), np.float32)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - started)
    return 2 * out.size * reduction / statistics.median(times) / 1e9


def time_layer(name: str, repeats: int, torch) -> dict[str, float]:
    g = BENCHMARK_LAYERS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(g.input_shape, dtype=np.float32)
    w = rng.standard_normal(g.weight_shape, dtype=np.float32)
    b = rng.standard_normal(g.out_channels, dtype=np.float32)
    kwargs = dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)

    def ours():
        return npconv.conv2d(x, w, b, method="im2col", **kwargs)

    run_torch = None
    if torch is not None:
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
        (top, bottom), (left, right) = g.padding
        if top == bottom and left == right:
            def run_torch():
                return torch.nn.functional.conv2d(xt, wt, bt, g.stride, (top, left), g.dilation, g.groups)
        else:  # pragma: no cover - the benchmark layers are symmetric
            def run_torch():
                padded = torch.nn.functional.pad(xt, (left, right, top, bottom))
                return torch.nn.functional.conv2d(padded, wt, bt, g.stride, 0, g.dilation, g.groups)

        np.testing.assert_allclose(ours(), run_torch().numpy(), rtol=1e-3, atol=1e-3)

    plan = im2col.Plan(g, x, w, npconv.get_workspace_limit(), workers=im2col.workers_for(g))
    _, (mults, _, _) = im2col._convolve(x, w, b, plan, count=True)

    def split() -> dict[str, float]:
        stage_times: dict[str, float] = {}
        im2col._convolve(x, w, b, plan, count=False, stage_times=stage_times)
        return stage_times

    contenders = {"im2col": ours, "split": split}
    if run_torch is not None:
        contenders["torch"] = run_torch
    samples: dict[str, list] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for contender, run in contenders.items():
            # BLAS and OpenMP worker threads spin for a while after a call and would
            # slow the next contender down: let them go to sleep, then warm up.
            time.sleep(SETTLE_SECONDS)
            run()
            for _ in range(max(1, repeats // ROUNDS)):
                started = time.perf_counter()
                result = run()
                elapsed = time.perf_counter() - started
                samples[contender].append(result if contender == "split" else elapsed)
    stages = {stage: [s.get(stage, 0.0) for s in samples["split"]] for stage in ("lower", "gemm", "bias")}
    full, reference = samples["im2col"], samples.get("torch", [])
    result = {
        "same_shape_gemm": same_shape_gemm_rate(g, plan, repeats),
        "im2col": statistics.median(full),
        "torch": statistics.median(reference) if reference else float("nan"),
        "gemm_flops": 2 * mults,
        "workers": plan.workers,
        "chunks": plan.chunks,
        "workspace": plan.workspace_bytes,
    }
    result.update({stage: statistics.median(values) for stage, values in stages.items()})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed runs per layer (default 21)")
    parser.add_argument("--layer", action="append", choices=sorted(BENCHMARK_LAYERS),
                        help="only this layer (repeatable)")
    parser.add_argument("--threads", type=int,
                        help="limit BLAS and torch to this many threads (needs threadpoolctl); "
                             "default: all, as the targets are stated")
    args = parser.parse_args(argv)

    if args.threads is not None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            parser.error("--threads needs threadpoolctl (pip install threadpoolctl)")
        threadpool_limits(args.threads, user_api="blas")
    threads, how = blas_threads()
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not installed: no ratios (pip install '.[compare]')")
    else:
        torch.set_num_threads(threads)
    print(f"BLAS threads: {threads} ({how}); torch threads: "
          f"{torch.get_num_threads() if torch else '-'}; numpy {np.__version__}"
          f"{'; torch ' + torch.__version__ if torch else ''}")
    busy_before, started = busy_seconds(), time.perf_counter()
    peak = gemm_peak(args.repeats)
    print(f"NumPy float32 GEMM, 2048 x 2048 x 2048: {peak:.1f} GFLOP/s (the peak below)\n")

    header = (f"{'layer':<14} {'im2col ms':>9} {'torch ms':>9} {'ratio':>6} {'target':>7}  "
              f"{'lower ms':>8} {'gemm ms':>8} {'bias ms':>8}  {'GEMM GF/s':>9} {'of peak':>7} {'of shape':>9}  "
              f"{'chunks':>6} {'workspace':>10}")
    print(header)
    print("-" * len(header))
    missed = []
    for name in args.layer or BENCHMARK_LAYERS:
        r = time_layer(name, args.repeats, torch)
        ratio = r["im2col"] / r["torch"]
        target = TARGETS.get(name)
        verdict = "" if target is None or torch is None else ("ok" if ratio <= target else "MISSED")
        if verdict == "MISSED":
            missed.append(name)
        rate = r["gemm_flops"] / (r["gemm"] / r["workers"]) / 1e9  # the workers' GEMMs run side by side
        print(f"{name:<14} {r['im2col'] * 1e3:9.3f} {r['torch'] * 1e3:9.3f} {ratio:6.2f} "
              f"{'<= ' + format(target, '.1f') if target else '-':>7}  "
              f"{r['lower'] * 1e3:8.3f} {r['gemm'] * 1e3:8.3f} {r['bias'] * 1e3:8.3f}  "
              f"{rate:9.1f} {rate / peak:7.0%} {rate / r['same_shape_gemm']:9.0%}  "
              f"{r['chunks']:6d} {r['workspace'] / 2**20:7.2f} MiB"
              f"  {verdict}")
    peak_after = gemm_peak(args.repeats)
    print(f"\nNumPy float32 GEMM again after the layers: {peak_after:.1f} GFLOP/s")
    busy_after = busy_seconds()
    if busy_before and busy_after:
        others = (busy_after[0] - busy_before[0]) - (busy_after[1] - busy_before[1])
        share = max(0.0, others) / (time.perf_counter() - started) / (os.cpu_count() or 1)
        print(f"Other processes used {share:.0%} of the machine's CPU time during the run.")
        if share > 0.05:
            print("Timings are disturbed by other processes: run it again on a quiet machine.")
    if missed:
        print(f"Targets missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
