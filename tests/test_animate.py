"""npconv animate: the frames' data against the kernels, the drawn pixels, the files written.

The plan each frame draws (which output position, which input pixels its taps
read, which of them are padding) is checked against what a convolution
actually computes: one-hot inputs through SciPy's correlate (and PyTorch's
``conv_transpose2d`` for the transposed scene, where installed).  The rendered
frames are checked pixel by pixel at the cells the plan names, and the GIFs
the command writes for frame count and size.  Rendering tests use a small
figure; the default-size GIFs are the command's own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from npconv import animate
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry
from npconv.layerset import BENCHMARK_LAYERS

from cli_runner import run
from oracles import scipy_conv2d
from strategies import layers

matplotlib = pytest.importorskip("matplotlib", reason="npconv animate draws with matplotlib (the plot extra)")
Image = pytest.importorskip("PIL.Image", reason="GIFs are written with Pillow, a matplotlib dependency")

COURSE = BENCHMARK_LAYERS["seed 5x5"]  # 14x14x3, 5x5, 256 filters, padding 0
STRIDED_DILATED = ConvGeometry.from_layer((1, 3, 9, 9), 8, 3, stride=2, padding=2, dilation=2)
SMALL = dict(dpi=50, width=5.0)  # a small figure: quick to draw, cells still about ten pixels wide
BESIDE_THE_CROSS = (0.5, 0.25)  # a point of a cell clear of its edges and of the cross on a padded tap

COURSE_FLAGS = ["--input", "14x14x3", "--kernel", "5", "--filters", "256"]
STRIDED_DILATED_FLAGS = ["--input", "9x9x3", "--kernel", "3", "--filters", "8", "--stride", "2",
                         "--padding", "2", "--dilation", "2"]


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _spatial(g: ConvGeometry) -> ConvGeometry:
    """The same windows on one channel."""
    return ConvGeometry.from_layer((1, 1, g.height, g.width), 1, (g.kernel_h, g.kernel_w), stride=g.stride,
                                   padding=g.padding, dilation=g.dilation)


def _responses(g: ConvGeometry) -> np.ndarray:
    """``r[ih, iw, oh, ow]``: what output (oh, ow) adds from input pixel (ih, iw) when the weight of
    tap (kh, kw) is ``1 + kh * KW + kw`` -- so a nonzero names the tap that reads that pixel.
    One one-hot input per pixel, through SciPy (no code shared with npconv)."""
    one = _spatial(g)
    eye = np.eye(g.height * g.width).reshape(g.height * g.width, 1, g.height, g.width)
    weight = (1.0 + np.arange(g.kernel_h * g.kernel_w)).reshape(1, 1, g.kernel_h, g.kernel_w)
    batch = ConvGeometry.from_shapes(eye.shape, weight.shape, stride=g.stride, padding=g.padding,
                                     dilation=g.dilation)
    y = scipy_conv2d(eye, weight, None, batch)
    return y[:, 0].reshape(one.height, one.width, one.out_height, one.out_width)


def _tap_map(win: animate.Window) -> tuple[dict[tuple[int, int], float], int]:
    """{input pixel: weight of the tap reading it} for the taps on real input, and the padded count."""
    real = {(r, c): 1.0 + kh * len(win.cols) + kw for kh, kw, r, c, pad in win.taps() if not pad}
    return real, sum(pad for *_, pad in win.taps())


# ---------------------------------------------------------------------- the plan


@settings(max_examples=25)
@given(layer=layers(max_batch=1, max_groups=1, max_group_channels=1, max_kernel=4, max_pad=2, max_extra=4))
def test_each_windows_taps_are_the_pixels_the_convolution_reads(layer):
    g = layer.geometry
    responses = _responses(g)
    for frame in animate.frame_plan(g, frames=animate.MAX_FRAMES).frames:
        oh, ow = frame.position
        real, padded = _tap_map(frame.window)
        column = responses[:, :, oh, ow]
        assert real == {(int(r), int(c)): column[r, c] for r, c in zip(*np.nonzero(column), strict=True)}
        assert padded == frame.window.padded_taps == g.kernel_h * g.kernel_w - len(real)


@pytest.mark.parametrize("layer", [COURSE, STRIDED_DILATED], ids=["course", "strided+dilated"])
def test_frame_k_computes_output_k_in_loop_order(layer):
    plan = animate.frame_plan(layer)
    total = layer.out_height * layer.out_width
    assert plan.positions == total and len(plan.frames) == min(total, animate.DEFAULT_MAX_FRAMES)
    assert [f.position for f in plan.frames] == [divmod(k, layer.out_width) for k in range(total)]
    assert [f.order for f in plan.frames] == list(range(total))
    assert not plan.subsampled and plan.note() == f"every one of the {total} output positions"


@pytest.mark.parametrize("frames", [1, 2, 7, 99])
def test_more_positions_than_frames_shows_evenly_spaced_ones_in_order(frames):
    layer = BENCHMARK_LAYERS["seed 5x5 p1"]  # 12 x 12 = 144 output positions
    plan = animate.frame_plan(layer, frames=frames)
    orders = [f.order for f in plan.frames]
    assert len(orders) == frames and orders[0] == 0 and orders == sorted(set(orders))
    if frames > 1:
        assert orders[-1] == 143
        gaps = np.diff(orders)
        assert gaps.max() - gaps.min() <= 1  # evenly spaced
    assert all(f.position == divmod(f.order, 12) for f in plan.frames)
    assert plan.subsampled and plan.note().startswith(f"{frames} of the 144 output positions")


def test_the_scenes_draw_the_layers_they_name():
    standard = COURSE
    separable = SeparableGeometry.from_layer(standard.input_shape, 256, 5)
    assert animate.scene_layer(standard, "standard") is standard
    assert animate.scene_layer(standard, "transposed") is standard
    assert animate.scene_layer(separable, "depthwise") == separable.depthwise
    assert animate.scene_layer(separable, "pointwise") == separable.pointwise
    assert animate.scene_layer(standard, "depthwise").replace(bias=False) == separable.depthwise
    assert animate.scene_layer(standard, "pointwise").replace(bias=False) == separable.pointwise.replace(bias=False)
    assert animate.scene_layer(separable.depthwise, "depthwise") is separable.depthwise
    pointwise = animate.frame_plan(separable, "pointwise")
    assert all(f.window.rows == (f.position[0],) and f.window.cols == (f.position[1],) for f in pointwise.frames)


@pytest.mark.parametrize("layer", [
    COURSE,
    STRIDED_DILATED,
    ConvGeometry.from_layer((1, 3, 7, 7), 4, 3, stride=2, padding=1),
    ConvGeometry.from_layer((1, 2, 8, 9), 2, (3, 2), stride=(3, 2), padding=(1, 0), dilation=(1, 2)),
], ids=["course", "strided+dilated", "s2 p1", "uneven"])
def test_the_transposed_scene_is_conv_transpose2d(layer):
    """Each input pixel of the transposed convolution scatters the kernel into the cells the plan
    names, cropped where the plan says padding, into an output of the layer's input size."""
    torch = pytest.importorskip("torch")
    plan = animate.frame_plan(layer, "transposed", frames=animate.MAX_FRAMES)
    weight = (1.0 + torch.arange(layer.kernel_h * layer.kernel_w, dtype=torch.float64)).reshape(
        1, 1, layer.kernel_h, layer.kernel_w)
    (top, _), (left, _) = layer.padding
    for frame in plan.frames:
        pixel = torch.zeros(1, 1, layer.out_height, layer.out_width, dtype=torch.float64)
        pixel[0, 0, frame.position[0], frame.position[1]] = 1
        out = torch.nn.functional.conv_transpose2d(
            pixel, weight, stride=layer.stride, padding=(top, left), dilation=layer.dilation,
            output_padding=animate.transposed_output_padding(layer))[0, 0].numpy()
        assert out.shape == (layer.height, layer.width)
        real, _ = _tap_map(frame.window)
        assert real == {(int(r), int(c)): out[r, c] for r, c in zip(*np.nonzero(out), strict=True)}


def test_a_layer_too_large_to_draw_is_refused_by_name():
    with pytest.raises(ConvArgumentError, match="layer: expected a layer small enough to draw"):
        animate.frame_plan(ConvGeometry.from_layer((1, 1, 700, 8), 1, 3))


# ---------------------------------------------------------------------- the drawn pixels


def _colour_at(image, movie, grid, row, col, within=(0.5, 0.5)):
    y, x = movie.pixel(grid, row, col, within)
    return tuple(int(v) for v in image[y, x, :3])


def test_a_rendered_frame_shows_its_taps_padding_and_output():
    layer = ConvGeometry.from_layer((1, 3, 7, 7), 4, 3, stride=2, padding=1)
    plan = animate.frame_plan(layer)
    movie = animate.Movie(plan, **SMALL)
    k = 3  # output (0, 3): its window's last column and first row are padding
    frame = plan.frames[k]
    image = movie.image(k)
    taps = {(r + 1, c + 1): pad for *_, r, c, pad in frame.window.taps()}  # padded-grid coordinates
    assert any(taps.values()) and not all(taps.values())
    for r in range(9):
        for c in range(9):
            seen = _colour_at(image, movie, "input", r, c, within=BESIDE_THE_CROSS)
            on_padding = not (1 <= r <= 7 and 1 <= c <= 7)
            expected = (animate.PAD_TAP if taps[(r, c)] else animate.TAP) if (r, c) in taps else \
                animate.PAD if on_padding else animate.REAL
            assert seen == _rgb(expected), (r, c)
    for order in range(layer.out_height * layer.out_width):
        r, c = divmod(order, layer.out_width)
        expected = animate.CURRENT if order == frame.order else animate.DONE if order < frame.order else animate.REAL
        assert _colour_at(image, movie, "output", r, c) == _rgb(expected), (r, c)


def test_the_frames_differ_only_where_the_plan_moves():
    plan = animate.frame_plan(STRIDED_DILATED)
    movie = animate.Movie(plan, **SMALL)
    first, second = movie.image(0), movie.image(1)
    y, x = movie.pixel("output", 0, 1)
    assert tuple(second[y, x, :3]) == _rgb(animate.CURRENT) and tuple(first[y, x, :3]) == _rgb(animate.REAL)
    y, x = movie.pixel("output", 0, 0)
    assert tuple(second[y, x, :3]) == _rgb(animate.DONE) and tuple(first[y, x, :3]) == _rgb(animate.CURRENT)


def test_depthwise_frames_mark_the_same_taps_on_every_channel_drawn():
    separable = SeparableGeometry.from_layer((1, 4, 6, 6), 8, 3, padding=1)
    plan = animate.frame_plan(separable, "depthwise")
    movie = animate.Movie(plan, **SMALL)
    k = 7
    image = movie.image(k)
    real = [(r + 1, c + 1) for *_, r, c, pad in plan.frames[k].window.taps() if not pad]
    assert set(movie.grids) == {f"{part} {c}" for part in ("input", "filter", "output") for c in range(3)}
    for c in range(animate.MAX_CHANNELS_DRAWN):
        assert all(_colour_at(image, movie, f"input {c}", r, cc) == _rgb(animate.TAP) for r, cc in real)
        r, cc = plan.frames[k].position
        assert _colour_at(image, movie, f"output {c}", r, cc) == _rgb(animate.CURRENT)


def test_transposed_frames_light_the_input_pixel_and_its_output_patch():
    layer = ConvGeometry.from_layer((1, 3, 7, 7), 4, 3, stride=2, padding=1)
    plan = animate.frame_plan(layer, "transposed")
    movie = animate.Movie(plan, **SMALL)
    k = 6
    frame = plan.frames[k]
    image = movie.image(k)
    assert _colour_at(image, movie, "input", *frame.position) == _rgb(animate.TAP)
    for *_, r, c, pad in frame.window.taps():
        assert _colour_at(image, movie, "output", r + 1, c + 1, within=BESIDE_THE_CROSS) == \
            _rgb(animate.PAD_TAP if pad else animate.TAP)


# ---------------------------------------------------------------------- the files


def _gif(path) -> tuple[int, int]:
    with Image.open(path) as gif:
        return gif.n_frames, os.path.getsize(path)


@pytest.mark.parametrize("argv, frames", [
    (COURSE_FLAGS, 100),
    (STRIDED_DILATED_FLAGS, 25),
    ([*COURSE_FLAGS, "--scene", "depthwise", "--frames", "12"], 12),
    ([*STRIDED_DILATED_FLAGS, "--scene", "transposed"], 25),
], ids=["course", "strided+dilated", "depthwise", "transposed"])
def test_the_command_writes_a_small_gif_at_the_default_size(capsys, tmp_path, argv, frames):
    out = tmp_path / "layer.gif"
    code, printed, err = run(capsys, "animate", *argv, "--out", str(out))
    assert code == 0, err
    count, size = _gif(out)
    assert count == frames and size < 2 * 1024 * 1024
    assert f"Wrote {out}: " in printed and f"{frames} frames" in printed
    assert os.listdir(tmp_path) == ["layer.gif"]  # nothing else left behind


def test_the_default_file_is_named_after_the_scene(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, printed, _ = run(capsys, "animate", "--scene", "pointwise", "--frames", "3", "--input", "4x4x3",
                           "--kernel", "3", "--filters", "2")
    assert code == 0 and _gif(tmp_path / "npconv_pointwise.gif")[0] == 3
    assert "Read --input 4x4x3 as H x W x C" in printed


def test_animate_writes_atomically_and_replaces(tmp_path, monkeypatch):
    out = tmp_path / "movie.gif"
    out.write_bytes(b"the old movie")

    def broken_save(self, path, fps):
        with open(path, "wb") as partial:
            partial.write(b"half a GIF")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(animate.Movie, "save", broken_save)
    with pytest.raises(RuntimeError):
        animate.animate(STRIDED_DILATED, out, frames=2, **SMALL)
    assert out.read_bytes() == b"the old movie" and os.listdir(tmp_path) == ["movie.gif"]
    monkeypatch.undo()
    result = animate.animate(STRIDED_DILATED, out, frames=2, **SMALL)
    assert _gif(out) == (2, result.bytes) and os.listdir(tmp_path) == ["movie.gif"]


def test_an_mp4_where_ffmpeg_is_installed(tmp_path):
    from matplotlib import animation as mpl_animation

    if not mpl_animation.writers.is_available("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    result = animate.animate(STRIDED_DILATED, tmp_path / "movie.mp4", frames=3, **SMALL)
    assert result.bytes > 0 and (tmp_path / "movie.mp4").read_bytes()[4:8] == b"ftyp"
    assert os.listdir(tmp_path) == ["movie.mp4"]


def test_mp4_needs_ffmpeg(tmp_path, monkeypatch):
    from matplotlib import animation as mpl_animation

    monkeypatch.setattr(mpl_animation.writers, "is_available", lambda name: name != "ffmpeg")
    with pytest.raises(ConvArgumentError, match=re.escape("an .mp4 with ffmpeg installed")):
        animate.animate(STRIDED_DILATED, tmp_path / "movie.mp4", frames=2, **SMALL)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv, fragment", [
    (["--frames", "0"], "--frames: expected an int from 1 to 300, got 0"),
    (["--frames", "301"], "--frames: expected an int from 1 to 300, got 301"),
    (["--frames", "many"], "argument --frames: invalid int value: 'many'"),
    (["--fps", "0"], "--fps: expected a number of frames per second above 0 and at most 50"),
    (["--fps", "nan"], "--fps: expected a number of frames per second above 0"),
    (["--fps", "fast"], "argument --fps: invalid float value: 'fast'"),
    (["--scene", "sideways"], "argument --scene: invalid choice: 'sideways'"),
    (["--out", "movie.png"], "--out: expected a file name ending in .gif (Pillow) or .mp4 (ffmpeg)"),
    (["--out", "/no/such/folder/movie.gif"], "--out: expected a file in an existing folder"),
    (["--out", ""], "--out: expected a file name ending in .gif or .mp4, got ''"),
    (["--input", "700x8x1", "--kernel", "3"], "--input: expected a layer small enough to draw"),
    (["--stride", "0"], "--stride: expected a positive int"),
])
def test_bad_flags_exit_2_before_anything_is_drawn(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(animate.Movie, "__init__", lambda *a, **k: pytest.fail("drew despite a bad flag"))
    code, out, err = run(capsys, "animate", *argv)
    assert code == 2 and out == "" and fragment in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_a_folder_is_not_a_file(capsys, tmp_path):
    (tmp_path / "movie.gif").mkdir()
    code, _, err = run(capsys, "animate", "--out", str(tmp_path / "movie.gif"))
    assert code == 2 and "--out: expected a file name ending in .gif or .mp4, not a folder" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write to any folder")
def test_a_read_only_folder_is_refused(capsys, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    code, _, err = run(capsys, "animate", "--out", str(folder / "movie.gif"))
    assert code == 2 and "--out: expected a file in a folder you may write to" in err


def test_without_matplotlib_the_error_says_how_to_install_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # makes `import matplotlib` fail
    code, out, err = run(capsys, "animate", "--out", str(tmp_path / "movie.gif"))
    assert code == 2 and out == ""
    assert "npconv animate: error: matplotlib: expected installed: pip install 'npconv[plot]'" in err


def test_the_api_checks_its_arguments_by_name(tmp_path):
    for kwargs, fragment in [
        (dict(scene="diagonal"), "scene: expected one of 'standard'"),
        (dict(frames=2.5), "frames: expected an int from 1 to 300, got 2.5"),
        (dict(frames=True), "frames: expected an int from 1 to 300, got True"),
        (dict(fps=-1), "fps: expected a number of frames per second above 0"),
    ]:
        with pytest.raises(ConvArgumentError, match=re.escape(fragment)):
            animate.animate(COURSE, tmp_path / "movie.gif", **kwargs)
    for kwargs, fragment in [(dict(dpi=0), "dpi: expected a positive number, got 0"),
                             (dict(width=float("nan")), "width: expected a positive number, got nan"),
                             (dict(dpi=1000, width=20), "dpi: expected a dpi and width giving frames of at most")]:
        with pytest.raises(ConvArgumentError, match=re.escape(fragment)):
            animate.animate(COURSE, tmp_path / "movie.gif", **kwargs)
    with pytest.raises(ConvArgumentError, match="layer: expected a ConvGeometry or a SeparableGeometry"):
        animate.animate("14x14x3", tmp_path / "movie.gif")
    assert os.listdir(tmp_path) == []


def test_the_readmes_show_a_committed_small_animation():
    root = Path(__file__).resolve().parents[1]
    for readme in (root / "README.md", root / "notebooks" / "README.md"):
        gifs = re.findall(r"!\[[^\]]+\]\(([^)]+\.gif)\)", readme.read_text(encoding="utf-8"))
        assert gifs, f"{readme} shows no animation"
        for gif in gifs:
            frames, size = _gif(readme.parent / gif)
            assert frames > 1 and size < 1024 * 1024
