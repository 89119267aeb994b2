"""RetinaNet head with the official detectron2 box post-processing."""
from typing import Optional

from mmdet.models.dense_heads import RetinaHead
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
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.bbox_coder, 'clip_border', False):
            raise ValueError('DetectronRetinaHead runs NMS on unclipped '
                             'boxes, as detectron2 does: set '
                             'bbox_coder.clip_border=False.')

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
