"""The RegionViT ImageNet classifier: our backbone, the official final norm
and head.

As officially, the classifier reads the last stage's *regional* tokens:
LayerNorm (eps 1e-6), the mean over tokens, a linear head. The interface is
timm's (``forward_features``, ``forward_head``, ``forward_intermediates``,
``reset_classifier``, ``feature_info``); ``timm_models.py`` registers the
official variants with timm.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from timm.models._features import feature_take_indices
from torch import Tensor

from .regionvit import RegionViT


class RegionViTClassifier(nn.Module):
    """RegionViT for image classification.

    Args:
        arch: An official variant name or a custom dict in the official
            constructor's names (see :class:`RegionViT`).
        num_classes: Classes of the head; 0 for none (features only).
        in_chans: Image channels.
        global_pool: ``'avg'`` (the official mean over regional tokens) or
            ``''`` (the head applies to each token).
        drop_path_rate: Stochastic depth, increasing linearly over blocks.
        det_norm: The official detector's per-stage norms (off in the
            official classifier). Official quirk: the normed map also feeds
            the next stage, so they change the logits.
        fused: Run the backbone's fast paths (see :class:`RegionViT`).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 num_classes: int = 1000,
                 in_chans: int = 3,
                 global_pool: str = 'avg',
                 drop_path_rate: float = 0.0,
                 det_norm: bool = False,
                 fused: bool = True) -> None:
        super().__init__()
        _check_pool(global_pool)
        self.backbone = RegionViT(
            arch,
            in_channels=in_chans,
            drop_path_rate=drop_path_rate,
            det_norm=det_norm,
            fused=fused)
        self.backbone.init_official_weights()
        arch = self.backbone.arch
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = arch['embed_dim'][-1]
        self.feature_info = _feature_info(arch)
        self.norm = nn.LayerNorm(self.num_features, eps=1e-6)
        self.head = self._new_head(num_classes)

    def _new_head(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        head = nn.Linear(self.num_features, num_classes)
        nn.init.trunc_normal_(head.weight, std=.02)
        nn.init.zeros_(head.bias)
        return head

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self,
                         num_classes: int,
                         global_pool: Optional[str] = None) -> None:
        """A new head for ``num_classes`` (0: none); the pooling too if
        ``global_pool`` is given."""
        if global_pool is not None:
            _check_pool(global_pool)
            self.global_pool = global_pool
        ref = self.backbone.regional_embed.weight
        self.num_classes = num_classes
        self.head = self._new_head(num_classes).to(ref.device, ref.dtype)
        self.head.train(self.training)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.with_cp = enable
        for stage in self.backbone.stages:
            stage.with_cp = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        """Parameter groups for timm's layer-wise learning-rate decay."""
        return dict(
            stem=r'^backbone\.(patch_embed|regional_embed)',
            blocks=r'^backbone\.stages\.(\d+)' if coarse else [
                (r'^backbone\.stages\.(\d+)\.(downsample|peg|out_norm)',
                 (0, )),
                (r'^backbone\.stages\.(\d+)\.blocks\.(\d+)', None),
                (r'^norm', (99999, )),
            ])

    def _tokens(self, regional: Tensor) -> Tensor:
        """Normed regional tokens, ``(N, h * w, C)``, of the last stage."""
        return self.norm(regional.flatten(2).transpose(1, 2))

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's regional tokens after the final norm,
        ``(N, tokens, C)``."""
        regional, _ = self.backbone.forward_stages(x, ())
        return self._tokens(regional)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=1)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """The local-token maps of the stages in ``indices`` (all if None,
        the last n if an int), as timm's models give them.

        ``norm`` changes nothing: the final norm belongs to the regional
        tokens, and the maps are the backbone's (with the detection norms
        if built with ``det_norm``). Unless ``intermediates_only``, also
        returns ``forward_features``' output when every stage ran.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"RegionViT's intermediates are NCHW maps, "
                             f'got output_fmt={output_fmt!r}.')
        num_stages = len(self.backbone.stages)
        take, last = feature_take_indices(num_stages, indices)
        run = last + 1 if stop_early or intermediates_only else num_stages
        regional, maps = self.backbone.forward_stages(x, take, run)
        if intermediates_only:
            return maps
        return (self._tokens(regional) if run == num_stages else regional,
                maps)

    def prune_intermediate_layers(self,
                                  indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` (and the final norm
        and head with them)."""
        take, last = feature_take_indices(len(self.backbone.stages), indices)
        prune_end = last < len(self.backbone.stages) - 1
        stages = self.backbone.stages[:last + 1]
        self.backbone.stages = stages
        self.backbone.out_indices = tuple(i for i in self.backbone.out_indices
                                          if i < len(stages))
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        if prune_end:
            self.num_features = self.head_hidden_size = \
                self.feature_info[last]['num_chs']
        if prune_head or prune_end:
            self.reset_classifier(0, '')
        return take


def _check_pool(global_pool: str) -> None:
    if global_pool not in ('avg', ''):
        raise ValueError("RegionViT pools its regional tokens by 'avg' (or "
                         f"'' for none), got global_pool={global_pool!r}.")


def _feature_info(arch: dict) -> List[Dict]:
    """Channels and stride of each stage's local-token map."""
    info, stride = [], arch['patch_size']
    for i, mode in enumerate(arch['downsampling']):
        stride *= 2 if mode == 'sc' else 1
        info.append(
            dict(
                num_chs=arch['embed_dim'][i + 1],
                reduction=stride,
                module=f'backbone.stages.{i}'))
    return info
