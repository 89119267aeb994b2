"""What a RegionViT backbone attends to and what it computes, per stage.

:func:`record_attention` runs a backbone once on its reference path
(``fused=False``) with every ``R2LAttention`` handing over the weights it
applies: the weights that make the model's own output, not a second
computation of them. The fast paths are left as they are; they record
nothing.

Geometry, in the backbone's input pixels: stage ``s`` has local tokens at
``stride`` pixels (token ``(ty, tx)`` covers ``[ty * stride, (ty + 1) *
stride)``), grouped in windows of ``ws x ws`` tokens padded bottom-right;
window ``(i, j)`` holds regional token ``(i, j)``, which is drawn over the
window. (Official quirk: the regional embedding itself sees the image padded
centred, so its regions sit up to half a region up and left of the windows.)
"""
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, List, Sequence, Tuple

import torch
from torch import Tensor

from ..models.regionvit import R2LAttention, RegionViT
from ..models.windows import WindowLayout, window_keep

Point = Tuple[float, float]  # (x, y) in the backbone's input pixels


@dataclass
class StageRecord:
    """One stage of one image: its window layout, output map and, if
    recorded, the attention weights of each block.

    ``regional[b]``: ``(heads, nW, nW)``, block ``b``'s regional attention;
    ``local[b]``: ``(nW, heads, L, L)``, its local attention (slot 0 the
    regional token, then the window's local tokens row by row).
    ``region``: the side in input pixels of what one regional token
    covers, ``region_origin`` ``(y, x)`` where the first one starts (the
    regional embedding pads the image centred; official quirk).
    """
    index: int
    layout: WindowLayout
    stride: int
    features: Tensor
    region: int
    region_origin: Tuple[int, int]
    regional: List[Tensor] = field(default_factory=list)
    local: List[Tensor] = field(default_factory=list)

    @property
    def keep(self) -> Tensor:
        """``(nW, L, L)``: the (query, key) pairs the model lets attend."""
        lay = self.layout
        return window_keep(lay.h_win, lay.w_win, lay.ws, lay.pad_b, lay.pad_r,
                           self.features.device)

    def token(self, point: Point) -> Tuple[int, int]:
        """``(ty, tx)`` of the local token covering ``point``."""
        x, y = point
        ty, tx = int(y // self.stride), int(x // self.stride)
        if not (0 <= ty < self.layout.height and 0 <= tx < self.layout.width):
            raise ValueError(f'point ({x:g}, {y:g}) lies outside stage '
                             f'{self.index}\'s {self.layout.height}x'
                             f'{self.layout.width} token map')
        return ty, tx

    def window_of(self, point: Point) -> Tuple[int, int]:
        """``(window index, slot)`` of the local token covering ``point``."""
        ty, tx = self.token(point)
        ws = self.layout.ws
        window = (ty // ws) * self.layout.w_win + tx // ws
        return window, 1 + (ty % ws) * ws + tx % ws

    def window_origin(self, window: int) -> Tuple[int, int]:
        """``(row, col)`` of a window's first local token."""
        ws = self.layout.ws
        return (window // self.layout.w_win * ws,
                window % self.layout.w_win * ws)


def stage_strides(backbone: RegionViT) -> List[int]:
    """Input pixels per local token of each stage."""
    arch, stride, strides = backbone.arch, backbone.arch['patch_size'], []
    for mode in arch['downsampling']:
        stride *= 2 if mode == 'sc' else 1
        strides.append(stride)
    return strides


@contextmanager
def watch_stages(backbone: RegionViT) -> Iterator[List[StageRecord]]:
    """Within the context, each stage run appends its :class:`StageRecord`
    (layout and output map of image 0; no attention) to the list given."""
    records: List[StageRecord] = []
    strides = stage_strides(backbone)
    region = backbone.regional_embed.region
    regions = {}  # the input's regions: origin

    def on_input(embed, args):
        h, w = args[0].shape[-2:]
        uneven = bool(h % region or w % region)
        regions['origin'] = (-((region - h % region) * uneven // 2),
                             -((region - w % region) * uneven // 2))

    def hook(index):

        def on_output(stage, args, output):
            regional, local = output
            layout = WindowLayout(regional, local, stage.window_size)
            size = region * strides[index] // backbone.arch['patch_size']
            records.append(
                StageRecord(index, layout, strides[index], local[0].detach(),
                            size, regions['origin']))

        return on_output

    handles = [backbone.regional_embed.register_forward_pre_hook(on_input)]
    handles += [
        stage.register_forward_hook(hook(i))
        for i, stage in enumerate(backbone.stages)
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def reference_path(backbone: RegionViT) -> Iterator[None]:
    """The backbone on its reference path within the context."""
    fused = backbone.fused
    backbone.fused = False
    try:
        yield
    finally:
        backbone.fused = fused


@torch.no_grad()
def record_attention(backbone: RegionViT, images: Tensor) -> List[StageRecord]:
    """Run ``backbone`` on ``images`` on its reference path; each stage's
    record of image 0 with every block's attention weights."""
    calls: List[Tensor] = []
    modules = [m for m in backbone.modules() if isinstance(m, R2LAttention)]
    for m in modules:
        m.record = calls.append
    try:
        with reference_path(backbone), watch_stages(backbone) as records:
            backbone.forward_stages(images, ())
    finally:
        for m in modules:
            m.record = None
    # each block calls its attention twice: regional, then local
    start = 0
    for rec in records:
        depth = len(backbone.stages[rec.index].blocks)
        mine = calls[start:start + 2 * depth]
        start += 2 * depth
        rec.regional = [w[0] for w in mine[0::2]]
        rec.local = [w[0] for w in mine[1::2]]
    return records


def regional_attention(rec: StageRecord, block: int, point: Point) -> Tensor:
    """``(heads, h_win, w_win)``: how the regional token of ``point``'s
    window attends over all regional tokens."""
    window, _ = rec.window_of(point)
    weights = rec.regional[block][:, window]
    return weights.unflatten(-1, (rec.layout.h_win, rec.layout.w_win))


def local_attention(rec: StageRecord, block: int,
                    point: Point) -> Tuple[Tensor, Tensor]:
    """How the local token at ``point`` attends in its window: ``(heads,)``
    to the regional token, ``(heads, ws, ws)`` to the local tokens."""
    window, slot = rec.window_of(point)
    row = rec.local[block][window, :, slot]
    ws = rec.layout.ws
    return row[:, 0], row[:, 1:].unflatten(-1, (ws, ws))


def padded_tokens(rec: StageRecord, window: int) -> Tensor:
    """``(ws, ws)`` bool: which of a window's local tokens are padding."""
    top, left = rec.window_origin(window)
    ws = rec.layout.ws
    rows = torch.arange(top, top + ws)[:, None] >= rec.layout.height
    cols = torch.arange(left, left + ws)[None, :] >= rec.layout.width
    return rows | cols


def feature_image(features: Tensor, mode: str) -> Tensor:
    """A ``(C, h, w)`` map as a picture: ``'mean'`` over channels,
    ``(h, w)``; ``'pca'``: its first three principal components, each
    scaled to [0, 1], as ``(h, w, 3)`` RGB."""
    if mode == 'mean':
        return features.mean(0)
    if mode != 'pca':
        raise ValueError(f"feature mode must be 'mean' or 'pca', got {mode!r}")
    c, h, w = features.shape
    tokens = features.flatten(1).T.double()
    tokens = tokens - tokens.mean(0)
    _, _, vh = torch.linalg.svd(tokens, full_matrices=False)
    axes = vh[:3]
    # a component's sign is arbitrary: make its largest coefficient positive
    axes = axes * axes.gather(1, axes.abs().argmax(1, keepdim=True)).sign()
    comps = tokens @ axes.T
    if comps.shape[1] < 3:  # fewer than three channels
        comps = torch.cat(
            [comps, comps.new_zeros(h * w, 3 - comps.shape[1])], 1)
    low, high = comps.min(0).values, comps.max(0).values
    comps = (comps - low) / (high - low).clamp_min(1e-12)
    return comps.view(h, w, 3).float()


def check_stages(backbone: RegionViT, stages: Sequence[int]) -> List[int]:
    """``stages`` (negative counting from the end) as indices; a one-line
    error for one out of range."""
    n = len(backbone.stages)
    bad = [s for s in stages if not -n <= s < n]
    if bad:
        raise ValueError(f'stage {bad[0]} is out of range: this backbone has '
                         f'{n} stages, give --stages between 0 and {n - 1}')
    return sorted({s % n for s in stages})
