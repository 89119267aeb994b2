"""The official detector configs infer as detectron2 does.

Each test builds its part from the real configs, so a config that falls
back to mmdet's behaviour fails here. Expected values follow from
detectron2's definitions, worked out in the comments.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmdet')
from detection_helpers import ROOT
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmregionvit.models.detectron_boxes import batched_nms, iou_threshold

CONFIGS = {
    kind:
    Config.fromfile(ROOT / f'configs/detection/{kind}_regionvit_s_coco.py')
    for kind in ('maskrcnn', 'retinanet')
}
MASK_RCNN, RETINANET = CONFIGS['maskrcnn'].model, CONFIGS['retinanet'].model
SCALE_CLAMP = math.log(1000 / 16)

# (config, image h x w) -> the (w, h) detectron2 resizes it to
TEST_SIZES = {
    # 1x, AUG_MODE "FIXED" (also at test time): 672x1120 whatever the
    # aspect ratio, 1120x672 for portrait images
    ('maskrcnn_regionvit_s_coco', (382, 640)): (1120, 672),
    ('retinanet_regionvit_s_coco', (1600, 1200)): (672, 1120),
    # 3x, AUG_MODE "DETR" (no test transform of its own): the short side to
    # 672 unless the long one passes 1120, new sizes rounded from
    # detectron2's float arithmetic (640x382 -> 1120x668, where mmcv's
    # Resize gives 1120x669)
    ('maskrcnn_regionvit_s_ms-3x_coco', (382, 640)): (1120, 668),
    ('retinanet_regionvit_s_ms-3x_coco', (1200, 1600)): (896, 672),
}


@pytest.mark.parametrize('config,size', list(TEST_SIZES))
def test_test_input_is_detectron2s(config, size, tmp_path):
    import cv2
    from mmengine.dataset import Compose
    from PIL import Image
    init_default_scope('mmdet')
    cfg = Config.fromfile(ROOT / f'configs/detection/{config}.py')
    image = np.random.default_rng(0).integers(0, 256, size + (3, ), np.uint8)
    path = str(tmp_path / 'image.png')
    cv2.imwrite(path, image)
    pipeline = Compose(
        [t for t in cfg.test_pipeline if t.type != 'LoadAnnotations'])
    out = pipeline(dict(img_path=path, img_id=0))
    # resized by Pillow's bilinear filter (antialiased when shrinking), as
    # detectron2's ResizeTransform does
    new_w, new_h = TEST_SIZES[config, size]
    expected = np.asarray(
        Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    assert np.array_equal(out['inputs'].permute(1, 2, 0).numpy(), expected)
    assert out['data_samples'].scale_factor == (new_w / size[1],
                                                new_h / size[0])


def build(cfg: dict, registry: str = 'MODELS', **changes):
    import mmdet.registry
    init_default_scope('mmdet')
    cfg = ConfigDict(cfg.to_dict(), **changes)
    return getattr(mmdet.registry, registry).build(cfg)


CODERS = {
    'rpn': (MASK_RCNN.rpn_head.bbox_coder, (1., 1., 1., 1.)),
    'box head': (MASK_RCNN.roi_head.bbox_head.bbox_coder, (10., 10., 5., 5.)),
    'retinanet': (RETINANET.bbox_head.bbox_coder, (1., 1., 1., 1.)),
}


@pytest.mark.parametrize('where', list(CODERS))
def test_box_deltas_clamped_from_above_only(where):
    cfg, (wx, wy, ww, wh) = CODERS[where]
    coder = build(cfg, 'TASK_UTILS')
    box = torch.tensor([[0., 0., 16., 16.]])
    # dw = -5 lies below -log(1000/16): detectron2 keeps it (width
    # 16 * e^-5 = 0.108, not 16 / 62.5 = 0.256); dh = 6 is clamped to
    # log(1000/16) (height 1000)
    deltas = torch.tensor([[0., 0., -5. * ww, 6. * wh]])
    w, h = 16 * math.exp(-5), 16 * math.exp(SCALE_CLAMP)
    expected = torch.tensor([[8 - w / 2, 8 - h / 2, 8 + w / 2, 8 + h / 2]])
    torch.testing.assert_close(coder.decode(box, deltas), expected)
    # ordinary deltas: the R-CNN transform with these weights
    deltas = torch.tensor([[1. * wx, -2. * wy, .5 * ww, -.25 * wh]])
    w, h = 16 * math.exp(.5), 16 * math.exp(-.25)
    cx, cy = 8 + 16, 8 - 32
    expected = torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]])
    torch.testing.assert_close(coder.decode(box, deltas), expected)
    # encoding is the inverse
    torch.testing.assert_close(coder.encode(box, expected), deltas)


def box_head(num_classes=2, **test_changes):
    head = build(MASK_RCNN.roi_head.bbox_head, num_classes=num_classes)
    cfg = ConfigDict(MASK_RCNN.test_cfg.rcnn.to_dict(), **test_changes)
    return head, cfg


def predict_boxes(head, cfg, rois, logits, deltas, img_meta, rescale):
    roi = torch.cat([rois.new_zeros(len(rois), 1), rois], 1)
    return head._predict_by_feat_single(roi, logits, deltas, img_meta, rescale,
                                        cfg)


META = dict(img_shape=(100, 100), ori_shape=(200, 200), scale_factor=(.5, .5))


def test_box_head_drops_boxes_empty_after_clipping():
    head, cfg = box_head()
    # the second proposal lies right of the 100-pixel-wide input: clipped,
    # it is [100, 10, 100, 40], empty
    rois = torch.tensor([[10., 10., 50., 50.], [120., 10., 150., 40.]])
    logits = torch.tensor([[5., 0., 0.], [6., 0., 0.]])
    res = predict_boxes(head, cfg, rois, logits, torch.zeros(2, 8), META, True)
    assert len(res) == 1
    torch.testing.assert_close(res.bboxes,
                               torch.tensor([[20., 20., 100., 100.]]))
    assert res.labels.tolist() == [0]


def test_box_head_drops_non_finite_boxes_before_top_k():
    head, cfg = box_head(max_per_img=1)
    rois = torch.tensor([[10., 10., 50., 50.], [20., 20., 60., 60.]])
    logits = torch.tensor([[9., 0., 0.], [8., 0., 0.]])
    deltas = torch.zeros(2, 8)
    deltas[0, 0] = float('inf')  # the best proposal's box is not finite
    # detectron2 drops that proposal, so the next one is the detection
    res = predict_boxes(head, cfg, rois, logits, deltas, META, False)
    assert len(res) == 1
    torch.testing.assert_close(res.bboxes, rois[1:])


def retina_head():
    head = build(RETINANET.bbox_head, num_classes=2)
    return head, ConfigDict(RETINANET.test_cfg.to_dict())


def test_retinanet_nms_on_unclipped_boxes_then_drops_empty():
    head, cfg = retina_head()
    boxes = torch.tensor([
        # unclipped IoU 0.24: both stay; clipped first (to x2 = 100) the
        # IoU would be 0.73 and the second would go
        [78., 10., 160., 50.],
        [70., 10., 100., 50.],
        # entirely right of the image: empty once clipped
        [120., 10., 150., 40.],
    ])
    results = InstanceData(
        bboxes=boxes,
        scores=torch.tensor([.9, .8, .95]),
        labels=torch.tensor([0, 0, 1]))
    res = head._bbox_post_process(results, cfg, True, True, META)
    torch.testing.assert_close(
        res.bboxes,
        torch.tensor([[156., 20., 200., 100.], [140., 20., 200., 100.]]))
    assert res.labels.tolist() == [0, 0]


# Pairs of boxes whose exact IoU lies just above an NMS threshold (by
# 3.1e-6 for 0.5, 1.1e-5 for 0.7), in 1/4096 pixels so that decoding them
# with zero deltas is exact.
PAIRS = {
    0.5: [[654537, 1997056, 764585, 2078981],
          [654537, 1997056, 764585, 2160905]],
    0.7: [[1505537, 1179644, 1695396, 1261581],
          [1505537, 1179644, 1695396, 1296695]],
}


def nms_case(threshold):
    """1102 boxes: a group-7 pair (scores 0.9, 0.8) whose IoU is just above
    ``threshold``, so NMS drops the second, and 1100 small boxes apart, of
    groups 0-2 (score 0.1). detectron2's NMS (torchvision's, one NMS per
    group above 1000 boxes) drops it; mmcv's offsets the boxes by group up
    to 10000 boxes, which rounds the pair to an IoU at the threshold."""
    pair = torch.tensor(PAIRS[threshold], dtype=torch.float64) / 4096
    i = torch.arange(1100.)
    x, y = i * .75, (i // 1000) * 5 + 990
    fill = torch.stack([x, y, x + .5, y + .5], 1)
    boxes = torch.cat([pair.float(), fill])
    scores = torch.cat([torch.tensor([.9, .8]), torch.full((1100, ), .1)])
    groups = torch.cat([torch.tensor([7, 7]), torch.arange(1100) % 3])
    return boxes, scores, groups


def contains(boxes, box):
    return bool(((boxes - box).abs().max(dim=1).values < 1e-3).any())


@pytest.mark.parametrize('threshold', list(PAIRS))
def test_nms_case_is_what_it_says(threshold):
    boxes, scores, groups = nms_case(threshold)
    a, b = boxes[:2].double()
    iou = (a[3] - a[1]) / (b[3] - b[1])  # same x extent, same top
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    assert threshold < iou < threshold + 2e-5
    keep = batched_nms(boxes, scores, groups, threshold)
    assert 1 not in keep.tolist() and len(keep) == 1101
    assert keep[0] == 0 and (scores[keep].diff() <= 0).all()


def test_retinanet_nms_is_detectron2s():
    head, cfg = retina_head()
    head.num_classes = 8
    boxes, scores, labels = nms_case(0.5)
    results = InstanceData(bboxes=boxes, scores=scores, labels=labels)
    res = head._bbox_post_process(results, cfg.copy(), False, True,
                                  dict(img_shape=(1000, 1000)))
    assert len(res) == 100  # max_per_img; the pair's second box is not one
    assert res.scores[:2].tolist() == pytest.approx([.9, .1])


def test_box_head_nms_is_detectron2s():
    head, cfg = box_head(num_classes=8, max_per_img=-1)
    boxes, _, classes = nms_case(0.5)
    # one confident class per proposal; zero deltas decode to the proposal
    logits = torch.zeros(len(boxes), 9)
    logits[torch.arange(len(boxes)), classes] = 12.
    logits[1, 7] = 11.
    res = predict_boxes(head, cfg, boxes, logits, torch.zeros(len(boxes), 32),
                        dict(img_shape=(1000, 1000)), False)
    assert len(res) == 1101
    assert not contains(res.bboxes, boxes[1])  # the pair's second box


def rpn_head():
    head = build(MASK_RCNN.rpn_head)
    return head.eval(), ConfigDict(MASK_RCNN.test_cfg.rpn.to_dict())


def rpn_proposals(head, cfg, levels, img_shape=(1000, 1000)):
    """Proposals from per-level (anchors, logits) with zero deltas, one
    anchor per location on a 1 x n map."""
    cls_scores = [logits.view(1, 1, -1) for _, logits in levels]
    deltas = [torch.zeros(4, 1, len(a)) for a, _ in levels]
    return head._predict_by_feat_single(cls_scores, deltas, None,
                                        [a for a, _ in levels],
                                        dict(img_shape=img_shape), cfg)


def test_rpn_ranks_logits_not_saturated_sigmoids():
    head, cfg = rpn_head()
    # sigmoid(20) == sigmoid(25) == 1 in fp32; detectron2 ranks the logits,
    # so the second anchor wins NMS (IoU 10/11 > 0.7)
    anchors = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 11.]])
    res = rpn_proposals(head, cfg, [(anchors, torch.tensor([20., 25.]))])
    torch.testing.assert_close(res.bboxes, anchors[1:])


def test_rpn_nms_is_detectron2s():
    head, cfg = rpn_head()
    boxes, scores, _ = nms_case(0.7)
    logits = torch.logit(scores)
    # NMS per level: 1000 boxes on level 0, two on each of levels 1-6, the
    # pair on level 7
    levels = [(boxes[2:1002], logits[2:1002])]
    levels += [(boxes[i:i + 2], logits[i:i + 2]) for i in range(1002, 1014, 2)]
    levels.append((boxes[:2], logits[:2]))
    res = rpn_proposals(head, cfg, levels)
    assert len(res) == 1000  # max_per_img
    torch.testing.assert_close(res.bboxes[0], boxes[0])
    assert not contains(res.bboxes, boxes[1])  # the pair's second box


def test_rpn_drops_non_finite_logits():
    head, cfg = rpn_head()
    anchors = torch.tensor([[0., 0., 10., 10.], [50., 50., 60., 60.]])
    res = rpn_proposals(head, cfg,
                        [(anchors, torch.tensor([float('nan'), 1.]))])
    torch.testing.assert_close(res.bboxes, anchors[1:])
    with pytest.raises(FloatingPointError, match='diverged'):
        rpn_proposals(head.train(), cfg,
                      [(anchors, torch.tensor([float('nan'), 1.]))])


@pytest.mark.parametrize('extractor', ['bbox', 'mask'])
def test_roi_levels_are_detectron2s(extractor):
    head = build(MASK_RCNN.roi_head[f'{extractor}_roi_extractor'])
    sides = torch.tensor([
        [50., 50.],
        # just under 112 and 224 pixels (sqrt of the area): detectron2's
        # floor(4 + log2(s / 224 + 1e-8)) gives P2 and P3, mmdet's
        # floor(log2(s / 56 + 1e-6)) the next level up
        [112., 111.99995422363281],
        [224., 223.99995422363281],
        [112., 112.],
        [300., 300.],
        [1000., 1000.],
    ])
    rois = torch.cat([torch.zeros(len(sides), 3), sides], 1)
    assert head.map_roi_levels(rois, 4).tolist() == [0, 0, 1, 1, 2, 3]


def paste_reference(prob, box, height, width, threshold=0.5):
    """detectron2's paste of one mask, over the whole image: each pixel
    centre, in the box's [-1, 1] coordinates, bilinearly samples the mask
    (grid_sample, align_corners=False)."""
    x0, y0, x1, y1 = box
    xs = (torch.arange(width) + 0.5 - x0) / (x1 - x0) * 2 - 1
    ys = (torch.arange(height) + 0.5 - y0) / (y1 - y0) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), -1)
    return F.grid_sample(
        prob[None, None], grid[None], align_corners=False)[0, 0] >= threshold


def test_masks_pasted_on_final_boxes():
    head = build(MASK_RCNN.roi_head.mask_head, num_classes=2)
    cfg = ConfigDict(MASK_RCNN.test_cfg.rcnn.to_dict())
    meta = dict(
        img_shape=(50, 60), ori_shape=(100, 120), scale_factor=(.5, .5))
    boxes = torch.tensor([
        [5., 5., 30., 40.],
        [40., 10., 70., 45.],  # x2 beyond the image: clipped when final
        [60., 10., 60., 20.],  # empty: no detection, no mask
    ])
    results = InstanceData(
        bboxes=boxes.clone(),
        labels=torch.tensor([1, 0, 1]),
        scores=torch.tensor([.9, .8, .7]))
    logits = torch.randn(3, 2, 28, 28)
    (res, ) = head.predict_by_feat((logits, ), [results], [meta],
                                   cfg,
                                   rescale=True)
    final = torch.tensor([[10., 10., 60., 80.], [80., 20., 120., 90.]])
    torch.testing.assert_close(res.bboxes, final)
    assert res.masks.shape == (2, 100, 120)
    for i in range(2):
        prob = logits[i, results.labels[i]].sigmoid()
        assert torch.equal(res.masks[i],
                           paste_reference(prob, final[i], 100, 120))
    # pasting on the unclipped box would differ
    unclipped = paste_reference(logits[1, 0].sigmoid(), boxes[1] * 2, 100, 120)
    assert not torch.equal(res.masks[1], unclipped)


def test_plain_nms_only():
    with pytest.raises(ValueError, match='plain NMS'):
        iou_threshold(dict(type='soft_nms', iou_threshold=0.5))


def test_retinanet_refuses_clipping_coder():
    cfg = RETINANET.bbox_head.to_dict()
    cfg['bbox_coder']['clip_border'] = True
    with pytest.raises(ValueError, match='clip_border=False'):
        build(ConfigDict(cfg))
