"""Detectors as end-to-end graphs: an image in, detections out.

The modules here compute what an mmdet detector's ``predict`` computes
(RetinaNet, and Mask R-CNN or Faster R-CNN with a ``StandardRoIHead``),
with mmdet's heads or with the detectron2 heads of the official detector
configs (``mmregionvit.Detectron*``), written with fixed-size tensors so
that one traced graph serves every image size and batch. They call the
detector's own layers, prior generator, box coders and RoI level
assignment, read the thresholds from its ``test_cfg``, and use standard
ONNX operators for NMS and RoIAlign (``onnx_ops.py``). Outputs follow
mmdeploy's names and layout:

- ``dets``: ``(N, K, 5)``: boxes (x1, y1, x2, y2) in the input image's
  pixels and their score, best first, ``K = max_per_img``;
- ``labels``: ``(N, K)`` class indices;
- ``masks`` (Mask R-CNN): ``(N, K, 28, 28)`` mask probabilities inside each
  box; :func:`paste_masks` makes the image-sized masks.

An image with fewer than ``K`` detections has label ``-1`` and zeros on the
rows after its last one. Scaling the boxes to the original image (and,
for the detectron2 heads, clipping them to it and dropping those left
empty, as detectron2's ``detector_postprocess`` does) is the small Python
step :func:`final_detections`.

The input is the image as the data preprocessor makes it (colour order,
mean and std applied), before its padding: the graph pads bottom-right to
the preprocessor's ``pad_size_divisor`` itself, so that boxes are clipped
to the image and not to its padding, as ``predict`` does.
"""
from typing import List, Optional, Sequence, Tuple
from unittest import mock

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .onnx_ops import non_max_suppression, roi_align

# Scores of left-out candidates; kept ones are >= 0 (probabilities) or
# finite logits (detectron2's RPN ranks by logit).
_EXCLUDED = -1.0
_EXCLUDED_LOGIT = -1e30
# torchvision's batched_nms (detectron2's NMS) on a CPU offsets the boxes by
# group up to this many candidates and runs one NMS per group above it.
TORCHVISION_SPLIT = 1000


def pad_to_divisor(images: Tensor, divisor: int, value: float) -> Tensor:
    """Pad bottom-right to a multiple of ``divisor`` (``stack_batch``)."""
    h, w = images.shape[-2:]
    return F.pad(
        images, (0, (divisor - w % divisor) % divisor, 0,
                 (divisor - h % divisor) % divisor),
        value=value)


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """``x[n, index[n, k]]`` for ``x`` of shape ``(N, M, ...)`` and an
    ``(N, K)`` index."""
    index = index.reshape(*index.shape, *([1] * (x.dim() - 2)))
    return x.gather(1, index.expand(-1, -1, *x.shape[2:]))


def top_candidates(scores: Tensor, k: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``k`` best of ``(N, M)`` scores, by descending score, whatever
    ``M``: ``(N, k)`` scores, indices and whether the entry exists (fewer
    than ``k`` scores leave the last entries empty)."""
    padded = F.pad(scores, (0, k), value=float('-inf'))
    top, index = padded.topk(k, dim=1)
    exists = index < scores.shape[1]
    return top, index.clamp(max=scores.shape[1] - 1), exists


def decode(coder, priors: Tensor, deltas: Tensor,
           image_shape: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
    """``coder.decode`` of ``(N, M, 4)`` priors and ``(N, M, 4k)`` deltas,
    clipped (if the coder clips) to ``image_shape`` unless it is None."""
    n, m = deltas.shape[:2]
    # mmdet's coders refuse to run while exporting (mmdeploy swaps them for
    # its own); their code traces correctly, so they are let run
    with mock.patch.object(torch.onnx, 'is_in_onnx_export', lambda: False):
        boxes = coder.decode(
            priors.reshape(n * m, 4),
            deltas.reshape(n * m, -1),
            max_shape=image_shape)
    return getattr(boxes, 'tensor', boxes).reshape(n, m, -1)


def clip(boxes: Tensor, image_shape: Tuple[Tensor, Tensor]) -> Tensor:
    """Boxes clipped to x in [0, W] and y in [0, H]."""
    h, w = image_shape
    x = boxes[..., 0::2].clamp(min=0, max=w)
    y = boxes[..., 1::2].clamp(min=0, max=h)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], -1)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, valid: Tensor,
                nms_cfg: dict, max_num: int) -> Tensor:
    """mmcv's ``batched_nms`` on each image's valid candidates.

    Args:
        boxes, scores, idxs, valid: ``(N, M, 4)`` boxes, ``(N, M)`` scores,
            groups (classes or levels) and which candidates take part.
        nms_cfg: The ``nms`` entry of a ``test_cfg`` (plain NMS).
        max_num: Kept candidates at most per image.

    Returns:
        ``(N, max_num)`` indices of the kept candidates by descending
        score, ``-1`` after the last.

    As mmcv, NMS runs on the boxes offset by group, ``group * (largest
    coordinate + 1)`` (also past ``split_thr`` candidates, where mmcv runs
    it group by group on the same offset boxes): the offsets round the
    coordinates, which can change which box is kept.
    """
    cfg = dict(nms_cfg)
    if cfg.pop('type', 'nms') != 'nms' or cfg.get('offset', 0) != 0:
        raise ValueError('ONNX export supports plain NMS (type nms, offset '
                         f'0); the config has {nms_cfg}.')
    scores = scores.masked_fill(~valid, _EXCLUDED)
    if not cfg.get('class_agnostic', False):
        boxes = _offset_by_group(boxes, idxs, valid)
    kept = non_max_suppression(boxes, scores[:, None], max_num,
                               cfg['iou_threshold'], _EXCLUDED / 2)
    return _rank(kept, scores, max_num, _EXCLUDED)


def _offset_by_group(boxes: Tensor, idxs: Tensor, valid: Tensor) -> Tensor:
    """Boxes offset by ``group * (largest valid coordinate + 1)``."""
    largest = boxes.masked_fill(~valid[..., None], float('-inf')).amax((1, 2))
    largest = torch.where(valid.any(1), largest, torch.zeros_like(largest))
    return boxes + (idxs.to(boxes) * (largest[:, None] + 1))[..., None]


def detectron_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, valid: Tensor,
                  num_groups: int, iou_threshold: float,
                  max_num: int) -> Tensor:
    """detectron2's NMS (torchvision's ``batched_nms`` on a CPU, see
    ``mmregionvit.models.detectron_boxes.batched_nms``) on each image's
    valid candidates: with up to ``TORCHVISION_SPLIT`` of them, on the boxes
    offset by group; with more, one NMS per group (ONNX's class axis).

    ``scores`` may be logits; ``idxs`` are groups in ``[0, num_groups)``.
    Returns ``(N, max_num)`` indices as :func:`batched_nms`.
    """
    scores = scores.masked_fill(~valid, _EXCLUDED_LOGIT)
    threshold = _EXCLUDED_LOGIT / 2
    offset = non_max_suppression(
        _offset_by_group(boxes, idxs, valid), scores[:, None], max_num,
        iou_threshold, threshold)
    own = idxs[:, None] == torch.arange(num_groups)[None, :, None]
    per_group = non_max_suppression(
        boxes,
        torch.where(own, scores[:, None],
                    torch.full_like(scores[:, None], _EXCLUDED_LOGIT)),
        max_num, iou_threshold, threshold)
    many = valid.sum(1, keepdim=True) > TORCHVISION_SPLIT
    return torch.where(many, _rank(per_group, scores, max_num,
                                   _EXCLUDED_LOGIT),
                       _rank(offset, scores, max_num, _EXCLUDED_LOGIT))


def _rank(kept: Tensor, scores: Tensor, max_num: int,
          excluded: float) -> Tensor:
    """``(S, 3)`` NMS rows (image, group, candidate) -> each image's best
    ``max_num`` candidates, ``(N, max_num)``, ``-1`` padded; ``excluded``
    is below every kept score."""
    image, candidate = kept[:, 0], kept[:, 2]
    own = image[None] == torch.arange(scores.shape[0])[:, None]
    table = torch.where(own, scores[image, candidate][None],
                        torch.full_like(own, excluded, dtype=scores.dtype))
    # max_num columns more, of no candidate: at least max_num, even if NMS
    # kept none
    table = F.pad(table, (0, max_num), value=excluded)
    top, column = table.topk(max_num, dim=1)
    best = F.pad(candidate, (0, max_num), value=-1)[column]
    return torch.where(top > excluded / 2, best, torch.full_like(best, -1))


def select(keep: Tensor, *values: Tensor) -> List[Tensor]:
    """Rows ``keep`` (``(N, K)``, ``-1`` for none) of ``(N, M, ...)``
    values, zero where there is none."""
    found = keep >= 0
    out = []
    for value in values:
        rows = gather_rows(value, keep.clamp(min=0))
        mask = found.reshape(*found.shape, *([1] * (rows.dim() - 2)))
        out.append(torch.where(mask, rows, torch.zeros_like(rows)))
    return out


def outputs(boxes: Tensor, scores: Tensor, labels: Tensor,
            keep: Tensor) -> Tuple[Tensor, Tensor]:
    """``dets`` and ``labels`` of the kept candidates."""
    boxes, scores, labels = select(keep, boxes, scores, labels)
    labels = torch.where(keep >= 0, labels, torch.full_like(labels, -1))
    return torch.cat([boxes, scores[..., None]], -1), labels


def level_outputs(head,
                  feats: List[Tensor],
                  logits: bool = False) -> Tuple[List[Tensor], ...]:
    """A dense head's per-level scores ``(N, M_l, C)`` (or its logits),
    deltas ``(N, M_l, 4)`` and priors ``(N, M_l, 4)``."""
    cls_scores, bbox_preds = head(feats)
    sizes = [c.shape[-2:] for c in cls_scores]
    priors = head.prior_generator.grid_priors(
        sizes, dtype=feats[0].dtype, device=feats[0].device)
    n = feats[0].shape[0]
    scores, deltas, level_priors = [], [], []
    for cls, reg, prior in zip(cls_scores, bbox_preds, priors):
        cls = cls.permute(0, 2, 3, 1).reshape(n, -1, head.cls_out_channels)
        if logits:
            scores.append(cls)
        elif head.use_sigmoid_cls:
            scores.append(cls.sigmoid())
        else:  # background last
            scores.append(cls.softmax(-1)[..., :-1])
        deltas.append(reg.permute(0, 2, 3, 1).reshape(n, -1, 4))
        prior = getattr(prior, 'tensor', prior)
        level_priors.append(prior[None].expand(n, -1, -1))
    return scores, deltas, level_priors


class DetectorGraph(nn.Module):
    """Common parts: input padding and image size; ``detectron``: the
    detector has the detectron2 heads (see :func:`is_detectron`)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.detectron = is_detectron(detector)
        pre = detector.data_preprocessor
        self.pad_divisor = int(getattr(pre, 'pad_size_divisor', 1))
        self.pad_value = float(getattr(pre, 'pad_value', 0))

    def features(self, images: Tensor) -> Tuple[Tensor, ...]:
        return self.detector.extract_feat(
            pad_to_divisor(images, self.pad_divisor, self.pad_value))


class RetinaNetGraph(DetectorGraph):
    """A one-stage anchor-based detector (mmdet's ``AnchorHead``
    post-processing: ``RetinaHead`` and ``DetectronRetinaHead``)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__(detector)
        self.cfg = detector.bbox_head.test_cfg

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        head, cfg = self.detector.bbox_head, self.cfg
        image_shape = images.shape[-2:]
        scores, deltas, priors = level_outputs(head, self.features(images))
        nms_pre = cfg.get('nms_pre', -1)
        boxes, top_scores, labels, valid = [], [], [], []
        for score, delta, prior in zip(scores, deltas, priors):
            # the best nms_pre (anchor, class) pairs above score_thr
            flat = score.flatten(1)
            k = nms_pre if nms_pre > 0 else flat.shape[1]
            top, index, exists = top_candidates(flat, k)
            anchor = index // head.cls_out_channels
            top_scores.append(top)
            labels.append(index % head.cls_out_channels)
            valid.append(exists & (top > cfg.get('score_thr', 0)))
            boxes.append(
                decode(head.bbox_coder, gather_rows(prior, anchor),
                       gather_rows(delta, anchor), image_shape))
        boxes, scores, labels, valid = (
            torch.cat(t, 1) for t in (boxes, top_scores, labels, valid))
        if not self.detectron:
            if cfg.get('min_bbox_size', -1) >= 0:
                valid = valid & _larger_than(boxes, cfg.min_bbox_size)
            keep = batched_nms(boxes, scores, labels, valid, cfg.nms,
                               cfg.max_per_img)
            return outputs(boxes, scores, labels, keep)
        # detectron2: NMS on the unclipped boxes, which are clipped after
        keep = detectron_nms(boxes, scores, labels, valid,
                             head.cls_out_channels, cfg.nms.iou_threshold,
                             cfg.max_per_img)
        return outputs(clip(boxes, image_shape), scores, labels, keep)


def _larger_than(boxes: Tensor, size: float) -> Tensor:
    return ((boxes[..., 2] - boxes[..., 0]) > size) & (
        (boxes[..., 3] - boxes[..., 1]) > size)


def extract_rois(extractor: nn.Module, feats: Tuple[Tensor, ...],
                 boxes: Tensor, batch_indices: Tensor) -> Tensor:
    """What a ``SingleRoIExtractor`` pools for these RoIs: each from the
    level its ``map_roi_levels`` assigns."""
    feats = feats[:extractor.num_inputs]
    layers = extractor.roi_layers
    if len(feats) == 1:
        return roi_align(feats[0], boxes, batch_indices, layers[0])
    rois = torch.cat([batch_indices[:, None].to(boxes), boxes], 1)
    levels = extractor.map_roi_levels(rois, len(feats))
    out = feats[0].new_zeros(boxes.shape[0], extractor.out_channels,
                             *layers[0].output_size)
    for i, (feat, layer) in enumerate(zip(feats, layers)):
        index = (levels == i).nonzero()[:, 0]
        out = out.index_put((index, ),
                            roi_align(feat, boxes[index], batch_indices[index],
                                      layer))
    return out


class TwoStageGraph(DetectorGraph):
    """An RPN and a ``StandardRoIHead`` (Faster / Mask R-CNN)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__(detector)
        roi_head = detector.roi_head
        if roi_head.with_shared_head:
            raise ValueError('ONNX export does not support RoI heads with '
                             'a shared head.')
        self.with_mask = roi_head.with_mask

    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        image_shape = images.shape[-2:]
        feats = self.features(images)
        proposals, proposal_valid = self.proposals(feats, image_shape)
        n, p = proposals.shape[:2]
        batch_indices = torch.arange(n)[:, None].expand(n, p).reshape(-1)
        roi_head = self.detector.roi_head
        cfg, head = roi_head.test_cfg, roi_head.bbox_head
        roi_feats = extract_rois(roi_head.bbox_roi_extractor, feats,
                                 proposals.reshape(-1, 4), batch_indices)
        cls_score, bbox_pred = head(roi_feats)
        num_classes = head.num_classes
        probs = cls_score.softmax(-1)
        scores = probs[:, :-1].reshape(n, p * num_classes)
        if head.reg_class_agnostic:
            bbox_pred = bbox_pred.repeat(1, num_classes)
        rois = proposals.repeat_interleave(num_classes, dim=1)
        boxes = decode(head.bbox_coder, rois,
                       bbox_pred.reshape(n, p * num_classes, 4),
                       None if self.detectron else image_shape)
        labels = torch.arange(num_classes).repeat(p)[None].expand(n, -1)
        valid = proposal_valid.repeat_interleave(
            num_classes, dim=1) & (
                scores > cfg.score_thr)
        if self.detectron:
            # detectron2 drops proposals whose boxes or scores are not
            # finite, clips the boxes, and runs its NMS per class
            finite = torch.isfinite(probs).all(-1).reshape(
                n, p) & torch.isfinite(boxes).all(-1).reshape(
                    n, p, num_classes).all(-1)
            valid = valid & finite.repeat_interleave(num_classes, dim=1)
            boxes = clip(boxes, image_shape)
            keep = detectron_nms(boxes, scores, labels, valid, num_classes,
                                 cfg.nms.iou_threshold, cfg.max_per_img)
        else:
            keep = batched_nms(boxes, scores, labels, valid, cfg.nms,
                               cfg.max_per_img)
        dets, labels = outputs(boxes, scores, labels, keep)
        if not self.with_mask:
            return dets, labels
        return dets, labels, self.masks(feats, dets[..., :4], labels)

    def proposals(self, feats: Tuple[Tensor, ...],
                  image_shape) -> Tuple[Tensor, Tensor]:
        """The RPN's proposals, ``(N, max_per_img, 4)``, and which exist:
        per level the ``nms_pre`` best, then NMS per level. The detectron2
        RPN (``find_top_rpn_proposals``) ranks by logit, drops non-finite
        proposals before clipping the boxes, then those no larger than
        ``min_bbox_size``."""
        head = self.detector.rpn_head
        cfg = head.test_cfg
        scores, deltas, priors = level_outputs(
            head, feats, logits=self.detectron)
        nms_pre = cfg.get('nms_pre', -1)
        boxes, top_scores, levels, valid = [], [], [], []
        for level, (score, delta,
                    prior) in enumerate(zip(scores, deltas, priors)):
            score = score[..., 0]
            k = nms_pre if nms_pre > 0 else score.shape[1]
            top, index, exists = top_candidates(score, k)
            top_scores.append(top)
            valid.append(exists)
            levels.append(torch.full_like(index, level))
            boxes.append(
                decode(head.bbox_coder, gather_rows(prior, index),
                       gather_rows(delta, index),
                       None if self.detectron else image_shape))
        boxes, scores, levels, valid = (
            torch.cat(t, 1) for t in (boxes, top_scores, levels, valid))
        if self.detectron:
            valid = valid & torch.isfinite(boxes).all(-1) & torch.isfinite(
                scores)
            boxes = clip(boxes, image_shape)
            valid = valid & _larger_than(boxes, cfg.get('min_bbox_size', 0))
            keep = detectron_nms(boxes, scores, levels, valid, len(priors),
                                 cfg.nms.iou_threshold, cfg.max_per_img)
        else:
            if cfg.get('min_bbox_size', -1) >= 0:
                valid = valid & _larger_than(boxes, cfg.min_bbox_size)
            keep = batched_nms(boxes, scores, levels, valid, cfg.nms,
                               cfg.max_per_img)
        return select(keep, boxes)[0], keep >= 0

    def masks(self, feats: Tuple[Tensor, ...], boxes: Tensor,
              labels: Tensor) -> Tensor:
        """Mask probabilities of each detection's class, ``(N, K, h, w)``."""
        roi_head = self.detector.roi_head
        extractor = roi_head.bbox_roi_extractor \
            if roi_head.share_roi_extractor else roi_head.mask_roi_extractor
        n, k = boxes.shape[:2]
        batch_indices = torch.arange(n)[:, None].expand(n, k).reshape(-1)
        mask_feats = extract_rois(extractor, feats, boxes.reshape(-1, 4),
                                  batch_indices)
        logits = roi_head.mask_head(mask_feats)
        if not roi_head.mask_head.class_agnostic:
            channel = labels.clamp(min=0).reshape(-1, 1, 1, 1)
            logits = logits.gather(1, channel.expand(-1, 1,
                                                     *logits.shape[-2:]))
        masks = logits[:, 0].sigmoid().reshape(n, k, *logits.shape[-2:])
        return torch.where((labels >= 0)[..., None, None], masks,
                           torch.zeros_like(masks))


def is_detectron(detector: nn.Module) -> bool:
    """Whether ``detector`` has the detectron2 heads of the official
    detector configs; a mix of detectron2 and mmdet heads is refused."""
    from ..models import retina_head, roi_heads, rpn_head
    if getattr(detector, 'roi_head', None) is None:
        return isinstance(
            getattr(detector, 'bbox_head', None),
            retina_head.DetectronRetinaHead)
    roi_head = detector.roi_head
    kinds = [(detector.rpn_head, rpn_head.DetectronRPNHead),
             (roi_head.bbox_head, roi_heads.DetectronBBoxHead)]
    if roi_head.with_mask:
        kinds.append((roi_head.mask_head, roi_heads.DetectronMaskHead))
    found = [isinstance(module, kind) for module, kind in kinds]
    if any(found) and not all(found):
        names = ', '.join(type(m).__name__ for m, _ in kinds)
        raise ValueError(
            'ONNX export supports two-stage detectors whose RPN, box and '
            'mask heads are all detectron2\'s (mmregionvit.Detectron*) or '
            f'all mmdet\'s; got {names}.')
    return all(found)


def _check_same(module: nn.Module, base: type, *methods: str) -> None:
    """The graphs mirror ``base``'s post-processing: refuse a module that
    changes it."""
    changed = [
        m for m in methods if getattr(type(module), m) is not getattr(base, m)
    ]
    if not isinstance(module, base) or changed:
        raise ValueError(
            f'ONNX export mirrors the post-processing of '
            f'{base.__module__.split(".")[0]}\'s {base.__name__}; '
            f'{type(module).__name__} changes '
            f'{", ".join(changed) or "its class"}.')


def detector_graph(detector: nn.Module) -> DetectorGraph:
    """The graph module of an mmdet detector, or a clear error."""
    from mmdet.models.dense_heads import AnchorHead, RPNHead
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead

    from ..models import retina_head, roi_heads, rpn_head
    detectron = is_detectron(detector)
    if getattr(detector, 'roi_head', None) is not None:
        roi_head = detector.roi_head
        _check_same(roi_head, StandardRoIHead, 'predict', 'predict_bbox',
                    'predict_mask')
        if detectron:
            _check_same(detector.rpn_head, rpn_head.DetectronRPNHead,
                        '_predict_by_feat_single')
            _check_same(roi_head.bbox_head, roi_heads.DetectronBBoxHead,
                        '_predict_by_feat_single')
            if roi_head.with_mask:
                _check_same(roi_head.mask_head, roi_heads.DetectronMaskHead,
                            'predict_by_feat')
            return TwoStageGraph(detector)
        _check_same(detector.rpn_head, RPNHead, '_predict_by_feat_single',
                    '_bbox_post_process')
        _check_same(roi_head.bbox_head, BBoxHead, '_predict_by_feat_single')
        if roi_head.with_mask:
            _check_same(roi_head.mask_head, FCNMaskHead,
                        '_predict_by_feat_single')
        return TwoStageGraph(detector)
    head = getattr(detector, 'bbox_head', None)
    if not isinstance(head, AnchorHead):
        raise ValueError('ONNX export supports RetinaNet-style (AnchorHead) '
                         'and two-stage (RPN + StandardRoIHead) detectors; '
                         f'got {type(detector).__name__} with '
                         f'{type(head).__name__}.')
    _check_same(head, AnchorHead, '_predict_by_feat_single')
    if detectron:
        _check_same(head, retina_head.DetectronRetinaHead,
                    '_bbox_post_process')
    else:
        _check_same(head, BaseDenseHead, '_bbox_post_process')
    return RetinaNetGraph(detector)


def final_detections(found: dict, scale_factor: Sequence[float],
                     shape: Tuple[int, int], detectron: bool) -> dict:
    """The graph's detections of one image (``bboxes``, ``scores``,
    ``labels``, ``masks``) for the output image of ``shape`` (H, W), as the
    model's ``predict`` makes them: boxes scaled by ``1 / scale_factor``
    (w, h); for the detectron2 heads, by ``detector_postprocess`` (scaled,
    clipped to the image, those left empty dropped)."""
    from mmdet.structures.bbox import scale_boxes
    from mmengine.structures import InstanceData

    from ..models.detectron_boxes import detector_postprocess
    results = InstanceData(**found)
    if detectron:
        meta = dict(scale_factor=scale_factor, ori_shape=shape)
        results = detector_postprocess(results, meta, rescale=True)
    else:
        results.bboxes = scale_boxes(results.bboxes,
                                     [1 / s for s in scale_factor[:2]])
    return {k: results.get(k) for k in found}


def paste_masks(masks: Tensor,
                boxes: Tensor,
                height: int,
                width: int,
                threshold: Optional[float] = 0.5) -> Tensor:
    """Image-sized masks from ``masks`` (``(K, h, w)`` probabilities in
    ``boxes``, ``(K, 4)`` in the output image's pixels), as mmdet's
    ``FCNMaskHead`` pastes them on a CPU: bool ``(K, height, width)``
    (``>= threshold``), or the probabilities for ``threshold=None``."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
    out = masks.new_zeros((len(masks), height, width))
    if len(masks):
        pasted, region = _do_paste_mask(
            masks[:, None], boxes, height, width, skip_empty=True)
        out[(slice(None), ) + region] = pasted
    return out if threshold is None else out >= threshold
