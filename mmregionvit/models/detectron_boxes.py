"""detectron2's box arithmetic, for the converted official detectors.

The official RegionViT detectors are detectron2 models. The pieces here
reproduce detectron2's box steps where mmdet's differ, so that our heads
(``rpn_head.py``, ``roi_heads.py``, ``retina_head.py``) give detectron2's
detections: its delta decoding, its NMS, and its final box post-processing.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torchvision
from mmdet.models.task_modules.coders import BaseBBoxCoder
from mmdet.structures.bbox import (BaseBoxes, HorizontalBoxes, get_box_tensor,
                                   scale_boxes)
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from ..registry import TASK_UTILS

# detectron2's bound on dw and dh: a 16-pixel box grows to 1000 at most.
SCALE_CLAMP = math.log(1000.0 / 16)


@TASK_UTILS.register_module()
class DetectronDeltaXYWHBBoxCoder(BaseBBoxCoder):
    """detectron2's ``Box2BoxTransform``: (dx, dy, dw, dh) box deltas.

    Differs from mmdet's ``DeltaXYWHBBoxCoder`` where detectron2 does:

    - ``dw`` and ``dh`` are clamped from above only, at
      ``scale_clamp = log(1000 / 16)`` (mmdet clamps both sides, so a very
      negative ``dw`` gives a wider box than detectron2's);
    - deltas are divided by ``weights`` (mmdet multiplies by stds) and the
      centre is ``x1 + w / 2``: detectron2's arithmetic, step by step.

    Args:
        weights (sequence of 4 floats): (wx, wy, ww, wh); (10, 10, 5, 5) for
            the R-CNN box head, (1, 1, 1, 1) for the RPN and RetinaNet.
        scale_clamp (float): upper bound of ``dw`` and ``dh``.
        clip_border (bool): clip decoded boxes to ``max_shape`` when given.
    """

    def __init__(self,
                 weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                 scale_clamp: float = SCALE_CLAMP,
                 clip_border: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp
        self.clip_border = clip_border

    def encode(self, bboxes: Union[Tensor, BaseBoxes],
               gt_bboxes: Union[Tensor, BaseBoxes]) -> Tensor:
        """Deltas that turn ``bboxes`` into ``gt_bboxes``."""
        src = get_box_tensor(bboxes)
        dst = get_box_tensor(gt_bboxes)
        src_w = src[:, 2] - src[:, 0]
        src_h = src[:, 3] - src[:, 1]
        src_x = src[:, 0] + 0.5 * src_w
        src_y = src[:, 1] + 0.5 * src_h
        dst_w = dst[:, 2] - dst[:, 0]
        dst_h = dst[:, 3] - dst[:, 1]
        dst_x = dst[:, 0] + 0.5 * dst_w
        dst_y = dst[:, 1] + 0.5 * dst_h
        wx, wy, ww, wh = self.weights
        return torch.stack(
            (wx * (dst_x - src_x) / src_w, wy * (dst_y - src_y) / src_h,
             ww * torch.log(dst_w / src_w), wh * torch.log(dst_h / src_h)),
            dim=1)

    def decode(self,
               bboxes: Union[Tensor, BaseBoxes],
               pred_bboxes: Tensor,
               max_shape: Optional[Sequence[int]] = None,
               **kwargs) -> Union[Tensor, BaseBoxes]:
        """Apply deltas (N, 4k) to boxes (N, 4): boxes (N, 4k)."""
        boxes = get_box_tensor(bboxes)
        deltas = pred_bboxes.float()
        boxes = boxes.to(deltas.dtype)
        widths = (boxes[..., 2] - boxes[..., 0])[..., None]
        heights = (boxes[..., 3] - boxes[..., 1])[..., None]
        ctr_x = boxes[..., 0, None] + 0.5 * widths
        ctr_y = boxes[..., 1, None] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = deltas[..., 0::4] / wx
        dy = deltas[..., 1::4] / wy
        # detectron2 quirk: dw and dh are clamped from above only
        dw = (deltas[..., 2::4] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[..., 3::4] / wh).clamp(max=self.scale_clamp)
        x = dx * widths + ctr_x
        y = dy * heights + ctr_y
        w = torch.exp(dw) * widths
        h = torch.exp(dh) * heights
        decoded = torch.stack(
            (x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h),
            dim=-1).reshape(deltas.shape)
        if self.clip_border and max_shape is not None:
            decoded = clip_boxes(decoded, max_shape)
        if self.use_box_type:
            decoded = HorizontalBoxes(decoded)
        return decoded


def clip_boxes(boxes: Tensor, shape: Sequence[int]) -> Tensor:
    """Boxes (..., 4k) clipped to x in [0, W], y in [0, H] (``Boxes.clip``)."""
    h, w = shape[:2]
    boxes = boxes.clone()
    boxes[..., 0::2] = boxes[..., 0::2].clamp(min=0, max=w)
    boxes[..., 1::2] = boxes[..., 1::2].clamp(min=0, max=h)
    return boxes


def nonempty(boxes: Tensor, threshold: float = 0.0) -> Tensor:
    """Boxes wider and taller than ``threshold`` (``Boxes.nonempty``)."""
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & (
        (boxes[:, 3] - boxes[:, 1]) > threshold)


def iou_threshold(nms_cfg: ConfigDict) -> float:
    """The IoU threshold of an NMS config, which must be plain NMS."""
    if nms_cfg.get('type', 'nms') != 'nms':
        raise ValueError('detectron2 post-processing runs plain NMS; the '
                         f'config asks for nms type {nms_cfg["type"]!r}. Set '
                         "nms=dict(type='nms', iou_threshold=...).")
    return nms_cfg['iou_threshold']


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor,
                iou_thr: float) -> Tensor:
    """Indices kept by NMS within each ``idxs`` group, by score descending.

    detectron2 calls torchvision's ``batched_nms``, which runs one NMS per
    group for more than 1000 boxes on the CPU (25000 on a GPU) and offsets
    the boxes by group below that; mmcv's offsets them up to 10000 boxes,
    which rounds their coordinates and can keep or drop another box.
    Boxes and scores go in as float32, as torchvision's autocast casts them.
    """
    return torchvision.ops.batched_nms(boxes.float(), scores.float(), idxs,
                                       iou_thr)


def final_shape(img_meta: dict, rescale: bool) -> Tuple[int, int]:
    """(H, W) of the image the final detections are for."""
    return tuple(img_meta['ori_shape' if rescale else 'img_shape'][:2])


def detector_postprocess(results: InstanceData, img_meta: dict,
                         rescale: bool) -> InstanceData:
    """Final detections as detectron2's ``detector_postprocess`` makes them.

    Boxes are scaled to the output image (the original one when
    ``rescale``, else the network input), clipped to it, and the boxes left
    empty are dropped (with every other field of ``results``), so fewer
    than ``max_per_img`` detections can remain.
    """
    bboxes = get_box_tensor(results.bboxes)
    if rescale:
        # no scale_factor: the pipeline did not resize the image
        sx, sy = img_meta.get('scale_factor', (1.0, 1.0))[:2]
        bboxes = scale_boxes(bboxes, (1 / sx, 1 / sy))
    results.bboxes = clip_boxes(bboxes, final_shape(img_meta, rescale))
    return results[nonempty(results.bboxes)]
