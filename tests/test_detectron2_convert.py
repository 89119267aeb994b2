"""Official detectron2 detectors, converted, compute the same functions."""
import pytest
import torch
from conftest import load_fixture

pytest.importorskip('mmdet')
from detection_helpers import build_detector, mini_detector_cfg, predict_raw
from mmdet.structures.bbox import bbox2roi

from mmregionvit.models.detectron2_checkpoint import (check_against_model,
                                                      convert_detectron2,
                                                      retinanet_anchor_order)

FIXTURES = dict(maskrcnn='d2_maskrcnn_shared', retinanet='d2_retinanet_shared')


@pytest.fixture(scope='module', params=['maskrcnn', 'retinanet'])
def converted(request):
    kind = request.param
    fixture = load_fixture(FIXTURES[kind])
    model = build_detector(mini_detector_cfg(kind, fixture)).eval()
    state_dict = convert_detectron2(fixture['checkpoint'])
    check_against_model(state_dict, model)
    model.load_state_dict(state_dict)
    return kind, fixture, model


def assert_close(ours, ref, atol=2e-5, what=''):
    assert ours.shape == ref.shape, what
    err = (ours - ref).abs().max().item()
    assert err <= atol, f'{what}: max abs error {err:.2e}'


def test_fpn(converted):
    kind, fixture, model = converted
    with torch.no_grad():
        feats = model.extract_feat(fixture['input'])
    names = sorted(fixture['fpn'])
    assert len(feats) == len(names) == 5
    for feat, name in zip(feats, names):
        assert_close(feat, fixture['fpn'][name], what=name)


def test_heads(converted):
    kind, fixture, model = converted
    feats = tuple(fixture['fpn'][n] for n in sorted(fixture['fpn']))
    with torch.no_grad():
        if kind == 'maskrcnn':
            objectness, deltas = model.rpn_head(feats)
            for i, (a, b) in enumerate(
                    zip(objectness, fixture['rpn_objectness'])):
                assert_close(a, b, what=f'rpn objectness {i}')
            for i, (a, b) in enumerate(zip(deltas, fixture['rpn_deltas'])):
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
            for i, (a, b) in enumerate(zip(cls_scores, fixture['cls_logits'])):
                b = b.unflatten(1, (9, -1))[:, order].flatten(1, 2)
                assert_close(a, b, what=f'cls logits {i}')
            for i, (a, b) in enumerate(zip(bbox_preds, fixture['bbox_reg'])):
                b = b.unflatten(1, (9, 4))[:, order].flatten(1, 2)
                assert_close(a, b, what=f'box regression {i}')


def test_end_to_end_detections(converted):
    kind, fixture, model = converted
    pred = predict_raw(model, fixture['image_rgb']).pred_instances
    ref = fixture['detections']
    assert len(pred) == len(ref['boxes']) == 100
    assert torch.equal(pred.labels, ref['labels'])
    assert_close(pred.scores, ref['scores'], atol=1e-5, what='scores')
    assert_close(pred.bboxes, ref['boxes'], atol=1e-3, what='boxes')


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
    fixture = load_fixture(FIXTURES['maskrcnn'])
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
