"""RegionViT: regional-to-local attention vision transformer.

Chen, Panda, Fan, "RegionViT: Regional-to-Local Attention for Vision
Transformers", ICLR 2022. The computation follows the official release
exactly (its ImageNet and COCO weights give the same outputs), with the
quirks of that release kept and marked ``Official quirk`` below.

Layout: every stage keeps its tokens in one flat window tensor of shape
``(B, num_windows, 1 + ws * ws, C)``; slot 0 of each window is its regional
token, the rest are its local tokens in row-major order. Spatial maps are
only formed between stages (for the strided projection) and for outputs.
"""
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from timm.layers import DropPath
from torch import Tensor

from ..registry import MODELS
from .attention import window_attention
from .fused_ops import linear, norm_gelu_conv, norm_linear, norm_mlp

# Official variants, with the official constructor's argument names.
ARCH_SETTINGS: Dict[str, dict] = {
    'tiny':
    dict(
        embed_dim=[64, 64, 128, 256, 512],
        num_heads=[2, 4, 8, 16],
        depth=[2, 2, 8, 2],
        kernel_sizes=[7] * 4,
        patch_conv_type='3conv'),
    'small':
    dict(
        embed_dim=[96, 96, 192, 384, 768],
        num_heads=[3, 6, 12, 24],
        depth=[2, 2, 8, 2],
        kernel_sizes=[7] * 4,
        patch_conv_type='3conv'),
    'medium':
    dict(
        embed_dim=[96, 96, 192, 384, 768],
        num_heads=[3, 6, 12, 24],
        depth=[2, 2, 14, 2],
        kernel_sizes=[7] * 4,
        patch_conv_type='1conv'),
    'base':
    dict(
        embed_dim=[128, 128, 256, 512, 1024],
        num_heads=[4, 8, 16, 32],
        depth=[2, 2, 14, 2],
        kernel_sizes=[7] * 4,
        patch_conv_type='1conv'),
    'small_w14':
    dict(
        embed_dim=[96, 96, 192, 384, 768],
        num_heads=[3, 6, 12, 24],
        depth=[2, 2, 8, 2],
        kernel_sizes=[14] * 4,
        patch_conv_type='3conv'),
    'small_w14_peg':
    dict(
        embed_dim=[96, 96, 192, 384, 768],
        num_heads=[3, 6, 12, 24],
        depth=[2, 2, 8, 2],
        kernel_sizes=[14] * 4,
        patch_conv_type='3conv',
        peg=True),
    'base_w14':
    dict(
        embed_dim=[128, 128, 256, 512, 1024],
        num_heads=[4, 8, 16, 32],
        depth=[2, 2, 14, 2],
        kernel_sizes=[14] * 4,
        patch_conv_type='1conv'),
    'base_w14_peg':
    dict(
        embed_dim=[128, 128, 256, 512, 1024],
        num_heads=[4, 8, 16, 32],
        depth=[2, 2, 14, 2],
        kernel_sizes=[14] * 4,
        patch_conv_type='1conv',
        peg=True),
}
ARCH_DEFAULTS = dict(
    patch_size=4,
    mlp_ratio=4.0,
    peg=False,
    downsampling=['c', 'sc', 'sc', 'sc'])
# Constructor arguments of the official model that are not architecture.
_NON_ARCH_KEYS = ('img_size', 'num_classes', 'det_norm')


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Return the full architecture dict for a variant name or custom dict."""
    if isinstance(arch, str):
        if arch not in ARCH_SETTINGS:
            raise KeyError(f'Unknown RegionViT arch {arch!r}; choose one of '
                           f'{sorted(ARCH_SETTINGS)} or pass a dict.')
        return {**ARCH_DEFAULTS, **ARCH_SETTINGS[arch]}
    arch = {k: v for k, v in arch.items() if k not in _NON_ARCH_KEYS}
    allowed = set(ARCH_DEFAULTS) | set(ARCH_SETTINGS['tiny'])
    unknown = sorted(set(arch) - allowed)
    if unknown:
        raise KeyError(f'Unknown RegionViT arch keys {unknown}; allowed: '
                       f'{sorted(allowed)}.')
    required = ('embed_dim', 'num_heads', 'depth', 'kernel_sizes')
    missing = [k for k in required if k not in arch]
    if missing:
        raise KeyError(f'Custom RegionViT arch lacks {missing}.')
    cfg = {**ARCH_DEFAULTS, 'patch_conv_type': '3conv', **arch}
    num_stages = len(cfg['depth'])
    if len(cfg['embed_dim']) != num_stages + 1:
        raise ValueError('arch embed_dim needs one entry more than depth '
                         '(the patch embedding width first), got '
                         f"{cfg['embed_dim']} for depth {cfg['depth']}.")
    for key in ('num_heads', 'kernel_sizes', 'downsampling'):
        if len(cfg[key]) != num_stages:
            raise ValueError(f'arch {key} needs {num_stages} entries, got '
                             f'{cfg[key]}.')
    return cfg


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map, computed channels-last."""

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(
            x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
            self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    """Local-token embedding: the image at stride ``patch_size``."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int,
                 conv_type: str) -> None:
        super().__init__()
        if conv_type == '3conv':
            if patch_size != 4:
                raise ValueError('patch_conv_type 3conv needs patch_size 4, '
                                 f'got {patch_size}.')
            self.proj = nn.Sequential(
                nn.Conv2d(in_channels, embed_dim // 4, 3, 2, 1),
                LayerNorm2d(embed_dim // 4, eps=1e-5), nn.GELU(),
                nn.Conv2d(embed_dim // 4, embed_dim // 2, 3, 2, 1),
                LayerNorm2d(embed_dim // 2, eps=1e-5), nn.GELU(),
                nn.Conv2d(embed_dim // 2, embed_dim, 3, 1, 1))
        elif conv_type == '1conv':
            self.proj = nn.Conv2d(in_channels, embed_dim, 2 * patch_size,
                                  patch_size, patch_size - 1)
        elif conv_type == 'linear':
            self.proj = nn.Conv2d(in_channels, embed_dim, patch_size,
                                  patch_size)
        else:
            raise ValueError(f'Unknown patch_conv_type {conv_type!r}; use '
                             "'3conv', '1conv' or 'linear'.")

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(self.proj, nn.Sequential):
            return self.proj(x)
        conv1, norm1, _, conv2, norm2, _, conv3 = self.proj
        return norm_gelu_conv(
            norm_gelu_conv(conv1(x), norm1, conv2), norm2, conv3)


class RegionalEmbed(nn.Conv2d):
    """Regional-token embedding: one token per ``patch * ws`` square.

    Official quirk: the image is padded centred, and as soon as one side is
    not a multiple of the region size, *both* sides are padded, a side that
    already fits by a whole extra region.
    """

    def __init__(self, in_channels: int, embed_dim: int, region: int) -> None:
        super().__init__(in_channels, embed_dim, region, region)
        self.region = region

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        r = self.region
        if h % r or w % r:
            ph, pw = r - h % r, r - w % r
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return super().forward(x)


class Downsample(nn.Sequential):
    """Norm, GELU and a grouped convolution between stages.

    ``mode`` is the official ``downsampling`` entry: ``'sc'`` halves the
    resolution (3x3, stride 2), ``'c'`` keeps it (1x1; identity when the
    width does not change).
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str) -> None:
        if mode not in ('c', 'sc'):
            raise ValueError(f"downsampling must be 'c' or 'sc', got {mode!r}")
        if mode == 'c' and in_channels == out_channels:
            super().__init__(nn.Identity())
            return
        k, s = (3, 2) if mode == 'sc' else (1, 1)
        super().__init__(
            LayerNorm2d(in_channels, eps=1e-5), nn.GELU(),
            nn.Conv2d(
                in_channels, out_channels, k, s, k // 2, groups=in_channels))

    def forward(self, x: Tensor) -> Tensor:
        if len(self) == 1:
            return self[0](x)
        if (x.device.type == 'cpu' and torch.is_autocast_enabled('cpu')
                and 1 in x.shape[-2:]):
            # torch 2.14's CPU bfloat16 kernel for this grouped, strided
            # conv returns wrong (often huge) weight gradients for maps one
            # pixel wide; such maps are tiny, so they run in float32.
            with torch.autocast('cpu', enabled=False):
                return norm_gelu_conv(x.float(), self[0], self[2])
        return norm_gelu_conv(x, self[0], self[2])


# Tokens per chunk when inference runs a block's windows chunk by chunk.
_CHUNK_TOKENS = 4096


@torch.library.custom_op('mmregionvit::nchw_copy', mutates_args=())
def _nchw_copy(x: Tensor) -> Tensor:
    """A contiguous copy of an NCHW view of channels-last memory, made by one
    2-D transpose per image: torch copies a transposed matrix block by
    block, several times faster than a permuted 4-D copy. An opaque op, so
    that torch.compile keeps it too (its own copy kernel is 3-5x slower)."""
    b, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
    out = x.new_empty(b, c, h * w)
    for i in range(b):
        out[i].copy_(rows[i].t())
    return out.view(b, c, h, w)


@_nchw_copy.register_fake
def _(x: Tensor) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


_nchw_copy.register_autograd(lambda ctx, grad: grad)


def _contiguous_nchw(x: Tensor) -> Tensor:
    """``x.contiguous()``, faster for a CPU view of channels-last memory."""
    if x.is_contiguous() or x.device.type != 'cpu':
        return x.contiguous()
    return _nchw_copy(x)


def _rel_pos_index(ws: int) -> Tensor:
    """Index of each (query, key) local pair into the relative table.

    Official quirk: the offset is ``ws // 2`` rather than ``ws - 1``, so
    negative offsets wrap around the ``(2ws-1) x (2ws-1)`` table.
    """
    size = 2 * ws - 1
    pos = torch.arange(ws)
    d = (pos[None, :] - pos[:, None] + ws // 2) % size  # [y, y'] -> row
    index = d[:, None, :, None] * size + d[None, :, None, :]  # y, x, y', x'
    return index.reshape(ws * ws, ws * ws)


@lru_cache(maxsize=32)
def _window_keep(h_win: int, w_win: int, ws: int, pad_b: int, pad_r: int,
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


class R2LAttention(nn.Module):
    """Multi-head attention with a relative position bias for local tokens.

    Official quirk: one instance serves both the regional attention (over
    all regional tokens, no bias) and the local attention (inside each
    window, bias on local-local pairs) of a block.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'width {dim} is not divisible by {num_heads} '
                             'heads.')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos = nn.Parameter(
            torch.zeros(num_heads, (2 * window_size - 1)**2))
        self.register_buffer(
            'rel_pos_index', _rel_pos_index(window_size), persistent=False)

    def local_bias(self) -> Tensor:
        """The ``(1, heads, L, L)`` additive bias of a window, zero at slot 0.

        4-D on purpose: SDPA's fused CPU kernel takes a 4-D mask only.
        """
        bias = self.rel_pos[:, self.rel_pos_index]
        return F.pad(bias, (1, 0, 1, 0))[None]

    def forward(self,
                x: Tensor,
                norm: nn.LayerNorm,
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """Attend over the second-last dim of ``norm(x)`` (``(M, N, C)``); an
        ``attn_mask`` of ``G`` windows repeats every ``G`` windows."""
        m, n, c = x.shape
        h = self.num_heads
        qkv = norm_linear(x, norm, self.qkv).view(m, n, 3, h, c // h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        x = window_attention(q, k, v, attn_mask)
        return linear(x.transpose(1, 2).reshape(m, n, c), self.proj)


class Mlp(nn.Module):
    """Linear, GELU, linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return linear(linear(x, self.fc1, gelu=True), self.fc2)


class R2LBlock(nn.Module):
    """Regional self-attention, then local attention in each window, then MLP.

    Works on the flat window tensor ``(B, nW, 1 + ws * ws, C)``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int,
                 mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.regional_norm = nn.LayerNorm(dim, eps=1e-6)
        self.local_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = R2LAttention(dim, num_heads, window_size)
        self.mlp_norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(
            drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, pad_keep: Optional[Tensor]) -> Tensor:
        b, nw, length, c = x.shape
        # a copy: a view kept for backward would keep all of x alive
        regional = x[:, :, 0].contiguous()
        regional = regional + self.drop_path(
            self.attn(regional, self.regional_norm))

        # Bias and padding mask as one additive mask, (1 or nW, h, L, L),
        # the same for every image.
        mask = self.attn.local_bias().to(x.dtype)
        if pad_keep is not None:
            mask = mask.masked_fill(~pad_keep[:, None],
                                    torch.finfo(x.dtype).min)
        if torch.is_grad_enabled():
            x = torch.cat([regional.unsqueeze(2), x[:, :, 1:]], dim=2)
            x = self._local(x.view(b * nw, length, c), mask)
            return x.view(b, nw, length, c)
        # Inference, eager or compiled: windows are independent from here
        # on, so a CPU runs them in chunks whose activations stay in cache,
        # each written straight into the output (same results); a GPU takes
        # them all at once.
        if pad_keep is not None:
            mask = mask.expand(b, -1, -1, -1, -1).flatten(0, 1)
        x = x.view(b * nw, length, c)
        regional = regional.view(b * nw, 1, c)
        out = torch.empty_like(x)
        step = max(1, _CHUNK_TOKENS // length) \
            if x.device.type == 'cpu' else b * nw
        for i in range(0, b * nw, step):
            chunk = torch.cat([regional[i:i + step], x[i:i + step, 1:]], 1)
            chunk_mask = mask if mask.shape[0] == 1 else mask[i:i + step]
            self._local(chunk, chunk_mask, out=out[i:i + step])
        return out.view(b, nw, length, c)

    def _local(self,
               x: Tensor,
               mask: Tensor,
               out: Optional[Tensor] = None) -> Tensor:
        """Local attention and MLP of windows ``x`` (``(M, L, C)``), the
        result written into ``out`` if given."""
        x = x + self.drop_path(self.attn(x, self.local_norm, mask))
        return torch.add(
            x, self.drop_path(norm_mlp(x, self.mlp_norm, self.mlp)), out=out)


class WindowLayout:
    """Geometry of one stage's flat window layout for one input size."""

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
        self.pad_keep = None
        if self.pad_b or self.pad_r:
            # torch.compile traces the builder once per input size; the
            # cache serves eager calls
            build = _window_keep.__wrapped__ \
                if torch.compiler.is_compiling() else _window_keep
            self.pad_keep = build(self.h_win, self.w_win, ws, self.pad_b,
                                  self.pad_r, local.device)

    def to_windows(self, regional: Tensor, local: Tensor) -> Tensor:
        """NCHW regional and local maps -> ``(B, nW, 1 + ws * ws, C)``."""
        b, c, hw, ww, ws = self.batch, local.shape[1], self.h_win, \
            self.w_win, self.ws
        local = local.permute(0, 2, 3, 1)
        if self.pad_b or self.pad_r:
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


class RegionViTStage(nn.Module):
    """Downsampling, then ``depth`` regional-to-local blocks."""

    def __init__(self, in_channels: int, out_channels: int, depth: int,
                 num_heads: int, window_size: int, mlp_ratio: float,
                 downsampling: str, drop_paths: Sequence[float], peg: bool,
                 det_norm: bool, with_cp: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.with_cp = with_cp
        self.downsample = Downsample(in_channels, out_channels, downsampling)
        self.blocks = nn.ModuleList(
            R2LBlock(out_channels, num_heads, window_size, mlp_ratio, dp)
            for dp in drop_paths)
        self.peg = nn.Conv2d(
            out_channels,
            out_channels,
            3,
            1,
            1,
            groups=out_channels,
            bias=False) if peg else None
        self.out_norm = nn.LayerNorm(out_channels, eps=1e-5) \
            if det_norm else None

    def forward(self, regional: Tensor,
                local: Tensor) -> Tuple[Tensor, Tensor]:
        # Official quirk: regional and local tokens share the projection.
        regional = self.downsample(regional)
        local = self.downsample(local)
        layout = WindowLayout(regional, local, self.window_size)
        x = layout.to_windows(regional, local)
        for i, block in enumerate(self.blocks):
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(
                    block, x, layout.pad_keep, use_reentrant=False)
            else:
                x = block(x, layout.pad_keep)
            if i == 0 and self.peg is not None:
                # Positional encoding generator after the first block, one
                # depth-wise conv shared by both token kinds; the padded
                # local tokens restart from zero afterwards, as officially.
                regional = layout.regional_map(x)
                local = layout.local_map(x)
                x = layout.to_windows(regional + self.peg(regional),
                                      local + self.peg(local))
        regional = layout.regional_map(x)
        if self.out_norm is not None:
            x = self.out_norm(x)
        return regional, layout.local_map(x)


@MODELS.register_module()
class RegionViT(BaseModule):
    """RegionViT backbone for dense prediction.

    Args:
        arch: An official variant name (``tiny``, ``small``, ``medium``,
            ``base``, ``small_w14``, ``small_w14_peg``, ``base_w14``,
            ``base_w14_peg``) or a dict with the official constructor's
            names: ``embed_dim`` (5 entries), ``depth``, ``num_heads``,
            ``kernel_sizes``, and optionally ``downsampling``,
            ``patch_conv_type``, ``mlp_ratio``, ``patch_size``, ``peg``.
        in_channels: Image channels.
        out_indices: Stages whose local-token maps are returned (strides 4,
            8, 16, 32).
        drop_path_rate: Stochastic depth, increasing linearly over blocks.
        det_norm: Add the official detector's per-stage LayerNorm. Official
            quirk: the normed map also feeds the next stage.
        frozen_stages: -1 freezes nothing, 0 the embeddings, ``k`` the
            embeddings and the first ``k`` stages (kept in eval mode).
        with_cp: Gradient checkpointing of the stem and of each block.
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` loads an
            official classification or detectron2 checkpoint, a plain state
            dict or an mmengine checkpoint (see ``load_pretrained``).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.0,
                 det_norm: bool = True,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = resolve_arch(arch)
        a = self.arch
        num_stages = len(a['depth'])
        out_indices = tuple(out_indices)
        bad = [i for i in out_indices if not -num_stages <= i < num_stages]
        if bad:
            raise ValueError(f'out_indices {bad} out of range for '
                             f'{num_stages} stages.')
        self.out_indices = tuple(i % num_stages for i in out_indices)
        self.in_channels = in_channels
        self.frozen_stages = frozen_stages
        self.det_norm = det_norm
        self.with_cp = with_cp
        dims = a['embed_dim']
        self.num_features = [dims[i + 1] for i in range(num_stages)]

        self.patch_embed = PatchEmbed(in_channels, dims[0], a['patch_size'],
                                      a['patch_conv_type'])
        self.regional_embed = RegionalEmbed(
            in_channels, dims[0], a['patch_size'] * a['kernel_sizes'][0])
        dpr = torch.linspace(0, drop_path_rate, sum(a['depth'])).tolist()
        self.stages = nn.ModuleList()
        for i in range(num_stages):
            start = sum(a['depth'][:i])
            self.stages.append(
                RegionViTStage(dims[i], dims[i + 1], a['depth'][i],
                               a['num_heads'][i], a['kernel_sizes'][i],
                               a['mlp_ratio'], a['downsampling'][i],
                               dpr[start:start + a['depth'][i]], a['peg'],
                               det_norm, with_cp))
        self._freeze_stages()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if x.dim() != 4:
            raise ValueError('RegionViT expects a batch of images (N, C, H, W)'
                             f', got a tensor of shape {tuple(x.shape)}.')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'RegionViT was built for {self.in_channels} '
                             f'input channels, got {x.shape[1]} (shape '
                             f'{tuple(x.shape)}); set in_channels.')
        # The convolutions run channels-last (as their outputs then are), so
        # the norms between them and the window layout need no transposes.
        x = x.contiguous(memory_format=torch.channels_last)
        if self.with_cp and torch.is_grad_enabled() and any(
                p.requires_grad for p in self.patch_embed.parameters()):
            # the stem's high-resolution maps are recomputed too
            local = cp.checkpoint(self.patch_embed, x, use_reentrant=False)
        else:
            local = self.patch_embed(x)
        regional = self.regional_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            regional, local = stage(regional, local)
            if i in self.out_indices:
                # contiguous NCHW: some mmcv ops (RoIAlign) assume it
                outs.append(_contiguous_nchw(local))
        return tuple(outs)

    def init_weights(self) -> None:
        if self.init_cfg is not None and \
                self.init_cfg.get('type') == 'Pretrained':
            from .checkpoint import load_pretrained
            load_pretrained(
                self,
                self.init_cfg['checkpoint'],
                prefix=self.init_cfg.get('prefix'))
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, R2LAttention):
                trunc_normal_(m.rel_pos, std=.02)
        super().init_weights()

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [
            self.patch_embed, self.regional_embed,
            *self.stages[:self.frozen_stages]
        ]

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'RegionViT':
        super().train(mode)
        self._freeze_stages()
        return self
