"""Geometry of RegionViT's windows: the flat window layout, the padding
masks and the relative-position index.

A stage keeps its tokens in one flat window tensor of shape
``(B, num_windows, 1 + ws * ws, C)``: slot 0 of each window is its regional
token, the rest are its local tokens in row-major order. Spatial maps are
only formed between stages (for the strided projection) and for outputs.

Sizes are plain ints in eager mode, where Python may branch on them (skip
the padding where none is needed). Tracers and exporters see symbolic sizes
instead (tensors, or SymInts): there the code takes the general branch and
computes padding and masks in the graph, so one graph serves every size.
"""
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

Size = Union[int, Tensor, torch.SymInt]


def symbolic(*sizes: Size) -> bool:
    """Whether any of ``sizes`` is symbolic (a tracer's or exporter's)
    rather than a plain int."""
    return not all(isinstance(s, int) for s in sizes)


def rel_pos_index(ws: int) -> Tensor:
    """Index of each (query, key) local pair into the relative table.

    Official quirk: the offset is ``ws // 2`` rather than ``ws - 1``, so
    negative offsets wrap around the ``(2ws-1) x (2ws-1)`` table.
    """
    size = 2 * ws - 1
    pos = torch.arange(ws)
    d = (pos[None, :] - pos[:, None] + ws // 2) % size  # [y, y'] -> row
    index = d[:, None, :, None] * size + d[None, :, None, :]  # y, x, y', x'
    return index.reshape(ws * ws, ws * ws)


def window_keep(h_win: Size, w_win: Size, ws: int, pad_b: Size, pad_r: Size,
                device: torch.device) -> Tensor:
    """Which (query, key) pairs each window may attend to, ``(nW, L, L)``.

    Local tokens are padded bottom-right; slot 0 (the regional token) is
    always kept. Windows in the last column mask padded columns, windows in
    the last row padded rows. Official quirk: the bottom-right window keeps
    the *union* of both patterns, so its valid tokens see part of the
    padding. Without padding every pair is kept.
    """
    idx = torch.arange(ws * ws, device=device)
    one = torch.ones(1, dtype=torch.bool, device=device)
    col_ok = torch.cat([one, idx % ws < ws - pad_r])
    row_ok = torch.cat([one, idx // ws < ws - pad_b])
    right = col_ok[:, None] & col_ok[None, :]
    bottom = row_ok[:, None] & row_ok[None, :]
    # where each window lies, (h_win, 1, 1, 1) and (w_win, 1, 1)
    last_row = torch.arange(h_win, device=device) == h_win - 1
    last_col = torch.arange(w_win, device=device) == w_win - 1
    last_row, last_col = last_row[:, None, None, None], last_col[:, None, None]
    keep = (right | ~last_col) & (bottom | ~last_row)
    keep = keep | (last_row & last_col & (right | bottom))  # the union
    return keep.flatten(0, 1)


class WindowLayout:
    """One stage's flat window layout for one input size."""

    def __init__(self, regional: Tensor, local: Tensor, ws: int) -> None:
        self.batch, _, self.h_win, self.w_win = regional.shape
        self.height, self.width = local.shape[-2:]
        self.ws = ws
        self.pad_b = self.h_win * ws - self.height
        self.pad_r = self.w_win * ws - self.width
        if not symbolic(self.pad_b, self.pad_r) and not (
                0 <= self.pad_b <= ws and 0 <= self.pad_r <= ws):
            raise RuntimeError(
                f'local map {self.height}x{self.width} does not fit the '
                f'{self.h_win}x{self.w_win} regional grid at window {ws}.')

    @property
    def padded(self) -> bool:
        """Whether the local map is padded; always for symbolic sizes (the
        graph then pads by what the size needs, zero included)."""
        return symbolic(self.pad_b, self.pad_r) or bool(self.pad_b
                                                        or self.pad_r)

    def local_windows(self, local: Tensor) -> Tensor:
        """An NCHW local map, padded, as ``(B, h_win, w_win, ws, ws, C)``
        windows (a view of the padded map)."""
        b, c, ws = self.batch, local.shape[1], self.ws
        local = local.permute(0, 2, 3, 1)
        if self.padded:
            local = F.pad(local, (0, 0, 0, self.pad_r, 0, self.pad_b))
        return local.reshape(b, self.h_win, ws, self.w_win, ws,
                             c).transpose(2, 3)

    def to_windows(self, regional: Tensor, local: Tensor) -> Tensor:
        """NCHW regional and local maps -> ``(B, nW, 1 + ws * ws, C)``."""
        local = self.local_windows(local).flatten(3, 4)
        regional = regional.permute(0, 2, 3, 1).unsqueeze(3)
        return torch.cat([regional, local], dim=3).flatten(1, 2)

    def regional_map(self, x: Tensor) -> Tensor:
        """Regional tokens of a window tensor as an NCHW map."""
        regional = x[:, :, 0].reshape(self.batch, self.h_win, self.w_win,
                                      x.shape[-1])
        return regional.permute(0, 3, 1, 2)

    def local_map(self, x: Tensor) -> Tensor:
        """Local tokens of a window tensor as an NCHW map, padding cropped."""
        b, c, ws = self.batch, x.shape[-1], self.ws
        local = x[:, :, 1:].reshape(b, self.h_win, self.w_win, ws, ws, c)
        local = local.transpose(2, 3).reshape(b, self.h_win * ws,
                                              self.w_win * ws, c)
        local = local[:, :self.height, :self.width]
        return local.permute(0, 3, 1, 2)
