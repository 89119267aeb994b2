"""Mask R-CNN RoI head parts with detectron2's inference.

Configured in place of mmdet's ``SingleRoIExtractor``, ``Shared2FCBBoxHead``
and ``FCNMaskHead`` (``StandardRoIHead`` stays), they give the detections
of detectron2's ``StandardROIHeads`` followed by ``detector_postprocess``.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from ..registry import MODELS
from .detectron_boxes import (batched_nms, clip_boxes, detector_postprocess,
                              final_shape, iou_threshold)


@MODELS.register_module()
class DetectronRoIExtractor(SingleRoIExtractor):
    """SingleRoIExtractor with detectron2's RoI-to-level assignment.

    detectron2's ``assign_boxes_to_levels`` takes level
    ``floor(4 + log2(sqrt(area) / 224 + 1e-8))``, clamped to the levels
    there are; mmdet's ``floor(log2(sqrt(area) / 56 + 1e-6))`` is the same
    away from the level boundaries, but its larger epsilon and different
    rounding move some boxes just below a boundary (a size of 112 or 224
    pixels) up a level.
    """

    def __init__(self,
                 *args,
                 canonical_box_size: int = 224,
                 canonical_level: int = 4,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level

    def map_roi_levels(self, rois: Tensor, num_levels: int) -> Tensor:
        sizes = torch.sqrt(
            (rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        levels = torch.floor(self.canonical_level +
                             torch.log2(sizes / self.canonical_box_size +
                                        1e-8))
        min_level = round(math.log2(self.featmap_strides[0]))
        levels = levels.clamp(min=min_level, max=min_level + num_levels - 1)
        return levels.long() - min_level


@MODELS.register_module()
class DetectronBBoxHead(Shared2FCBBoxHead):
    """Shared2FCBBoxHead whose detections are detectron2's.

    detectron2's ``fast_rcnn_inference``: proposals whose boxes or scores
    are not finite are dropped, boxes are clipped to the image, the class
    scores above ``score_thr`` go through per-class NMS and the best
    ``max_per_img`` remain; then ``detector_postprocess`` scales and clips
    the boxes to the output image and drops the empty ones. mmdet's NMS
    differs (see ``detectron_boxes.batched_nms``), keeps non-finite
    proposals and keeps empty boxes. Use with
    ``mmregionvit.DetectronDeltaXYWHBBoxCoder`` (weights (10, 10, 5, 5)).
    """

    def _predict_by_feat_single(
            self,
            roi: Tensor,
            cls_score: Tensor,
            bbox_pred: Tensor,
            img_meta: dict,
            rescale: bool = False,
            rcnn_test_cfg: Optional[ConfigDict] = None) -> InstanceData:
        if roi.shape[0] == 0 or rcnn_test_cfg is None:
            # no proposals, or raw scores and boxes for test-time
            # augmentation: mmdet's handling
            return super()._predict_by_feat_single(roi, cls_score, bbox_pred,
                                                   img_meta, rescale,
                                                   rcnn_test_cfg)
        scores = F.softmax(cls_score, dim=-1)
        boxes = self.bbox_coder.decode(roi[:, 1:], bbox_pred)
        finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(
            dim=1)
        boxes, scores = boxes[finite], scores[finite, :-1]  # no background
        boxes = clip_boxes(boxes,
                           img_meta['img_shape']).view(len(boxes), -1, 4)

        candidates = scores > rcnn_test_cfg.score_thr
        box_class = candidates.nonzero()
        if boxes.size(1) == 1:  # class-agnostic regression
            boxes = boxes[box_class[:, 0], 0]
        else:
            boxes = boxes[candidates]
        scores = scores[candidates]
        keep = batched_nms(boxes, scores, box_class[:, 1],
                           iou_threshold(rcnn_test_cfg.nms))
        if rcnn_test_cfg.max_per_img >= 0:
            keep = keep[:rcnn_test_cfg.max_per_img]

        results = InstanceData()
        results.bboxes = boxes[keep]
        results.scores = scores[keep]
        results.labels = box_class[keep, 1]
        return detector_postprocess(results, img_meta, rescale)


@MODELS.register_module()
class DetectronMaskHead(FCNMaskHead):
    """FCNMaskHead that pastes masks as detectron2 does.

    detectron2 pastes a mask into the output image on its final box: the
    box scaled to the output image and clipped to it, and not at all for a
    box left empty, which ``detector_postprocess`` drops. mmdet pastes on
    the scaled box unclipped and keeps empty boxes. The pasting itself
    (``paste_masks_in_image`` against mmdet's ``_do_paste_mask``) is the
    same grid sampling, thresholded at ``mask_thr_binary`` (>=).

    Initialisation as detectron2's ``MaskRCNNConvUpsampleHead``: the mask
    predictor (``conv_logits``) from a normal of std 0.001 and zero bias,
    where mmdet draws it as the convs before it (Kaiming normal).
    """

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.normal_(self.conv_logits.weight, std=0.001)
        nn.init.zeros_(self.conv_logits.bias)

    def predict_by_feat(self,
                        mask_preds: Tuple[Tensor],
                        results_list: List[InstanceData],
                        batch_img_metas: List[dict],
                        rcnn_test_cfg: ConfigDict,
                        rescale: bool = False,
                        activate_map: bool = False) -> List[InstanceData]:
        if activate_map:  # test-time augmentation: mmdet's handling
            return super().predict_by_feat(mask_preds, results_list,
                                           batch_img_metas, rcnn_test_cfg,
                                           rescale, activate_map)
        out = []
        for preds, results, img_meta in zip(mask_preds, results_list,
                                            batch_img_metas):
            results.mask_preds = preds  # dropped with their boxes
            results = detector_postprocess(results, img_meta, rescale)
            preds = results.pop('mask_preds')
            # the boxes are final, in output pixels: paste on them as they
            # are (scale 1), at the output image's size
            paste_meta = dict(
                img_meta,
                ori_shape=final_shape(img_meta, rescale),
                scale_factor=(1.0, 1.0))
            out += super().predict_by_feat((preds, ), [results], [paste_meta],
                                           rcnn_test_cfg,
                                           rescale=True)
        return out
