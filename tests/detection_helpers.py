"""Building the reduced official detectors of the detectron2 fixtures."""
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = Path(__file__).resolve().parents[1]


def mini_detector_cfg(kind: str, fixture: dict) -> Config:
    """Our config of ``kind`` at the fixture's reduced widths, 8 classes."""
    cfg = Config.fromfile(ROOT /
                          f'configs/detection/{kind}_regionvit_s_coco.py')
    m = cfg.model
    m.backbone.update(
        arch=fixture['mini_arch'], init_cfg=None, drop_path_rate=0.0)
    m.neck.update(
        in_channels=fixture['mini_arch']['embed_dim'][1:], out_channels=32)
    if kind == 'maskrcnn':
        m.rpn_head.update(in_channels=32, feat_channels=32)
        r = m.roi_head
        r.bbox_roi_extractor.out_channels = 32
        r.mask_roi_extractor.out_channels = 32
        r.bbox_head.update(in_channels=32, fc_out_channels=128, num_classes=8)
        r.mask_head.update(in_channels=32, conv_out_channels=64, num_classes=8)
        m.test_cfg.rcnn.score_thr = 0.0
    else:
        m.bbox_head.update(in_channels=32, feat_channels=32, num_classes=8)
        m.test_cfg.score_thr = 0.0
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
