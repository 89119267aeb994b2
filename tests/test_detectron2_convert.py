"""Official detectron2 detectors, converted, compute the same functions."""
import pytest
import torch
from conftest import load_fixture

pytest.importorskip('mmdet')
from detection_helpers import build_detector, mini_detector_cfg, predict_raw
from mmdet.structures.bbox import bbox2roi
from tolerances import bound, check, check_close
from tool_helpers import load_tool

from mmregionvit.models.detectron2_checkpoint import (check_against_model,
                                                      convert_detectron2,
                                                      retinanet_anchor_order)

# 8 classes on a 160x256 image; 80 classes on a 203x301 one (padded inside
# the detector), where detectron2 returns fewer than 100 detections
FIXTURES = [
    'd2_maskrcnn_shared', 'd2_retinanet_shared', 'd2_maskrcnn_shared80',
    'd2_retinanet_shared80'
]


def kind_of(name: str) -> str:
    return name.split('_')[1]


@pytest.fixture(scope='module', params=FIXTURES)
def converted(request):
    kind = kind_of(request.param)
    fixture = load_fixture(request.param)
    model = build_detector(mini_detector_cfg(kind, fixture)).eval()
    state_dict = convert_detectron2(fixture['checkpoint'])
    check_against_model(state_dict, model)
    model.load_state_dict(state_dict)
    return kind, fixture, model


def assert_close(ours, ref, what=''):
    check_close('detectron2_tensor', ours, ref, what)


def test_fpn(converted):
    kind, fixture, model = converted
    with torch.no_grad():
        feats = model.extract_feat(fixture['input'])
    names = sorted(fixture['fpn'])
    assert len(feats) == len(names) == 5
    for feat, name in zip(feats, names, strict=True):
        assert_close(feat, fixture['fpn'][name], what=name)


def test_heads(converted):
    kind, fixture, model = converted
    feats = tuple(fixture['fpn'][n] for n in sorted(fixture['fpn']))
    with torch.no_grad():
        if kind == 'maskrcnn':
            objectness, deltas = model.rpn_head(feats)
            for i, (a, b) in enumerate(
                    zip(objectness, fixture['rpn_objectness'], strict=True)):
                assert_close(a, b, what=f'rpn objectness {i}')
            for i, (a, b) in enumerate(
                    zip(deltas, fixture['rpn_deltas'], strict=True)):
                assert_close(a, b, what=f'rpn deltas {i}')
            rois = bbox2roi([fixture['boxes']])
            box = model.roi_head._bbox_forward(feats[:4], rois)
            assert_close(
                box['cls_score'],
                fixture['box_scores'],
                what='box scores (background last)')
            assert_close(
                box['bbox_pred'], fixture['box_deltas'], what='box deltas')
            mask = model.roi_head._mask_forward(feats[:4], rois)
            assert_close(
                mask['mask_preds'], fixture['mask_logits'], what='mask logits')
        else:
            cls_scores, bbox_preds = model.bbox_head(feats)
            order = retinanet_anchor_order(3, 3)
            for i, (a, b) in enumerate(
                    zip(cls_scores, fixture['cls_logits'], strict=True)):
                b = b.unflatten(1, (9, -1))[:, order].flatten(1, 2)
                assert_close(a, b, what=f'cls logits {i}')
            for i, (a, b) in enumerate(
                    zip(bbox_preds, fixture['bbox_reg'], strict=True)):
                b = b.unflatten(1, (9, 4))[:, order].flatten(1, 2)
                assert_close(a, b, what=f'box regression {i}')


def assert_same_detections(pred, ref):
    """The same detections: count, labels, and scores and boxes within the
    ``detectron2_score`` and ``detectron2_box`` bounds.

    Both lists are sorted by score; two detections whose scores differ by
    less than the fp32 noise of the two implementations may come in either
    order, so each detectron2 detection is matched to one of ours.
    """
    assert len(pred) == len(ref['boxes'])
    assert (pred.scores.diff() <= 0).all()
    unmatched = list(range(len(pred)))
    worst_score = worst_box = 0.0
    for box, score, label in zip(ref['boxes'], ref['scores'], ref['labels']):
        match = [
            j for j in unmatched if pred.labels[j] == label
            and abs(pred.scores[j] - score) <= bound('detectron2_score') and (
                pred.bboxes[j] - box).abs().max() <= bound('detectron2_box')
        ]
        assert match, f'no detection of ours matches {label}, {score}, {box}'
        j = match[0]
        unmatched.remove(j)
        worst_score = max(worst_score, abs(pred.scores[j] - score).item())
        worst_box = max(worst_box, (pred.bboxes[j] - box).abs().max().item())
    check('detectron2_score', worst_score, 'scores')
    check('detectron2_box', worst_box, 'boxes')


def test_end_to_end_detections(converted):
    kind, fixture, model = converted
    pred = predict_raw(model, fixture['image_rgb']).pred_instances
    assert_same_detections(pred, fixture['detections'])


def as_instances(detections: dict):
    from mmengine.structures import InstanceData
    return InstanceData(
        bboxes=detections['boxes'].clone(),
        scores=detections['scores'].clone(),
        labels=detections['labels'].clone())


@pytest.mark.parametrize('change', [
    'score +1e-3', 'box +0.1 px', 'another label', 'one missing', 'one extra'
])
def test_detection_bounds_catch_real_differences(change):
    """The noise bounds still fail the smallest real differences."""
    ref = load_fixture('d2_maskrcnn_shared80')['detections']
    assert_same_detections(as_instances(ref), ref)
    pred = as_instances(ref)
    k = 50  # a detection inside the list (no score ties near it)
    if change == 'score +1e-3':
        pred.scores[k] += 1e-3
        # stays sorted: the next score is more than 1e-3 lower
        assert pred.scores[k] < pred.scores[k - 1]
    elif change == 'box +0.1 px':
        pred.bboxes[k, 2] += 0.1
    elif change == 'another label':
        pred.labels[k] = (pred.labels[k] + 1) % 80
    elif change == 'one missing':
        pred = pred[torch.arange(len(pred)) != k]
    else:
        pred = pred[torch.cat([torch.arange(len(pred)), torch.tensor([k])])]
        pred = pred[pred.scores.argsort(descending=True, stable=True)]
    with pytest.raises(AssertionError):
        assert_same_detections(pred, ref)


@pytest.mark.slow
@pytest.mark.parametrize('name', FIXTURES)
def test_converted_checkpoint_through_mmdet_api(name, tmp_path):
    """tools/convert_official.py --config, then mmdet's init_detector and
    inference_detector on the image file."""
    import cv2
    from mmdet.apis import inference_detector, init_detector
    kind, fixture = kind_of(name), load_fixture(name)
    image = fixture['image_rgb']
    h, w = image.shape[1:]
    cfg = mini_detector_cfg(kind, fixture)
    # the config's test pipeline (the official FIXED resize), resizing to
    # the image's own size: (long side, short side)
    pipeline = cfg.test_dataloader.dataset.pipeline
    resize = next(t for t in pipeline
                  if t.type == 'mmregionvit.FixedOrientedResize')
    resize.update(scale=(max(h, w), min(h, w)))
    cfg_path, src, dst = (tmp_path / 'mini.py', tmp_path / 'd2.pth',
                          tmp_path / 'mm.pth')
    cfg.dump(str(cfg_path))
    torch.save(fixture['checkpoint'], src)
    convert = load_tool('convert_official')
    assert convert.main([str(src), str(dst), '--config', str(cfg_path)]) == 0
    img_path = str(tmp_path / 'image.png')  # lossless
    cv2.imwrite(img_path, image.flip(0).permute(1, 2, 0).byte().numpy())
    model = init_detector(str(cfg_path), str(dst), device='cpu')
    pred = inference_detector(model, img_path).pred_instances
    assert_same_detections(pred, fixture['detections'])


def test_anchor_order_matches_mmdet_generator():
    """detectron2's size-major cell anchors, reordered, are mmdet's."""
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    gen = AnchorGenerator(
        strides=[8],
        ratios=[0.5, 1.0, 2.0],
        octave_base_scale=4,
        scales_per_octave=3)
    d2 = []
    for size in [32 * 2**(i / 3) for i in range(3)]:
        for ratio in (0.5, 1.0, 2.0):
            w = (size**2 / ratio)**0.5
            h = w * ratio
            d2.append([-w / 2, -h / 2, w / 2, h / 2])
    d2 = torch.tensor(d2)
    torch.testing.assert_close(d2[retinanet_anchor_order(3, 3)],
                               gen.base_anchors[0])


def test_unmapped_and_missing_keys_are_errors():
    fixture = load_fixture('d2_maskrcnn_shared')
    model_sd = dict(fixture['checkpoint']['model'])
    model_sd['roi_heads.keypoint_head.conv.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match='roi_heads.keypoint_head.conv.weight'):
        convert_detectron2({'model': model_sd})
    model = build_detector(mini_detector_cfg('maskrcnn', fixture))
    converted = convert_detectron2(fixture['checkpoint'])
    del converted['rpn_head.rpn_conv.bias']
    with pytest.raises(
            KeyError, match=r"missing \['rpn_head.rpn_conv.bias'\]"):
        check_against_model(converted, model)
    with pytest.raises(ValueError, match='neither'):
        convert_detectron2({'model': {'fc.weight': torch.zeros(1)}})
