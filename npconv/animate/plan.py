"""What an animation shows, in pure Python: the scenes, the frame cap, which output positions are
shown and which input pixels each window reads (:func:`frame_plan`, :func:`window`) -- testable
against the kernels without drawing anything.  Imports neither NumPy nor matplotlib."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from npconv.errors import ConvArgumentError, ConvTypeError, echo
from npconv.geometry import ConvGeometry, Pair, SeparableGeometry

#: Scene name -> what it shows.
SCENES: dict[str, str] = {
    "standard": "one filter's KH x KW x C_in/groups volume sliding over the padded input",
    "depthwise": "one KH x KW filter per input channel, each channel on its own",
    "pointwise": "a 1 x 1 filter across all channels of the depthwise output",
    "transposed": "the transposed convolution: each input pixel scatters a kernel-sized patch",
}

#: Frames drawn when not asked otherwise: every position of the course layer's 10 x 10 output.
DEFAULT_MAX_FRAMES = 100
#: Most frames an animation may have (frames are held in memory until the file is written).
MAX_FRAMES = 300
DEFAULT_FPS = 4.0
#: GIF frame times are whole hundredths of a second, and viewers slow down anything under 0.02 s.
MAX_FPS = 50.0
DEFAULT_DPI = 72
#: Figure width in inches (the height follows the scene's shape).
DEFAULT_WIDTH = 8.0
#: Most rows or columns of one drawn grid: beyond that a cell is a fraction of a pixel.
MAX_DRAWN_SIDE = 600
#: Channels drawn side by side in the depthwise and pointwise scenes; the rest are counted.
MAX_CHANNELS_DRAWN = 3
#: Shades of the transposed scene's output, from one patch added to the most so far.
SHADES = 8
#: Most pixels a frame may have: every frame is held in memory (a byte a pixel) until written.
MAX_FRAME_PIXELS = 2_000_000
#: Output file suffix -> movie writer: GIFs through :func:`gif_writer` (on Pillow), MP4 through
#: matplotlib's ffmpeg writer.
WRITERS = {".gif": "pillow", ".mp4": "ffmpeg"}

#: Colours, as in notebook 1: input, padding, taps, outputs being computed and done.
REAL, PAD, TAP, PAD_TAP, CURRENT, DONE = "#ffffff", "#e3e3e3", "#4c72b0", "#b8c6e0", "#f28e2b", "#fbd7b5"

# ---------------------------------------------------------------------- the plan (pure Python)


@dataclass(frozen=True)
class Window:
    """Where the taps of one window land: tap ``(kh, kw)`` reads input pixel ``(rows[kh], cols[kw])``.

    Rows and columns are in the unpadded input's coordinates: one below 0 or
    at least ``height`` (``width``) lies on the padding and multiplies a zero.
    """

    rows: tuple[int, ...]
    cols: tuple[int, ...]
    height: int
    width: int

    def taps(self) -> list[tuple[int, int, int, int, bool]]:
        """``(kh, kw, row, col, on_padding)`` for every tap, in the kernel's loop order."""
        return [(kh, kw, r, c, not (0 <= r < self.height and 0 <= c < self.width))
                for kh, r in enumerate(self.rows) for kw, c in enumerate(self.cols)]

    @property
    def real_taps(self) -> int:
        """Taps on real input (for one channel)."""
        return (sum(0 <= r < self.height for r in self.rows) * sum(0 <= c < self.width for c in self.cols))

    @property
    def padded_taps(self) -> int:
        """Taps on the padding (for one channel)."""
        return len(self.rows) * len(self.cols) - self.real_taps


def window(geometry: ConvGeometry, oh: int, ow: int) -> Window:
    """The taps of output ``(oh, ow)``: ``row = oh * stride - pad_top + kh * dilation`` (and alike for columns)."""
    g = geometry
    if not (0 <= oh < g.out_height and 0 <= ow < g.out_width):
        raise ConvArgumentError("position", f"an output position within {g.out_height} x {g.out_width}",
                                repr((oh, ow)))
    (top, _), (left, _) = g.padding
    rows = tuple(oh * g.stride[0] - top + kh * g.dilation[0] for kh in range(g.kernel_h))
    cols = tuple(ow * g.stride[1] - left + kw * g.dilation[1] for kw in range(g.kernel_w))
    return Window(rows, cols, g.height, g.width)


def transposed_output_padding(geometry: ConvGeometry) -> Pair:
    """``output_padding`` that makes the transposed convolution's output the layer's input size.

    With stride ``s`` the forward layer ignores the last ``(H + pads - D (K - 1) - 1) % s`` rows;
    the transposed layer gives them back as rows no patch reaches (as PyTorch's
    ``conv_transpose2d(..., output_padding=...)``).
    """
    g = geometry
    (pt, pb), (pl, pr) = g.padding
    return ((g.height + pt + pb - g.dilation[0] * (g.kernel_h - 1) - 1) % g.stride[0],
            (g.width + pl + pr - g.dilation[1] * (g.kernel_w - 1) - 1) % g.stride[1])


@dataclass(frozen=True)
class Frame:
    """One frame: the output position computed (for ``transposed``, the input pixel scattered).

    ``order`` is its index in loop order (row by row), so ``order`` positions are done before it;
    ``window`` says which pixels it reads (for ``transposed``, which output pixels it writes).
    """

    position: Pair
    order: int
    window: Window


@dataclass(frozen=True)
class FramePlan:
    """What an animation shows: the scene, the layer it draws and one :class:`Frame` per frame."""

    scene: str
    geometry: ConvGeometry
    frames: tuple[Frame, ...]
    positions: int

    @property
    def subsampled(self) -> bool:
        return len(self.frames) < self.positions

    def note(self) -> str:
        """How many of the output positions the frames show."""
        what = "input pixels" if self.scene == "transposed" else "output positions"
        if not self.subsampled:
            return f"every one of the {self.positions:,} {what}"
        return (f"{len(self.frames):,} of the {self.positions:,} {what}, evenly spaced in loop order "
                f"(about 1 in {self.positions / len(self.frames):.1f})")


def check_scene(scene: object, argument: str = "scene") -> str:
    """``scene`` if it names one of :data:`SCENES`."""
    if not isinstance(scene, str) or scene.strip().lower() not in SCENES:
        raise ConvArgumentError(argument, f"one of {', '.join(map(repr, SCENES))}", repr(scene))
    return scene.strip().lower()


def check_frames(frames: object, argument: str = "frames") -> int:
    """``frames`` if it is an int from 1 to :data:`MAX_FRAMES`."""
    expected = f"an int from 1 to {MAX_FRAMES}"
    if isinstance(frames, bool) or not isinstance(frames, int):
        raise ConvTypeError(argument, expected, repr(frames))
    if not 1 <= frames <= MAX_FRAMES:
        raise ConvArgumentError(argument, expected, repr(frames))
    return frames


def check_fps(fps: object, argument: str = "fps") -> float:
    """``fps`` if it is a number of frames per second above 0 and at most :data:`MAX_FPS`."""
    expected = f"a number of frames per second above 0 and at most {MAX_FPS:g}"
    if isinstance(fps, bool) or not isinstance(fps, (int, float)):
        raise ConvTypeError(argument, expected, repr(fps))
    if not 0 < fps <= MAX_FPS:  # also refuses nan
        raise ConvArgumentError(argument, expected, repr(fps))
    return float(fps)


def check_output(path: object, argument: str = "out") -> Path:
    """``path`` if a movie can be written there: a .gif or .mp4 file in an existing, writable folder
    (a regular file or a new one: :func:`npconv.files.check_output`).

    Checked before any drawing, so that a typo costs nothing.  (Whether ffmpeg is installed for
    an .mp4 is checked by :func:`animate`, once matplotlib is imported.)
    """
    from npconv import files

    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConvArgumentError(argument, "a file name ending in .gif or .mp4", echo(path))
    target = Path(path)
    if target.suffix.lower() not in WRITERS:
        raise ConvArgumentError(argument, "a file name ending in .gif (Pillow) or .mp4 (ffmpeg)", echo(str(path)))
    return files.check_output(target, argument)


def scene_layer(layer: ConvGeometry | SeparableGeometry, scene: str) -> ConvGeometry:
    """The layer a scene draws.

    ``standard`` and ``transposed`` draw a standard layer (a separable one's
    standard equivalent); ``depthwise`` and ``pointwise`` draw the parts of a
    separable layer (of a standard layer's separable counterpart, unless the
    layer already is depthwise or pointwise).
    """
    scene = check_scene(scene)
    if isinstance(layer, SeparableGeometry):
        separable = layer
        if scene in ("standard", "transposed"):
            return layer.standard_equivalent()
    elif isinstance(layer, ConvGeometry):
        if scene in ("standard", "transposed"):
            return layer
        if (scene == "depthwise" and layer.is_depthwise) or (scene == "pointwise" and layer.is_pointwise):
            return layer
        separable = SeparableGeometry.from_layer(
            layer.input_shape, layer.out_channels, (layer.kernel_h, layer.kernel_w), stride=layer.stride,
            padding=layer.padding_argument, dilation=layer.dilation, bias="none")
    else:
        raise ConvTypeError("layer", "a ConvGeometry or a SeparableGeometry", type(layer).__name__)
    return separable.depthwise if scene == "depthwise" else separable.pointwise


def shown_positions(total: int, frames: int) -> list[int]:
    """Loop-order indices of the positions shown: all of them, or ``frames`` evenly spaced ones
    (the first and the last always among them)."""
    if total <= frames:
        return list(range(total))
    if frames == 1:
        return [0]
    return [round(i * (total - 1) / (frames - 1)) for i in range(frames)]


def _drawn_sides(g: ConvGeometry, scene: str) -> dict[str, tuple[int, int]]:
    (pt, pb), (pl, pr) = g.padding
    padded = (g.height + pt + pb, g.width + pl + pr)
    output = (g.out_height, g.out_width)
    return {"padded input": padded, "output": output} if scene != "pointwise" else {"input": output}


def frame_plan(layer: ConvGeometry | SeparableGeometry, scene: str = "standard",
               frames: int = DEFAULT_MAX_FRAMES, *, argument: str = "layer") -> FramePlan:
    """The frames of ``scene`` for ``layer``: one per output position, at most ``frames`` of them.

    Errors name ``argument`` for a layer too large to draw (a grid of more than
    :data:`MAX_DRAWN_SIDE` rows or columns).
    """
    scene = check_scene(scene)
    frames = check_frames(frames)
    g = scene_layer(layer, scene)
    for what, (rows, cols) in _drawn_sides(g, scene).items():
        if max(rows, cols) > MAX_DRAWN_SIDE:
            raise ConvArgumentError(argument, f"a layer small enough to draw: at most {MAX_DRAWN_SIDE} rows "
                                    f"and columns per grid", f"a {what} of {rows} x {cols}")
    total = g.out_height * g.out_width
    shown = shown_positions(total, frames)
    plan = tuple(Frame((k // g.out_width, k % g.out_width), k, window(g, k // g.out_width, k % g.out_width))
                 for k in shown)
    return FramePlan(scene, g, plan, total)
