"""Building the reduced official detectors of the detectron2 fixtures."""
from pathlib import Path

import torch
import yaml
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = Path(__file__).resolve().parents[1]


def fixture_widths(kind: str, fixture: dict) -> dict:
    """Model overrides that give our config of ``kind`` the fixture's
    architecture and widths (not its classes), read from its detectron2
    config."""
    d2 = yaml.safe_load(fixture['d2_config'])['MODEL']
    width = d2['FPN']['OUT_CHANNELS']
    model = dict(
        backbone=dict(
            arch=dict(fixture['mini_arch'], _delete_=True),
            init_cfg=None,
            drop_path_rate=0.0),
        neck=dict(
            in_channels=fixture['mini_arch']['embed_dim'][1:],
            out_channels=width))
    if kind == 'maskrcnn':
        model.update(
            rpn_head=dict(in_channels=width, feat_channels=width),
            roi_head=dict(
                bbox_roi_extractor=dict(out_channels=width),
                mask_roi_extractor=dict(out_channels=width),
                bbox_head=dict(
                    in_channels=width,
                    fc_out_channels=d2['ROI_BOX_HEAD']['FC_DIM']),
                mask_head=dict(
                    in_channels=width,
                    conv_out_channels=d2['ROI_MASK_HEAD']['CONV_DIM'])))
    else:
        model.update(bbox_head=dict(in_channels=width, feat_channels=width))
    return model


def mini_detector_cfg(kind: str, fixture: dict) -> Config:
    """Our config of ``kind`` with the fixture's widths, classes and test
    settings, all read from its detectron2 config."""
    d2 = yaml.safe_load(fixture['d2_config'])['MODEL']
    max_per_img = yaml.safe_load(
        fixture['d2_config'])['TEST']['DETECTIONS_PER_IMAGE']
    cfg = Config.fromfile(ROOT /
                          f'configs/detection/{kind}_regionvit_s_coco.py')
    cfg.merge_from_dict(dict(model=fixture_widths(kind, fixture)))
    m = cfg.model
    if kind == 'maskrcnn':
        rpn, heads = d2['RPN'], d2['ROI_HEADS']
        r = m.roi_head
        r.bbox_head.num_classes = heads['NUM_CLASSES']
        r.mask_head.num_classes = heads['NUM_CLASSES']
        m.test_cfg.rpn.update(
            nms_pre=rpn['PRE_NMS_TOPK_TEST'],
            max_per_img=rpn['POST_NMS_TOPK_TEST'],
            nms=dict(type='nms', iou_threshold=rpn['NMS_THRESH']),
            min_bbox_size=d2['PROPOSAL_GENERATOR']['MIN_SIZE'])
        m.test_cfg.rcnn.update(
            score_thr=heads['SCORE_THRESH_TEST'],
            nms=dict(type='nms', iou_threshold=heads['NMS_THRESH_TEST']),
            max_per_img=max_per_img)
    else:
        retina = d2['RETINANET']
        m.bbox_head.num_classes = retina['NUM_CLASSES']
        m.test_cfg.update(
            nms_pre=retina['TOPK_CANDIDATES_TEST'],
            score_thr=retina['SCORE_THRESH_TEST'],
            nms=dict(type='nms', iou_threshold=retina['NMS_THRESH_TEST']),
            max_per_img=max_per_img)
    return cfg


def build_detector(cfg: Config):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def predict_raw(model, image_rgb: torch.Tensor):
    """Detections for an RGB image at its own size (no resize)."""
    from mmdet.structures import DetDataSample
    shape = tuple(image_rgb.shape[1:])
    sample = DetDataSample(
        metainfo=dict(
            img_shape=shape, ori_shape=shape, scale_factor=(1.0, 1.0)))
    # the data preprocessor takes BGR images, as mmdet loads them
    data = model.data_preprocessor(
        dict(inputs=[image_rgb.flip(0)], data_samples=[sample]), False)
    with torch.no_grad():
        return model.predict(data['inputs'], data['data_samples'])[0]
