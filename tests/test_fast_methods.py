"""The fast algorithms, ``method="winograd*"`` and ``method="fft"``, over the layers they run.

Outputs are compared with SciPy (and PyTorch where installed, and the reference kernel on small
layers) in float64 and float32, within rounding bounds derived here, not guessed; counts with the
closed forms of ``npconv.formulas`` exactly, stage by stage; layers they cannot run, an empty batch
and the workspace limit get the behaviour the API promises.

Tolerances
----------
A Winograd output is a straight-line program of additions and multiplications (the transforms'
constants, the GEMMs, the bias).  In floating point with unit roundoff ``u`` every operation
returns ``(exact) x (1 + d)``, ``|d| <= u``, so the computed output is a sum of monomials each
carrying at most ``L`` factors ``(1 + d)``, ``L`` the most roundings on any path from an input to
the output; hence (Higham, *Accuracy and Stability of Numerical Algorithms*, section 3.1, for
inner products; the argument is the same for any such program)::

    |computed - exact| <= gamma_L x M,      gamma_L = L u / (1 - L u),

where ``M`` is the *same program run on absolute values*: ``|x|``, ``|w|``, ``|b|`` and the
matrices ``|B^T|``, ``|G|``, ``|A^T|`` (:func:`winograd_magnitude`, an independent einsum over
explicit tiles).  ``L`` per stage, ``k`` the most nonzeros in a row of the matrix: filter
transform, two passes of ``3`` terms, each term a constant rounded to the dtype, a product and up
to two additions: ``2 x (3 + 1)``; input transform, two passes: ``2 k_B`` (integer constants, exact);
products: ``C_in/g`` (a product and ``C_in/g - 1`` additions, in any order the BLAS takes); output
transform: ``2 k_A``; bias: ``1``.  So ``L = 8 + 2 k_B + C_in/g + 2 k_A + 1``: ``19 + C_in/g`` for
F(2x2,3x3), ``27 + C_in/g`` for F(4x4,3x3), and ``M`` grows with the constants (up to 8 in F(4x4,3x3)'s
``A^T``, 5 in its ``B^T``): that is why F(4x4,3x3) in float32 loses about a digit.

The FFT's error is bounded per output plane in the 2-norm.  For ``L = H_f W_f`` points, a computed
FFT satisfies ``||error||_2 <= eps_F ||exact||_2`` with ``eps_F = eta log2 L``,
``eta = mu + gamma_4 (sqrt 2 + mu)`` (Higham, Theorem 24.2, radix 2; ``mu ~ u`` the twiddles'
error), taken twice over for the mixed radices of pocketfft: ``eps_F = 2 x 6.7 u log2 L``.  With
``X`` the input plane's spectrum (``||X||_2 = sqrt(L) ||x||_2``) and ``K`` a filter's
(``max |K| <= ||w||_1``, and computed by a direct DFT of its taps within ``(KH + KW + 8) u ||w||_1``
per bin), the forward transform, the filter, the products (``2 sqrt(2) u`` each), the
accumulation (``gamma_{C_in/g}``) and the inverse transform (``eps_F``) give, by Young's inequality
``||x * w||_2 <= ||x||_2 ||w||_1``::

    ||computed - exact||_2 <= (2 eps_F + (KH + KW + 11 + C_in/g) u) x sum over ci of ||x_ci||_2 ||w_ci||_1
                              + u |b|

and an output's error is at most its plane's 2-norm error.  (The bound does not shrink with the
window: an FFT output mixes its whole plane.)  Both bounds also allow the float64 oracle its own
error, ``gamma_T`` times the sum of ``|x w|`` over its ``T`` terms.
"""

from __future__ import annotations

import json
import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npconv
from npconv import formulas, kernels
from npconv.counts import ALGORITHM_CONVENTIONS, Counts, Stage
from npconv.errors import ConvArgumentError, ConvMemoryError
from npconv.geometry import ConvGeometry, SeparableGeometry

from oracles import reference_conv2d, scipy_conv2d, torch_conv2d
from strategies import Layer, _padding, memory_layouts

WINOGRAD = ("winograd", "winograd2", "winograd4")
FAST = (*WINOGRAD, "fft")
DTYPES = [np.float32, np.float64]
#: Examples per property: an eighth of the profile's (25 by default, 1,250 under the soak profile).
EXAMPLES = max(10, settings.default.max_examples // 8)
fast_settings = settings(max_examples=EXAMPLES)


def tile_of(method: str, g: ConvGeometry) -> int:
    return {"winograd2": 2, "winograd4": 4}.get(method) or kernels.load("winograd").default_tile(g)


# ---------------------------------------------------------------------- layer spaces


@st.composite
def winograd_layers(draw, max_batch=2, max_channels=8, max_size=14, depthwise=None):
    """3x3 stride-1 layers: every padding form, groups and depth multiplier, bias or not."""
    batch = draw(st.integers(1, max_batch))
    is_depthwise = draw(st.booleans()) if depthwise is None else depthwise
    if is_depthwise:
        groups = in_channels = draw(st.integers(1, max_channels))
        out_channels = in_channels * draw(st.integers(1, 3))
    else:
        groups = draw(st.integers(1, 3))
        in_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
        out_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
    return _sized(draw, batch, in_channels, out_channels, groups, (3, 3), 1, draw(_padding(3)), max_size)


@st.composite
def fft_layers(draw, max_batch=2, max_channels=8, max_size=14):
    """Stride-1 layers of kernels 1..5 a side, dilation 1..3, every padding form, groups, bias."""
    batch = draw(st.integers(1, max_batch))
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
    out_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    return _sized(draw, batch, in_channels, out_channels, groups, kernel, dilation, draw(_padding(3)), max_size)


def _sized(draw, batch, in_channels, out_channels, groups, kernel, dilation, padding, max_size) -> Layer:
    dil = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    pads = ConvGeometry(1, 1, 64, 64, 1, *kernel, padding=padding, dilation=dil).padding \
        if padding != "same" else ((0, 0), (0, 0))
    sizes = []
    for axis in range(2):
        span = dil[axis] * (kernel[axis] - 1) + 1
        smallest = 1 if padding == "same" else max(1, span - sum(pads[axis]))
        sizes.append(draw(st.integers(smallest, max(smallest, max_size))))
    return Layer((batch, in_channels, *sizes), (out_channels, in_channels // groups, *kernel),
                 draw(st.booleans()), 1, padding, dilation, groups)


# ---------------------------------------------------------------------- rounding bounds


def winograd_magnitude(x, w, b, g: ConvGeometry, m: int) -> np.ndarray:
    """F(m x m, 3 x 3) run on absolute values, in float64: the ``M`` of the module docstring.

    Independent of the kernel: explicit tiles of the zero-padded input, einsums with the
    absolute transform matrices, the tiles put back and cut to the output.
    """
    t = formulas.WINOGRAD_TRANSFORMS[m]
    bt, gm, at = (np.abs(np.array(mat, dtype=float)) for mat in (t.input_matrix, t.filter_matrix, t.output_matrix))
    alpha = t.alpha
    tiles_h, tiles_w = math.ceil(g.out_height / m), math.ceil(g.out_width / m)
    (top, _), (left, _) = g.padding
    padded = np.zeros((g.batch, g.in_channels, tiles_h * m + 2, tiles_w * m + 2))
    padded[:, :, top: top + g.height, left: left + g.width] = np.abs(np.asarray(x, dtype=float))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (alpha, alpha), axis=(2, 3))[:, :, ::m, ::m]
    v = np.einsum("ai,nctuij,bj->nctuab", bt, windows, bt)
    u = np.einsum("ai,ocij,bj->ocab", gm, np.abs(np.asarray(w, dtype=float)), gm)
    groups, cg, og = g.groups, g.in_channels_per_group, g.out_channels_per_group
    v = v.reshape(g.batch, groups, cg, tiles_h, tiles_w, alpha, alpha)
    u = u.reshape(groups, og, cg, alpha, alpha)
    products = np.einsum("gocab,ngctuab->ngotuab", u, v).reshape(g.batch, g.out_channels, tiles_h, tiles_w,
                                                                   alpha, alpha)
    y = np.einsum("ia,nktuab,jb->nktiuj", at, products, at).reshape(g.batch, g.out_channels, tiles_h * m,
                                                                     tiles_w * m)
    y = y[:, :, : g.out_height, : g.out_width]
    if b is not None:
        y = y + np.abs(np.asarray(b, dtype=float))[:, None, None]
    return y


def gamma(n: int, unit: float) -> float:
    assert n * unit < 1
    return n * unit / (1 - n * unit)


def oracle_slack(x, w, b, g: ConvGeometry) -> np.ndarray:
    """The float64 oracle's own rounding bound: ``gamma_T`` times the sum of ``|x w|`` (and ``|b|``)."""
    magnitude = scipy_conv2d(np.abs(x), np.abs(w), None if b is None else np.abs(b), g)
    terms = g.in_channels_per_group * g.kernel_h * g.kernel_w + 1
    return gamma(terms + 1, np.finfo(np.float64).eps / 2) * magnitude


def winograd_bound(x, w, b, g: ConvGeometry, m: int, dtype) -> np.ndarray:
    t = formulas.WINOGRAD_TRANSFORMS[m]
    k_b = max(sum(1 for c in row if c) for row in t.input_matrix)
    k_a = max(sum(1 for c in row if c) for row in t.output_matrix)
    depth = 8 + 2 * k_b + g.in_channels_per_group + 2 * k_a + 1
    unit = np.finfo(dtype).eps / 2
    return gamma(depth, unit) * winograd_magnitude(x, w, b, g, m) + oracle_slack(x, w, b, g)


def fft_bound(x, w, b, g: ConvGeometry, dtype) -> np.ndarray:
    unit = np.finfo(dtype).eps / 2
    h_f, w_f = formulas.fft_shape(g)
    eps_fft = 2 * 6.7 * unit * math.log2(max(2, h_f * w_f))
    factor = 2 * eps_fft + (g.kernel_h + g.kernel_w + 11 + g.in_channels_per_group) * unit
    x_norms = np.sqrt((np.asarray(x, dtype=float) ** 2).sum(axis=(2, 3)))  # (N, C_in)
    w_norms = np.abs(np.asarray(w, dtype=float)).sum(axis=(2, 3))  # (C_out, C_in/g)
    cg, og = g.in_channels_per_group, g.out_channels_per_group
    plane = np.zeros((g.batch, g.out_channels))
    for co in range(g.out_channels):
        group = co // og
        plane[:, co] = x_norms[:, group * cg: (group + 1) * cg] @ w_norms[co]
    bias = 0.0 if b is None else unit * np.abs(np.asarray(b, dtype=float))[None, :]
    return (factor * plane + bias)[:, :, None, None] + oracle_slack(x, w, b, g)


def bound_for(method: str, x, w, b, g: ConvGeometry, dtype) -> np.ndarray:
    if method == "fft":
        return fft_bound(x, w, b, g, dtype)
    return winograd_bound(x, w, b, g, tile_of(method, g), dtype)


def assert_within(actual, expected, bound) -> None:
    error = np.abs(np.asarray(actual, dtype=float) - expected)
    assert actual.shape == expected.shape
    if error.size:
        worst = np.unravel_index(np.argmax(error - bound), error.shape)
        assert np.all(error <= bound), (f"error {error[worst]:.3g} over the bound {np.broadcast_to(bound, error.shape)[worst]:.3g} "
                                        f"at {worst}")


def layers_for(method: str):
    return fft_layers() if method == "fft" else winograd_layers()


# ---------------------------------------------------------------------- the transforms themselves


@pytest.mark.parametrize("m", sorted(formulas.WINOGRAD_TRANSFORMS))
def test_winograd_matrices_compute_the_correlation_exactly(m):
    """With exact fractions, A^T [(G g G^T) * (B^T d B)] A is the 2-D correlation of d with g."""
    t = formulas.WINOGRAD_TRANSFORMS[m]
    rng = np.random.default_rng(m)

    def mat(rows):
        return np.array(rows, dtype=object)

    bt, gm, at = mat(t.input_matrix), mat(t.filter_matrix), mat(t.output_matrix)
    for _ in range(5):
        d = mat([[Fraction(int(v)) for v in row] for row in rng.integers(-9, 10, (t.alpha, t.alpha))])
        f = mat([[Fraction(int(v)) for v in row] for row in rng.integers(-9, 10, (3, 3))])
        y = at.dot((gm.dot(f).dot(gm.T)) * (bt.dot(d).dot(bt.T))).dot(at.T)
        expected = [[sum(d[i + a, j + c] * f[a, c] for a in range(3) for c in range(3)) for j in range(m)]
                    for i in range(m)]
        assert y.tolist() == expected


def test_transform_costs_count_each_constant_other_than_one_as_a_multiplication():
    f4 = formulas.WINOGRAD_TRANSFORMS[4]
    # B^T's first row (4, 0, -5, 0, 1, 0): 3 terms, 2 additions, 2 constants other than +-1
    assert formulas.row_cost(f4.input_matrix[0]) == (2, 2)
    k_b, a_b = formulas.transform_cost(f4.input_matrix, "B")
    assert (k_b.value, a_b.value) == (12, 16)
    k_g, a_g = formulas.transform_cost(f4.filter_matrix, "G")
    assert (k_g.value, a_g.value) == (13, 8)
    k_a, a_a = formulas.transform_cost(f4.output_matrix, "A")
    assert (k_a.value, a_a.value) == (6, 14)
    f2 = formulas.WINOGRAD_TRANSFORMS[2]
    assert [q.value for q in formulas.transform_cost(f2.input_matrix, "B")] == [0, 4]  # +-1 only: adds
    assert formulas.row_cost((Fraction(-1), Fraction(0), Fraction(-1))) == (1, 1)  # starts from a negation


# ---------------------------------------------------------------------- outputs


@pytest.mark.parametrize("method", FAST)
@fast_settings
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_fast_methods_agree_with_scipy_within_the_derived_bound(method, data, dtype):
    layer = data.draw(layers_for(method), label="layer")
    g = layer.geometry
    x, w, b = layer.arrays(dtype)
    y = npconv.conv2d(x, w, b, **layer.kwargs(), method=method)
    assert y.dtype == dtype and y.shape == g.output_shape and y.flags.c_contiguous
    assert_within(y, scipy_conv2d(x, w, b, g), bound_for(method, x, w, b, g, dtype))
    if formulas.mults(g, "dense").value <= 20_000:
        assert_within(y, reference_conv2d(x, w, b, g), bound_for(method, x, w, b, g, dtype))


@pytest.mark.parametrize("method", FAST)
@fast_settings
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_fast_methods_agree_with_torch(method, data, dtype):
    pytest.importorskip("torch")
    layer = data.draw(layers_for(method), label="layer")
    x, w, b = layer.arrays(dtype, seed=1)
    g = layer.geometry
    y = npconv.conv2d(x, w, b, **layer.kwargs(), method=method)
    assert_within(y, torch_conv2d(x, w, b, g), bound_for(method, x, w, b, g, dtype))


def test_the_bounds_are_tight_enough_to_catch_a_wrong_tap():
    """A kernel off by one tap is far outside the bounds (so the property tests can fail)."""
    rng = np.random.default_rng(3)
    x, w = rng.uniform(-1, 1, (1, 4, 12, 12)), rng.uniform(-1, 1, (3, 4, 3, 3))
    g = ConvGeometry.from_shapes(x.shape, w.shape, padding=1)
    shifted = np.roll(w, 1, axis=3)
    for method in FAST:
        wrong = npconv.conv2d(x, shifted, padding=1, method=method)
        for dtype in DTYPES:
            error = np.abs(wrong - scipy_conv2d(x, w, None, g))
            assert np.mean(error > bound_for(method, x, w, None, g, dtype)) > 0.9


@pytest.mark.parametrize("method", FAST)
def test_float32_error_on_a_wide_layer_is_within_the_bound_and_measured(method):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 32, 20, 20)).astype(np.float32)
    w = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, padding=1)
    exact = scipy_conv2d(x, w, b, g)
    y = npconv.conv2d(x, w, b, padding=1, method=method)
    assert_within(y, exact, bound_for(method, x, w, b, g, np.float32))
    # and the measured error is of the expected order: float32's, times at most a few hundred
    relative = np.abs(y - exact).max() / np.abs(exact).max()
    assert relative < 300 * np.finfo(np.float32).eps


# ---------------------------------------------------------------------- counts


def assert_counts_equal_formulas(counts: Counts, g: ConvGeometry, method: str) -> None:
    expected = formulas.fft_counts(g) if method == "fft" else formulas.winograd_counts(g, tile_of(method, g))
    assert (counts.method, counts.convention, counts.algorithm) == (method, expected.convention, expected.algorithm)
    assert counts.mults == expected.mults.value and counts.adds == expected.adds.value
    assert counts.estimated_mults == expected.estimated_mults.value
    assert counts.estimated_adds == expected.estimated_adds.value
    assert [(s.name, s.mults, s.adds, s.measured) for s in counts.stages] == [
        (name, int(mq), int(aq), expected.measured[name]) for name, (mq, aq) in expected.stages.items()]
    assert counts.padded_mults == 0


@pytest.mark.parametrize("method", FAST)
@fast_settings
@given(data=st.data())
def test_counts_equal_the_formulas_stage_by_stage(method, data):
    layer = data.draw(layers_for(method), label="layer")
    g = layer.geometry
    x, w, b = layer.arrays(np.float32)
    uncounted = npconv.conv2d(x, w, b, **layer.kwargs(), method=method)
    y, counts = npconv.conv2d(x, w, b, **layer.kwargs(), method=method, count=True)
    np.testing.assert_array_equal(y, uncounted)  # counting does not change the result
    assert_counts_equal_formulas(counts, g, method)
    _, named = npconv.conv2d(x, w, b, **layer.kwargs(), method=method, count=counts.convention)
    assert named == counts


@pytest.mark.parametrize("method", WINOGRAD)
@fast_settings
@given(layer=winograd_layers(max_size=20), limit=st.integers(2_000, 200_000))
def test_winograd_in_chunks_gives_the_same_output_and_counts(method, layer, limit):
    g = layer.geometry
    x, w, b = layer.arrays(np.float64)
    try:
        plan = kernels.load("winograd").Plan(g, tile_of(method, g), 8, limit)
    except ConvMemoryError:  # one row of tiles does not fit: the call is refused the same way
        with pytest.raises(ConvMemoryError, match="one row of tiles of one image"):
            npconv.conv2d(x, w, b, **layer.kwargs(), method=method, workspace_limit=limit)
        return
    whole, counts = npconv.conv2d(x, w, b, **layer.kwargs(), method=method, count=True)
    try:
        chunked, chunked_counts = npconv.conv2d(x, w, b, **layer.kwargs(), method=method, count=True,
                                                workspace_limit=limit)
    except ConvMemoryError:
        pytest.fail(f"refused although its plan fits: {plan.workspace_bytes:,} <= {limit:,}")
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)
    assert (chunked_counts.mults, chunked_counts.adds, chunked_counts.stages) == (counts.mults, counts.adds,
                                                                                  counts.stages)
    assert chunked_counts.workspace_bytes <= limit


@fast_settings
@given(layer=fft_layers(max_batch=5), share=st.floats(0, 1))
def test_fft_in_chunks_of_images_agrees_with_scipy(layer, share):
    """Chunks reuse their buffers: each must start from a clean zero fill."""
    g = layer.geometry
    x, w, b = layer.arrays(np.float64)
    fft = kernels.load("fft")
    whole = fft.Plan(g, 8, 2**40)
    smallest = whole.filter_bytes + whole.chunk_bytes(1)
    limit = int(smallest + share * (whole.workspace_bytes - smallest))
    plan = fft.Plan(g, 8, limit)
    y, counts = npconv.conv2d(x, w, b, **layer.kwargs(), method="fft", count=True, workspace_limit=limit)
    assert counts.workspace_bytes == plan.workspace_bytes <= limit
    assert_within(y, scipy_conv2d(x, w, b, g), bound_for("fft", x, w, b, g, np.float64))
    assert_counts_equal_formulas(counts, g, "fft")


def test_the_resnet_layer_counts_worked_example():
    """The numbers the README's worked example quotes: resnet 3x3 (8 x 64 x 56 x 56, 64 filters)."""
    from npconv.layerset import BENCHMARK_LAYERS

    g = BENCHMARK_LAYERS["resnet 3x3"]
    dense = formulas.mults(g, "dense").value
    f2, f4 = formulas.winograd_counts(g, 2), formulas.winograd_counts(g, 4)
    assert dense == 924_844_032
    assert f2.stages["transform-domain products"][0].value == 16 * 8 * 28 * 29 * 64 * 64 == 425_721_856
    assert f4.stages["transform-domain products"][0].value == 36 * 8 * 14 * 15 * 64 * 64 == 247_726_080
    assert str(f4.stages["input transform"][0]) == "12 x 8 x 64 x 14 x 15 x (4 + 6) = 12,902,400"
    assert (f2.mults.value, f4.mults.value) == (425_893_888, 267_558_912)


def test_fft_counts_keep_measured_and_estimated_apart():
    from npconv.layerset import BENCHMARK_LAYERS

    g = BENCHMARK_LAYERS["large 7x7"]
    counts = formulas.fft_counts(g)
    assert counts.algorithm == "rfft2 72x72"
    assert not counts.measured["input FFT"] and not counts.measured["inverse FFT"]
    assert counts.measured["frequency-domain products"] and counts.measured["filter DFT"]
    # 4 images x 32 output x 32 input channels x 72 x 37 bins, 4 real mults per complex product
    assert counts.stages["frequency-domain products"][0].value == 4 * 4 * 32 * 32 * 72 * 37
    measured = sum(int(q[0]) for name, q in counts.stages.items() if counts.measured[name])
    assert counts.mults.value == measured and counts.estimated_mults.value > 0
    small = ConvGeometry.from_layer((1, 3, 10, 10), 4, 7, padding=3, bias=True)
    _, run = npconv.conv2d(np.ones(small.input_shape), np.ones(small.weight_shape), np.ones(4), padding=3,
                           method="fft", count=True)
    expected = formulas.fft_counts(small)
    assert run.stage("input FFT").measured is False and run.estimated_mults == expected.estimated_mults.value > 0
    assert run.mults == expected.mults.value  # the estimate is never part of the measured count
    json.dumps(run.to_dict())


def test_count_true_gives_each_method_its_own_convention_and_others_are_refused():
    x, w = np.ones((1, 2, 6, 6)), np.ones((2, 2, 3, 3))
    for method in FAST:
        _, counts = npconv.conv2d(x, w, padding=1, method=method, count=True)
        assert counts.convention == kernels.load(method).CONVENTIONS[0] in ALGORITHM_CONVENTIONS
        for other in ("dense", "effective", *(c for c in ALGORITHM_CONVENTIONS if c != counts.convention)):
            with pytest.raises(ConvArgumentError) as caught:
                npconv.conv2d(x, w, padding=1, method=method, count=other)
            assert caught.value.argument == "count" and f"method {method!r} executes" in str(caught.value)
    with pytest.raises(ConvArgumentError, match="'winograd', 'fft'"):
        npconv.conv2d(x, w, count="winogard")
    with pytest.raises(ConvArgumentError, match="count"):
        npconv.conv2d(x, w, method="im2col", count="winograd")


def test_counts_check_that_their_stages_add_up():
    stages = (Stage("products", 10, 6), Stage("transforms", 100, 150, measured=False))
    Counts(10, 6, "fft", "fft", stages=stages, estimated_mults=100, estimated_adds=150)
    with pytest.raises(ValueError, match="stages"):
        Counts(110, 156, "fft", "fft", stages=stages, estimated_mults=100, estimated_adds=150)
    with pytest.raises(ValueError, match="estimated"):
        Counts(10, 6, "fft", "fft", estimated_mults=1)


# ---------------------------------------------------------------------- what they run, and what not


UNSUPPORTED = [
    ("winograd", dict(kernel=5), "a 5x5 kernel"),
    ("winograd4", dict(stride=2), "stride 2"),
    ("winograd2", dict(dilation=2), "dilation 2"),
    ("winograd", dict(kernel=(3, 1)), "a 3x1 kernel"),
    ("fft", dict(stride=(1, 2)), "stride (1, 2)"),
]


@pytest.mark.parametrize("method, layer, problem", UNSUPPORTED)
def test_a_layer_the_method_cannot_run_gets_an_error_naming_what_it_runs(method, layer, problem):
    kernel = layer.get("kernel", 3)
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    x, w = np.ones((1, 2, 9, 9), np.float32), np.ones((2, 2, kh, kw), np.float32)
    kwargs = {k: v for k, v in layer.items() if k != "kernel"}
    with pytest.raises(ConvArgumentError) as caught:
        npconv.conv2d(x, w, padding=1, method=method, **kwargs)
    message = str(caught.value)
    assert caught.value.argument == "method"
    assert problem in message and kernels.load(method).SUPPORTED in message
    assert "'im2col'" in message  # and what runs every layer instead
    g = ConvGeometry.from_shapes(x.shape, w.shape, padding=1, **kwargs)
    assert problem in kernels.supports(method, g)
    assert method not in kernels.available_methods(g)


def test_available_methods_lists_the_fast_ones_for_the_layers_they_run():
    assert not set(FAST) & set(kernels.available_methods())  # without a layer: those that run every layer
    assert set(FAST) <= set(kernels.all_methods())
    g = ConvGeometry.from_layer((1, 4, 8, 8), 4, 3, padding=1)
    assert set(FAST) <= set(kernels.available_methods(g))
    assert kernels.supports("im2col", g) is None
    strided = g.replace(stride=2)
    assert not set(FAST) & set(kernels.available_methods(strided))


def test_separable_by_winograd_refuses_the_pointwise_part_by_name_and_fft_runs_both():
    rng = np.random.default_rng(0)
    x, dw, pw = rng.standard_normal((1, 3, 8, 8)), rng.standard_normal((3, 1, 3, 3)), rng.standard_normal((5, 3, 1, 1))
    with pytest.raises(ConvArgumentError) as caught:
        npconv.separable_conv2d(x, dw, pw, padding=1, method="winograd")
    assert "the pointwise part" in str(caught.value) and "a 1x1 kernel" in str(caught.value)
    y, counts = npconv.separable_conv2d(x, dw, pw, padding=1, method="fft", count=True)
    s = SeparableGeometry.from_layer((1, 3, 8, 8), 5, 3, padding=1, bias="none")
    assert_counts_equal_formulas(counts.depthwise, s.depthwise, "fft")
    assert_counts_equal_formulas(counts.pointwise, s.pointwise, "fft")
    expected = npconv.separable_conv2d(x, dw, pw, padding=1, method="im2col")
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", FAST)
def test_an_empty_batch_gives_an_empty_output_and_zero_counts(method):
    x, w = np.ones((0, 4, 7, 7), np.float32), np.ones((6, 2, 3, 3), np.float32)
    y, counts = npconv.conv2d(x, w, np.ones(6, np.float32), padding=1, groups=2, method=method, count=True)
    assert y.shape == (0, 6, 7, 7) and y.dtype == np.float32
    assert counts.mults == counts.adds == counts.estimated_mults == 0
    assert_counts_equal_formulas(counts, ConvGeometry.from_shapes(x.shape, w.shape, (6,), padding=1, groups=2),
                                 method)


@pytest.mark.parametrize("method", FAST)
def test_a_workspace_too_small_is_refused_before_allocating(method):
    x = np.broadcast_to(np.float32(1), (2, 64, 400, 400))
    w = np.ones((64, 64, 3, 3), np.float32)
    tracemalloc.start()
    try:
        with pytest.raises(ConvMemoryError) as caught:
            npconv.conv2d(x, w, padding=1, method=method, workspace_limit=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak:,} bytes allocated before the refusal"
    assert caught.value.argument == "workspace_limit" and "needed" in str(caught.value)


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("layout", list(memory_layouts(np.zeros((1, 1, 1, 1)))))
def test_any_memory_layout_gives_the_contiguous_result(method, layout):
    rng = np.random.default_rng(4)
    arrays = {"x": rng.standard_normal((2, 4, 9, 7)), "weight": rng.standard_normal((6, 2, 3, 3)),
              "bias": rng.standard_normal(6)}
    kwargs = dict(padding=((1, 2), (0, 1)), groups=2)
    expected = npconv.conv2d(*arrays.values(), **kwargs, method=method)
    awkward = {name: memory_layouts(a)[layout] for name, a in arrays.items()}
    np.testing.assert_array_equal(npconv.conv2d(*awkward.values(), **kwargs, method=method), expected)


@pytest.mark.parametrize("method", FAST)
def test_results_and_counts_do_not_depend_on_the_thread_count(method, monkeypatch):
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(kernels.load("winograd"), "PARALLEL_MIN_VALUES", 0)  # share out even a small layer
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((5, 16, 30, 30)), rng.standard_normal((8, 16, 3, 3)), rng.standard_normal(8)
    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            limit = 4 * 2**20 if method == "fft" else 300_000  # several chunks
            runs.append(npconv.conv2d(x, w, b, padding=1, method=method, count=True, workspace_limit=limit))
            assert npconv.kernels._threads.blas_threads() == threads  # and the BLAS's count is restored
    # to rounding: with two workers the limit is shared, so chunks (and the GEMMs' shapes, which
    # decide the BLAS's blocking) differ
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-13, atol=1e-13)
    assert [(c.mults, c.adds, c.stages) for _, c in runs] == [(runs[0][1].mults, runs[0][1].adds, runs[0][1].stages)] * 2
    g = ConvGeometry.from_shapes(x.shape, w.shape, b.shape, padding=1)
    assert_within(runs[0][0], scipy_conv2d(x, w, b, g), bound_for(method, x, w, b, g, np.float64))


def test_winograd_workers_share_the_chunks_within_the_limit():
    winograd = kernels.load("winograd")
    g = ConvGeometry.from_layer((8, 16, 30, 30), 8, 3, padding=1)
    one = winograd.Plan(g, 2, 8, 300_000, workers=1)
    two = winograd.Plan(g, 2, 8, 300_000, workers=2)
    assert one.workers == 1 and two.workers == 2 and two.workspace_bytes <= 300_000
    assert two.workspace_bytes == 2 * two.chunk_bytes(two.images_per_chunk, two.tile_rows_per_chunk) + two.filter_bytes
    tight = winograd.Plan(g, 2, 8, one.chunk_bytes(1, 1) + one.filter_bytes, workers=2)
    assert tight.workers == 1  # a limit that holds one smallest chunk holds one worker


def test_fft_without_scipy_uses_numpy_fft_with_the_same_counts(monkeypatch):
    import builtins

    fft = kernels.load("fft")
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 3, 11, 9)), rng.standard_normal((4, 3, 5, 3))
    with_scipy = npconv.conv2d(x, w, padding=2, dilation=(1, 2), method="fft", count=True)
    monkeypatch.setattr(builtins, "__import__", no_scipy)
    assert fft._backend()[0] == "numpy.fft"
    without = npconv.conv2d(x, w, padding=2, dilation=(1, 2), method="fft", count=True)
    np.testing.assert_allclose(without[0], with_scipy[0], rtol=1e-12, atol=1e-12)
    assert without[1] == with_scipy[1]


def test_the_thread_count_followed_is_numpys_blas_not_scipys():
    import scipy.linalg  # noqa: F401  (SciPy loads a BLAS of its own)
    from threadpoolctl import threadpool_info, threadpool_limits

    from npconv.kernels import _threads

    with threadpool_limits(1, user_api="blas"):
        assert _threads.blas_threads() == 1
        with _threads.blas_single_threaded():
            pass
    numpy_blas = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    if numpy_blas:
        assert "numpy" in _threads._blas.filepath
        assert _threads.blas_threads() == numpy_blas[0]["num_threads"]
