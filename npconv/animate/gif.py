"""A small GIF writer for matplotlib's animation module (Pillow, one palette, unchanged pixels transparent)."""

from __future__ import annotations

from collections.abc import Sequence


def gif_writer(fps: float, colours: Sequence[str] = ()):
    """A matplotlib movie writer for GIFs, built on Pillow like matplotlib's ``PillowWriter``, but
    small: every frame is mapped to one palette -- ``colours`` exactly, then the commonest other
    colours of the first frame (anti-aliased edges and text) -- and the pixels a frame leaves
    unchanged are stored as transparent (Pillow's ``optimize``), so a frame costs about what
    changed in it (a fifth of ``PillowWriter``'s size on these pictures).  Frames are kept as
    palette indices, a byte a pixel, until the file is written."""
    from io import BytesIO

    import numpy as np
    from matplotlib import animation
    from PIL import Image

    exact = list(dict.fromkeys(int(c[1:], 16) for c in colours))

    class GifWriter(animation.AbstractMovieWriter):
        def setup(self, fig, outfile, dpi=None):
            super().setup(fig, outfile, dpi=dpi)
            self._frames = []
            self._palette = None
            # colour (24 bits) -> palette index, filled in for the colours each frame brings
            self._lookup, self._known = np.zeros(1 << 24, dtype=np.uint8), np.zeros(1 << 24, dtype=bool)

        def grab_frame(self, **savefig_kwargs):
            buffer = BytesIO()
            self.fig.savefig(buffer, **{**savefig_kwargs, "format": "rgba", "dpi": self.dpi})
            width, height = self.frame_size
            rgba = np.frombuffer(buffer.getbuffer(), dtype=np.uint8).reshape(height, width, 4)
            packed = (rgba[..., 0].astype(np.uint32) << 16) | (rgba[..., 1].astype(np.uint32) << 8) | rgba[..., 2]
            if self._palette is None:  # index 255 stays free for Pillow's transparent pixels
                values, counts = np.unique(packed, return_counts=True)
                others = [int(v) for v in values[np.argsort(-counts, kind="stable")] if int(v) not in exact]
                palette = np.array((exact + others)[:255], dtype=np.int64)
                self._palette = np.stack([palette >> 16, (palette >> 8) & 255, palette & 255], axis=1)
            new = np.unique(packed[~self._known[packed]])
            if len(new):
                rgb = np.stack([new >> 16, (new >> 8) & 255, new & 255], axis=1).astype(np.int64)
                distance = ((rgb[:, None, :] - self._palette[None, :, :]) ** 2).sum(axis=2)
                self._lookup[new] = distance.argmin(axis=1)
                self._known[new] = True
            self._frames.append(self._lookup[packed])

        def finish(self):
            palette = self._palette.astype(np.uint8).ravel().tolist()
            images = []
            for frame in self._frames:
                image = Image.fromarray(frame, "P")
                image.putpalette(palette)
                images.append(image)
            images[0].save(self.outfile, format="GIF", save_all=True, append_images=images[1:],
                           duration=round(1000 / self.fps), loop=0, optimize=True)

    return GifWriter(fps=fps)
