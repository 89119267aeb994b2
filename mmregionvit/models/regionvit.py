"""RegionViT: regional-to-local attention vision transformer.

Chen, Panda, Fan, "RegionViT: Regional-to-Local Attention for Vision
Transformers", ICLR 2022. The computation follows the official release
exactly (its ImageNet and COCO weights give the same outputs), with the
quirks of that release kept and marked ``Official quirk`` below.

Each module's ``forward`` is the plain computation. A backbone built with
``fused=True`` (the default) runs the same computations through the fast
paths of ``ops.py`` wherever they apply; ``fused=False``, tracing and
exporting run the plain code. The token layout is in ``windows.py``.
"""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from timm.layers import DropPath
from torch import Tensor

from ..registry import MODELS
from . import ops
from .variants import resolve_arch
from .windows import WindowLayout, rel_pos_index, symbolic, window_keep


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map."""

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
        self.fused = True
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
        if (self.fused and isinstance(self.proj, nn.Sequential)
                and ops.enabled()):
            conv1, norm1, _, conv2, norm2, _, conv3 = self.proj
            x = ops.norm_gelu_conv(conv1(x), norm1, conv2)
            return ops.norm_gelu_conv(x, norm2, conv3)
        return self.proj(x)


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
        if symbolic(h, w) or h % r or w % r:
            # arithmetic, not a branch: graphs pad every size correctly
            uneven = (h % r != 0) | (w % r != 0)
            ph, pw = (r - h % r) * uneven, (r - w % r) * uneven
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
        else:
            k, s = (3, 2) if mode == 'sc' else (1, 1)
            super().__init__(
                LayerNorm2d(in_channels, eps=1e-5), nn.GELU(),
                nn.Conv2d(
                    in_channels,
                    out_channels,
                    k,
                    s,
                    k // 2,
                    groups=in_channels))
        self.fused = True

    def forward(self, x: Tensor) -> Tensor:
        if len(self) == 1:  # identity
            return x
        if ops.bf16_grouped_conv_fault(x):
            with torch.autocast('cpu', enabled=False):
                return self._norm_gelu_conv(x.float())
        return self._norm_gelu_conv(x)

    def _norm_gelu_conv(self, x: Tensor) -> Tensor:
        if self.fused and ops.enabled():
            return ops.norm_gelu_conv(x, self[0], self[2])
        return super().forward(x)


class R2LAttention(nn.Module):
    """Multi-head attention with a relative position bias for local tokens.

    Official quirk: one instance serves both the regional attention (over
    all regional tokens, no bias) and the local attention (inside each
    window, bias on local-local pairs) of a block.

    ``record``, None unless set, is called with the attention weights
    ``(..., heads, N, N)`` of each call; the output is then computed from
    those very weights (``weights @ v``) instead of SDPA's fused kernel.
    Only this reference ``forward`` records: the fast paths never do.
    """
    record: Optional[Callable[[Tensor], None]] = None

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
            'rel_pos_index', rel_pos_index(window_size), persistent=False)

    def local_bias(self) -> Tensor:
        """The ``(1, heads, L, L)`` additive bias of a window, zero at slot 0
        (the regional token)."""
        bias = self.rel_pos[:, self.rel_pos_index]
        return F.pad(bias, (1, 0, 1, 0))[None]

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Attention over the second-last dim of ``x`` (``(..., N, C)``), with
        an additive ``mask`` that broadcasts to ``(..., heads, N, N)``."""
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1))
        # each (..., heads, N, d)
        q, k, v = (t.transpose(-2, -3) for t in qkv.unbind(-3))
        if self.record is None:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            weights = self.weights(q, k, mask)
            self.record(weights)
            x = weights @ v
        return self.proj(x.transpose(-2, -3).flatten(-2))

    @staticmethod
    def weights(q: Tensor, k: Tensor, mask: Optional[Tensor]) -> Tensor:
        """``softmax(q k^T / sqrt(d) + mask)``: the weights SDPA applies."""
        scores = q @ k.transpose(-2, -1) * q.shape[-1]**-0.5
        if mask is not None:
            scores = scores + mask
        return scores.softmax(dim=-1)


class Mlp(nn.Module):
    """Linear, GELU, linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class R2LBlock(nn.Module):
    """Regional self-attention, then local attention in each window (the
    regional token with its local tokens), then the MLP; each with a norm
    before and a residual connection after.

    Works on the flat window tensor ``(B, nW, 1 + ws * ws, C)``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int,
                 mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.fused = True
        self.regional_norm = nn.LayerNorm(dim, eps=1e-6)
        self.local_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = R2LAttention(dim, num_heads, window_size)
        self.mlp_norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(
            drop_path) if drop_path > 0 else nn.Identity()

    def local_mask(self, pad_keep: Optional[Tensor],
                   dtype: torch.dtype) -> Tensor:
        """The local attention's additive mask, ``(1 or nW, heads, L, L)``:
        the relative-position bias, and the padding of ``pad_keep``."""
        mask = self.attn.local_bias().to(dtype)
        if pad_keep is not None:
            mask = mask.masked_fill(~pad_keep[:, None], torch.finfo(dtype).min)
        return mask

    def drop_windows(self, x: Tensor) -> Tensor:
        """Stochastic depth on ``(B, nW, L, C)``. Official quirk: from the
        local attention on, each window is a sample of its own, so windows
        are dropped rather than images."""
        return self.drop_path(x.flatten(0, 1)).view_as(x)

    def forward(self, x: Tensor, pad_keep: Optional[Tensor]) -> Tensor:
        if self.fused and ops.enabled():
            return ops.r2l_block(self, x, pad_keep)
        regional = x[:, :, 0]
        regional = regional + self.drop_path(
            self.attn(self.regional_norm(regional)))
        x = torch.cat([regional.unsqueeze(2), x[:, :, 1:]], dim=2)
        # all windows of all images at once; the mask, per window or one
        # for all, is the same for every image
        mask = self.local_mask(pad_keep, x.dtype)
        x = x + self.drop_windows(self.attn(self.local_norm(x), mask))
        return x + self.drop_windows(self.mlp(self.mlp_norm(x)))


class RegionViTStage(nn.Module):
    """Downsampling, then ``depth`` regional-to-local blocks."""

    def __init__(self, in_channels: int, out_channels: int, depth: int,
                 num_heads: int, window_size: int, mlp_ratio: float,
                 downsampling: str, drop_paths: Sequence[float], peg: bool,
                 det_norm: bool, with_cp: bool) -> None:
        super().__init__()
        self.fused = True
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
        self.out_norm = nn.LayerNorm(
            out_channels, eps=1e-5) if det_norm else None

    def forward(self, regional: Tensor,
                local: Tensor) -> Tuple[Tensor, Tensor]:
        # Official quirk: regional and local tokens share the projection.
        regional = self.downsample(regional)
        local = self.downsample(local)
        layout = WindowLayout(regional, local, self.window_size)
        fast = self.fused and ops.enabled()
        build_keep = ops.window_keep if fast else window_keep
        to_windows = ops.to_windows if fast else WindowLayout.to_windows
        pad_keep = None
        if layout.padded:
            pad_keep = build_keep(layout.h_win, layout.w_win, layout.ws,
                                  layout.pad_b, layout.pad_r, local.device)
        x = to_windows(layout, regional, local)
        for i, block in enumerate(self.blocks):
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, pad_keep, use_reentrant=False)
            else:
                x = block(x, pad_keep)
            if i == 0 and self.peg is not None:
                # Positional encoding generator after the first block, one
                # depth-wise conv shared by both token kinds; the padded
                # local tokens restart from zero afterwards, as officially.
                regional = layout.regional_map(x)
                local = layout.local_map(x)
                x = to_windows(layout, regional + self.peg(regional),
                               local + self.peg(local))
        regional = layout.regional_map(x)
        if self.out_norm is not None:
            x = self.out_norm(x)
        return regional, layout.local_map(x)


@MODELS.register_module()
class RegionViT(BaseModule):
    """RegionViT backbone for dense prediction.

    Args:
        arch: An official variant name (see ``variants.VARIANTS``: ``tiny``,
            ``small``, ``medium``, ``base``, ``small_w14``,
            ``small_w14_peg``, ``base_w14``, ``base_w14_peg``) or a dict with
            the official constructor's names: ``embed_dim`` (5 entries),
            ``depth``, ``num_heads``, ``kernel_sizes``, and optionally
            ``downsampling``, ``patch_conv_type``, ``mlp_ratio``,
            ``patch_size``, ``peg``.
        in_channels: Image channels.
        out_indices: Stages whose local-token maps are returned (strides 4,
            8, 16, 32).
        drop_path_rate: Stochastic depth, increasing linearly over blocks.
        det_norm: Add the official detector's per-stage LayerNorm. Official
            quirk: the normed map also feeds the next stage.
        frozen_stages: -1 freezes nothing, 0 the embeddings, ``k`` the
            embeddings and the first ``k`` stages (kept in eval mode).
        with_cp: Gradient checkpointing of the stem and of each block.
        fused: Run the fast paths of ``ops.py`` where they apply (same
            results); False runs the plain reference code everywhere. Also
            settable later: ``backbone.fused = False``.
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
                 fused: bool = True,
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
        self.fused = fused
        self._freeze_stages()

    @property
    def fused(self) -> bool:
        return self._fused

    @fused.setter
    def fused(self, value: bool) -> None:
        self._fused = bool(value)
        for m in self.modules():
            if m is not self and hasattr(m, 'fused'):
                m.fused = self._fused

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        return tuple(self.forward_stages(x, self.out_indices)[1])

    def forward_stages(
            self,
            x: Tensor,
            out_indices: Sequence[int],
            num_stages: Optional[int] = None) -> Tuple[Tensor, List[Tensor]]:
        """Run the embeddings and the first ``num_stages`` stages (all by
        default).

        Returns the regional tokens of the last stage run, an ``(N, C, h, w)``
        map, and the local-token maps (contiguous NCHW) of the stages in
        ``out_indices``.
        """
        if x.dim() != 4:
            raise ValueError('RegionViT expects a batch of images (N, C, H, W)'
                             f', got a tensor of shape {tuple(x.shape)}.')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'RegionViT was built for {self.in_channels} '
                             f'input channels, got {x.shape[1]} (shape '
                             f'{tuple(x.shape)}); set in_channels.')
        fast = self.fused and ops.enabled()
        if fast:
            x = ops.channels_last(x)
        if self.with_cp and torch.is_grad_enabled() and any(
                p.requires_grad for p in self.patch_embed.parameters()):
            # the stem's high-resolution maps are recomputed too
            local = cp.checkpoint(self.patch_embed, x, use_reentrant=False)
        else:
            local = self.patch_embed(x)
        regional = self.regional_embed(x)
        outs = []
        for i, stage in enumerate(self.stages[:num_stages]):
            regional, local = stage(regional, local)
            if i in out_indices:
                # contiguous NCHW: some mmcv ops (RoIAlign) assume it
                outs.append(
                    ops.contiguous_nchw(local) if fast else local.contiguous())
        return regional, outs

    def init_weights(self) -> None:
        if self.init_cfg is not None and \
                self.init_cfg.get('type') == 'Pretrained':
            from .checkpoint import load_pretrained
            load_pretrained(
                self,
                self.init_cfg['checkpoint'],
                prefix=self.init_cfg.get('prefix'))
            return
        self.init_official_weights()
        super().init_weights()

    def init_official_weights(self) -> None:
        """The official initialisation of the linear layers, norms and
        relative-position tables (convolutions keep PyTorch's)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, R2LAttention):
                trunc_normal_(m.rel_pos, std=.02)

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
