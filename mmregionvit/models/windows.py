"""Geometry of RegionViT's windows: the flat window layout, the padding
masks and the relative-position index.

A stage keeps its tokens in one flat window tensor of shape
``(B, num_windows, 1 + ws * ws, C)``: slot 0 of each window is its regional
token, the rest are its local tokens in row-major order. Spatial maps are
only formed between stages (for the strided projection) and for outputs.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


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


def window_keep(h_win: int, w_win: int, ws: int, pad_b: int, pad_r: int,
                device: torch.device) -> Tensor:
    """Which (query, key) pairs each window may attend to, ``(nW, L, L)``.

    Local tokens are padded bottom-right; slot 0 (the regional token) is
    always kept. Windows in the last column mask padded columns, windows in
    the last row padded rows. Official quirk: the bottom-right window keeps
    the *union* of both patterns, so its valid tokens see part of the
    padding.
    """
    idx = torch.arange(ws * ws, device=device)
    one = torch.ones(1, dtype=torch.bool, device=device)
    col_ok = torch.cat([one, idx % ws < ws - pad_r])
    row_ok = torch.cat([one, idx // ws < ws - pad_b])
    right = col_ok[:, None] & col_ok[None, :]
    bottom = row_ok[:, None] & row_ok[None, :]
    length = ws * ws + 1
    keep = torch.ones(
        h_win, w_win, length, length, dtype=torch.bool, device=device)
    keep[:, -1] = right
    keep[-1, :] = bottom
    keep[-1, -1] = right | bottom
    return keep.reshape(h_win * w_win, length, length)


class WindowLayout:
    """One stage's flat window layout for one input size."""

    def __init__(self, regional: Tensor, local: Tensor, ws: int) -> None:
        self.batch, _, self.h_win, self.w_win = regional.shape
        self.height, self.width = local.shape[-2:]
        self.ws = ws
        self.pad_b = self.h_win * ws - self.height
        self.pad_r = self.w_win * ws - self.width
        if not (0 <= self.pad_b <= ws and 0 <= self.pad_r <= ws):
            raise RuntimeError(
                f'local map {self.height}x{self.width} does not fit the '
                f'{self.h_win}x{self.w_win} regional grid at window {ws}.')

    @property
    def padded(self) -> bool:
        return bool(self.pad_b or self.pad_r)

    def to_windows(self, regional: Tensor, local: Tensor) -> Tensor:
        """NCHW regional and local maps -> ``(B, nW, 1 + ws * ws, C)``."""
        b, c, hw, ww, ws = self.batch, local.shape[1], self.h_win, \
            self.w_win, self.ws
        local = local.permute(0, 2, 3, 1)
        if self.padded:
            local = F.pad(local, (0, 0, 0, self.pad_r, 0, self.pad_b))
        local = local.reshape(b, hw, ws, ww, ws, c).transpose(2, 3)
        out = local.new_empty(b, hw, ww, 1 + ws * ws, c)
        out[:, :, :, 0] = regional.permute(0, 2, 3, 1)
        out[:, :, :, 1:].unflatten(3, (ws, ws)).copy_(local)
        return out.view(b, hw * ww, 1 + ws * ws, c)

    def regional_map(self, x: Tensor) -> Tensor:
        """Regional tokens of a window tensor as an NCHW map."""
        return x[:, :,
                 0].unflatten(1, (self.h_win, self.w_win)).permute(0, 3, 1, 2)

    def local_map(self, x: Tensor) -> Tensor:
        """Local tokens of a window tensor as an NCHW map, padding cropped."""
        b, c, ws = self.batch, x.shape[-1], self.ws
        local = x[:, :, 1:].reshape(b, self.h_win, self.w_win, ws, ws, c)
        local = local.transpose(2, 3).reshape(b, self.h_win * ws,
                                              self.w_win * ws, c)
        local = local[:, :self.height, :self.width]
        return local.permute(0, 3, 1, 2)
