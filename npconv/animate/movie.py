"""Drawing a :class:`~npconv.animate.plan.FramePlan` with matplotlib (imported only when drawing)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from npconv.animate.gif import gif_writer
from npconv.animate.plan import (
    CURRENT,
    DEFAULT_DPI,
    DEFAULT_FPS,
    DEFAULT_WIDTH,
    DONE,
    MAX_CHANNELS_DRAWN,
    MAX_FRAME_PIXELS,
    PAD,
    PAD_TAP,
    REAL,
    SHADES,
    TAP,
    WRITERS,
    Frame,
    FramePlan,
    Window,
    transposed_output_padding,
    window,
)
from npconv.errors import ConvArgumentError, MissingDependencyError
from npconv.geometry import ConvGeometry, Pair
from npconv.render import pair_text


def import_matplotlib(argument: str = "matplotlib") -> ModuleType:
    """matplotlib, or a clear error saying how to install it."""
    try:
        import matplotlib
    except ImportError as error:
        raise MissingDependencyError(
            argument, "installed: pip install 'npconv[plot]' (or pip install matplotlib)", str(error)) from None
    return matplotlib  # drawn on its Agg canvas directly: pyplot's backend (a notebook's) is left alone


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _padding_text(g: ConvGeometry) -> str:
    (pt, pb), (pl, pr) = g.padding
    if pt == pb == pl == pr:
        return str(pt)
    if pt == pb and pl == pr:
        return f"{pt}x{pl}"
    return f"{pt},{pb},{pl},{pr}"


def _channels(n: int) -> str:
    return f"{n:,} channel{'s' * (n != 1)}"


def _background_artist(rgba):
    """An artist that paints a figure-sized RGBA array as it is: no resampling, unlike ``figimage``."""
    from matplotlib.artist import Artist

    class Background(Artist):
        def __init__(self, pixels):
            super().__init__()
            self.pixels = pixels[::-1].copy()  # the renderer's rows go up from the bottom
            self.set_zorder(-1)  # under the axes

        def draw(self, renderer):
            gc = renderer.new_gc()
            renderer.draw_image(gc, 0, 0, self.pixels)
            gc.restore()

    return Background(rgba)


@dataclass
class _Grid:
    """One grid of cells whose top-left corner is at ``(left, top)`` in the axes' data units (a cell each)."""

    name: str
    left: int
    top: int
    rows: int
    cols: int
    padding: tuple[Pair, Pair]
    colour: str

    def center(self, row: int, col: int) -> tuple[float, float]:
        return self.left + col + 0.5, self.top + row + 0.5


class Movie:
    """The frames of a :class:`FramePlan`, drawn with matplotlib.

    ``Movie(plan).image(k)`` is frame ``k`` as an ``(height, width, 4)`` uint8
    RGBA array, :meth:`pixel` says where a grid's cell is in it, and
    :meth:`save` writes every frame to a GIF or MP4.

    All grids are cells of one RGBA image in data units (one cell per unit),
    painted with NumPy per frame; what never changes (titles, labels, arrows,
    the stacks of channels behind a grid) is rendered once into a background
    image, so that a frame costs one image, the grid lines and two lines of text.
    """

    def __init__(self, plan: FramePlan, *, dpi: float = DEFAULT_DPI, width: float = DEFAULT_WIDTH):
        import_matplotlib()
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        for name, value in (("dpi", dpi), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ConvArgumentError(name, "a positive number", repr(value))
        self.plan, self.dpi = plan, dpi
        self._np = np
        self.grids: dict[str, _Grid] = {}
        self._texts: list[tuple[float, float, str, dict]] = []  # static labels, in data units
        self._arrows: list[tuple[tuple[float, float], tuple[float, float]]] = []
        self._hints: list[tuple[_Grid, int, float]] = []  # (grid, planes stacked behind it, their step)
        self._notes: list[str] = []  # static, under the pictures
        getattr(self, f"_layout_{plan.scene}")()
        if plan.geometry.batch > 1:
            self._notes.append(f"image 0 of a batch of {plan.geometry.batch}")

        grids = self.grids.values()
        self._x0, self._y0 = min(g.left for g in grids), min(g.top for g in grids)
        self._x1, self._y1 = max(g.left + g.cols for g in grids), max(g.top + g.rows for g in grids)
        right = max([self._x1] + [g.left + g.cols + n * step for g, n, step in self._hints]) + 1
        top = min([self._y0] + [g.top - n * step for g, n, step in self._hints]) - 1.5
        left, bottom = self._x0 - 1, self._y1 + 2.6
        span_x, span_y = right - left, bottom - top
        header = 0.95  # inches for the title, the subtitle and the caption
        height = min(max(width * span_y / span_x + header, 2.4), 9.0)
        # whole, even pixel counts: the background is a pixel array, and H.264 wants even sides
        width, height = (2 * max(1, round(side * dpi / 2)) / dpi for side in (width, height))
        pixels = round(width * dpi) * round(height * dpi)
        if pixels > MAX_FRAME_PIXELS:
            raise ConvArgumentError("dpi", f"a dpi and width giving frames of at most {MAX_FRAME_PIXELS:,} pixels",
                                    f"dpi {dpi:g} and width {width:g} in: {pixels:,} pixels")
        self.figure = Figure(figsize=(width, height), dpi=dpi, facecolor="white")
        FigureCanvasAgg(self.figure)
        self.axes = ax = self.figure.add_axes((0.01, 0.01, 0.98, 1 - header / height - 0.01))
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        ax.set_aspect("equal", adjustable="box")
        ax.axis("off")
        cell_points = min(width * 0.98 / span_x, (height - header) / span_y) * 72
        self._font = font = max(6.0, min(10.0, width * 1.1))
        self._static = [
            self.figure.text(0.5, 1 - 0.1 / height, self._title(), ha="center", va="top", fontsize=font + 1,
                             fontweight="bold"),
            self.figure.text(0.5, 1 - 0.37 / height, self._subtitle(), ha="center", va="top", fontsize=font),
            ax.text(left + 0.5, bottom - 0.3, "\n".join(self._notes), ha="left", va="bottom",
                    fontsize=font - 1, color="#555"),
        ]
        self._caption = self.figure.text(0.5, 1 - 0.62 / height, "", ha="center", va="top", fontsize=font,
                                         color="#333")
        self._footer = ax.text(right - 0.5, bottom - 0.3, "", ha="right", va="bottom", fontsize=font - 1,
                               color="#555")
        self._build_artists(cell_points)
        self._flatten_static()
        self._scatter_counts = None
        self._counted = 0

    # ------------------------------------------------------------------ layouts

    def _grid(self, name: str, left: float, top: float, rows: int, cols: int,
              padding: tuple[Pair, Pair] = ((0, 0), (0, 0)), colour: str = REAL) -> _Grid:
        grid = _Grid(name, round(left), round(top), rows, cols, padding, colour)
        self.grids[name] = grid
        return grid

    def _label(self, grid: _Grid, text: str, below: bool = True) -> None:
        y = grid.top + grid.rows + 0.4 if below else grid.top - 0.6
        self._texts.append((grid.left + grid.cols / 2, y, text, {"va": "top" if below else "bottom"}))

    def _hint(self, grid: _Grid, channels: int) -> None:
        """Draw up to three planes stacked behind ``grid``: it is one of ``channels`` channels."""
        if channels > 1:
            self._hints.append((grid, min(channels - 1, 3), max(0.35, 0.05 * max(grid.rows, grid.cols))))

    def _layout_standard(self) -> None:
        g = self.plan.geometry
        (pt, pb), (pl, pr) = g.padding
        rows, cols = g.height + pt + pb, g.width + pl + pr
        depth = g.in_channels_per_group
        x = self._grid("input", 0, 0, rows, cols, g.padding)
        gap = max(3.0, 0.15 * cols)
        mid = rows / 2
        w = self._grid("filter", cols + gap, mid - g.kernel_h / 2, g.kernel_h, g.kernel_w, colour=TAP)
        y = self._grid("output", w.left + w.cols + gap, mid - g.out_height / 2, g.out_height, g.out_width)
        self._hint(x, g.in_channels)
        self._hint(w, depth)
        self._hint(y, g.out_channels)
        self._label(x, f"input x: channel 0 of {g.in_channels}" + (f" (group 0: {depth})" if g.groups > 1 else "")
                    + (" + padding" if g.has_padding else ""))
        self._label(w, f"filter 0\n{g.kernel_h}x{g.kernel_w}x{depth}")
        self._label(y, f"output y: channel 0 of {g.out_channels:,}\n(one channel per filter)")
        self._arrows += [((x.left + cols + 0.4, mid), (w.left - 0.4, mid)),
                         ((w.left + w.cols + 0.4, mid), (y.left - 0.4, mid))]

    def _layout_depthwise(self) -> None:
        g = self.plan.geometry
        (pt, pb), (pl, pr) = g.padding
        rows, cols = g.height + pt + pb, g.width + pl + pr
        drawn = min(g.in_channels, MAX_CHANNELS_DRAWN)
        gap = max(3.0, 0.2 * cols)
        m = g.out_channels_per_group
        for c in range(drawn):
            left = c * (cols + gap)
            x = self._grid(f"input {c}", left, 0, rows, cols, g.padding)
            w = self._grid(f"filter {c}", left + cols / 2 - g.kernel_w / 2, rows + 2, g.kernel_h, g.kernel_w,
                           colour=TAP)
            y = self._grid(f"output {c}", left + cols / 2 - g.out_width / 2, w.top + w.rows + 3,
                           g.out_height, g.out_width)
            self._label(x, f"input channel {c}", below=False)
            self._texts.append((w.left + w.cols + 0.6, w.top + w.rows / 2, f"filter {c}",
                                {"va": "center", "ha": "left"}))
            self._label(y, f"output channel {c * m}" + (f" (of {m} per input channel)" if m > 1 else ""))
            centre = x.left + cols / 2
            self._arrows += [((centre, rows + 0.2), (centre, w.top - 0.2)),
                             ((centre, w.top + w.rows + 0.2), (centre, y.top - 0.2))]
        if g.in_channels > drawn:
            self._notes.append(f"{drawn} of {_channels(g.in_channels)} drawn; each has its own filter")

    def _layout_pointwise(self) -> None:
        g = self.plan.geometry
        drawn = min(g.in_channels, MAX_CHANNELS_DRAWN)
        rows, cols = g.height, g.width
        gap = max(2.0, 0.2 * cols)
        for c in range(drawn):
            x = self._grid(f"input {c}", c * (cols + gap), 0, rows, cols)
            self._label(x, f"input channel {c}" + (" (depthwise output)" if c == 0 else ""), below=False)
        width = drawn * cols + (drawn - 1) * gap
        w = self._grid("filter", width / 2 - drawn / 2, rows + 2, 1, drawn, colour=TAP)
        y = self._grid("output", width / 2 - cols / 2, w.top + 3, rows, cols)
        self._hint(y, g.out_channels)
        self._texts.append((w.left + w.cols + 0.6, w.top + 0.5, f"filter 0: 1x1x{g.in_channels}",
                            {"va": "center", "ha": "left"}))
        self._label(y, f"output y: channel 0 of {g.out_channels:,}")
        self._arrows += [((width / 2, rows + 0.2), (width / 2, w.top - 0.2)),
                         ((width / 2, w.top + 1.2), (width / 2, y.top - 0.2))]
        if g.in_channels > drawn:
            self._notes.append(f"{drawn} of {_channels(g.in_channels)} drawn; the filter spans them all")

    def _layout_transposed(self) -> None:
        g = self.plan.geometry
        (pt, pb), (pl, pr) = g.padding
        rows, cols = g.height + pt + pb, g.width + pl + pr
        mid = rows / 2
        x = self._grid("input", 0, mid - g.out_height / 2, g.out_height, g.out_width)
        gap = max(3.0, 0.15 * cols)
        w = self._grid("filter", g.out_width + gap, mid - g.kernel_h / 2, g.kernel_h, g.kernel_w, colour=TAP)
        y = self._grid("output", w.left + w.cols + gap, 0, rows, cols, g.padding)
        self._hint(x, g.out_channels)
        self._hint(y, g.in_channels)
        self._label(x, f"input: channel 0 of {g.out_channels:,}")
        self._label(w, f"filter\n{g.kernel_h}x{g.kernel_w}")
        self._label(y, f"output: channel 0 of {g.in_channels}" + (", padding cropped" if g.has_padding else ""))
        self._arrows += [((x.left + x.cols + 0.4, mid), (w.left - 0.4, mid)),
                         ((w.left + w.cols + 0.4, mid), (y.left - 0.4, mid))]

    def _title(self) -> str:
        g, scene = self.plan.geometry, self.plan.scene
        shape = f"{g.height}x{g.width}x{g.in_channels} -> {g.out_height}x{g.out_width}x{g.out_channels}"
        layer = (f"{g.kernel_h}x{g.kernel_w}, stride {pair_text(g.stride)}, padding {_padding_text(g)}, "
                 f"dilation {pair_text(g.dilation)}")
        if scene == "standard":
            return f"Convolution {shape}: {layer}" + (f", groups {g.groups}" if g.groups > 1 else "")
        if scene == "depthwise":
            return f"Depthwise {shape}: {layer}, one filter per channel"
        if scene == "pointwise":
            return f"Pointwise {shape}: a 1x1 filter across all {g.in_channels} channels"
        op = transposed_output_padding(g)
        extra = f", output_padding {pair_text(op)}" if any(op) else ""
        return (f"Transposed convolution {g.out_height}x{g.out_width}x{g.out_channels} -> "
                f"{g.height}x{g.width}x{g.in_channels}: {layer}{extra}")

    def _subtitle(self) -> str:
        g, scene = self.plan.geometry, self.plan.scene
        kernel, depth = f"{g.kernel_h}x{g.kernel_w}", g.in_channels_per_group
        padding = "; taps on the padding (x) multiply zeros" if g.has_padding else ""
        if scene == "standard":
            return (f"each output = {'bias + ' if g.bias else ''}the sum of {g.kernel_h * g.kernel_w * depth:,} "
                    f"products: {kernel} taps x {_channels(depth)}{padding}")
        if scene == "depthwise":
            return (f"output channel c = the sum of {g.kernel_h * g.kernel_w} products of input channel c alone"
                    f"{padding}")
        if scene == "pointwise":
            terms = " + ".join(f"w[f,{c}] x[{c},i,j]" for c in range(g.in_channels))
            return f"y[f,i,j] = {'bias + ' if g.bias else ''}" + (
                terms if g.in_channels <= 3 else f"the sum over {g.in_channels} channels c of w[f,c] x[c,i,j]")
        return (f"each input pixel x the {kernel} filter is added into a {kernel} output patch, "
                f"{pair_text(g.stride)} apart; overlaps add up (darker)" + ("; x: cropped" if g.has_padding else ""))

    # ------------------------------------------------------------------ artists

    def _build_artists(self, cell_points: float) -> None:
        from matplotlib.collections import LineCollection
        from matplotlib.patches import FancyArrowPatch, Rectangle

        np, ax = self._np, self.axes
        for grid, planes, step in self._hints:  # a stack of planes behind: the other channels
            for i in range(planes, 0, -1):
                self._static.append(ax.add_patch(Rectangle(
                    (grid.left + i * step, grid.top - i * step), grid.cols, grid.rows, facecolor="white",
                    edgecolor="#999", linewidth=0.7, zorder=1)))
        # every grid's cells in one RGBA image (transparent between grids)
        self._base = np.zeros((self._y1 - self._y0, self._x1 - self._x0, 4), dtype=np.uint8)
        edges = []
        for grid in self.grids.values():
            cells = self._view(self._base, grid)
            cells[..., 3] = 255
            cells[..., :3] = _rgb(PAD)
            (pt, pb), (pl, pr) = grid.padding
            cells[pt:grid.rows - pb, pl:grid.cols - pr, :3] = _rgb(grid.colour)
            right, bottom = grid.left + grid.cols, grid.top + grid.rows
            rows = range(grid.rows + 1) if cell_points >= 3.5 else (0, grid.rows)  # too small: the border
            cols = range(grid.cols + 1) if cell_points >= 3.5 else (0, grid.cols)
            edges += [[(grid.left, grid.top + r), (right, grid.top + r)] for r in rows]
            edges += [[(grid.left + c, grid.top), (grid.left + c, bottom)] for c in cols]
        self._image = ax.imshow(self._base, extent=(self._x0, self._x1, self._y1, self._y0),
                                interpolation="nearest", zorder=2)
        self._lines = ax.add_collection(LineCollection(edges, colors="#888", linewidths=0.5, zorder=3))
        self._markers = ax.scatter(np.empty(0), np.empty(0), marker="x", s=max(4.0, (0.6 * cell_points) ** 2),
                                   color=TAP, linewidths=0.9, zorder=4)
        for x, y, text, options in self._texts:
            self._static.append(ax.text(x, y, text, ha=options.get("ha", "center"), va=options["va"],
                                        fontsize=self._font - 1))
        for start, end in self._arrows:
            self._static.append(ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                                             color="#555", zorder=3)))

    def _flatten_static(self) -> None:
        """Render what never changes once, into a background image (text is most of a frame's cost)."""
        dynamic = (self._caption, self._footer, self._image, self._lines, self._markers)
        for artist in dynamic:
            artist.set_visible(False)
        self.figure.canvas.draw()
        background = self._np.asarray(self.figure.canvas.buffer_rgba()).copy()
        for artist in dynamic:
            artist.set_visible(True)
        for artist in self._static:
            artist.remove()
        self.figure.add_artist(_background_artist(background))

    def _view(self, image, grid: _Grid):
        """``grid``'s cells in ``image`` (the composite): a view, ``(rows, cols, 4)``."""
        top, left = grid.top - self._y0, grid.left - self._x0
        return image[top:top + grid.rows, left:left + grid.cols]

    # ------------------------------------------------------------------ frames

    def draw(self, k: int) -> None:
        """Set every artist to frame ``k`` (rendered by the next draw of the figure)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(self.plan.frames):
            raise ConvArgumentError("frame", f"a frame index from 0 to {len(self.plan.frames) - 1}", repr(k))
        frame = self.plan.frames[k]
        image = self._base.copy()
        self._crosses: list[tuple[float, float]] = []
        if self.plan.scene == "transposed":
            self._draw_transposed(frame, image)
        else:
            self._draw_window(frame, image)
        self._image.set_data(image)
        self._markers.set_offsets(self._np.array(self._crosses, dtype=float).reshape(-1, 2))
        self._footer.set_text(f"frame {k + 1} of {len(self.plan.frames)}"
                              + (f"; {self.plan.note()}" if self.plan.subsampled else ""))

    def _paint_output(self, image, grid: _Grid, order: int) -> None:
        np = self._np
        cells = self._view(image, grid)
        done = np.arange(grid.rows * grid.cols).reshape(grid.rows, grid.cols) < order
        cells[done, :3] = _rgb(DONE)
        cells[order // grid.cols, order % grid.cols, :3] = _rgb(CURRENT)

    def _paint_taps(self, image, grid: _Grid, win: Window, padding: tuple[Pair, Pair]) -> None:
        """The window's taps on ``grid`` (a padded grid): blue on real input, pale and crossed on padding."""
        np = self._np
        rows = np.add(win.rows, padding[0][0])
        cols = np.add(win.cols, padding[1][0])
        for kh, kw, _, _, on_padding in win.taps():
            self._view(image, grid)[rows[kh], cols[kw], :3] = _rgb(PAD_TAP if on_padding else TAP)
            if on_padding:
                self._crosses.append(grid.center(int(rows[kh]), int(cols[kw])))

    def _draw_window(self, frame: Frame, image) -> None:
        g, scene = self.plan.geometry, self.plan.scene
        oh, ow = frame.position
        win = frame.window
        drawn = min(g.in_channels, MAX_CHANNELS_DRAWN)
        if scene == "standard":
            self._paint_taps(image, self.grids["input"], win, g.padding)
            self._paint_output(image, self.grids["output"], frame.order)
            self._caption.set_text(f"output ({oh}, {ow})"
                                   + (f": {win.padded_taps} taps on the padding" if win.padded_taps else ""))
        elif scene == "depthwise":
            for c in range(drawn):
                self._paint_taps(image, self.grids[f"input {c}"], win, g.padding)
                self._paint_output(image, self.grids[f"output {c}"], frame.order)
            self._caption.set_text(f"output ({oh}, {ow})"
                                   + (f": {win.padded_taps} taps on the padding" if win.padded_taps else ""))
        else:  # pointwise: the 1x1 window is the same pixel of every channel
            for c in range(drawn):
                self._paint_taps(image, self.grids[f"input {c}"], win, g.padding)
            self._paint_output(image, self.grids["output"], frame.order)
            self._caption.set_text(f"output ({oh}, {ow}) of channel 0: i = {oh}, j = {ow}, f = 0")

    def _draw_transposed(self, frame: Frame, image) -> None:
        np = self._np
        g = self.plan.geometry
        x, y = self.grids["input"], self.grids["output"]
        cells = self._view(image, x)
        done = np.arange(x.rows * x.cols).reshape(x.rows, x.cols) < frame.order
        cells[done, :3] = _rgb(DONE)
        cells[frame.position[0], frame.position[1], :3] = _rgb(TAP)

        # how many patches have been added into each output cell so far, this one included
        if self._scatter_counts is None or frame.order < self._counted - 1:
            self._scatter_counts, self._counted = np.zeros((y.rows, y.cols), dtype=np.int64), 0
        counts = self._scatter_counts
        (pt, _), (pl, _) = g.padding
        for order in range(self._counted, frame.order + 1):
            patch = window(g, *divmod(order, g.out_width))
            counts[np.ix_(np.add(patch.rows, pt), np.add(patch.cols, pl))] += 1
        self._counted = frame.order + 1
        out = self._view(image, y)
        (pt, pb), (pl, pr) = g.padding
        real = np.zeros((y.rows, y.cols), dtype=bool)
        real[pt:y.rows - pb, pl:y.cols - pr] = True  # the cropped ring stays grey
        written = (counts > 0) & real
        shades = np.array(self._shades(), dtype=np.uint8)
        level = np.rint((counts[written] - 1) / max(int(counts.max()) - 1, 1) * (SHADES - 1)).astype(int)
        out[written, :3] = shades[level]
        self._paint_taps(image, y, frame.window, g.padding)
        oh, ow = frame.position
        rows, cols = frame.window.rows, frame.window.cols
        self._caption.set_text(f"input ({oh}, {ow}) -> output rows {rows[0]}..{rows[-1]}, columns {cols[0]}..{cols[-1]}"
                               + (f", every {pair_text(g.dilation)}" if g.dilation != (1, 1) else ""))

    def colours(self) -> list[str]:
        """Every colour the cells of a frame can take (anti-aliasing aside), as ``#rrggbb``."""
        scene = [REAL, PAD, TAP, PAD_TAP, CURRENT, DONE, "#000000", "#333333", "#555555", "#888888", "#999999"]
        if self.plan.scene == "transposed":
            scene += [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in self._shades()]
        return scene

    def _shades(self):
        """Output cells of the transposed scene: pale to dark as more patches have added into them."""
        np = self._np
        light, dark = np.array(_rgb(DONE), float), np.array(_rgb(CURRENT), float)
        return [tuple(int(v) for v in light + (dark - light) * 0.75 * i / (SHADES - 1)) for i in range(SHADES)]

    def image(self, k: int):
        """Frame ``k`` rendered: an ``(height, width, 4)`` uint8 RGBA array."""
        self.draw(k)
        self.figure.canvas.draw()
        return self._np.asarray(self.figure.canvas.buffer_rgba()).copy()

    def pixel(self, grid: str, row: int, col: int, within: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
        """``(y, x)`` index in :meth:`image`'s array of a point of cell ``(row, col)`` of ``grid``
        (``"input"``, ``"filter"``, ``"output"``; ``"input 1"``, ``"output 1"`` ... in the depthwise
        and pointwise scenes), ``within`` the cell as fractions (down, across) of its side: the
        centre by default.  Padded grids count rows and columns from the padding's corner."""
        cell = self.grids[grid]
        x, y = self.axes.transData.transform((cell.left + col + within[1], cell.top + row + within[0]))
        return int(self.figure.canvas.get_width_height()[1] - y), int(x)

    def save(self, path: str | os.PathLike, fps: float = DEFAULT_FPS) -> None:
        """Write every frame to ``path`` (.gif with Pillow, .mp4 with ffmpeg), as it is named."""
        from matplotlib import animation

        suffix = Path(path).suffix.lower()
        writer = (gif_writer(fps, self.colours()) if suffix == ".gif"
                  else animation.writers[WRITERS[suffix]](fps=fps))
        with writer.saving(self.figure, os.fspath(path), dpi=self.dpi):
            for k in range(len(self.plan.frames)):
                self.draw(k)
                writer.grab_frame()
