"""Converting the official detectron2 RegionViT detectors to mmdet models.

The official COCO weights are detectron2 checkpoints of RetinaNet and
Mask R-CNN with FPN. ``convert_detectron2`` maps every key of such a
checkpoint to the matching mmdet module (backbone through
``checkpoint_filter_fn``); a key it cannot place is an error.
"""
import re
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .checkpoint import CheckpointMismatchError, checkpoint_filter_fn

Rule = Tuple[str, str]
# Mask R-CNN: FPN on res2-res5, max-pool P6 (no weights).
_MASK_RCNN_RULES: List[Rule] = [
    (r'backbone\.fpn_lateral(\d)\.', 'neck.lateral_convs.{L2}.conv.'),
    (r'backbone\.fpn_output(\d)\.', 'neck.fpn_convs.{L2}.conv.'),
    (r'proposal_generator\.rpn_head\.conv\.', 'rpn_head.rpn_conv.'),
    (r'proposal_generator\.rpn_head\.objectness_logits\.',
     'rpn_head.rpn_cls.'),
    (r'proposal_generator\.rpn_head\.anchor_deltas\.', 'rpn_head.rpn_reg.'),
    (r'roi_heads\.box_head\.fc(\d)\.', 'roi_head.bbox_head.shared_fcs.{I1}.'),
    (r'roi_heads\.box_predictor\.cls_score\.', 'roi_head.bbox_head.fc_cls.'),
    (r'roi_heads\.box_predictor\.bbox_pred\.', 'roi_head.bbox_head.fc_reg.'),
    (r'roi_heads\.mask_head\.mask_fcn(\d)\.',
     'roi_head.mask_head.convs.{I1}.conv.'),
    (r'roi_heads\.mask_head\.deconv\.', 'roi_head.mask_head.upsample.'),
    (r'roi_heads\.mask_head\.predictor\.', 'roi_head.mask_head.conv_logits.'),
]
# RetinaNet: FPN on res3-res5, P6 from C5 and P7 from P6 by convs.
_RETINANET_RULES: List[Rule] = [
    (r'backbone\.fpn_lateral(\d)\.', 'neck.lateral_convs.{L3}.conv.'),
    (r'backbone\.fpn_output(\d)\.', 'neck.fpn_convs.{L3}.conv.'),
    (r'backbone\.top_block\.p6\.', 'neck.fpn_convs.3.conv.'),
    (r'backbone\.top_block\.p7\.', 'neck.fpn_convs.4.conv.'),
    (r'head\.cls_subnet\.(\d)\.', 'bbox_head.cls_convs.{H}.conv.'),
    (r'head\.bbox_subnet\.(\d)\.', 'bbox_head.reg_convs.{H}.conv.'),
    (r'head\.cls_score\.', 'bbox_head.retina_cls.'),
    (r'head\.bbox_pred\.', 'bbox_head.retina_reg.'),
]
_INDEX: Dict[str, Callable[[int], int]] = {
    'L2': lambda n: n - 2,  # FPN level -> mmdet FPN index
    'L3': lambda n: n - 3,
    'I1': lambda n: n - 1,  # 1-based -> 0-based
    'H': lambda n: n // 2,  # Sequential(conv, relu, ...) -> conv index
}
# Buffers some detectron2 versions save; the data preprocessor owns them.
_IGNORED = ('pixel_mean', 'pixel_std')


def _apply_rules(key: str, rules: List[Rule]) -> Optional[str]:
    for pattern, target in rules:
        m = re.match(pattern, key)
        if m:
            for tag, fn in _INDEX.items():
                if '{' + tag + '}' in target:
                    target = target.replace('{' + tag + '}',
                                            str(fn(int(m.group(1)))))
            return target + key[m.end():]
    return None


def retinanet_anchor_order(num_sizes: int, num_ratios: int) -> Tensor:
    """For each mmdet anchor slot, the detectron2 slot it comes from.

    detectron2 lists a location's anchors size-major (size, then ratio);
    mmdet's AnchorGenerator lists them ratio-major.
    """
    ratio, size = torch.meshgrid(
        torch.arange(num_ratios), torch.arange(num_sizes), indexing='ij')
    return (size * num_ratios + ratio).flatten()


def _reorder_anchors(value: Tensor, num_anchors: int, order: Tensor) -> Tensor:
    per_anchor = value.shape[0] // num_anchors
    return value.reshape(num_anchors, per_anchor,
                         *value.shape[1:])[order].flatten(0, 1)


def convert_detectron2(checkpoint: dict,
                       num_sizes: int = 3,
                       num_ratios: int = 3) -> Dict[str, Tensor]:
    """mmdet state dict of an official detectron2 RetinaNet or Mask R-CNN.

    ``num_sizes`` and ``num_ratios`` describe RetinaNet's anchors per
    location (3 octave scales x 3 aspect ratios officially), whose order
    the classification and regression outputs follow.
    """
    state_dict = checkpoint.get('model', checkpoint)
    if any(k.startswith('proposal_generator.') for k in state_dict):
        rules = _MASK_RCNN_RULES
    elif any(k.startswith('head.cls_subnet.') for k in state_dict):
        rules = _RETINANET_RULES
    else:
        raise ValueError('Not a detectron2 RetinaNet or Mask R-CNN checkpoint:'
                         ' found neither proposal_generator.* nor '
                         'head.cls_subnet.* keys.')
    prefix = 'backbone.bottom_up.model.'
    backbone = {k: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not backbone:
        raise ValueError(f'No backbone weights ({prefix}*) in the checkpoint.')
    out = {
        f'backbone.{k}': v
        for k, v in checkpoint_filter_fn(backbone).items()
    }
    order = retinanet_anchor_order(num_sizes, num_ratios)
    unmapped = []
    for key, value in state_dict.items():
        if key.startswith(prefix) or key in _IGNORED:
            continue
        target = _apply_rules(key, rules)
        if target is None:
            unmapped.append(key)
            continue
        head = ('bbox_head.retina_cls.', 'bbox_head.retina_reg.')
        if target.startswith(head):
            value = _reorder_anchors(value, len(order), order)
        out[target] = value
    if unmapped:
        raise CheckpointMismatchError(
            'detectron2 keys with no mmdet counterpart: ' +
            ', '.join(sorted(unmapped)))
    return out


def check_against_model(state_dict: Dict[str, Tensor],
                        model: torch.nn.Module) -> None:
    """Raise if ``state_dict`` does not cover ``model`` exactly."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(
        k for k in set(own) & set(state_dict)
        if own[k].shape != state_dict[k].shape)
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            'The converted checkpoint does not fit the config\'s model: '
            f'missing {missing}, unexpected {unexpected}, shape mismatch '
            f'{mismatched}. Check that the config matches the checkpoint '
            '(variant, number of classes, head widths).')
