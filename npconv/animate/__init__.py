"""Animated pictures of a convolution layer: the window sliding, the output filling in.

:func:`animate` writes an animated GIF (or an MP4, where ffmpeg is installed)
of one *scene* of a layer:

``standard``
    the window of one filter -- a ``KH x KW x C_in/groups`` volume -- sliding
    over the padded input, its taps marked (those on the padding crossed: they
    multiply zeros), with stride and dilation, and the output filling in;
``depthwise``
    one ``KH x KW`` filter per input channel, each channel on its own (the
    first part of a depthwise-separable layer);
``pointwise``
    a ``1 x 1`` filter across all channels of the depthwise output (its
    second part);
``transposed``
    the transposed convolution of the same layer: each of its input pixels
    scatters a kernel-sized patch (the same taps, read backwards) into the
    output, overlapping patches adding up, the padding cropped.

Every frame computes one output position; frame ``k`` highlights
``plan.frames[k].position``.  When a layer has more output positions than the
frame cap, evenly spaced positions are shown (in loop order) and the picture
says so; the positions in between are still drawn as done.

Three modules: :mod:`~npconv.animate.plan` -- which positions are shown and
which input pixels each window reads -- is pure Python (:func:`frame_plan`,
:func:`window`), so it can be tested against the kernels;
:mod:`~npconv.animate.movie` (:class:`Movie`) draws it with matplotlib (an
optional extra: ``pip install 'npconv[plot]'``), imported only when drawing,
and :mod:`~npconv.animate.gif` writes the GIF.  Importing this package imports
neither NumPy nor matplotlib.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from npconv.animate.movie import Movie, import_matplotlib
from npconv.animate.plan import (
    CURRENT,
    DEFAULT_DPI,
    DEFAULT_FPS,
    DEFAULT_MAX_FRAMES,
    DEFAULT_WIDTH,
    DONE,
    MAX_CHANNELS_DRAWN,
    MAX_FPS,
    MAX_FRAMES,
    PAD,
    PAD_TAP,
    REAL,
    SCENES,
    TAP,
    WRITERS,
    Frame,
    FramePlan,
    Window,
    check_fps,
    check_frames,
    check_output,
    check_scene,
    frame_plan,
    scene_layer,
    shown_positions,
    transposed_output_padding,
    window,
)
from npconv.errors import ConvArgumentError
from npconv.geometry import ConvGeometry, SeparableGeometry


@dataclass(frozen=True)
class AnimationResult:
    """What :func:`animate` wrote."""

    path: Path
    plan: FramePlan
    fps: float
    bytes: int

    def summary(self) -> str:
        frames = len(self.plan.frames)
        return (f"Wrote {self.path}: {self.plan.scene} scene, {frames} frame{'s' * (frames != 1)} "
                f"({self.plan.note()}), {self.fps:g} fps ({frames / self.fps:.1f} s), {self.bytes / 1024:,.0f} KiB.")


def animate(layer: ConvGeometry | SeparableGeometry, out: str | os.PathLike, *, scene: str = "standard",
            frames: int = DEFAULT_MAX_FRAMES, fps: float = DEFAULT_FPS, dpi: float = DEFAULT_DPI,
            width: float = DEFAULT_WIDTH, argument_names: dict[str, str] | None = None) -> AnimationResult:
    """Write an animation of ``scene`` (one of :data:`SCENES`) of ``layer`` to ``out``.

    ``out`` ends in ``.gif`` (written with Pillow) or ``.mp4`` (needs ffmpeg);
    it is written to a temporary file beside it and renamed into place, so an
    interrupted run leaves no half-written movie.  ``frames`` caps the frame
    count (one frame per output position; evenly spaced positions when there
    are more).  Every argument is checked before anything is drawn; errors
    name the argument, or ``argument_names[argument]`` (the command line's flags).
    """
    names = {"layer": "layer", "scene": "scene", "frames": "frames", "fps": "fps", "out": "out",
             **(argument_names or {})}
    scene = check_scene(scene, names["scene"])
    frames = check_frames(frames, names["frames"])
    fps = check_fps(fps, names["fps"])
    target = check_output(out, names["out"])
    plan = frame_plan(layer, scene, frames, argument=names["layer"])
    import_matplotlib()
    from matplotlib import animation

    writer = WRITERS[target.suffix.lower()]
    if not animation.writers.is_available(writer):
        raise ConvArgumentError(names["out"], f"a .gif, or an .mp4 with {writer} installed (not found: "
                                f"install ffmpeg, or write a .gif)", repr(str(out)))
    movie = Movie(plan, dpi=dpi, width=width)
    temporary = target.with_name(f".{target.stem}.{os.urandom(4).hex()}.partial{target.suffix}")
    try:
        movie.save(temporary, fps)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return AnimationResult(target, plan, fps, target.stat().st_size)


__all__ = [
    "CURRENT",
    "DEFAULT_DPI",
    "DEFAULT_FPS",
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_WIDTH",
    "DONE",
    "MAX_CHANNELS_DRAWN",
    "MAX_FPS",
    "MAX_FRAMES",
    "PAD",
    "PAD_TAP",
    "REAL",
    "SCENES",
    "TAP",
    "WRITERS",
    "AnimationResult",
    "Frame",
    "FramePlan",
    "Movie",
    "Window",
    "animate",
    "check_fps",
    "check_frames",
    "check_output",
    "check_scene",
    "frame_plan",
    "import_matplotlib",
    "scene_layer",
    "shown_positions",
    "transposed_output_padding",
    "window",
]
