"""Matplotlib pictures of attention, feature maps and class activation maps.

Each function draws over the backbone's input (``image``: ``(H, W, 3)``
floats in [0, 1], the resized image with the preprocessor's padding) in its
pixel coordinates and writes one PNG. Attention is drawn over the stage's
whole grid of windows, what the model pads its local tokens to, with the
padded tokens hatched; feature and activation maps over the image.
"""
from typing import Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from torch import Tensor

from .attention import Point, StageRecord, padded_tokens

CMAP = 'inferno'
PANEL = 3.0  # inches per panel; at 100 dpi 300 pixels
DPI = 100


def _head_names(heads: int, mean: bool) -> Sequence[str]:
    return ['heads averaged'] if mean else [f'head {h}' for h in range(heads)]


def _frame(rec: StageRecord) -> tuple:
    """Width and height in pixels of the stage's grid of windows."""
    lay, s = rec.layout, rec.stride
    return lay.w_win * lay.ws * s, lay.h_win * lay.ws * s


def _hatch_padding(ax, rec: StageRecord) -> None:
    """Hatch the padded tokens: right of and below the token map."""
    fw, fh = _frame(rec)
    w, h = rec.layout.width * rec.stride, rec.layout.height * rec.stride
    style = dict(fill=False, hatch='///', edgecolor='0.6', linewidth=0)
    if fw > w:
        ax.add_patch(Rectangle((w, 0), fw - w, fh, **style))
    if fh > h:
        ax.add_patch(Rectangle((0, h), w, fh - h, **style))


def _window_lines(ax, rec: StageRecord, color='white') -> None:
    fw, fh = _frame(rec)
    step = rec.layout.ws * rec.stride
    ax.vlines(np.arange(0, fw + 1, step), 0, fh, color, linewidth=0.8)
    ax.hlines(np.arange(0, fh + 1, step), 0, fw, color, linewidth=0.8)


def _region_lines(ax, rec: StageRecord) -> None:
    """Dashed: the regions as the regional embedding sees them, on the
    image padded centred (official quirk), at this stage's scale."""
    fw, fh = _frame(rec)
    top, left = rec.region_origin
    xs = np.arange(left, fw + 1, rec.region)
    ys = np.arange(top, fh + 1, rec.region)
    kw = dict(linewidth=0.7, linestyles='dashed')
    ax.vlines(xs[xs >= 0], 0, fh, 'cyan', **kw)
    ax.hlines(ys[ys >= 0], 0, fw, 'cyan', **kw)


def _show_image(ax, image: np.ndarray, rec: Optional[StageRecord]) -> None:
    """The image, and around it the stage's padded windows if ``rec``."""
    h, w = image.shape[:2]
    fw, fh = _frame(rec) if rec is not None else (w, h)
    ax.imshow(image, extent=(0, w, h, 0))
    ax.set_xlim(0, max(fw, w))
    ax.set_ylim(max(fh, h), 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _mark(ax, point: Point) -> None:
    ax.plot(*point, marker='x', color='lime', markersize=8, mew=2)


def _save(fig: Figure, path: str, margin: int = 4) -> None:
    """The figure, its white margins trimmed, as a PNG of 256 colours (a
    few times smaller than full colour, and alike to the eye)."""
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(DPI)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    ink = (rgb < 250).any(-1)
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    rgb = rgb[max(rows[0] - margin, 0):rows[-1] + margin + 1,
              max(cols[0] - margin, 0):cols[-1] + margin + 1]
    Image.fromarray(rgb).quantize(
        256, dither=Image.Dither.NONE).save(
            path, optimize=True)


def _grid(n: int) -> tuple:
    cols = min(n, 4)
    return -(-n // cols), cols


def draw_regional(path: str, image: np.ndarray, rec: StageRecord,
                  weights: Tensor, point: Point, label: str, block: int,
                  mean: bool) -> None:
    """``weights`` ``(heads, h_win, w_win)``, drawn over the windows."""
    maps = weights.mean(0, keepdim=True) if mean else weights
    rows, cols = _grid(len(maps))
    fig = Figure(figsize=(PANEL * cols + 0.6, PANEL * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    fw, fh = _frame(rec)
    vmax = float(maps.max())
    for ax, heat, name in zip(axes, maps, _head_names(len(weights), mean)):
        _show_image(ax, image, rec)
        im = ax.imshow(
            heat.numpy(),
            extent=(0, fw, fh, 0),
            cmap=CMAP,
            alpha=0.6,
            vmin=0,
            vmax=vmax,
            interpolation='nearest')
        _hatch_padding(ax, rec)
        _window_lines(ax, rec)
        _region_lines(ax, rec)
        _mark(ax, point)
        ax.set_title(f'stage {rec.index}, block {block}, {name}', fontsize=8)
    for ax in axes[len(maps):]:
        ax.axis('off')
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    fig.suptitle(f'regional attention of the region of {label}', fontsize=9)
    _save(fig, path)


def draw_local(path: str, image: np.ndarray, rec: StageRecord,
               to_regional: Tensor, to_local: Tensor, point: Point, label: str,
               block: int, mean: bool) -> None:
    """The window of ``point``: ``to_local`` ``(heads, ws, ws)`` over its
    crop, ``to_regional`` ``(heads,)`` in a cell of its own."""
    if mean:
        to_regional = to_regional.mean(0, keepdim=True)
        to_local = to_local.mean(0, keepdim=True)
    heads = len(to_local)
    ws, s = rec.layout.ws, rec.stride
    window, _ = rec.window_of(point)
    top, left = (v * s for v in rec.window_origin(window))
    pad = padded_tokens(rec, window)
    vmax = float(max(to_local.max(), to_regional.max()))
    rows, cols = _grid(heads)
    fig = Figure(
        figsize=((PANEL + 0.3) * cols + 0.6, PANEL * rows * 0.9 + 0.5))
    # per head: the regional token's cell, then the window
    grid = fig.add_gridspec(
        rows, 2 * cols, width_ratios=[1, ws] * cols, wspace=0.08)
    for h, name in enumerate(_head_names(heads, mean)):
        row, col = divmod(h, cols)
        cell = fig.add_subplot(grid[row, 2 * col])
        cell.imshow([[float(to_regional[h])]],
                    cmap=CMAP,
                    vmin=0,
                    vmax=vmax,
                    extent=(0, 1, 1, 0))
        cell.set_xticks([])
        cell.set_yticks([])
        cell.set_xlabel('regional\ntoken', fontsize=7)
        ax = fig.add_subplot(grid[row, 2 * col + 1])
        _show_image(ax, image, rec)
        im = ax.imshow(
            to_local[h].numpy(),
            extent=(left, left + ws * s, top + ws * s, top),
            cmap=CMAP,
            alpha=0.6,
            vmin=0,
            vmax=vmax,
            interpolation='nearest')
        for r, c in pad.nonzero().tolist():
            ax.add_patch(
                Rectangle((left + c * s, top + r * s),
                          s,
                          s,
                          fill=False,
                          hatch='///',
                          edgecolor='0.6',
                          linewidth=0))
        ticks = np.arange(ws + 1) * s
        ax.vlines(left + ticks, top, top + ws * s, 'white', linewidth=0.3)
        ax.hlines(top + ticks, left, left + ws * s, 'white', linewidth=0.3)
        _region_lines(ax, rec)
        _mark(ax, point)
        ax.set_xlim(left, left + ws * s)
        ax.set_ylim(top + ws * s, top)
        ax.set_title(f'stage {rec.index}, block {block}, {name}', fontsize=8)
    fig.colorbar(im, ax=fig.axes, shrink=0.8)
    fig.suptitle(f'local attention of {label} in its window', fontsize=9)
    _save(fig, path)


def draw_features(path: str, image: np.ndarray, rec: StageRecord,
                  picture: Tensor) -> None:
    """``picture``: ``(h, w)`` (a colour bar) or ``(h, w, 3)`` RGB."""
    h, w = rec.layout.height * rec.stride, rec.layout.width * rec.stride
    fig = Figure(figsize=(PANEL + 0.6, PANEL))
    ax = fig.subplots()
    _show_image(ax, image, None)
    rgb = picture.dim() == 3
    im = ax.imshow(
        picture.numpy(),
        extent=(0, w, h, 0),
        cmap=None if rgb else 'viridis',
        interpolation='nearest')
    name = 'principal components 1-3 as RGB' if rgb else 'channel mean'
    if not rgb:
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(f'stage {rec.index} features: {name}', fontsize=8)
    _save(fig, path)


def draw_cam(path: str,
             image: np.ndarray,
             rec: StageRecord,
             cam: Tensor,
             title: str,
             box: Optional[Sequence[float]] = None) -> None:
    """A Grad-CAM map ``(h, w)`` of the stage's tokens over the image,
    relative to its maximum; ``box`` ``(x1, y1, x2, y2)`` drawn if given."""
    h, w = rec.layout.height * rec.stride, rec.layout.width * rec.stride
    fig = Figure(figsize=(PANEL + 0.6, PANEL))
    ax = fig.subplots()
    _show_image(ax, image, None)
    im = ax.imshow(
        (cam / cam.max().clamp_min(1e-30)).numpy(),
        extent=(0, w, h, 0),
        cmap='jet',
        alpha=0.5,
        vmin=0,
        vmax=1,
        interpolation='bilinear')
    if box is not None:
        x1, y1, x2, y2 = box
        ax.add_patch(
            Rectangle((x1, y1),
                      x2 - x1,
                      y2 - y1,
                      fill=False,
                      edgecolor='white',
                      linewidth=1.5))
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(f'Grad-CAM, stage {rec.index}\n{title}', fontsize=8)
    _save(fig, path)
