"""The two detection ops as standard ONNX operators.

mmcv's NMS and RoIAlign are custom ops that stock onnxruntime cannot run.
The functions here compute the same in PyTorch (through torchvision's
kernels) and are recorded, when exported, as the ONNX operators
``NonMaxSuppression`` and ``RoiAlign`` (opset 16, ``half_pixel`` for
aligned RoIAlign), so that an exported model needs no custom op library.
"""
import torch
import torchvision
from torch import Tensor
from torch.autograd import Function


class _NonMaxSuppression(Function):

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_output: int,
                iou_threshold: float, score_threshold: float) -> Tensor:
        selected = []
        for n in range(boxes.shape[0]):
            for c in range(scores.shape[1]):
                candidates = (scores[n, c] > score_threshold).nonzero()[:, 0]
                keep = torchvision.ops.nms(boxes[n, candidates],
                                           scores[n, c, candidates],
                                           iou_threshold)[:max_output]
                index = candidates[keep]
                selected.append(
                    torch.stack([
                        torch.full_like(index, n),
                        torch.full_like(index, c), index
                    ], 1))
        if not selected:
            return boxes.new_zeros((0, 3), dtype=torch.long)
        return torch.cat(selected)

    @staticmethod
    def symbolic(g, boxes, scores, max_output, iou_threshold, score_threshold):
        return g.op('NonMaxSuppression', boxes, scores,
                    g.op('Constant', value_t=torch.tensor([max_output])),
                    g.op('Constant', value_t=torch.tensor([iou_threshold])),
                    g.op('Constant', value_t=torch.tensor([score_threshold])))


def non_max_suppression(boxes: Tensor, scores: Tensor, max_output: int,
                        iou_threshold: float,
                        score_threshold: float) -> Tensor:
    """ONNX ``NonMaxSuppression``: greedy NMS of each image and class.

    Args:
        boxes: ``(N, M, 4)`` boxes (x1, y1, x2, y2), shared by the classes.
        scores: ``(N, C, M)`` scores; only those above ``score_threshold``
            take part.
        max_output: Boxes kept at most per image and class.
        iou_threshold: A box is suppressed by a kept one of higher score
            when their IoU exceeds this.

    Returns:
        ``(S, 3)`` rows (image, class, box) of the kept boxes, image by
        image, class by class, each by descending score.
    """
    return _NonMaxSuppression.apply(boxes, scores, int(max_output),
                                    float(iou_threshold),
                                    float(score_threshold))


class _RoiAlign(Function):

    @staticmethod
    def forward(ctx, feats: Tensor, boxes: Tensor, batch_indices: Tensor,
                output_size: tuple, spatial_scale: float, sampling_ratio: int,
                aligned: bool) -> Tensor:
        rois = torch.cat([batch_indices[:, None].to(boxes), boxes], 1)
        return torchvision.ops.roi_align(feats, rois, output_size,
                                         spatial_scale, sampling_ratio,
                                         aligned)

    @staticmethod
    def symbolic(g, feats, boxes, batch_indices, output_size, spatial_scale,
                 sampling_ratio, aligned):
        return g.op(
            'RoiAlign',
            feats,
            boxes,
            batch_indices,
            coordinate_transformation_mode_s='half_pixel'
            if aligned else 'output_half_pixel',
            mode_s='avg',
            output_height_i=output_size[0],
            output_width_i=output_size[1],
            sampling_ratio_i=sampling_ratio,
            spatial_scale_f=spatial_scale)


def roi_align(feats: Tensor, boxes: Tensor, batch_indices: Tensor,
              roi_layer: torch.nn.Module) -> Tensor:
    """ONNX ``RoiAlign`` with the settings of an mmcv ``RoIAlign`` layer.

    Args:
        feats: ``(N, C, H, W)`` feature map.
        boxes: ``(R, 4)`` boxes in input pixels.
        batch_indices: ``(R,)`` image of each box (int64).
        roi_layer: The mmcv ``RoIAlign`` whose settings apply: average
            pooling; ``aligned`` (the pixel-centre shift) becomes ONNX's
            ``half_pixel`` mode.
    """
    if getattr(roi_layer, 'pool_mode', 'avg') != 'avg':
        raise ValueError('ONNX export supports RoIAlign with average '
                         f"pooling, got pool_mode={roi_layer.pool_mode!r}.")
    return _RoiAlign.apply(feats, boxes, batch_indices,
                           tuple(roi_layer.output_size),
                           float(roi_layer.spatial_scale),
                           int(roi_layer.sampling_ratio),
                           bool(roi_layer.aligned))
