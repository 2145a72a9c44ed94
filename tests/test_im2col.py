"""The im2col + GEMM kernel's own paths: the 1x1 layer without lowering, the chunking within the
workspace limit, and the workspace it reports.  Outputs and counts over the whole layer space are
tested for every method in test_cross_method.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npconv
from npconv import formulas
from npconv.errors import ConvMemoryError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.kernels import im2col
from npconv.memory import format_bytes

from oracles import assert_conv_close, assert_counts_equal_formulas
from strategies import layers

DTYPES = [np.float32, np.float64]
METHOD = "im2col"


def column_matrix_bytes(g: ConvGeometry, itemsize: int) -> int:
    return formulas.im2col_workspace_bytes(g, itemsize).value


# ---------------------------------------------------------------------- outputs


@given(layer=layers(pointwise=True, max_batch=3, max_group_channels=8), dtype=st.sampled_from(DTYPES))
def test_pointwise_is_a_gemm_without_lowering(layer, dtype):
    x, w, b = layer.arrays(dtype)
    y, counts = npconv.pointwise_conv2d(x, w, b, method=METHOD, count=True)
    assert y.dtype == dtype
    assert_conv_close(y, x, w, b, layer.geometry)
    assert_counts_equal_formulas(counts, layer.geometry, METHOD, "dense")
    assert counts.workspace_bytes == 0  # x itself is the column matrix


def test_hand_computed_example():
    # the reference tests' example: 1..9 in a 3x3 image, a 2x2 kernel of ones, padding 1 on top
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 2, 2))
    y, counts = npconv.conv2d(x, w, np.array([0.5]), padding=((1, 0), (0, 0)), method=METHOD, count=True)
    expected = np.array([[1 + 2, 2 + 3], [1 + 2 + 4 + 5, 2 + 3 + 5 + 6], [4 + 5 + 7 + 8, 5 + 6 + 8 + 9]]) + 0.5
    np.testing.assert_array_equal(y[0, 0], expected)
    # 6 outputs x 4 taps, all multiplied; the top row's 2 windows have 2 taps each on the padding
    assert (counts.mults, counts.adds, counts.padded_mults) == (24, 24, 4)


# ---------------------------------------------------------------------- counting


def test_count_true_is_dense():
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    _, counts = npconv.conv2d(x, w, padding=1, method=METHOD, count=True)
    assert counts.convention == "dense"
    # 4x4 outputs x 9 taps; along each axis the outputs see 2 + 3 + 3 + 2 = 10 real taps
    assert (counts.mults, counts.padded_mults) == (16 * 9, 16 * 9 - 10 * 10)


# ---------------------------------------------------------------------- workspace


def smallest_chunk_bytes(g: ConvGeometry, itemsize: int) -> int:
    """One image, one output row: its column matrix plus its zero-padded input rows."""
    columns = g.in_channels * g.kernel_h * g.kernel_w * g.out_width * itemsize
    if not g.has_padding:
        return columns
    rows_read = (g.kernel_h - 1) * g.dilation[0] + 1
    return columns + g.in_channels * rows_read * (g.width + sum(g.padding[1])) * itemsize


LAYER = dict(stride=(2, 1), padding=((2, 1), (0, 3)), dilation=(1, 2), groups=2)


def _layer_arrays(dtype=np.float64):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 11, 9)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 2)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    return x, w, b, ConvGeometry.from_shapes(x.shape, w.shape, b.shape, **LAYER)


def test_unchunked_workspace_is_the_column_matrix_and_padded_copy():
    x, w, b, g = _layer_arrays()
    _, counts = npconv.conv2d(x, w, b, **LAYER, method=METHOD, count=True)
    padded_copy = g.batch * g.in_channels * ((g.out_height - 1) * 2 + 3) * (9 + 3) * 8
    assert counts.workspace_bytes == column_matrix_bytes(g, 8) + padded_copy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows_per_chunk", [1, 2, 3])
def test_tiny_workspace_limit_chunks_by_rows_and_gives_the_same_answer(dtype, rows_per_chunk):
    x, w, b, g = _layer_arrays(dtype)
    whole = npconv.conv2d(x, w, b, **LAYER, method=METHOD)
    limit = smallest_chunk_bytes(g, x.itemsize) * rows_per_chunk  # less than one image
    y, counts = npconv.conv2d(x, w, b, **LAYER, method=METHOD, count=True, workspace_limit=limit)
    assert counts.workspace_bytes <= limit
    assert counts.workspace_bytes < column_matrix_bytes(g, x.itemsize) / g.batch  # rows of one image
    plan = im2col.Plan(g, x, w, limit)
    assert plan.rows_per_chunk < g.out_height and plan.chunks > g.batch
    assert_conv_close(y, x, w, b, g)
    np.testing.assert_allclose(y, whole, rtol=50 * np.finfo(dtype).eps, atol=50 * np.finfo(dtype).eps)
    assert_counts_equal_formulas(counts, g, METHOD, "dense")


@given(layer=layers(), dtype=st.sampled_from(DTYPES), share=st.floats(0, 1))
def test_any_workspace_limit_that_fits_gives_the_same_answer_and_counts(layer, dtype, share):
    x, w, b = layer.arrays(dtype)
    g = layer.geometry
    smallest = smallest_chunk_bytes(g, x.itemsize)
    limit = smallest + int(share * column_matrix_bytes(g, x.itemsize))
    y, counts = npconv.conv2d(x, w, b, **layer.kwargs(), method=METHOD, count=True, workspace_limit=limit)
    assert counts.workspace_bytes <= limit
    assert_conv_close(y, x, w, b, g)
    assert_counts_equal_formulas(counts, g, METHOD, "dense")


def column_row_bytes(g: ConvGeometry, itemsize: int) -> int:
    """One image, one output row of the column matrix alone: what the tap-by-tap gather needs."""
    return g.in_channels * g.kernel_h * g.kernel_w * g.out_width * itemsize


def test_impossible_limit_is_refused_with_the_estimate_and_the_limit():
    x, w, b, g = _layer_arrays()
    needed = column_row_bytes(g, 8)  # below the padded copy's chunk, the gather still fits this
    with pytest.raises(ConvMemoryError) as caught:
        npconv.conv2d(x, w, b, **LAYER, method=METHOD, workspace_limit=needed - 1)
    message = str(caught.value)
    assert caught.value.argument == "workspace_limit"
    assert f"{needed:,} bytes" in message  # the estimate, exact
    assert format_bytes(needed - 1) in message  # the limit
    assert "one image and one output row" in message
    # and exactly the estimate is enough
    npconv.conv2d(x, w, b, **LAYER, method=METHOD, workspace_limit=needed)


def test_below_the_padded_copy_the_column_matrix_is_gathered_tap_by_tap():
    """A limit under one row's padded copy runs by gathering only the columns read (exact counts)."""
    x, w, b, g = _layer_arrays()
    limit = smallest_chunk_bytes(g, 8) - 1
    y, counts = npconv.conv2d(x, w, b, **LAYER, method=METHOD, count=True, workspace_limit=limit)
    assert counts.workspace_bytes <= limit
    assert_conv_close(y, x, w, b, g)
    _, dense = npconv.conv2d(x, w, b, **LAYER, method="reference", count="dense")
    assert (counts.mults, counts.adds, counts.padded_mults) == (dense.mults, dense.adds, dense.padded_mults)


def test_a_tiny_input_with_huge_padding_copies_only_what_it_reads():
    """A 3x3 output of a 1x1 input, dilation 2**30: the padded rows alone would take 16 GiB; the column
    matrix is 3 x 9 x 3 values."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 1, 1)), rng.standard_normal((4, 3, 3, 3))
    dilation = 2**30
    y, counts = npconv.conv2d(x, w, padding=dilation + 1, dilation=dilation, method=METHOD, count=True)
    expected, dense = npconv.conv2d(x, w, padding=dilation + 1, dilation=dilation, count="dense")
    assert y.shape == (2, 4, 3, 3) and counts.workspace_bytes < 2**16
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert (counts.mults, counts.padded_mults) == (dense.mults, dense.padded_mults)


def test_process_wide_workspace_limit_is_honoured():
    x, w, b, g = _layer_arrays()
    needed = smallest_chunk_bytes(g, 8)
    previous = npconv.set_workspace_limit(2 * needed)
    try:
        y, counts = npconv.conv2d(x, w, b, **LAYER, method=METHOD, count=True)
        assert counts.workspace_bytes <= 2 * needed
        assert_conv_close(y, x, w, b, g)
        npconv.set_workspace_limit(column_row_bytes(g, 8) - 1)
        with pytest.raises(ConvMemoryError, match="workspace_limit"):
            npconv.conv2d(x, w, b, **LAYER, method=METHOD)
        # a per-call limit overrides the process-wide one
        npconv.conv2d(x, w, b, **LAYER, method=METHOD, workspace_limit=needed)
    finally:
        npconv.set_workspace_limit(previous)


def test_a_large_layer_is_planned_within_the_default_limit():
    """A 1.2 GiB column matrix is built 256 MiB at a time at most, even with no cache target."""
    g = ConvGeometry.from_layer((1, 512, 256, 256), 1, 3, padding=1)
    limit = npconv.get_workspace_limit()
    assert column_matrix_bytes(g, 4) > 4 * limit
    x = np.broadcast_to(np.float32(1), g.input_shape)  # the plan reads only dtype and strides
    w = np.ones(g.weight_shape, np.float32)
    plan = im2col.Plan(g, x, w, limit, target_bytes=2**40)
    assert limit / 2 < plan.workspace_bytes <= limit
    assert plan.chunks > 4


# ---------------------------------------------------------------------- wrappers and layouts


def test_separable_conv2d_with_counts():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    dw_w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)  # depth multiplier 2
    pw_w = rng.standard_normal((5, 6, 1, 1)).astype(np.float32)
    dw_b, pw_b = rng.standard_normal(6).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    y, counts = npconv.separable_conv2d(x, dw_w, pw_w, dw_b, pw_b, stride=2, padding="same",
                                        method=METHOD, count=True)
    expected = npconv.separable_conv2d(x.astype(np.float64), dw_w, pw_w, dw_b, pw_b, stride=2,
                                       padding="same")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    s = SeparableGeometry.from_layer(x.shape, 5, 3, stride=2, padding="same", depth_multiplier=2,
                                     bias="torch")
    assert counts.mults == formulas.separable_mults(s).value
    assert counts.adds == formulas.separable_adds(s).value
    assert counts.padded_mults == formulas.padded_mults(s.depthwise).value
    assert counts.depthwise.method == counts.pointwise.method == METHOD


def test_pointwise_on_a_channel_slice_needs_no_copy():
    rng = np.random.default_rng(2)
    full = rng.standard_normal((2, 8, 5, 6))
    x = full[:, 2:5]  # contiguous planes, channel stride still one plane
    w = rng.standard_normal((4, 3, 1, 1))
    y, counts = npconv.conv2d(x, w, method=METHOD, count=True)
    assert counts.workspace_bytes == 0
    np.testing.assert_allclose(y, np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x), rtol=1e-12, atol=1e-12)


def test_float32_stays_float32_with_float32_operands_only():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 14, 14)).astype(np.float32)
    w = rng.standard_normal((256, 3, 5, 5)).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    y, counts = npconv.conv2d(x, w, b, padding=1, method=METHOD, count=True)
    assert y.dtype == np.float32
    assert counts.mults == 12 * 12 * 256 * 5 * 5 * 3
    assert counts.workspace_bytes == (3 * 25) * (12 * 12) * 4 + 3 * 16 * 16 * 4
    assert_conv_close(y, x, w, b, ConvGeometry.from_shapes(x.shape, w.shape, b.shape, padding=1))


# ---------------------------------------------------------------------- workers and the buffer pool


def test_chunks_shared_between_workers_give_the_same_answer_and_counts(monkeypatch):
    x, w, b, g = _layer_arrays()
    monkeypatch.setattr(im2col, "workers_for", lambda g: 2)
    limit = 3 * smallest_chunk_bytes(g, x.itemsize)  # several chunks, so that both workers have some
    plan = im2col.Plan(g, x, w, limit, workers=2)
    assert plan.workers == 2 and plan.chunks >= 2
    assert plan.workspace_bytes == 2 * (plan.col_bytes + plan.pad_bytes) <= limit
    y, counts = npconv.conv2d(x, w, b, **LAYER, method=METHOD, count=True, workspace_limit=limit)
    assert counts.workspace_bytes == plan.workspace_bytes
    assert_conv_close(y, x, w, b, g)
    assert_counts_equal_formulas(counts, g, METHOD, "dense")


def test_a_limit_holding_one_smallest_chunk_runs_one_worker():
    x, w, _b, g = _layer_arrays()
    smallest = smallest_chunk_bytes(g, x.itemsize)
    plan = im2col.Plan(g, x, w, smallest, workers=2)
    assert plan.workers == 1 and plan.workspace_bytes <= smallest


def test_pool_reuses_a_returned_buffer_and_never_hands_one_out_twice():
    pool = im2col.WorkspacePool(max_bytes=10_000)
    first = pool.take((100,), np.float64)
    second = pool.take((100,), np.float64)
    assert first is not second  # the first is in use
    pool.give(first)
    assert pool.take((100,), np.float64) is first
    assert pool.take((100,), np.float32) is not first  # another dtype is another key


def test_pool_keeps_at_most_its_bound_dropping_the_oldest():
    pool = im2col.WorkspacePool(max_bytes=2_000)
    old, new = pool.take((100,), np.float64), pool.take((150,), np.float64)
    pool.give(old)
    pool.give(new)  # 800 + 1200 bytes: fits exactly
    assert pool.idle_bytes == 2_000
    newest = pool.take((50,), np.float64)
    pool.give(newest)  # the oldest (old) goes
    assert pool.idle_bytes == 1_600
    assert pool.take((100,), np.float64) is not old
    huge = pool.take((1_000,), np.float64)
    pool.give(huge)  # larger than the bound: not kept
    assert pool.idle_bytes == 1_600


def test_pool_is_bounded_by_the_process_wide_workspace_limit():
    pool = im2col.WorkspacePool(max_bytes=10**9)
    previous = npconv.set_workspace_limit(1_000)
    try:
        pool.give(pool.take((200,), np.float64))  # 1,600 bytes > the limit
        assert pool.idle_bytes == 0
    finally:
        npconv.set_workspace_limit(previous)


def test_concurrent_calls_do_not_share_buffers():
    import threading

    rng = np.random.default_rng(3)
    cases = [(rng.standard_normal((2, 4, 11, 9)), rng.standard_normal((6, 2, 3, 2))) for _ in range(4)]
    expected = [npconv.conv2d(x, w, **LAYER, method=METHOD) for x, w in cases]
    failures = []

    def run(k):
        for _ in range(20):
            x, w = cases[k]
            if not np.array_equal(npconv.conv2d(x, w, **LAYER, method=METHOD), expected[k]):
                failures.append(k)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_an_invalid_operation_raises_under_errstate_in_every_worker(monkeypatch):
    x, w, b, g = _layer_arrays()
    monkeypatch.setattr(im2col, "workers_for", lambda g: 2)
    limit = 3 * smallest_chunk_bytes(g, x.itemsize)
    x = x.copy()
    x[-1] = np.inf  # the last image: in the second worker's chunks
    w = w.copy()
    w[0] = 0.0  # 0 * inf
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
        npconv.conv2d(x, w, b, **LAYER, method=METHOD, workspace_limit=limit)
