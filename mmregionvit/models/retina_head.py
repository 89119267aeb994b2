"""RetinaNet head with the official detectron2 box post-processing and loss
normaliser."""
from typing import Optional

from mmdet.models.dense_heads import RetinaHead
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from ..registry import MODELS
from .detectron_boxes import batched_nms, detector_postprocess, iou_threshold


@MODELS.register_module()
class DetectronRetinaHead(RetinaHead):
    """RetinaHead whose detections are detectron2's.

    Per level, the ``nms_pre`` best (anchor, class) scores above
    ``score_thr`` are decoded, unclipped. detectron2 then runs per-class
    NMS on them at the network's input scale, keeps the best
    ``max_per_img``, and its ``detector_postprocess`` scales the boxes to
    the output image, clips them and drops the empty ones. mmdet clips
    before NMS (which changes which border boxes survive), rescales before
    NMS, runs mmcv's NMS (see ``detectron_boxes.batched_nms``) and keeps
    empty boxes. Use with ``mmregionvit.DetectronDeltaXYWHBBoxCoder`` and
    ``clip_border=False``; detectron2 drops no small boxes, so
    ``min_bbox_size`` is not used.

    In training, the losses are divided by detectron2's running average of
    the number of positive anchors (see :meth:`get_targets`), not by the
    batch's count.
    """

    # detectron2's RetinaNet: loss_normalizer starts at 100, momentum 0.9
    LOSS_NORMALIZER_INIT = 100.0
    LOSS_NORMALIZER_MOMENTUM = 0.9

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.bbox_coder, 'clip_border', False):
            raise ValueError('DetectronRetinaHead runs NMS on unclipped '
                             'boxes, as detectron2 does: set '
                             'bbox_coder.clip_border=False.')
        # Official quirk: a plain number, not saved in checkpoints, so a
        # resumed run starts again from 100.
        self.loss_normalizer = self.LOSS_NORMALIZER_INIT

    def _bbox_post_process(self,
                           results: InstanceData,
                           cfg: ConfigDict,
                           rescale: bool = False,
                           with_nms: bool = True,
                           img_meta: Optional[dict] = None) -> InstanceData:
        if with_nms:
            keep = batched_nms(results.bboxes, results.scores, results.labels,
                               iou_threshold(cfg.nms))
            if cfg.max_per_img >= 0:
                keep = keep[:cfg.max_per_img]
            results = results[keep]
        return detector_postprocess(results, img_meta, rescale)

    def get_targets(self,
                    anchor_list: list,
                    valid_flag_list: list,
                    batch_gt_instances: InstanceList,
                    batch_img_metas: list,
                    batch_gt_instances_ignore: OptInstanceList = None,
                    unmap_outputs: bool = True,
                    return_sampling_results: bool = False) -> tuple:
        """mmdet's targets, with the loss normaliser as ``avg_factor``.

        Each call (one training step) moves the normaliser towards the
        number of positive anchors of the batch on this device, at least 1:
        ``n <- 0.9 n + 0.1 max(num_pos, 1)``.
        """
        (labels, label_weights, bbox_targets, bbox_weights, _,
         sampling_results, *rest) = super().get_targets(
             anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
             batch_gt_instances_ignore, unmap_outputs, True)
        # mmdet's own count clamps each image to at least one positive
        num_pos = sum(r.pos_inds.numel() for r in sampling_results)
        m = self.LOSS_NORMALIZER_MOMENTUM
        self.loss_normalizer = (
            m * self.loss_normalizer + (1 - m) * max(num_pos, 1))
        targets = (labels, label_weights, bbox_targets, bbox_weights,
                   self.loss_normalizer)
        if return_sampling_results:
            targets += (sampling_results, )
        return targets + tuple(rest)
