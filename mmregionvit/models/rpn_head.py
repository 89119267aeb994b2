"""RPN head with detectron2's proposal selection."""
from typing import List

import torch
from mmdet.models.dense_heads import RPNHead
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from ..registry import MODELS
from .detectron_boxes import (batched_nms, clip_boxes, detector_postprocess,
                              iou_threshold, nonempty)


@MODELS.register_module()
class DetectronRPNHead(RPNHead):
    """RPNHead whose proposals are detectron2's ``find_top_rpn_proposals``.

    Per level, the ``nms_pre`` anchors of highest objectness are decoded;
    boxes or logits that are not finite are dropped (an error in training);
    the rest are clipped to the image, those no wider or taller than
    ``min_bbox_size`` dropped, NMS runs per level and the best
    ``max_per_img`` remain. Where mmdet differs:

    - the objectness *logits* are ranked, as in detectron2, not their
      sigmoids, which round to equal fp32 values for large logits (all to
      1 above about 17), so that ties would pick among the top proposals;
    - NMS is detectron2's (torchvision's ``batched_nms``, see
      ``detectron_boxes.batched_nms``);
    - non-finite proposals are dropped.

    Use with ``mmregionvit.DetectronDeltaXYWHBBoxCoder``.
    """

    def _predict_by_feat_single(self,
                                cls_score_list: List[Tensor],
                                bbox_pred_list: List[Tensor],
                                score_factor_list: List[Tensor],
                                mlvl_priors: List[Tensor],
                                img_meta: dict,
                                cfg: ConfigDict,
                                rescale: bool = False,
                                with_nms: bool = True) -> InstanceData:
        cfg = self.test_cfg if cfg is None else cfg
        nms_pre = cfg.get('nms_pre', -1)
        logits, boxes, levels = [], [], []
        for level, (cls_score, bbox_pred, priors) in enumerate(
                zip(cls_score_list, bbox_pred_list, mlvl_priors)):
            logit = cls_score.permute(1, 2, 0).reshape(-1)
            deltas = bbox_pred.permute(1, 2, 0).reshape(-1, 4)
            num = logit.numel() if nms_pre <= 0 else min(
                logit.numel(), nms_pre)
            logit, idx = logit.topk(num)
            logits.append(logit)
            boxes.append(self.bbox_coder.decode(priors[idx], deltas[idx]))
            levels.append(logit.new_full((num, ), level, dtype=torch.long))
        logits, boxes, levels = (torch.cat(logits), torch.cat(boxes),
                                 torch.cat(levels))

        finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(logits)
        if not finite.all():
            if self.training:
                raise FloatingPointError('RPN proposals or objectness are '
                                         'Inf/NaN: training has diverged.')
            logits, boxes, levels = logits[finite], boxes[finite], \
                levels[finite]
        boxes = clip_boxes(boxes, img_meta['img_shape'])
        keep = nonempty(boxes, cfg.get('min_bbox_size', 0))
        logits, boxes, levels = logits[keep], boxes[keep], levels[keep]
        keep = batched_nms(boxes, logits, levels, iou_threshold(cfg.nms))
        keep = keep[:cfg.max_per_img]

        results = InstanceData()
        results.bboxes = boxes[keep]
        results.scores = logits[keep].sigmoid()
        results.labels = levels.new_zeros(len(keep))
        if rescale:  # proposals as final detections (an RPN-only model)
            results = detector_postprocess(results, img_meta, rescale)
        return results
