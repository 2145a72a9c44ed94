"""One training epoch of the course's two networks: npconv's training stack against the same net in PyTorch.

Run ``python bench/train_epoch.py`` (``--threads N``, ``--rounds R``,
``--repeats K``, ``--methods im2col,direct``).  For ``small_standard`` and
``small_separable`` adapted to the 8x8x1 digits (scikit-learn's, or random
images of the same shape without it), in float32, with ``npconv train``'s
defaults (Adam, lr 0.01, batch 32, 1,437 training images):

* ``npconv`` -- one epoch of :func:`npconv.train.loop.train`'s step
  (forward, softmax cross-entropy, backward, Adam) with each method that has
  a backward pass;
* ``torch`` -- one epoch of the same network built by
  :mod:`npconv.train.torch_twin` (same weights at the start, same batches,
  ``torch.optim.Adam``), at the same thread count (torch, BLAS via
  threadpoolctl, and Numba).

Timing follows the project's rules (``timing.md``): everything in one
process, warmed up; contestants interleaved in blocks (``--repeats`` epochs
of one, then of the other, ``--rounds`` times, with a pause between blocks
so spinning worker threads go to sleep); the ratio reported is the median
over rounds of (npconv block median / torch block median); the load
average is printed before and after.  The script re-executes itself with
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set, so that freed
buffers are reused rather than page-faulted in again.  Target: npconv's
fastest method at most 3x PyTorch's epoch time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
TARGET = 3.0
SETTLE_SECONDS = 0.3
NETS = ("small_standard", "small_separable")


def _reexec_with_malloc_settings() -> None:
    if any(os.environ.get(k) != v for k, v in MALLOC_SETTINGS.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_SETTINGS})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for torch, BLAS and Numba alike (default: all cores)")
    parser.add_argument("--rounds", type=int, default=5, help="blocks per contestant (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="epochs per block (default 3)")
    parser.add_argument("--methods", default=None, help="npconv methods (default: each with a backward pass "
                                                         "but the reference loops)")
    args = parser.parse_args(argv)
    _reexec_with_malloc_settings()

    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from npconv import kernels
    from npconv.networks import build
    from npconv.train import data as train_data
    from npconv.train.command import DEFAULTS
    from npconv.train.losses import softmax_cross_entropy
    from npconv.train.model import adapt, build_model
    from npconv.train.optimizers import Adam
    from npconv.train.torch_twin import torch_optimizer, torch_step, torch_twin

    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    methods = (args.methods.split(",") if args.methods else
               [m for m in kernels.available_methods()
                if m != "reference" and hasattr(kernels.load(m), "conv2d_backward")])
    if "direct" in methods:
        import numba

        numba.set_num_threads(args.threads)

    try:
        digits = train_data.load_digits()
        x_all, y_all, source = digits.x_train, digits.y_train, "scikit-learn's digits"
    except ValueError:
        rng = np.random.default_rng(0)
        x_all = rng.standard_normal((1437, 1, 8, 8), dtype=np.float32)
        y_all = rng.integers(0, 10, 1437)
        source = "random 8x8x1 images (no scikit-learn)"
    batch, lr = DEFAULTS["batch_size"], DEFAULTS["lr"]
    order = np.random.default_rng(0).permutation(len(y_all))
    batches = [(np.ascontiguousarray(x_all[order[i:i + batch]]), y_all[order[i:i + batch]])
               for i in range(0, len(y_all), batch)]

    print(f"One training epoch: {len(y_all):,} images of {source}, batch {batch}, Adam lr {lr}, float32; "
          f"{args.threads} threads for torch {torch.__version__}, BLAS and Numba; {args.rounds} rounds of "
          f"{args.repeats} epochs per contestant, interleaved; MALLOC_*_THRESHOLD_ set.")
    print(f"Load average before: {' '.join(f'{v:.2f}' for v in load_before)} on {os.cpu_count()} cores"
          + ("  (busy machine: ratios are noisier)" if load_before[0] > 0.5 else ""))

    def npconv_epoch(model, optimizer):
        def epoch():
            for x, y in batches:
                _, grad = softmax_cross_entropy(model.forward(x), y)
                optimizer.zero_grad()
                model.backward(grad)
                optimizer.step()
        return epoch

    def torch_epoch(module, optimizer):
        def epoch():
            for x, y in batches:
                torch_step(module, optimizer, x, y)
        return epoch

    rows = []
    for net in NETS:
        network, _ = adapt(build(net), 1, 8, 8, 10)
        contestants = {}
        twin = None
        for method in methods:
            model = build_model(network, seed=0, method=method)
            optimizer = Adam(model.parameters(), lr)
            contestants[method] = npconv_epoch(model, optimizer)
            if twin is None:
                twin_module = torch_twin(model)
                twin = torch_epoch(twin_module, torch_optimizer(optimizer, twin_module))
        contestants["torch"] = twin
        for epoch in contestants.values():  # warm-up: Numba compiles, caches fill
            epoch()
        samples = {name: [] for name in contestants}
        for _ in range(args.rounds):
            for name, epoch in contestants.items():
                time.sleep(SETTLE_SECONDS)
                block = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    epoch()
                    block.append(time.perf_counter() - started)
                samples[name].append(statistics.median(block))
        for method in methods:
            ratios = [ours / theirs for ours, theirs in zip(samples[method], samples["torch"], strict=True)]
            rows.append((net, method, statistics.median(samples[method]), statistics.median(samples["torch"]),
                         statistics.median(ratios), min(ratios), max(ratios)))

    print()
    header = ("network", "method", "npconv s/epoch", "torch s/epoch", "ratio (median)", "range", "target")
    table = [header] + [(net, method, f"{ours:.3f}", f"{theirs:.3f}", f"{ratio:.2f}x", f"{lo:.2f}-{hi:.2f}",
                         f"<= {TARGET:g}x {'met' if ratio <= TARGET else 'MISSED'}")
                        for net, method, ours, theirs, ratio, lo, hi in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  " + "  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(row)))
    print(f"\nLoad average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
