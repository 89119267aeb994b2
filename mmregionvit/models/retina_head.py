"""RetinaNet head with the official detectron2 box post-processing."""
from typing import Optional

from mmdet.models.dense_heads import RetinaHead
from mmdet.structures.bbox import get_box_tensor
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from ..registry import MODELS


@MODELS.register_module()
class DetectronRetinaHead(RetinaHead):
    """RetinaHead whose NMS sees unclipped boxes, clipped only afterwards.

    detectron2's RetinaNet decodes boxes without clipping, runs NMS, and
    clips the survivors to the image; mmdet clips before NMS, which changes
    which border boxes survive. Use with ``bbox_coder.clip_border=False``
    (and ``min_bbox_size=-1``, as detectron2 drops no small boxes).
    """

    def _bbox_post_process(self,
                           results: InstanceData,
                           cfg: ConfigDict,
                           rescale: bool = False,
                           with_nms: bool = True,
                           img_meta: Optional[dict] = None) -> InstanceData:
        results = super()._bbox_post_process(results, cfg, rescale, with_nms,
                                             img_meta)
        h, w = img_meta['ori_shape' if rescale else 'img_shape'][:2]
        boxes = get_box_tensor(results.bboxes)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        results.bboxes = boxes
        return results
