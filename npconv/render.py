"""The reporting kit: what every command's text is made of.

* :func:`table` -- the one table renderer: columns padded to their widest
  cell, each flush left or right;
* :func:`layer_phrases`, :func:`padding_text`, :func:`pair_text`,
  :func:`shape_text` -- the one text form of a layer as people write it
  (``5x5 kernels, 256 filters, stride 1, padding 0, dilation 1``; shapes
  ``10x10x256``, H x W x C);
* :func:`format_seconds`, :func:`significant`, :func:`percent`,
  :func:`short_number` -- how times, rates and large counts are shown.

A layer's JSON form is :meth:`npconv.geometry.ConvGeometry.to_dict` (and
:meth:`~npconv.geometry.SeparableGeometry.to_dict`), used by every
``--json``.  Each command is a report dataclass built from the numbers and a
renderer of it (``explain.py``, ``claims/report.py``, ``measure.py``,
``bench/render.py``, ``model.py``) that uses this kit.  Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from npconv.geometry import PADDING_RULES, ConvGeometry, Pair


def table(rows: Sequence[Sequence[str]], align: str = "lr", indent: str = "  ") -> list[str]:
    """Lines of ``rows`` (the header first, if any) with columns padded to their widest cell.

    ``align`` has one letter per column, ``l`` (flush left) or ``r`` (flush
    right); the last letter holds for the columns after it: ``"lr"`` is the
    first column left, the others right.  Cells are separated by two spaces,
    lines start with ``indent`` and lose their trailing blanks.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    letters = (align + align[-1] * len(widths))[:len(widths)]
    return [(indent + "  ".join(cell.ljust(width) if letter == "l" else cell.rjust(width)
                                for cell, width, letter in zip(row, widths, letters, strict=True))).rstrip()
            for row in rows]


# ---------------------------------------------------------------------- a layer as people write it


def pair_text(p: Pair) -> str:
    """``(2, 2) -> '2'``, ``(2, 1) -> '2x1'`` (along H x along W)."""
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def padding_text(g: ConvGeometry) -> str:
    """``'1'``, ``'top 0, bottom 1, left 2, right 2'``, or ``"'same' = 2"`` for a padding rule."""
    (pt, pb), (pl, pr) = g.padding
    text = str(pt) if pt == pb == pl == pr else f"top {pt}, bottom {pb}, left {pl}, right {pr}"
    return f"'{g.padding_rule}' = {text}" if g.padding_rule in PADDING_RULES else text


def layer_phrases(g: ConvGeometry) -> list[str]:
    """``["5x5 kernels", "256 filters", "stride 1", "padding 0", "dilation 1"]``."""
    return [f"{g.kernel_h}x{g.kernel_w} kernels", f"{g.out_channels} filters", f"stride {pair_text(g.stride)}",
            f"padding {padding_text(g)}", f"dilation {pair_text(g.dilation)}"]


def shape_text(shape: Sequence[int]) -> str:
    """NCHW ``(1, 32, 112, 112) -> '112x112x32'`` (H x W x C, ``N x`` in front when N > 1);
    flat ``(1, 1000) -> '1000'``."""
    if len(shape) == 4:
        n, c, h, w = shape
        sizes: Sequence[int] = (h, w, c)
    else:
        n, *sizes = shape
    return "x".join(map(str, (*((n,) if n > 1 else ()), *sizes)))


# ---------------------------------------------------------------------- numbers


def significant(value: float, digits: int = 3) -> str:
    """``1234.5 -> '1,235'``, ``12.345 -> '12.3'``, ``0.0123 -> '0.0123'``."""
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}"


def format_seconds(seconds: float) -> str:
    """``0.0841 -> '84.1 ms'``: three significant digits in s, ms or us."""
    unit, scale = next(((u, s) for u, s in (("s", 1.0), ("ms", 1e-3)) if seconds >= s), ("us", 1e-6))
    return f"{significant(seconds / scale)} {unit}"


def percent(fraction: float) -> str:
    """``0.1234 -> '12%'``: two significant digits."""
    return f"{significant(100 * fraction, 2)}%"


def short_number(value: int) -> str:
    """Three significant digits with a suffix, as papers write them: ``568,740,352 -> '569M'``."""
    for scale, suffix in ((10**9, "G"), (10**5, "M"), (10**3, "K")):
        if value >= scale:
            scale = 10**6 if suffix == "M" else scale
            return f"{value / scale:.3g}{suffix}"
    return str(value)
